"""The escalation policy of DESIGN §3 as a pure function.

`policy_evaluate` looks at a package, the task type and rules in force and what the
database knows of the customer's recent escalations, and says how serious the case is:
the effective level, the priority, every trigger with a specific detail, and what the
agent should do. It reads nothing and writes nothing, so the API's `/evaluate`, ingest
and the property tests all share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from escalations.schemas import PackageBase

LEVEL_NAMES = {1: "L1 autonomous", 2: "L2 draft & review", 3: "L3 flag & stop", 4: "L4 alert"}
INSTRUCTIONS = {1: "proceed", 2: "wait", 3: "stop", 4: "stop"}
HIGH_VALUE_TIERS = {"enterprise", "vip", "platinum", "premium", "strategic", "high-value"}
HIGH_VALUE_FLAGS = {"high-value account", "high value account", "vip"}
SENTIMENT_TURNS = 3  # the customer's latest turns that make up "current" sentiment
SENTIMENT_DROP = 0.6  # a fall this large from the conversation's start is "falling sharply"


@dataclass(frozen=True)
class TaskTypePolicy:
    slug: str
    level: int
    autonomy_threshold: float
    review_threshold: float
    sentiment_threshold: float
    default_priority: int
    sample_rate: float
    version: int = 1
    required_skills: tuple[str, ...] = ()


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class RulePolicy:
    code: str
    name: str
    level: int | None = None
    priority: int | None = None
    skill: str = ""
    hard: bool = False
    keywords: tuple[str, ...] = ()
    pattern: str = ""
    conditions: tuple[Condition, ...] = ()
    action_names: tuple[str, ...] = ()
    version: int = 1


@dataclass(frozen=True)
class Trigger:
    code: str
    detail: str
    level: int
    priority_raise: bool = False
    rule: str | None = None
    hard: bool = False
    skill: str | None = None
    priority: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "detail": self.detail,
            "level": self.level,
            "priority_raise": self.priority_raise,
            "rule": self.rule,
            "hard": self.hard,
            "skill": self.skill,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class PolicyDecision:
    level: int
    priority: int
    triggers: tuple[Trigger, ...]
    review_after: bool
    required_skills: tuple[str, ...] = field(default_factory=tuple)

    @property
    def instruction(self) -> str:
        return INSTRUCTIONS[self.level]

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level]


@dataclass(frozen=True)
class CustomerContext:
    """What Baton's records add: the customer's escalations in the recent window."""

    recent_escalations: int = 0
    window_hours: int = 72
    repeat_limit: int = 3
    attempts_limit: int = 3


# --- Explicit requests for a person --------------------------------------------------------

_PERSON = (
    r"(?:a\s+|an\s+|the\s+|some\s+|your\s+|real\s+|actual\s+|live\s+)*"
    r"(?:human(?:\s+being|\s+agent)?|person|people|someone|somebody|agent|representative|rep|"
    r"operator|manager|supervisor|staff(?:\s+member)?|customer\s+service|support\s+team|"
    r"advisor|adviser)"
)
# Stricter for "I need …" / "get me …", where "someone" usually means a plumber, not a human.
_HUMAN = (
    r"(?:a\s+|an\s+|the\s+|your\s+|real\s+|actual\s+|live\s+)*"
    r"(?:human(?:\s+being|\s+agent)?|person|representative|operator|manager|supervisor|"
    r"(?:customer\s+service\s+|support\s+)?agent)"
)
_EXPLICIT_PATTERNS = [
    rf"\b(?:talk|speak|chat|get\s+through)\s+(?:to|with)\s+{_PERSON}\b",
    rf"\b(?:connect|transfer|put|pass)\s+me\s+(?:through\s+)?(?:to|with)\s+{_PERSON}\b",
    rf"\b(?:get|give|find)\s+me\s+{_HUMAN}\b",
    rf"\b(?:get|give|find|need|want)\s+{_HUMAN}\s+(?:on\s+the\s+(?:line|phone)|please|now)\b",
    rf"\b(?:i\s+(?:need|want|demand)|can\s+i\s+(?:get|have)|let\s+me\s+have)\s+{_HUMAN}\b",
    r"\b(?:real|live|actual)\s+(?:human|person|agent)\b",
    r"\bhuman\s+(?:agent|being|please|now)\b",
    r"\b(?:not|no)\s+(?:a\s+|another\s+)?(?:bot|robot|machine|ai|chatbot)(?=\s*(?:[.!?,;]|$))",
    r"\bstop\s+(?:the\s+)?(?:bot|robot|chatbot)\b",
    r"\b(?:escalate\s+(?:this|me|my\s+case)|speak\s+to\s+your\s+superior)\b",
    r"^\s*(?:human|agent|operator|representative)[\s!.]*$",
]
_EXPLICIT = re.compile("|".join(f"(?:{p})" for p in _EXPLICIT_PATTERNS), re.IGNORECASE)
_NEGATED = re.compile(
    r"\b(?:don'?t|do\s+not|no\s+need\s+to|won'?t|never)\s+(?:need\s+to\s+|want\s+to\s+)?"
    r"(?:talk|speak|chat|transfer|connect|need|want|get)\b",
    re.IGNORECASE,
)
# A negation only governs a request in its own clause: "I don't want a bot, let me talk to
# a human" is a request.
_CLAUSE_BREAK = re.compile(r"[.,;:!?]|\bbut\b|\bjust\b", re.IGNORECASE)


def explicit_request_in(text: str) -> str | None:
    """The phrase in which a customer asks for a person, or None."""
    for match in _EXPLICIT.finditer(text):
        breaks = list(_CLAUSE_BREAK.finditer(text, 0, match.start()))
        clause_start = breaks[-1].end() if breaks else 0
        if _NEGATED.search(text[clause_start : match.start() + 12]):
            continue
        return match.group(0).strip()
    return None


# --- Sentiment -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment_of(text: str) -> float:
    """VADER's compound score, -1 (hostile) .. 1 (delighted)."""
    return float(_analyzer().polarity_scores(text)["compound"])


