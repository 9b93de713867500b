"""The billing engine: periods, prorations, invoices, payment attempts, retries, and the
work that falls due as time passes (renewals, finalization, retries, phase changes,
pause resumes, pending-update expiry).

Every function runs under ``state.lock``. Work that falls due later is a job in the
schedule of the governing test clock (or of real time); a job re-checks that it still
applies when it runs, so superseded jobs need no cancelling."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .errors import InvalidRequestError
from .resources.events import emit, render_before
from .routing import render
from .shapes import blank
from .state import Job, State

DAY = 86400


# periods ---------------------------------------------------------------------------------


def add_interval(anchor: int, interval: str, count: int, n: int = 1) -> int:
    """``anchor`` moved by ``n`` billing intervals, keeping the anchor's day of month where
    the month has it (Jan 31 → Feb 28 → Mar 31), as Stripe does."""
    if interval == "day":
        return anchor + n * count * DAY
    if interval == "week":
        return anchor + n * count * 7 * DAY
    start = dt.datetime.fromtimestamp(anchor, dt.UTC)
    months = n * count * (12 if interval == "year" else 1)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def period_end_after(anchor: int, interval: str, count: int, moment: int) -> int:
    """The first period boundary (counted from ``anchor``) strictly after ``moment``."""
    n = 1
    while (end := add_interval(anchor, interval, count, n)) <= moment:
        n += 1
    return end


def price_interval(price: dict[str, Any]) -> tuple[str, int]:
    recurring = price.get("recurring") or {}
    return recurring["interval"], int(recurring["interval_count"])


def prorate(amount: int, *, start: int, end: int, at: int) -> int:
    """The part of ``amount`` for [at, end) of the period [start, end), to the second."""
    if end <= start or at >= end:
        return 0
    share = Decimal(amount) * Decimal(end - max(at, start)) / Decimal(end - start)
    return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _date(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%d %b %Y").lstrip("0")


# subscription items -----------------------------------------------------------------------


def items_of(state: State, sub: dict[str, Any]) -> list[dict[str, Any]]:
    return [state.objects[i] for i in sub["_items"] if not state.objects[i].get("_deleted")]


def sub_interval(state: State, sub: dict[str, Any]) -> tuple[str, int]:
    return price_interval(state.objects[items_of(state, sub)[0]["price"]])


def new_item(state: State, sub: dict[str, Any], *, price: dict[str, Any], quantity: int,
             metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    item = blank("subscription_item")
    item.update(
        id=state.new_id("si", 14),
        created=state.now_for(sub),
        price=price["id"],
        quantity=quantity,
        subscription=sub["id"],
        metadata=metadata or {},
        current_period_start=sub["_period_start"],
        current_period_end=sub["_period_end"],
        _seq=next(state.counters),
    )
    return state.add(item)


def set_period(state: State, sub: dict[str, Any], start: int, end: int) -> None:
    sub["_period_start"], sub["_period_end"] = start, end
    for item in items_of(state, sub):
        item["current_period_start"], item["current_period_end"] = start, end


def current_plans(state: State, sub: dict[str, Any]) -> list[ItemPlan]:
    return [ItemPlan(state.objects[i["price"]], i["quantity"], i) for i in items_of(state, sub)]


def unused_credit(state: State, sub: dict[str, Any], *, at: int, start: int | None = None,
                  end: int | None = None) -> list[LineSpec]:
    """Credit lines for the part of the period after ``at`` on everything the subscription has."""
    plans = current_plans(state, sub)
    nothing = [ItemPlan(p.price, 0, p.item) for p in plans]
    lines = proration_lines(state, plans, nothing, start=start if start is not None else sub["_period_start"],
                            end=end if end is not None else sub["_period_end"], at=at)
    return [line for line in lines if line.amount < 0]


def invoice_pending_now(state: State, sub: dict[str, Any], *, specs: list[LineSpec] | None = None) -> dict[str, Any]:
    """Invoice what waits for the next renewal (or ``specs``) at once, finalized."""
    invoice = new_invoice(state, customer=state.objects[sub["customer"]], sub=sub,
                          specs=specs if specs is not None else pending_lines(sub),
                          billing_reason="subscription_update")
    if specs is None:
        sub["_pending_lines"] = []
    sub["latest_invoice"] = invoice["id"]
    finalize(state, invoice)
    return invoice


@dataclass
class ItemPlan:
    """One item as it would be after a change: existing (``item``) or new."""

    price: dict[str, Any]
    quantity: int
    item: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def plan_items(state: State, sub: dict[str, Any] | None, updates: list[dict[str, Any]] | None) -> list[ItemPlan]:
    """The item list after applying ``items[...]`` update parameters (Stripe's rules: an
    entry with ``id`` changes or deletes that item, one without adds an item)."""
    current = items_of(state, sub) if sub else []
    plans = [ItemPlan(state.objects[i["price"]], i["quantity"], i, dict(i["metadata"])) for i in current]
    for index, update in enumerate(updates or []):
        param = f"items[{index}]"
        if update.get("id"):
            match = next((p for p in plans if p.item and p.item["id"] == update["id"]), None)
            if match is None:
                raise InvalidRequestError(
                    f"Invalid subscription item: {update['id']} is not part of this subscription.",
                    param=f"{param}[id]",
                )
            if update.get("deleted"):
                plans.remove(match)
                continue
            if update.get("price"):
                match.price = state.get("price", update["price"], param=f"{param}[price]")
            if "quantity" in update:
                match.quantity = int(update["quantity"])
            if "metadata" in update:
                match.metadata = update["metadata"] or {}
        else:
            if "price" in update:
                price = state.get("price", update["price"], param=f"{param}[price]")
            elif "price_data" in update:
                from .resources.catalog import create_price

                data = update["price_data"]
                price = create_price(state, {
                    "currency": data["currency"], "product": data["product"],
                    "unit_amount": data.get("unit_amount", data.get("unit_amount_decimal", 0)),
                    "recurring": data["recurring"],
                })
            else:
                raise InvalidRequestError(f"Missing required param: {param}[price].", code="parameter_missing",
                                          param=f"{param}[price]")
            plans.append(ItemPlan(price, int(update.get("quantity", 1)), None, update.get("metadata") or {}))
    check_items(plans, sub)
    return plans


def check_items(plans: list[ItemPlan], sub: dict[str, Any] | None, *, param: str = "items") -> None:
    if not plans:
        raise InvalidRequestError("A subscription needs at least one item.", param=param)
    currencies = {p.price["currency"] for p in plans}
    intervals = {price_interval(p.price) for p in plans if p.price.get("recurring")}
    if any(not p.price.get("recurring") for p in plans):
        raise InvalidRequestError(
            "The price specified is set to `type=one_time` but this field only accepts prices with "
            "`type=recurring`.", param=param,
        )
    if not all(p.price["active"] for p in plans):
        raise InvalidRequestError("The price specified is inactive. This field only accepts active prices.",
                                  param=param)
    if len(currencies) > 1 or (sub is not None and sub["currency"] not in currencies):
        raise InvalidRequestError(
            "The price specified does not match the currency of the subscription; a subscription's currency "
            "cannot change.", param=param,
        )
    if len(intervals) > 1:
        raise InvalidRequestError(
            "The price specified has a different billing interval than the other prices of this subscription.",
            param=param,
        )


# lines and invoices -----------------------------------------------------------------------


@dataclass
class LineSpec:
    amount: int
    price: dict[str, Any] | None
    quantity: int
    start: int
    end: int
    proration: bool
    description: str
    item_id: str | None = None  # None while the item does not exist yet
    invoice_item: str | None = None  # a pending invoice item this line bills
    currency: str = ""

    @property
    def money(self) -> str:
        return self.price["currency"] if self.price else self.currency


def period_lines(state: State, plans: list[ItemPlan], start: int, end: int) -> list[LineSpec]:
    lines = []
    for plan in plans:
        product = state.objects[plan.price["product"]]
        unit = plan.price["unit_amount"]
        lines.append(LineSpec(
            unit * plan.quantity, plan.price, plan.quantity, start, end, False,
            f"{plan.quantity} × {product['name']} (at {_money(unit, plan.price['currency'])} / "
            f"{_interval_words(plan.price)})",
            plan.item["id"] if plan.item else None,
        ))
    return lines


def _money(amount: int, currency: str) -> str:
    symbols = {"usd": "$", "eur": "€", "gbp": "£"}
    value = f"{amount / 100:,.2f}"
    return f"{symbols[currency]}{value}" if currency in symbols else f"{value} {currency.upper()}"


def _interval_words(price: dict[str, Any]) -> str:
    interval, count = price_interval(price)
    return interval if count == 1 else f"{count} {interval}s"


def proration_lines(state: State, before: list[ItemPlan], after: list[ItemPlan], *, start: int, end: int,
                    at: int) -> list[LineSpec]:
    """Credit unused time on what changes and charge the remaining time on what replaces it."""
    lines: list[LineSpec] = []
    after_by_item = {p.item["id"]: p for p in after if p.item}
    for old in before:
        assert old.item is not None
        new = after_by_item.get(old.item["id"])
        if new is not None and new.price["id"] == old.price["id"] and new.quantity == old.quantity:
            continue
        credit = prorate(old.price["unit_amount"] * old.quantity, start=start, end=end, at=at)
        if credit:
            name = state.objects[old.price["product"]]["name"]
            lines.append(LineSpec(-credit, old.price, old.quantity, at, end, True,
                                  f"Unused time on {old.quantity} × {name} after {_date(at)}", old.item["id"]))
    before_ids = {p.item["id"] for p in before if p.item}
    for new in after:
        old_plan = next((p for p in before if new.item and p.item and p.item["id"] == new.item["id"]), None)
        if old_plan and old_plan.price["id"] == new.price["id"] and old_plan.quantity == new.quantity:
            continue
        if new.item and new.item["id"] not in before_ids:
            continue
        charge = prorate(new.price["unit_amount"] * new.quantity, start=start, end=end, at=at)
        if charge:
            name = state.objects[new.price["product"]]["name"]
            lines.append(LineSpec(charge, new.price, new.quantity, at, end, True,
                                  f"Remaining time on {new.quantity} × {name} after {_date(at)}",
                                  new.item["id"] if new.item else None))
    return lines


def _line(state: State, spec: LineSpec, *, invoice_id: str, sub: dict[str, Any] | None) -> dict[str, Any]:
    line = blank("line_item")
    if spec.invoice_item:
        parent: dict[str, Any] = {
            "type": "invoice_item_details",
            "invoice_item_details": {"invoice_item": spec.invoice_item, "proration": spec.proration,
                                     "proration_details": {"credited_items": None},
                                     "subscription": sub["id"] if sub else None},
            "subscription_item_details": None,
        }
    else:
        parent = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": spec.proration,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"] if sub else None,
                "subscription_item": spec.item_id or "si_preview",
            },
        }
    line.update(
        id=state.new_id("il", 24),
        amount=spec.amount,
        currency=spec.money,
        description=spec.description,
        invoice=invoice_id,
        period={"start": spec.start, "end": spec.end},
        quantity=spec.quantity,
        subtotal=spec.amount,
        subscription=sub["id"] if sub else None,
        parent=parent,
        pricing={
            "type": "price_details",
            "price_details": {"price": spec.price["id"], "product": spec.price["product"]},
            "unit_amount_decimal": str(spec.price["unit_amount"]),
        } if spec.price else None,
    )
    return line


def new_invoice(state: State, *, customer: dict[str, Any], sub: dict[str, Any] | None, specs: list[LineSpec],
                billing_reason: str, store: bool = True, proration_date: int | None = None) -> dict[str, Any]:
    invoice = blank("invoice")
    now = state.now_for(customer)
    ident = state.new_id("in") if store else state.new_id("upcoming_in")
    if billing_reason in ("subscription_cycle", "subscription_update", "upcoming", "manual"):
        specs = specs + _pending_invoice_items(state, customer, sub, claim_for=ident if store else None)
    lines = [_line(state, s, invoice_id=ident, sub=sub) for s in specs]
    subtotal = sum(line["amount"] for line in lines)
    currency = sub["currency"] if sub else (specs[0].money if specs else "eur")
    invoice.update(
        id=ident,
        account_country="SE",
        account_name="Emulated Stripe account",
        amount_due=max(0, subtotal + customer["balance"]) if not store else max(0, subtotal),
        amount_paid=0,
        amount_remaining=max(0, subtotal),
        attempt_count=0,
        attempted=False,
        auto_advance=store,
        billing_reason=billing_reason,
        collection_method=sub["collection_method"] if sub else "charge_automatically",
        created=now,
        currency=currency,
        customer=customer["id"],
        customer_address=customer["address"],
        customer_email=customer["email"],
        customer_name=customer["name"],
        customer_phone=customer["phone"],
        customer_tax_exempt=customer["tax_exempt"],
        effective_at=None,
        period_start=min((s.start for s in specs if not s.proration), default=now),
        period_end=min((s.end for s in specs if not s.proration), default=now),
        starting_balance=customer["balance"] if not store else 0,
        status="draft",
        subtotal=subtotal,
        subtotal_excluding_tax=subtotal,
        total=subtotal,
        total_excluding_tax=subtotal,
        test_clock=customer["test_clock"],
        automatically_finalizes_at=(now + int(state.settings["finalize_after_seconds"])) if store else None,
        parent={
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(sub["metadata"]) if sub else None,
                "subscription": sub["id"] if sub else None,
                "subscription_proration_date": proration_date,
            },
        } if sub else None,
        _lines=lines,
        _payments=[],
        _seq=next(state.counters),
    )
    if store:
        state.add(invoice)
        customer.setdefault("_invoices", []).append(invoice["id"])
        emit(state, "invoice.created", invoice)
    return invoice


def _invoices_of(state: State, customer: dict[str, Any]) -> list[dict[str, Any]]:
    return [state.objects[i] for i in customer.get("_invoices", [])]


def _pending_invoice_items(state: State, customer: dict[str, Any], sub: dict[str, Any] | None, *,
                           claim_for: str | None) -> list[LineSpec]:
    """One-off charges waiting for the customer's next invoice (``/v1/invoiceitems``)."""
    specs = []
    for item in state.all("invoiceitem"):
        if item["customer"] != customer["id"] or item["invoice"] is not None:
            continue
        if item.get("_subscription") not in (None, sub["id"] if sub else None):
            continue
        price = state.find(((item.get("pricing") or {}).get("price_details") or {}).get("price"))
        specs.append(LineSpec(item["amount"], price, item["quantity"], item["period"]["start"], item["period"]["end"],
                              item["proration"], item["description"] or "", invoice_item=item["id"],
                              currency=item["currency"]))
        if claim_for is not None:
            item["invoice"] = claim_for
    return specs


