"""factory_boy factories for the models tests set up directly (task types, rules)."""

from __future__ import annotations

import factory

from escalations.models import Level, PolicyRule, Priority, TaskType


class TaskTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaskType
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"task_type_{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("_", " ").capitalize())
    description = factory.LazyAttribute(lambda o: f"Cases about {o.name.lower()}.")
    level = Level.DRAFT_REVIEW
    autonomy_threshold = 0.85
    review_threshold = 0.70
    sentiment_threshold = -0.4
    default_priority = Priority.P3
    # Sampling is a coin toss per case; tests that want it set it explicitly.
    sample_rate = 0.0


class PolicyRuleFactory(factory.django.DjangoModelFactory):
    """An admin rule; pass `task_types=[...]` to scope it to some task types."""

    class Meta:
        model = PolicyRule
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"rule_{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("_", " ").capitalize())
    keywords = factory.LazyFunction(list)
    pattern = ""
    conditions = factory.LazyFunction(list)
    action_names = factory.LazyFunction(list)
    level = Level.FLAG_STOP
    priority = None
    skill = ""
    hard = False
    enabled = True

    @factory.post_generation
    def task_types(self, create: bool, extracted: list[TaskType] | None, **kwargs: object) -> None:
        if create and extracted:
            self.task_types.set(extracted)