def _customer_sentiments(package: PackageBase) -> list[tuple[float, bool]]:
    """(score, given by the agent?) for each customer turn, oldest first."""
    scores = []
    for turn in package.transcript:
        if turn.role != "customer":
            continue
        if turn.sentiment is not None:
            scores.append((turn.sentiment, True))
        else:
            scores.append((sentiment_of(turn.text), False))
    return scores


# --- Rules -----------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _keyword_regex(keyword: str) -> re.Pattern[str]:
    escaped = r"\s+".join(re.escape(part) for part in keyword.split())
    return re.compile(rf"(?<!\w){escaped}(?!\w)", re.IGNORECASE)


@lru_cache(maxsize=512)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _compare(actual: Any, op: str, expected: Any) -> bool:
    try:
        if op == "eq":
            return bool(actual == expected)
        if op == "ne":
            return bool(actual != expected)
        if op == "in":
            return actual in (expected if isinstance(expected, list) else [expected])
        if op == "contains":
            return str(expected).lower() in str(actual).lower()
        left, right = float(actual), float(expected)
    except (TypeError, ValueError):
        return False
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}.get(
        op, False
    )


def _rule_fires(
    rule: RulePolicy, texts: Sequence[tuple[str, str]], package: PackageBase
) -> str | None:
    """A specific detail when every test the rule sets holds, else None."""
    parts: list[str] = []
    if rule.keywords or rule.pattern:
        hit = None
        for where, text in texts:
            for keyword in rule.keywords:
                if _keyword_regex(keyword).search(text):
                    hit = f'"{keyword}" in the {where}'
                    break
            if hit is None and rule.pattern:
                found = _pattern_regex(rule.pattern).search(text)
                if found:
                    hit = f'pattern matched "{found.group(0)[:60]}" in the {where}'
            if hit:
                break
        if hit is None:
            return None
        parts.append(hit)
    for condition in rule.conditions:
        if condition.key not in package.attributes:
            return None
        actual = package.attributes[condition.key]
        if not _compare(actual, condition.op, condition.value):
            return None
        parts.append(f"{condition.key} {actual} {condition.op} {condition.value}")
    if rule.action_names:
        action = package.proposed_action.name if package.proposed_action else None
        if action not in rule.action_names:
            return None
        parts.append(f"proposed action {action}")
    return "; ".join(parts)


# --- The policy ------------------------------------------------------------------------------


