"""Who takes a case (DESIGN §5): eligibility, the choice among the eligible, offers and
their expiry, what the agent is told, and the capacity checks on every way to a case.

Every call gets an explicit `now=` at a fixed moment (MONDAY, 10:00 in Baton's time zone).
Presence heartbeats are set at that moment too, so at the real time of the run every
reviewer counts as gone: the offer that ingest makes on arrival never takes a test's case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from escalations.audit import Actor, audit_verify
from escalations.decisions import escalation_accept
from escalations.errors import Conflict, Forbidden, InvalidInput
from escalations.models import AuditEvent, Escalation, Integration, Status
from escalations.schemas import HandoffIn
from escalations.services import integration_rotate_token
from routing.assignment import (
    PRESENCE_TTL,
    CapacityFull,
    assignment_expire_offers,
    assignment_offer,
    assignment_run,
    eligible_reviewers,
    handoff_record,
    lock_capacity,
    next_shift_start,
    qualified,
    shift_covers,
)
from routing.models import Presence, ReviewerProfile, ReviewerSkill, Shift, Skill
from routing.services import escalation_reassign
from tests.conftest import API, bearer_client
from tests.people import case_package, make_user

TZ = ZoneInfo(settings.TIME_ZONE)
MONDAY = datetime(2025, 6, 2, 10, 0, tzinfo=TZ)  # 2 June 2025 is a Monday
MON, TUE, WED, THU, SUN = 0, 1, 2, 3, 6
MONDAY_DAY_SHIFT = ((MON, time(8), time(18)),)
WINDOW = timedelta(seconds=settings.BATON_OFFER_ACCEPT_SECONDS)


def at(weekday: int, hour: int, minute: int = 0) -> datetime:
    """A moment in the week of MONDAY (Monday 2 June 2025 … Sunday 8 June)."""
    return MONDAY.replace(hour=hour, minute=minute) + timedelta(days=weekday)


def rostered(
    user: User,
    *,
    skills: Iterable[str] = (),
    languages: Iterable[str] = (),
    capacity: int = 3,
    presence: str = Presence.ONLINE,
    seen: datetime | None = MONDAY,
    shifts: Iterable[tuple[int, time, time]] = MONDAY_DAY_SHIFT,
    last_assigned_at: datetime | None = None,
) -> ReviewerProfile:
    profile = ReviewerProfile.objects.create(
        user=user,
        languages=list(languages),
        capacity=capacity,
        presence=presence,
        last_seen_at=seen,
        last_assigned_at=last_assigned_at,
    )
    for slug in skills:
        skill, _ = Skill.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
        ReviewerSkill.objects.create(profile=profile, skill=skill)
    for weekday, starts, ends in shifts:
        Shift.objects.create(profile=profile, weekday=weekday, starts=starts, ends=ends)
    return profile


def names(candidates: list[Any]) -> list[str]:
    return [c.profile.user.username for c in candidates]


def hold(case: Escalation, user: User, status: str = Status.ASSIGNED) -> None:
    """Put a case in someone's hands directly (the setting, not what is under test)."""
    Escalation.objects.filter(pk=case.pk).update(assignee=user, status=status)


@pytest.fixture
def carl(db: None) -> User:
    return make_user("carl", "reviewer")


@pytest.fixture
def queued(make_case: Callable[..., Escalation]) -> Callable[..., Escalation]:
    """A queued case needing `skills`, in `language`, for `customer`, due in four hours."""

    def make(
        *,
        skills: Iterable[str] = (),
        language: str = "",
        customer: str = "",
        due: datetime | None = MONDAY + timedelta(hours=4),
        **fields: Any,
    ) -> Escalation:
        case = make_case(**({"customer": {"id": customer, "name": customer}} if customer else {}))
        assert case.status == Status.QUEUED and case.assignee_id is None
        case.set_required_skills(skills)
        case.language = language
        case.sla_resolve_due = due
        for name, value in fields.items():
            setattr(case, name, value)
        case.save()
        return case

    return make


@pytest.fixture
def agent_client(agent: Integration) -> Client:
    token = integration_rotate_token(integration=agent, actor=Actor.system("test"))
    return bearer_client(token)


