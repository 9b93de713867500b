"""The change engine: every write the customer (or staff) asks for is a BillingChange row first,
then applied through the gateway, and declared once as a change kind.

A change kind declares, in one class in the module of its area (billing/services/<area>.py):

- `name`, `label` (the change's title, translated) and `template` (how its result is shown);
- `Params`: typed, frozen parameters, validated when the change is recorded;
- `Result`: what applying it found (facts only, never a secret);
- `apply()`: how it is applied (Stripe through the gateway, then the mirror);
- `messages` and `confirmation()`: which declared message confirms it, written from which facts;
- `dedupe`: the parameters that make a second submit the same change (a caller's own key, such
  as a form's one-time token, is always honoured too);
- `supersedes`: whether a newer change of the kind replaces a pending older one;
- optionally `awaiting_approval()` and `approved()`, for a kind whose result can wait on the
  customer approving a payment with their bank (3-D Secure): billing.services.approvals then
  shows the bank's check on the change page and records the payment, however it is heard of.

`request()` records a change and tries it at once within the customer's request budget; a change
Stripe could not take stays pending and a worker tries it again (billing.tasks), always with
idempotency keys derived from the change's id, so it is applied once however often it is tried.
Failure is bounded (billing.policy): an outage waits, an unexpected error is logged and retried a
few times, and either ends `failed` with an error staff can read.  Each change is handled on its
own, so one bad change never holds up another.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any, ClassVar, Generic, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from pydantic import BaseModel, ConfigDict

from billing import gateway, outbox, policy
from billing.errors import OUTAGE_CODES, ActionRequired, BillingError, CardDeclined, StripeUnavailable
from billing.messages import Facts, Message
from billing.models import BillingChange, BillingCustomer

logger = logging.getLogger(__name__)

Status = BillingChange.Status
# Who asked for a change: the customer's user, staff, or nobody (a job).
Actor = AbstractBaseUser | AnonymousUser | None

# Set while some change waits out an outage: lets a successful apply look for them without a query.
_WAITING = "billing:changes:waiting-for-stripe"


class ChangeParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class ChangeResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Confirmation:
    """The message that confirms an applied change, and the facts it is written from."""

    def __init__(self, message: Message, facts: Facts) -> None:
        self.message = message
        self.facts = facts


P = TypeVar("P", bound=ChangeParams)
R = TypeVar("R", bound=ChangeResult)


class ChangeKind(Generic[P, R]):
    name: ClassVar[str]
    label: ClassVar[Promise]
    template: ClassVar[str]
    messages: ClassVar[tuple[Message, ...]]
    dedupe: ClassVar[tuple[str, ...]]
    supersedes: ClassVar[bool]
    Params: type[P]
    Result: type[R]

    # What every kind must define.  Not abstract methods: a kind lacking one is still registered,
    # so that `manage.py check` (billing/checks.py) names everything it lacks at once.
    def apply(self, *, change: BillingChange, customer: BillingCustomer, params: P) -> R:
        raise NotImplementedError

    def confirmation(self, *, change: BillingChange, params: P, result: R) -> Confirmation | None:
        raise NotImplementedError

    # Optional: a kind whose payment can wait on the customer's bank (3-D Secure).
    def awaiting_approval(self, *, result: R) -> str:
        """The invoice whose payment the customer is to approve, or "" if none."""
        return ""

    def approved(
        self, *, change: BillingChange, customer: BillingCustomer, result: R, invoice: gateway.Invoice
    ) -> tuple[R, Confirmation | None]:
        """The result once that invoice is paid, and the message that then confirms the change."""
        raise NotImplementedError


KINDS: dict[str, ChangeKind[Any, Any]] = {}

K = TypeVar("K", bound=ChangeKind[Any, Any])


def change_kind(cls: type[K]) -> type[K]:
    """Class decorator: register a kind under its name (once)."""
    if cls.name in KINDS:
        raise ValueError(f"change kind {cls.name!r} is declared twice")
    KINDS[cls.name] = cls()
    return cls


def kind_of(change: BillingChange) -> ChangeKind[Any, Any]:
    return KINDS[change.kind]


def result_of(change: BillingChange) -> ChangeResult | None:
    """An applied change's result, typed as its kind declares it."""
    if change.status != Status.APPLIED or not change.result:
        return None
    result: ChangeResult = kind_of(change).Result.model_validate(change.result)
    return result


# --------------------------------------------------------------------------- recording


