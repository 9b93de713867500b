"""Demo customers for `manage.py demo` (`make demo`): one login per state worth showing, made in
the emulator and mirrored into the database.

This is demo tooling, not portal code.  It arranges Stripe-side state the portal never asks for
(test clocks, failing cards, the card updater, paused collection, a cancelled subscription) or
would make only through its change engine (a plan change scheduled for the renewal), so it talks
to the emulator with the official client directly; the portal itself reaches Stripe only through
billing.gateway.  The mirror is filled by billing.sync.reconcile_customer, not by
waiting for webhooks (the portal's webhook endpoint is registered with the emulator only once the
portal serves).  The failed renewals are the exception: their events, as the emulator emitted
them, go through the webhook's own code (billing.webhooks.receive, then billing.handlers.process),
so the recovery engine opens their cases and sends their messages as it would for Stripe's.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import requests
import stripe
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.test import override_settings
from django.utils import timezone

from billing import handlers, outbox, policy, predunning, sync, webhooks
from billing.models import (
    BillingChange,
    BillingCustomer,
    Delivery,
    Extension,
    Invoice,
    Price,
    RecoveryCase,
    Subscription,
)
from billing.money import customer_zone
from billing.services import backup, cards, extensions, pauses, recovery
from billing.services import predunning as predunning_scan
from billing.services.customers import customer_create, ensure_stripe_customer
from stripe_emulator.webhooks import sign

PASSWORD = "portal-demo"
ADMIN_EMAIL = "admin@example.com"
# How long to wait for the emulator to finish advancing a test clock.
CLOCK_DEADLINE_SECONDS = 60.0
# Signs the events the seed hands to the webhook code when no endpoint secret is set yet (the
# demo registers its endpoint after seeding); never used for a request from outside.
SEED_WEBHOOK_SECRET = "whsec_demo_seed_only"
# Alan's mobile number, for the recovery steps that text (E.164).
ALAN_PHONE = "+46701234567"
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Login:
    email: str
    state: str


class SeedError(RuntimeError):
    """The emulator did not end up in the state a demo customer is meant to show."""


def api() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        stripe_version=stripe.api_version,
        max_network_retries=0,
    )


def _emulator_post(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{settings.STRIPE_API_BASE}{path}", json=payload, timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def register_webhook(*, url: str) -> str:
    """An endpoint for every event type at `url`; returns its signing secret (shown only once)."""
    endpoint = api().v1.webhook_endpoints.create(
        params={"url": url, "enabled_events": ["*"], "description": "make demo"}
    )
    secret = endpoint.secret
    if not secret:
        raise SeedError("The emulator returned no webhook signing secret.")
    return secret


# --------------------------------------------------------------------------- building blocks


def _user(*, email: str, name: str, superuser: bool = False) -> AbstractUser:
    first, _, last = name.partition(" ")
    model = get_user_model()
    make = model.objects.create_superuser if superuser else model.objects.create_user
    user: AbstractUser = make(
        username=email, email=email, password=PASSWORD, first_name=first, last_name=last
    )
    # Verified, so allauth (ACCOUNT_EMAIL_VERIFICATION = "mandatory") lets them straight in.
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def _portal_customer(*, email: str, name: str, language: str, currency: str) -> BillingCustomer:
    """The login and its billing customer, as a sign-up leaves them: nothing at Stripe yet."""
    user = _user(email=email, name=name)
    customer = customer_create(user=user, email=email, language=language)
    customer.name = name
    customer.currency = currency
    customer.save(update_fields=["name", "currency"])
    return customer


def _customer(
    *, email: str, name: str, language: str, currency: str, test_clock: str | None = None
) -> BillingCustomer:
    customer = _portal_customer(email=email, name=name, language=language, currency=currency)
    if test_clock is None:
        ensure_stripe_customer(customer=customer)
    else:
        # The portal never creates a customer on a test clock; only a demo moves time.
        created = api().v1.customers.create(
            params={
                "email": email,
                "name": name,
                "preferred_locales": [language],
                "metadata": {"portal_customer": str(customer.pk)},
                "test_clock": test_clock,
            }
        )
        customer.stripe_customer_id = created.id
        customer.save(update_fields=["stripe_customer_id"])
    return customer


def _stripe_id(customer: BillingCustomer) -> str:
    assert customer.stripe_customer_id
    return customer.stripe_customer_id


def _add_card(customer: BillingCustomer, test_card: str) -> str:
    """Attach a test card (`pm_card_…`) and make it the customer's default; returns its id."""
    client = api()
    pm = client.v1.payment_methods.attach(test_card, params={"customer": _stripe_id(customer)})
    client.v1.customers.update(
        _stripe_id(customer), params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    return pm.id


def _price_id(lookup_key: str) -> str:
    price_id = Price.objects.get(lookup_key=lookup_key, active=True).stripe_price_id
    assert price_id, f"{lookup_key} is not synced to Stripe"
    return price_id


def _subscribe(customer: BillingCustomer, lookup_key: str) -> stripe.Subscription:
    return api().v1.subscriptions.create(
        params={"customer": _stripe_id(customer), "items": [{"price": _price_id(lookup_key)}]}
    )


def _month_before(moment: dt.datetime) -> dt.datetime:
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _advance_clock(clock_id: str, *, to: int) -> None:
    client = api()
    client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": to})
    deadline = time.monotonic() + CLOCK_DEADLINE_SECONDS
    while client.v1.test_helpers.test_clocks.retrieve(clock_id).status != "ready":
        if time.monotonic() > deadline:
            raise SeedError(f"Test clock {clock_id} is still advancing after {CLOCK_DEADLINE_SECONDS:.0f} s.")
        time.sleep(0.1)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SeedError(message)


def _decline(payment_method: str, code: str) -> None:
    """The saved card starts declining its charges with `code`, as a bank would."""
    _emulator_post(f"/_emulator/payment_methods/{payment_method}/decline", {"decline_code": code})


def _event_ids() -> set[str]:
    return {event["id"] for event in _events()}


def _events() -> list[dict[str, Any]]:
    """Every event the emulator has emitted, oldest first, as the JSON Stripe sends."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    headers = {"Authorization": f"Bearer {settings.STRIPE_API_KEY}", "Stripe-Version": stripe.api_version}
    while True:
        response = requests.get(
            f"{settings.STRIPE_API_BASE}/v1/events", params=params, headers=headers, timeout=10
        )
        response.raise_for_status()
        page = response.json()
        events.extend(page["data"])
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    events.reverse()  # listed newest first
    return events


def _deliver_events(customer: BillingCustomer, *, after: set[str]) -> int:
    """The customer's events emitted since `after` was taken, through the webhook's code: verified
    and stored (billing.webhooks.receive), then processed (billing.handlers.process, what the
    eager Celery task runs on commit; run here too so the outcome never waits for a commit).
    Then the messages that are due are sent, as the outbox's task does on commit."""
    stripe_id = _stripe_id(customer)
    secret = settings.STRIPE_WEBHOOK_SECRET or SEED_WEBHOOK_SECRET
    count = 0
    with override_settings(STRIPE_WEBHOOK_SECRET=secret):
        for event in _events():
            obj = event["data"]["object"]
            if event["id"] in after or stripe_id not in (obj.get("customer"), obj.get("id")):
                continue
            payload = json.dumps(event).encode()
            row = webhooks.receive(payload=payload, signature=sign(payload, secret, int(time.time())))
            if row is not None:
                handlers.process(event_pk=row.pk)
            count += 1
    _send_due_messages()
    return count


def _send_due_messages() -> None:
    for delivery_id in outbox.due(now=timezone.now(), limit=500):
        outbox.send(delivery_id=delivery_id)


def _case(customer: BillingCustomer) -> RecoveryCase:
    case = RecoveryCase.objects.filter(customer=customer, status=RecoveryCase.Status.OPEN).first()
    _check(case is not None, f"{customer.email}: the failed renewal opened no recovery case")
    assert case is not None
    return case


def _steps_as_of(case: RecoveryCase, *days: float) -> None:
    """Run the recovery sweep as the beat job would on each of those days after the failure, so
    the demo shows the later reminders at once (they are sent now, written as of that day)."""
    for day in days:
        recovery.send_due_steps(now=case.opened_at + day * DAY, limit=100)
        _send_due_messages()


def _failed_renewal(
    *,
    email: str,
    name: str,
    decline: str,
    months_ago: dt.timedelta = dt.timedelta(0),
    phone: str = "",
    at_failure: Callable[[dt.datetime], AbstractContextManager[Any]] | None = None,
    before_failure: Callable[[BillingCustomer], None] | None = None,
) -> BillingCustomer:
    """Subscribed a month before `months_ago` on a test clock, paid with the Visa ending 0341 told
    to decline with `decline` from then on; the clock moves past the renewal's first attempt (before
    Stripe's first retry), and the emulator's events reach the portal's webhook code (inside
    `at_failure(the clock's time)` if given)."""
    start = _month_before(timezone.now() - months_ago) - dt.timedelta(hours=3)
    clock = api().v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(start.timestamp()), "name": f"demo: payment failed ({decline})"}
    )
    customer = _customer(email=email, name=name, language="en", currency="eur", test_clock=clock.id)
    if phone:
        customer.phone = phone
        customer.save(update_fields=["phone"])
    first_card = _add_card(customer, "pm_card_visa")
    sub = _subscribe(customer, "standard_month_eur")
    card = _add_card(customer, "pm_card_chargeCustomerFail")
    api().v1.payment_methods.detach(first_card)
    sync.reconcile_customer(customer_id=customer.pk)
    _decline(card, decline)
    if before_failure is not None:
        before_failure(customer)
    renewal = sub["items"]["data"][0]["current_period_end"]
    before = _event_ids()
    # Past the renewal invoice's finalization (an hour) and its first attempt, before the first retry.
    at = renewal + 2 * 3600
    _advance_clock(clock.id, to=at)
    with at_failure(dt.datetime.fromtimestamp(at, tz=dt.UTC)) if at_failure else nullcontext():
        _deliver_events(customer, after=before)
    return customer