def finalize(state: State, invoice: dict[str, Any]) -> None:
    """draft → open: number, balance applied, PaymentIntent made; zero due → paid at once."""
    from .resources.intents import new_payment_intent

    customer = state.objects[invoice["customer"]]
    before = render_before(state, invoice)
    now = state.now_for(invoice)
    invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
    customer["next_invoice_sequence"] += 1
    balance = customer["balance"]
    invoice["starting_balance"] = balance
    due_with_balance = invoice["total"] + balance
    invoice["amount_due"] = max(0, due_with_balance)
    invoice["amount_remaining"] = invoice["amount_due"]
    invoice["ending_balance"] = min(0, due_with_balance)
    if invoice["ending_balance"] != balance:
        before_customer = render_before(state, customer)
        customer["balance"] = invoice["ending_balance"]
        emit(state, "customer.updated", customer, previous=before_customer)
    public = state.settings.get("public_url", "")
    invoice.update(
        status="open",
        effective_at=now,
        automatically_finalizes_at=None,
        hosted_invoice_url=f"{public}/_emulator/invoices/{invoice['id']}",
        invoice_pdf=f"{public}/_emulator/invoices/{invoice['id']}/pdf",
        due_date=None,
    )
    invoice["status_transitions"]["finalized_at"] = now
    if invoice["amount_due"] > 0:
        intent = new_payment_intent(
            state, amount=invoice["amount_due"], currency=invoice["currency"], customer=customer["id"],
            description=f"Subscription {'creation' if invoice['billing_reason'] == 'subscription_create' else 'update'}"
            if invoice["billing_reason"] != "subscription_cycle" else "Subscription cycle",
            invoice=invoice["id"], created=now,
        )
        payment = blank("invoice_payment")
        payment.update(
            id=state.new_id("inpay"), amount_paid=None, amount_requested=invoice["amount_due"], created=now,
            currency=invoice["currency"], invoice=invoice["id"], is_default=True,
            payment={"type": "payment_intent", "payment_intent": intent["id"], "charge": None, "payment_record": None},
            status="open", status_transitions={"canceled_at": None, "paid_at": None},
            _seq=next(state.counters),
        )
        state.add(payment)
        invoice["_payments"].append(payment["id"])
        invoice["_intent"] = intent["id"]
    emit(state, "invoice.finalized", invoice, previous=before)
    if invoice["amount_due"] == 0:
        _mark_paid(state, invoice, intent=None)


