"""The route table, object views and ``expand[]`` handling shared by every resource."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequestError
from .state import State, strip_private

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    params: str | None
    publishable: bool


ROUTES: list[Route] = []
VIEWS: dict[str, Callable[[State, dict[str, Any]], dict[str, Any]]] = {}


def route(method: str, path: str, *, params: str | None = None, publishable: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler. ``params`` names the ``stripe.params`` class that lists the
    parameters Stripe accepts there; ``publishable`` lets Stripe.js call it with a pk_ key."""
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, regex, handler, params, publishable))
        # Literal paths before patterns: /v1/invoices/create_preview is not /v1/invoices/{id}.
        ROUTES.sort(key=lambda r: r.pattern.groups)
        return handler

    return register


def view(object_name: str) -> Callable[[Callable[[State, dict[str, Any]], dict[str, Any]]], Any]:
    """Register how an object type is shown (building nested lists, for example)."""

    def register(fn: Callable[[State, dict[str, Any]], dict[str, Any]]) -> Any:
        VIEWS[object_name] = fn
        return fn

    return register


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """The route for a request, its path arguments, and whether the path exists at all."""
    path_known = False
    for candidate in ROUTES:
        found = candidate.pattern.match(path)
        if found:
            path_known = True
            if candidate.method == method:
                return candidate, found.groupdict(), True
    return None, {}, path_known


def render(state: State, obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the API shows it, references left as ids."""
    if obj.get("_deleted"):
        return {"id": obj["id"], "object": obj["object"], "deleted": True}
    shown = VIEWS.get(obj["object"])
    return shown(state, obj) if shown else strip_private(obj)


@dataclass
class ListResult:
    items: list[dict[str, Any]]
    has_more: bool
    url: str


def where(objs: list[dict[str, Any]], params: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    """Keep the objects whose fields equal the list parameters given for ``keys``."""
    for key in keys:
        if key in params:
            objs = [o for o in objs if o.get(key) == params[key]]
    return objs


def paginate(objs: list[dict[str, Any]], params: dict[str, Any], url: str) -> ListResult:
    """Newest first, with Stripe's cursor parameters."""
    ordered = sorted(objs, key=lambda o: (o.get("created", 0), o.get("_seq", 0)), reverse=True)
    limit = int(params.get("limit", 10))
    if not 1 <= limit <= 100:
        raise InvalidRequestError(
            "Invalid limit: must be between 1 and 100", code="parameter_invalid_integer", param="limit"
        )
    if params.get("starting_after"):
        ids = [o["id"] for o in ordered]
        if params["starting_after"] not in ids:
            raise InvalidRequestError(
                f"Invalid starting_after id: {params['starting_after']}", param="starting_after",
                code="resource_missing",
            )
        ordered = ordered[ids.index(params["starting_after"]) + 1 :]
    elif params.get("ending_before"):
        ids = [o["id"] for o in ordered]
        if params["ending_before"] not in ids:
            raise InvalidRequestError(
                f"Invalid ending_before id: {params['ending_before']}", param="ending_before",
                code="resource_missing",
            )
        ordered = ordered[: ids.index(params["ending_before"])][-limit:]
        return ListResult(ordered, has_more=ids.index(params["ending_before"]) > limit, url=url)
    return ListResult(ordered[:limit], has_more=len(ordered) > limit, url=url)


def list_object(state: State, result: ListResult, expand: list[str]) -> dict[str, Any]:
    data = [render(state, o) for o in result.items]
    body = {"object": "list", "data": data, "has_more": result.has_more, "url": result.url}
    return apply_expand(state, body, expand)


def sublist(state: State, objs: list[dict[str, Any]], url: str, *, limit: int = 10) -> dict[str, Any]:
    """A list embedded in another object (subscription items, invoice lines)."""
    return {
        "object": "list",
        "data": [render(state, o) for o in objs[:limit]],
        "has_more": len(objs) > limit,
        "total_count": len(objs),
        "url": url,
    }


def apply_expand(state: State, body: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    for path in paths:
        parts = path.split(".")
        if len(parts) > 4:
            raise InvalidRequestError(
                f"You cannot expand more than 4 levels of a property. Property: {path}",
                param="expand",
            )
        _expand(state, body, parts, path)
    return body


def _expand(state: State, node: Any, parts: list[str], full: str) -> Any:
    if not parts or node is None:
        return node
    if isinstance(node, list):
        return [_expand(state, item, parts, full) for item in node]
    if not isinstance(node, dict):
        raise InvalidRequestError(f"This property cannot be expanded ({full}).", param="expand")
    if node.get("object") == "list" and parts[0] == "data":
        node["data"] = [_expand(state, item, parts[1:], full) for item in node["data"]]
        return node
    key = parts[0]
    if key not in node:
        raise InvalidRequestError(f"This property cannot be expanded ({full}).", param="expand")
    value = node[key]
    if isinstance(value, str):
        target = state.find(value)
        if target is None:
            raise InvalidRequestError(f"This property cannot be expanded ({full}).", param="expand")
        value = render(state, target)
    elif isinstance(value, list):
        value = [render(state, t) if isinstance(v, str) and (t := state.find(v)) else v for v in value]
    node[key] = _expand(state, value, parts[1:], full)
    return node