def _subscription(customer: BillingCustomer) -> Subscription:
    sub = customer.subscriptions.select_related("price").first()
    _check(sub is not None, f"{customer.email}: no subscription in the mirror")
    assert sub is not None
    return sub


# --------------------------------------------------------------------------- the demo customers


def _subscriber(
    *, email: str, name: str, language: str, currency: str, card: str, lookup_key: str
) -> BillingCustomer:
    customer = _customer(email=email, name=name, language=language, currency=currency)
    _add_card(customer, card)
    _subscribe(customer, lookup_key)
    return customer


def _healthy() -> BillingCustomer:
    return _subscriber(
        email="ada@example.com", name="Ada Lovelace", language="en", currency="eur", card="pm_card_visa",
        lookup_key="standard_month_eur",
    )  # fmt: skip


def _card_expiring() -> BillingCustomer:
    customer = _customer(email="grace@example.com", name="Grace Hopper", language="en", currency="eur")
    card = _add_card(customer, "pm_card_mastercard")
    _subscribe(customer, "pro_month_eur")
    # The card still works this month, and the next charge falls after the end of it.
    today = timezone.now()
    _emulator_post(
        f"/_emulator/payment_methods/{card}/update_card", {"exp_month": today.month, "exp_year": today.year}
    )
    return customer


