"""Decode Stripe's form encoding (``items[0][price]=x``, ``expand[]=y``) into nested data."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import InvalidRequestError

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def decode(body: str) -> dict[str, Any]:
    """Turn a form-encoded body or query string into dicts and lists.

    Lists arrive as ``key[0]`` (what stripe-python sends) or ``key[]`` (what Stripe.js and
    curl users send); both become Python lists. Indexed lists are built as dicts first and
    converted at the end, so indices may arrive in any order.
    """
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if not match:
            raise InvalidRequestError(f"Invalid parameter name: {raw_key}", param=raw_key)
        parts = [match.group(1), *_PART.findall(match.group(2))]
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = None if last else parts[i + 1]
            if part == "":
                # ``key[]`` appends: node is the list placeholder created by the parent.
                if not isinstance(node, _Appendable):
                    raise InvalidRequestError(f"Invalid array parameter: {raw_key}", param=raw_key)
                if last:
                    node.items.append(value)
                else:
                    child: Any = _Appendable() if nxt == "" else {}
                    node.items.append(child)
                    node = child
                continue
            if isinstance(node, _Appendable):
                raise InvalidRequestError(f"Invalid array parameter: {raw_key}", param=raw_key)
            if last:
                node[part] = value
            else:
                if part not in node or not isinstance(node[part], (dict, _Appendable)):
                    node[part] = _Appendable() if nxt == "" else {}
                node = node[part]
    finished: dict[str, Any] = _finish(root)
    return finished


class _Appendable:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Any] = []


def _finish(node: Any) -> Any:
    if isinstance(node, _Appendable):
        return [_finish(item) for item in node.items]
    if isinstance(node, dict):
        done = {k: _finish(v) for k, v in node.items()}
        if done and all(k.isdigit() for k in done):
            return [done[k] for k in sorted(done, key=int)]
        return done
    return node
