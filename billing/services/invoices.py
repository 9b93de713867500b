"""Invoices: the receipt for a payment, once, whichever Stripe event told us of it; and paying an
open invoice now from the Invoices page, with the default card or another one (saved with the
Payment Element, 3-D Secure included).

The rules (which invoices may be paid, and why not) are billing/invoice_rules.py.  Paying is a
change kind (`invoice_pay`): recorded first, then `invoices.pay` at Stripe with the change's
idempotency key, so a payment tried again after an outage is made once.  Off-session, as Stripe
Billing charges a saved card; a bank that still wants its check leaves the change waiting for the
customer's approval on its page (billing.services.approvals).

Two messages follow a payment, each once: the receipt (`payment_received`, keyed by the invoice,
sent by whoever hears of the payment first: this change or the `invoice.paid` webhook) and the
change's confirmation (keyed by the change).
"""

from __future__ import annotations

from typing import Annotated, Literal

from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from pydantic import StringConstraints

from billing import changes, gateway, invoice_rules, messages, outbox, selectors, sync
from billing.changes import ChangeKind, ChangeParams, ChangeResult, Confirmation, change_kind
from billing.errors import InvalidRequest, Refused
from billing.messages import Facts
from billing.models import BillingChange, BillingCustomer, Invoice, PaymentMethod, RecoveryCase
from billing.policy import Category, Channel
from billing.services import cards, mirrored, recovery

InvoiceId = Annotated[str, StringConstraints(pattern=r"^in_[A-Za-z0-9_]{1,200}$")]
PaymentMethodId = Annotated[str, StringConstraints(pattern=r"^pm_[A-Za-z0-9_]{1,200}$")]
SetupIntentId = Annotated[str, StringConstraints(pattern=r"^seti_[A-Za-z0-9_]{1,200}$")]

BOTH = (Channel.EMAIL, Channel.IN_APP)

Outcome = Literal["paid", "declined", "action_required", "already_paid"]


# --------------------------------------------------------------------------- the receipt


class PaymentFacts(Facts):
    invoice: str
    number: str
    amount: int
    currency: str


PAYMENT_RECEIVED = messages.declare(
    "payment_received",
    category=Category.CONFIRMATION,
    channels=(Channel.EMAIL, Channel.IN_APP),
    facts=PaymentFacts,
)


def invoice_paid(*, customer: BillingCustomer, invoice: gateway.Invoice) -> None:
    """A receipt for every paid invoice with money in it; its dedupe key makes it once-only.  An
    invoice that had a recovery case gets the case's thank-you instead (one message, not two)."""
    if invoice.status != "paid" or invoice.amount_paid <= 0:
        return
    if RecoveryCase.objects.filter(invoice_stripe_id=invoice.id).exists():
        return
    outbox.enqueue(
        customer=customer,
        message=PAYMENT_RECEIVED,
        about=f"invoice:{invoice.id}",
        step="paid",
        facts=PaymentFacts(
            invoice=invoice.id,
            number=invoice.number,
            amount=invoice.amount_paid,
            currency=invoice.currency or customer.currency,
        ),
    )


# --------------------------------------------------------------------------- paying one now


class InvoicePayParams(ChangeParams):
    invoice: InvoiceId
    # The card the customer's button named (their default card then), or the SetupIntent of the
    # card they saved for this payment: exactly one of the two.
    payment_method: PaymentMethodId | None = None
    setup_intent: SetupIntentId | None = None


class InvoicePayResult(ChangeResult):
    invoice: str
    number: str
    amount: int
    currency: str
    brand: str
    last4: str
    # "already_paid": paid before this payment reached Stripe (an automatic retry, the hosted
    # page, another of the customer's payments): nothing was charged by this one.
    outcome: Outcome
    decline_code: str = ""
    new_card: bool = False
    # The invoice had a recovery case, which this payment closed (its thank-you confirms it).
    recovered: bool = False


class InvoicePaidFacts(Facts):
    invoice: str
    number: str
    amount: int
    currency: str
    brand: str
    last4: str


class InvoicePaymentFacts(InvoicePaidFacts):
    decline_code: str
    change_id: str


INVOICE_PAID_NOW = messages.declare(
    "invoice_paid_now", category=Category.CONFIRMATION, channels=BOTH, facts=InvoicePaidFacts
)
INVOICE_PAYMENT_DECLINED = messages.declare(
    "invoice_payment_declined",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=InvoicePaymentFacts,
    action="portal:invoice_pay",
    action_args=("invoice",),
    action_label=_("Pay with another card"),
    prompted=True,
)
INVOICE_PAYMENT_NEEDS_APPROVAL = messages.declare(
    "invoice_payment_needs_approval",
    category=Category.PAYMENT_CRITICAL,
    channels=BOTH,
    facts=InvoicePaymentFacts,
    action="portal:change",
    action_args=("change_id",),
    action_label=_("Approve payment"),
    prompted=True,
)


