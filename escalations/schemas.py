"""The handoff package (DESIGN §2) and the agent API's answers, as pydantic schemas.

Unknown fields are refused rather than dropped, so a misspelt field name is an error the
agent sees at once, not context that silently never reaches the reviewer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import ConfigDict, Field, HttpUrl, UrlConstraints, field_validator, model_validator

Text = str
DecisionVerb = Literal["approve", "edit", "reject", "respond", "take_over", "escalate"]


def _refuse_unstorable(value: Any, where: str = "") -> None:
    """NUL characters and non-finite numbers cannot be stored (PostgreSQL text and JSON
    refuse them), so they are refused here, by field, instead of failing at the database."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where or 'text'} must not contain NUL characters")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'number'} must be a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(key, where)
            _refuse_unstorable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_unstorable(item, f"{where}[{index}]" if where else f"[{index}]")


class Strict(Schema):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def storable(cls, data: Any) -> Any:
        _refuse_unstorable(data)
        return data


EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
CallbackUrl = Annotated[HttpUrl, UrlConstraints(max_length=500)]


class TranscriptTurn(Strict):
    role: Literal["customer", "agent", "system", "tool"]
    text: str = Field(min_length=1, max_length=20_000)
    at: datetime | None = None
    sentiment: float | None = Field(default=None, ge=-1.0, le=1.0)

    @field_validator("at")
    @classmethod
    def in_utc(cls, value: datetime | None) -> datetime | None:
        """Stored in UTC; a time without an offset is taken as UTC."""
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        if not EARLIEST <= value <= LATEST:
            raise ValueError("must be between 1970 and 2200")
        return value.astimezone(UTC)


class CustomerRecord(Strict):
    id: str = Field(min_length=1, max_length=200)
    name: str = Field(default="", max_length=200)
    tier: str = Field(default="", max_length=60)
    language: str = Field(default="", max_length=16)
    profile: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list, max_length=500)


class Alternative(Strict):
    action: str = Field(min_length=1, max_length=200)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    why: str = Field(default="", max_length=5_000)


class Reasoning(Strict):
    rationale: str = Field(default="", max_length=20_000)
    alternatives: list[Alternative] = Field(default_factory=list, max_length=50)


class ProposedAction(Strict):
    name: str = Field(min_length=1, max_length=200)
    args: dict[str, Any] = Field(default_factory=dict)


class ProcessState(Strict):
    completed_steps: list[str] = Field(default_factory=list, max_length=200)
    pending_actions: list[str] = Field(default_factory=list, max_length=200)
    position: str = Field(default="", max_length=500)
    attempts: int = Field(default=0, ge=0, le=10_000)


class Environment(Strict):
    logs: list[str] = Field(default_factory=list, max_length=1_000)
    errors: list[str] = Field(default_factory=list, max_length=1_000)
    metrics: dict[str, Any] = Field(default_factory=dict)