# --- Skills and language ----------------------------------------------------------------------


def test_a_case_needing_a_skill_never_goes_to_someone_without_it(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer)  # idle, no skills: first by every other measure
    bob = rostered(reviewer2, skills=["refunds"], last_assigned_at=MONDAY - timedelta(minutes=1))
    case = queued(skills=["refunds"])

    assert names(eligible_reviewers(case, now=MONDAY)) == ["bob"]

    bob.presence = Presence.AWAY
    bob.save()
    assert eligible_reviewers(case, now=MONDAY) == []
    assert assignment_offer(escalation_id=case.pk, now=MONDAY) is None
    case.refresh_from_db()
    assert case.status == Status.QUEUED and case.assignee_id is None


def test_every_required_skill_is_needed_not_just_one(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer, skills=["refunds"])
    rostered(reviewer2, skills=["refunds", "billing", "pricing"])
    case = queued(skills=["refunds", "billing"])

    assert names(eligible_reviewers(case, now=MONDAY)) == ["bob"]


def test_a_german_case_goes_to_german_speakers_and_to_those_listing_no_language(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User, carl: User
) -> None:
    rostered(reviewer, languages=["en"])
    rostered(reviewer2, languages=["en", "de"])
    rostered(carl, languages=[])  # the code's rule: no languages listed speaks any

    german = queued(language="de")
    assert sorted(names(eligible_reviewers(german, now=MONDAY))) == ["bob", "carl"]

    unspecified = queued(language="")
    assert sorted(names(eligible_reviewers(unspecified, now=MONDAY))) == ["ann", "bob", "carl"]


# --- Shifts -----------------------------------------------------------------------------------


def test_a_day_shift_covers_its_own_hours_only() -> None:
    shift = Shift(weekday=MON, starts=time(8), ends=time(18))

    assert shift_covers(shift, at(MON, 8))
    assert shift_covers(shift, at(MON, 17, 59))
    assert not shift_covers(shift, at(MON, 18))  # the end is exclusive
    assert not shift_covers(shift, at(MON, 7, 59))
    assert not shift_covers(shift, at(TUE, 10))


def test_an_overnight_shift_runs_past_midnight_into_the_next_day() -> None:
    monday_night = Shift(weekday=MON, starts=time(22), ends=time(6))

    assert shift_covers(monday_night, at(MON, 22))
    assert shift_covers(monday_night, at(MON, 23, 30))
    assert shift_covers(monday_night, at(TUE, 2))
    assert not shift_covers(monday_night, at(TUE, 6))
    assert not shift_covers(monday_night, at(MON, 21, 59))
    assert not shift_covers(monday_night, at(MON, 2))  # that is Sunday night's shift
    assert not shift_covers(monday_night, at(WED, 2))


def test_sunday_night_shift_wraps_into_monday() -> None:
    sunday_night = Shift(weekday=SUN, starts=time(22), ends=time(6))

    assert shift_covers(sunday_night, at(MON, 2))
    assert shift_covers(sunday_night, at(SUN, 23))
    assert not shift_covers(sunday_night, at(TUE, 2))


