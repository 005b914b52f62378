"""Realistic handoff packages for the demo agent and the tests (DESIGN §2).

`demo_package(rng, n)` builds the n-th package of a run from a seeded `random.Random`, so a
run can be replayed. It returns plain JSON (what an agent would post), never a schema
object: the simulator posts it over HTTP and the tests validate it with `HandoffIn`.
The scenarios cover the ground a live queue sees: routine L1 lookups, refunds above and
below the limit, the Acme Corp pricing exception, frustrated and returning customers,
explicit requests for a person, emergencies, fraud, hardship and medical questions.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DECISION_VERBS = ["approve", "edit", "reject", "respond", "take_over", "escalate"]
CHANNELS = ["chat", "chat", "chat", "email", "whatsapp", "voice"]

FIRST_NAMES = [
    "Olivia", "Liam", "Amara", "Noah", "Sofia", "Mateo", "Priya", "Lucas", "Chen", "Fatima",
    "Jakub", "Aisha", "Ethan", "Yuki", "Hannah", "Kwame", "Isabella", "Omar", "Grace", "Diego",
    "Ingrid", "Ravi", "Zoe", "Tomasz", "Leila", "Samuel", "Nadia", "Oscar", "Mei", "Declan",
]  # fmt: skip
LAST_NAMES = [
    "Okafor", "Nguyen", "Schmidt", "García", "Patel", "O'Brien", "Kowalski", "Haddad", "Smith",
    "Fernandes", "Johansson", "Mensah", "Rossi", "Tanaka", "Dubois", "Murphy", "Ahmed", "Kim",
    "Novak", "Silva", "Williams", "Brown", "Jones", "Lindqvist", "Moreau", "Khan",
]  # fmt: skip


@dataclass(frozen=True)
class ReturningCustomer:
    id: str
    name: str
    tier: str


# A small pool that comes back again and again, so `repeated_failure` fires for them.
RETURNING = [
    ReturningCustomer("cus_10482", "Margaret Ellison", "standard"),
    ReturningCustomer("cus_20931", "Tobias Reinhardt", "plus"),
    ReturningCustomer("cus_31177", "Aaliyah Brooks", "standard"),
    ReturningCustomer("cus_47720", "Wei Zhang", "premium"),
]


# --- Building blocks -------------------------------------------------------------------------


class Clock:
    """Timestamps of one conversation: it started a few minutes ago, turns follow on."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.at = self.now - timedelta(minutes=rng.randint(3, 25))

    def tick(self, low: int = 8, high: int = 90) -> str:
        self.at = min(self.at + timedelta(seconds=self.rng.randint(low, high)), self.now)
        return self.at.isoformat()


def _turns(rng: random.Random, lines: list[tuple[str, str, float | None]]) -> list[dict[str, Any]]:
    clock = Clock(rng)
    turns = []
    for role, text, sentiment in lines:
        turn: dict[str, Any] = {"role": role, "text": text, "at": clock.tick()}
        if sentiment is not None:
            turn["sentiment"] = sentiment
        turns.append(turn)
    return turns


def _customer(
    rng: random.Random,
    *,
    returning: bool = False,
    tier: str | None = None,
    name: str | None = None,
    customer_id: str | None = None,
) -> dict[str, Any]:
    if returning:
        known = rng.choice(RETURNING)
        customer_id, name, tier = known.id, known.name, known.tier
    name = name or f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    tier = tier or rng.choice(["standard", "standard", "standard", "plus", "premium"])
    customer_id = customer_id or f"cus_{rng.randrange(100_000, 999_999)}"
    since = datetime(2016, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 3200))
    history = [
        {
            "at": (datetime.now(UTC) - timedelta(days=rng.randint(1, 400))).date().isoformat(),
            "channel": rng.choice(["chat", "email", "voice"]),
            "topic": rng.choice(
                ["delivery", "billing", "password reset", "refund", "plan change", "complaint"]
            ),
            "outcome": rng.choice(["resolved by agent", "resolved by human", "abandoned"]),
        }
        for _ in range(rng.randint(0, 4))
    ]
    email_name = name.lower().replace(" ", ".").replace("'", "")
    return {
        "id": customer_id,
        "name": name,
        "tier": tier,
        "language": rng.choice(["en", "en", "en", "en", "es", "de", "fr"]),
        "profile": {
            "email": f"{email_name}@example.com",
            "customer_since": since.date().isoformat(),
            "lifetime_value": round(rng.uniform(40, 9000), 2),
            "open_tickets": rng.randint(0, 2),
        },
        "history": history,
    }


