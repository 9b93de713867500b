"""The change engine as a customer and an operator see it: failures bounded and visible, one bad
change never holding up another, the newest choice winning, waiting changes going as soon as
Stripe answers, and a double submit of any kind making one change."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from billing import changes, policy, tasks
from billing.changes import ChangeKind, ChangeParams, Confirmation
from billing.models import BillingChange, BillingCustomer, Delivery, Invoice, PaymentMethod
from billing.services import cards
from billing.services.cards import CardResult
from stripe_emulator.app import Emulator
from tests.billing.support import card_added, confirmed_setup_intent, successful_charges
from tests.portal_support import logged_in, make_customer, stripe_client

pytestmark = pytest.mark.usefixtures("catalog")

Status = BillingChange.Status


def _fault(emulator: Emulator, **fault: Any) -> None:
    requests.post(f"{emulator.url}/_emulator/faults", json=fault, timeout=5).raise_for_status()


def _stripe_default(customer: BillingCustomer) -> str:
    return str(
        stripe_client()
        .v1.customers.retrieve(customer.stripe_customer_id)
        .invoice_settings.default_payment_method
    )


def _sweep_at(moment: dt.datetime, committed: Callable[[], Any]) -> int:
    with time_machine.travel(moment), committed():
        return int(tasks.apply_pending_changes())


def _emails(customer: BillingCustomer) -> list[str]:
    return list(
        Delivery.objects.filter(customer=customer, channel=Delivery.Channel.EMAIL)
        .order_by("created_at")
        .values_list("message", flat=True)
    )


@pytest.fixture()
def two_cards() -> tuple[BillingCustomer, PaymentMethod, PaymentMethod]:
    """A subscriber with a Visa (the default) and a Mastercard."""
    customer = make_customer(email="two@example.com")
    stripe_client().v1.payment_methods.attach(
        "pm_card_mastercard", params={"customer": customer.stripe_customer_id}
    )
    from billing import sync

    sync.reconcile_customer(customer_id=customer.pk)
    customer.refresh_from_db()
    return customer, customer.payment_methods.get(last4="4242"), customer.payment_methods.get(last4="4444")


# --------------------------------------------------------------------------- a bug in one change


class Nothing(ChangeParams):
    label: str


@pytest.fixture()
def exploding_kind() -> Iterator[ChangeKind[Any, Any]]:
    """A kind whose apply has a bug: it raises what no one expected."""

    class Explodes(ChangeKind[Nothing, CardResult]):
        name = "test_explodes"
        label = "explodes"  # type: ignore[assignment]
        template = "portal/changes/card_remove.html"
        Params = Nothing
        Result = CardResult
        messages = (cards.CARD_REMOVED,)
        dedupe = ()
        supersedes = False

        def apply(self, *, change: BillingChange, customer: BillingCustomer, params: Nothing) -> CardResult:
            raise KeyError("the card table is not what we thought")

        def confirmation(
            self, *, change: BillingChange, params: Nothing, result: CardResult
        ) -> Confirmation | None:
            return None

    changes.change_kind(Explodes)
    yield changes.KINDS["test_explodes"]
    del changes.KINDS["test_explodes"]


def test_an_unexpected_error_is_retried_with_backoff_then_fails_while_other_changes_go(
    exploding_kind: ChangeKind[Any, Any],
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod],
    stripe_emulated: Emulator,
    committed: Callable[[], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    customer, _visa, mastercard = two_cards
    with caplog.at_level(logging.ERROR, logger="billing"):
        bad = changes.request(
            customer=customer, kind=exploding_kind, params=Nothing(label="x"), requested_by=None
        )
    assert (bad.status, bad.attempts, bad.error_code) == (Status.PENDING, 1, "internal_error")
    assert bad.error_message == "KeyError: 'the card table is not what we thought'"
    # Logged with its traceback, for whoever fixes it.
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info and record.exc_info[0] is KeyError

    # A good change that had to wait (Stripe answered 503 once) is due at the same time.
    _fault(stripe_emulated, path_prefix="/v1/customers/", method="POST", status=503, count=1)
    good = cards.card_set_default(customer=customer, card=mastercard, requested_by=None)
    assert good.status == Status.PENDING
    assert bad.next_attempt_at and good.next_attempt_at
    when = max(bad.next_attempt_at, good.next_attempt_at) + dt.timedelta(seconds=1)
    assert _sweep_at(when, committed) == 2
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == Status.APPLIED
    assert _stripe_default(customer) == mastercard.stripe_id
    assert (bad.status, bad.attempts) == (Status.PENDING, 2)

    # Tried again, waiting longer each time, and then no more: failed, with the error for staff.
    waits = []
    while bad.status == Status.PENDING:
        assert bad.next_attempt_at is not None and bad.attempted_at is not None
        waits.append(bad.next_attempt_at - bad.attempted_at)
        _sweep_at(bad.next_attempt_at + dt.timedelta(seconds=1), committed)
        bad.refresh_from_db()
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert bad.status == Status.FAILED
    assert bad.attempts == policy.current().changes.max_attempts
    assert bad.next_attempt_at is None
    assert bad.error_message.startswith("KeyError")
    with time_machine.travel(timezone.now() + dt.timedelta(days=1)):
        assert tasks.apply_pending_changes() == 0
    page = logged_in(customer).get(f"/changes/{bad.pk}/").content.decode()
    assert "This change could not be made." in page
    assert "KeyError" not in page  # the customer is not shown our bug


def test_a_card_gone_while_its_change_waited_fails_that_change_at_once(
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod],
    stripe_emulated: Emulator,
    committed: Callable[[], Any],
) -> None:
    customer, _visa, mastercard = two_cards
    _fault(stripe_emulated, path_prefix="/v1/customers/", method="POST", status=503, count=1)
    change = cards.card_set_default(customer=customer, card=mastercard, requested_by=None)
    assert change.status == Status.PENDING
    PaymentMethod.objects.filter(pk=mastercard.pk).delete()  # a webhook said it was detached
    assert change.next_attempt_at is not None
    _sweep_at(change.next_attempt_at + dt.timedelta(seconds=1), committed)
    change.refresh_from_db()
    assert (change.status, change.error_code, change.attempts) == (Status.FAILED, "card_gone", 2)
    page = logged_in(customer).get(f"/changes/{change.pk}/").content.decode()
    assert "The card is no longer on your account." in page


# --------------------------------------------------------------------------- the newest choice wins


def test_a_newer_default_supersedes_one_still_waiting_for_stripe(
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod],
    stripe_emulated: Emulator,
    committed: Callable[[], Any],
) -> None:
    customer, visa, mastercard = two_cards
    client = logged_in(customer)
    # Make the Mastercard the default while Stripe answers 503: it waits.
    _fault(stripe_emulated, path_prefix="/v1/customers/", method="POST", status=503, count=1)
    with committed():
        client.post(f"/cards/{mastercard.pk}/default/", {"token": "first-click-1"})
    old = BillingChange.objects.get(customer=customer)
    assert old.status == Status.PENDING
    # Then the customer thinks better of it and makes the Visa the default again: applied at once.
    with committed():
        response = client.post(f"/cards/{visa.pk}/default/", {"token": "second-click"}, follow=True)
    assert "Done: Visa •••• 4242 is now your default card." in response.content.decode()
    new = BillingChange.objects.exclude(pk=old.pk).get()
    old.refresh_from_db()
    assert (old.status, old.superseded_by_id) == (Status.SUPERSEDED, new.pk)

    # The old one is never applied: not by the sweep, not when asked again.
    assert _sweep_at(timezone.now() + dt.timedelta(hours=2), committed) == 0
    changes.apply(change_id=old.pk)
    assert _stripe_default(customer) == visa.stripe_id
    assert _emails(customer) == ["card_default"]
    page = client.get(f"/changes/{old.pk}/").content.decode()
    assert "Not made: you chose something newer" in page
    assert f"/changes/{new.pk}/" in page


def test_waiting_changes_go_as_soon_as_stripe_answers_again(
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod],
    stripe_emulated: Emulator,
    committed: Callable[[], Any],
) -> None:
    customer, _visa, mastercard = two_cards
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_amex")
    _fault(stripe_emulated, path_prefix="/v1/setup_intents/", method="GET", status=503, count=1)
    waiting = cards.card_add(customer=customer, setup_intent_id=setup_intent, requested_by=None)
    assert waiting.status == Status.PENDING
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > timezone.now()

    # Another change goes through: Stripe answers, so the waiting one is due now, not after its wait.
    assert (
        cards.card_set_default(customer=customer, card=mastercard, requested_by=None).status == Status.APPLIED
    )
    waiting.refresh_from_db()
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at <= timezone.now()
    with committed():
        assert tasks.apply_pending_changes() == 1
    waiting.refresh_from_db()
    assert waiting.status == Status.APPLIED


def test_with_nothing_else_happening_one_waiting_change_probes_stripe_each_minute(
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod],
    stripe_emulated: Emulator,
    committed: Callable[[], Any],
    settings: Any,
) -> None:
    settings.BILLING_POLICY = {"changes": {"backoff": {"delays_seconds": [1800]}}}
    customer, _visa, mastercard = two_cards
    _fault(stripe_emulated, path_prefix="/v1/customers/", method="POST", status=503, count=1)
    change = cards.card_set_default(customer=customer, card=mastercard, requested_by=None)
    assert change.status == Status.PENDING and change.attempted_at is not None
    assert change.next_attempt_at is not None and change.next_attempt_at - timezone.now() > dt.timedelta(
        minutes=29
    )
    # Half a minute on, nothing is tried; a minute on, it is (Stripe is back), long before its wait is over.
    assert _sweep_at(change.attempted_at + dt.timedelta(seconds=30), committed) == 0
    assert _sweep_at(change.attempted_at + dt.timedelta(seconds=61), committed) == 1
    change.refresh_from_db()
    assert change.status == Status.APPLIED


def test_the_customer_can_try_a_waiting_change_now(
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod],
    stripe_emulated: Emulator,
    committed: Callable[[], Any],
) -> None:
    customer, _visa, mastercard = two_cards
    client = logged_in(customer)
    _fault(stripe_emulated, path_prefix="/v1/customers/", method="POST", status=503, count=1)
    with committed():
        client.post(f"/cards/{mastercard.pk}/default/")
    change = BillingChange.objects.get(customer=customer)
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "Our payment provider is not answering right now." in page and "Try again now" in page
    with committed():
        response = client.post(f"/changes/{change.pk}/retry/", follow=True)
    assert "Done: Mastercard •••• 4444 is now your default card." in response.content.decode()
    assert _stripe_default(customer) == mastercard.stripe_id


# --------------------------------------------------------------------------- cards, as they should be


def test_making_the_backup_card_the_default_clears_the_backup_and_says_so(
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod], committed: Callable[[], Any]
) -> None:
    customer, _visa, mastercard = two_cards
    client = logged_in(customer)
    with committed():
        client.post(f"/cards/{mastercard.pk}/backup/", {"consent": "on"})
    customer.refresh_from_db()
    assert customer.backup_payment_method_id == mastercard.stripe_id
    with committed():
        response = client.post(f"/cards/{mastercard.pk}/default/", follow=True)
    page = response.content.decode()
    assert "Done: Mastercard •••• 4444 is now your default card." in page
    assert "It was your backup card; you have no backup card now." in page
    dashboard = client.get("/").content.decode()
    assert "•••• 4444" in dashboard.split('data-test="default-card"')[1].split("</dd>")[0]
    assert "None" in dashboard.split('data-test="backup-card"')[1].split("</dd>")[0]
    metadata = stripe_client().v1.customers.retrieve(customer.stripe_customer_id).metadata.to_dict()
    assert not metadata.get("backup_payment_method")
    customer.refresh_from_db()
    assert (customer.backup_payment_method_id, customer.backup_consent_at) == ("", None)
    assert "you have no backup card now" in mail.outbox[-1].body


def test_a_card_authenticated_when_saved_pays_the_open_invoice_without_asking_again(
    committed: Callable[[], Any],
) -> None:
    """4000 0025 0000 3155: the bank asks for 3-D Secure to save it for future payments, and then
    not again for payments made with it off-session, as Stripe charges a saved card."""
    customer = make_customer(email="owing@example.com", card="pm_card_chargeCustomerFail")
    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    setup_intent = confirmed_setup_intent(
        customer=customer, payment_method="pm_card_authenticationRequiredOnSetup"
    )
    with committed():
        response = logged_in(customer).post("/cards/confirm/", {"setup_intent": setup_intent}, follow=True)
    page = response.content.decode()
    assert "Your unpaid invoice of €19.00 is now paid." in page
    assert "approve" not in page.lower()
    change = BillingChange.objects.get(customer=customer)
    assert card_added(change).payment is not None and card_added(change).payment.outcome == "paid"
    assert stripe_client().v1.invoices.retrieve(invoice.stripe_id).status == "paid"
    [charge] = successful_charges(customer=customer)
    assert charge.amount == 1900


# --------------------------------------------------------------------------- double submits


def _submit_twice(client: Client, url: str, data: dict[str, str], committed: Callable[[], Any]) -> list[str]:
    """The same form sent a second time (a double click, a reload): where each submit lands."""

    def submit() -> str:
        with committed():
            response = client.post(url, data)
        assert response.status_code == 302, response.content
        return str(response["Location"])

    first = submit()
    second = submit()
    return [first, second]


def _end_twice(customer: BillingCustomer, committed: Callable[[], Any]) -> list[str]:
    """The end of an unpaid case's grace, found by two runs of the job (a beat tick twice, two
    workers): the subscription is canceled once."""
    from billing.models import RecoveryCase, RecoveryPolicy, Subscription
    from billing.services import recovery

    policy = recovery.active_policy()
    cancel = RecoveryPolicy.objects.create(
        version=policy.version + 1, **{**recovery.policy_data(policy=policy), "end_action": "cancel"}
    )
    sub = Subscription.objects.get(customer=customer)
    RecoveryCase.objects.create(
        customer=customer,
        invoice_stripe_id="in_unpaid_for_the_test",
        subscription_stripe_id=sub.stripe_id,
        amount=1900,
        currency="eur",
        family="insufficient_funds",
        action="pay_now",
        policy=cancel,
        grace_ends_at=timezone.now() - dt.timedelta(minutes=1),
    )
    made = []
    for _ in range(2):
        with committed():
            recovery.end_due(now=timezone.now(), limit=10)
        made.append(str(BillingChange.objects.get(customer=customer, kind="recovery_end").pk))
    return made


def _backup_twice(customer: BillingCustomer, committed: Callable[[], Any]) -> list[str]:
    """The backup card's charge, found due by two runs of the job: the invoice is paid once."""
    from billing import sync
    from billing.models import RecoveryCase
    from billing.services import backup, recovery

    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    backup_card = stripe_client().v1.payment_methods.attach(
        "pm_card_visa", params={"customer": customer.stripe_customer_id}
    )
    sync.reconcile_customer(customer_id=customer.pk)
    card = PaymentMethod.objects.get(stripe_id=backup_card.id)
    cards.card_set_backup(customer=customer, card=card, consent=True, requested_by=None)
    RecoveryCase.objects.create(
        customer=customer,
        invoice_stripe_id=invoice.stripe_id,
        amount=invoice.amount_remaining,
        currency=invoice.currency,
        family="generic",
        action="update_card",
        payment_method_id=customer.default_payment_method_id,
        policy=recovery.active_policy(),
        grace_ends_at=timezone.now() + dt.timedelta(days=14),
        backup_payment_method_id=card.stripe_id,
        backup_due_at=timezone.now() - dt.timedelta(minutes=1),
    )
    made = []
    for _ in range(2):
        with committed():
            backup.backup_due(now=timezone.now(), limit=10)
        made.append(str(BillingChange.objects.get(customer=customer, kind="backup_charge").pk))
    return made