def _card_expiring_check(customer: BillingCustomer) -> None:
    today = timezone.now()
    card = customer.payment_methods.filter(stripe_id=customer.default_payment_method_id).first()
    _check(
        card is not None and (card.exp_year, card.exp_month) == (today.year, today.month),
        "grace: the default card does not expire this month",
    )


def _past_due() -> BillingCustomer:
    """Subscribed a month ago on a test clock; the renewal was declined for insufficient funds an
    hour ago.  The recovery case is open: the day-0 email and in-app message went at once, and the
    sweep has been run as of day 3 and day 7 after the failure (a reminder, then a direct email
    with a text message to his mobile)."""
    customer = _failed_renewal(
        email="alan@example.com", name="Alan Turing", decline="insufficient_funds", phone=ALAN_PHONE
    )
    _steps_as_of(_case(customer), 3.5, 7.5)
    return customer


def _sent(customer: BillingCustomer, *, message: str, channel: str) -> Delivery | None:
    return Delivery.objects.filter(
        customer=customer, case__isnull=False, message=message, channel=channel, status=Delivery.Status.SENT
    ).first()


def _past_due_check(customer: BillingCustomer) -> None:
    _check(
        _subscription(customer).status == Subscription.Status.PAST_DUE, "alan: subscription is not past_due"
    )
    _check(customer.invoices.filter(status=Invoice.Status.OPEN).exists(), "alan: no open invoice")
    case = _case(customer)
    _check(case.decline_codes == ["insufficient_funds"] and not case.hard, "alan: not a soft decline")
    for message, channel in (
        ("payment_failed_friendly", "email"),
        ("payment_failed_friendly", "in_app"),
        ("payment_failed_reminder", "email"),
        ("payment_failed_direct", "email"),
        ("payment_failed_direct", "sms"),
    ):
        _check(
            _sent(customer, message=message, channel=channel) is not None, f"alan: no {message} by {channel}"
        )


