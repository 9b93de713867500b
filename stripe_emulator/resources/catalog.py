"""Products and prices."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequestError
from ..routing import ListResult, paginate, route, where
from ..shapes import blank
from ..state import State

INTERVALS = ("day", "week", "month", "year")


def _apply_product(product: dict[str, Any], params: dict[str, Any]) -> None:
    for key in ("name", "description", "active", "url", "statement_descriptor", "unit_label", "images"):
        if key in params:
            product[key] = params[key] if params[key] != "" else None
    if "metadata" in params:
        product["metadata"] = _merge_metadata(product.get("metadata") or {}, params["metadata"])


def _merge_metadata(current: dict[str, Any], update: Any) -> dict[str, Any]:
    """Stripe's metadata update: keys merge, an empty value deletes a key, '' clears all."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


merge_metadata = _merge_metadata


@route("POST", "/v1/products", params="ProductCreateParams")
def create_product(state: State, params: dict[str, Any]) -> dict[str, Any]:
    ident = params.get("id") or state.new_id("prod", 14)
    if state.find(ident):
        raise InvalidRequestError(f"Product already exists: {ident}", code="resource_already_exists", param="id")
    now = state.now()
    product = blank("product")
    product.update(id=ident, created=now, updated=now, active=True, name=params["name"], _seq=next(state.counters))
    _apply_product(product, params)
    state.add(product)
    if "default_price_data" in params:
        price = create_price(state, {**params["default_price_data"], "product": ident})
        product["default_price"] = price["id"]
    from .events import emit

    emit(state, "product.created", product)
    return product


@route("GET", "/v1/products", params="ProductListParams")
def list_products(state: State, params: dict[str, Any]) -> ListResult:
    products = state.all("product")
    products = where(products, params, "active")
    if "ids" in params:
        products = [p for p in products if p["id"] in params["ids"]]
    return paginate(products, params, "/v1/products")