def test_off_shift_is_not_eligible_and_an_overnight_shift_counts_after_midnight(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    tuesday_2am = at(TUE, 2)
    rostered(reviewer, shifts=[(MON, time(22), time(6))], seen=tuesday_2am)
    rostered(reviewer2, shifts=[(TUE, time(8), time(18))], seen=at(TUE, 9))
    case = queued()

    assert names(eligible_reviewers(case, now=tuesday_2am)) == ["ann"]
    assert names(eligible_reviewers(case, now=at(TUE, 9))) == ["bob"]  # ann's heartbeat is stale


def test_next_shift_start() -> None:
    shifts = [
        Shift(weekday=MON, starts=time(9), ends=time(17)),
        Shift(weekday=WED, starts=time(22), ends=time(6)),
    ]

    assert next_shift_start(shifts, at(MON, 8)) == at(MON, 9)
    assert next_shift_start(shifts, at(MON, 9)) == at(WED, 22)  # one already begun is no help
    assert next_shift_start(shifts, at(MON, 10)) == at(WED, 22)
    assert next_shift_start(shifts, at(THU, 1)) == at(MON, 9) + timedelta(days=7)
    assert next_shift_start(shifts[:1], at(THU, 1)) == at(MON, 9) + timedelta(days=7)
    assert next_shift_start([], at(MON, 8)) is None


# --- Presence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("presence", "seen", "eligible"),
    [
        (Presence.ONLINE, MONDAY - PRESENCE_TTL + timedelta(seconds=1), True),
        (Presence.ONLINE, MONDAY - PRESENCE_TTL - timedelta(seconds=1), False),  # stale tab
        (Presence.ONLINE, None, False),  # never opened a console
        (Presence.AWAY, MONDAY, False),
        (Presence.OFFLINE, MONDAY, False),
    ],
)
def test_only_people_online_with_a_fresh_heartbeat_are_eligible(
    queued: Callable[..., Escalation],
    reviewer: User,
    presence: str,
    seen: datetime | None,
    eligible: bool,
) -> None:
    rostered(reviewer, presence=presence, seen=seen)
    case = queued()

    assert names(eligible_reviewers(case, now=MONDAY)) == (["ann"] if eligible else [])


# --- Capacity ---------------------------------------------------------------------------------


def test_a_full_reviewer_is_not_eligible_and_cannot_be_locked_for_more(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer, capacity=2)
    rostered(reviewer2, capacity=2, last_assigned_at=MONDAY)
    hold(queued(), reviewer, Status.ASSIGNED)
    hold(queued(), reviewer, Status.IN_REVIEW)
    resolved = queued()
    hold(resolved, reviewer2, Status.RESOLVED)  # a closed case is no load
    case = queued()

    assert names(eligible_reviewers(case, now=MONDAY)) == ["bob"]
    with pytest.raises(CapacityFull, match="2 of 2"):
        lock_capacity(reviewer)
    assert lock_capacity(reviewer2.pk) == ReviewerProfile.objects.get(user=reviewer2)


def test_someone_off_the_roster_has_no_capacity_limit(supervisor: User) -> None:
    assert lock_capacity(supervisor) is None


# --- The choice among the eligible ------------------------------------------------------------


def test_the_reviewer_who_had_this_customer_before_wins_over_a_less_loaded_one(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer)
    rostered(reviewer2)
    earlier = queued(customer="vip-7")
    hold(earlier, reviewer2, Status.RESOLVED)
    hold(queued(), reviewer2)  # bob holds 1 of 3, ann none
    case = queued(customer="vip-7")
    stranger = queued(customer="someone-else")

    ranked = eligible_reviewers(case, now=MONDAY)
    assert names(ranked) == ["bob", "ann"]
    assert ranked[0].affinity and ranked[0].load == 1
    assert names(eligible_reviewers(stranger, now=MONDAY)) == ["ann", "bob"]

    assert assignment_offer(escalation_id=case.pk, now=MONDAY).user == reviewer2


def test_load_is_measured_against_capacity_not_in_cases(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer, capacity=2)  # 1 of 2: half full
    rostered(reviewer2, capacity=5)  # 2 of 5: less than half
    hold(queued(), reviewer)
    hold(queued(), reviewer2)
    hold(queued(), reviewer2)
    case = queued()

    assert names(eligible_reviewers(case, now=MONDAY)) == ["bob", "ann"]


def test_among_equals_the_longest_idle_comes_first_never_assigned_before_all(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User, carl: User
) -> None:
    rostered(reviewer, last_assigned_at=MONDAY - timedelta(hours=1))
    rostered(reviewer2, last_assigned_at=MONDAY - timedelta(hours=2))
    rostered(carl, last_assigned_at=None)
    case = queued()

    assert names(eligible_reviewers(case, now=MONDAY)) == ["carl", "bob", "ann"]
    assert names(eligible_reviewers(case, now=MONDAY, exclude=[carl.pk])) == ["bob", "ann"]


# --- Offers -----------------------------------------------------------------------------------