def _lost_card() -> BillingCustomer:
    """The renewal was declined an hour ago because the card was reported lost: a hard decline, so
    Stripe's retries are stopped and the fix page asks for a new card."""
    return _failed_renewal(email="frances@example.com", name="Frances Allen", decline="lost_card")


def _lost_card_check(customer: BillingCustomer) -> None:
    case = _case(customer)
    _check(
        case.hard and case.action == "update_card" and case.retries_stopped_at is not None,
        "frances: not a hard decline with its retries stopped",
    )
    _check(
        _sent(customer, message="payment_failed_friendly", channel="email") is not None,
        "frances: no failed-payment email",
    )


def _grace_over() -> BillingCustomer:
    """The renewal was declined fifteen days ago (the test clock stands then) and never paid: every
    reminder went on its day, the fourteen days of grace are over, and access is restricted.  The
    portal dates a case from when it hears of the failure, so its events are handled, and the
    sweep runs, with the portal's clock at those days (time-machine, a development tool: the seed
    runs before the portal serves anything)."""
    import time_machine

    customer = _failed_renewal(
        email="hedy@example.com",
        name="Hedy Lamarr",
        decline="insufficient_funds",
        months_ago=15 * DAY,
        at_failure=lambda failed_at: time_machine.travel(failed_at, tick=False),
    )
    case = _case(customer)
    for day in (3.5, 7.5, 11.5):
        with time_machine.travel(case.opened_at + day * DAY, tick=False):
            recovery.send_due_steps(now=timezone.now(), limit=100)
            _send_due_messages()
    recovery.end_due(now=timezone.now(), limit=100)
    return customer


def _grace_over_check(customer: BillingCustomer) -> None:
    case = _case(customer)
    _check(case.grace_ends_at < timezone.now() and case.ended_at is not None, "hedy: grace is not over")
    _check(
        _sent(customer, message="payment_failed_final", channel="email") is not None,
        "hedy: no final notice",
    )


def _with_backup(customer: BillingCustomer) -> None:
    """A Mastercard saved beside the default card and chosen as the backup, with consent."""
    pm = api().v1.payment_methods.attach("pm_card_mastercard", params={"customer": _stripe_id(customer)})
    sync.reconcile_customer(customer_id=customer.pk)
    customer.refresh_from_db()
    card = customer.payment_methods.get(stripe_id=pm.id)
    cards.card_set_backup(customer=customer, card=card, consent=True, requested_by=None)


