"""Subscription schedules, enough for "change to this price at period end": create from
a subscription, set phases, release, cancel; the phase change runs when time passes it."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..errors import InvalidRequestError
from ..routing import ListResult, paginate, route, where
from ..shapes import blank
from ..state import State
from .catalog import merge_metadata
from .events import emit, render_before


def _phase(state: State, *, items: list[dict[str, Any]], start: int, end: int | None, currency: str,
           proration_behavior: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "add_invoice_items": [], "application_fee_percent": None, "automatic_tax": None, "billing_cycle_anchor": None,
        "billing_thresholds": None, "collection_method": None, "currency": currency, "default_payment_method": None,
        "default_tax_rates": [], "description": None, "discounts": [], "end_date": end, "invoice_settings": None,
        "items": [{"billing_thresholds": None, "discounts": [], "metadata": i.get("metadata") or {}, "plan": i["price"],
                   "price": i["price"], "quantity": int(i.get("quantity") or 1), "tax_rates": []} for i in items],
        "metadata": metadata or {}, "on_behalf_of": None, "proration_behavior": proration_behavior,
        "start_date": start, "transfer_data": None, "trial_end": None,
    }


def phases_from_params(state: State, phases: list[dict[str, Any]], default_proration: str, *, now: int,
                       start: int, currency: str, param: str = "phases") -> list[dict[str, Any]]:
    """Phases as a schedule stores them, from ``phases[...]`` parameters: the first starts at
    ``start`` unless it says otherwise, each of the others where the one before ends."""
    result: list[dict[str, Any]] = []
    for index, raw in enumerate(phases):
        name = f"{param}[{index}]"
        if not raw.get("items"):
            raise InvalidRequestError(f"Missing required param: {name}[items].", code="parameter_missing",
                                      param=f"{name}[items]")
        for n, item in enumerate(raw["items"]):
            price = state.get("price", item.get("price"), param=f"{name}[items][{n}][price]")
            if price["currency"] != currency:
                raise InvalidRequestError("All phases must use the subscription's currency.",
                                          param=f"{name}[items][{n}][price]")
        billing.check_items([billing.ItemPlan(state.objects[i["price"]], int(i.get("quantity") or 1))
                             for i in raw["items"]], None, param=f"{name}[items]")
        if index == 0 and "start_date" in raw:
            start = now if raw["start_date"] == "now" else int(raw["start_date"])
        price = state.objects[raw["items"][0]["price"]]
        interval, count = billing.price_interval(price)
        if "end_date" in raw and "duration" in raw:
            raise InvalidRequestError("You may only specify one of these parameters: duration, end_date.",
                                      param=f"{name}[duration]")
        if "end_date" in raw:
            end = now if raw["end_date"] == "now" else int(raw["end_date"])
        elif "duration" in raw:
            duration = raw["duration"]
            end = billing.add_interval(start, duration["interval"], int(duration.get("interval_count", 1)))
        else:
            end = billing.add_interval(start, interval, count)  # one iteration, Stripe's default
        if end <= start:
            raise InvalidRequestError("A phase must end after it starts.", param=f"{name}[end_date]")
        result.append(_phase(state, items=raw["items"], start=start, end=end, currency=currency,
                             proration_behavior=raw.get("proration_behavior", default_proration),
                             metadata=raw.get("metadata")))
        start = end
    return result


def _plan_phase_jobs(state: State, schedule: dict[str, Any], sub: dict[str, Any]) -> None:
    clock = state.clock_of(sub)
    for phase in schedule["phases"]:
        if phase["end_date"] and phase["end_date"] > state.now_for(sub):
            state.schedule(clock=clock, due=phase["end_date"], kind="phase", target=sub["id"])


@route("POST", "/v1/subscription_schedules", params="SubscriptionScheduleCreateParams")
def create_schedule(state: State, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("from_subscription"):
        raise InvalidRequestError(
            "The emulator creates schedules from an existing subscription (from_subscription) only.",
            param="from_subscription",
        )
    if set(params) - {"from_subscription", "metadata"}:
        raise InvalidRequestError("You cannot set other parameters together with from_subscription.",
                                  param="from_subscription")
    sub = state.get("subscription", params["from_subscription"], param="from_subscription")
    if sub["schedule"]:
        raise InvalidRequestError(
            f"You cannot migrate a subscription that is already attached to a schedule: `{sub['schedule']}`.",
            param="from_subscription",
        )
    if sub["status"] in ("canceled", "incomplete_expired", "incomplete"):
        raise InvalidRequestError("The subscription must be active to be put on a schedule.",
                                  param="from_subscription")
    now = state.now_for(sub)
    items = [{"price": i["price"], "quantity": i["quantity"], "metadata": i["metadata"]}
             for i in billing.items_of(state, sub)]
    phase = _phase(state, items=items, start=sub["_period_start"], end=sub["_period_end"], currency=sub["currency"],
                   proration_behavior="create_prorations")
    schedule = blank("subscription_schedule")
    schedule.update(
        id=state.new_id("sub_sched"),
        created=now,
        customer=sub["customer"],
        subscription=sub["id"],
        status="active",
        end_behavior="release",
        phases=[phase],
        current_phase={"start_date": phase["start_date"], "end_date": phase["end_date"]},
        metadata=params.get("metadata") or {},
        test_clock=sub["test_clock"],
        billing_mode=dict(sub["billing_mode"]),
        _phase=0,
        _seq=next(state.counters),
    )
    state.add(schedule)
    before = render_before(state, sub)
    sub["schedule"] = schedule["id"]
    emit(state, "subscription_schedule.created", schedule)
    emit(state, "customer.subscription.updated", sub, previous=before)
    _plan_phase_jobs(state, schedule, sub)
    return schedule


@route("GET", "/v1/subscription_schedules", params="SubscriptionScheduleListParams")
def list_schedules(state: State, params: dict[str, Any]) -> ListResult:
    schedules = where(state.all("subscription_schedule"), params, "customer")
    if params.get("scheduled"):
        schedules = [s for s in schedules if s["status"] == "not_started"]
    return paginate(schedules, params, "/v1/subscription_schedules")


@route("GET", "/v1/subscription_schedules/{id}", params="SubscriptionScheduleRetrieveParams")
def retrieve_schedule(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("subscription_schedule", id)


def _active(state: State, schedule: dict[str, Any]) -> dict[str, Any]:
    if schedule["status"] not in ("active", "not_started"):
        raise InvalidRequestError(
            f"You cannot update a subscription schedule that is currently in the `{schedule['status']}` status. "
            "It must be in `not_started` or `active`.",
        )
    return state.get("subscription", schedule["subscription"])


@route("POST", "/v1/subscription_schedules/{id}", params="SubscriptionScheduleUpdateParams")
def update_schedule(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    schedule = state.get("subscription_schedule", id)
    sub = _active(state, schedule)
    before = render_before(state, schedule)
    if "phases" in params:
        now = state.now_for(sub)
        phases = phases_from_params(state, params["phases"], params.get("proration_behavior", "create_prorations"),
                                    now=now, start=sub["_period_start"], currency=sub["currency"])
        current = billing.phase_index(phases, now)
        if phases[current]["start_date"] > now:
            raise InvalidRequestError("The first phase must have started.", param="phases[0][start_date]")
        # The current phase changes now: same proration rules as a direct update.
        change = billing.phase_change_now(state, sub, phases[current])
        if change is not None:
            invoice = billing.commit_change(state, sub, change)
            if invoice is not None and invoice["status"] == "open":
                billing.attempt(state, invoice)
        schedule["phases"] = phases
        schedule["_phase"] = current
        schedule["current_phase"] = {"start_date": phases[current]["start_date"],
                                     "end_date": phases[current]["end_date"]}
        _plan_phase_jobs(state, schedule, sub)
    if "end_behavior" in params:
        if params["end_behavior"] not in ("release", "cancel"):
            raise InvalidRequestError("The emulator supports end_behavior release or cancel.", param="end_behavior")
        schedule["end_behavior"] = params["end_behavior"]
    if "metadata" in params:
        schedule["metadata"] = merge_metadata(schedule["metadata"], params["metadata"])
    emit(state, "subscription_schedule.updated", schedule, previous=before)
    return schedule


@route("POST", "/v1/subscription_schedules/{id}/release", params="SubscriptionScheduleReleaseParams")
def release_schedule(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    schedule = state.get("subscription_schedule", id)
    sub = _active(state, schedule)
    billing.release_schedule(state, schedule, sub, state.now_for(sub))
    return schedule


@route("POST", "/v1/subscription_schedules/{id}/cancel", params="SubscriptionScheduleCancelParams")
def cancel_schedule(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    schedule = state.get("subscription_schedule", id)
    sub = _active(state, schedule)
    billing.cancel_now(state, sub=sub, reason="cancellation_requested")
    return schedule
