"""Roster reads (DESIGN §5): the people on it, their shifts in words, coverage against
demand, and the supervisor's live board. Supervisors only: checked here and in the views.

The roster is small (tens of people), so shifts are walked in Python; cases can be many,
so they are counted in SQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, Min, Prefetch, Q, QuerySet
from django.db.models.functions import ExtractHour, ExtractWeekDay
from django.utils import timezone

from escalations.errors import Forbidden, NotFound
from escalations.models import OPEN_STATUSES, Escalation, Status
from routing.assignment import HELD, is_online, loads, on_shift, qualified, shift_covers
from routing.models import (
    WEEKDAYS,
    Presence,
    ReviewerProfile,
    ReviewerSkill,
    Shift,
    Skill,
    Team,
)

NO_SKILL = ""  # the cases that need no skill: anyone on the roster may take them
NO_SKILL_NAME = "No skill needed"
DASH = "\u2013"  # between days and hours: Mon\u2013Fri, 09:00\u201317:00


def may_supervise(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and user.has_perm("escalations.reassign_escalation")
    )


def _require_supervisor(user: Any) -> None:
    if not may_supervise(user):
        raise Forbidden("Only supervisors see the roster and the board.")


def display_name(user: User) -> str:
    return user.get_full_name() or user.get_username()


# --- People --------------------------------------------------------------------------------


def _profiles() -> QuerySet[ReviewerProfile]:
    return (
        ReviewerProfile.objects.select_related("user", "team")
        .prefetch_related(
            Prefetch(
                "skills",
                queryset=ReviewerSkill.objects.select_related("skill").order_by("skill__name"),
            ),
            "shifts",
        )
        .filter(user__is_active=True)
        .order_by("user__username")
    )


def roster_profiles(*, user: Any) -> list[ReviewerProfile]:
    _require_supervisor(user)
    return list(_profiles())


def roster_profile(*, user: Any, profile_id: int) -> ReviewerProfile:
    _require_supervisor(user)
    profile = _profiles().filter(pk=profile_id).first()
    if profile is None:
        raise NotFound(f"No one with roster profile {profile_id}.")
    return profile


def teams() -> QuerySet[Team]:
    return Team.objects.annotate(member_count=Count("members")).order_by("name")


def skills() -> QuerySet[Skill]:
    return Skill.objects.annotate(holder_count=Count("reviewers")).order_by("name")


def workers() -> QuerySet[User]:
    """Everyone whose role lets them work cases (active users only)."""
    return User.objects.with_perm("escalations.work_queue").order_by("username")


def roster_candidates() -> QuerySet[User]:
    """People who may work cases but are not on the roster yet."""
    return workers().filter(reviewer_profile__isnull=True)


@dataclass(frozen=True)
class PresenceState:
    state: str  # online | away | offline | gone (marked online, but no console open)
    label: str


def presence_of(profile: ReviewerProfile, now: datetime) -> PresenceState:
    if profile.presence == Presence.ONLINE and not is_online(profile, now):
        return PresenceState("gone", "No console")
    return PresenceState(profile.presence, profile.get_presence_display())


# --- Shifts in words -----------------------------------------------------------------------

WEEK_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class ShiftLine:
    days: str  # "Mon\u2013Fri"
    hours: str  # "09:00-17:00"


def _minutes(moment: Any) -> int:
    return int(moment.hour * 60 + moment.minute)


def _span(shift: Shift) -> tuple[int, int]:
    """Minutes from its day's midnight; past 1440 for an overnight shift."""
    start = _minutes(shift.starts)
    return start, start + (_minutes(shift.ends) - start) % 1440


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def weekly_minutes(shifts: Iterable[Shift]) -> int:
    spans: list[tuple[int, int]] = []
    for shift in shifts:
        start, end = _span(shift)
        start, end = start + shift.weekday * 1440, end + shift.weekday * 1440
        if end > WEEK_MINUTES:  # Sunday night into Monday
            spans += [(start, WEEK_MINUTES), (0, end - WEEK_MINUTES)]
        else:
            spans.append((start, end))
    return sum(end - start for start, end in _merged(spans))


def _clock(minutes: int) -> str:
    if minutes > 1440:
        minutes -= 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days(run: list[int]) -> str:
    if len(run) >= 3:
        return f"{WEEKDAYS[run[0]]}{DASH}{WEEKDAYS[run[-1]]}"
    return ", ".join(WEEKDAYS[d] for d in run)