def _backup_paid() -> BillingCustomer:
    """The renewal was declined on the default card (insufficient funds); the backup card, chosen
    with consent, paid it at the next attempt (the beat job run as of its time): the case is
    recovered by the backup card, and the mailbox has the one message that says which card paid,
    with a link to replace the default card."""
    customer = _failed_renewal(
        email="katherine@example.com",
        name="Katherine Johnson",
        decline="insufficient_funds",
        before_failure=_with_backup,
    )
    before = _event_ids()
    case = _case(customer)
    _check(case.backup_due_at is not None, "katherine: no backup charge planned")
    assert case.backup_due_at is not None
    backup.backup_due(now=case.backup_due_at, limit=100)
    _deliver_events(customer, after=before)
    _send_due_messages()
    return customer


def _backup_paid_check(customer: BillingCustomer) -> None:
    case = RecoveryCase.objects.filter(customer=customer).first()
    _check(
        case is not None and case.outcome == RecoveryCase.Outcome.BACKUP_CARD,
        "katherine: the case was not recovered by the backup card",
    )
    _check(
        Delivery.objects.filter(
            customer=customer, message="backup_card_paid", channel="email", status=Delivery.Status.SENT
        ).exists(),
        "katherine: no backup-card email",
    )
    _check(
        not Delivery.objects.filter(customer=customer, message="payment_recovered").exists(),
        "katherine: a plain thank-you as well",
    )


def _asked_for_time(*, email: str, name: str, days: int, reason: str) -> BillingCustomer:
    customer = _failed_renewal(email=email, name=name, decline="insufficient_funds")
    case = _case(customer)
    until = case.opened_at.astimezone(customer_zone(customer.time_zone)).date() + days * DAY
    extensions.request(customer=customer, until=until, reason=reason, requested_by=customer.user)
    _send_due_messages()
    return customer


def _extended() -> BillingCustomer:
    """The renewal was declined an hour ago; she asked for five more days ("paid on the 25th") and
    the policy agreed at once: "Extended until …" on every page, Stripe's retries and the
    reminders wait, and the beat job charges the card that morning."""
    return _asked_for_time(email="joan@example.com", name="Joan Clarke", days=5, reason="Paid on the 25th")


def _extended_check(customer: BillingCustomer) -> None:
    case = _case(customer)
    extension = customer.extensions.first()
    _check(
        extension is not None
        and extension.status == Extension.Status.APPROVED
        and case.held_since is not None,
        "joan: no extension running",
    )
    _check(
        customer.deliveries.filter(
            message="extension_granted", channel="email", status=Delivery.Status.SENT
        ).exists(),
        "joan: no extension email",
    )


def _extension_queued() -> BillingCustomer:
    """The renewal was declined an hour ago; she asked for twelve more days, beyond what the policy
    agrees at once: the request waits in the staff queue (the admin's Extensions, "waiting for
    review"), where staff approve or deny it with a reason."""
    return _asked_for_time(
        email="radia@example.com",
        name="Radia Perlman",
        days=12,
        reason="My salary comes at the end of the month",
    )


def _extension_queued_check(customer: BillingCustomer) -> None:
    extension = customer.extensions.first()
    _check(
        extension is not None and extension.status == Extension.Status.REQUESTED, "radia: no request queued"
    )


def _paused() -> BillingCustomer:
    """Subscribed twelve days ago on a test clock (now at the present), then paused for two months
    from the portal, as the customer would (Stripe's pause; the resume date is the portal's)."""
    start = timezone.now() - dt.timedelta(days=12)
    clock = api().v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(start.timestamp()), "name": "demo: paused"}
    )
    customer = _customer(
        email="margaret@example.com",
        name="Margaret Hamilton",
        language="en",
        currency="eur",
        test_clock=clock.id,
    )
    _add_card(customer, "pm_card_visa")
    _subscribe(customer, "basic_month_eur")
    _advance_clock(clock.id, to=int(time.time()))
    sync.reconcile_customer(customer_id=customer.pk)
    change = pauses.subscription_pause(
        customer=customer, subscription=_subscription(customer), months=2, requested_by=customer.user
    )
    _check(change.status == BillingChange.Status.APPLIED, f"margaret: the pause is {change.status}")
    return customer


