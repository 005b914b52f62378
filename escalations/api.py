"""The agent API (django-ninja, /api/v1). Endpoints parse, call one service, answer."""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import NinjaAPI, Query, Router, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from escalations import delivery, selectors, services
from escalations.errors import BatonError
from escalations.models import Escalation, Feedback, Integration
from escalations.policy import LEVEL_NAMES
from escalations.schemas import (
    CancelIn,
    DecisionEventOut,
    ErrorOut,
    EscalationOut,
    EvaluateIn,
    EvaluationOut,
    FeedbackIn,
    FeedbackOut,
    HandoffIn,
    MessagesIn,
    MessagesOut,
    TaskTypeOut,
)
from metrics.services import evaluation_tally_increment
from routing.assignment import describe as routing_handoff


def _agent(request: HttpRequest) -> Integration:
    """The integration that authenticated this request (ninja sets `request.auth`)."""
    return request.auth  # type: ignore[attr-defined, no-any-return]


class IntegrationToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Integration | None:
        return services.integration_authenticate(token=token)


api = NinjaAPI(
    title="Baton agent API",
    version="1",
    description=(
        "Hand a case to a human reviewer, ask the escalation policy before acting, follow "
        "the case and report the customer's satisfaction. Authenticate with your "
        "integration's token: `Authorization: Bearer btn_…`."
    ),
    auth=IntegrationToken(),
    urls_namespace="api",
)

ERRORS: dict[int, Any] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    413: ErrorOut,
    422: ErrorOut,
}


def _error(
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
) -> HttpResponse:
    return api.create_response(
        request, {"error": code, "message": message, "errors": errors or []}, status=status
    )


@api.exception_handler(BatonError)
def on_baton_error(request: HttpRequest, exc: BatonError) -> HttpResponse:
    return _error(request, exc.status, exc.code, exc.message, exc.errors)


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = []
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ())]
        # ninja prefixes the body's location with ("body", "<param name>").
        if loc[:1] == ["body"]:
            loc = loc[2:]
        errors.append({"field": ".".join(loc) or "body", "message": error.get("msg", "invalid")})
    return _error(
        request, 422, "validation_error", f"The request has {len(errors)} invalid field(s).", errors
    )


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(
        request,
        401,
        "unauthorized",
        "A valid integration token is required (Authorization: Bearer …).",
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(RequestDataTooBig)
def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _error(request, 413, "too_large", "The request body is larger than Baton accepts.")


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, "bad_request", str(exc))


def _escalation_out(
    request: HttpRequest, escalation: Escalation, *, new_messages: int | None = None
) -> dict[str, Any]:
    """The case as the agent sees it. `new_messages`: the case was created by this request
    with that many transcript turns, so it has no feedback, decision or delivery yet and
    the four queries that would say so are skipped."""
    new = new_messages is not None
    feedback = None
    if not new:
        with contextlib.suppress(Feedback.DoesNotExist):
            feedback = escalation.feedback
    return {
        "id": escalation.pk,
        "external_id": escalation.external_id,
        "task_type": escalation.task_type.slug,
        "task_type_version": escalation.task_type_version,
        "status": escalation.status,
        "level": escalation.level,
        "level_name": LEVEL_NAMES[escalation.level],
        "priority": escalation.priority,
        "instruction": escalation.instruction,
        "mode": escalation.mode,
        "sampled_for_review": escalation.sampled_for_review,
        "triggers": escalation.triggers,
        "required_skills": escalation.required_skills,
        "sla": {"accept_due": escalation.sla_accept_due, "resolve_due": escalation.sla_resolve_due},
        "created_at": escalation.created_at,
        "updated_at": escalation.updated_at,
        "closed_at": escalation.closed_at,
        "version": escalation.version,
        "message_count": new_messages if new else escalation.messages.count(),
        "handoff": routing_handoff(escalation),
        "feedback": feedback,
        "decision": None
        if new
        else (delivery.escalation_decision_payload(escalation=escalation) or {}).get("decision"),
        "deliveries": {"count": 0, "last_state": None}
        if new
        else delivery.escalation_delivery_summary(escalation=escalation),
        "links": {
            "self": request.build_absolute_uri(reverse("api:escalation_get", args=[escalation.pk])),
            "console": request.build_absolute_uri(reverse("case_detail", args=[escalation.pk])),
        },
    }


@api.post("/evaluate", response={200: EvaluationOut, **ERRORS}, summary="Should I escalate?")
def evaluate(request: HttpRequest, package: EvaluateIn) -> Any:
    """Judge a package by the policy in force. Stores nothing but a count for the metrics."""
    agent = _agent(request)
    evaluation = services.escalation_evaluate(integration=agent, package=package)
    evaluation_tally_increment(integration=agent, task_type=evaluation.task_type)  # counting only
    decision = evaluation.decision
    return {
        "task_type": evaluation.task_type.slug,
        "task_type_version": evaluation.task_type.version,
        "level": decision.level,
        "level_name": decision.level_name,
        "priority": decision.priority,
        "instruction": decision.instruction,
        "review_after": decision.review_after,
        "triggers": [t.as_dict() for t in decision.triggers],
        "required_skills": list(decision.required_skills),
    }