def shift_lines(shifts: Iterable[Shift]) -> list[ShiftLine]:
    """A person's week in a line or two: days with the same hours run together."""
    shifts = list(shifts)
    if not shifts:
        return []
    if weekly_minutes(shifts) == WEEK_MINUTES:
        return [ShiftLine("Every day", "around the clock")]
    by_day: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for shift in shifts:
        by_day[shift.weekday].append(_span(shift))
    hours = {
        day: ", ".join(f"{_clock(a)}{DASH}{_clock(b)}" for a, b in _merged(spans))
        for day, spans in by_day.items()
    }
    runs: list[tuple[str, list[int]]] = []  # consecutive days with the same hours
    for day in range(7):
        if day not in hours:
            continue
        if runs and runs[-1][0] == hours[day] and runs[-1][1][-1] == day - 1:
            runs[-1][1].append(day)
        else:
            runs.append((hours[day], [day]))
    lines: dict[str, list[str]] = {}
    for text, run in runs:
        lines.setdefault(text, []).append(_days(run))
    return [ShiftLine(", ".join(days), text) for text, days in lines.items()]


# --- Coverage: people on shift against demand, per skill and hour of the week -----------------


@dataclass
class CoverageCell:
    people: int = 0
    slots: int = 0  # cases the people on shift may hold at once (their capacities)
    demand: float = 0.0  # cases arriving in this hour, on average over the weeks looked at
    needed: float = 0.0  # slots that demand keeps busy (demand times the average handling time)

    @property
    def demand_text(self) -> str:
        return f"{round(self.demand, 2):g}"

    @property
    def gap(self) -> str:
        if self.demand and not self.people:
            return "nobody"
        if self.needed > self.slots:
            return "over"
        return ""


@dataclass
class SkillCoverage:
    slug: str
    name: str
    days: list[list[CoverageCell]]  # [weekday][hour], Monday first

    def _count(self, test: Any) -> int:
        return sum(1 for day in self.days for cell in day if test(cell))

    @property
    def hours_with_demand(self) -> int:
        return self._count(lambda c: c.demand > 0)

    @property
    def hours_nobody(self) -> int:
        return self._count(lambda c: c.gap == "nobody")

    @property
    def hours_over(self) -> int:
        return self._count(lambda c: c.gap == "over")

    @property
    def hours_staffed(self) -> int:
        return self._count(lambda c: c.people > 0)

    @property
    def gaps(self) -> int:
        return self.hours_nobody + self.hours_over

    @property
    def rows(self) -> list[tuple[str, list[CoverageCell]]]:
        return list(zip(WEEKDAYS, self.days, strict=True))