def _owing_with_a_case(email: str) -> tuple[BillingCustomer, Any]:
    """A customer whose first invoice is open and uncollected, with its recovery case (the card
    on file works)."""
    from billing import sync
    from billing.models import Price, RecoveryCase
    from billing.services import recovery

    customer = make_customer(email=email, price=None)
    price = Price.objects.get(lookup_key="standard_month_eur").stripe_price_id
    stripe_client().v1.subscriptions.create(
        params={
            "customer": customer.stripe_customer_id,
            "items": [{"price": price}],
            "payment_behavior": "default_incomplete",
        }
    )
    sync.reconcile_customer(customer_id=customer.pk)
    customer.refresh_from_db()
    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    case = RecoveryCase.objects.create(
        customer=customer,
        invoice_stripe_id=invoice.stripe_id,
        subscription_stripe_id=invoice.subscription_stripe_id,
        amount=invoice.amount_remaining,
        currency=invoice.currency,
        family="insufficient_funds",
        action="pay_now",
        policy=recovery.active_policy(),
        opened_at=timezone.now() - dt.timedelta(hours=1),
        grace_ends_at=timezone.now() + dt.timedelta(days=14),
    )
    return customer, case


def _extension_grant_twice(customer: BillingCustomer, case: Any, committed: Callable[[], Any]) -> list[str]:
    """An extension agreed at once, its grant requested again (a crash between the approval and
    the grant, repaired by the job): Stripe holds the invoice once."""
    from billing.models import Extension
    from billing.services import extensions

    until = (case.opened_at + dt.timedelta(days=4)).date()
    with committed():
        extension = extensions.request(customer=customer, until=until, reason="", requested_by=None)
    with committed():
        extensions._grant(extension, requested_by=None)
    grants = BillingChange.objects.filter(customer=customer, kind="extension_grant")
    return [str(Extension.objects.get(pk=extension.pk).grant_id), str(grants.get().pk)]