class PackageBase(Strict):
    task_type: str = Field(min_length=1, max_length=64, examples=["refund_request"])
    summary: str = Field(min_length=1, max_length=5_000)
    reason: str = Field(min_length=1, max_length=5_000)
    confidence: float = Field(ge=0.0, le=1.0)
    customer: CustomerRecord | None = None
    transcript: list[TranscriptTurn] = Field(min_length=1, max_length=2_000)
    reasoning: Reasoning = Field(default_factory=Reasoning)
    proposed_action: ProposedAction | None = None
    draft_response: str = Field(default="", max_length=20_000)
    process_state: ProcessState = Field(default_factory=ProcessState)
    environment: Environment = Field(default_factory=Environment)
    suggested_next_steps: list[str] = Field(default_factory=list, max_length=50)
    flags: list[str] = Field(default_factory=list, max_length=50)
    options: list[DecisionVerb] = Field(default_factory=list)
    attributes: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    callback_url: CallbackUrl | None = None
    mode: Literal["sync", "async", "takeover"] = "sync"
    agent_trigger: Literal["agent_requested", "timeout"] | None = Field(
        default=None,
        description="Set when the agent itself asks for a human, or hit its own time limit.",
    )

    @field_validator("summary", "reason")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("options")
    @classmethod
    def unique_options(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("options must not repeat")
        return value


class EvaluateIn(PackageBase):
    """A package to judge without storing it; `external_id` is optional here."""

    external_id: str | None = Field(default=None, max_length=200)


class HandoffIn(PackageBase):
    external_id: str = Field(
        min_length=1, max_length=200, description="The agent's own id; the idempotency key."
    )


# --- Answers ------------------------------------------------------------------------------


class TriggerOut(Schema):
    code: str
    detail: str
    level: int
    priority_raise: bool = False
    rule: str | None = None
    hard: bool = False
    skill: str | None = None
    priority: int | None = None


class EvaluationOut(Schema):
    task_type: str
    task_type_version: int
    level: int
    level_name: str
    priority: int
    instruction: Literal["proceed", "wait", "stop"]
    review_after: bool = Field(description="An L1 case would be flagged for review afterwards.")
    triggers: list[TriggerOut]
    required_skills: list[str]


class LinksOut(Schema):
    self: str
    console: str


class SlaOut(Schema):
    accept_due: datetime | None
    resolve_due: datetime | None


class HandoffOut(Schema):
    method: Literal["warm", "queued", "callback"] | None = Field(
        description="warm: a person has it now; queued: people on shift are busy; callback: "
        "nobody with the skills is on shift before the SLA, a person calls back at `eta`."
    )
    eta: datetime | None = Field(description="When a person is expected to take the case.")
    queue_position: int | None
    assignee: str | None = Field(description="Who holds the case now, by name.")


class FeedbackOut(Schema):
    csat: int | None
    effort: int | None
    comment: str
    created_at: datetime


class ActionOut(Schema):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class DecisionOut(Schema):
    """A reviewer's final decision, as the agent acts on it."""

    verb: str = Field(description="approve, edit, reject, respond, take_over or reverse.")
    instruction: str = Field(
        description="What the agent does now: execute, do_not_execute, send_response, stop or undo."
    )
    action: ActionOut | None = Field(
        description="The action as approved (after edits); for reject / reverse, the action "
        "not to run / to undo."
    )
    draft_response: str = Field(description="The reply as approved (after edits).")
    response_text: str = Field(description="The reviewer's message (verb respond).")
    reason: str
    note: str
    diff: dict[str, Any] = Field(description="What an edit changed: draft lines and args.")
    decided_by: str
    decided_at: datetime


class DecisionEventOut(Schema):
    """The decision for the agent: the webhook body, and GET …/decision's answer."""

    type: Literal["escalation.decided", "escalation.pending"]
    escalation_id: int
    external_id: str
    status: str
    decision: DecisionOut | None


class DeliveriesOut(Schema):
    count: int
    last_state: Literal["pending", "delivered", "failed", "disabled"] | None


class EscalationOut(Schema):
    id: int
    external_id: str
    task_type: str
    task_type_version: int
    status: str
    level: int
    level_name: str
    priority: int
    instruction: Literal["proceed", "wait", "stop"]
    mode: str
    sampled_for_review: bool
    triggers: list[TriggerOut]
    required_skills: list[str]
    sla: SlaOut
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    version: int
    message_count: int
    handoff: HandoffOut
    feedback: FeedbackOut | None
    decision: DecisionOut | None = Field(description="The final decision, once made.")
    deliveries: DeliveriesOut = Field(description="Webhook deliveries of the decision.")
    links: LinksOut


class MessagesIn(Strict):
    messages: list[TranscriptTurn] = Field(min_length=1, max_length=200)


class MessagesOut(Schema):
    escalation: EscalationOut
    appended: int


class CancelIn(Strict):
    reason: str = Field(default="", max_length=2_000)


class FeedbackIn(Strict):
    csat: int | None = Field(default=None, ge=1, le=5, description="Satisfaction, 1 to 5.")
    effort: int | None = Field(default=None, ge=1, le=7, description="Customer effort, 1 to 7.")
    comment: str = Field(default="", max_length=5_000)


class TaskTypeOut(Schema):
    slug: str
    name: str
    description: str
    level: int
    level_name: str
    autonomy_threshold: float
    review_threshold: float
    default_priority: int
    version: int


class FieldError(Schema):
    field: str
    message: str


class ErrorOut(Schema):
    error: str
    message: str
    errors: list[FieldError] = Field(default_factory=list)