def _environment(
    rng: random.Random, logs: list[str], errors: list[str] | None = None
) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "logs": [f"{stamp}Z INFO {line}" for line in logs],
        "errors": [f"{stamp}Z ERROR {line}" for line in errors or []],
        "metrics": {
            "latency_ms": rng.randint(180, 2400),
            "tool_calls": rng.randint(1, 9),
            "tokens": rng.randint(900, 12_000),
            "model": rng.choice(["support-agent-v4", "support-agent-v5"]),
        },
    }


def _options(rng: random.Random) -> list[str]:
    chosen = ["approve", "reject", "respond", *rng.sample(["edit", "take_over", "escalate"], 2)]
    return [verb for verb in DECISION_VERBS if verb in chosen]


def _confidence(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)


FRUSTRATED = [
    "This is ridiculous. It's the third time I've had to explain this.",
    "Honestly this is useless, I'm really angry and fed up with being passed around.",
    "I'm furious. Nobody has fixed this and I'm sick of waiting.",
    "This is the worst service I've ever had. Terrible.",
]
WANTS_A_PERSON = [
    "Let me talk to a real person, please.",
    "I want to speak to a human, not a bot.",
    "Can I get a manager on the phone please?",
    "Please connect me to an agent. A real one.",
]
FOLLOW_UPS = [
    ("Any update on this? I've been waiting a while now.", -0.2),
    ("I've just found the receipt, it's order confirmation 88231 if that helps.", 0.3),
    ("Hello? Is anyone actually looking at this? This is ridiculous.", -0.7),
    ("Thanks for checking, I'll wait for the decision.", 0.5),
    ("Let me talk to a real person please, this is taking forever.", -0.5),
]


# --- Scenarios -------------------------------------------------------------------------------

Scenario = Callable[[random.Random], dict[str, Any]]


def order_status(rng: random.Random) -> dict[str, Any]:
    order = f"ORD-{rng.randrange(100_000, 999_999)}"
    carrier = rng.choice(["DPD", "UPS", "Royal Mail", "DHL"])
    days = rng.randint(1, 4)
    return {
        "task_type": "order_status",
        "summary": f"Customer asked where order {order} is. It shipped with {carrier} and "
        f"is due in {days} day(s); the agent will share the tracking link.",
        "reason": "Routine lookup recorded for sampling; no exception involved.",
        "confidence": _confidence(rng, 0.86, 0.99),
        "customer": _customer(rng),
        "transcript": _turns(
            rng,
            [
                ("customer", f"Hi, where is my order {order}?", None),
                ("tool", f"lookup_order({order}) -> shipped, carrier={carrier}", None),
                ("agent", f"It's on its way with {carrier}, due in {days} day(s).", None),
                ("customer", "Great, thanks!", 0.7),
            ],
        ),
        "reasoning": {
            "rationale": "Order found, shipped, within the promised window.",
            "alternatives": [
                {"action": "open_delivery_investigation", "confidence": 0.03, "why": "not late"}
            ],
        },
        "proposed_action": {"name": "send_tracking_link", "args": {"order_id": order}},
        "draft_response": f"Your order {order} is with {carrier} and should arrive within "
        f"{days} day(s). Here is your tracking link.",
        "process_state": {
            "completed_steps": ["verify_identity", "lookup_order"],
            "pending_actions": ["send_tracking_link"],
            "position": "answering",
            "attempts": 0,
        },
        "environment": _environment(rng, [f"lookup_order order={order} status=shipped"]),
        "suggested_next_steps": ["Send the tracking link"],
        "options": ["approve", "reject"],
        "attributes": {"order_id": order, "channel": rng.choice(CHANNELS)},
    }