def _paused_check(customer: BillingCustomer) -> None:
    sub = _subscription(customer)
    _check(
        sub.status == Subscription.Status.PAUSED and sub.pause_resumes_at is not None,
        "margaret: the subscription is not paused with a resume date",
    )


def _yearly_swedish() -> BillingCustomer:
    return _subscriber(
        email="astrid@example.com", name="Astrid Lindgren", language="sv", currency="sek", card="pm_card_visa",
        lookup_key="standard_year_sek",
    )  # fmt: skip


def _quarterly_dutch() -> BillingCustomer:
    return _subscriber(
        email="edsger@example.com", name="Edsger Dijkstra", language="nl", currency="eur",
        card="pm_card_mastercard", lookup_key="basic_quarter_eur",
    )  # fmt: skip


def _active_check(customer: BillingCustomer) -> None:
    _check(
        _subscription(customer).status == Subscription.Status.ACTIVE,
        f"{customer.email}: subscription is not active",
    )


def _downgrade_scheduled() -> BillingCustomer:
    """Pro monthly, with a schedule that moves it to Basic monthly at the renewal, made the way
    billing.gateway.schedule_price_at_renewal makes one."""
    customer = _subscriber(
        email="linus@example.com", name="Linus Torvalds", language="en", currency="eur", card="pm_card_visa",
        lookup_key="pro_month_eur",
    )  # fmt: skip
    sub = _stripe_subscription(customer)
    item = sub["items"]["data"][0]
    client = api()
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "end_behavior": "release",
            "phases": [
                {
                    "items": [{"price": item["price"]["id"]}],
                    "start_date": item["current_period_start"],
                    "end_date": item["current_period_end"],
                },
                {"items": [{"price": _price_id("basic_month_eur")}]},
            ],
        },
    )
    return customer


def _downgrade_scheduled_check(customer: BillingCustomer) -> None:
    sub = _subscription(customer)
    _check(
        sub.status == Subscription.Status.ACTIVE and _lookup_key(sub) == "pro_month_eur",
        "linus: not active on Pro monthly",
    )
    scheduled = sub.scheduled_price.lookup_key if sub.scheduled_price else None
    _check(
        bool(sub.schedule_id)
        and scheduled == "basic_month_eur"
        and sub.scheduled_at == sub.current_period_end,
        f"linus: no change to Basic monthly scheduled for the renewal (scheduled: {scheduled})",
    )


def _approval_card() -> BillingCustomer:
    """Basic monthly, first paid with a card that needed no check; the default card now is one
    whose bank asks for 3-D Secure on every payment, so an upgrade waits for approval."""
    customer = _customer(email="barbara@example.com", name="Barbara Liskov", language="en", currency="eur")
    first_card = _add_card(customer, "pm_card_visa")
    _subscribe(customer, "basic_month_eur")
    _add_card(customer, "pm_card_authenticationRequired")
    api().v1.payment_methods.detach(first_card)
    return customer


def _approval_card_check(customer: BillingCustomer) -> None:
    _active_on(customer, "basic_month_eur")
    _default_card_is(customer, "3184")


def _declining_card() -> BillingCustomer:
    """Standard monthly, paid; the default card now declines charges, but nothing has failed yet
    (the renewal is a month away), so the subscription is active and an upgrade is declined."""
    customer = _customer(email="dennis@example.com", name="Dennis Ritchie", language="en", currency="eur")
    first_card = _add_card(customer, "pm_card_visa")
    _subscribe(customer, "standard_month_eur")
    _add_card(customer, "pm_card_chargeCustomerFail")
    api().v1.payment_methods.detach(first_card)
    return customer


