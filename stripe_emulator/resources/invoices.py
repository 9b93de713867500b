"""Invoices: list, retrieve, finalize, pay, void, mark uncollectible, lines, payments,
and ``create_preview`` (computed by the same code as the real change it previews)."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..errors import CardError, InvalidRequestError
from ..routing import ListResult, paginate, render, route, sublist, view, where
from ..state import State
from .catalog import merge_metadata
from .events import emit, render_before
from .payment_methods import resolve
from .schedules import phases_from_params


@view("invoice")
def show_invoice(state: State, invoice: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in invoice.items() if not k.startswith("_")}
    shown["lines"] = {"object": "list", "data": [dict(line) for line in invoice["_lines"][:10]],
                      "has_more": len(invoice["_lines"]) > 10, "total_count": len(invoice["_lines"]),
                      "url": f"/v1/invoices/{invoice['id']}/lines"}
    shown["payments"] = sublist(state, [state.objects[p] for p in invoice["_payments"]],
                                f"/v1/invoice_payments?invoice={invoice['id']}")
    intent = state.find(invoice.get("_intent"))
    if intent is not None and invoice["status"] == "open":
        shown["confirmation_secret"] = {"client_secret": intent["client_secret"], "type": "payment_intent"}
    return shown


@route("GET", "/v1/invoices", params="InvoiceListParams")
def list_invoices(state: State, params: dict[str, Any]) -> ListResult:
    invoices = state.all("invoice")
    invoices = where(invoices, params, "customer", "status", "collection_method")
    if "subscription" in params:
        invoices = [i for i in invoices
                    if ((i.get("parent") or {}).get("subscription_details") or {}).get("subscription")
                    == params["subscription"]]
    return paginate(invoices, params, "/v1/invoices")


@route("GET", "/v1/invoices/{id}", params="InvoiceRetrieveParams")
def retrieve_invoice(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("invoice", id)


@route("GET", "/v1/invoices/{id}/lines", params="InvoiceListLinesParams")
def list_lines(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    invoice = state.get("invoice", id)
    lines = invoice["_lines"]
    start = 0
    if params.get("starting_after"):
        ids = [line["id"] for line in lines]
        if params["starting_after"] not in ids:
            raise InvalidRequestError("Invalid starting_after id", param="starting_after")
        start = ids.index(params["starting_after"]) + 1
    limit = int(params.get("limit", 10))
    page = lines[start:start + limit]
    return {"object": "list", "data": [dict(line) for line in page], "has_more": start + limit < len(lines),
            "url": f"/v1/invoices/{id}/lines"}


@route("POST", "/v1/invoices/{id}", params="InvoiceUpdateParams")
def update_invoice(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    invoice = state.get("invoice", id)
    before = render_before(state, invoice)
    if "metadata" in params:
        invoice["metadata"] = merge_metadata(invoice["metadata"], params["metadata"])
    if "auto_advance" in params:
        was = invoice["auto_advance"]
        invoice["auto_advance"] = params["auto_advance"]
        if invoice["status"] == "open":
            if not params["auto_advance"]:
                # Stripe stops collecting it by itself: no retry is planned any more.
                invoice["next_payment_attempt"] = None
                invoice["_retry_token"] = None
            elif not was:
                billing.resume_retries(state, invoice)
    if "description" in params:
        invoice["description"] = params["description"] or None
    if "footer" in params:
        invoice["footer"] = params["footer"] or None
    if "default_payment_method" in params:
        pm_id = params["default_payment_method"] or None
        if pm_id:
            pm = resolve(state, pm_id, param="default_payment_method")
            if pm["customer"] != invoice["customer"]:
                raise InvalidRequestError("The payment method must be attached to the invoice's customer.",
                                          param="default_payment_method")
        invoice["default_payment_method"] = pm_id
    emit(state, "invoice.updated", invoice, previous=before)
    return invoice


@route("POST", "/v1/invoices/{id}/finalize", params="InvoiceFinalizeInvoiceParams")
def finalize_invoice(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    invoice = state.get("invoice", id)
    if invoice["status"] != "draft":
        raise InvalidRequestError("This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                                  code="invoice_not_editable")
    if "auto_advance" in params:
        invoice["auto_advance"] = params["auto_advance"]
    billing.finalize(state, invoice)
    return invoice


@route("POST", "/v1/invoices/{id}/pay", params="InvoicePayParams")
def pay_invoice(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    invoice = state.get("invoice", id)
    if invoice["status"] == "paid":
        raise InvalidRequestError("Invoice is already paid", code="invoice_already_paid")
    if invoice["status"] in ("void",):
        raise InvalidRequestError("You cannot pay a void invoice.", code="invoice_not_editable")
    if invoice["status"] == "draft":
        billing.finalize(state, invoice)
        if invoice["status"] == "paid":
            return invoice
    if params.get("paid_out_of_band"):
        billing._mark_paid(state, invoice, intent=None)
        return invoice
    if invoice["status"] == "uncollectible":
        invoice["status"] = "open"
    outcome = billing.attempt(state, invoice, payment_method=params.get("payment_method"),
                              off_session=params.get("off_session", True), automatic=False)
    if outcome == "succeeded":
        return invoice
    intent = state.objects[invoice["_intent"]]
    if outcome == "requires_action":
        raise CardError(
            "This payment requires additional user action before it can be completed successfully. Payment can be "
            "completed using the PaymentIntent associated with the invoice.",
            code="invoice_payment_intent_requires_action",
            extra={"payment_intent": render(state, intent)},
        )
    if outcome == "no_payment_method":
        raise InvalidRequestError(
            "This customer has no attached payment source or default payment method. Please consider adding a "
            "default payment method.", code="resource_missing",
        )
    error = intent["last_payment_error"] or {}
    extra = {"payment_intent": render(state, intent)}
    if "advice_code" in error:
        extra["advice_code"] = error["advice_code"]
    raise CardError(error.get("message", "Your card was declined."), code=error.get("code", "card_declined"),
                    decline_code=error.get("decline_code"), extra=extra)


@route("POST", "/v1/invoices/{id}/void", params="InvoiceVoidInvoiceParams")
def void_invoice(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    invoice = state.get("invoice", id)
    if invoice["status"] not in ("open", "uncollectible"):
        raise InvalidRequestError(f"You can only void an open or uncollectible invoice; this one is "
                                  f"{invoice['status']}.", code="invoice_not_editable")
    billing.void(state, invoice)
    return invoice


@route("POST", "/v1/invoices/{id}/mark_uncollectible", params="InvoiceMarkUncollectibleParams")
def mark_uncollectible(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    invoice = state.get("invoice", id)
    if invoice["status"] != "open":
        raise InvalidRequestError("You can only mark an open invoice as uncollectible.")
    billing.mark_uncollectible(state, invoice)
    return invoice


@route("POST", "/v1/invoices/create_preview", params="InvoiceCreatePreviewParams")
def create_preview(state: State, params: dict[str, Any]) -> dict[str, Any]:
    details = params.get("subscription_details") or {}
    customer = state.get("customer", params["customer"], param="customer") if params.get("customer") else None
    if "schedule" in params or "schedule_details" in params:
        return render(state, _schedule_preview(state, params, customer))
    if params.get("subscription"):
        sub = state.get("subscription", params["subscription"], param="subscription")
        if customer is not None and sub["customer"] != customer["id"]:
            raise InvalidRequestError("The subscription does not belong to that customer.", param="subscription")
        changes = "items" in details or details.get("billing_cycle_anchor") == "now"
        if not changes:
            return render(state, billing.upcoming_invoice(state, sub))
        plans = billing.plan_items(state, sub, details.get("items"))
        change = billing.plan_change(
            state, sub, plans, proration_behavior=details.get("proration_behavior", "create_prorations"),
            proration_date=details.get("proration_date"), anchor_now=details.get("billing_cycle_anchor") == "now",
        )
        if change.invoice_now:
            preview = billing.new_invoice(state, customer=state.objects[sub["customer"]], sub=sub,
                                          specs=change.lines_now, billing_reason="subscription_update", store=False,
                                          proration_date=details.get("proration_date"))
        else:
            preview = billing.upcoming_invoice(state, sub, extra=change.pending, plans=plans)
            preview["parent"]["subscription_details"]["subscription_proration_date"] = details.get("proration_date")
        return render(state, preview)
    if customer is None:
        raise InvalidRequestError("Missing required param: customer or subscription.", code="parameter_missing",
                                  param="customer")
    if not details.get("items"):
        raise InvalidRequestError("Missing required param: subscription_details[items].", code="parameter_missing",
                                  param="subscription_details[items]")
    plans = billing.plan_items(state, None, details["items"])
    return render(state, _creation_preview(state, customer, plans, start=state.now_for(customer)))


def _creation_preview(state: State, customer: dict[str, Any], plans: list[billing.ItemPlan], *,
                      start: int) -> dict[str, Any]:
    """The first invoice of a new subscription to ``plans`` starting at ``start``."""
    interval, count = billing.price_interval(plans[0].price)
    specs = billing.period_lines(state, plans, start, billing.add_interval(start, interval, count))
    preview = billing.new_invoice(state, customer=customer, sub=None, specs=specs,
                                  billing_reason="subscription_create", store=False)
    preview["created"] = max(preview["created"], start)
    return preview


def _schedule_preview(state: State, params: dict[str, Any], customer: dict[str, Any] | None) -> dict[str, Any]:
    """``schedule`` and/or ``schedule_details``: the next invoice under that schedule, for an
    existing schedule (its phases, or new ones) or a new one (with ``customer``)."""
    if "subscription_details" in params:
        given = "schedule" if "schedule" in params else "schedule_details"
        raise InvalidRequestError(f"You may only specify one of these parameters: {given}, subscription_details.",
                                  param="subscription_details")
    if "schedule" in params and "subscription" in params:
        raise InvalidRequestError("You may only specify one of these parameters: schedule, subscription.",
                                  param="subscription")
    if "subscription" in params:
        # Stripe: schedule_details "cannot be used with subscription or subscription_ prefixed fields";
        # a subscription not yet on a schedule is previewed by its renewal, or as a new schedule.
        raise InvalidRequestError("You may only specify one of these parameters: schedule_details, subscription.",
                                  param="subscription")
    details = params.get("schedule_details") or {}
    end_behavior = details.get("end_behavior")
    if end_behavior not in (None, "release", "cancel"):
        raise InvalidRequestError("The emulator supports end_behavior release or cancel.",
                                  param="schedule_details[end_behavior]")
    default_proration = details.get("proration_behavior", "create_prorations")
    if params.get("schedule"):
        schedule = state.get("subscription_schedule", params["schedule"], param="schedule")
        if customer is not None and schedule["customer"] != customer["id"]:
            raise InvalidRequestError(f"The subscription schedule {schedule['id']} does not belong to the customer "
                                      f"{customer['id']}.", param="schedule")
        if schedule["status"] not in ("active", "not_started"):
            raise InvalidRequestError(f"You cannot preview a subscription schedule that is currently in the "
                                      f"`{schedule['status']}` status. It must be in `not_started` or `active`.",
                                      param="schedule")
        sub = state.get("subscription", schedule["subscription"], param="schedule")
        phases = schedule["phases"]
        end_behavior = end_behavior or schedule["end_behavior"]
    else:
        if customer is None:
            raise InvalidRequestError("Missing required param: customer, subscription or schedule.",
                                      code="parameter_missing", param="customer")
        return _new_schedule_preview(state, customer, details, default_proration)
    if "phases" in details:
        phases = phases_from_params(state, details["phases"], default_proration, now=state.now_for(sub),
                                    start=sub["_period_start"], currency=sub["currency"],
                                    param="schedule_details[phases]")
    if not phases:
        raise InvalidRequestError("Missing required param: schedule_details[phases].", code="parameter_missing",
                                  param="schedule_details[phases]")
    return billing.schedule_preview(state, sub, phases, end_behavior=end_behavior or "release")


def _new_schedule_preview(state: State, customer: dict[str, Any], details: dict[str, Any],
                          default_proration: str) -> dict[str, Any]:
    """A schedule the customer does not have yet: the first invoice of the subscription it starts."""
    raw = details.get("phases") or []
    if not raw or not raw[0].get("items"):
        raise InvalidRequestError("Missing required param: schedule_details[phases][0][items].",
                                  code="parameter_missing", param="schedule_details[phases][0][items]")
    now = state.now_for(customer)
    first = state.get("price", raw[0]["items"][0].get("price"), param="schedule_details[phases][0][items][0][price]")
    phases = phases_from_params(state, raw, default_proration, now=now, start=now, currency=first["currency"],
                                param="schedule_details[phases]")
    if phases[0]["start_date"] < now:
        raise InvalidRequestError(
            "The emulator previews a new schedule starting now or later only; to preview a subscription's phases, "
            "put it on a schedule and pass `schedule`.",
            param="schedule_details[phases][0][start_date]",
        )
    plans = [billing.ItemPlan(state.objects[i["price"]], i["quantity"]) for i in phases[0]["items"]]
    return _creation_preview(state, customer, plans, start=phases[0]["start_date"])


@route("GET", "/v1/invoice_payments", params="InvoicePaymentListParams")
def list_invoice_payments(state: State, params: dict[str, Any]) -> ListResult:
    payments = where(state.all("invoice_payment"), params, "invoice")
    if "payment" in params:
        wanted = params["payment"]
        payments = [p for p in payments if p["payment"].get(wanted.get("type")) == wanted.get(wanted.get("type"))]
    return paginate(payments, params, "/v1/invoice_payments")


@route("GET", "/v1/invoice_payments/{id}", params="InvoicePaymentRetrieveParams")
def retrieve_invoice_payment(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("invoice_payment", id)
