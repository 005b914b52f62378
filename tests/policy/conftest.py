import pytest
from django.contrib.auth.models import User

from tests.people import (  # noqa: F401  (fixtures)
    agent,
    make_case,
    make_user,
    nobody,
    review_type,
    reviewer,
    reviewer2,
    supervisor,
)


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("ada", "admin")