def policy_evaluate(
    *,
    package: PackageBase,
    task_type: TaskTypePolicy,
    rules: Iterable[RulePolicy],
    customer: CustomerContext | None = None,
) -> PolicyDecision:
    customer = customer or CustomerContext()
    triggers: list[Trigger] = []
    review_after = False

    # low_confidence
    confidence = package.confidence
    if confidence < task_type.review_threshold:
        triggers.append(
            Trigger(
                "low_confidence",
                f"confidence {confidence:.0%} is below the review threshold "
                f"{task_type.review_threshold:.0%}: a human decides",
                level=2,
            )
        )
    elif confidence < task_type.autonomy_threshold:
        review_after = True
        triggers.append(
            Trigger(
                "low_confidence",
                f"confidence {confidence:.0%} is below the autonomy threshold "
                f"{task_type.autonomy_threshold:.0%}",
                level=1,
            )
        )

    # explicit_request: the customer's own words, never delayed
    for turn in package.transcript:
        if turn.role != "customer":
            continue
        phrase = explicit_request_in(turn.text)
        if phrase:
            triggers.append(
                Trigger(
                    "explicit_request",
                    f'the customer asked for a person: "{phrase}"',
                    level=3,
                    priority_raise=True,
                )
            )
            break

    # sentiment
    scores = _customer_sentiments(package)
    if scores:
        latest = scores[-SENTIMENT_TURNS:]
        current = sum(score for score, _ in latest) / len(latest)
        source = "as the agent measured" if all(g for _, g in latest) else "computed"
        start = scores[0][0]
        if current < task_type.sentiment_threshold:
            triggers.append(
                Trigger(
                    "sentiment",
                    f"customer sentiment {current:+.2f} over the last {len(latest)} turn(s) "
                    f"({source}) is below {task_type.sentiment_threshold:+.2f}",
                    level=2,
                    priority_raise=True,
                )
            )
        elif len(scores) > 1 and start - scores[-1][0] >= SENTIMENT_DROP:
            triggers.append(
                Trigger(
                    "sentiment",
                    f"customer sentiment fell sharply from {start:+.2f} to {scores[-1][0]:+.2f}",
                    level=2,
                    priority_raise=True,
                )
            )

    # policy_rule
    texts: list[tuple[str, str]] = [
        ("customer's words", t.text) for t in package.transcript if t.role == "customer"
    ]
    texts += [("transcript", t.text) for t in package.transcript if t.role != "customer"]
    if package.draft_response:
        texts.append(("draft response", package.draft_response))
    texts.append(("summary", package.summary))
    for rule in rules:
        detail = _rule_fires(rule, texts, package)
        if detail is None:
            continue
        triggers.append(
            Trigger(
                "policy_rule",
                f"{rule.name}: {detail}",
                level=rule.level or 1,
                rule=rule.code,
                hard=rule.hard,
                skill=rule.skill or None,
                priority=rule.priority,
            )
        )

    # repeated_failure
    attempts = package.process_state.attempts
    if attempts >= customer.attempts_limit:
        triggers.append(
            Trigger(
                "repeated_failure",
                f"the agent has tried {attempts} times (limit {customer.attempts_limit})",
                level=2,
                priority_raise=True,
            )
        )
    if customer.recent_escalations + 1 >= customer.repeat_limit:
        triggers.append(
            Trigger(
                "repeated_failure",
                f"this is the customer's escalation number {customer.recent_escalations + 1} "
                f"in {customer.window_hours} hours (limit {customer.repeat_limit})",
                level=2,
                priority_raise=True,
            )
        )

    # agent_requested / timeout: the agent's own word
    if package.agent_trigger == "agent_requested":
        triggers.append(Trigger("agent_requested", f"the agent asked: {package.reason}", level=2))
    elif package.agent_trigger == "timeout":
        triggers.append(
            Trigger("timeout", f"the agent reached its time limit: {package.reason}", level=2)
        )

    level = max([task_type.level, *(t.level for t in triggers)])
    priority = _priority(package=package, task_type=task_type, level=level, triggers=triggers)
    skills = tuple(
        dict.fromkeys([*task_type.required_skills, *(t.skill for t in triggers if t.skill)])
    )
    return PolicyDecision(
        level=level,
        priority=priority,
        triggers=tuple(triggers),
        review_after=review_after and level == 1,
        required_skills=skills,
    )


def _is_high_value(package: PackageBase) -> bool:
    tier = (package.customer.tier if package.customer else "").strip().lower()
    flags = {flag.strip().lower() for flag in package.flags}
    return tier in HIGH_VALUE_TIERS or bool(flags & HIGH_VALUE_FLAGS)


def _priority(
    *, package: PackageBase, task_type: TaskTypePolicy, level: int, triggers: Sequence[Trigger]
) -> int:
    """P1 is kept for the critical (L4, emergency rules); every other raise stops at P2."""
    if level == 4:
        return 1
    rule_priorities = [t.priority for t in triggers if t.priority is not None]
    priority = min([task_type.default_priority, *rule_priorities])
    raises = sum(1 for t in triggers if t.priority_raise) + (1 if _is_high_value(package) else 0)
    if raises and priority > 2:
        priority = max(2, priority - raises)
    return priority
