"""Recovery paths and ends: a new card pays every open invoice, oldest first; a hard decline's
stopped retries resume with a new card that is declined softly; the guardrail refuses a card the
networks forbid charging again; the policy's end (restrict or cancel) on its date; and staff
changing the policy without a deploy, while open cases keep the version that opened them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from billing import access, recovery
from billing.models import BillingChange, Delivery, PaymentAttempt, RecoveryCase, RecoveryPolicy, Subscription
from billing.services import recovery as recovery_service
from portal.forms import new_token
from tests.billing.recovery_support import Renewal, set_decline
from tests.billing.support import confirmed_setup_intent
from tests.portal_support import emulator_events, logged_in, post_event, stripe_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _setup(settings: Any, catalog: None) -> None:
    settings.BILLING_POLICY = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}


def _deliver_all(committed: Callable[[], Any]) -> None:
    client = Client()
    for event in emulator_events():
        with committed():
            assert post_event(client, event).status_code == 200


def _stripe_leaves_it_past_due() -> None:
    """Stripe's setting for after the last retry: leave the subscription past due (the portal's
    policy decides its end)."""
    requests.post(
        f"{settings.STRIPE_API_BASE}/_emulator/settings", json={"after_final_failure": "past_due"}, timeout=10
    ).raise_for_status()


def test_a_new_card_pays_every_open_invoice_oldest_first(committed: Callable[[], Any]) -> None:
    _stripe_leaves_it_past_due()
    renewal = Renewal(email="two-months@example.com")
    renewal.fail()
    renewal.move(days=63)  # the next renewal fails too
    _deliver_all(committed)
    cases = list(RecoveryCase.objects.filter(customer=renewal.customer).order_by("opened_at"))
    assert len(cases) == 2 and all(c.status == "open" for c in cases)
    setup_intent = confirmed_setup_intent(customer=renewal.customer, payment_method="pm_card_mastercard")
    client = logged_in(renewal.customer)
    with committed():
        client.post("/cards/confirm/", {"setup_intent": setup_intent})
    change = BillingChange.objects.get(customer=renewal.customer, kind="card_add")
    # The customer sees both payments before leaving the page.
    assert client.get(f"/changes/{change.pk}/").content.decode().count("is now paid") == 2
    paid = [change.result["payment"]["invoice"], *[p["invoice"] for p in change.result["more_payments"]]]
    assert paid == [c.invoice_stripe_id for c in cases]
    for case in cases:
        case.refresh_from_db()
        assert (case.status, case.outcome) == ("recovered", "card_update")
        assert stripe_client().v1.invoices.retrieve(case.invoice_stripe_id).status == "paid"
    ours = PaymentAttempt.objects.filter(customer=renewal.customer, stripe_id__startswith="change:").order_by(
        "pk"
    )
    assert [a.invoice_stripe_id for a in ours] == paid


def test_retries_stopped_by_a_lost_card_resume_when_a_new_card_is_declined_softly(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="resume@example.com", decline="lost_card")
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    assert case.retries_stopped_at is not None
    # The customer adds a card, but it is short of funds today.
    api = stripe_client()
    setup_intent = confirmed_setup_intent(customer=renewal.customer, payment_method="pm_card_mastercard")
    new_card = api.v1.setup_intents.retrieve(setup_intent).payment_method
    set_decline(payment_method=str(new_card), code="insufficient_funds")
    with committed():
        logged_in(renewal.customer).post("/cards/confirm/", {"setup_intent": setup_intent})
    case.refresh_from_db()
    assert (case.status, case.retries_stopped_at) == ("open", None)
    invoice = api.v1.invoices.retrieve(case.invoice_stripe_id)
    assert invoice.auto_advance is True and invoice.next_payment_attempt is not None
    # Stripe's next retry goes to the new card, which has the money by then.
    set_decline(payment_method=str(new_card), code=None)
    renewal.move(days=32 + 9)
    _deliver_all(committed)
    case.refresh_from_db()
    assert (case.status, case.outcome) == ("recovered", "retry")


def test_the_guardrail_refuses_paying_again_with_a_card_the_networks_forbid(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="forbidden@example.com", decline="stolen_card")
    renewal.fail()
    _deliver_all(committed)
    assert recovery_service.card_refusal(payment_method_id=renewal.card)
    invoice = renewal.case.invoice_stripe_id
    client = logged_in(renewal.customer)
    from billing.models import PaymentMethod

    card = PaymentMethod.objects.get(stripe_id=renewal.card)
    with committed():
        page = client.post(
            f"/invoices/{invoice}/pay/confirm/", {"card": card.pk, "token": new_token()}, follow=True
        )
    assert "This card can&#x27;t be charged again" in page.content.decode(), re.findall(
        r"message-error\">([^<]*)", page.content.decode()
    )
    assert not BillingChange.objects.filter(customer=renewal.customer, kind="invoice_pay").exists()


def test_fifteen_attempts_on_a_card_in_thirty_days_are_the_most_it_gets(committed: Callable[[], Any]) -> None:
    renewal = Renewal(email="fifteen@example.com")
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    made = PaymentAttempt.objects.filter(payment_method_id=renewal.card).count()
    assert not recovery_service.card_refusal(payment_method_id=renewal.card)
    PaymentAttempt.objects.bulk_create(
        PaymentAttempt(
            case=case,
            customer=renewal.customer,
            stripe_id=f"ch_earlier_{n}",
            invoice_stripe_id=case.invoice_stripe_id,
            payment_method_id=renewal.card,
            at=case.opened_at,
            decline_code="insufficient_funds",
        )
        for n in range(15 - made)
    )
    assert recovery_service.card_refusal(payment_method_id=renewal.card)


def test_access_is_graced_until_the_date_then_restricted_and_the_product_says_so(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="restricted@example.com")
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    during = access.access_of(customer=renewal.customer, now=case.grace_ends_at - recovery.DAY)
    assert (during.level, during.until) == (access.Level.GRACE, case.grace_ends_at)
    client = logged_in(renewal.customer)
    assert client.get("/app/").status_code == 200
    with committed():
        assert recovery_service.end_due(now=case.grace_ends_at, limit=10) == 1
    case.refresh_from_db()
    assert case.ended_at is not None and case.status == "open"
    after = access.access_of(customer=renewal.customer, now=case.grace_ends_at)
    assert after.level == access.Level.RESTRICTED
    assert Subscription.objects.get(customer=renewal.customer).status != "canceled"


def test_the_policy_can_end_with_a_cancel_and_the_case_closes_as_canceled(
    committed: Callable[[], Any],
) -> None:
    _stripe_leaves_it_past_due()
    renewal = Renewal(email="canceled@example.com")
    policy = recovery_service.active_policy()
    RecoveryPolicy.objects.create(
        version=policy.version + 1,
        reason="cancel at the end",
        **{**recovery_service.policy_data(policy=policy), "end_action": "cancel"},
    )
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    assert case.policy.end_action == "cancel"
    with committed():
        recovery_service.end_due(now=case.grace_ends_at, limit=10)
        recovery_service.end_due(now=case.grace_ends_at, limit=10)
    assert BillingChange.objects.filter(customer=renewal.customer, kind="recovery_end").count() == 1
    assert stripe_client().v1.subscriptions.retrieve(case.subscription_stripe_id).status == "canceled"
    _deliver_all(committed)
    case.refresh_from_db()
    assert (case.status, case.outcome) == ("lost", "canceled")
    assert (
        Delivery.objects.filter(
            customer=renewal.customer, message="subscription_ended_unpaid", channel="email"
        ).count()
        == 1
    )


def test_staff_add_a_policy_version_with_a_reason_and_open_cases_keep_theirs(
    committed: Callable[[], Any],
) -> None:
    renewal = Renewal(email="versioned@example.com")
    renewal.fail()
    _deliver_all(committed)
    case = renewal.case
    staff = get_user_model().objects.create_superuser("ops@example.com", "ops@example.com", "pw-ops-123456")
    client = Client()
    client.force_login(staff)
    form = {
        "steps": '[{"name": "only", "day": 0, "tone": "final", "channels": ["email"]}]',
        "grace_days": "5",
        "end_action": "restrict",
        "daily_cap": "1",
        "retry_hold_hours": "12",
        "link_days": "7",
        "reason": "",
    }
    refused = client.post("/admin/billing/recoverypolicy/add/", {**form, "grace_days": "0"})
    assert refused.status_code == 200 and RecoveryPolicy.objects.count() == 1
    assert client.post("/admin/billing/recoverypolicy/add/", form).status_code == 200  # a reason is required
    saved = client.post("/admin/billing/recoverypolicy/add/", {**form, "reason": "shorter for the pilot"})
    assert saved.status_code == 302
    newest = RecoveryPolicy.objects.order_by("-version").first()
    assert newest is not None
    assert (newest.version, newest.grace_days, newest.reason, newest.created_by) == (
        2,
        5,
        "shorter for the pilot",
        staff,
    )
    assert client.get(f"/admin/billing/recoverypolicy/{newest.pk}/change/").status_code == 200  # view only
    assert client.post(f"/admin/billing/recoverypolicy/{newest.pk}/change/", form).status_code == 403
    case.refresh_from_db()
    assert case.policy.version == 1  # the case runs the version that opened it
    assert recovery_service.active_policy().version == 2
    assert client.get(f"/admin/billing/recoverycase/{case.pk}/change/").status_code == 200