def _dedupe_key(kind: ChangeKind[Any, Any], params: ChangeParams | None, key: str) -> str | None:
    parts = [f"{name}={getattr(params, name)}" for name in kind.dedupe]
    if key:
        parts.append(f"key={key}")
    joined = "&".join(parts)
    if len(joined) > 200:
        joined = hashlib.sha256(joined.encode()).hexdigest()
    return joined or None


def submitted(*, customer: BillingCustomer, kind: ChangeKind[Any, Any], key: str) -> BillingChange | None:
    """The change an earlier submit with this caller's key made, if any (for kinds that dedupe on
    the caller's key alone: a second submit finds it even once its target is gone)."""
    if not key or kind.dedupe:
        return None
    # With no parameters of its own in the key (`dedupe` empty), the caller's key is the whole of it.
    dedupe_key = _dedupe_key(kind, None, key)
    return BillingChange.objects.filter(customer=customer, kind=kind.name, dedupe_key=dedupe_key).first()


def request(
    *, customer: BillingCustomer, kind: ChangeKind[P, Any], params: P, requested_by: Actor, key: str = ""
) -> BillingChange:
    """Record the change and try it at once, within the budget of a waiting customer.  A double
    submit (the same dedupe key) returns the first change instead of making a second."""
    if not isinstance(params, kind.Params):
        raise TypeError(f"{kind.name} takes {kind.Params.__name__}, not {type(params).__name__}")
    dedupe_key = _dedupe_key(kind, params, key)
    with transaction.atomic():
        # The customer's row lock makes two simultaneous submits find one another, and orders
        # this change after any of theirs being applied right now.
        BillingCustomer.objects.select_for_update().filter(pk=customer.pk).first()
        if dedupe_key is not None:
            found = BillingChange.objects.filter(
                customer=customer, kind=kind.name, dedupe_key=dedupe_key
            ).first()
            if found is not None:
                return found
        change = BillingChange.objects.create(
            customer=customer,
            kind=kind.name,
            params=params.model_dump(mode="json"),
            dedupe_key=dedupe_key,
            requested_by_id=requested_by.pk if requested_by is not None else None,
            next_attempt_at=timezone.now(),
        )
        if kind.supersedes:
            # Only the newest choice counts: an older one still waiting would undo it when applied.
            BillingChange.objects.filter(customer=customer, kind=kind.name, status=Status.PENDING).exclude(
                pk=change.pk
            ).update(status=Status.SUPERSEDED, superseded_by=change, next_attempt_at=None)
    return _tried_now(change)


def retry_now(*, change: BillingChange) -> BillingChange:
    """The customer asks to try a pending change again without waiting for its backoff."""
    BillingChange.objects.filter(pk=change.pk, status=Status.PENDING).update(next_attempt_at=timezone.now())
    return _tried_now(change)


def _tried_now(change: BillingChange) -> BillingChange:
    with gateway.interactive():
        apply(change_id=change.pk)
    change.refresh_from_db()
    if change.status == Status.PENDING:
        from billing import tasks  # tasks import this module

        tasks.enqueue_change(change=change)
    return change


# --------------------------------------------------------------------------- applying


def apply(*, change_id: Any) -> None:
    """Apply one pending change.  Safe to call any number of times, from anywhere, concurrently:
    the change's row lock makes one caller do the work, its status makes later callers no-ops,
    and Stripe's idempotency keys make a repeated request after a crash a replay."""
    customer_id = BillingChange.objects.filter(pk=change_id).values_list("customer_id", flat=True).first()
    if customer_id is None:
        return
    try:
        with transaction.atomic():
            # Customer first, then the change: the same order as webhook processing and rechecks,
            # so concurrent work on one customer queues up instead of deadlocking.
            customer = BillingCustomer.objects.select_for_update().get(pk=customer_id)
            change = BillingChange.objects.select_for_update().filter(pk=change_id).first()
            if change is None or change.status != Status.PENDING:
                return
            kind = kind_of(change)
            params = kind.Params.model_validate(change.params, strict=False)
            change.customer = customer
            # What a result says in words (a plan's name and interval) is in the customer's
            # language, whoever applies it: their request, a worker, or the beat's job.
            with translation.override(customer.language):
                result = kind.apply(change=change, customer=customer, params=params)
            now = timezone.now()
            change.attempts += 1
            change.status = Status.APPLIED
            change.result = result.model_dump(mode="json")
            change.applied_at = change.attempted_at = now
            change.error_code = change.error_message = change.decline_code = ""
            change.next_attempt_at = None
            change.save()
            with translation.override(customer.language):
                confirmation = kind.confirmation(change=change, params=params, result=result)
            if confirmation is not None:
                confirm(change=change, customer=customer, confirmation=confirmation, step="applied")
    except StripeUnavailable as exc:
        _try_later(change_id=change_id, error=exc, outage=True)
        return
    except ActionRequired as exc:
        _end(change_id=change_id, status=Status.ACTION_REQUIRED, error=exc, detail=f"intent {exc.intent_id}")
        return
    except BillingError as exc:
        _end(change_id=change_id, status=Status.FAILED, error=exc, detail=exc.message)
        return
    except Exception as exc:
        logger.exception("change %s: unexpected error while applying it", change_id)
        _try_later(change_id=change_id, error=exc, outage=False)
        return
    _wake_waiting()