def _mark_paid(state: State, invoice: dict[str, Any], *, intent: dict[str, Any] | None) -> None:
    now = state.now_for(invoice)
    before = render_before(state, invoice)
    if intent is not None and invoice["attempt_count"] == 0:
        invoice["attempt_count"] = 1
    invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, next_payment_attempt=None,
                   attempted=True, auto_advance=False, _retry_token=None)
    invoice["status_transitions"]["paid_at"] = now
    for payment_id in invoice["_payments"]:
        payment = state.objects[payment_id]
        if intent is not None and payment["payment"]["payment_intent"] == intent["id"]:
            payment.update(status="paid", amount_paid=intent["amount"])
            payment["status_transitions"]["paid_at"] = now
    emit(state, "invoice.paid", invoice, previous=before)
    emit(state, "invoice.payment_succeeded", invoice)
    customer = state.objects[invoice["customer"]]
    if customer["delinquent"] and not any(
        i["status"] == "open" and i["attempt_count"] > 0 for i in _invoices_of(state, customer)
    ):
        previous = render_before(state, customer)
        customer["delinquent"] = False
        emit(state, "customer.updated", customer, previous=previous)
    sub = _sub_of(state, invoice)
    if sub is not None:
        _after_invoice_paid(state, sub, invoice)


def finish_resume(state: State, sub: dict[str, Any], *, before: dict[str, Any]) -> None:
    """A resume with ``resume_on_payment_success`` whose invoice is paid: active from now on."""
    sub.pop("_resume_invoice", None)
    sub["status"] = "active"
    sub["status_details"] = None
    emit(state, "customer.subscription.resumed", sub, previous=before)
    schedule_renewal(state, sub)
    emit(state, "customer.subscription.updated", sub, previous=before)


def _sub_of(state: State, invoice: dict[str, Any]) -> dict[str, Any] | None:
    parent = invoice.get("parent") or {}
    sub_id = (parent.get("subscription_details") or {}).get("subscription")
    return state.find(sub_id) if sub_id else None


def _after_invoice_paid(state: State, sub: dict[str, Any], invoice: dict[str, Any]) -> None:
    before = render_before(state, sub)
    if sub["status"] == "paused" and sub.get("_resume_invoice") == invoice["id"]:
        finish_resume(state, sub, before=before)
        return
    pending = sub.get("_pending")
    if pending and pending["invoice"] == invoice["id"]:
        _apply_pending(state, sub, pending)
    if sub["status"] in ("incomplete", "past_due", "unpaid"):
        others_open = any(
            i["status"] == "open" and i["id"] != invoice["id"] and _sub_of(state, i) is sub and i["attempt_count"] > 0
            for i in _invoices_of(state, state.objects[sub["customer"]])
        )
        if not others_open:
            was_incomplete = sub["status"] == "incomplete"
            sub["status"] = "trialing" if sub["trial_end"] and sub["trial_end"] > state.now_for(sub) else "active"
            if was_incomplete:
                schedule_renewal(state, sub)  # an incomplete subscription had no renewal planned
    changed = render_before(state, sub) != before
    if changed:
        emit(state, "customer.subscription.updated", sub, previous=before)


