"""Test clocks: frozen time for the customers attached to them. Advancing runs, in time
order, everything that falls due (renewals, finalization, retries, phase changes, resumes)."""

from __future__ import annotations

import threading
from typing import Any

from .. import billing
from ..errors import InvalidRequestError
from ..routing import ListResult, paginate, route
from ..shapes import blank
from ..state import State
from .events import emit, render_before

_THIRTY_DAYS = 30 * 86400


@route("POST", "/v1/test_helpers/test_clocks", params="TestClockCreateParams")
def create_clock(state: State, params: dict[str, Any]) -> dict[str, Any]:
    clock = blank("test_helpers.test_clock")
    frozen = int(params["frozen_time"])
    clock.update(
        id=state.new_id("clock"),
        created=state.now(),
        deletes_after=state.now() + _THIRTY_DAYS,
        frozen_time=frozen,
        name=params.get("name"),
        status="ready",
        status_details={},
        _seq=next(state.counters),
    )
    state.add(clock)
    emit(state, "test_helpers.test_clock.created", clock)
    emit(state, "test_helpers.test_clock.ready", clock)
    return clock


@route("GET", "/v1/test_helpers/test_clocks", params="TestClockListParams")
def list_clocks(state: State, params: dict[str, Any]) -> ListResult:
    return paginate(state.all("test_helpers.test_clock"), params, "/v1/test_helpers/test_clocks")


@route("GET", "/v1/test_helpers/test_clocks/{id}", params="TestClockRetrieveParams")
def retrieve_clock(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("test_helpers.test_clock", id, label="test clock")


@route("DELETE", "/v1/test_helpers/test_clocks/{id}", params="TestClockDeleteParams")
def delete_clock(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    clock = state.get("test_helpers.test_clock", id, label="test clock")
    for customer in state.all("customer"):
        if customer["test_clock"] == id:
            state.delete(customer)  # Stripe deletes the clock's objects silently
    state.jobs.pop(id, None)
    emit(state, "test_helpers.test_clock.deleted", clock)
    state.delete(clock)
    state.clocks_changed.notify_all()
    return {"id": id, "object": "test_helpers.test_clock", "deleted": True}


@route("POST", "/v1/test_helpers/test_clocks/{id}/advance", params="TestClockAdvanceParams")
def advance_clock(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    clock = state.get("test_helpers.test_clock", id, label="test clock")
    target = int(params["frozen_time"])
    if clock["status"] != "ready":
        raise InvalidRequestError("The test clock is already advancing; wait until its status is ready.")
    if target <= clock["frozen_time"]:
        raise InvalidRequestError("The frozen_time must be after the clock's current frozen_time.",
                                  param="frozen_time")
    before = render_before(state, clock)
    clock["status"] = "advancing"
    clock["status_details"] = {"advancing": {"target_frozen_time": target}}
    emit(state, "test_helpers.test_clock.advancing", clock, previous=before)
    # Like Stripe, advancing is asynchronous: callers poll until the status is "ready".
    threading.Thread(target=_advance, args=(state, id, target), name=f"advance-{id}", daemon=True).start()
    return clock


def _advance(state: State, clock_id: str, target: int) -> None:
    try:
        billing.run_due(state, clock=clock_id, until=target)
    finally:
        with state.lock:
            clock = state.find(clock_id)
            if clock is not None and not clock.get("_deleted"):
                before = render_before(state, clock)
                clock.update(frozen_time=target, status="ready", status_details={})
                emit(state, "test_helpers.test_clock.ready", clock, previous=before)
            state.clocks_changed.notify_all()


def wait_until_ready(state: State, clock_id: str, timeout: float) -> dict[str, Any] | None:
    """The clock once it is ready again, or None if ``timeout`` seconds pass first.

    Stripe's clients can only poll an advancing clock; an emulator in the same process (or a
    caller of ``/_emulator/test_clocks/<id>/wait``) can be told the moment it settles instead.
    An unknown or deleted clock raises NotFound, as retrieving it would."""

    def ready() -> bool:
        return bool(state.get("test_helpers.test_clock", clock_id, label="test clock")["status"] == "ready")

    with state.clocks_changed:
        if not state.clocks_changed.wait_for(ready, timeout):
            return None
        return state.get("test_helpers.test_clock", clock_id, label="test clock")
