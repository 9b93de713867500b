"""Cards: add one (a SetupIntent the customer confirmed with Stripe.js; it becomes the default and
pays an open invoice at once), make one the default, make one the backup (with consent), remove
one.  Each is a change kind declared here with the messages that confirm it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from pydantic import StringConstraints, ValidationError

from billing import changes, gateway, messages, policy, selectors, sync
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.errors import ActionRequired, CardDeclined, InvalidRequest, Refused
from billing.messages import Facts
from billing.models import BillingChange, BillingCustomer, Invoice, PaymentMethod, RecoveryCase
from billing.policy import Category, Channel
from billing.services import recovery
from billing.services.customers import ensure_stripe_customer
from billing.state import subscription_state

PaymentMethodId = Annotated[str, StringConstraints(pattern=r"^pm_[A-Za-z0-9_]{1,200}$")]
SetupIntentId = Annotated[str, StringConstraints(pattern=r"^seti_[A-Za-z0-9_]{1,200}$")]

BOTH = (Channel.EMAIL, Channel.IN_APP)


# --------------------------------------------------------------------------- parameters and results


class CardParams(ChangeParams):
    payment_method: PaymentMethodId


class CardAddParams(ChangeParams):
    setup_intent: SetupIntentId


class CardBackupParams(CardParams):
    # When the customer agreed that the backup card may be charged (kept at Stripe too).
    consent_at: dt.datetime


class CardResult(ChangeResult):
    payment_method: str
    brand: str
    last4: str


class CardDefaultResult(CardResult):
    subscriptions: tuple[str, ...] = ()
    # The card was the backup: a card can't back itself up, so the backup was cleared.
    backup_cleared: bool = False


class InvoicePayment(ChangeResult):
    """How paying the open invoice with the new card went."""

    invoice: str
    amount: int
    currency: str
    outcome: Literal["paid", "declined", "action_required"]
    decline_code: str = ""
    # The invoice had a recovery case, which this payment closed (its thank-you confirms it).
    recovered: bool = False


class CardAddResult(CardDefaultResult):
    # The oldest unpaid invoice, tried with the new card, and the ones after it.
    payment: InvoicePayment | None = None
    more_payments: tuple[InvoicePayment, ...] = ()

    @property
    def payments(self) -> tuple[InvoicePayment, ...]:
        """Every invoice tried with the new card, oldest first."""
        return (self.payment, *self.more_payments) if self.payment else ()


# --------------------------------------------------------------------------- messages


class CardFacts(Facts):
    brand: str
    last4: str


class NextChargeFacts(CardFacts):
    """The card, and the next payment it will make (from the subscription's state), if any."""

    next_amount: int | None = None
    next_currency: str = ""
    next_at: dt.datetime | None = None


class CardAddedFacts(NextChargeFacts):
    pass


class CardDefaultFacts(NextChargeFacts):
    backup_cleared: bool


class CardPaymentFacts(CardFacts):
    amount: int
    currency: str
    decline_code: str
    change_id: str


CARD_ADDED = messages.declare(
    "card_added", category=Category.CONFIRMATION, channels=BOTH, facts=CardAddedFacts
)
CARD_ADDED_INVOICE_PAID = messages.declare(
    "card_added_invoice_paid", category=Category.CONFIRMATION, channels=BOTH, facts=CardPaymentFacts
)
CARD_ADDED_PAYMENT_DECLINED = messages.declare(
    "card_added_payment_declined",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=CardPaymentFacts,
    action="portal:card_add",
    action_label=_("Pay with another card"),
    prompted=True,
)
CARD_ADDED_PAYMENT_NEEDS_APPROVAL = messages.declare(
    "card_added_payment_needs_approval",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=CardPaymentFacts,
    action="portal:change",
    action_args=("change_id",),
    action_label=_("Approve payment"),
    prompted=True,
)
CARD_DEFAULT = messages.declare(
    "card_default", category=Category.CONFIRMATION, channels=BOTH, facts=CardDefaultFacts
)
CARD_BACKUP = messages.declare("card_backup", category=Category.CONFIRMATION, channels=BOTH, facts=CardFacts)
CARD_REMOVED = messages.declare(
    "card_removed", category=Category.CONFIRMATION, channels=BOTH, facts=CardFacts
)


# --------------------------------------------------------------------------- applying, shared


def _card(customer: BillingCustomer, payment_method: str) -> PaymentMethod:
    """The customer's card as the mirror knows it; a card gone while the change waited is a
    failure of this change, said as such, not an error of ours."""
    card = PaymentMethod.objects.filter(customer=customer, stripe_id=payment_method).first()
    if card is None:
        raise InvalidRequest("The card is no longer on the customer's account.", code="card_gone")
    return card


def _clear_backup(change: BillingChange, customer: BillingCustomer) -> None:
    assert customer.stripe_customer_id
    updated = gateway.customer_update_metadata(
        customer_id=customer.stripe_customer_id,
        metadata={"backup_payment_method": "", "backup_consent_at": ""},
        idempotency_key=change.idempotency_key("backup-clear"),
    )
    sync.customer_from_stripe(customer=customer, data=updated.raw, state_at=timezone.now())
    customer.backup_consent_at = None
    customer.save(update_fields=["backup_consent_at"])


def make_default(
    *, change: BillingChange, customer: BillingCustomer, payment_method: str
) -> CardDefaultResult:
    """Default on the customer and on every live subscription: Stripe charges a subscription's own
    default first, so setting it only on the customer would leave retries on the old card."""
    assert customer.stripe_customer_id
    was_backup = customer.backup_payment_method_id == payment_method
    updated = gateway.customer_set_default_payment_method(
        customer_id=customer.stripe_customer_id,
        payment_method_id=payment_method,
        idempotency_key=change.idempotency_key("customer-default"),
    )
    sync.customer_from_stripe(customer=customer, data=updated.raw, state_at=timezone.now())
    subscriptions = selectors.live_subscriptions(customer=customer)
    for sub in subscriptions:
        data = gateway.subscription_set_default_payment_method(
            subscription_id=sub.stripe_id,
            payment_method_id=payment_method,
            idempotency_key=change.idempotency_key(f"subscription-default-{sub.stripe_id}"),
        )
        sync.subscription_from_stripe(customer=customer, data=data.raw, state_at=timezone.now())
    if was_backup:
        _clear_backup(change, customer)
    card = _card(customer, payment_method)
    return CardDefaultResult(
        payment_method=payment_method,
        brand=card.brand,
        last4=card.last4,
        subscriptions=tuple(s.stripe_id for s in subscriptions),
        backup_cleared=was_backup,
    )


def _next_charge(customer: BillingCustomer) -> dict[str, Any]:
    subscription = selectors.current_subscription(customer=customer)
    state = subscription_state(subscription=subscription, now=timezone.now()) if subscription else None
    if state is None or state.next_charge is None:
        return {}
    charge = state.next_charge
    return {"next_amount": charge.amount, "next_currency": charge.currency, "next_at": charge.at}


def card_from_setup(*, customer: BillingCustomer, setup_intent_id: str) -> gateway.Card:
    """The card a SetupIntent the customer confirmed in the browser saved, mirrored."""
    intent = gateway.setup_intent_retrieve(setup_intent_id=setup_intent_id)
    if intent.customer_id != customer.stripe_customer_id:
        raise InvalidRequest("This card setup belongs to someone else.", code="setup_intent_foreign")
    if intent.status != "succeeded":
        raise InvalidRequest("The card was not confirmed.", code=f"setup_intent_{intent.status}")
    card = gateway.payment_method_retrieve(payment_method_id=intent.payment_method_id)
    sync.payment_method_from_stripe(customer=customer, data=card.raw, state_at=timezone.now())
    return card


def _pay(
    change: BillingChange, invoice: Invoice, payment_method: str
) -> tuple[InvoicePayment, gateway.Invoice | None]:
    facts = {"invoice": invoice.stripe_id, "amount": invoice.amount_remaining, "currency": invoice.currency}
    try:
        paid = gateway.invoice_pay(
            invoice_id=invoice.stripe_id,
            payment_method_id=payment_method,
            idempotency_key=change.idempotency_key(f"pay-{invoice.stripe_id}"),
        )
    except CardDeclined as exc:
        return InvoicePayment(**facts, outcome="declined", decline_code=exc.decline_code or exc.code), None
    except ActionRequired:
        return InvoicePayment(**facts, outcome="action_required"), None
    outcome: Literal["paid", "declined", "action_required"] = "paid" if paid.status == "paid" else "declined"
    return InvoicePayment(**facts, outcome=outcome), paid


def _pay_open_invoices(
    change: BillingChange, customer: BillingCustomer, payment_method: str
) -> list[InvoicePayment]:
    """Every unpaid invoice is tried again at once with the new card, oldest first, and the
    customer is told how it went.  A decline stops there: the same card would only be declined
    again on the next one (and every try counts against it with the card networks)."""
    payments: list[InvoicePayment] = []
    for invoice in selectors.open_invoices(customer=customer):
        payment, paid = _pay(change, invoice, payment_method)
        payments.append(payment)
        recovery.record_payment(
            customer=customer,
            invoice_id=invoice.stripe_id,
            payment_method_id=payment_method,
            change=change,
            outcome=payment.outcome,
            decline_code=payment.decline_code,
        )
        if paid is None or payment.outcome != "paid":
            break
        sync.invoice_from_stripe(customer=customer, data=paid.raw, state_at=timezone.now())
        case = recovery.settled(
            customer=customer, invoice_id=invoice.stripe_id, outcome=RecoveryCase.Outcome.CARD_UPDATE
        )
        payments[-1] = payment.model_copy(update={"recovered": case is not None})
    declined = next((p.decline_code for p in payments if p.outcome == "declined"), "")
    recovery.resume_collecting(customer=customer, change=change, decline_code=declined)
    return payments


# --------------------------------------------------------------------------- the kinds


@change_kind
class CardAdd(ChangeKind[CardAddParams, CardAddResult]):
    name = "card_add"
    label = _("Add a card")
    template = "portal/changes/card_add.html"
    Params = CardAddParams
    Result = CardAddResult
    messages = (
        CARD_ADDED,
        CARD_ADDED_INVOICE_PAID,
        CARD_ADDED_PAYMENT_DECLINED,
        CARD_ADDED_PAYMENT_NEEDS_APPROVAL,
    )
    # A SetupIntent is saved once, however often its confirmation is posted.
    dedupe = ("setup_intent",)
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: CardAddParams
    ) -> CardAddResult:
        card = card_from_setup(customer=customer, setup_intent_id=params.setup_intent)
        default = make_default(change=change, customer=customer, payment_method=card.id)
        payments = _pay_open_invoices(change, customer, card.id)
        return CardAddResult(
            **default.model_dump(),
            payment=payments[0] if payments else None,
            more_payments=tuple(payments[1:]),
        )

    def confirmation(
        self, *, change: BillingChange, params: CardAddParams, result: CardAddResult
    ) -> Confirmation | None:
        card = {"brand": result.brand, "last4": result.last4}
        payment = result.payment
        if payment is None:
            return Confirmation(CARD_ADDED, CardAddedFacts(**card, **_next_charge(change.customer)))
        every = result.payments
        failed = next((p for p in every if p.outcome != "paid"), None)
        if failed is None and all(p.recovered for p in every):
            # The recovery case's thank-you says it, in the channel the customer came from.
            return None
        payment = failed or payment
        message = {
            "paid": CARD_ADDED_INVOICE_PAID,
            "declined": CARD_ADDED_PAYMENT_DECLINED,
            "action_required": CARD_ADDED_PAYMENT_NEEDS_APPROVAL,
        }[payment.outcome]
        facts = CardPaymentFacts(
            **card,
            amount=payment.amount if failed else sum(p.amount for p in every),
            currency=payment.currency,
            decline_code=payment.decline_code,
            change_id=str(change.pk),
        )
        return Confirmation(message, facts)

    def awaiting_approval(self, *, result: CardAddResult) -> str:
        return next((p.invoice for p in result.payments if p.outcome == "action_required"), "")

    def approved(
        self,
        *,
        change: BillingChange,
        customer: BillingCustomer,
        result: CardAddResult,
        invoice: gateway.Invoice,
    ) -> tuple[CardAddResult, Confirmation | None]:
        assert result.payment is not None
        case = recovery.settled(
            customer=customer, invoice_id=invoice.id, outcome=RecoveryCase.Outcome.CARD_UPDATE
        )
        paid = {"outcome": "paid", "recovered": case is not None}
        if result.payment.invoice != invoice.id:
            more = tuple(
                p.model_copy(update=paid) if p.invoice == invoice.id else p for p in result.more_payments
            )
            return result.model_copy(update={"more_payments": more}), None
        payment = result.payment.model_copy(update=paid)
        if case is not None:
            # The recovery case's thank-you says it.
            return result.model_copy(update={"payment": payment}), None
        facts = CardPaymentFacts(
            brand=result.brand,
            last4=result.last4,
            amount=invoice.amount_paid,
            currency=payment.currency,
            decline_code="",
            change_id=str(change.pk),
        )
        return result.model_copy(update={"payment": payment}), Confirmation(CARD_ADDED_INVOICE_PAID, facts)