def attempt(state: State, invoice: dict[str, Any], *, payment_method: str | None = None,
            off_session: bool = True, automatic: bool = True) -> str:
    """Try to collect an open invoice; returns the outcome ("succeeded", "failed",
    "requires_action", or "no_payment_method").

    ``attempt_count`` follows Stripe: the first attempt of any kind counts, after that
    only automatic retries do (a customer paying by hand doesn't move the schedule)."""
    from .resources.intents import charge_with
    from .resources.payment_methods import resolve

    intent = state.objects[invoice["_intent"]]
    if automatic or invoice["attempt_count"] == 0:
        invoice["attempt_count"] += 1
    invoice["attempted"] = True
    pm_id = payment_method or _default_payment_method(state, invoice)
    if pm_id is None:
        payment_failed(state, intent=intent, off_session=off_session)
        return "no_payment_method"
    pm = resolve(state, pm_id)
    if pm["customer"] not in (None, invoice["customer"]):
        raise InvalidRequestError("The payment method belongs to another customer.", param="payment_method")
    if intent["status"] == "requires_action" and not off_session:
        # A retry of an invoice waiting for 3-D Secure starts over from a new attempt.
        intent["status"] = "requires_payment_method"
    return charge_with(state, intent, pm, off_session=off_session)


def _default_payment_method(state: State, invoice: dict[str, Any]) -> str | None:
    if invoice.get("default_payment_method"):
        return str(invoice["default_payment_method"])
    sub = _sub_of(state, invoice)
    if sub is not None and sub.get("default_payment_method"):
        return str(sub["default_payment_method"])
    customer = state.objects[invoice["customer"]]
    pm = customer["invoice_settings"]["default_payment_method"]
    return str(pm) if pm else None


# hooks from PaymentIntents --------------------------------------------------------------


def _invoice_of(state: State, intent: dict[str, Any]) -> dict[str, Any] | None:
    invoice_id = intent.get("_invoice")
    return state.objects.get(invoice_id) if invoice_id else None


def payment_succeeded(state: State, *, intent: dict[str, Any]) -> None:
    invoice = _invoice_of(state, intent)
    if invoice is not None and invoice["status"] == "open":
        _mark_paid(state, invoice, intent=intent)


def payment_requires_action(state: State, *, intent: dict[str, Any]) -> None:
    invoice = _invoice_of(state, intent)
    if invoice is None or invoice["status"] != "open":
        return
    invoice["attempted"] = True
    emit(state, "invoice.payment_action_required", invoice)


def payment_failed(state: State, *, intent: dict[str, Any], off_session: bool) -> None:
    """A payment for an invoice failed: count it, plan the next retry or give up, and
    move the subscription to past_due (or keep it incomplete)."""
    invoice = _invoice_of(state, intent)
    if invoice is None or invoice["status"] != "open":
        return
    now = state.now_for(invoice)
    before = render_before(state, invoice)
    if invoice["attempt_count"] == 0:  # a customer's own first try in the browser
        invoice["attempt_count"] = 1
        invoice["attempted"] = True
    if invoice.get("_first_failed_at") is None:
        invoice["_first_failed_at"] = now
    sub = _sub_of(state, invoice)
    invoice["next_payment_attempt"] = None
    invoice["_retry_token"] = None
    final = False
    if _retried(state, invoice) and invoice["auto_advance"] and not invoice.get("_retries_done"):
        days = list(state.settings["retry_schedule_days"])
        done = invoice["attempt_count"]
        if done <= len(days):
            _schedule_retry(state, invoice, max(int(invoice["_first_failed_at"]) + int(days[done - 1]) * DAY,
                                                now + 1))
        else:
            # The last retry failed: what follows happens once (a later failed hand payment
            # doesn't repeat it).
            final = True
            invoice["_retries_done"] = True
    emit(state, "invoice.payment_failed", invoice, previous=before)
    error = intent.get("last_payment_error") or {}
    if error.get("code") == "authentication_required" or intent["status"] == "requires_action":
        emit(state, "invoice.payment_action_required", invoice)
    customer = state.objects[invoice["customer"]]
    if not customer["delinquent"]:
        previous = render_before(state, customer)
        customer["delinquent"] = True
        emit(state, "customer.updated", customer, previous=previous)
    if sub is None:
        return
    before_sub = render_before(state, sub)
    # An update kept pending for this invoice leaves the subscription cycling "as if no update request
    # was made" (Stripe's pending updates): its unpaid invoice does not make it past due.
    pending_for_it = (sub.get("_pending") or {}).get("invoice") == invoice["id"]
    if (sub["status"] in ("active", "trialing") and invoice["billing_reason"] != "subscription_create"
            and not pending_for_it):
        sub["status"] = "past_due"
    if render_before(state, sub) != before_sub:
        emit(state, "customer.subscription.updated", sub, previous=before_sub)
    if final:
        _final_failure(state, sub, invoice)


def _retried(state: State, invoice: dict[str, Any]) -> bool:
    """Stripe retries a subscription's failed invoices, except the first one (the subscription
    stays incomplete instead)."""
    return _sub_of(state, invoice) is not None and invoice["billing_reason"] != "subscription_create"


def _schedule_retry(state: State, invoice: dict[str, Any], due: int) -> None:
    """Plan the next automatic attempt at ``due``; ``next_payment_attempt`` is when it runs.
    A new token supersedes any retry planned before."""
    token = state.new_id("rt", 8)
    invoice["_retry_token"] = token
    invoice["next_payment_attempt"] = due
    state.schedule(clock=state.clock_of(invoice), due=due, kind="retry", target=invoice["id"], token=token)


#: How soon at the earliest a retry runs once ``auto_advance`` is set again.
RESUME_DELAY = 60