def test_an_offer_goes_to_the_best_and_is_audited(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer, last_assigned_at=MONDAY - timedelta(minutes=5))
    rostered(reviewer2, last_assigned_at=MONDAY - timedelta(minutes=30))
    case = queued()
    version = case.version

    profile = assignment_offer(escalation_id=case.pk, now=MONDAY)

    assert profile is not None and profile.user == reviewer2
    case.refresh_from_db()
    assert (case.status, case.assignee_id, case.offered_at) == (
        Status.ASSIGNED,
        reviewer2.pk,
        MONDAY,
    )
    assert case.offer_count == 1 and case.version == version + 1
    assert ReviewerProfile.objects.get(user=reviewer2).last_assigned_at == MONDAY
    event = AuditEvent.objects.get(escalation=case, verb="escalation.offered")
    assert event.actor_label == "routing"
    assert event.data == {"to": "bob", "affinity": False, "load": 0, "capacity": 3}
    # Offered once: a second attempt finds nothing queued and changes nothing.
    assert assignment_offer(escalation_id=case.pk, now=MONDAY) is None
    assert AuditEvent.objects.filter(escalation=case, verb="escalation.offered").count() == 1
    assert audit_verify()[1] is None


def test_a_run_offers_the_most_urgent_first_and_stops_at_capacity(
    queued: Callable[..., Escalation], reviewer: User
) -> None:
    rostered(reviewer, capacity=1)
    normal = queued(priority=3)
    urgent = queued(priority=2)

    assert assignment_run(now=MONDAY) == 1

    urgent.refresh_from_db()
    normal.refresh_from_db()
    assert (urgent.status, urgent.assignee_id) == (Status.ASSIGNED, reviewer.pk)
    assert (normal.status, normal.assignee_id) == (Status.QUEUED, None)


def test_an_offer_not_accepted_in_time_moves_on_and_never_comes_back(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    console_open = MONDAY + 3 * WINDOW  # both keep their console open throughout
    rostered(reviewer, seen=console_open)
    rostered(reviewer2, seen=console_open, last_assigned_at=MONDAY - timedelta(hours=1))
    case = queued()
    assert assignment_offer(escalation_id=case.pk, now=MONDAY).user == reviewer

    assert assignment_expire_offers(now=MONDAY + WINDOW - timedelta(seconds=1)) == 0
    case.refresh_from_db()
    assert case.assignee_id == reviewer.pk

    first_expiry = MONDAY + WINDOW + timedelta(seconds=1)
    assert assignment_expire_offers(now=first_expiry) == 1
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == (Status.ASSIGNED, reviewer2.pk)
    assert case.declined_by == [reviewer.pk] and case.offer_count == 2
    verbs = list(
        AuditEvent.objects.filter(escalation=case, verb__startswith="escalation.o").values_list(
            "verb", "data"
        )
    )
    assert verbs == [
        ("escalation.offered", {"to": "ann", "affinity": False, "load": 0, "capacity": 3}),
        ("escalation.offer_expired", {"from": "ann"}),
        ("escalation.offered", {"to": "bob", "affinity": False, "load": 0, "capacity": 3}),
    ]

    # Bob lets it lapse too: ann is still the best eligible person, but she had her chance.
    assert assignment_expire_offers(now=first_expiry + WINDOW + timedelta(seconds=1)) == 1
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == (Status.QUEUED, None)
    assert case.declined_by == [reviewer.pk, reviewer2.pk]
    assert assignment_run(now=first_expiry + WINDOW + timedelta(seconds=2)) == 0
    case.refresh_from_db()
    assert case.assignee_id is None
    assert audit_verify()[1] is None


def test_an_accepted_offer_never_expires(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer)
    rostered(reviewer2, last_assigned_at=MONDAY)
    case = queued()
    assignment_offer(escalation_id=case.pk, now=MONDAY)
    case.refresh_from_db()
    escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)

    assert assignment_expire_offers(now=MONDAY + 10 * WINDOW) == 0
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == (Status.IN_REVIEW, reviewer.pk)


# --- What the agent is told -------------------------------------------------------------------