def refund_request(rng: random.Random, *, large: bool = False) -> dict[str, Any]:
    amount = round(rng.uniform(520, 2400) if large else rng.uniform(12, 450), 2)
    currency = rng.choice(["USD", "EUR", "GBP"])
    item = rng.choice(
        [
            "espresso machine",
            "winter jacket",
            "noise-cancelling headphones",
            "standing desk",
            "smartwatch",
            "sofa",
            "laptop",
        ]
    )
    weeks = rng.randint(2, 30)
    frustrated = rng.random() < 0.3
    lines: list[tuple[str, str, float | None]] = [
        ("customer", f"I'd like a refund for the {item} I bought {weeks} weeks ago.", None),
        ("agent", "I'm sorry to hear that. Could you tell me what went wrong?", None),
        ("customer", f"It stopped working properly. I paid {amount} {currency} for it.", -0.3),
        (
            "tool",
            f"get_order_policy() -> return window 30 days, purchased {weeks * 7} days ago",
            None,
        ),
    ]
    if frustrated:
        lines.append(("customer", rng.choice(FRUSTRATED), None))
    outside = weeks * 7 > 30
    confidence = _confidence(rng, 0.55, 0.8) if outside or large else _confidence(rng, 0.7, 0.95)
    return {
        "task_type": "refund_request",
        "summary": f"Customer wants a refund of {amount} {currency} for a {item} bought "
        f"{weeks} weeks ago"
        + (", outside the 30-day return window." if outside else ", within the return window."),
        "reason": f"confidence {confidence:.0%}"
        + (", product bought outside the return policy" if outside else "")
        + (f", refund above the agent's 500 {currency} limit" if large else ""),
        "confidence": confidence,
        "customer": _customer(rng, returning=rng.random() < 0.3),
        "transcript": _turns(rng, lines),
        "reasoning": {
            "rationale": "A defect report is credible given the product history; policy "
            "allows goodwill refunds at the reviewer's discretion.",
            "alternatives": [
                {"action": "issue_refund", "confidence": confidence, "why": "defect reported"},
                {
                    "action": "offer_repair",
                    "confidence": round(1 - confidence, 2),
                    "why": "cheaper, keeps the sale",
                },
                {"action": "offer_store_credit", "confidence": 0.2, "why": "outside window"},
            ],
        },
        "proposed_action": {
            "name": "issue_refund",
            "args": {"amount": amount, "currency": currency, "method": "original_payment"},
        },
        "draft_response": f"I've approved a refund of {amount} {currency} to your original "
        "payment method; it will arrive in 3-5 working days.",
        "process_state": {
            "completed_steps": ["verify_identity", "lookup_order", "check_return_policy"],
            "pending_actions": ["issue_refund", "send_confirmation"],
            "position": "awaiting approval",
            "attempts": rng.choice([0, 0, 1, 2, 3]),
        },
        "environment": _environment(
            rng,
            [f"check_return_policy window=30d age={weeks * 7}d", "fraud_score=0.04"],
            ["refund_limit_exceeded"] if large else [],
        ),
        "suggested_next_steps": [
            "Approve the refund or offer a repair",
            "Confirm the refund with the customer",
        ],
        "flags": ["outside policy"] if outside else [],
        "options": _options(rng),
        "attributes": {"amount": amount, "currency": currency, "channel": rng.choice(CHANNELS)},
        "mode": rng.choice(["sync", "async"]),
    }


def refund_over_limit(rng: random.Random) -> dict[str, Any]:
    return refund_request(rng, large=True)


def acme_pricing(rng: random.Random) -> dict[str, Any]:
    """The pricing example from the design discussions: Acme Corp wants 50+ seats."""
    seats = rng.choice([50, 60, 75, 120])
    discount = rng.choice([20, 25, 30])
    return {
        "task_type": "pricing_exception",
        "summary": f"Acme Corp asks for {seats} seats on the Business plan at a {discount}% "
        "discount with annual invoicing, which is beyond the agent's pricing authority.",
        "reason": f"confidence 72%, non-standard request: {discount}% discount for {seats} "
        "seats exceeds the 10% the agent may grant",
        "confidence": 0.72,
        "customer": _customer(
            rng,
            name="Acme Corp (Jordan Blake, Head of Ops)",
            tier="enterprise",
            customer_id="cus_acme_corp",
        ),
        "transcript": _turns(
            rng,
            [
                ("customer", f"We're looking at rolling out to {seats} people next quarter.", None),
                (
                    "agent",
                    "That's great to hear! The Business plan is $24 per seat per month.",
                    None,
                ),
                (
                    "customer",
                    f"At that volume we'd expect at least {discount}% off and annual "
                    "invoicing, net 60. Competitors have offered that.",
                    None,
                ),
                ("tool", "get_pricing_authority() -> max_discount=10%", None),
                ("agent", "Let me check what we can do on volume pricing for you.", None),
            ],
        ),
        "reasoning": {
            "rationale": "High-value prospect; a discount above 10% needs sales approval.",
            "alternatives": [
                {
                    "action": "apply_discount",
                    "confidence": 0.72,
                    "why": f"{discount}% wins the deal",
                },
                {"action": "apply_discount_10", "confidence": 0.55, "why": "within authority"},
                {"action": "book_sales_call", "confidence": 0.6, "why": "let sales negotiate"},
            ],
        },
        "proposed_action": {
            "name": "apply_discount",
            "args": {"seats": seats, "discount_pct": discount, "billing": "annual"},
        },
        "draft_response": f"We can offer {discount}% off for {seats} seats on annual "
        "invoicing. I'll send the quote today.",
        "process_state": {
            "completed_steps": ["qualify_lead", "check_pricing_authority"],
            "pending_actions": ["send_quote"],
            "position": "negotiating",
            "attempts": 1,
        },
        "environment": _environment(rng, ["crm_lookup account=acme tier=enterprise"]),
        "suggested_next_steps": ["Approve the discount or book a call with sales"],
        "flags": ["non-standard request", "high-value account"],
        "options": ["approve", "edit", "reject", "respond", "escalate"],
        "attributes": {
            "seats": seats,
            "discount_pct": discount,
            "amount": seats * 24 * 12,
            "currency": "USD",
            "channel": "chat",
        },
        "mode": "async",
    }