def resume_retries(state: State, invoice: dict[str, Any]) -> None:
    """``auto_advance`` set to true again on an open invoice that failed before: the retry the
    schedule has next is planned, at its time or, if that has passed (or is under a minute
    away), a minute from now; the later retries keep their spacing from it. Nothing is planned
    when the schedule's retries are used up or the invoice never failed."""
    if not _retried(state, invoice) or invoice.get("_retries_done") or invoice.get("_first_failed_at") is None:
        return
    days = list(state.settings["retry_schedule_days"])
    done = invoice["attempt_count"]
    if not 1 <= done <= len(days):
        return
    due = int(invoice["_first_failed_at"]) + int(days[done - 1]) * DAY
    earliest = state.now_for(invoice) + RESUME_DELAY
    if due < earliest:
        invoice["_first_failed_at"] = int(invoice["_first_failed_at"]) + earliest - due
        due = earliest
    _schedule_retry(state, invoice, due)


def _final_failure(state: State, sub: dict[str, Any], invoice: dict[str, Any]) -> None:
    if state.settings["invoice_after_final_failure"] == "mark_uncollectible":
        mark_uncollectible(state, invoice)
    action = state.settings["after_final_failure"]
    if action == "cancel":
        cancel_now(state, sub=sub, reason="payment_failed")
    elif action == "unpaid" and sub["status"] != "unpaid":
        before = render_before(state, sub)
        sub["status"] = "unpaid"
        emit(state, "customer.subscription.updated", sub, previous=before)


def mark_uncollectible(state: State, invoice: dict[str, Any]) -> None:
    before = render_before(state, invoice)
    invoice.update(status="uncollectible", next_payment_attempt=None, auto_advance=False, _retry_token=None)
    invoice["status_transitions"]["marked_uncollectible_at"] = state.now_for(invoice)
    emit(state, "invoice.marked_uncollectible", invoice, previous=before)


def void(state: State, invoice: dict[str, Any]) -> None:
    before = render_before(state, invoice)
    invoice.update(status="void", next_payment_attempt=None, auto_advance=False, amount_remaining=0,
                   _retry_token=None)
    invoice["status_transitions"]["voided_at"] = state.now_for(invoice)
    intent = state.find(invoice.get("_intent"))
    if intent is not None and intent["status"] not in ("succeeded", "canceled"):
        intent.update(status="canceled", canceled_at=state.now_for(invoice), cancellation_reason="void_invoice",
                      next_action=None)
        emit(state, "payment_intent.canceled", intent)
    for payment_id in invoice["_payments"]:
        payment = state.objects[payment_id]
        if payment["status"] == "open":
            payment["status"] = "canceled"
            payment["status_transitions"]["canceled_at"] = state.now_for(invoice)
    emit(state, "invoice.voided", invoice, previous=before)


# subscription life cycle -------------------------------------------------------------------


def cancel_now(state: State, *, sub: dict[str, Any], reason: str, at: int | None = None) -> None:
    before = render_before(state, sub)
    now = at if at is not None else state.now_for(sub)
    sub.update(status="canceled", ended_at=now, cancel_at_period_end=False)
    if sub["canceled_at"] is None:
        sub["canceled_at"] = now
    sub["cancellation_details"]["reason"] = reason
    sub.pop("_pending", None)
    sub["pending_update"] = None
    schedule = state.find(sub.get("schedule"))
    if schedule is not None and schedule["status"] in ("active", "not_started"):
        schedule_before = render_before(state, schedule)
        schedule.update(status="canceled", canceled_at=now)
        emit(state, "subscription_schedule.canceled", schedule, previous=schedule_before)
    emit(state, "customer.subscription.deleted", sub, previous=before)


def schedule_renewal(state: State, sub: dict[str, Any]) -> None:
    clock = state.clock_of(sub)
    end = sub["_period_end"]
    state.schedule(clock=clock, due=end, kind="renew", target=sub["id"], period_end=end)
    days = int(state.settings["upcoming_days_before"])
    upcoming = end - days * DAY
    length = end - sub["_period_start"]
    if days and length > days * DAY and upcoming > state.now_for(sub):
        state.schedule(clock=clock, due=upcoming, kind="upcoming", target=sub["id"], period_end=end)
    if sub.get("cancel_at") and sub["cancel_at"] < end:
        state.schedule(clock=clock, due=sub["cancel_at"], kind="cancel_at", target=sub["id"], at=sub["cancel_at"])


def _renew(state: State, job: Job) -> None:
    sub = state.find(job.target)
    if sub is None or sub["_period_end"] != job.data["period_end"]:
        return
    if sub["status"] in ("canceled", "incomplete", "incomplete_expired", "paused"):
        return
    now = job.due
    advance_schedule(state, sub, now)
    if sub["status"] == "canceled" or sub["_period_end"] != job.data["period_end"]:
        return
    if sub["cancel_at_period_end"] or (sub.get("cancel_at") and sub["cancel_at"] <= now):
        cancel_now(state, sub=sub, reason="cancellation_requested", at=now)
        return
    before = render_before(state, sub)
    if sub["status"] == "trialing" and sub["trial_end"] and sub["trial_end"] <= now:
        missing = (sub.get("trial_settings") or {}).get("end_behavior", {}).get("missing_payment_method")
        if missing in ("pause", "cancel") and _sub_payment_method(state, sub) is None:
            if missing == "cancel":
                cancel_now(state, sub=sub, reason="cancellation_requested", at=now)
                return
            sub["status"] = "paused"
            sub["status_details"] = {"paused": {"subscription": {"type": "trial_end_without_payment_method"},
                                                "transitioned_at": now, "type": "subscription"}}
            emit(state, "customer.subscription.paused", sub)
            emit(state, "customer.subscription.updated", sub, previous=before)
            return
        sub["status"] = "active"
    if sub.get("pause_collection") and sub["pause_collection"].get("resumes_at") and \
            sub["pause_collection"]["resumes_at"] <= now:
        sub["pause_collection"] = None
    interval, count = sub_interval(state, sub)
    end = period_end_after(sub["billing_cycle_anchor"], interval, count, now)
    previous_start = sub["_period_start"]
    set_period(state, sub, now, end)
    specs = period_lines(state, current_plans(state, sub), now, end) + _take_pending_lines(sub)
    invoice = new_invoice(state, customer=state.objects[sub["customer"]], sub=sub, specs=specs,
                          billing_reason="subscription_cycle")
    # A renewal invoice's own period is the one that just ended (Stripe bills in advance).
    invoice["period_start"], invoice["period_end"] = previous_start, now
    sub["latest_invoice"] = invoice["id"]
    emit(state, "customer.subscription.updated", sub, previous=before)
    state.schedule(clock=state.clock_of(sub), due=now + int(state.settings["finalize_after_seconds"]),
                   kind="finalize", target=invoice["id"])
    schedule_renewal(state, sub)


def renew_now(state: State, sub: dict[str, Any]) -> None:
    now = state.now_for(sub)
    _renew(state, Job(now, 0, "renew", sub["id"], {"period_end": sub["_period_end"]}))