def handoff_seen_by_agent(client: Client, case: Escalation) -> dict[str, Any]:
    response = client.get(f"{API}/escalations/{case.pk}")
    assert response.status_code == 200, response.content
    handoff = response.json()["handoff"]
    if handoff["eta"] is not None:
        handoff["eta"] = datetime.fromisoformat(handoff["eta"])
    return handoff


def test_warm_handoff_names_who_has_the_case(
    queued: Callable[..., Escalation], agent_client: Client, reviewer: User
) -> None:
    case = queued()
    rostered(reviewer)

    handoff = handoff_record(case, now=MONDAY)

    assert handoff.method == "warm"
    assert handoff_seen_by_agent(agent_client, case) == {
        "method": "warm",
        "eta": MONDAY,
        "queue_position": None,
        "assignee": "Ann",
    }


def test_queued_handoff_when_people_on_shift_are_busy_gives_position_and_eta(
    queued: Callable[..., Escalation], agent_client: Client, reviewer: User, reviewer2: User
) -> None:
    first, second = queued(), queued()
    rostered(reviewer, capacity=1)
    rostered(reviewer2, capacity=1, presence=Presence.AWAY)  # on shift, not taking offers
    hold(queued(), reviewer, Status.IN_REVIEW)

    handoff_record(first, now=MONDAY)
    handoff = handoff_record(second, now=MONDAY)

    per_case = timedelta(seconds=settings.BATON_AVERAGE_HANDLING_SECONDS)
    assert (handoff.method, handoff.queue_position) == ("queued", 2)
    assert handoff_seen_by_agent(agent_client, second) == {
        "method": "queued",
        "eta": MONDAY + per_case,  # two in the queue, two people on shift: one round
        "queue_position": 2,
        "assignee": None,
    }


def test_callback_when_nobody_with_the_skill_is_on_shift(
    queued: Callable[..., Escalation], agent_client: Client, reviewer: User, reviewer2: User
) -> None:
    case = queued(skills=["refunds"])
    rostered(reviewer, skills=["refunds"], shifts=[(WED, time(9), time(17))])
    rostered(reviewer2, skills=["billing"])  # on shift now, without the skill

    handoff = handoff_record(case, now=MONDAY)

    assert handoff.method == "callback"
    assert handoff_seen_by_agent(agent_client, case) == {
        "method": "callback",
        "eta": at(WED, 9),
        "queue_position": None,
        "assignee": None,
    }


def test_callback_when_the_queue_would_outlast_the_sla(
    queued: Callable[..., Escalation], reviewer: User
) -> None:
    case = queued(due=MONDAY + timedelta(seconds=settings.BATON_AVERAGE_HANDLING_SECONDS - 1))
    rostered(reviewer, capacity=1, shifts=[*MONDAY_DAY_SHIFT, (TUE, time(8), time(18))])
    hold(queued(), reviewer)

    handoff = handoff_record(case, now=MONDAY)

    assert (handoff.method, handoff.eta) == ("callback", at(TUE, 8))


# --- Taking from the queue and reassigning: capacity and permissions --------------------------


def test_taking_from_the_queue_beyond_capacity_is_refused(
    queued: Callable[..., Escalation], reviewer: User
) -> None:
    rostered(reviewer, capacity=1)
    held = queued()
    hold(held, reviewer, Status.IN_REVIEW)
    case = queued()

    with pytest.raises(Conflict, match="Finish one before taking another"):
        escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == (Status.QUEUED, None)
    assert not AuditEvent.objects.filter(escalation=case, verb="escalation.accepted").exists()


def test_accepting_an_offer_made_to_you_at_full_capacity_is_allowed(
    queued: Callable[..., Escalation], reviewer: User
) -> None:
    rostered(reviewer, capacity=1)
    case = queued()
    assert assignment_offer(escalation_id=case.pk, now=MONDAY).user == reviewer
    case.refresh_from_db()

    accepted = escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)

    assert (accepted.status, accepted.assignee_id) == (Status.IN_REVIEW, reviewer.pk)