def billing_dispute(rng: random.Random) -> dict[str, Any]:
    amount = round(rng.uniform(9.99, 349), 2)
    chargeback = rng.random() < 0.5
    last = (
        "If this isn't sorted today I'm filing a chargeback with my bank."
        if chargeback
        else rng.choice(FRUSTRATED)
    )
    return {
        "task_type": "billing_dispute",
        "summary": f"Customer disputes a charge of {amount} USD they say they cancelled "
        "before the renewal date.",
        "reason": "Customer disputes a renewal; the cancellation record is ambiguous",
        "confidence": _confidence(rng, 0.4, 0.75),
        "customer": _customer(rng, returning=rng.random() < 0.35),
        "transcript": _turns(
            rng,
            [
                ("customer", f"You charged me {amount} even though I cancelled last month!", -0.6),
                ("agent", "I'm sorry about that, let me look at your account.", None),
                ("tool", "get_subscription() -> cancel_requested_at=null renewed=true", None),
                ("agent", "I can't see a cancellation request on file, unfortunately.", None),
                ("customer", last, -0.8),
            ],
        ),
        "reasoning": {
            "rationale": "No cancellation on record, but the customer is adamant and may "
            "have cancelled through the app, whose events are sometimes lost.",
            "alternatives": [
                {
                    "action": "refund_renewal",
                    "confidence": 0.5,
                    "why": "goodwill, prevents a chargeback",
                },
                {"action": "deny_refund", "confidence": 0.3, "why": "no record of cancellation"},
            ],
        },
        "proposed_action": {"name": "refund_renewal", "args": {"amount": amount}},
        "draft_response": "I've refunded the renewal and cancelled the subscription.",
        "process_state": {
            "completed_steps": ["verify_identity", "get_subscription"],
            "pending_actions": ["refund_renewal", "cancel_subscription"],
            "position": "investigating",
            "attempts": rng.randint(0, 3),
        },
        "environment": _environment(
            rng, ["get_subscription renewed=true"], ["app_event_gap window=2025-W14"]
        ),
        "suggested_next_steps": ["Check the app's event log", "Refund as goodwill"],
        "options": _options(rng),
        "attributes": {"amount": amount, "currency": "USD", "channel": rng.choice(CHANNELS)},
    }


def subscription_cancel(rng: random.Random) -> dict[str, Any]:
    plan = rng.choice(["Premium", "Family", "Pro"])
    return {
        "task_type": "subscription_cancellation",
        "summary": f"Customer wants to cancel their {plan} subscription because of the price "
        "rise; a retention offer is available.",
        "reason": "Cancellations go to retention before the agent processes them",
        "confidence": _confidence(rng, 0.6, 0.9),
        "customer": _customer(rng),
        "transcript": _turns(
            rng,
            [
                ("customer", "I want to cancel my subscription please.", None),
                ("agent", "Sorry to see you go. May I ask why?", None),
                ("customer", "The price went up again and I barely use it.", -0.3),
                ("agent", "I understand. I may be able to offer you a discount.", None),
            ],
        ),
        "reasoning": {
            "rationale": "Price-sensitive, low usage: a 3-month 50% offer often retains.",
            "alternatives": [
                {"action": "offer_retention_discount", "confidence": 0.6, "why": "price reason"},
                {"action": "cancel_subscription", "confidence": 0.4, "why": "customer asked"},
            ],
        },
        "proposed_action": {"name": "offer_retention_discount", "args": {"months": 3, "pct": 50}},
        "draft_response": "Before you go, I can offer you 50% off for the next three months.",
        "process_state": {
            "completed_steps": ["verify_identity"],
            "pending_actions": ["offer_retention_discount"],
            "position": "retention",
            "attempts": 0,
        },
        "environment": _environment(rng, [f"plan={plan} usage_30d=low"]),
        "suggested_next_steps": ["Offer the retention discount", "Else cancel at period end"],
        "options": _options(rng),
        "attributes": {"plan": plan, "channel": rng.choice(CHANNELS)},
    }