def _sub_payment_method(state: State, sub: dict[str, Any]) -> str | None:
    if sub.get("default_payment_method"):
        return str(sub["default_payment_method"])
    pm = state.objects[sub["customer"]]["invoice_settings"]["default_payment_method"]
    return str(pm) if pm else None


def _take_pending_lines(sub: dict[str, Any]) -> list[LineSpec]:
    pending = [LineSpec(**spec) for spec in sub.get("_pending_lines", [])]
    sub["_pending_lines"] = []
    return pending


def add_pending_lines(sub: dict[str, Any], specs: list[LineSpec]) -> None:
    sub.setdefault("_pending_lines", []).extend(vars(s) for s in specs)


def pending_lines(sub: dict[str, Any]) -> list[LineSpec]:
    return [LineSpec(**spec) for spec in sub.get("_pending_lines", [])]


def _finalize_job(state: State, job: Job) -> None:
    invoice = state.find(job.target)
    if invoice is None or invoice["status"] != "draft" or not invoice["auto_advance"]:
        return
    sub = _sub_of(state, invoice)
    pause = sub.get("pause_collection") if sub else None
    if pause:
        if pause["behavior"] == "keep_as_draft":
            invoice["auto_advance"] = False
            return
        finalize(state, invoice)
        if invoice["status"] == "open":
            if pause["behavior"] == "void":
                void(state, invoice)
            else:
                mark_uncollectible(state, invoice)
        return
    finalize(state, invoice)
    if invoice["status"] == "open" and invoice["collection_method"] == "charge_automatically":
        if sub is not None and sub["status"] == "unpaid":
            return  # Stripe keeps invoicing an unpaid subscription but stops charging it.
        attempt(state, invoice)


def _retry_job(state: State, job: Job) -> None:
    invoice = state.find(job.target)
    if invoice is None or invoice["status"] != "open" or invoice.get("_retry_token") != job.data["token"]:
        return
    if not invoice["auto_advance"]:
        return
    invoice["_retry_token"] = None
    attempt(state, invoice)


def _upcoming_job(state: State, job: Job) -> None:
    sub = state.find(job.target)
    if sub is None or sub["_period_end"] != job.data["period_end"] or sub["cancel_at_period_end"]:
        return
    if sub["status"] not in ("active", "trialing", "past_due"):
        return
    emit(state, "invoice.upcoming", upcoming_invoice(state, sub))


def _cancel_at_job(state: State, job: Job) -> None:
    sub = state.find(job.target)
    if sub is None or sub.get("cancel_at") != job.data["at"] or sub["status"] == "canceled":
        return
    cancel_now(state, sub=sub, reason="cancellation_requested", at=job.due)


def _pause_resume_job(state: State, job: Job) -> None:
    sub = state.find(job.target)
    pause = sub.get("pause_collection") if sub else None
    if sub is None or not pause or pause.get("resumes_at") != job.data["resumes_at"]:
        return
    before = render_before(state, sub)
    sub["pause_collection"] = None
    emit(state, "customer.subscription.updated", sub, previous=before)


def _incomplete_expiry_job(state: State, job: Job) -> None:
    sub = state.find(job.target)
    if sub is None or sub["status"] != "incomplete":
        return
    before = render_before(state, sub)
    sub.update(status="incomplete_expired", ended_at=job.due)
    invoice = state.find(sub["latest_invoice"])
    if invoice is not None and invoice["status"] == "open":
        void(state, invoice)
    emit(state, "customer.subscription.updated", sub, previous=before)


def _pending_expiry_job(state: State, job: Job) -> None:
    sub = state.find(job.target)
    pending = sub.get("_pending") if sub else None
    if sub is None or not pending or pending["invoice"] != job.data["invoice"]:
        return
    before = render_before(state, sub)
    sub.pop("_pending")
    sub["pending_update"] = None
    invoice = state.find(job.data["invoice"])
    if invoice is not None and invoice["status"] == "open":
        void(state, invoice)
    emit(state, "customer.subscription.pending_update_expired", sub, previous=before)
    emit(state, "customer.subscription.updated", sub, previous=before)


def _phase_job(state: State, job: Job) -> None:
    sub = state.find(job.target)
    if sub is None or sub["status"] in ("canceled", "incomplete_expired"):
        return
    if job.due == sub["_period_end"]:
        return  # the renewal at the same moment makes the change, without prorations
    advance_schedule(state, sub, job.due)


# subscription changes ---------------------------------------------------------------------


@dataclass
class Change:
    plans: list[ItemPlan]
    lines_now: list[LineSpec]
    pending: list[LineSpec]
    new_period: tuple[int, int] | None
    invoice_now: bool


def plan_change(state: State, sub: dict[str, Any], plans: list[ItemPlan], *, proration_behavior: str,
                proration_date: int | None, anchor_now: bool, moment: int | None = None) -> Change:
    """What changing ``sub`` to ``plans`` costs, computed once for both the preview and the
    real update so the two always agree.  ``moment`` is when the change happens (now unless
    a preview looks at a later phase change)."""
    now = moment if moment is not None else state.now_for(sub)
    at = proration_date if proration_date is not None else now
    before = current_plans(state, sub)
    start, end = sub["_period_start"], sub["_period_end"]
    old_interval = sub_interval(state, sub)
    new_interval = price_interval(plans[0].price)
    resets = anchor_now or new_interval != old_interval
    in_trial = sub["status"] == "trialing"
    prorations: list[LineSpec] = []
    if proration_behavior != "none" and not in_trial and sub["status"] != "paused":
        if resets:
            prorations = unused_credit(state, sub, at=at)  # the new period is billed in full
        else:
            prorations = proration_lines(state, before, plans, start=start, end=end, at=at)
    if resets and not in_trial:
        new_end = add_interval(now, new_interval[0], new_interval[1])
        lines = prorations + pending_lines(sub) + period_lines(state, plans, now, new_end)
        return Change(plans, lines, [], (now, new_end), True)
    if proration_behavior == "always_invoice" and prorations:
        return Change(plans, prorations + pending_lines(sub), [], None, True)
    return Change(plans, [], prorations, None, False)


def apply_items(state: State, sub: dict[str, Any], plans: list[ItemPlan]) -> None:
    """Make the subscription's items match ``plans`` (existing items change in place)."""
    keep = {p.item["id"] for p in plans if p.item}
    for item in items_of(state, sub):
        if item["id"] not in keep:
            state.delete(item)
    ids: list[str] = []
    for plan in plans:
        if plan.item is not None:
            plan.item.update(price=plan.price["id"], quantity=plan.quantity, metadata=plan.metadata)
            ids.append(plan.item["id"])
        else:
            created = new_item(state, sub, price=plan.price, quantity=plan.quantity, metadata=plan.metadata)
            plan.item = created
            ids.append(created["id"])
    sub["_items"] = ids
    sub["currency"] = plans[0].price["currency"]