def test_taking_from_the_queue_needs_the_skills(
    queued: Callable[..., Escalation], reviewer: User
) -> None:
    rostered(reviewer, skills=["billing"])
    case = queued(skills=["refunds"])

    with pytest.raises(Forbidden, match="refunds"):
        escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)


def test_nobody_accepts_a_case_offered_to_someone_else(
    queued: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer)
    rostered(reviewer2)
    case = queued()
    hold(case, reviewer)
    case.refresh_from_db()

    with pytest.raises(Forbidden, match="Ann holds this case"):
        escalation_accept(escalation_id=case.pk, reviewer=reviewer2, version=case.version)


def test_reassigning_respects_the_new_holders_capacity(
    queued: Callable[..., Escalation], supervisor: User, reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer)
    rostered(reviewer2, capacity=1)
    case = queued()
    hold(case, reviewer, Status.IN_REVIEW)
    hold(queued(), reviewer2)
    case.refresh_from_db()

    with pytest.raises(Conflict, match="1 of 1"):
        escalation_reassign(
            escalation_id=case.pk,
            supervisor=supervisor,
            to_user=reviewer2,
            reason="ann is off sick",
            version=case.version,
        )
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == (Status.IN_REVIEW, reviewer.pk)
    assert not AuditEvent.objects.filter(verb="escalation.reassigned").exists()


def test_a_supervisor_reassigns_to_someone_with_room(
    queued: Callable[..., Escalation], supervisor: User, reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer)
    rostered(reviewer2, capacity=1)
    case = queued()
    hold(case, reviewer, Status.IN_REVIEW)
    case.refresh_from_db()

    moved = escalation_reassign(
        escalation_id=case.pk,
        supervisor=supervisor,
        to_user=reviewer2,
        reason="ann is off sick",
        version=case.version,
    )

    assert (moved.status, moved.assignee_id, moved.accepted_at) == (
        Status.ASSIGNED,
        reviewer2.pk,
        None,
    )
    event = AuditEvent.objects.get(verb="escalation.reassigned")
    assert event.data == {"from": "ann", "to": "bob", "reason": "ann is off sick"}
    with pytest.raises(Conflict, match="changed since you looked"):
        escalation_reassign(
            escalation_id=case.pk,
            supervisor=supervisor,
            to_user=None,
            reason="again",
            version=case.version,  # the version before the move
        )


def test_only_supervisors_reassign_and_only_to_people_who_work_cases(
    queued: Callable[..., Escalation],
    supervisor: User,
    reviewer: User,
    reviewer2: User,
    nobody: User,
) -> None:
    case = queued()

    with pytest.raises(Forbidden):
        escalation_reassign(
            escalation_id=case.pk,
            supervisor=reviewer,
            to_user=reviewer2,
            reason="I'd rather not",
            version=case.version,
        )
    with pytest.raises(InvalidInput, match="cannot work cases"):
        escalation_reassign(
            escalation_id=case.pk,
            supervisor=supervisor,
            to_user=nobody,
            reason="try",
            version=case.version,
        )
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == (Status.QUEUED, None)


def test_back_to_the_queue_is_never_offered_straight_back_to_the_previous_holder(
    queued: Callable[..., Escalation], supervisor: User, reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer)
    rostered(reviewer2)
    case = queued()
    hold(case, reviewer, Status.IN_REVIEW)
    case.refresh_from_db()

    escalation_reassign(
        escalation_id=case.pk,
        supervisor=supervisor,
        to_user=None,
        reason="ann is swamped",
        version=case.version,
    )
    offered_to = assignment_offer(escalation_id=case.pk, now=MONDAY)
    assert offered_to is not None and offered_to.user == reviewer2


def test_the_case_language_is_matched_by_its_primary_subtag(
    agent: Integration, review_type: Any, reviewer: User
) -> None:
    from escalations.services import escalation_ingest

    package = HandoffIn.model_validate(
        case_package(77, customer={"id": "c77", "name": "Gwen", "language": "EN-gb"})
    )
    case = escalation_ingest(integration=agent, package=package).escalation
    assert case.language == "en"
    profile = rostered(reviewer, languages=["en"])
    assert qualified(profile, case)