@route("GET", "/v1/products/{id}", params="ProductRetrieveParams")
def retrieve_product(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("product", id)


@route("POST", "/v1/products/{id}", params="ProductUpdateParams")
def update_product(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    from .events import emit, render_before

    product = state.get("product", id)
    before = render_before(state, product)
    _apply_product(product, params)
    if "default_price" in params:
        state.get("price", params["default_price"], param="default_price")
        product["default_price"] = params["default_price"]
    product["updated"] = state.now()
    emit(state, "product.updated", product, previous=before)
    return product


@route("DELETE", "/v1/products/{id}", params="ProductDeleteParams")
def delete_product(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    product = state.get("product", id)
    if any(p["product"] == id for p in state.all("price")):
        raise InvalidRequestError(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    state.delete(product)
    return {"id": id, "object": "product", "deleted": True}


# prices -----------------------------------------------------------------------------


@route("POST", "/v1/prices", params="PriceCreateParams")
def create_price(state: State, params: dict[str, Any]) -> dict[str, Any]:
    from .events import emit

    if "product" in params:
        product_id = params["product"]
        state.get("product", product_id, param="product")
    elif "product_data" in params:
        product_id = create_product(state, params["product_data"])["id"]
    else:
        raise InvalidRequestError("Missing required param: product.", code="parameter_missing", param="product")
    currency = params["currency"].lower()
    if "unit_amount" not in params and "unit_amount_decimal" not in params and "custom_unit_amount" not in params:
        raise InvalidRequestError(
            "Missing required param: unit_amount.", code="parameter_missing", param="unit_amount"
        )
    unit_amount = int(params.get("unit_amount", params.get("unit_amount_decimal", 0)))
    if unit_amount < 0:
        raise InvalidRequestError("Invalid non-negative integer", param="unit_amount")
    lookup_key = params.get("lookup_key")
    if lookup_key:
        holder = next((p for p in state.all("price") if p["lookup_key"] == lookup_key), None)
        if holder is not None:
            if not params.get("transfer_lookup_key"):
                raise InvalidRequestError(
                    f"A price (`{holder['id']}`) already uses that lookup key.", param="lookup_key"
                )
            holder["lookup_key"] = None
    price = blank("price")
    price.update(
        id=state.new_id("price"),
        created=state.now(),
        currency=currency,
        product=product_id,
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
        nickname=params.get("nickname"),
        lookup_key=lookup_key,
        active=params.get("active", True),
        metadata=params.get("metadata") or {},
        tax_behavior=params.get("tax_behavior", "unspecified"),
        _seq=next(state.counters),
    )
    recurring = params.get("recurring")
    if recurring:
        if recurring["interval"] not in INTERVALS:
            raise InvalidRequestError("Invalid recurring[interval]", param="recurring[interval]")
        count = int(recurring.get("interval_count", 1))
        if (recurring["interval"] == "year" and count > 3) or (recurring["interval"] == "month" and count > 36):
            raise InvalidRequestError(
                "The maximum billing frequency is three years.", param="recurring[interval_count]"
            )
        price["type"] = "recurring"
        price["recurring"] = {
            "interval": recurring["interval"],
            "interval_count": count,
            "meter": None,
            "trial_period_days": recurring.get("trial_period_days"),
            "usage_type": recurring.get("usage_type", "licensed"),
        }
    else:
        price["type"] = "one_time"
        price["recurring"] = None
    state.add(price)
    emit(state, "price.created", price)
    return price


@route("GET", "/v1/prices", params="PriceListParams")
def list_prices(state: State, params: dict[str, Any]) -> ListResult:
    prices = state.all("price")
    prices = where(prices, params, "active", "currency", "product", "type")
    if "lookup_keys" in params:
        prices = [p for p in prices if p["lookup_key"] in params["lookup_keys"]]
    if "recurring" in params:
        wanted = params["recurring"]
        prices = [
            p for p in prices if p["recurring"] and all(p["recurring"].get(k) == v for k, v in wanted.items()
                                                        if k in ("interval", "usage_type"))
        ]
    return paginate(prices, params, "/v1/prices")


@route("GET", "/v1/prices/{id}", params="PriceRetrieveParams")
def retrieve_price(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("price", id)


@route("POST", "/v1/prices/{id}", params="PriceUpdateParams")
def update_price(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    from .events import emit, render_before

    price = state.get("price", id)
    before = render_before(state, price)
    for key in ("active", "nickname", "tax_behavior"):
        if key in params:
            price[key] = params[key] if params[key] != "" else None
    if "lookup_key" in params:
        lookup_key = params["lookup_key"] or None
        holder = next((p for p in state.all("price") if lookup_key and p["lookup_key"] == lookup_key
                       and p is not price), None)
        if holder is not None:
            if not params.get("transfer_lookup_key"):
                raise InvalidRequestError(
                    f"A price (`{holder['id']}`) already uses that lookup key.", param="lookup_key"
                )
            holder["lookup_key"] = None
        price["lookup_key"] = lookup_key
    if "metadata" in params:
        price["metadata"] = _merge_metadata(price["metadata"], params["metadata"])
    emit(state, "price.updated", price, previous=before)
    return price


def plan_from_price(price: dict[str, Any]) -> dict[str, Any]:
    """The legacy ``plan`` that Stripe still embeds beside ``price`` in subscription items."""
    plan = blank("plan")
    recurring = price["recurring"] or {}
    plan.update(
        id=price["id"],
        active=price["active"],
        amount=price["unit_amount"],
        amount_decimal=price["unit_amount_decimal"],
        billing_scheme="per_unit",
        created=price["created"],
        currency=price["currency"],
        interval=recurring.get("interval"),
        interval_count=recurring.get("interval_count"),
        metadata=price["metadata"],
        nickname=price["nickname"],
        product=price["product"],
        trial_period_days=recurring.get("trial_period_days"),
        usage_type=recurring.get("usage_type", "licensed"),
    )
    return plan