def account_change(rng: random.Random) -> dict[str, Any]:
    closing = rng.random() < 0.25
    what = rng.choice(["email address", "billing address", "phone number", "account holder"])
    text = (
        "I want to close my account and delete all my data."
        if closing
        else f"I need to change the {what} on my account."
    )
    return {
        "task_type": "account_change",
        "summary": (
            "Customer asks to close their account and erase their data."
            if closing
            else f"Customer asks to change the {what}; identity verified by one factor only."
        ),
        "reason": "Account changes after single-factor verification need a human check",
        "confidence": _confidence(rng, 0.55, 0.85),
        "customer": _customer(rng),
        "transcript": _turns(
            rng,
            [
                ("customer", text, None),
                ("agent", "I can help. I've sent a code to the phone number on file.", None),
                ("customer", "I don't have that phone any more.", -0.2),
                ("tool", "verify_identity() -> sms=failed, security_questions=passed", None),
            ],
        ),
        "reasoning": {
            "rationale": "Security questions passed but the SMS factor failed.",
            "alternatives": [
                {"action": "update_account", "confidence": 0.55, "why": "questions passed"},
                {"action": "request_id_document", "confidence": 0.45, "why": "one factor only"},
            ],
        },
        "proposed_action": {
            "name": "close_account" if closing else "update_account",
            "args": {} if closing else {"field": what},
        },
        "draft_response": (
            "Your account is now closed and a data-erasure request has been filed."
            if closing
            else "Done: your details have been updated."
        ),
        "process_state": {
            "completed_steps": ["verify_identity_partial"],
            "pending_actions": ["close_account" if closing else "update_account"],
            "position": "verification",
            "attempts": rng.randint(0, 2),
        },
        "environment": _environment(rng, ["verify_identity sms=failed questions=passed"]),
        "suggested_next_steps": ["Ask for an ID document", "Apply the change"],
        "options": _options(rng),
        "attributes": {"channel": rng.choice(CHANNELS)},
    }


def fraud_alert(rng: random.Random) -> dict[str, Any]:
    amount = round(rng.uniform(80, 3200), 2)
    merchant = rng.choice(["ELECTROWORLD LTD", "QPAY*GAMESHOP", "TRAVELNOW.COM", "CRYPTOXCH"])
    return {
        "task_type": "fraud_alert",
        "summary": f"Customer reports a card payment of {amount} EUR to {merchant} they "
        "did not make; the card is still active.",
        "reason": "Suspected unauthorised transaction: a fraud specialist must decide",
        "confidence": _confidence(rng, 0.3, 0.7),
        "customer": _customer(rng, tier=rng.choice(["standard", "premium"])),
        "transcript": _turns(
            rng,
            [
                ("customer", f"There's a payment of {amount} to {merchant} I didn't make!", -0.6),
                ("agent", "I understand how worrying that is. Do you still have your card?", None),
                ("customer", "Yes, it's in my wallet. Please stop it.", -0.4),
                ("tool", "card_risk_score() -> 0.91, device=new, country=RO", None),
            ],
        ),
        "reasoning": {
            "rationale": "High risk score from a new device abroad; card-not-present fraud.",
            "alternatives": [
                {"action": "freeze_card", "confidence": 0.85, "why": "stop further loss"},
                {"action": "open_dispute", "confidence": 0.7, "why": "recover the funds"},
            ],
        },
        "proposed_action": {"name": "freeze_card", "args": {"reissue": True}},
        "draft_response": "I've frozen your card and ordered a replacement.",
        "process_state": {
            "completed_steps": ["verify_identity", "card_risk_score"],
            "pending_actions": ["freeze_card", "open_dispute"],
            "position": "fraud triage",
            "attempts": 0,
        },
        "environment": _environment(rng, ["card_risk_score=0.91"]),
        "suggested_next_steps": ["Freeze the card", "Open a dispute", "Reissue the card"],
        "flags": ["possible fraud"],
        "options": _options(rng),
        "attributes": {
            "amount": amount,
            "currency": "EUR",
            "merchant": merchant,
            "channel": rng.choice(CHANNELS),
        },
        "mode": "takeover",
    }