def _extension_charge_twice(customer: BillingCustomer, committed: Callable[[], Any]) -> list[str]:
    """The agreed date, found due by two runs of the job: the invoice is charged once."""
    from billing.models import Extension
    from billing.services import extensions

    extension = Extension.objects.get(customer=customer)
    made = []
    for _ in range(2):
        with committed():
            extensions.charge_due(now=extension.charge_at, limit=10)
        made.append(str(BillingChange.objects.get(customer=customer, kind="extension_charge").pk))
    return made


def _plan_confirm_form(client: Client, price: str = "pro_month_eur", when: str = "now") -> dict[str, str]:
    """The confirm form of a plan change's preview, as the Plan page hands it out."""
    html = client.get("/plan/preview/", {"price": price, "when": when}).content.decode()
    preview = re.search(r'name="preview" value="([^"]+)"', html)
    token = re.search(r'name="token" value="([^"]+)"', html)
    assert preview and token, html
    return {"preview": preview.group(1), "token": token.group(1)}


def _scheduled_downgrade(customer: BillingCustomer, client: Client) -> dict[str, str]:
    """A downgrade scheduled for the renewal, and the form that cancels it."""
    form = _plan_confirm_form(client, "basic_month_eur", "renewal")
    client.post("/plan/confirm/", form)
    return {"token": "page-view-c1"}