@api.post(
    "/escalations",
    response={200: EscalationOut, 201: EscalationOut, **ERRORS},
    summary="Hand a case over",
)
def escalation_create(request: HttpRequest, package: HandoffIn) -> Any:
    """201 with the new case; 200 when the same package is posted again (idempotent on
    `external_id`); 409 when `external_id` was used for a different package."""
    result = services.escalation_ingest(integration=_agent(request), package=package)
    if not result.created:
        return Status(200, _escalation_out(request, result.escalation))
    out = _escalation_out(request, result.escalation, new_messages=len(package.transcript))
    return Status(201, out)


@api.get(
    "/escalations/{escalation_id}",
    response={200: EscalationOut, **ERRORS},
    url_name="escalation_get",
    summary="A case's state",
)
def escalation_get(request: HttpRequest, escalation_id: int) -> Any:
    escalation = selectors.escalation_for_integration(
        integration=_agent(request), escalation_id=escalation_id
    )
    return _escalation_out(request, escalation)


@api.get(
    "/escalations/{escalation_id}/decision",
    response={200: DecisionEventOut, 202: DecisionEventOut, **ERRORS},
    url_name="escalation_decision",
    summary="Wait for the decision",
)
async def escalation_decision(
    request: HttpRequest,
    escalation_id: int,
    wait: int = Query(
        0,
        ge=0,
        le=delivery.MAX_WAIT_SECONDS,
        description="Seconds to wait for the decision (long-poll), 0 to 30.",
    ),
) -> Any:
    """**200** with the decision (`type` "escalation.decided", the same document the
    webhook delivers) as soon as a reviewer has made the final one, at once if they
    already have. **202** with `type` "escalation.pending" and `decision` null when it is
    not made after `wait` seconds: ask again. **409** when no decision will ever come
    (the case was withdrawn, or resolved autonomously and not sampled for review).
    An escalation is a re-queue, not a decision: the wait goes on."""
    answer = await delivery.decision_wait(
        integration=_agent(request), escalation_id=escalation_id, wait=wait
    )
    return Status(200 if answer.decided else 202, answer.payload)


@api.post(
    "/escalations/{escalation_id}/messages",
    response={201: MessagesOut, **ERRORS},
    summary="Add transcript turns while waiting",
)
def escalation_messages(request: HttpRequest, escalation_id: int, body: MessagesIn) -> Any:
    escalation, appended = services.escalation_append_messages(
        integration=_agent(request), escalation_id=escalation_id, turns=body.messages
    )
    return Status(201, {"escalation": _escalation_out(request, escalation), "appended": appended})


@api.post(
    "/escalations/{escalation_id}/cancel",
    response={200: EscalationOut, **ERRORS},
    summary="Withdraw a case",
)
def escalation_cancel(request: HttpRequest, escalation_id: int, body: CancelIn) -> Any:
    escalation = services.escalation_cancel(
        integration=_agent(request), escalation_id=escalation_id, reason=body.reason
    )
    return _escalation_out(request, escalation)


@api.post(
    "/escalations/{escalation_id}/feedback",
    response={201: FeedbackOut, **ERRORS},
    summary="Report the customer's satisfaction",
)
def escalation_feedback(request: HttpRequest, escalation_id: int, body: FeedbackIn) -> Any:
    feedback = services.escalation_record_feedback(
        integration=_agent(request),
        escalation_id=escalation_id,
        csat=body.csat,
        effort=body.effort,
        comment=body.comment,
    )
    return Status(201, feedback)


@api.get("/task-types", response={200: list[TaskTypeOut], **ERRORS}, summary="Task types")
def task_types(request: HttpRequest) -> Any:
    return [
        {
            "slug": t.slug,
            "name": t.name,
            "description": t.description,
            "level": t.level,
            "level_name": LEVEL_NAMES[t.level],
            "autonomy_threshold": t.autonomy_threshold,
            "review_threshold": t.review_threshold,
            "default_priority": t.default_priority,
            "version": t.version,
        }
        for t in selectors.task_types_active()
    ]


# --- Benchmarks -------------------------------------------------------------------------------


class NoopOut(Schema):
    external_id: str


def bench_router() -> Router:
    """A baseline for the ingest benchmark: the same server, token check and body parsing
    as `POST /escalations`, and nothing else. A fresh router each call (a router belongs
    to one API), so a test can mount it on an API of its own."""
    router = Router()

    @router.post("/noop", response={200: NoopOut, **ERRORS}, include_in_schema=False)
    def bench_noop(request: HttpRequest, package: HandoffIn) -> Any:
        return {"external_id": package.external_id}

    return router


if settings.BATON_BENCH_ENDPOINTS:  # off in production: the route does not exist
    api.add_router("/bench", bench_router())