def _invoice(customer: BillingCustomer, stripe_id: str) -> Invoice:
    invoice = selectors.invoice_for(customer=customer, stripe_id=stripe_id)
    if invoice is None:
        raise InvalidRequest("The invoice is not the customer's.", code="invoice_foreign")
    return invoice


def _card(change: BillingChange, customer: BillingCustomer, params: InvoicePayParams) -> tuple[str, str, str]:
    """The card that pays: (id, brand, last4).  A card saved for this payment becomes the default,
    as the card form says, so the next renewal does not go to the card that failed."""
    if params.setup_intent:
        card = cards.card_from_setup(customer=customer, setup_intent_id=params.setup_intent)
        cards.make_default(change=change, customer=customer, payment_method=card.id)
        return card.id, card.brand, card.last4
    saved = PaymentMethod.objects.filter(customer=customer, stripe_id=params.payment_method or "").first()
    if saved is None:
        raise InvalidRequest("The card is no longer on the customer's account.", code="card_gone")
    return saved.stripe_id, saved.brand, saved.last4


def _mirrored(customer: BillingCustomer, invoice: gateway.Invoice) -> None:
    """The invoice as Stripe has it now, and, once paid, its subscription too (past due → active):
    the pages show it at once, not when the webhooks come."""
    sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
    if invoice.status != "paid":
        return
    invoice_paid(customer=customer, invoice=invoice)
    subscription_id = gateway.ref_id(
        ((invoice.raw.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    )
    if subscription_id:
        mirrored.refreshed(customer=customer, subscription_id=subscription_id)


@change_kind
class InvoicePay(ChangeKind[InvoicePayParams, InvoicePayResult]):
    name = selectors.INVOICE_PAY_KIND
    label = _("Pay an invoice")
    template = "portal/changes/invoice_pay.html"
    Params = InvoicePayParams
    Result = InvoicePayResult
    messages = (INVOICE_PAID_NOW, INVOICE_PAYMENT_DECLINED, INVOICE_PAYMENT_NEEDS_APPROVAL)
    # The caller's key: the page's one-time token with the invoice, or the SetupIntent's id.
    dedupe = ()
    supersedes = False

    def apply(
        self, *, change: BillingChange, customer: BillingCustomer, params: InvoicePayParams
    ) -> InvoicePayResult:
        invoice = _invoice(customer, params.invoice)
        # The rules again, as things are now (a pause since the click, say).  This change is the
        # payment on its way, so it does not count against itself; and "paid" is Stripe's to say:
        # a retry after a lost answer must find its own payment, not refuse.
        facts = selectors.payable(invoice=invoice, paused_subscription=_paused(customer), being_paid=set())
        refusal = invoice_rules.pay_refusal(invoice=facts)
        if refusal and invoice.status != Invoice.Status.PAID:
            raise InvalidRequest(refusal, code="pay_refused")
        card_id, brand, last4 = _card(change, customer, params)
        common = {
            "invoice": invoice.stripe_id,
            "number": invoice.number,
            "currency": invoice.currency,
            "brand": brand,
            "last4": last4,
            "new_card": params.setup_intent is not None,
        }
        payment = mirrored.pay_invoice(
            invoice_id=invoice.stripe_id,
            payment_method_id=card_id,
            idempotency_key=change.idempotency_key("pay"),
        )
        paid, outcome = payment.invoice, payment.outcome
        # A payment waiting for the customer's bank is not a decline (the change page approves it).
        decline_code = payment.decline_code if outcome == "declined" else ""
        _mirrored(customer, paid)
        amount = paid.amount_paid if outcome in ("paid", "already_paid") else paid.amount_remaining
        recovery.record_payment(
            customer=customer,
            invoice_id=invoice.stripe_id,
            payment_method_id=card_id,
            change=change,
            outcome=outcome,
            decline_code=decline_code,
        )
        recovered = False
        if outcome == "paid":
            case = recovery.settled(
                customer=customer, invoice_id=invoice.stripe_id, outcome=_recovered_by(params)
            )
            recovered = case is not None
        if params.setup_intent:
            # A new card: other invoices whose retries a hard decline stopped are collected again.
            recovery.resume_collecting(customer=customer, change=change, decline_code=decline_code)
        return InvoicePayResult(
            **common, amount=amount, outcome=outcome, decline_code=decline_code, recovered=recovered
        )

    def confirmation(
        self, *, change: BillingChange, params: InvoicePayParams, result: InvoicePayResult
    ) -> Confirmation | None:
        if result.outcome == "already_paid" or (result.outcome == "paid" and result.recovered):
            # Nothing was charged by this change, and the payment that was made has its receipt;
            # or it closed a recovery case, whose thank-you confirms it.
            return None
        if result.outcome == "paid":
            return Confirmation(INVOICE_PAID_NOW, _paid_facts(result))
        message = INVOICE_PAYMENT_DECLINED if result.outcome == "declined" else INVOICE_PAYMENT_NEEDS_APPROVAL
        return Confirmation(
            message,
            InvoicePaymentFacts(
                **_paid_facts(result).model_dump(), decline_code=result.decline_code, change_id=str(change.pk)
            ),
        )

    def awaiting_approval(self, *, result: InvoicePayResult) -> str:
        return result.invoice if result.outcome == "action_required" else ""

    def approved(
        self,
        *,
        change: BillingChange,
        customer: BillingCustomer,
        result: InvoicePayResult,
        invoice: gateway.Invoice,
    ) -> tuple[InvoicePayResult, Confirmation | None]:
        _mirrored(customer, invoice)
        if _paid_by_another(change, result.invoice):
            # The customer paid it with another card instead of approving this one: that payment
            # was confirmed; this one charged nothing.
            return result.model_copy(update={"outcome": "already_paid", "amount": invoice.amount_paid}), None
        case = recovery.settled(
            customer=customer, invoice_id=invoice.id, outcome=_recovered_by(change.params)
        )
        paid = result.model_copy(
            update={"outcome": "paid", "amount": invoice.amount_paid, "recovered": case is not None}
        )
        if case is not None:
            return paid, None
        return paid, Confirmation(INVOICE_PAID_NOW, _paid_facts(paid))


def _recovered_by(params: InvoicePayParams | dict[str, object]) -> RecoveryCase.Outcome:
    new_card = params.get("setup_intent") if isinstance(params, dict) else params.setup_intent
    return RecoveryCase.Outcome.CARD_UPDATE if new_card else RecoveryCase.Outcome.PAY_NOW


def _paid_facts(result: InvoicePayResult) -> InvoicePaidFacts:
    return InvoicePaidFacts(
        invoice=result.invoice,
        number=result.number,
        amount=result.amount,
        currency=result.currency,
        brand=result.brand,
        last4=result.last4,
    )


def _paused(customer: BillingCustomer) -> str:
    view = selectors.dashboard(customer=customer)
    return view.subscription.stripe_id if view.subscription and view.state and view.state.paused else ""


def _paid_by_another(change: BillingChange, invoice_id: str) -> bool:
    return (
        BillingChange.objects.filter(
            customer_id=change.customer_id,
            kind=InvoicePay.name,
            status=BillingChange.Status.APPLIED,
            params__invoice=invoice_id,
            result__outcome="paid",
        )
        .exclude(pk=change.pk)
        .exists()
    )


PAY = changes.KINDS[InvoicePay.name]


# --------------------------------------------------------------------------- what the portal calls


def pay_key(*, invoice: Invoice, setup_intent_id: str | None, token: str) -> str:
    """A payment's dedupe key: the same card confirmation posted twice (the page's script and the
    bank's return page, a reload) is one payment; so is the same button clicked twice."""
    if setup_intent_id:
        return f"setup:{setup_intent_id}"
    return f"pay:{invoice.stripe_id}:{token}"


def submitted_payment(
    *, customer: BillingCustomer, invoice: Invoice, setup_intent_id: str | None, token: str
) -> BillingChange | None:
    return changes.submitted(
        customer=customer,
        kind=PAY,
        key=pay_key(invoice=invoice, setup_intent_id=setup_intent_id, token=token),
    )


def invoice_pay(
    *,
    customer: BillingCustomer,
    invoice: Invoice,
    card: PaymentMethod | None,
    setup_intent_id: str | None,
    requested_by: changes.Actor,
    token: str = "",
) -> BillingChange:
    """Pay `invoice` now with `card` (one of the customer's) or the card a confirmed SetupIntent
    saved.  Refused, in the customer's words, when the rules say no."""
    key = pay_key(invoice=invoice, setup_intent_id=setup_intent_id, token=token)
    earlier = changes.submitted(customer=customer, kind=PAY, key=key)
    if earlier is not None:
        return earlier
    refusal = selectors.invoice_pay_refusal(customer=customer, invoice=invoice)
    if refusal:
        raise Refused(refusal)
    if setup_intent_id is None:
        if card is None:
            raise Refused(gettext("Please add a card to pay with."))
        card_refusal = invoice_rules.card_refusal(
            exp_year=card.exp_year, exp_month=card.exp_month, today=timezone.now().date()
        )
        if card_refusal:
            raise Refused(card_refusal)
        if recovery.card_refusal(payment_method_id=card.stripe_id):
            # The card networks' rules (billing.declines): a card declined for good, or tried
            # too often this month, is not charged again.
            raise Refused(gettext("This card can't be charged again. Please pay with another card."))
    params = InvoicePayParams(
        invoice=invoice.stripe_id,
        payment_method=card.stripe_id if setup_intent_id is None and card is not None else None,
        setup_intent=setup_intent_id,
    )
    return changes.request(customer=customer, kind=PAY, params=params, requested_by=requested_by, key=key)