@change_kind
class CardSetDefault(ChangeKind[CardParams, CardDefaultResult]):
    name = "card_set_default"
    label = _("Set the default card")
    template = "portal/changes/card_set_default.html"
    Params = CardParams
    Result = CardDefaultResult
    messages = (CARD_DEFAULT,)
    dedupe = ()
    # Only the latest choice of default counts.
    supersedes = True

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: CardParams
    ) -> CardDefaultResult:
        _card(customer, params.payment_method)
        return make_default(change=change, customer=customer, payment_method=params.payment_method)

    def confirmation(
        self, *, change: BillingChange, params: CardParams, result: CardDefaultResult
    ) -> Confirmation:
        return Confirmation(
            CARD_DEFAULT,
            CardDefaultFacts(
                brand=result.brand,
                last4=result.last4,
                backup_cleared=result.backup_cleared,
                **_next_charge(change.customer),
            ),
        )


@change_kind
class CardSetBackup(ChangeKind[CardBackupParams, CardResult]):
    name = "card_set_backup"
    label = _("Set the backup card")
    template = "portal/changes/card_set_backup.html"
    Params = CardBackupParams
    Result = CardResult
    messages = (CARD_BACKUP,)
    dedupe = ()
    supersedes = True

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: CardBackupParams
    ) -> CardResult:
        card = _card(customer, params.payment_method)
        # The rule again, as things are now: the card may have become the default meanwhile.
        refusal = policy.backup_refusal(
            card_id=card.stripe_id, default_card_id=customer.default_payment_method_id, consent=True
        )
        if refusal:
            raise InvalidRequest(refusal, code="backup_is_default")
        assert customer.stripe_customer_id
        updated = gateway.customer_update_metadata(
            customer_id=customer.stripe_customer_id,
            metadata={
                "backup_payment_method": card.stripe_id,
                "backup_consent_at": params.consent_at.isoformat(),
            },
            idempotency_key=change.idempotency_key("backup"),
        )
        sync.customer_from_stripe(customer=customer, data=updated.raw, state_at=timezone.now())
        customer.backup_consent_at = params.consent_at
        customer.save(update_fields=["backup_consent_at"])
        return CardResult(payment_method=card.stripe_id, brand=card.brand, last4=card.last4)

    def confirmation(
        self, *, change: BillingChange, params: CardBackupParams, result: CardResult
    ) -> Confirmation:
        return Confirmation(CARD_BACKUP, CardFacts(brand=result.brand, last4=result.last4))