def confirm(
    *, change: BillingChange, customer: BillingCustomer, confirmation: Confirmation, step: str
) -> None:
    """Send the message that confirms a change at `step` ("applied", "approved"): once, whoever
    calls it how often (the outbox's key is the change and the step)."""
    kind = kind_of(change)
    if confirmation.message not in kind.messages:
        raise ValueError(f"{kind.name} is not confirmed by {confirmation.message.name}")
    outbox.enqueue(
        customer=customer,
        message=confirmation.message,
        about=f"change:{change.pk}",
        step=step,
        facts=confirmation.facts,
        change=change,
    )


def _try_later(*, change_id: Any, error: Exception, outage: bool) -> None:
    with transaction.atomic():
        change = BillingChange.objects.select_for_update().filter(pk=change_id).first()
        if change is None or change.status != Status.PENDING:
            return
        failed = policy.failure(
            policy=policy.current().changes,
            attempts=change.attempts,
            error=error,
            outage=outage,
            waiting_since=change.created_at,
            now=timezone.now(),
        )
        change.attempts, change.attempted_at, change.next_attempt_at = (
            failed.attempts,
            timezone.now(),
            failed.retry_at,
        )
        if isinstance(error, BillingError):
            change.error_code, change.error_message = error.code, error.message[:2000]
        else:
            change.error_code, change.error_message = "internal_error", failed.error
        if failed.retry_at is None:
            change.status = Status.FAILED
        change.save()
    if change.status == Status.FAILED:
        logger.error(
            "change %s failed for good after %s attempts: %s",
            change_id,
            change.attempts,
            change.error_message,
        )
    elif outage:
        cache.set(_WAITING, True, timeout=None)
        logger.warning("change %s waits for Stripe (%s)", change_id, change.error_code)


def _end(*, change_id: Any, status: str, error: BillingError, detail: str) -> None:
    with transaction.atomic():
        change = BillingChange.objects.select_for_update().filter(pk=change_id).first()
        if change is None or change.status != Status.PENDING:
            return
        change.attempts += 1
        change.attempted_at = timezone.now()
        change.status = status
        change.error_code = error.code
        change.error_message = detail[:2000]
        change.decline_code = error.decline_code if isinstance(error, CardDeclined) else ""
        change.next_attempt_at = None
        change.save()
    logger.info("change %s ended %s: %s", change_id, status, error.code)


def _wake_waiting() -> None:
    """Stripe answered: changes waiting out an outage are due now instead of after their backoff."""
    if not cache.get(_WAITING):
        return
    cache.delete(_WAITING)
    woken = BillingChange.objects.filter(
        status=Status.PENDING, error_code__in=OUTAGE_CODES, next_attempt_at__gt=timezone.now()
    ).update(next_attempt_at=timezone.now())
    if woken:
        logger.info("Stripe answers again: %s waiting change(s) are due", woken)
        from billing import tasks  # tasks import this module

        tasks.enqueue_due_changes()


def apply_due(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Apply pending changes whose next try is due, each on its own; returns how many were tried.
    With none due but some waiting out an outage, the one that waited longest is tried as a probe."""
    now = now or timezone.now()
    pending = BillingChange.objects.filter(status=Status.PENDING)
    due = list(
        pending.filter(next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if not due:
        probe = (
            pending.filter(error_code__in=OUTAGE_CODES)
            .order_by("attempted_at")
            .values_list("pk", "attempted_at")
            .first()
        )
        if probe and policy.probe_due(policy=policy.current().changes, attempted_at=probe[1], now=now):
            due = [probe[0]]
    for change_id in due:
        try:
            apply(change_id=change_id)
        except Exception:  # the database itself, say; the next change may still go
            logger.exception("change %s could not be tried", change_id)
    return len(due)
