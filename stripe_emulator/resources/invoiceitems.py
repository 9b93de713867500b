"""Invoice items: one-off charges or credits that wait for the customer's next invoice."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequestError
from ..routing import ListResult, paginate, route, view, where
from ..shapes import blank
from ..state import State
from .catalog import merge_metadata
from .events import emit, render_before


@view("invoiceitem")
def show_invoice_item(state: State, item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


@route("POST", "/v1/invoiceitems", params="InvoiceItemCreateParams")
def create_invoice_item(state: State, params: dict[str, Any]) -> dict[str, Any]:
    customer = state.get("customer", params.get("customer"), param="customer")
    sub = state.get("subscription", params["subscription"], param="subscription") if params.get("subscription") else None
    quantity = int(params.get("quantity", 1))
    price_id = (params.get("pricing") or {}).get("price")
    if price_id:
        price = state.get("price", price_id, param="pricing[price]")
        amount, currency = price["unit_amount"] * quantity, price["currency"]
    elif "amount" in params:
        price, amount, currency = None, int(params["amount"]), params.get("currency", "").lower()
        if not currency:
            raise InvalidRequestError("Missing required param: currency.", code="parameter_missing", param="currency")
    else:
        raise InvalidRequestError("Missing required param: amount or pricing[price].", code="parameter_missing",
                                  param="amount")
    if params.get("invoice"):
        raise InvalidRequestError("The emulator adds invoice items to the next invoice only.", param="invoice")
    now = state.now_for(customer)
    period = params.get("period") or {"start": now, "end": now}
    item = blank("invoiceitem")
    item.update(
        id=state.new_id("ii"),
        amount=amount,
        net_amount=amount,
        currency=currency,
        customer=customer["id"],
        date=now,
        description=params.get("description"),
        metadata=params.get("metadata") or {},
        period={"start": int(period["start"]), "end": int(period["end"])},
        quantity=quantity,
        quantity_decimal=str(quantity),
        pricing={"type": "price_details", "price_details": {"price": price["id"], "product": price["product"]},
                 "unit_amount_decimal": str(price["unit_amount"])} if price else None,
        parent={"type": "subscription_details", "subscription_details": {"subscription": sub["id"],
                                                                          "subscription_item": None}}
        if sub else None,
        test_clock=customer["test_clock"],
        _subscription=sub["id"] if sub else None,
        _seq=next(state.counters),
    )
    state.add(item)
    emit(state, "invoiceitem.created", item)
    return item


@route("GET", "/v1/invoiceitems", params="InvoiceItemListParams")
def list_invoice_items(state: State, params: dict[str, Any]) -> ListResult:
    items = state.all("invoiceitem")
    items = where(items, params, "customer", "invoice")
    if "pending" in params:
        items = [i for i in items if (i["invoice"] is None) == params["pending"]]
    return paginate(items, params, "/v1/invoiceitems")


@route("GET", "/v1/invoiceitems/{id}", params="InvoiceItemRetrieveParams")
def retrieve_invoice_item(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return state.get("invoiceitem", id, label="invoiceitem")


@route("POST", "/v1/invoiceitems/{id}", params="InvoiceItemUpdateParams")
def update_invoice_item(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    item = state.get("invoiceitem", id, label="invoiceitem")
    before = render_before(state, item)
    if "description" in params:
        item["description"] = params["description"] or None
    if "metadata" in params:
        item["metadata"] = merge_metadata(item["metadata"], params["metadata"])
    emit(state, "invoiceitem.updated", item, previous=before)
    return item


@route("DELETE", "/v1/invoiceitems/{id}", params="InvoiceItemDeleteParams")
def delete_invoice_item(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    item = state.get("invoiceitem", id, label="invoiceitem")
    if item["invoice"] is not None:
        raise InvalidRequestError("You can only delete pending invoice items, not ones already on an invoice.")
    emit(state, "invoiceitem.deleted", item)
    state.delete(item)
    return {"id": id, "object": "invoiceitem", "deleted": True}