@change_kind
class CardRemove(ChangeKind[CardParams, CardResult]):
    name = "card_remove"
    label = _("Remove a card")
    template = "portal/changes/card_remove.html"
    Params = CardParams
    Result = CardResult
    messages = (CARD_REMOVED,)
    dedupe = ()
    supersedes = False

    def apply(self, *, change: BillingChange, customer: BillingCustomer, params: CardParams) -> CardResult:
        card = _card(customer, params.payment_method)
        detached = gateway.payment_method_detach(
            payment_method_id=card.stripe_id, idempotency_key=change.idempotency_key("detach")
        )
        PaymentMethod.objects.filter(customer=customer, stripe_id=detached.id).delete()
        if customer.backup_payment_method_id == detached.id:
            _clear_backup(change, customer)
        return CardResult(payment_method=detached.id, brand=card.brand, last4=card.last4)

    def confirmation(self, *, change: BillingChange, params: CardParams, result: CardResult) -> Confirmation:
        return Confirmation(CARD_REMOVED, CardFacts(brand=result.brand, last4=result.last4))


ADD = changes.KINDS[CardAdd.name]
SET_DEFAULT = changes.KINDS[CardSetDefault.name]
SET_BACKUP = changes.KINDS[CardSetBackup.name]
REMOVE = changes.KINDS[CardRemove.name]


