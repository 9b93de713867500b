"""Events (``/v1/events``), webhook endpoints, and the one way events are made: ``emit``."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import InvalidRequestError
from ..routing import ListResult, paginate, render, route
from ..shapes import blank
from ..state import API_VERSION, State


def emit(
    state: State,
    event_type: str,
    obj: dict[str, Any],
    *,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record an event about ``obj`` as it is now and queue its webhook deliveries.

    ``previous`` is the object's rendering before the change; the fields that differ
    become ``data.previous_attributes``, as on Stripe's ``*.updated`` events.
    """
    shown = render(state, obj)
    data: dict[str, Any] = {"object": shown}
    if previous is not None:
        data["previous_attributes"] = diff(previous, shown)
    ctx = state.context
    event = blank("event")
    event.update(
        id=state.new_id("evt"),
        api_version=API_VERSION,
        created=state.now_for(obj) if obj.get("object") != "test_helpers.test_clock" else obj["frozen_time"],
        data=data,
        type=event_type,
        request={"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
        _seq=next(state.counters),
    )
    event["pending_webhooks"] = len(endpoints_for(state, event_type))
    state.add(event)
    for listener in state.event_listeners:
        listener(event)
    return event


def endpoints_for(state: State, event_type: str) -> list[dict[str, Any]]:
    """The enabled webhook endpoints that asked for this type of event."""
    return [
        e for e in state.all("webhook_endpoint")
        if e["status"] == "enabled" and ("*" in e["enabled_events"] or event_type in e["enabled_events"])
    ]


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for key, old in before.items():
        new = after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and old.get("object") != "list":
            changed[key] = diff(old, new)
        else:
            changed[key] = copy.deepcopy(old)
    return changed


@route("GET", "/v1/events", params="EventListParams")
def list_events(state: State, params: dict[str, Any]) -> ListResult:
    events = state.all("event")
    if "type" in params:
        pattern = params["type"]
        if pattern.endswith("*"):
            events = [e for e in events if e["type"].startswith(pattern[:-1])]
        else:
            events = [e for e in events if e["type"] == pattern]
    if "types" in params:
        events = [e for e in events if e["type"] in params["types"]]
    events = _created_filter(events, params.get("created"))
    return paginate(events, params, "/v1/events")


def _created_filter(objs: list[dict[str, Any]], created: Any) -> list[dict[str, Any]]:
    if created is None:
        return objs
    if not isinstance(created, dict):
        return [o for o in objs if o["created"] == int(created)]
    tests = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    for op, value in created.items():
        objs = [o for o in objs if tests[op](o["created"], int(value))]
    return objs


@route("GET", "/v1/events/{id}", params="EventRetrieveParams")
def retrieve_event(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("event", id)


# webhook endpoints ------------------------------------------------------------------


@route("POST", "/v1/webhook_endpoints", params="WebhookEndpointCreateParams")
def create_endpoint(state: State, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("api_version", API_VERSION) != API_VERSION:
        raise InvalidRequestError(
            f"The emulator sends events of API version {API_VERSION} only.", param="api_version"
        )
    endpoint = blank("webhook_endpoint")
    secret = "whsec_" + state.new_id("x", 32)[2:]
    endpoint.update(
        id=state.new_id("we"),
        api_version=API_VERSION,
        created=state.now(),
        description=params.get("description"),
        enabled_events=params["enabled_events"],
        metadata=params.get("metadata") or {},
        status="enabled",
        url=params["url"],
        _secret=secret,
        _seq=next(state.counters),
    )
    state.add(endpoint)
    shown = render(state, endpoint)
    shown["secret"] = secret  # Stripe shows the signing secret once, on creation
    return shown


@route("GET", "/v1/webhook_endpoints", params="WebhookEndpointListParams")
def list_endpoints(state: State, params: dict[str, Any]) -> ListResult:
    return paginate(state.all("webhook_endpoint"), params, "/v1/webhook_endpoints")


@route("GET", "/v1/webhook_endpoints/{id}", params="WebhookEndpointRetrieveParams")
def retrieve_endpoint(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("webhook_endpoint", id)


@route("POST", "/v1/webhook_endpoints/{id}", params="WebhookEndpointUpdateParams")
def update_endpoint(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    endpoint = state.get("webhook_endpoint", id)
    for key in ("description", "enabled_events", "url"):
        if key in params:
            endpoint[key] = params[key]
    if "disabled" in params:
        endpoint["status"] = "disabled" if params["disabled"] else "enabled"
    if "metadata" in params:
        endpoint["metadata"] = params["metadata"] or {}
    return endpoint


@route("DELETE", "/v1/webhook_endpoints/{id}", params="WebhookEndpointDeleteParams")
def delete_endpoint(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    endpoint = state.get("webhook_endpoint", id)
    state.delete(endpoint)
    return {"id": id, "object": "webhook_endpoint", "deleted": True}


def render_before(state: State, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as shown now, kept to compute ``previous_attributes`` after a change."""
    return copy.deepcopy(render(state, obj))
