"""The outbox: a message is a row per channel before it is sent, and its dedupe key is never
sent twice.

`enqueue` decides, per channel, whether the message goes out (policy: opt-outs, an address for
the channel) and from when (policy: quiet hours), and writes the rows; sending is a task that
renders the message in the customer's language and time zone when it is sent.  A send that fails
is tried again a bounded number of times (policy), then ends `failed` where staff see it.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from billing import channels, policy
from billing.messages import MESSAGES, Facts, Message, facts_of, render
from billing.models import BillingChange, BillingCustomer, Delivery
from billing.money import customer_zone
from billing.policy import Channel

logger = logging.getLogger(__name__)

Status = Delivery.Status


def dedupe_key(*, customer: BillingCustomer, about: str, step: str, channel: Channel) -> str:
    return f"{customer.pk}:{about}:{step}:{channel}"


def enqueue(
    *,
    customer: BillingCustomer,
    message: Message,
    about: str,
    step: str,
    facts: Facts,
    change: BillingChange | None = None,
) -> list[Delivery]:
    """Write the message's deliveries (one per channel) unless they exist, and send what is due
    once the transaction commits.  `about` names the object ("invoice:in_…"), `step` the moment
    ("paid"): together they make the message once-only."""
    if not isinstance(facts, message.facts):
        raise TypeError(f"message {message.name!r} is written from {message.facts.__name__}")
    rules = policy.current()
    now = timezone.now()
    zone = customer_zone(customer.time_zone)
    context = facts.model_dump(mode="json")
    created: list[Delivery] = []
    for channel in message.channels:
        reason = policy.delivery_suppression(
            category=message.category,
            channel=channel,
            opt_outs=list(customer.opt_outs or []),
            has_address=bool(channels.address(customer=customer, channel=channel)),
        )
        if reason:
            status = Status.SUPPRESSED
        elif channel == Channel.IN_APP:
            status = Status.SENT  # the row is what the portal shows
        else:
            status = Status.PENDING
        try:
            with transaction.atomic():
                delivery = Delivery.objects.create(
                    customer=customer,
                    message=message.name,
                    category=message.category,
                    channel=channel,
                    about=about,
                    dedupe_key=dedupe_key(customer=customer, about=about, step=step, channel=channel),
                    context=context,
                    change=change,
                    status=status,
                    suppressed_reason=reason or "",
                    send_after=policy.send_after(
                        quiet=rules.quiet_hours,
                        prompted=message.prompted,
                        channel=channel,
                        now=now,
                        zone=zone,
                    ),
                    sent_at=now if status == Status.SENT else None,
                )
        except IntegrityError:
            continue
        created.append(delivery)
        if status == Status.PENDING and delivery.send_after <= now:
            _send_on_commit(delivery.pk)
    return created


def _send_on_commit(delivery_id: int) -> None:
    def send_later() -> None:
        from billing import tasks  # tasks import this module

        tasks.send_delivery.delay(delivery_id)

    transaction.on_commit(send_later)


def send(*, delivery_id: int) -> bool:
    """Send one delivery if it is due and not sent; True when this call sent it.  Raises
    channels.ChannelUnavailable when the transport is down (after recording the try)."""
    try:
        with transaction.atomic():
            delivery = (
                # Lock the delivery only: without `of`, PostgreSQL also locks the joined customer
                # row, which webhook processing holds while it calls Stripe, and skip_locked would
                # then leave the message unsent until the periodic sweep.
                Delivery.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("customer", "customer__user")
                .filter(pk=delivery_id, status=Status.PENDING, send_after__lte=timezone.now())
                .first()
            )
            if delivery is None:
                return False
            _transmit(delivery)
            delivery.attempts += 1
            delivery.status = Status.SENT
            delivery.sent_at = timezone.now()
            delivery.last_error = ""
            delivery.save(update_fields=["attempts", "status", "sent_at", "last_error"])
    except channels.ChannelUnavailable as exc:
        _failed(delivery_id=delivery_id, error=exc, outage=True)
        raise
    except Exception as exc:
        logger.exception("delivery %s: could not be sent", delivery_id)
        _failed(delivery_id=delivery_id, error=exc, outage=False)
        return False
    logger.info("delivery %s (%s, %s) sent", delivery.pk, delivery.message, delivery.channel)
    return True


def _transmit(delivery: Delivery) -> None:
    customer = delivery.customer
    message = MESSAGES[delivery.message]
    channel = Channel(delivery.channel)
    with translation.override(customer.language), timezone.override(customer_zone(customer.time_zone)):
        rendered = render(
            message=message,
            channel=channel,
            facts=facts_of(message=message, context=delivery.context),
            customer=customer,
        )
    channels.send(channel=channel, to=channels.address(customer=customer, channel=channel), rendered=rendered)


def _failed(*, delivery_id: int, error: Exception, outage: bool) -> None:
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update(of=("self",)).filter(pk=delivery_id).first()
        if delivery is None or delivery.status != Status.PENDING:
            return
        failed = policy.failure(
            policy=policy.current().messages,
            attempts=delivery.attempts,
            error=error,
            outage=outage,
            waiting_since=delivery.created_at,
            now=timezone.now(),
        )
        delivery.attempts, delivery.last_error = failed.attempts, failed.error
        if failed.retry_at is None:
            delivery.status = Status.FAILED
            logger.error("delivery %s failed for good after %s attempts", delivery_id, delivery.attempts)
        else:
            delivery.send_after = failed.retry_at
        delivery.save(update_fields=["attempts", "last_error", "status", "send_after"])


def due(*, now: dt.datetime, limit: int) -> list[int]:
    """Deliveries waiting to be sent whose time has come (quiet hours over, backoff done)."""
    return list(
        Delivery.objects.filter(status=Status.PENDING, send_after__lte=now)
        .order_by("send_after")
        .values_list("pk", flat=True)[:limit]
    )