# --------------------------------------------------------------------------- what the portal calls


def card_setup_start(*, customer: BillingCustomer, attempt: str) -> str:
    """A SetupIntent for the Payment Element; returns its client secret for the browser (not
    stored).  `attempt` (one per page view) makes a double submit reuse the same SetupIntent."""
    with gateway.interactive():
        stripe_id = ensure_stripe_customer(customer=customer)
        intent = gateway.setup_intent_create(
            customer_id=stripe_id, idempotency_key=f"setup-{customer.pk}-{attempt}"
        )
    return intent.client_secret


def card_add(
    *, customer: BillingCustomer, setup_intent_id: str, requested_by: changes.Actor
) -> BillingChange:
    try:
        params = CardAddParams(setup_intent=setup_intent_id)
    except ValidationError:
        raise Refused(gettext("We could not read the card confirmation. Please add the card again."))
    return changes.request(customer=customer, kind=ADD, params=params, requested_by=requested_by)


def card_set_default(
    *, customer: BillingCustomer, card: PaymentMethod, requested_by: changes.Actor, key: str = ""
) -> BillingChange:
    refusal = policy.default_refusal(
        exp_year=card.exp_year, exp_month=card.exp_month, today=timezone.now().date()
    )
    if refusal:
        raise Refused(refusal)
    params = CardParams(payment_method=card.stripe_id)
    return changes.request(
        customer=customer, kind=SET_DEFAULT, params=params, requested_by=requested_by, key=key
    )


def card_set_backup(
    *,
    customer: BillingCustomer,
    card: PaymentMethod,
    consent: bool,
    requested_by: changes.Actor,
    key: str = "",
) -> BillingChange:
    refusal = policy.backup_refusal(
        card_id=card.stripe_id, default_card_id=customer.default_payment_method_id, consent=consent
    )
    if refusal:
        raise Refused(refusal)
    params = CardBackupParams(payment_method=card.stripe_id, consent_at=timezone.now())
    return changes.request(
        customer=customer, kind=SET_BACKUP, params=params, requested_by=requested_by, key=key
    )


def card_remove(
    *, customer: BillingCustomer, card: PaymentMethod, requested_by: changes.Actor, key: str = ""
) -> BillingChange:
    refusal = policy.card_removal_refusal(
        card_id=card.stripe_id,
        default_card_id=customer.default_payment_method_id,
        other_cards=selectors.other_cards(customer=customer, card=card),
        live_subscription=bool(selectors.live_subscriptions(customer=customer)),
    )
    if refusal:
        raise Refused(refusal)
    params = CardParams(payment_method=card.stripe_id)
    return changes.request(customer=customer, kind=REMOVE, params=params, requested_by=requested_by, key=key)
