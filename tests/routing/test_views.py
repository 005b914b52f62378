"""Roster, coverage, the supervisor board and the presence switch, through real requests.

Permissions on every page and post; roster edits validated (errors next to the fields,
nothing written) and audited; coverage numbers against a week worked out by hand; the
board's load, queue and SLA alerts; reassigning from the board.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from escalations.audit import audit_verify
from escalations.decisions import escalation_accept
from escalations.models import AuditEvent, Escalation, Status
from routing.models import Presence, ReviewerProfile, ReviewerSkill, Shift, Skill, Team
from routing.selectors import coverage, shift_lines
from tests.people import make_user

pytestmark = pytest.mark.django_db

EVERY_DAY = [(day, time(0), time(12)) for day in range(7)] + [
    (day, time(12), time(0)) for day in range(7)
]


def client_for(user: User, **headers: Any) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def htmx_client(user: User) -> Client:
    return client_for(user, HTTP_HX_REQUEST="true")


def rostered(
    user: User,
    *,
    skills: dict[str, int] | Iterable[str] = (),
    languages: Iterable[str] = ("en",),
    capacity: int = 3,
    shifts: Iterable[tuple[int, time, time]] = EVERY_DAY,
    online: bool = True,
    team: Team | None = None,
) -> ReviewerProfile:
    """Put someone on the roster directly (the setting, not what is under test)."""
    profile = ReviewerProfile.objects.create(
        user=user,
        team=team,
        languages=list(languages),
        capacity=capacity,
        presence=Presence.ONLINE if online else Presence.OFFLINE,
        last_seen_at=timezone.now() if online else None,
    )
    levels = skills if isinstance(skills, dict) else dict.fromkeys(skills, 3)
    for slug, level in levels.items():
        skill, _ = Skill.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
        ReviewerSkill.objects.create(profile=profile, skill=skill, proficiency=level)
    for weekday, starts, ends in shifts:
        Shift.objects.create(profile=profile, weekday=weekday, starts=starts, ends=ends)
    return profile


def audit_verbs() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("verb", flat=True))


def field_error(body: str, field_id: str) -> str:
    """The error shown in the same field block as the input with this id."""
    block = re.search(
        rf'<div class="field[^"]*invalid[^"]*">(?:(?!<div class="field).)*?id="{field_id}"'
        rf'(?:(?!<div class="field).)*?<span class="field-error"[^>]*>([^<]*)</span>',
        body,
        re.S,
    )
    assert block, f"no error next to #{field_id}"
    return block.group(1)


# --- Permissions -------------------------------------------------------------------------------

PAGES = ["/roster/", "/roster/coverage/", "/board/", "/board/?move=1"]
POSTS = [
    "/roster/people/add",
    "/roster/people/{profile}/edit",
    "/roster/people/{profile}/shifts/add",
    "/roster/shifts/{shift}/remove",
    "/roster/skills/add",
    "/roster/teams/add",
    "/board/cases/{case}/reassign",
]


def test_reviewers_and_people_without_a_role_get_403_everywhere(
    reviewer: User, reviewer2: User, nobody: User, make_case: Callable[..., Escalation]
) -> None:
    profile = rostered(reviewer2, online=False)  # so the case stays queued
    shift = profile.shifts.first()
    case = make_case()
    ids = {"profile": profile.pk, "shift": shift.pk if shift else 0, "case": case.pk}
    before = audit_verbs()
    for user in (reviewer, nobody):
        client = client_for(user)
        for page in [*PAGES, f"/roster/people/{profile.pk}/"]:
            assert client.get(page).status_code == 403, page
        for post in POSTS:
            data = {"to": reviewer.pk, "reason": "mine now", "version": case.version}
            assert client.post(post.format(**ids), data).status_code == 403, post
    assert audit_verbs() == before
    assert Shift.objects.filter(pk=ids["shift"]).exists()
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == (Status.QUEUED, None)


def test_anonymous_users_are_sent_to_login() -> None:
    for page in PAGES:
        response = Client().get(page)
        assert response.status_code == 302 and response.url.startswith("/login/")


def test_supervisors_see_board_and_roster_in_the_top_bar_reviewers_do_not(
    supervisor: User, reviewer: User
) -> None:
    nav = re.compile(r'<nav aria-label="Main">(.*?)</nav>', re.S)
    body = client_for(supervisor).get("/").content.decode()
    links = nav.search(body).group(1)  # type: ignore[union-attr]
    assert 'href="/board/"' in links and 'href="/roster/"' in links
    body = client_for(reviewer).get("/").content.decode()
    links = nav.search(body).group(1)  # type: ignore[union-attr]
    assert "/board/" not in links and "/roster/" not in links
    for page in PAGES:
        assert client_for(supervisor).get(page).status_code == 200, page


# --- Roster edits ----------------------------------------------------------------------------


def test_adding_a_person_is_validated_and_audited(supervisor: User, reviewer: User) -> None:
    client = client_for(supervisor)
    body = client.get("/roster/").content.decode()
    assert f'<option value="{reviewer.pk}">' in body  # a role, not on the roster yet

    response = client.post(
        "/roster/people/add", {"user": reviewer.pk, "languages": "en, klingon!", "capacity": 0}
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "not a language code: klingon!" in field_error(body, "id_languages")
    assert "greater than or equal to 1" in field_error(body, "id_capacity")
    assert not ReviewerProfile.objects.exists()
    assert "roster.profile_added" not in audit_verbs()

    response = client.post(
        "/roster/people/add", {"user": reviewer.pk, "languages": "EN de", "capacity": 4}
    )
    profile = ReviewerProfile.objects.get(user=reviewer)
    assert response.status_code == 302 and response.url == f"/roster/people/{profile.pk}/"
    assert (profile.languages, profile.capacity) == (["en", "de"], 4)
    event = AuditEvent.objects.get(verb="roster.profile_added")
    assert event.actor_label == "sue"
    assert event.data == {
        "user": "ann",
        "team": None,
        "languages": ["en", "de"],
        "capacity": 4,
        "skills": {},
    }

    response = client.post("/roster/people/add", {"user": reviewer.pk, "capacity": 3})
    assert response.status_code == 422  # no longer a candidate: the form says so
    assert "Select a valid choice" in field_error(response.content.decode(), "id_user")
    assert audit_verify() == (AuditEvent.objects.count(), None)


def test_editing_skills_languages_team_capacity_is_validated_and_audited(
    supervisor: User, reviewer: User
) -> None:
    profile = rostered(reviewer, skills={"refunds": 2})
    Skill.objects.create(slug="billing", name="Billing")
    team = Team.objects.create(slug="care", name="Customer care")
    client = client_for(supervisor)
    page = client.get(f"/roster/people/{profile.pk}/").content.decode()
    assert 'name="skill__billing"' in page and 'name="skill__refunds"' in page

    bad = {
        "team": team.pk,
        "languages": "en, 42",
        "capacity": 51,
        "skill__refunds": 9,
        "skill__billing": 4,
    }
    response = client.post(f"/roster/people/{profile.pk}/edit", bad)
    assert response.status_code == 422
    body = response.content.decode()
    assert "Select a valid choice" in field_error(body, "id_skill__refunds")
    bad["skill__refunds"] = 5
    body = client.post(f"/roster/people/{profile.pk}/edit", bad).content.decode()
    assert "not a language code: 42" in field_error(body, "id_languages")
    assert "less than or equal to 50" in field_error(body, "id_capacity")
    profile.refresh_from_db()
    assert (profile.capacity, profile.team_id, profile.languages) == (3, None, ["en"])
    assert "roster.profile_changed" not in audit_verbs()

    good = {**bad, "languages": "en, fr", "capacity": 5, "skill__refunds": 4}
    response = client.post(f"/roster/people/{profile.pk}/edit", good)
    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.capacity, profile.team, profile.languages) == (5, team, ["en", "fr"])
    assert dict(profile.skills.values_list("skill__slug", "proficiency")) == {
        "refunds": 4,
        "billing": 4,
    }
    event = AuditEvent.objects.get(verb="roster.profile_changed")
    assert event.data["changed"] == {
        "team": {"from": None, "to": "care"},
        "languages": {"from": ["en"], "to": ["en", "fr"]},
        "capacity": {"from": 3, "to": 5},
        "skills": {"from": {"refunds": 2}, "to": {"billing": 4, "refunds": 4}},
    }

    # A skill left at "—" is taken away; saving again unchanged records nothing.
    client.post(f"/roster/people/{profile.pk}/edit", {**good, "skill__billing": ""})
    assert list(profile.skills.values_list("skill__slug", flat=True)) == ["refunds"]
    client.post(f"/roster/people/{profile.pk}/edit", {**good, "skill__billing": ""})
    assert audit_verbs().count("roster.profile_changed") == 2
    assert audit_verify() == (AuditEvent.objects.count(), None)


def test_shifts_are_added_for_several_days_refused_when_they_overlap_and_removed(
    supervisor: User, reviewer: User
) -> None:
    profile = rostered(reviewer, shifts=())
    client = client_for(supervisor)
    add = f"/roster/people/{profile.pk}/shifts/add"

    response = client.post(add, {"weekday": "weekdays", "starts": "09:00", "ends": "17:00"})
    assert response.status_code == 302
    assert [(s.weekday, s.starts, s.ends) for s in profile.shifts.order_by("weekday")] == [
        (day, time(9), time(17)) for day in range(5)
    ]
    event = AuditEvent.objects.get(verb="roster.shifts_added")
    assert len(event.data["shifts"]) == 5 and event.data["user"] == "ann"

    overnight = {"weekday": "6", "starts": "22:00", "ends": "06:00"}  # Sunday into Monday
    assert client.post(add, overnight).status_code == 302
    response = client.post(add, {"weekday": "0", "starts": "05:00", "ends": "08:00"})
    assert response.status_code == 422
    assert "overlaps Sun 22:00\u201306:00" in field_error(response.content.decode(), "id_starts")
    response = client.post(add, {"weekday": "2", "starts": "16:00", "ends": "18:00"})
    assert "overlaps Wed 09:00\u201317:00" in field_error(response.content.decode(), "id_starts")
    response = client.post(add, {"weekday": "3", "starts": "12:00", "ends": "12:00"})
    assert "must not start and end at the same time" in field_error(
        response.content.decode(), "id_ends"
    )
    response = client.post(add, {"weekday": "3", "starts": "25:00", "ends": "12:00"})
    assert "Enter a valid time" in field_error(response.content.decode(), "id_starts")
    assert profile.shifts.count() == 6

    page = client.get(f"/roster/people/{profile.pk}/").content.decode()
    assert "Mon\u2013Fri</b> 09:00\u201317:00" in page and "Sun</b> 22:00\u201306:00" in page

    wednesday = profile.shifts.get(weekday=2)
    response = client.post(f"/roster/shifts/{wednesday.pk}/remove")
    assert response.status_code == 302 and response.url == f"/roster/people/{profile.pk}/"
    assert not Shift.objects.filter(pk=wednesday.pk).exists()
    removed = AuditEvent.objects.get(verb="roster.shift_removed")
    assert removed.data == {"user": "ann", "weekday": 2, "starts": "09:00", "ends": "17:00"}
    assert client.post(f"/roster/shifts/{wednesday.pk}/remove").status_code == 404


def test_skills_and_teams_are_added_with_their_errors_next_to_the_fields(
    supervisor: User,
) -> None:
    client = client_for(supervisor)
    response = client.post(
        "/roster/skills/add", {"skill-name": "Home services", "skill-slug": "home_services"}
    )
    assert response.status_code == 302
    assert Skill.objects.get(slug="home_services").name == "Home services"
    response = client.post(
        "/roster/skills/add", {"skill-name": "Again", "skill-slug": "home_services"}
    )
    assert response.status_code == 422
    assert "exists" in field_error(response.content.decode(), "id_skill-slug")
    response = client.post("/roster/teams/add", {"team-name": "Night", "team-slug": "night shift!"})
    assert response.status_code == 422
    assert "slug" in field_error(response.content.decode(), "id_team-slug").lower()
    assert (
        client.post("/roster/teams/add", {"team-name": "Night", "team-slug": "night"}).status_code
        == 302
    )
    assert [e.verb for e in AuditEvent.objects.order_by("seq")] == [
        "roster.skill_added",
        "roster.team_added",
    ]
    body = client.get("/roster/").content.decode()
    assert "Home services <b>0</b>" in body and "Night <b>0</b>" in body


def test_the_roster_lists_everyone_with_skills_languages_capacity_shifts_presence(
    supervisor: User, reviewer: User, reviewer2: User
) -> None:
    team = Team.objects.create(slug="care", name="Customer care")
    rostered(reviewer, skills={"refunds": 5}, languages=("en", "de"), capacity=4, team=team)
    rostered(
        reviewer2,
        skills=(),
        shifts=[(day, time(9), time(17)) for day in range(5)],
        online=False,
    )
    body = client_for(supervisor).get("/roster/").content.decode()
    ann = re.search(r'<tr id="person-\d+">\s*<td><a[^>]*>Ann</a>.*?</tr>', body, re.S).group(0)  # type: ignore[union-attr]
    for text in (
        "Customer care",
        "Refunds <b>5</b>",
        "en, de",
        ">4<",
        "around the clock",
        ">168<",
        "Online",
    ):
        assert text in ann, text
    bob = re.search(r'<tr id="person-\d+">\s*<td><a[^>]*>Bob</a>.*?</tr>', body, re.S).group(0)  # type: ignore[union-attr]
    for text in ("no skills", "Mon\u2013Fri</span> 09:00\u201317:00", ">40<", "Offline"):
        assert text in bob, text


def test_shift_lines_say_a_week_in_words() -> None:
    def lines(*shifts: tuple[int, time, time]) -> list[tuple[str, str]]:
        rows = [Shift(weekday=d, starts=s, ends=e) for d, s, e in shifts]
        return [(line.days, line.hours) for line in shift_lines(rows)]

    assert lines(*[(d, time(9), time(17)) for d in range(5)]) == [
        ("Mon\u2013Fri", "09:00\u201317:00")
    ]
    assert lines((0, time(9), time(12)), (0, time(12), time(17)), (2, time(9), time(17))) == [
        ("Mon, Wed", "09:00\u201317:00")
    ]
    assert lines((4, time(22), time(6)), (5, time(10), time(14))) == [
        ("Fri", "22:00\u201306:00"),
        ("Sat", "10:00\u201314:00"),
    ]
    assert lines(*EVERY_DAY) == [("Every day", "around the clock")]
    assert lines() == []


# --- Coverage ------------------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
# Wednesday 29 January 2025, noon in Berlin (CET, UTC+1): the four weeks looked at run
# from Wednesday 1 January, noon.
NOW = datetime(2025, 1, 29, 12, 0, tzinfo=BERLIN)


def arrived(case: Escalation, moment: datetime, *, skills: list[str], **fields: Any) -> None:
    Escalation.objects.filter(pk=case.pk).update(
        created_at=moment, required_skills=skills, **fields
    )


def test_coverage_counts_people_on_shift_against_arrivals_per_hour_of_the_week(
    settings: Any,
    supervisor: User,
    reviewer: User,
    reviewer2: User,
    make_case: Callable[..., Escalation],
) -> None:
    """Worked out by hand. In Berlin time, with cases held ten hours on average (so an
    hour's arrivals of 0.5 a week keep 5 slots busy):

    refunds  Mon 09: Ann (3 slots)            1 case in 4 weeks → 0.25/h, needs 2.5: fine
             Mon 10: Ann + Bob (3 + 2 slots)  3 cases → 0.75/h, needs 7.5 > 5: over capacity
             Mon 11: Ann (Bob left at 11:00)  1 case (refunds and billing) → 0.25/h
             Mon 00: nobody                   1 case at Sunday 23:30 UTC → Monday 00:30 here
             Tue 14: nobody                   1 case → 0.25/h: nobody on shift
    billing  Mon 09-16: Carl                  the refunds-and-billing case → Mon 11 0.25/h
    Not counted: a case five weeks old, one the agent resolved itself, one from the future.
    """
    settings.TIME_ZONE = "Europe/Berlin"
    settings.BATON_AVERAGE_HANDLING_SECONDS = 36_000
    carl = make_user("carl", "reviewer")
    rostered(reviewer, skills=["refunds"], capacity=3, shifts=[(0, time(9), time(12))])
    rostered(reviewer2, skills=["refunds"], capacity=2, shifts=[(0, time(10), time(11))])
    rostered(carl, skills=["billing"], capacity=4, shifts=[(0, time(9), time(17))])
    monday = datetime(2025, 1, 27, tzinfo=BERLIN)  # the Monday of NOW's week
    week = timedelta(weeks=1)
    refunds = ["refunds"]
    arrived(make_case(), monday + timedelta(hours=9, minutes=15) - week, skills=refunds)
    for n, minute in enumerate((0, 20, 59)):
        arrived(
            make_case(), monday + timedelta(hours=10, minutes=minute) - n * week, skills=refunds
        )
    arrived(
        make_case(),
        monday + timedelta(hours=11, minutes=30) - 2 * week,
        skills=["refunds", "billing"],
    )
    sunday_utc = datetime(2025, 1, 19, 23, 30, tzinfo=ZoneInfo("UTC"))
    arrived(make_case(), sunday_utc, skills=refunds)
    arrived(make_case(), monday + timedelta(days=1, hours=14, minutes=5) - 3 * week, skills=refunds)
    arrived(make_case(), monday + timedelta(hours=9, minutes=30) - 5 * week, skills=refunds)
    arrived(
        make_case(),
        monday + timedelta(hours=9, minutes=30) - 2 * week,
        skills=refunds,
        status=Status.AUTO_RESOLVED,
    )
    arrived(make_case(), NOW + timedelta(hours=1), skills=refunds)

    grid = {row.slug: row for row in coverage(user=supervisor, now=NOW)}
    assert list(grid) == ["billing", "refunds"]
    MON, TUE = 0, 1

    def cell(slug: str, day: int, hour: int) -> tuple[int, int, float, str]:
        c = grid[slug].days[day][hour]
        return c.people, c.slots, c.demand, c.gap

    assert cell("refunds", MON, 9) == (1, 3, 0.25, "")
    assert cell("refunds", MON, 10) == (2, 5, 0.75, "over")
    assert grid["refunds"].days[MON][10].needed == pytest.approx(7.5)
    assert cell("refunds", MON, 11) == (1, 3, 0.25, "")
    assert cell("refunds", MON, 0) == (0, 0, 0.25, "nobody")
    assert cell("refunds", TUE, 14) == (0, 0, 0.25, "nobody")
    assert cell("refunds", MON, 12) == (0, 0, 0.0, "")
    assert cell("billing", MON, 11) == (1, 4, 0.25, "")
    assert cell("billing", MON, 16) == (1, 4, 0.0, "")
    assert cell("billing", MON, 17) == (0, 0, 0.0, "")
    refund_row = grid["refunds"]
    assert (refund_row.hours_staffed, refund_row.hours_with_demand) == (3, 5)
    assert (refund_row.hours_nobody, refund_row.hours_over) == (2, 1)
    assert sum(c.demand for day in refund_row.days for c in day) == 7 / 4

    with pytest.raises(Exception, match="supervisors"):
        coverage(user=reviewer, now=NOW)


def test_the_coverage_page_marks_gaps(
    supervisor: User, reviewer: User, make_case: Callable[..., Escalation]
) -> None:
    rostered(reviewer, skills=["refunds"], shifts=())
    case = make_case()
    Escalation.objects.filter(pk=case.pk).update(required_skills=["refunds"])
    body = client_for(supervisor).get("/roster/coverage/?skill=refunds").content.decode()
    assert "Refunds: the week" in body
    assert len(re.findall(r'<td class="gap-nobody( now)?"', body)) == 1
    assert '<span class="gap-count nobody">1</span>' in body


# --- The board ------------------------------------------------------------------------------------


def test_the_board_shows_load_against_capacity_the_queue_per_skill_and_sla_trouble(
    supervisor: User, reviewer: User, reviewer2: User, make_case: Callable[..., Escalation]
) -> None:
    rostered(reviewer, skills=["refunds"], capacity=3, online=False)
    rostered(reviewer2, skills=["refunds"], capacity=2, online=False)
    held = [make_case(), make_case()]
    for case in held:
        escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    waiting = [make_case(), make_case(), make_case()]
    Escalation.objects.filter(pk__in=[c.pk for c in waiting[:2]]).update(
        required_skills=["refunds"]
    )
    now = timezone.now()
    Escalation.objects.filter(pk=waiting[0].pk).update(
        sla_breached_at=now, created_at=now - timedelta(hours=2)
    )
    Escalation.objects.filter(pk=waiting[1].pk).update(sla_warned_at=now)

    body = client_for(supervisor).get("/board/").content.decode()
    ann = re.search(rf'<tr id="load-{reviewer.pk}">.*?</tr>', body, re.S).group(0)  # type: ignore[union-attr]
    assert "2/3" in ann and 'aria-valuenow="2"' in ann and "width: 67%" in ann
    assert f"#{held[0].pk} " in ann and f"#{held[1].pk} " in ann and "Offline" in ann
    bob = re.search(rf'<tr id="load-{reviewer2.pk}">.*?</tr>', body, re.S).group(0)  # type: ignore[union-attr]
    assert "0/2" in bob

    refunds = re.search(r'<tr id="queue-refunds">.*?</tr>', body, re.S).group(0)  # type: ignore[union-attr]
    assert "<b>2</b>" in refunds and "0 (0)" in refunds  # nobody online to take them
    anything = re.search(r'<tr id="queue-any">.*?</tr>', body, re.S).group(0)  # type: ignore[union-attr]
    assert "<b>1</b>" in anything

    alerts = re.search(
        r'<section class="card sla-alerts has-alerts".*?</section>', body, re.S
    ).group(0)  # type: ignore[union-attr]
    assert alerts.index(f'id="alert-{waiting[0].pk}"') < alerts.index(f'id="alert-{waiting[1].pk}"')
    assert "Breached" in alerts and "Warning" in alerts
    assert f'id="alert-{waiting[2].pk}"' not in alerts
    for case in [*held, *waiting]:
        assert f'id="open-{case.pk}"' in body


def test_the_move_panel_lists_people_with_load_and_eligibility(
    supervisor: User, reviewer: User, reviewer2: User, make_case: Callable[..., Escalation]
) -> None:
    full, case = make_case(), make_case()  # before anyone is online: both queued
    escalation_accept(escalation_id=full.pk, reviewer=reviewer, version=full.version)
    Escalation.objects.filter(pk=case.pk).update(required_skills=["refunds"])
    carl = make_user("carl", "reviewer")
    rostered(reviewer, skills=["refunds"], capacity=1)
    rostered(reviewer2, skills=["refunds"], capacity=3, online=False)
    rostered(carl, skills=["billing"], capacity=3)

    body = client_for(supervisor).get(f"/board/?move={case.pk}").content.decode()
    select = re.search(r'<select id="reassign-to".*?</select>', body, re.S).group(0)  # type: ignore[union-attr]
    options = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<option value="\d+"[^>]*>(\w+) —[^<]*', select)
    }
    assert "disabled" in options["Ann"] and "1/1 · full" in options["Ann"]
    assert "0/3 · offline" in options["Bob"]
    assert "0/3 · lacks refunds" in options["Carl"]
    assert "Sue" in options and "not on the roster" in options["Sue"]
    assert 'value="queue" disabled' in select  # already queued
    assert re.search(r'<optgroup label="Not eligible now">.*Bob.*Carl.*Sue', select, re.S)

    partial = htmx_client(supervisor).get(f"/board/?move={case.pk}").content.decode()
    assert partial.lstrip().startswith('<section id="reassign"') and "<html" not in partial


def test_a_supervisor_reassigns_from_the_board_with_a_reason(
    supervisor: User, reviewer: User, reviewer2: User, make_case: Callable[..., Escalation]
) -> None:
    rostered(reviewer)
    rostered(reviewer2)
    case = make_case()
    escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    case.refresh_from_db()
    client = client_for(supervisor)
    url = f"/board/cases/{case.pk}/reassign"

    response = client.post(url, {"to": "", "reason": "Bob, please", "version": case.version})
    assert response.status_code == 422
    assert "choose a person or the queue" in response.content.decode()
    response = client.post(url, {"to": reviewer2.pk, "reason": "  ", "version": case.version})
    assert response.status_code == 422
    body = response.content.decode()
    assert re.search(r'id="reassign-reason"[^>]*aria-invalid="true"', body)
    assert '<span class="field-error">required</span>' in body
    assert 'id="board-live"' in body  # the whole board, with the panel open
    response = client.post(url, {"to": reviewer2.pk, "reason": "Ann is on a call", "version": 1})
    assert response.status_code == 409 and "changed since you looked" in response.content.decode()
    case.refresh_from_db()
    assert case.assignee == reviewer and case.status == Status.IN_REVIEW

    response = client.post(
        url, {"to": reviewer2.pk, "reason": "Ann is on a call", "version": case.version}
    )
    assert response.status_code == 302 and response.url == "/board/"
    case.refresh_from_db()
    assert (case.assignee, case.status) == (reviewer2, Status.ASSIGNED)
    event = AuditEvent.objects.filter(verb="escalation.reassigned").get()
    assert event.actor_label == "sue"
    assert event.data == {"from": "ann", "to": "bob", "reason": "Ann is on a call"}

    # With htmx: the panel closes and a toast says where the case went; back to the queue.
    response = htmx_client(supervisor).post(
        url, {"to": "queue", "reason": "Bob went home", "version": case.version}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert f"Case #{case.pk} moved to the queue." in body and 'id="reassign"' in body
    case.refresh_from_db()
    assert (case.assignee, case.status) == (None, Status.QUEUED)


def test_a_reviewer_cannot_reassign(
    reviewer: User, reviewer2: User, make_case: Callable[..., Escalation]
) -> None:
    case = make_case()
    response = client_for(reviewer).post(
        f"/board/cases/{case.pk}/reassign",
        {"to": reviewer.pk, "reason": "I want it", "version": case.version},
    )
    assert response.status_code == 403
    case.refresh_from_db()
    assert (case.assignee, case.status) == (None, Status.QUEUED)
    assert not AuditEvent.objects.filter(verb="escalation.reassigned").exists()


# --- Presence ------------------------------------------------------------------------------------


def test_the_presence_switch_shows_the_state_and_works_without_javascript(
    reviewer: User, reviewer2: User
) -> None:
    rostered(reviewer)
    client = client_for(reviewer)
    body = client.get("/?view=queue").content.decode()
    switch = re.search(r'<form id="presence-switch".*?</form>', body, re.S).group(0)  # type: ignore[union-attr]
    assert re.search(r'value="online"[^>]*aria-pressed="true"', switch)
    assert 'name="next" value="/?view=queue"' in switch

    response = client.post("/presence", {"presence": "away", "next": "/?view=queue"})
    assert response.status_code == 302 and response.url == "/?view=queue"
    profile = ReviewerProfile.objects.get(user=reviewer)
    assert profile.presence == Presence.AWAY
    event = AuditEvent.objects.get(verb="roster.presence")
    assert event.data == {"from": "online", "to": "away"}
    body = client.get("/").content.decode()
    assert re.search(r'value="away"[^>]*aria-pressed="true"', body)

    evil = client.post("/presence", {"presence": "offline", "next": "https://evil.example/"})
    assert evil.url == "/"
    response = htmx_client(reviewer).post("/presence", {"presence": "online"})
    assert response.status_code == 200
    assert response.content.decode().startswith('<form id="presence-switch"')
    response = htmx_client(reviewer).post("/presence", {"presence": "asleep"})
    assert response.status_code == 422 and 'id="presence-switch"' in response.content.decode()

    # Off the roster: no switch, and nothing to switch.
    assert 'id="presence-switch"' not in client_for(reviewer2).get("/").content.decode()
    assert client_for(reviewer2).post("/presence", {"presence": "away"}).status_code == 302
    assert not ReviewerProfile.objects.filter(user=reviewer2).exists()
