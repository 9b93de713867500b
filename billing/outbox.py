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

from celery import current_task
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from billing import channels, policy
from billing.messages import MESSAGES, Facts, Message, facts_of, render
from billing.models import BillingChange, BillingCustomer, Delivery, RecoveryCase
from billing.money import customer_zone
from billing.policy import Category, Channel

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
    via: tuple[Channel, ...] | None = None,
    case: RecoveryCase | None = None,
) -> list[Delivery]:
    """Write the message's deliveries (one per channel) unless they exist, and send what is due
    once the transaction commits.  `about` names the object ("invoice:in_…"), `step` the moment
    ("paid"): together they make the message once-only.  `via` narrows the message's channels (a
    recovery step widens them as it escalates); `case` is the recovery case it belongs to."""
    if not isinstance(facts, message.facts):
        raise TypeError(f"message {message.name!r} is written from {message.facts.__name__}")
    rules = policy.current()
    now = timezone.now()
    zone = customer_zone(customer.time_zone)
    context = facts.model_dump(mode="json")
    created: list[Delivery] = []
    wanted = message.channels if via is None else tuple(c for c in message.channels if c in via)
    for channel in wanted:
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
                    case=case,
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

        if not _in_a_worker():
            # A web request does not wait on the mail server: a worker sends it.
            tasks.send_delivery.delay(delivery_id)
            return
        # Already in a worker (processing the event that prompted it): send it now, rather than
        # queue it behind everything that arrived meanwhile.  An outage leaves it to its task.
        try:
            send(delivery_id=delivery_id)
        except channels.ChannelUnavailable:
            delivery = Delivery.objects.filter(pk=delivery_id, status=Status.PENDING).first()
            if delivery is not None:
                wait = max(1.0, (delivery.send_after - timezone.now()).total_seconds())
                tasks.send_delivery.apply_async(args=(delivery_id,), countdown=wait)

    transaction.on_commit(send_later)


def _in_a_worker() -> bool:
    # `current_task` is a proxy, false when no task runs (a web request, a shell).
    return bool(current_task) and not current_task.request.is_eager


def send(*, delivery_id: int) -> bool:
    """Send one delivery if it is due and not sent; True when this call sent it.  Raises
    channels.ChannelUnavailable when the transport is down (after recording the try).

    The delivery is claimed (`sending`, committed) before it is handed to the transport and marked
    sent after: a worker killed in between leaves it claimed, and a claimed delivery is never sent
    again by itself (`abandoned_claims` ends it failed, for staff to look at), because the message
    may well have gone.  Twice is worse than once late: the customer would get it twice."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return False
    try:
        _transmit(delivery)
    except channels.ChannelUnavailable as exc:
        _failed(delivery_id=delivery_id, error=exc, outage=True)
        raise
    except channels.MessageRefused as exc:
        logger.warning("delivery %s: refused by the provider: %s", delivery_id, exc)
        _failed(delivery_id=delivery_id, error=exc, outage=False, final=True)
        return False
    except Exception as exc:
        logger.exception("delivery %s: could not be sent", delivery_id)
        _failed(delivery_id=delivery_id, error=exc, outage=False)
        return False
    Delivery.objects.filter(pk=delivery_id, status=Status.SENDING).update(
        attempts=delivery.attempts + 1, status=Status.SENT, sent_at=timezone.now(), last_error=""
    )
    logger.info("delivery %s (%s, %s) sent", delivery.pk, delivery.message, delivery.channel)
    return True


def _claim(delivery_id: int) -> Delivery | None:
    with transaction.atomic():
        delivery = (
            # Lock the delivery only: without `of`, PostgreSQL also locks the joined customer
            # row, which webhook processing holds while it calls Stripe, and skip_locked would
            # then leave the message unsent until the periodic sweep.
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("customer", "customer__user", "case")
            .filter(pk=delivery_id, status=Status.PENDING, send_after__lte=timezone.now())
            .first()
        )
        if delivery is None:
            return None
        stale = "case_closed" if _case_closed(delivery) else _no_longer_due(delivery)
        if stale:
            delivery.status, delivery.suppressed_reason = Status.SUPPRESSED, stale
            delivery.save(update_fields=["status", "suppressed_reason"])
            return None
        delivery.status, delivery.claimed_at = Status.SENDING, timezone.now()
        delivery.save(update_fields=["status", "claimed_at"])
    return delivery


def _case_closed(delivery: Delivery) -> bool:
    """A reminder of a payment that has since been made, or written off, is not sent."""
    case = delivery.case
    return (
        case is not None
        and case.status != RecoveryCase.Status.OPEN
        and MESSAGES[delivery.message].category != Category.CONFIRMATION
    )


def _no_longer_due(delivery: Delivery) -> str | None:
    still_due = MESSAGES[delivery.message].still_due
    return still_due(delivery) if still_due is not None else None


def abandoned_claims(*, now: dt.datetime, older_than: dt.timedelta) -> int:
    """Deliveries whose worker died while sending them: failed, with a note for staff (they may
    or may not have reached the customer), never sent again by themselves."""
    return Delivery.objects.filter(status=Status.SENDING, claimed_at__lt=now - older_than).update(
        status=Status.FAILED,
        last_error="The worker stopped while sending this message; it may or may not have been delivered.",
    )


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
            delivery_id=delivery.pk,
        )
    channels.send(channel=channel, to=channels.address(customer=customer, channel=channel), rendered=rendered)


def _failed(*, delivery_id: int, error: Exception, outage: bool, final: bool = False) -> None:
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update(of=("self",)).filter(pk=delivery_id).first()
        if delivery is None or delivery.status not in (Status.PENDING, Status.SENDING):
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
        if failed.retry_at is None or final:
            delivery.status = Status.FAILED
            logger.error("delivery %s failed for good after %s attempts", delivery_id, delivery.attempts)
        else:
            delivery.status = Status.PENDING
            delivery.send_after = failed.retry_at
        delivery.save(update_fields=["attempts", "last_error", "status", "send_after"])


def due(*, now: dt.datetime, limit: int) -> list[int]:
    """Deliveries waiting to be sent whose time has come (quiet hours over, backoff done)."""
    return list(
        Delivery.objects.filter(status=Status.PENDING, send_after__lte=now)
        .order_by("send_after")
        .values_list("pk", flat=True)[:limit]
    )
