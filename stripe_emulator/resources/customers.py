"""Customers and their tax ids."""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import InvalidRequestError
from ..routing import ListResult, paginate, route, where
from ..shapes import blank
from ..state import State
from .catalog import merge_metadata
from .events import emit, render_before

_SIMPLE = ("email", "name", "phone", "description", "preferred_locales", "tax_exempt", "balance")


def _address(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    return {k: value.get(k) or None for k in keys}


def _apply(state: State, customer: dict[str, Any], params: dict[str, Any]) -> None:
    for key in _SIMPLE:
        if key in params:
            customer[key] = params[key] if params[key] != "" else None
    if customer.get("preferred_locales") is None:
        customer["preferred_locales"] = []
    if "address" in params:
        customer["address"] = _address(params["address"])
    if "shipping" in params:
        shipping = params["shipping"]
        customer["shipping"] = None if shipping == "" else {
            "address": _address(shipping.get("address")), "name": shipping.get("name"),
            "phone": shipping.get("phone"),
        }
    if "metadata" in params:
        customer["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
    settings = params.get("invoice_settings")
    if settings and "default_payment_method" in settings:
        pm_id = settings["default_payment_method"] or None
        if pm_id is not None:
            pm = state.find(pm_id)
            if pm is None or pm.get("object") != "payment_method" or pm.get("customer") != customer["id"]:
                raise InvalidRequestError(
                    f"No such PaymentMethod: '{pm_id}'. The payment method must be attached to the customer.",
                    code="resource_missing", param="invoice_settings[default_payment_method]",
                )
        customer["invoice_settings"]["default_payment_method"] = pm_id
    if settings and "footer" in settings:
        customer["invoice_settings"]["footer"] = settings["footer"] or None


@route("POST", "/v1/customers", params="CustomerCreateParams")
def create_customer(state: State, params: dict[str, Any]) -> dict[str, Any]:
    clock = params.get("test_clock")
    if clock:
        state.get("test_helpers.test_clock", clock, param="test_clock", label="test clock")
    customer = blank("customer")
    customer.update(
        id=state.new_id("cus", 14),
        test_clock=clock,
        invoice_prefix=secrets.token_hex(4).upper(),
        next_invoice_sequence=1,
        balance=0,
        _seq=next(state.counters),
    )
    customer["created"] = state.now(clock)
    state.add(customer)
    pm_id = params.pop("payment_method", None)
    default_pm = (params.get("invoice_settings") or {}).get("default_payment_method")
    if pm_id:
        from .payment_methods import attach

        attached = attach(state, pm_id=pm_id, customer=customer, param="payment_method")
        if default_pm == pm_id:
            params["invoice_settings"]["default_payment_method"] = attached["id"]
    _apply(state, customer, params)
    for tax in params.get("tax_id_data") or []:
        _new_tax_id(state, customer, tax)
    emit(state, "customer.created", customer)
    return customer


@route("GET", "/v1/customers", params="CustomerListParams")
def list_customers(state: State, params: dict[str, Any]) -> ListResult:
    customers = state.all("customer")
    customers = where(customers, params, "email", "test_clock")
    return paginate(customers, params, "/v1/customers")


@route("GET", "/v1/customers/{id}", params="CustomerRetrieveParams")
def retrieve_customer(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    customer = state.objects.get(id)
    if customer is not None and customer.get("object") == "customer" and customer.get("_deleted"):
        return {"id": id, "object": "customer", "deleted": True}
    return state.get("customer", id)


@route("POST", "/v1/customers/{id}", params="CustomerUpdateParams")
def update_customer(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    customer = state.get("customer", id)
    before = render_before(state, customer)
    _apply(state, customer, params)
    if render_before(state, customer) != before:
        emit(state, "customer.updated", customer, previous=before)
    return customer


@route("DELETE", "/v1/customers/{id}", params="CustomerDeleteParams")
def delete_customer(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    from .. import billing

    customer = state.get("customer", id)
    for sub in state.all("subscription"):
        if sub["customer"] == id and sub["status"] not in ("canceled", "incomplete_expired"):
            billing.cancel_now(state, sub=sub, reason="cancellation_requested")
    emit(state, "customer.deleted", customer)
    state.delete(customer)
    return {"id": id, "object": "customer", "deleted": True}


@route("GET", "/v1/customers/{id}/payment_methods", params="CustomerListPaymentMethodsParams")
def list_customer_payment_methods(state: State, params: dict[str, Any], id: str) -> ListResult:
    state.get("customer", id)
    pms = where([p for p in state.all("payment_method") if p["customer"] == id], params, "type")
    return paginate(pms, params, f"/v1/customers/{id}/payment_methods")


@route("GET", "/v1/customers/{customer}/payment_methods/{id}", params="CustomerRetrievePaymentMethodParams")
def retrieve_customer_payment_method(state: State, params: dict[str, Any], customer: str, id: str) -> dict[str, Any]:
    state.get("customer", customer)
    pm = state.get("payment_method", id, label="PaymentMethod")
    if pm["customer"] != customer:
        raise InvalidRequestError(f"No such PaymentMethod: '{id}'", code="resource_missing", param="id", status=404)
    return pm


# tax ids ----------------------------------------------------------------------------


def _new_tax_id(state: State, customer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    tax = blank("tax_id")
    value = str(params["value"]).replace(" ", "")
    tax.update(
        id=state.new_id("txi"),
        created=state.now_for(customer),
        customer=customer["id"],
        type=params["type"],
        value=value,
        country=value[:2].upper() if params["type"] == "eu_vat" else None,
        verification={"status": "pending", "verified_address": None, "verified_name": None},
        _seq=next(state.counters),
    )
    state.add(tax)
    emit(state, "customer.tax_id.created", tax)
    return tax


@route("POST", "/v1/customers/{id}/tax_ids", params="CustomerCreateTaxIdParams")
def create_tax_id(state: State, params: dict[str, Any], id: str) -> dict[str, Any]:
    return _new_tax_id(state, state.get("customer", id), params)


@route("GET", "/v1/customers/{id}/tax_ids", params="CustomerListTaxIdsParams")
def list_tax_ids(state: State, params: dict[str, Any], id: str) -> ListResult:
    state.get("customer", id)
    return paginate([t for t in state.all("tax_id") if t["customer"] == id], params, f"/v1/customers/{id}/tax_ids")


@route("DELETE", "/v1/customers/{customer}/tax_ids/{id}", params="CustomerDeleteTaxIdParams")
def delete_tax_id(state: State, params: dict[str, Any], customer: str, id: str) -> dict[str, Any]:
    tax = state.get("tax_id", id, label="tax ID")
    if tax["customer"] != customer:
        raise InvalidRequestError(f"No such tax ID: '{id}'", code="resource_missing", status=404)
    emit(state, "customer.tax_id.deleted", tax)
    state.delete(tax)
    return {"id": id, "object": "tax_id", "deleted": True}