def loan_hardship(rng: random.Random) -> dict[str, Any]:
    balance = rng.randrange(3000, 40000, 250)
    return {
        "task_type": "loan_hardship",
        "summary": f"Customer lost their job and cannot make this month's repayment on a "
        f"{balance} GBP loan; asks for a payment holiday.",
        "reason": "Financial hardship: a person must assess affordability and vulnerability",
        "confidence": _confidence(rng, 0.4, 0.7),
        "customer": _customer(rng),
        "transcript": _turns(
            rng,
            [
                ("customer", "I've lost my job and I can't afford the payment this month.", -0.6),
                ("agent", "I'm really sorry. We have options that may help.", None),
                ("customer", "I'm worried I'll lose everything.", -0.7),
            ],
        ),
        "reasoning": {
            "rationale": "Signs of vulnerability; regulation expects a human assessment.",
            "alternatives": [
                {"action": "payment_holiday", "confidence": 0.6, "why": "short-term relief"},
                {"action": "reduced_payment_plan", "confidence": 0.5, "why": "sustainable"},
            ],
        },
        "proposed_action": {"name": "payment_holiday", "args": {"months": 3}},
        "draft_response": "We can pause your repayments for three months.",
        "process_state": {
            "completed_steps": ["verify_identity", "get_loan"],
            "pending_actions": ["affordability_assessment"],
            "position": "hardship",
            "attempts": 0,
        },
        "environment": _environment(rng, [f"get_loan balance={balance} arrears=0"]),
        "suggested_next_steps": ["Run an affordability assessment", "Signpost free debt advice"],
        "flags": ["vulnerable customer"],
        "options": _options(rng),
        "attributes": {"amount": balance, "currency": "GBP", "channel": "voice"},
    }


def insurance_question(rng: random.Random) -> dict[str, Any]:
    procedure = rng.choice(["an MRI scan", "physiotherapy", "a dental crown", "an allergy test"])
    return {
        "task_type": "insurance_question",
        "summary": f"Member asks whether {procedure} is covered under their plan and what "
        "they would pay; the policy wording is ambiguous.",
        "reason": "Coverage wording is ambiguous for this procedure",
        "confidence": _confidence(rng, 0.5, 0.9),
        "customer": _customer(rng),
        "transcript": _turns(
            rng,
            [
                ("customer", f"Is {procedure} covered on my plan?", None),
                ("tool", "get_policy() -> plan=Silver, outpatient_limit=1500", None),
                ("agent", "Your plan covers outpatient care up to 1,500 a year.", None),
                ("customer", "But does that include this? I don't want a surprise bill.", -0.1),
            ],
        ),
        "reasoning": {
            "rationale": "Outpatient limit likely applies but a pre-authorisation may be needed.",
            "alternatives": [
                {"action": "confirm_coverage", "confidence": 0.6, "why": "limit applies"},
                {"action": "request_preauthorisation", "confidence": 0.4, "why": "unclear"},
            ],
        },
        "proposed_action": {"name": "confirm_coverage", "args": {"procedure": procedure}},
        "draft_response": f"Yes, {procedure} is covered under your outpatient limit.",
        "process_state": {
            "completed_steps": ["verify_member", "get_policy"],
            "pending_actions": ["confirm_coverage"],
            "position": "answering",
            "attempts": 0,
        },
        "environment": _environment(rng, ["get_policy plan=Silver"]),
        "suggested_next_steps": ["Confirm coverage or ask for pre-authorisation"],
        "options": _options(rng),
        "attributes": {"plan": "Silver", "channel": rng.choice(CHANNELS)},
    }


