"""Pre-dunning: the nightly scan picks exactly the subscriptions due a reminder, writes each once,
goes on where a stopped run left off, and its card reminder's link adds a card for that customer
only; a card the card updater refreshes is never reminded about."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from billing import channels, outbox
from billing.models import BillingCustomer, Delivery, JobCursor, PaymentMethod, Price, Subscription
from billing.money import customer_zone
from billing.services import predunning
from billing.services.customers import customer_create
from tests.billing.recovery_support import emails_to, links_in
from tests.portal_support import deliver_events, logged_in, make_customer, shown_day

pytestmark = pytest.mark.django_db

QUIET_OFF = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
NOW = dt.datetime(2027, 3, 20, 2, 7, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _no_quiet_hours(settings: Any, catalog: None) -> None:
    settings.BILLING_POLICY = QUIET_OFF
    channels.LocmemSmsBackend.outbox.clear()


# --------------------------------------------------------------------------- crafted mirrors


def _customer(name: str, *, language: str = "en", phone: str = "") -> BillingCustomer:
    email = f"{name}@example.com"
    user = get_user_model().objects.create_user(username=email, email=email, password="x")
    customer = customer_create(user=user, email=email, language=language)
    BillingCustomer.objects.filter(pk=customer.pk).update(stripe_customer_id=f"cus_{name}", phone=phone)
    customer.refresh_from_db()
    return customer


def _card(customer: BillingCustomer, year: int, month: int, *, default: bool = True, **fields: Any) -> str:
    stripe_id = f"pm_{customer.pk}_{next(_ids)}"
    PaymentMethod.objects.create(
        stripe_id=stripe_id, customer=customer, brand="visa", last4="4242", exp_year=year, exp_month=month,
        created=NOW - 400 * DAY, stripe_state_at=NOW, **fields,
    )  # fmt: skip
    if default:
        BillingCustomer.objects.filter(pk=customer.pk).update(default_payment_method_id=stripe_id)
    return stripe_id


def _subscription(
    customer: BillingCustomer,
    *,
    lookup_key: str = "standard_month_eur",
    charge_in: dt.timedelta,
    **fields: Any,
) -> Subscription:
    price = Price.objects.get(lookup_key=lookup_key)
    return Subscription.objects.create(
        stripe_id=f"sub_{customer.stripe_customer_id}_{next(_ids)}", customer=customer, price=price,
        stripe_price_id=price.stripe_price_id or "", status=fields.pop("status", "active"),
        currency=price.currency, unit_amount=price.unit_amount, current_period_start=NOW - 20 * DAY,
        current_period_end=NOW + charge_in, created=NOW - 400 * DAY, stripe_state_at=NOW, **fields,
    )  # fmt: skip


def _reminders(**filters: Any) -> set[tuple[str, str]]:
    """(customer's name, message) of every reminder written, one per message (its in-app line)."""
    return {
        (d.customer.email.split("@")[0], d.message)
        for d in Delivery.objects.filter(
            message__in=predunning.REMINDERS, channel="in_app", **filters
        ).select_related("customer")
    }


def _population() -> set[tuple[str, str]]:
    """One subscription of each kind the rules tell apart; returns the reminders they should get."""
    expiring = _customer("expiring")  # card ends in March, charged in April
    _card(expiring, 2027, 3)
    _subscription(expiring, charge_in=13 * DAY)
    fine = _customer("fine")
    _card(fine, 2027, 4)
    _subscription(fine, charge_in=13 * DAY)
    same_month = _customer("same_month")  # charged in March, the card's last month: fine
    _card(same_month, 2027, 3)
    _subscription(same_month, charge_in=10 * DAY)
    too_early = _customer("too_early")
    _card(too_early, 2027, 3)
    _subscription(too_early, charge_in=15 * DAY)
    newer = _customer("newer")
    _card(newer, 2027, 3)
    _card(newer, 2029, 11, default=False)
    _subscription(newer, charge_in=13 * DAY)
    old_other = _customer("old_other")  # another card, but it expires before the charge too
    _card(old_other, 2027, 3)
    _card(old_other, 2026, 12, default=False)
    _subscription(old_other, charge_in=13 * DAY)
    refreshed = _customer("refreshed")
    _card(refreshed, 2027, 3, updated_automatically_at=NOW - 30 * DAY)
    _subscription(refreshed, charge_in=13 * DAY)
    own_card = _customer("own_card")  # no default card on the customer: the subscription's own
    sub_card = _card(own_card, 2027, 3, default=False)
    _subscription(own_card, charge_in=13 * DAY, default_payment_method_id=sub_card)
    trial = _customer("trial")  # on trial: charged when the trial ends
    _card(trial, 2027, 3)
    _subscription(trial, charge_in=40 * DAY, status="trialing", trial_end=NOW + 12 * DAY)
    for status in ("paused", "canceled", "past_due"):
        other = _customer(status)
        _card(other, 2027, 3)
        _subscription(other, charge_in=13 * DAY, status=status)
    collection_paused = _customer("collection_paused")
    _card(collection_paused, 2027, 3)
    _subscription(collection_paused, charge_in=13 * DAY, pause_behavior="void")
    ending = _customer("ending")
    _card(ending, 2027, 3)
    _subscription(ending, charge_in=13 * DAY, cancel_at_period_end=True)
    quarterly = _customer("quarterly")
    _card(quarterly, 2030, 1)
    _subscription(quarterly, lookup_key="basic_quarter_eur", charge_in=6 * DAY)
    quarterly_later = _customer("quarterly_later")
    _card(quarterly_later, 2030, 1)
    _subscription(quarterly_later, lookup_key="basic_quarter_eur", charge_in=8 * DAY)
    yearly = _customer("yearly")
    _card(yearly, 2030, 1)
    _subscription(yearly, lookup_key="standard_year_eur", charge_in=29 * DAY)
    monthly = _customer("monthly")
    _card(monthly, 2030, 1)
    _subscription(monthly, charge_in=2 * DAY)
    return {
        ("expiring", "card_expiring"),
        ("old_other", "card_expiring"),
        ("own_card", "card_expiring"),
        ("trial", "card_expiring"),
        ("quarterly", "renewal_upcoming"),
        ("yearly", "renewal_upcoming"),
    }


def test_the_scan_picks_exactly_the_subscriptions_due_a_reminder_and_writes_each_once(
    committed: Callable[[], Any],
) -> None:
    expected = _population()
    with committed():
        summary = predunning.run(now=NOW)
    assert _reminders() == expected
    assert (summary.card_reminders, summary.renewal_reminders) == (4, 2)
    written = Delivery.objects.count()
    # Each went by email at once (no quiet hours here), with its deep link or its plan links.
    assert len(mail.outbox) == len(expected)
    # Run again the same night, from the start: nothing more.
    with committed():
        again = predunning.run(now=NOW + dt.timedelta(hours=1), restart=True)
    assert (again.card_reminders, again.renewal_reminders) == (0, 0)
    assert Delivery.objects.count() == written
    # The next night the windows have moved on by a day: two more come due, the others are not
    # written again.
    with committed():
        predunning.run(now=NOW + DAY)
    assert _reminders() == expected | {
        ("too_early", "card_expiring"),
        ("quarterly_later", "renewal_upcoming"),
    }
    assert len(mail.outbox) == len(expected) + 2


def test_the_same_selection_in_small_slices_as_in_one(settings: Any) -> None:
    expected = _population()
    settings.BILLING_POLICY = {**QUIET_OFF, "predunning": {"batch": 3}}
    summary = predunning.run(now=NOW)
    assert _reminders() == expected
    assert summary.slices == Subscription.objects.count() // 3 + 1


def test_a_run_stopped_halfway_goes_on_where_it_stopped_and_sends_nothing_twice(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _population()
    settings.BILLING_POLICY = {**QUIET_OFF, "predunning": {"batch": 4}}
    real = predunning._remind
    calls = itertools.count(1)

    def crashes_in_the_third_slice(**kwargs: Any) -> None:
        if next(calls) == 3:
            real(**kwargs)  # its reminders are written, then the worker dies before the slice commits
            raise RuntimeError("worker lost")
        real(**kwargs)

    monkeypatch.setattr(predunning, "_remind", crashes_in_the_third_slice)
    with pytest.raises(RuntimeError):
        predunning.run(now=NOW)
    cursor = JobCursor.objects.get(name=predunning.JOB)
    first_two = sorted(Subscription.objects.values_list("pk", flat=True))[:8]
    assert cursor.position == first_two[-1] and cursor.finished_at is None
    done_before = _reminders()
    assert done_before < expected
    assert not Delivery.objects.filter(about__in=_abouts(after=cursor.position)).exists()

    monkeypatch.setattr(predunning, "_remind", real)
    summary = predunning.run(now=NOW)
    assert summary.resumed_from == first_two[-1]
    assert _reminders() == expected
    assert summary.card_reminders + summary.renewal_reminders == len(expected - done_before)
    assert JobCursor.objects.get(name=predunning.JOB).finished_at is not None
    # Finished: another run tonight has nothing to do.
    assert predunning.run(now=NOW).slices == 0


def _abouts(*, after: int) -> list[str]:
    return [
        f"subscription:{s}"
        for s in Subscription.objects.filter(pk__gt=after).values_list("stripe_id", flat=True)
    ]


def test_the_renewal_reminder_says_the_date_and_the_amount_of_the_plan_it_renews_to(
    committed: Callable[[], Any],
) -> None:
    yearly = _customer("renewing")
    _card(yearly, 2030, 1)
    sub = _subscription(yearly, lookup_key="standard_year_eur", charge_in=20 * DAY, quantity=2)
    monthly = Price.objects.get(lookup_key="standard_month_eur")
    Subscription.objects.filter(pk=sub.pk).update(
        scheduled_price=monthly, scheduled_at=sub.current_period_end
    )
    with committed():
        predunning.run(now=NOW)
    (email,) = emails_to("renewing@example.com")
    assert email.subject == f"Your subscription renews on {shown_day(sub.current_period_end)}"
    amount = f"€{2 * monthly.unit_amount / 100:.2f}"
    assert amount in email.body
    assert "/plan/" in email.body and "/cancel/" in email.body
    assert "Standard (monthly)" in email.body


def test_one_reminder_a_night_per_customer_the_card_first() -> None:
    both = _customer("both")
    _card(both, 2027, 3)
    _subscription(both, lookup_key="standard_year_eur", charge_in=13 * DAY)
    predunning.run(now=NOW)
    assert _reminders() == {("both", "card_expiring")}
    predunning.run(now=NOW + DAY)
    assert _reminders() == {("both", "card_expiring"), ("both", "renewal_upcoming")}


def test_a_customer_who_switched_reminders_off_gets_the_in_app_line_only() -> None:
    quiet = _customer("no_reminders", phone="+46701234567")
    BillingCustomer.objects.filter(pk=quiet.pk).update(opt_outs=["reminder"])
    _card(quiet, 2027, 3)
    _subscription(quiet, charge_in=13 * DAY)
    predunning.run(now=NOW)
    rows = {d.channel: (d.status, d.suppressed_reason) for d in Delivery.objects.filter(customer=quiet)}
    assert rows == {
        "email": ("suppressed", "opted_out"),
        "sms": ("suppressed", "opted_out"),
        "in_app": ("sent", ""),
    }


def test_the_command_runs_the_scan_as_of_a_given_moment() -> None:
    expected = _population()
    call_command("predunning", "--now", NOW.isoformat())
    assert _reminders() == expected


# --------------------------------------------------------------------------- through the emulator


def _expiring_on_emulator(email: str) -> tuple[BillingCustomer, Subscription, str]:
    """A customer with a monthly subscription whose card (the emulator's Visa) is mirrored as
    expiring the month before the next charge."""
    customer = make_customer(email=email)
    sub = Subscription.objects.get(customer=customer)
    assert sub.current_period_end is not None
    before = sub.current_period_end.astimezone(dt.UTC).replace(day=1) - DAY
    card = customer.default_payment_method_id
    PaymentMethod.objects.filter(stripe_id=card).update(exp_year=before.year, exp_month=before.month)
    return customer, sub, card


def _as_of(sub: Subscription) -> dt.datetime:
    assert sub.current_period_end is not None
    return sub.current_period_end - 10 * DAY


def test_a_card_the_updater_refreshes_is_not_reminded_about_even_when_written_already(
    settings: Any, committed: Callable[[], Any]
) -> None:
    # Quiet hours now: the email waits until the morning.
    hour = timezone.now().astimezone(customer_zone("")).hour
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": hour, "end_hour": (hour + 2) % 24}}
    customer, sub, card = _expiring_on_emulator("refreshed@example.com")
    with committed():
        predunning.run(now=_as_of(sub))
    email = Delivery.objects.get(customer=customer, message="card_expiring", channel="email")
    assert email.status == "pending" and email.send_after > timezone.now()
    # The bank sends the card's new expiry through the card updater; Stripe tells the portal.
    requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/payment_methods/{card}/update_card",
        json={"exp_month": 8, "exp_year": 2031},
        timeout=10,
    ).raise_for_status()
    with committed():
        deliver_events(types={"payment_method.automatically_updated"})
    mirrored = PaymentMethod.objects.get(stripe_id=card)
    assert (mirrored.exp_month, mirrored.exp_year) == (8, 2031)
    assert mirrored.updated_automatically_at is not None
    # Morning: the reminder is not sent, and the next nights write none.
    Delivery.objects.filter(pk=email.pk).update(send_after=timezone.now())
    assert outbox.send(delivery_id=email.pk) is False
    email.refresh_from_db()
    assert (email.status, email.suppressed_reason) == ("suppressed", "card_refreshed")
    assert emails_to("refreshed@example.com") == []
    PaymentMethod.objects.filter(stripe_id=card).update(exp_year=2020)  # even if it expired again
    assert predunning.run(now=_as_of(sub) + DAY).card_reminders == 0


def test_a_written_reminder_is_dropped_when_a_newer_card_is_added(settings: Any) -> None:
    hour = timezone.now().astimezone(customer_zone("")).hour
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": hour, "end_hour": (hour + 2) % 24}}
    customer, sub, _card_id = _expiring_on_emulator("replaced@example.com")
    predunning.run(now=_as_of(sub))
    email = Delivery.objects.get(customer=customer, message="card_expiring", channel="email")
    _card(customer, 2032, 2, default=False)
    Delivery.objects.filter(pk=email.pk).update(send_after=timezone.now())
    assert outbox.send(delivery_id=email.pk) is False
    email.refresh_from_db()
    assert (email.status, email.suppressed_reason) == ("suppressed", "card_replaced")


def test_the_card_reminders_link_opens_the_card_form_for_that_customer_only(
    committed: Callable[[], Any],
) -> None:
    customer, sub, _card_id = _expiring_on_emulator("linked@example.com")
    other = make_customer(email="someone-else@example.com")
    with committed():
        predunning.run(now=_as_of(sub))
    (email,) = emails_to("linked@example.com")
    assert email.subject == "Your card ending 4242 expires before your next payment"
    assert shown_day(sub.current_period_end) in email.body
    (link,) = links_in(email.body)
    # Opening it shows what it is about and changes nothing.
    browser = Client()
    page = browser.get(link)
    assert page.status_code == 200
    assert "Your card ending 4242 expires at the end of" in page.content.decode()
    assert "deep_link" not in browser.session
    # Someone else logged in on this browser can't use it.
    assert logged_in(other).get(link).status_code == 403
    # Its button opens the card form, without a password, for this customer.
    response = browser.post(link)
    assert response.status_code == 302 and response["Location"] == "/cards/add/"
    assert browser.session["deep_link"]["customer"] == customer.pk
    assert browser.get("/cards/add/").status_code == 200
    # ... and nothing else: the dashboard still asks for a login; another browser gets nothing.
    assert browser.get("/").status_code == 302
    assert Client().get("/cards/add/").status_code == 302


def test_a_written_renewal_reminder_is_dropped_once_the_customer_cancels(settings: Any) -> None:
    hour = timezone.now().astimezone(customer_zone("")).hour
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": hour, "end_hour": (hour + 2) % 24}}
    yearly = _customer("cancelling")
    _card(yearly, 2030, 1)
    sub = _subscription(yearly, lookup_key="standard_year_eur", charge_in=20 * DAY)
    Subscription.objects.filter(pk=sub.pk).update(current_period_end=timezone.now() + 20 * DAY)
    predunning.run(now=timezone.now())
    email = Delivery.objects.get(customer=yearly, message="renewal_upcoming", channel="email")
    Subscription.objects.filter(pk=sub.pk).update(cancel_at_period_end=True)
    Delivery.objects.filter(pk=email.pk).update(send_after=timezone.now())
    assert outbox.send(delivery_id=email.pk) is False
    email.refresh_from_db()
    assert (email.status, email.suppressed_reason) == ("suppressed", "subscription_changed")
