from tests.people import (  # noqa: F401  (fixtures)
    agent,
    make_case,
    nobody,
    review_type,
    reviewer,
    reviewer2,
    supervisor,
)