def prescription_refill(rng: random.Random) -> dict[str, Any]:
    drug = rng.choice(["atorvastatin 20mg", "levothyroxine 50mcg", "sertraline 50mg"])
    side_effects = rng.random() < 0.3
    lines: list[tuple[str, str, float | None]] = [
        ("customer", f"I need a repeat prescription of {drug}.", None),
        ("tool", "get_prescriptions() -> last_issued=34 days ago, repeats_left=0", None),
        ("agent", "Your repeats have run out, so the doctor needs to re-authorise it.", None),
    ]
    if side_effects:
        lines.append(("customer", "Also I've been having side effects, dizziness mostly.", -0.4))
    return {
        "task_type": "prescription_refill",
        "summary": f"Patient requests a repeat of {drug}; no repeats left on the prescription."
        + (" Reports side effects." if side_effects else ""),
        "reason": "No repeats left: a clinician must re-authorise",
        "confidence": _confidence(rng, 0.6, 0.9),
        "customer": _customer(rng),
        "transcript": _turns(rng, lines),
        "reasoning": {
            "rationale": "Stable long-term medication, but re-authorisation is clinical.",
            "alternatives": [
                {"action": "request_reauthorisation", "confidence": 0.8, "why": "no repeats"},
                {"action": "book_gp_review", "confidence": 0.5, "why": "annual review due"},
            ],
        },
        "proposed_action": {"name": "request_reauthorisation", "args": {"drug": drug}},
        "draft_response": "I've asked your doctor to re-authorise your prescription.",
        "process_state": {
            "completed_steps": ["verify_patient", "get_prescriptions"],
            "pending_actions": ["request_reauthorisation"],
            "position": "clinical check",
            "attempts": 0,
        },
        "environment": _environment(rng, ["get_prescriptions repeats_left=0"]),
        "suggested_next_steps": ["Send to the duty clinician"],
        "options": _options(rng),
        "attributes": {"channel": rng.choice(CHANNELS)},
    }


def appointment_booking(rng: random.Random) -> dict[str, Any]:
    day = rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"])
    hour = rng.randint(8, 17)
    return {
        "task_type": "appointment_booking",
        "summary": f"Patient booked a routine appointment for {day} at {hour}:00.",
        "reason": "Routine booking recorded for sampling",
        "confidence": _confidence(rng, 0.88, 0.99),
        "customer": _customer(rng),
        "transcript": _turns(
            rng,
            [
                ("customer", "Can I book a check-up next week?", None),
                ("agent", f"I have {day} at {hour}:00 free, does that work?", None),
                ("customer", "Perfect, thank you.", 0.6),
            ],
        ),
        "reasoning": {"rationale": "Slot available, routine appointment.", "alternatives": []},
        "proposed_action": {"name": "book_appointment", "args": {"day": day, "hour": hour}},
        "draft_response": f"You're booked in for {day} at {hour}:00.",
        "process_state": {
            "completed_steps": ["find_slot"],
            "pending_actions": ["book_appointment"],
            "position": "booking",
            "attempts": 0,
        },
        "environment": _environment(rng, ["find_slot available=true"]),
        "suggested_next_steps": [],
        "options": ["approve", "reject"],
        "attributes": {"channel": rng.choice(CHANNELS)},
    }


def boiler_repair(rng: random.Random, *, gas: bool = False) -> dict[str, Any]:
    postcode = rng.choice(["M14 5TP", "LS6 2QH", "BS3 4NE", "G12 8RZ", "CF24 3AA"])
    elderly = rng.random() < 0.3
    lines: list[tuple[str, str, float | None]] = [
        ("customer", "My boiler has stopped working and we have no heating or hot water.", -0.4),
        ("agent", "I'm sorry. Is the boiler showing an error code?", None),
        ("customer", "It says F28 and the pressure looks fine.", None),
    ]
    if elderly:
        lines.append(("customer", "My mum is 84 and lives with us, it's freezing.", -0.5))
    if gas:
        lines.append(("customer", "Actually I can smell gas in the kitchen now.", -0.6))
    return {
        "task_type": "gas_safety_check" if gas and rng.random() < 0.3 else "boiler_repair",
        "summary": (
            "Customer reports a smell of gas near the boiler; they need safety advice and an "
            "urgent gas engineer visit now."
            if gas
            else f"Boiler fault F28 (ignition failure) at {postcode}, no heating or hot water."
        ),
        "reason": "Possible gas leak" if gas else "No heating: engineer visit needs booking",
        "confidence": _confidence(rng, 0.5, 0.85),
        "customer": _customer(rng),
        "transcript": _turns(rng, lines),
        "reasoning": {
            "rationale": "F28 is an ignition lockout, usually a gas supply or PCB fault.",
            "alternatives": [
                {"action": "book_engineer", "confidence": 0.8, "why": "needs a visit"},
                {"action": "guide_reset", "confidence": 0.3, "why": "a reset sometimes works"},
            ],
        },
        "proposed_action": {
            "name": "book_engineer",
            "args": {"postcode": postcode, "slot": "next available"},
        },
        "draft_response": "I've booked an engineer for the next available slot.",
        "process_state": {
            "completed_steps": ["verify_address", "diagnose_error_code"],
            "pending_actions": ["book_engineer"],
            "position": "booking",
            "attempts": rng.randint(0, 2),
        },
        "environment": _environment(rng, [f"diagnose code=F28 postcode={postcode}"]),
        "suggested_next_steps": (
            ["Tell the customer to leave the property and call the gas emergency line"]
            if gas
            else ["Book the earliest engineer", "Offer a temporary heater"]
        ),
        "flags": ["vulnerable customer"] if elderly else [],
        "options": _options(rng),
        "attributes": {"postcode": postcode, "channel": rng.choice(["voice", "chat"])},
        "mode": "takeover" if gas else "sync",
    }


