"""Celery tasks for the decision back to the agent: thin drivers of escalations.delivery."""

from __future__ import annotations

from celery import shared_task

from escalations.delivery import delivery_attempt, delivery_sweep

# Retries due within this long are scheduled on the broker so they go out on time; later
# ones are left to the sweep (every 30 s), because a broker holding a countdown for hours
# (Redis redelivers unacked messages after its visibility timeout) buys nothing.
PROMPT_RETRY_MAX_SECONDS = 10 * 60


@shared_task(name="escalations.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id: int) -> None:
    """One attempt at a webhook delivery. Safe to run early or twice: the row decides."""
    outcome = delivery_attempt(delivery_id=delivery_id)
    retry_in = outcome.retry_in if outcome is not None else None
    if retry_in is not None and retry_in <= PROMPT_RETRY_MAX_SECONDS:
        deliver_webhook.apply_async(args=[delivery_id], countdown=retry_in)


@shared_task(name="escalations.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> int:
    """Re-drive every delivery that is due: never sent, retry due, or a dead worker's lease."""
    return delivery_sweep()
