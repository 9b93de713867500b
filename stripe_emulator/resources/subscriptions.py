"""Subscriptions (flexible billing mode): create, update (swap, prorations, payment
behaviours, pending updates), cancel, pause and resume."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..errors import CardError, InvalidRequestError
from ..routing import ListResult, paginate, render, route, sublist, view, where
from ..shapes import blank
from ..state import State
from .catalog import merge_metadata, plan_from_price
from .events import emit, render_before
from .payment_methods import always_3ds, card_of, charge_decline, decline_error, resolve


@view("subscription")
def show_subscription(state: State, sub: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in sub.items() if not k.startswith("_")}
    shown["items"] = sublist(state, billing.items_of(state, sub), f"/v1/subscription_items?subscription={sub['id']}")
    return shown


@view("subscription_item")
def show_item(state: State, item: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in item.items() if not k.startswith("_")}
    price = state.objects[item["price"]]
    shown["price"] = render(state, price)
    shown["plan"] = plan_from_price(price)
    return shown


def _check_payment_method(state: State, customer: dict[str, Any], pm_id: str, param: str) -> str:
    pm = state.find(pm_id)
    if pm is None or pm.get("object") != "payment_method" or pm["customer"] != customer["id"]:
        raise InvalidRequestError(
            f"The customer does not have a payment method with the ID {pm_id}. The payment method must be "
            "attached to the customer.", code="resource_missing", param=param,
        )
    return pm_id


def _precheck_payment(state: State, sub_or_customer: dict[str, Any], amount: int, pm_id: str | None) -> None:
    """``error_if_incomplete``: refuse the request, changing nothing, if the charge would fail."""
    if amount <= 0:
        return
    if pm_id is None:
        raise CardError("This customer has no attached payment source or default payment method.",
                        code="resource_missing", status=402)
    pm = resolve(state, pm_id)
    card = card_of(pm)
    now = state.now_for(sub_or_customer)
    decline = charge_decline(pm, now) or (
        "authentication_required" if always_3ds(pm) or (card.setup_3ds and not pm.get("_setup_authenticated"))
        else None)
    if decline:
        raise decline_error(decline)


@route("POST", "/v1/subscriptions", params="SubscriptionCreateParams")
def create_subscription(state: State, params: dict[str, Any]) -> dict[str, Any]:
    customer = state.get("customer", params.get("customer"), param="customer")
    if not params.get("items"):
        raise InvalidRequestError("Missing required param: items.", code="parameter_missing", param="items")
    mode = (params.get("billing_mode") or {}).get("type", "flexible")
    plans = billing.plan_items(state, None, params["items"])
    now = state.now_for(customer)
    pm_id = params.get("default_payment_method")
    if pm_id:
        pm_id = _check_payment_method(state, customer, pm_id, "default_payment_method")
    behavior = params.get("payment_behavior", "allow_incomplete")
    if behavior == "pending_if_incomplete":
        raise InvalidRequestError("payment_behavior=pending_if_incomplete is only for updates.",
                                  param="payment_behavior")
    interval, count = billing.price_interval(plans[0].price)
    trial_end = params.get("trial_end")
    if trial_end == "now":
        trial_end = None
    if params.get("trial_period_days"):
        trial_end = now + int(params["trial_period_days"]) * billing.DAY
    if params.get("trial_from_plan") and plans[0].price["recurring"].get("trial_period_days"):
        trial_end = now + int(plans[0].price["recurring"]["trial_period_days"]) * billing.DAY
    anchor = trial_end or params.get("billing_cycle_anchor") or now
    if anchor < now:
        raise InvalidRequestError("billing_cycle_anchor cannot be in the past.", param="billing_cycle_anchor")
    start, end = now, (trial_end or (anchor if anchor > now else billing.add_interval(now, interval, count)))
    if behavior == "error_if_incomplete" and not trial_end:
        customer_pm = customer["invoice_settings"]["default_payment_method"]
        total = sum(p.price["unit_amount"] * p.quantity for p in plans)
        _precheck_payment(state, customer, total, pm_id or customer_pm)
    sub = blank("subscription")
    sub.update(
        id=state.new_id("sub"),
        billing_cycle_anchor=anchor,
        billing_mode={"type": mode, "flexible": {"proration_discounts": "included"} if mode == "flexible" else None,
                      "updated_at": None},
        cancel_at_period_end=bool(params.get("cancel_at_period_end")),
        collection_method=params.get("collection_method", "charge_automatically"),
        created=now,
        start_date=now,
        currency=plans[0].price["currency"],
        customer=customer["id"],
        days_until_due=params.get("days_until_due"),
        default_payment_method=pm_id,
        description=params.get("description"),
        metadata=params.get("metadata") or {},
        status="incomplete",
        test_clock=customer["test_clock"],
        trial_start=now if trial_end else None,
        trial_end=trial_end,
        trial_settings=params.get("trial_settings") or {"end_behavior": {"missing_payment_method": "create_invoice"}},
        _items=[],
        _period_start=start,
        _period_end=end,
        _seq=next(state.counters),
    )
    if sub["cancel_at_period_end"]:
        sub["cancel_at"] = end
    state.add(sub)
    billing.apply_items(state, sub, plans)
    billing.set_period(state, sub, start, end)
    emit(state, "customer.subscription.created", sub)
    if trial_end:
        specs = [billing.LineSpec(0, p.price, p.quantity, start, end, False,
                                  f"Trial period for {state.objects[p.price['product']]['name']}", p.item["id"]
                                  if p.item else None) for p in plans]
    elif anchor > now:
        full_start = billing.add_interval(anchor, interval, count, -1)
        specs = [billing.LineSpec(billing.prorate(p.price["unit_amount"] * p.quantity, start=full_start, end=anchor,
                                                  at=now), p.price, p.quantity, now, anchor, True,
                                  f"Remaining time on {p.quantity} × "
                                  f"{state.objects[p.price['product']]['name']} until the billing date",
                                  p.item["id"] if p.item else None) for p in plans]
    else:
        specs = billing.period_lines(state, plans, start, end)
    invoice = billing.new_invoice(state, customer=customer, sub=sub, specs=specs, billing_reason="subscription_create")
    sub["latest_invoice"] = invoice["id"]
    billing.finalize(state, invoice)
    before = render_before(state, sub)
    if invoice["status"] == "paid":
        sub["status"] = "trialing" if trial_end else "active"
    elif behavior == "default_incomplete" or sub["collection_method"] == "send_invoice":
        if sub["collection_method"] == "send_invoice":
            sub["status"] = "active"
    else:
        billing.attempt(state, invoice, payment_method=pm_id, off_session=bool(params.get("off_session")))
    if sub["status"] == "incomplete":
        state.schedule(clock=state.clock_of(sub), due=now + 23 * 3600, kind="incomplete_expiry", target=sub["id"])
    if render_before(state, sub) != before:
        emit(state, "customer.subscription.updated", sub, previous=before)
    if sub["collection_method"] == "send_invoice":
        billing.schedule_renewal(state, sub)  # otherwise the first payment schedules it
    return sub


@route("GET", "/v1/subscriptions", params="SubscriptionListParams")
def list_subscriptions(state: State, params: dict[str, Any]) -> ListResult:
    subs = state.all("subscription")
    status = params.get("status")
    if status is None:
        subs = [s for s in subs if s["status"] not in ("canceled", "incomplete_expired")]
    elif status == "ended":
        subs = [s for s in subs if s["status"] in ("canceled", "incomplete_expired")]
    elif status != "all":
        subs = [s for s in subs if s["status"] == status]
    subs = where(subs, params, "customer", "test_clock", "collection_method")
    if "price" in params:
        subs = [s for s in subs if any(i["price"] == params["price"] for i in billing.items_of(state, s))]
    return paginate(subs, params, "/v1/subscriptions")


@route("GET", "/v1/subscriptions/{id}", params="SubscriptionRetrieveParams")
def retrieve_subscription(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("subscription", id)


@route("POST", "/v1/subscriptions/{id}", params="SubscriptionUpdateParams")
def update_subscription(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    sub = state.get("subscription", id)
    if sub["status"] in ("canceled", "incomplete_expired") and set(params) - {"metadata", "cancellation_details"}:
        raise InvalidRequestError("A canceled subscription can only update its cancellation_details and metadata.")
    customer = state.objects[sub["customer"]]
    before = render_before(state, sub)
    now = state.now_for(sub)
    if "default_payment_method" in params:
        pm_id = params["default_payment_method"] or None
        sub["default_payment_method"] = (
            _check_payment_method(state, customer, pm_id, "default_payment_method") if pm_id else None
        )
    if "metadata" in params:
        sub["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if "cancellation_details" in params:
        details = params["cancellation_details"]
        for key in ("comment", "feedback"):
            if key in details:
                sub["cancellation_details"][key] = details[key] or None
    if "cancel_at_period_end" in params:
        sub["cancel_at_period_end"] = params["cancel_at_period_end"]
        sub["cancel_at"] = sub["_period_end"] if params["cancel_at_period_end"] else None
        sub["canceled_at"] = now if params["cancel_at_period_end"] else None
        if not params["cancel_at_period_end"]:
            sub["cancellation_details"]["reason"] = None
    if "cancel_at" in params:
        value = params["cancel_at"]
        if value in ("", None):
            sub["cancel_at"], sub["cancel_at_period_end"], sub["canceled_at"] = None, False, None
        else:
            at = sub["_period_end"] if value in ("min_period_end", "max_period_end", "max_billed_until") else int(value)
            if at <= now:
                raise InvalidRequestError("cancel_at must be in the future.", param="cancel_at")
            sub["cancel_at"], sub["canceled_at"] = at, now
            sub["cancel_at_period_end"] = at == sub["_period_end"]
            if at < sub["_period_end"]:
                state.schedule(clock=state.clock_of(sub), due=at, kind="cancel_at", target=sub["id"], at=at)
    if "pause_collection" in params:
        pause = params["pause_collection"]
        if pause == "":
            sub["pause_collection"] = None
        else:
            resumes_at = pause.get("resumes_at")
            if resumes_at is not None and int(resumes_at) <= now:
                raise InvalidRequestError("resumes_at must be in the future.", param="pause_collection[resumes_at]")
            sub["pause_collection"] = {"behavior": pause["behavior"], "resumes_at": resumes_at}
            if resumes_at:
                state.schedule(clock=state.clock_of(sub), due=int(resumes_at), kind="pause_resume",
                               target=sub["id"], resumes_at=int(resumes_at))
    if "trial_end" in params and sub["status"] == "trialing":
        _change_trial_end(state, sub, params["trial_end"])
    invoice = None
    if "items" in params or params.get("billing_cycle_anchor") == "now":
        invoice = _swap(state, sub, params)
    if invoice is None and params.get("proration_behavior") == "always_invoice" and billing.pending_lines(sub):
        # Prorations waiting for the next renewal are invoiced at once on request.
        invoice = billing.invoice_pending_now(state, sub)
        if invoice["status"] == "open":
            billing.attempt(state, invoice, off_session=bool(params.get("off_session", True)))
    after = render_before(state, sub)
    if after != before:
        emit(state, "customer.subscription.updated", sub, previous=before)
    return sub


def _change_trial_end(state: State, sub: dict[str, Any], value: Any) -> None:
    now = state.now_for(sub)
    end = now if value == "now" else int(value)
    sub["trial_end"] = end
    sub["billing_cycle_anchor"] = end
    billing.set_period(state, sub, sub["_period_start"], end)
    if end <= now:
        # Ending the trial now renews at once, as Stripe does.
        sub["_period_end"] = now
        billing.renew_now(state, sub)
    else:
        billing.schedule_renewal(state, sub)


def _swap(state: State, sub: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    if sub["schedule"] and state.objects[sub["schedule"]]["status"] == "active":
        raise InvalidRequestError(
            f"The subscription is managed by the subscription schedule `{sub['schedule']}`, and updating any "
            "cancelation behavior directly is not allowed. Please update the schedule instead.",
        )
    if sub.get("_pending"):
        raise InvalidRequestError(
            "This subscription has a pending update. Pay or wait for the pending update's invoice first.",
        )
    plans = billing.plan_items(state, sub, params.get("items"))
    behavior = params.get("payment_behavior", "allow_incomplete")
    change = billing.plan_change(
        state, sub, plans, proration_behavior=params.get("proration_behavior", "create_prorations"),
        proration_date=params.get("proration_date"), anchor_now=params.get("billing_cycle_anchor") == "now",
    )
    off_session = bool(params.get("off_session", False))
    pm_id = billing._sub_payment_method(state, sub)
    amount = sum(s.amount for s in change.lines_now) + state.objects[sub["customer"]]["balance"]
    if behavior == "error_if_incomplete" and change.invoice_now:
        _precheck_payment(state, sub, amount, pm_id)
    if behavior == "pending_if_incomplete" and change.invoice_now and amount > 0:
        unsupported = set(params) - {"items", "proration_behavior", "proration_date", "payment_behavior", "expand",
                                     "billing_cycle_anchor", "off_session", "trial_end", "trial_from_plan"}
        if unsupported:
            raise InvalidRequestError(
                "When payment_behavior is pending_if_incomplete, you may only update: items, proration_behavior, "
                f"proration_date, billing_cycle_anchor, trial_end. Got: {', '.join(sorted(unsupported))}.",
                param="payment_behavior",
            )
        invoice = billing.new_invoice(state, customer=state.objects[sub["customer"]], sub=sub,
                                      specs=change.lines_now, billing_reason="subscription_update",
                                      proration_date=params.get("proration_date"))
        sub["_pending_lines"] = []
        billing.finalize(state, invoice)
        sub["latest_invoice"] = invoice["id"]
        billing.store_pending(state, sub, change, invoice)
        if invoice["status"] == "open":
            billing.attempt(state, invoice, off_session=off_session)
        return invoice
    committed = billing.commit_change(state, sub, change)
    if committed is not None:
        if params.get("proration_date"):
            committed["parent"]["subscription_details"]["subscription_proration_date"] = params["proration_date"]
        if committed["status"] == "open" and behavior != "default_incomplete":
            billing.attempt(state, committed, off_session=off_session)
    return committed


@route("DELETE", "/v1/subscriptions/{id}", params="SubscriptionCancelParams")
def cancel_subscription(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    sub = state.get("subscription", id)
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise InvalidRequestError(f"No such subscription: '{id}'", code="resource_missing", status=404)
    details = params.get("cancellation_details") or {}
    for key in ("comment", "feedback"):
        if key in details:
            sub["cancellation_details"][key] = details[key] or None
    now = state.now_for(sub)
    sub["canceled_at"] = now
    if params.get("prorate"):
        billing.add_pending_lines(sub, billing.unused_credit(state, sub, at=now))
    if params.get("invoice_now") and billing.pending_lines(sub):
        billing.invoice_pending_now(state, sub)
    billing.cancel_now(state, sub=sub, reason="cancellation_requested")
    return sub


@route("POST", "/v1/subscriptions/{id}/pause", params="SubscriptionPauseParams")
def pause_subscription(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    sub = state.get("subscription", id)
    if sub["billing_mode"]["type"] != "flexible":
        raise InvalidRequestError("Pausing requires billing_mode[type]=flexible.", param="billing_mode")
    if sub["status"] not in ("active", "trialing", "past_due"):
        raise InvalidRequestError(f"A subscription with status {sub['status']} cannot be paused.")
    schedule = state.find(sub.get("schedule"))
    if schedule is not None and schedule["status"] in ("active", "not_started"):
        # As Stripe: "Cannot pause subscriptions with attached schedules."
        raise InvalidRequestError("Cannot pause subscriptions with attached schedules. Release the schedule "
                                  f"{schedule['id']} first.")
    now = state.now_for(sub)
    before = render_before(state, sub)
    unused = ((params.get("bill_for") or {}).get("unused_time_from") or {}).get("type", "now")
    if unused != "none" and sub["status"] != "trialing":
        at = sub["_period_start"] if unused == "item_current_period_start" else now
        credit = billing.unused_credit(state, sub, at=at)
        if params.get("invoicing_behavior") == "invoice" and credit:
            billing.invoice_pending_now(state, sub, specs=credit)
        else:
            # Stripe's default: pending invoice items, listed with /v1/invoiceitems?pending=true, that
            # the first invoice after the resume takes.
            for spec in credit:
                _pending_item(state, sub, spec)
    sub["status"] = "paused"
    sub["status_details"] = {"paused": {"subscription": {"type": "pause_requested"}, "transitioned_at": now,
                                        "type": params.get("type", "subscription")}}
    # The period ends when the pause starts (Stripe: "current_period_end updates to the time when you
    # paused"); no renewal is due while paused.
    billing.set_period(state, sub, sub["_period_start"], max(now, sub["_period_start"]))
    emit(state, "customer.subscription.paused", sub, previous=before)
    emit(state, "customer.subscription.updated", sub, previous=before)
    return sub


def _pending_item(state: State, sub: dict[str, Any], spec: billing.LineSpec) -> dict[str, Any]:
    customer = state.objects[sub["customer"]]
    price = spec.price
    item = blank("invoiceitem")
    item.update(
        id=state.new_id("ii"),
        amount=spec.amount,
        net_amount=spec.amount,
        currency=spec.money,
        customer=customer["id"],
        date=state.now_for(sub),
        description=spec.description,
        period={"start": spec.start, "end": spec.end},
        proration=spec.proration,
        quantity=spec.quantity,
        quantity_decimal=str(spec.quantity),
        pricing={"type": "price_details", "price_details": {"price": price["id"], "product": price["product"]},
                 "unit_amount_decimal": str(price["unit_amount"])} if price else None,
        parent={"type": "subscription_details", "subscription_details": {"subscription": sub["id"],
                                                                          "subscription_item": spec.item_id}},
        test_clock=customer["test_clock"],
        _subscription=sub["id"],
        _seq=next(state.counters),
    )
    state.add(item)
    emit(state, "invoiceitem.created", item)
    return item


@route("POST", "/v1/subscriptions/{id}/resume", params="SubscriptionResumeParams")
def resume_subscription(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    sub = state.get("subscription", id)
    if sub["status"] != "paused":
        raise InvalidRequestError("Only a paused subscription can be resumed.")
    if sub.get("_resume_invoice"):
        invoice = state.find(sub["_resume_invoice"])
        if invoice is not None and invoice["status"] == "open":
            raise InvalidRequestError("This subscription is already resuming: its resumption invoice "
                                      f"{invoice['id']} is waiting for payment.")
    now = state.now_for(sub)
    before = render_before(state, sub)
    on_success = params.get("payment_behavior", "resume_on_payment_attempt") == "resume_on_payment_success"
    interval, count = billing.sub_interval(state, sub)
    plans = billing.current_plans(state, sub)
    if (params.get("billing_cycle_anchor") or {}).get("type", "now") == "now":
        end = billing.add_interval(now, interval, count)
        sub["billing_cycle_anchor"] = now
        specs = billing.pending_lines(sub) + billing.period_lines(state, plans, now, end)
    else:
        end = billing.period_end_after(sub["billing_cycle_anchor"], interval, count, now)
        start = billing.add_interval(end, interval, count, -1)
        specs = billing.pending_lines(sub)
        if params.get("proration_behavior", "create_prorations") != "none":
            # The rest of the current period is charged: the opposite of an unused-time credit.
            specs += [billing.LineSpec(-s.amount, s.price, s.quantity, s.start, s.end, True,
                                       s.description.replace("Unused time", "Remaining time"), s.item_id)
                      for s in billing.unused_credit(state, sub, at=params.get("proration_date") or now,
                                                     start=start, end=end)]
    billing.set_period(state, sub, now, end)
    sub["_pending_lines"] = []
    invoice = billing.new_invoice(state, customer=state.objects[sub["customer"]], sub=sub, specs=specs,
                                  billing_reason="subscription_update")
    sub["latest_invoice"] = invoice["id"]
    billing.finalize(state, invoice)
    if on_success:
        # resume_on_payment_success: paused until the resumption invoice is paid (now, or by one of
        # Stripe's retries; billing._after_invoice_paid finishes the resume then).
        sub["_resume_invoice"] = invoice["id"]
        if invoice["status"] == "open":
            billing.attempt(state, invoice)
        if invoice["status"] == "paid" and sub["status"] == "paused":
            billing.finish_resume(state, sub, before=before)
        elif render_before(state, sub) != before:
            emit(state, "customer.subscription.updated", sub, previous=before)
        return sub
    sub["status"] = "active"
    sub["status_details"] = None
    emit(state, "customer.subscription.resumed", sub, previous=before)
    if invoice["status"] == "open":
        billing.attempt(state, invoice)
    billing.schedule_renewal(state, sub)
    emit(state, "customer.subscription.updated", sub, previous=before)
    return sub


@route("GET", "/v1/subscription_items", params="SubscriptionItemListParams")
def list_items(state: State, params: dict[str, Any]) -> ListResult:
    sub = state.get("subscription", params["subscription"], param="subscription")
    return paginate(billing.items_of(state, sub), params, f"/v1/subscription_items?subscription={sub['id']}")


@route("GET", "/v1/subscription_items/{id}", params="SubscriptionItemRetrieveParams")
def retrieve_item(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("subscription_item", id)
