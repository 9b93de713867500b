"""Check and convert request parameters against the pinned ``stripe`` package's own
parameter types (``stripe.params.*Params``), so that a parameter our code sends but
Stripe does not know is refused here with ``parameter_unknown``, as Stripe would."""

from __future__ import annotations

import decimal
import functools
import sys
import types
import typing
from typing import Any

import stripe.params
import stripe.params.test_helpers
from stripe._request_options import RequestOptions

from .errors import InvalidRequestError

_REQUEST_OPTIONS = frozenset(RequestOptions.__annotations__)
_NAMESPACES = (stripe.params, stripe.params.test_helpers)


def params_class(name: str) -> type:
    for namespace in _NAMESPACES:
        cls = getattr(namespace, name, None)
        if cls is not None:
            return typing.cast(type, cls)
    raise LookupError(f"stripe.params has no {name}")


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    namespace = vars(sys.modules[cls.__module__])
    hints: dict[str, Any] = {}
    for key, raw in cls.__annotations__.items():
        if key in _REQUEST_OPTIONS:
            continue
        # Each hint alone: RequestOptions' own hints name types this module lacks.
        holder = types.new_class("_Hint", (), {})
        holder.__annotations__ = {key: raw}
        hint = typing.get_type_hints(holder, globalns=namespace)[key]
        hints[key] = _strip_required(hint)
    required = frozenset(getattr(cls, "__required_keys__", ())) - _REQUEST_OPTIONS
    return hints, required


def _strip_required(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is not None and getattr(origin, "__name__", "") in ("NotRequired", "Required"):
        return typing.get_args(hint)[0]
    return hint


def _is_typed_dict(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__annotations__")


def validate(params: dict[str, Any], schema: str | None) -> dict[str, Any]:
    """Return ``params`` converted to the types the schema names; raise Stripe's error
    for an unknown or missing parameter or a value of the wrong type."""
    if schema is None:
        if params:
            first = next(iter(params))
            raise InvalidRequestError(
                f"Received unknown parameter: {first}", code="parameter_unknown", param=first
            )
        return {}
    return _object(params, params_class(schema), "")


def _name(path: str, key: str) -> str:
    return f"{path}[{key}]" if path else key


def _object(value: Any, cls: type, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"Invalid object{f' for {path}' if path else ''}", code="parameter_invalid_object",
            param=path or None,
        )
    fields, required = _fields(cls)
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _name(path, key)
        if key not in fields:
            raise InvalidRequestError(
                f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )
        out[key] = _coerce(item, fields[key], name)
    for key in sorted(required - value.keys()):
        name = _name(path, key)
        raise InvalidRequestError(
            f"Missing required param: {name}.", code="parameter_missing", param=name
        )
    return out


def _is_literal(hint: Any) -> bool:
    return bool(typing.get_origin(hint) == typing.Literal)


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        # Literal members first: ``''`` means "unset" and must not become ``int('')``.
        ordered = sorted(members, key=lambda m: 0 if _is_literal(m) else 1)
        last_error: InvalidRequestError | None = None
        for member in ordered:
            try:
                return _coerce(value, member, path)
            except InvalidRequestError as exc:
                # A nested unknown parameter is the real answer, not "wrong type".
                if exc.code in ("parameter_unknown", "parameter_missing"):
                    raise
                last_error = exc
        assert last_error is not None
        raise last_error
    if _is_literal(hint):
        if value in typing.get_args(hint):
            return value
        raise InvalidRequestError(
            f"Invalid {path}: must be one of {', '.join(map(str, typing.get_args(hint)))}",
            code="parameter_invalid_string", param=path,
        )
    if origin in (list, list):
        if not isinstance(value, list):
            raise InvalidRequestError(
                f"Invalid array for {path}", code="parameter_invalid_array", param=path
            )
        (item_hint,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item_hint, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, dict) or (origin is not None and "UntypedStripeObject" in str(origin)):
        if not isinstance(value, dict):
            raise InvalidRequestError(
                f"Invalid hash for {path}", code="parameter_invalid_object", param=path
            )
        return value
    if hint is Any or hint is object:
        return value
    if _is_typed_dict(hint):
        return _object(value, hint, path)
    if isinstance(value, (dict, list)):
        raise InvalidRequestError(
            f"Invalid value for {path}: expected a single value", code="parameter_invalid_string",
            param=path,
        )
    if hint is bool:
        if value in ("true", True):
            return True
        if value in ("false", False):
            return False
        raise InvalidRequestError(
            f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=path
        )
    if hint is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidRequestError(
                f"Invalid integer: {value}", code="parameter_invalid_integer", param=path
            ) from None
    if hint is float or hint is decimal.Decimal:
        try:
            return decimal.Decimal(str(value))
        except decimal.InvalidOperation:
            raise InvalidRequestError(
                f"Invalid decimal: {value}", code="parameter_invalid_decimal", param=path
            ) from None
    if hint is str:
        return str(value)
    if isinstance(hint, type) and hint.__name__ == "UntypedStripeObject":
        if not isinstance(value, dict):
            raise InvalidRequestError(
                f"Invalid hash for {path}", code="parameter_invalid_object", param=path
            )
        return value
    return value