def _invoice_pay_form(customer: BillingCustomer) -> tuple[str, dict[str, str]]:
    """The form that pays the customer's open invoice with a card saved for it."""
    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.OPEN)
    setup_intent = confirmed_setup_intent(customer=customer, payment_method="pm_card_visa")
    return f"/invoices/{invoice.stripe_id}/pay/confirm/", {"setup_intent": setup_intent}


def test_a_double_submit_of_each_kind_of_change_is_one_change(
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod], committed: Callable[[], Any]
) -> None:
    customer, visa, mastercard = two_cards
    client = logged_in(customer)
    newcomer = make_customer(email="newcomer@example.com", card=None, price=None)
    owing = make_customer(email="owing@example.com", card="pm_card_chargeCustomerFail")
    submits: dict[str, Callable[[], list[str]]] = {
        "card_add": lambda: _submit_twice(
            client,
            "/cards/confirm/",
            {"setup_intent": confirmed_setup_intent(customer=customer, payment_method="pm_card_amex")},
            committed,
        ),
        "card_set_backup": lambda: _submit_twice(
            client, f"/cards/{mastercard.pk}/backup/", {"consent": "on", "token": "page-view-b1"}, committed
        ),
        "card_set_default": lambda: _submit_twice(
            client, f"/cards/{visa.pk}/default/", {"token": "page-view-d1"}, committed
        ),
        "card_remove": lambda: _submit_twice(
            client, f"/cards/{mastercard.pk}/remove/", {"token": "page-view-r1"}, committed
        ),
        "plan_change": lambda: _submit_twice(client, "/plan/confirm/", _plan_confirm_form(client), committed),
        "plan_schedule_cancel": lambda: _submit_twice(
            client, "/plan/scheduled/cancel/", _scheduled_downgrade(customer, client), committed
        ),
        "customer_details": lambda: _submit_twice(
            client,
            "/details/",
            {
                "token": "page-view-t1",
                "email": "billing@example.com",
                "name": "Two Cards AB",
                "line1": "Storgatan 1",
                "postal_code": "111 22",
                "city": "Stockholm",
                "country": "SE",
                "tax_id": "SE556677889901",
                "language": "en",
                "time_zone": "Europe/Stockholm",
            },
            committed,
        ),
        # After the plan changes: a pause, then the resume of that pause.
        "subscription_pause": lambda: _submit_twice(
            client, "/pause/confirm/", {"months": "2", "token": "page-view-p1"}, committed
        ),
        "subscription_resume": lambda: _submit_twice(
            client, "/pause/resume/", {"token": "page-view-p2"}, committed
        ),
        # A start needs a customer without a subscription.
        "subscription_start": lambda: _submit_twice(
            logged_in(newcomer),
            "/plan/start/confirm/",
            {
                "price": "basic_month_eur",
                "token": "page-view-s1",
                "setup_intent": confirmed_setup_intent(customer=newcomer, payment_method="pm_card_visa"),
            },
            committed,
        ),
        # Paying an invoice needs one open: a subscriber whose first payment was declined.
        "invoice_pay": lambda: _submit_twice(logged_in(owing), *_invoice_pay_form(owing), committed),
    }
    submits["subscription_cancel"] = lambda: _submit_twice(
        client,
        "/cancel/confirm/",
        {"reason": "switching", "comment": "", "offer": "none", "token": "page-view-x1"},
        committed,
    )
    submits["subscription_keep"] = lambda: _submit_twice(
        client, "/cancel/undo/", {"token": "page-view-k1"}, committed
    )
    ending = make_customer(email="ending@example.com")
    submits["recovery_end"] = lambda: _end_twice(ending, committed)
    backed = make_customer(email="backed@example.com", card="pm_card_chargeCustomerFail")
    submits["backup_charge"] = lambda: _backup_twice(backed, committed)
    extended, extended_case = _owing_with_a_case("extended@example.com")
    submits["extension_grant"] = lambda: _extension_grant_twice(extended, extended_case, committed)
    submits["extension_charge"] = lambda: _extension_charge_twice(extended, committed)
    whose = {
        "subscription_start": newcomer,
        "invoice_pay": owing,
        "recovery_end": ending,
        "backup_charge": backed,
        "extension_grant": extended,
        "extension_charge": extended,
    }
    assert set(submits) == set(changes.KINDS), "every kind of change needs its double-submit check here"
    for kind, submit in submits.items():
        first, second = submit()
        assert first == second, kind
        made = BillingChange.objects.filter(customer=whose.get(kind, customer), kind=kind)
        assert made.count() == 1, kind
        assert made.get().status == Status.APPLIED, (kind, made.get().error_code)
        assert Delivery.objects.filter(change=made.get(), channel=Delivery.Channel.EMAIL).count() == 1, kind