def _time_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def arrivals_by_hour(*, since: datetime, until: datetime) -> dict[str, dict[tuple[int, int], int]]:
    """Cases that came to people (not those the agent resolved on its own), counted per
    skill and (weekday 0 = Monday, hour) in Baton's time zone. Counted in SQL per set of
    skills; a case that needs two skills counts for each."""
    tz = _time_zone()
    rows = (
        Escalation.objects.filter(created_at__gte=since, created_at__lt=until)
        .exclude(status=Status.AUTO_RESOLVED)
        .annotate(
            weekday=ExtractWeekDay("created_at", tzinfo=tz),
            hour=ExtractHour("created_at", tzinfo=tz),
        )
        .values("required_skills", "weekday", "hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[str, dict[tuple[int, int], int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        slot = ((row["weekday"] + 5) % 7, row["hour"])  # SQL's week starts on Sunday = 1
        for slug in row["required_skills"] or [NO_SKILL]:
            counts[slug][slot] += row["n"]
    return counts


def _hours_on_shift(shifts: list[Shift]) -> list[tuple[int, int]]:
    """The hours of the week a person works: on shift at half past the hour, so an hour
    counts when they work most of it."""
    tz = _time_zone()
    monday = datetime(2024, 1, 1, tzinfo=tz)  # any Monday
    return [
        (day, hour)
        for day in range(7)
        for hour in range(24)
        if any(
            shift_covers(s, monday + timedelta(days=day, hours=hour, minutes=30)) for s in shifts
        )
    ]


def coverage(*, user: Any, now: datetime | None = None, weeks: int = 4) -> list[SkillCoverage]:
    """Per skill, every hour of the week: people on shift with the skill and their slots,
    against the cases that arrived in that hour over the last `weeks` weeks (per week).
    Language is left out: the grid is about hours and skills."""
    _require_supervisor(user)
    now = now or timezone.now()
    demand = arrivals_by_hour(since=now - timedelta(weeks=weeks), until=now)
    handling_hours = settings.BATON_AVERAGE_HANDLING_SECONDS / 3600
    profiles = list(_profiles())
    hours = {p.pk: _hours_on_shift(list(p.shifts.all())) for p in profiles}
    skills = [(s.slug, s.name) for s in Skill.objects.order_by("name")]
    known = {slug for slug, _ in skills}
    skills += [(slug, slug) for slug in sorted(demand) if slug not in known and slug != NO_SKILL]
    if NO_SKILL in demand:
        skills.insert(0, (NO_SKILL, NO_SKILL_NAME))
    result = []
    for slug, name in skills:
        days = [[CoverageCell() for _ in range(24)] for _ in range(7)]
        for profile in profiles:
            if slug != NO_SKILL and slug not in {rs.skill.slug for rs in profile.skills.all()}:
                continue
            for day, hour in hours[profile.pk]:
                days[day][hour].people += 1
                days[day][hour].slots += profile.capacity
        for (day, hour), count in demand.get(slug, {}).items():
            cell = days[day][hour]
            cell.demand = count / weeks
            cell.needed = cell.demand * handling_hours
        result.append(SkillCoverage(slug=slug, name=name, days=days))
    return result


# --- The supervisor's board ------------------------------------------------------------------


@dataclass
class PersonLoad:
    user: User
    profile: ReviewerProfile | None
    presence: PresenceState
    on_shift: bool
    load: int
    cases: list[Escalation] = field(default_factory=list)

    @property
    def name(self) -> str:
        return display_name(self.user)

    @property
    def capacity(self) -> int | None:
        return self.profile.capacity if self.profile else None

    @property
    def load_percent(self) -> int:
        if not self.capacity:
            return 0
        return min(100, round(100 * self.load / self.capacity))

    @property
    def full(self) -> bool:
        return self.capacity is not None and self.load >= self.capacity


@dataclass
class SkillQueue:
    slug: str
    name: str
    waiting: int = 0
    oldest: datetime | None = None
    by_priority: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    people: int = 0  # online and on shift with the skill
    free: int = 0  # their free slots


@dataclass
class Board:
    now: datetime
    alerts: list[Escalation]
    people: list[PersonLoad]
    queues: list[SkillQueue]
    cases: list[Escalation]
    open_count: int

    @property
    def more_cases(self) -> int:
        return self.open_count - len(self.cases)


def sla_state(case: Escalation, now: datetime) -> str:
    """breached | warning | "" for an open case."""
    accept_late = (
        case.accepted_at is None and case.sla_accept_due is not None and case.sla_accept_due < now
    )
    resolve_late = case.sla_resolve_due is not None and case.sla_resolve_due < now
    if case.sla_breached_at or accept_late or resolve_late:
        return "breached"
    return "warning" if case.sla_warned_at else ""


def _skill_names() -> dict[str, str]:
    return dict(Skill.objects.values_list("slug", "name"))


def _people(now: datetime) -> list[PersonLoad]:
    profiles = list(_profiles())
    held_cases = list(
        Escalation.objects.filter(status__in=HELD)
        .select_related("task_type", "assignee")
        .order_by("priority", "sla_resolve_due", "id")
    )
    by_holder: dict[int, list[Escalation]] = defaultdict(list)
    for case in held_cases:
        if case.assignee_id is not None:  # always, for a held case
            by_holder[case.assignee_id].append(case)
    people = [
        PersonLoad(
            user=p.user,
            profile=p,
            presence=presence_of(p, now),
            on_shift=on_shift(p.shifts.all(), now),
            load=len(by_holder.get(p.user_id, [])),
            cases=by_holder.get(p.user_id, []),
        )
        for p in profiles
    ]
    rostered = {p.user_id for p in profiles}
    # Someone off the roster (a supervisor, say) may hold cases too.
    for user_id, cases in by_holder.items():
        if user_id not in rostered:
            people.append(
                PersonLoad(
                    user=cases[0].assignee,  # type: ignore[arg-type]  # held: never None
                    profile=None,
                    presence=PresenceState("unrostered", "Not on the roster"),
                    on_shift=False,
                    load=len(cases),
                    cases=cases,
                )
            )
    people.sort(key=lambda p: (p.profile is None, p.name.lower()))
    return people


def _queues(people: list[PersonLoad], now: datetime) -> list[SkillQueue]:
    rows = (
        Escalation.objects.filter(status=Status.QUEUED)
        .values("required_skills", "priority")
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .order_by()
    )
    names = _skill_names()
    queues: dict[str, SkillQueue] = {}
    for row in rows:
        for slug in row["required_skills"] or [NO_SKILL]:
            queue = queues.setdefault(
                slug,
                SkillQueue(
                    slug=slug, name=NO_SKILL_NAME if slug == NO_SKILL else names.get(slug, slug)
                ),
            )
            queue.waiting += row["n"]
            queue.by_priority[min(max(row["priority"], 1), 4) - 1] += row["n"]
            if queue.oldest is None or row["oldest"] < queue.oldest:
                queue.oldest = row["oldest"]
    for queue in queues.values():
        for person in people:
            profile = person.profile
            if profile is None or person.presence.state != "online" or not person.on_shift:
                continue
            if queue.slug == NO_SKILL or queue.slug in {
                rs.skill.slug for rs in profile.skills.all()
            }:
                queue.people += 1
                queue.free += max(0, profile.capacity - person.load)
    return sorted(queues.values(), key=lambda q: (q.oldest or now, q.name))


def board_for(*, user: Any, now: datetime | None = None, case_limit: int = 100) -> Board:
    """Everything the live board shows: SLA trouble first, people and their load, the queue
    per skill, and the open cases (most urgent first)."""
    _require_supervisor(user)
    now = now or timezone.now()
    open_cases = Escalation.objects.filter(status__in=OPEN_STATUSES).select_related(
        "task_type", "customer", "assignee"
    )
    late = (
        Q(sla_breached_at__isnull=False)
        | Q(sla_warned_at__isnull=False)
        | Q(sla_resolve_due__lt=now)
        | Q(accepted_at__isnull=True, sla_accept_due__lt=now)
    )
    alerts = list(open_cases.filter(late).order_by("priority", "sla_resolve_due", "id")[:50])
    for case in alerts:
        case.sla_state = sla_state(case, now)  # type: ignore[attr-defined]
    alerts.sort(key=lambda c: c.sla_state != "breached")  # type: ignore[attr-defined]
    people = _people(now)
    cases = list(open_cases.order_by("priority", "sla_resolve_due", "id")[:case_limit])
    names = _skill_names()
    for case in cases:
        case.sla_state = sla_state(case, now)  # type: ignore[attr-defined]
        case.skill_names = [names.get(s, s) for s in case.required_skills or ()]  # type: ignore[attr-defined]
    return Board(
        now=now,
        alerts=alerts,
        people=people,
        queues=_queues(people, now),
        cases=cases,
        open_count=open_cases.count(),
    )


# --- Reassigning: who could take a case ---------------------------------------------------------


@dataclass(frozen=True)
class ReassignOption:
    user: User
    load: int
    capacity: int | None
    why_not: str  # "" when eligible now
    holds: bool

    @property
    def name(self) -> str:
        return display_name(self.user)

    @property
    def eligible(self) -> bool:
        return not self.why_not and not self.holds

    @property
    def disabled(self) -> bool:
        """Holding it already, or full: the service would refuse."""
        return self.holds or (self.capacity is not None and self.load >= self.capacity)


def _why_not(profile: ReviewerProfile | None, case: Escalation, load: int, now: datetime) -> str:
    """Why the person is not eligible for the case now (DESIGN §5), or ""."""
    if profile is None:
        return "not on the roster"
    if not is_online(profile, now):
        return presence_of(profile, now).label.lower()
    if not on_shift(profile.shifts.all(), now):
        return "off shift"
    if not qualified(profile, case):
        skills = {rs.skill.slug for rs in profile.skills.all()}
        missing = [s for s in case.required_skills or () if s not in skills]
        return f"lacks {', '.join(missing)}" if missing else f"does not speak {case.language}"
    if load >= profile.capacity:
        return "full"
    return ""


def board_case(*, user: Any, escalation_id: int) -> Escalation:
    _require_supervisor(user)
    case = (
        Escalation.objects.select_related("task_type", "customer", "assignee")
        .filter(pk=escalation_id)
        .first()
    )
    if case is None:
        raise NotFound(f"No case {escalation_id}.")
    return case


def reassign_options(
    *, user: Any, case: Escalation, now: datetime | None = None
) -> list[ReassignOption]:
    """Everyone with the role: eligible first (least loaded first), then the others with
    the reason they are not, so a supervisor can still choose them knowingly."""
    _require_supervisor(user)
    now = now or timezone.now()
    people = list(workers())
    profiles = {p.user_id: p for p in _profiles().filter(user__in=people)}
    held = loads(u.pk for u in people)
    options = []
    for person in people:
        profile = profiles.get(person.pk)
        load = held.get(person.pk, 0)
        options.append(
            ReassignOption(
                user=person,
                load=load,
                capacity=profile.capacity if profile else None,
                why_not=_why_not(profile, case, load, now),
                holds=person.pk == case.assignee_id,
            )
        )
    options.sort(
        key=lambda o: (
            not o.eligible,
            o.capacity is None,  # people off the roster last
            o.disabled,
            o.load / o.capacity if o.capacity else o.load,
            o.name.lower(),
        )
    )
    return options