def commit_change(state: State, sub: dict[str, Any], change: Change) -> dict[str, Any] | None:
    """Apply a planned change; returns the invoice made now, if any (finalized, not attempted)."""
    apply_items(state, sub, change.plans)
    for spec in change.lines_now + change.pending:
        if spec.item_id is None:
            spec.item_id = next((p.item["id"] for p in change.plans if p.item and p.price is spec.price), None)
    if change.new_period:
        sub["billing_cycle_anchor"] = change.new_period[0]
        set_period(state, sub, *change.new_period)
        schedule_renewal(state, sub)
    else:
        set_period(state, sub, sub["_period_start"], sub["_period_end"])
    add_pending_lines(sub, change.pending)
    if not change.invoice_now:
        return None
    sub["_pending_lines"] = []
    invoice = new_invoice(state, customer=state.objects[sub["customer"]], sub=sub, specs=change.lines_now,
                          billing_reason="subscription_update")
    sub["latest_invoice"] = invoice["id"]
    finalize(state, invoice)
    return invoice


def _apply_pending(state: State, sub: dict[str, Any], pending: dict[str, Any]) -> None:
    plans = [ItemPlan(state.objects[p["price"]], p["quantity"], state.find(p["item"]) if p["item"] else None,
                      p["metadata"]) for p in pending["plans"]]
    apply_items(state, sub, plans)
    if pending.get("new_period"):
        start, end = pending["new_period"]
        sub["billing_cycle_anchor"] = start
        set_period(state, sub, start, end)
        schedule_renewal(state, sub)
    else:
        set_period(state, sub, sub["_period_start"], sub["_period_end"])
    sub.pop("_pending", None)
    sub["pending_update"] = None


def store_pending(state: State, sub: dict[str, Any], change: Change, invoice: dict[str, Any]) -> None:
    """``payment_behavior=pending_if_incomplete``: keep the change aside until the invoice is paid."""
    now = state.now_for(sub)
    expires = now + int(state.settings["pending_update_seconds"])
    sub["_pending"] = {
        "invoice": invoice["id"],
        "plans": [{"price": p.price["id"], "quantity": p.quantity, "item": p.item["id"] if p.item else None,
                   "metadata": p.metadata} for p in change.plans],
        "new_period": list(change.new_period) if change.new_period else None,
    }
    shown_items = []
    for plan in change.plans:
        item = render(state, plan.item) if plan.item else render(state, blank("subscription_item") | {
            "id": "si_pending", "created": now, "price": plan.price["id"], "quantity": plan.quantity,
            "subscription": sub["id"], "current_period_start": sub["_period_start"],
            "current_period_end": sub["_period_end"]})
        item["price"] = render(state, plan.price)
        item["quantity"] = plan.quantity
        shown_items.append(item)
    sub["pending_update"] = {
        "billing_cycle_anchor": change.new_period[0] if change.new_period else None,
        "expires_at": expires, "subscription_items": shown_items, "trial_end": None, "trial_from_plan": None,
        "cancel_at_period_end": None, "discount": None, "discounts": None, "metadata": None,
    }
    state.schedule(clock=state.clock_of(sub), due=expires, kind="pending_expiry", target=sub["id"],
                   invoice=invoice["id"])


def upcoming_invoice(state: State, sub: dict[str, Any], extra: list[LineSpec] | None = None,
                     plans: list[ItemPlan] | None = None) -> dict[str, Any]:
    """The invoice the next renewal would produce (not stored)."""
    end = sub["_period_end"]
    if plans is None:
        plans = items_at(state, sub, end)
    interval = price_interval(plans[0].price)
    if interval == sub_interval(state, sub):
        next_end = period_end_after(sub["billing_cycle_anchor"], interval[0], interval[1], end)  # as _renew counts
    else:
        next_end = add_interval(end, interval[0], interval[1])  # a new interval starts its cycle at the change
    specs = pending_lines(sub) + (extra or []) + period_lines(state, plans, end, next_end)
    invoice = new_invoice(state, customer=state.objects[sub["customer"]], sub=sub, specs=specs,
                          billing_reason="upcoming", store=False)
    invoice["created"] = end
    invoice["period_start"], invoice["period_end"] = sub["_period_start"], end
    invoice["next_payment_attempt"] = end + int(state.settings["finalize_after_seconds"])
    return invoice


def items_at(state: State, sub: dict[str, Any], moment: int) -> list[ItemPlan]:
    """The items the subscription will have at ``moment``, following its schedule."""
    schedule = state.find(sub.get("schedule"))
    if schedule is not None and schedule["status"] == "active":
        for phase in schedule["phases"]:
            if phase["start_date"] <= moment and (phase["end_date"] is None or moment < phase["end_date"]):
                return phase_plans(state, sub, phase)
    return current_plans(state, sub)


# subscription schedules -----------------------------------------------------------------


def phase_plans(state: State, sub: dict[str, Any], phase: dict[str, Any]) -> list[ItemPlan]:
    """The items ``phase`` gives the subscription: an item whose price stays is kept, and a
    single item changing price keeps its id (Stripe swaps the price on the item)."""
    current = {i["price"]: i for i in items_of(state, sub)}
    plans = [ItemPlan(state.objects[i["price"]], int(i.get("quantity") or 1), current.get(i["price"]),
                      i.get("metadata") or {}) for i in phase["items"]]
    if len(current) == 1 and len(plans) == 1 and plans[0].item is None:
        plans[0].item = next(iter(current.values()))
    return plans


def phase_index(phases: list[dict[str, Any]], now: int) -> int:
    """The phase running at ``now`` (the first one when none is)."""
    for index, phase in enumerate(phases):
        if phase["start_date"] <= now < (phase["end_date"] or now + 1):
            return index
    return 0


def phase_change_now(state: State, sub: dict[str, Any], phase: dict[str, Any]) -> Change | None:
    """What setting a schedule whose running phase is ``phase`` changes at once (None when the
    subscription has that phase's items already): the rules of a direct update."""
    live = sorted((i["price"], i["quantity"]) for i in items_of(state, sub))
    wanted = sorted((i["price"], int(i.get("quantity") or 1)) for i in phase["items"])
    if live == wanted:
        return None
    return plan_change(state, sub, phase_plans(state, sub, phase), proration_behavior=phase["proration_behavior"],
                       proration_date=None, anchor_now=False)