# --------------------------------------------------------------------------- the customer's budget


def test_a_slow_stripe_leaves_the_change_pending_for_the_customer_and_a_worker_finishes_it(
    two_cards: tuple[BillingCustomer, PaymentMethod, PaymentMethod],
    stripe_emulated: Emulator,
    settings: Any,
    committed: Callable[[], Any],
) -> None:
    """Stripe takes 0.6 s: longer than this page may wait (0.2 s here), well within a worker's
    patience.  The page gets a pending change; the worker's try (same idempotency keys) applies it."""
    settings.STRIPE_INTERACTIVE_TIMEOUT_SECONDS = 0.2
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    customer, _visa, mastercard = two_cards
    _fault(stripe_emulated, path_prefix="/v1/customers/", method="POST", delay_seconds=0.6, count=2)
    with committed():
        response = logged_in(customer).post(f"/cards/{mastercard.pk}/default/", follow=True)
    assert "Pending: we are sending this to our payment provider." in response.content.decode()
    change = BillingChange.objects.get(customer=customer)
    assert (change.status, change.error_code) == (Status.PENDING, "connection_error")
    # Stripe goes on with the request the page gave up on; the worker comes after it.
    assert stripe_emulated.requests_idle(timeout=10)
    with committed():
        changes.apply(change_id=change.pk)  # as the worker does, with its own budget
    change.refresh_from_db()
    assert change.status == Status.APPLIED
    assert _stripe_default(customer) == mastercard.stripe_id
    assert _emails(customer) == ["card_default"]