def _declining_card_check(customer: BillingCustomer) -> None:
    _active_on(customer, "standard_month_eur")
    _default_card_is(customer, "0341")
    _check(
        not customer.invoices.exclude(status=Invoice.Status.PAID).exists(),
        "dennis: has an unpaid invoice",
    )


def _signed_up() -> BillingCustomer:
    """A new sign-up: the login and its billing customer, no Stripe customer, no subscription."""
    return _portal_customer(email="tim@example.com", name="Tim Berners-Lee", language="en", currency="eur")


def _signed_up_check(customer: BillingCustomer) -> None:
    _check(not customer.stripe_customer_id, "tim: already has a Stripe customer")
    _check(not customer.subscriptions.exists(), "tim: already has a subscription")


def _ended() -> BillingCustomer:
    """Subscribed to Standard monthly and cancelled at once: no live subscription, the card kept."""
    customer = _subscriber(
        email="charles@example.com", name="Charles Babbage", language="en", currency="eur",
        card="pm_card_visa", lookup_key="standard_month_eur",
    )  # fmt: skip
    api().v1.subscriptions.cancel(_stripe_subscription(customer).id)
    return customer


def _ended_check(customer: BillingCustomer) -> None:
    sub = _subscription(customer)
    _check(
        sub.status == Subscription.Status.CANCELED and sub.ended_at is not None,
        "charles: the subscription has not ended",
    )
    _check(customer.subscriptions.count() == 1, "charles: more than one subscription")
    _default_card_is(customer, "4242")


def _ending() -> BillingCustomer:
    """Standard monthly, cancelled at the end of the paid period ("it costs too much"): it ends on
    the renewal date unless kept."""
    customer = _subscriber(
        email="ken@example.com", name="Ken Thompson", language="en", currency="eur",
        card="pm_card_visa", lookup_key="standard_month_eur",
    )  # fmt: skip
    api().v1.subscriptions.update(
        _stripe_subscription(customer).id,
        params={"cancel_at_period_end": True, "cancellation_details": {"feedback": "too_expensive"}},
    )
    return customer


def _ending_check(customer: BillingCustomer) -> None:
    sub = _subscription(customer)
    _check(
        sub.status == Subscription.Status.ACTIVE and sub.cancel_at_period_end,
        "ken: the subscription is not set to end at the renewal",
    )


def _stripe_subscription(customer: BillingCustomer) -> stripe.Subscription:
    subs = api().v1.subscriptions.list(params={"customer": _stripe_id(customer), "limit": 1})
    _check(len(subs.data) == 1, f"{customer.email}: no subscription at Stripe")
    return subs.data[0]


def _lookup_key(sub: Subscription) -> str | None:
    return sub.price.lookup_key if sub.price else None


def _active_on(customer: BillingCustomer, lookup_key: str) -> None:
    sub = _subscription(customer)
    _check(
        sub.status == Subscription.Status.ACTIVE and _lookup_key(sub) == lookup_key,
        f"{customer.email}: not active on {lookup_key} ({sub.status}, {_lookup_key(sub)})",
    )


def _default_card_is(customer: BillingCustomer, last4: str) -> None:
    card = customer.payment_methods.filter(stripe_id=customer.default_payment_method_id).first()
    _check(
        card is not None and card.last4 == last4,
        f"{customer.email}: the default card does not end in {last4}",
    )


@dataclass(frozen=True)
class _Demo:
    make: Callable[[], BillingCustomer]
    check: Callable[[BillingCustomer], None]
    state: str