def schedule_preview(state: State, sub: dict[str, Any], phases: list[dict[str, Any]], *,
                     end_behavior: str) -> dict[str, Any]:
    """The next invoice ``sub`` gets under a schedule of ``phases`` (not stored), made by the
    steps that make the real one: the change at once when the schedule is set
    (``phase_change_now``), a phase change before the renewal as ``advance_schedule`` makes
    it, else the renewal (``upcoming_invoice``) with the items of the phase running then."""
    now = state.now_for(sub)
    index = phase_index(phases, now)
    if phases[index]["start_date"] > now:
        raise InvalidRequestError("The first phase must have started.", param="schedule_details[phases][0][start_date]")
    if phases[index]["end_date"] is not None and phases[index]["end_date"] <= now:
        raise InvalidRequestError("The last phase must end in the future.", param="schedule_details[phases]")
    end, moment = sub["_period_end"], now
    change = phase_change_now(state, sub, phases[index])
    boundary = phases[index]["end_date"]
    if (change is None or not change.invoice_now) and boundary is not None and boundary < end:
        # The phase ends before the renewal: its change happens then, as advance_schedule makes it.
        if change is not None:
            raise _preview_unsupported()
        if index + 1 == len(phases):
            if end_behavior == "cancel":
                raise _nothing_upcoming()
        else:
            index, moment = index + 1, boundary
            change = plan_change(state, sub, phase_plans(state, sub, phases[index]),
                                 proration_behavior=phases[index]["proration_behavior"], proration_date=boundary,
                                 anchor_now=False, moment=boundary)
            following = phases[index]["end_date"]
            if not change.invoice_now and following is not None and following < end:
                raise _preview_unsupported()
    if change is not None and change.invoice_now:
        invoice = new_invoice(state, customer=state.objects[sub["customer"]], sub=sub, specs=change.lines_now,
                              billing_reason="subscription_update", store=False)
        invoice["created"] = moment
        if all(spec.proration for spec in change.lines_now):
            invoice["period_start"] = invoice["period_end"] = moment  # as new_invoice dates it at that moment
        return invoice
    plans = change.plans if change is not None else current_plans(state, sub)
    if phases[index]["end_date"] == end:
        # The next phase starts with the renewal, which bills its items (without prorations).
        if index + 1 < len(phases):
            plans = phase_plans(state, sub, phases[index + 1])
        elif end_behavior == "cancel":
            raise _nothing_upcoming()
    return upcoming_invoice(state, sub, extra=change.pending if change is not None else None, plans=plans)


def _nothing_upcoming() -> InvalidRequestError:
    return InvalidRequestError("No upcoming invoices for customer: the schedule cancels the subscription before "
                               "it invoices again.", code="invoice_upcoming_none")


def _preview_unsupported() -> InvalidRequestError:
    return InvalidRequestError("The emulator previews at most one change of items before the next renewal; these "
                               "phases change them twice.", param="schedule_details[phases]")


def advance_schedule(state: State, sub: dict[str, Any], now: int) -> None:
    """Move a schedule whose current phase has ended to its next phase, or end it."""
    schedule = state.find(sub.get("schedule"))
    while schedule is not None and schedule["status"] == "active":
        index = schedule["_phase"]
        phase = schedule["phases"][index]
        if phase["end_date"] is None or phase["end_date"] > now:
            return
        before = render_before(state, schedule)
        if index + 1 < len(schedule["phases"]):
            nxt = schedule["phases"][index + 1]
            schedule["_phase"] = index + 1
            schedule["current_phase"] = {"start_date": nxt["start_date"], "end_date": nxt["end_date"]}
            plans = phase_plans(state, sub, nxt)
            sub_before = render_before(state, sub)
            if phase["end_date"] == sub["_period_end"]:
                interval_before = sub_interval(state, sub)
                apply_items(state, sub, plans)
                set_period(state, sub, sub["_period_start"], sub["_period_end"])
                if sub_interval(state, sub) != interval_before:
                    # Another interval starts its own cycle at the phase change (Stripe's
                    # `billing_cycle_anchor: automatic`): the renewal bills one new interval.
                    sub["billing_cycle_anchor"] = phase["end_date"]
            else:
                change = plan_change(state, sub, plans, proration_behavior=nxt["proration_behavior"],
                                     proration_date=phase["end_date"], anchor_now=False)
                invoice = commit_change(state, sub, change)
                if invoice is not None and invoice["status"] == "open":
                    attempt(state, invoice)
            emit(state, "subscription_schedule.updated", schedule, previous=before)
            emit(state, "customer.subscription.updated", sub, previous=sub_before)
            continue
        end_schedule(state, schedule, sub, now)
        return


def end_schedule(state: State, schedule: dict[str, Any], sub: dict[str, Any], now: int) -> None:
    if schedule["end_behavior"] == "cancel":
        before = render_before(state, schedule)
        schedule.update(status="completed", completed_at=now, current_phase=None)
        emit(state, "subscription_schedule.completed", schedule, previous=before)
        sub["schedule"] = None
        cancel_now(state, sub=sub, reason="cancellation_requested", at=now)
        return
    release_schedule(state, schedule, sub, now)


def release_schedule(state: State, schedule: dict[str, Any], sub: dict[str, Any], now: int) -> None:
    """The subscription goes on by itself, as it is now."""
    before = render_before(state, schedule)
    schedule.update(status="released", released_at=now, released_subscription=sub["id"], subscription=None,
                    current_phase=None)
    sub_before = render_before(state, sub)
    sub["schedule"] = None
    emit(state, "subscription_schedule.released", schedule, previous=before)
    emit(state, "customer.subscription.updated", sub, previous=sub_before)


# running due work ---------------------------------------------------------------------------

JOBS: dict[str, Callable[[State, Job], None]] = {
    "renew": _renew,
    "finalize": _finalize_job,
    "retry": _retry_job,
    "upcoming": _upcoming_job,
    "cancel_at": _cancel_at_job,
    "pause_resume": _pause_resume_job,
    "incomplete_expiry": _incomplete_expiry_job,
    "pending_expiry": _pending_expiry_job,
    "phase": _phase_job,
}


def run_due(state: State, *, clock: str | None, until: int) -> int:
    """Run every job of ``clock`` due by ``until``, in time order, moving the clock's
    frozen time along so that each effect carries the time it happened at."""
    ran = 0
    while True:
        with state.lock:
            job = state.pop_due(clock, until)
            if job is None:
                return ran
            if clock is not None:
                clock_obj = state.objects.get(clock)
                if clock_obj is None:  # the emulator was reset while this clock advanced
                    return ran
                clock_obj["frozen_time"] = max(int(clock_obj["frozen_time"]), job.due)
            JOBS[job.kind](state, job)
        ran += 1