def gas_emergency(rng: random.Random) -> dict[str, Any]:
    return boiler_repair(rng, gas=True)


def wants_a_person(rng: random.Random) -> dict[str, Any]:
    """Any routine case where the customer asks for a person part-way through."""
    base: list[Scenario] = [refund_request, billing_dispute, insurance_question, order_status]
    package = rng.choice(base)(rng)
    package["transcript"] = [
        *package["transcript"],
        {
            "role": "customer",
            "text": rng.choice(WANTS_A_PERSON),
            "at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        },
    ]
    package["reason"] = "The customer asked to speak to a person"
    package["mode"] = "takeover"
    return package


def high_value(rng: random.Random) -> dict[str, Any]:
    base: list[Scenario] = [billing_dispute, account_change, refund_request]
    package = rng.choice(base)(rng)
    package["customer"]["tier"] = "enterprise"
    package["customer"]["name"] = rng.choice(
        ["Globex Ltd (Sam Porter)", "Initech (Priya Raman)", "Umbrella Health (Dana Cole)"]
    )
    package["flags"] = [*package.get("flags", []), "high-value account"]
    return package


def frustrated(rng: random.Random) -> dict[str, Any]:
    base: list[Scenario] = [refund_request, account_change, insurance_question, boiler_repair]
    package = rng.choice(base)(rng)
    package["transcript"] = [
        *package["transcript"],
        {
            "role": "customer",
            "text": rng.choice(FRUSTRATED),
            "at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        },
    ]
    return package


# Weighted: routine work dominates, as on a real queue.
SCENARIOS: list[tuple[Scenario, int]] = [
    (order_status, 14),
    (appointment_booking, 6),
    (refund_request, 12),
    (refund_over_limit, 5),
    (acme_pricing, 3),
    (billing_dispute, 8),
    (subscription_cancel, 5),
    (account_change, 6),
    (fraud_alert, 4),
    (loan_hardship, 3),
    (insurance_question, 6),
    (prescription_refill, 5),
    (boiler_repair, 6),
    (gas_emergency, 2),
    (wants_a_person, 6),
    (high_value, 4),
    (frustrated, 5),
]


def demo_package(rng: random.Random, n: int, *, run: str = "demo") -> dict[str, Any]:
    """The n-th package of a run, as JSON an agent would post to /api/v1/escalations."""
    scenarios, weights = zip(*SCENARIOS, strict=True)
    scenario = rng.choices(scenarios, weights=weights, k=1)[0]
    package = scenario(rng)
    package["external_id"] = f"{run}-{n:06d}"
    return package


def demo_follow_up(rng: random.Random) -> dict[str, Any]:
    """A body for POST /api/v1/escalations/{id}/messages: the customer adds a turn."""
    text, sentiment = rng.choice(FOLLOW_UPS)
    return {
        "messages": [
            {
                "role": "customer",
                "text": text,
                "at": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "sentiment": sentiment,
            }
        ]
    }


def demo_cancel_reason(rng: random.Random) -> str:
    return rng.choice(
        [
            "The customer found the answer in the help centre and closed the chat.",
            "The customer resolved it with their bank directly.",
            "Duplicate: the customer opened a new conversation.",
            "The customer withdrew the request.",
        ]
    )