DEMOS: tuple[_Demo, ...] = (
    _Demo(_healthy, _active_check, "healthy: Standard monthly, EUR, Visa 4242, English"),
    _Demo(_card_expiring, _card_expiring_check, "card expires before the next charge: Pro monthly, EUR"),
    _Demo(
        _past_due,
        _past_due_check,
        "payment failed (insufficient funds, card 0341): recovery case open, grace, day 0/3/7 messages",
    ),
    _Demo(
        _lost_card,
        _lost_card_check,
        "payment failed, card reported lost (hard decline): retries stopped, the fix page asks for a new card",
    ),
    _Demo(
        _grace_over,
        _grace_over_check,
        "payment failed fifteen days ago, never paid: grace over, access restricted (/app/)",
    ),
    _Demo(
        _backup_paid,
        _backup_paid_check,
        "payment failed on the default card (Visa 0341), the backup Mastercard 4444 paid it (with consent)",
    ),
    _Demo(
        _extended,
        _extended_check,
        "payment failed, asked for five more days and agreed at once: extended until then, nothing sent meanwhile",
    ),
    _Demo(
        _extension_queued,
        _extension_queued_check,
        "payment failed, asked for twelve more days: the request waits in the staff queue (admin, Extensions)",
    ),
    _Demo(
        _paused, _paused_check, "paused for two months: Basic monthly, EUR; resume early from the dashboard"
    ),
    _Demo(_yearly_swedish, _active_check, "yearly in SEK, speaks Swedish: Standard yearly"),
    _Demo(_quarterly_dutch, _active_check, "quarterly in EUR, speaks Dutch: Basic quarterly"),
    _Demo(
        _downgrade_scheduled,
        _downgrade_scheduled_check,
        "downgrade scheduled: Pro monthly, EUR, changes to Basic monthly at the renewal",
    ),
    _Demo(
        _approval_card,
        _approval_card_check,
        "card asks for 3-D Secure on every payment (Visa 3184): Basic monthly, EUR",
    ),
    _Demo(
        _declining_card,
        _declining_card_check,
        "card declines charges (Visa 0341), nothing failed yet: Standard monthly, EUR",
    ),
    _Demo(_signed_up, _signed_up_check, "new sign-up: no subscription, no card, not at Stripe yet"),
    _Demo(_ended, _ended_check, "subscription ended (cancelled): was Standard monthly, EUR, Visa 4242 kept"),
    _Demo(_ending, _ending_check, "cancelled, ends at the renewal: Standard monthly, EUR (keep it)"),
)


def seed() -> list[Login]:
    """Create every demo customer and the staff user in an empty database and a fresh emulator
    (the catalog already synced); returns the logins with what each one shows."""
    logins: list[Login] = []
    for demo in DEMOS:
        customer = demo.make()
        sync.reconcile_customer(customer_id=customer.pk)
        customer.refresh_from_db()
        demo.check(customer)
        logins.append(Login(email=customer.email, state=demo.state))
    _reminders_before_charges()
    _user(email=ADMIN_EMAIL, name="Demo Admin", superuser=True)
    return logins


def _reminders_before_charges() -> None:
    """Run the nightly pre-dunning job as of the night its window opens for grace (her card
    expires before her next payment), edsger (quarterly) and astrid (yearly), so the demo shows
    their reminders at once (sent now, written as of those nights; each run picks only who is due
    then, as the others' charges are not in its window)."""
    rules = policy.current().predunning
    windows = {
        "grace@example.com": (predunning_scan.CARD_EXPIRING.name, rules.card_days),
        "edsger@example.com": (predunning_scan.RENEWAL_UPCOMING.name, rules.renewal_days.quarterly),
        "astrid@example.com": (predunning_scan.RENEWAL_UPCOMING.name, rules.renewal_days.yearly),
    }
    for email, (message, days) in windows.items():
        sub = _subscription(BillingCustomer.objects.get(email=email))
        charge = predunning.charge_at(
            status=sub.status, current_period_end=sub.current_period_end, trial_end=sub.trial_end
        )
        _check(charge is not None, f"{email}: no next charge")
        assert charge is not None
        predunning_scan.run(now=charge - dt.timedelta(days=days) + dt.timedelta(hours=1))
        _send_due_messages()
        sent = Delivery.objects.filter(
            customer=sub.customer, message=message, channel="email", status=Delivery.Status.SENT
        )
        _check(sent.exists(), f"{email}: no {message} email")
