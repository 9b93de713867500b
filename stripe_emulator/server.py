"""HTTP front of the emulator: Stripe's wire protocol on top of the route table."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import forms, params
from .errors import (
    ApiError,
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    RateLimitError,
    StripeError,
)
from .routing import ListResult, apply_expand, list_object, match, render
from .state import API_VERSION, RequestContext

if TYPE_CHECKING:
    from .app import Emulator

log = logging.getLogger("stripe_emulator")

# Responses that Stripe does not keep for an idempotency key: the request never ran.
_NOT_SAVED = {"parameter_unknown", "parameter_missing", "parameter_invalid_integer",
              "parameter_invalid_boolean", "parameter_invalid_string", "parameter_invalid_array",
              "parameter_invalid_object", "parameter_invalid_decimal"}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    # Open (keep-alive) connections are tracked so that stopping the emulator ends them too:
    # otherwise a client's pooled connection keeps being served after "Stripe went down".

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            open_now = list(self._connections)
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait
    # ~40 ms for a delayed ACK on every request.
    disable_nagle_algorithm = True
    server: Server
    server_version = "stripe-emulator"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # dispatch -----------------------------------------------------------------------

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_OPTIONS(self) -> None:
        self._send(204, b"", {})

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        emulator = self.server.emulator
        if url.path.startswith("/v1/"):
            self._api(method, url.path, url.query, raw)
            return
        extra = emulator.serve_other(method, url.path, url.query, raw, dict(self.headers))
        if extra is None:
            self._json(404, {"error": {"type": "invalid_request_error",
                                       "message": f"Unrecognized request URL ({method}: {url.path})."}}, {})
            return
        status, content_type, body = extra
        self._send(status, body, {"Content-Type": content_type})

    def _api(self, method: str, path: str, query: str, raw: bytes) -> None:
        emulator = self.server.emulator
        state = emulator.state
        request_id = state.new_id("req", 14)
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        idem_key = self.headers.get("Idempotency-Key")
        saving: tuple[str, str] | None = None
        emulator.serving(+1)
        try:
            fault = emulator.take_fault(method, path)
            if fault is not None and fault.get("status"):
                _apply_fault(fault)
            body_text = raw.decode() if method == "POST" else query
            data = forms.decode(body_text)
            key = _api_key(self.headers.get("Authorization"), data)
            version = self.headers.get("Stripe-Version")
            if version and version != API_VERSION:
                raise InvalidRequestError(
                    f"This emulator speaks API version {API_VERSION} only; the request asked for {version}.",
                    code="invalid_api_version",
                )
            found, args, known = match(method, path)
            if found is None:
                if known:
                    raise InvalidRequestError(
                        f"Unrecognized request URL ({method}: {path}).", status=404
                    )
                raise InvalidRequestError(
                    f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                    "or we can help at https://support.stripe.com/.", status=404,
                )
            if key.startswith("pk_") and not found.publishable:
                raise AuthenticationError(
                    "This API call cannot be made with a publishable API key. Please use a secret API key.",
                    code="secret_key_required", status=403,
                )
            expand = data.pop("expand", []) if isinstance(data.get("expand"), list) else []
            # Stripe.js sends the intent's client secret as its proof of access.
            client_secret = data.pop("client_secret", None) if key.startswith("pk_") else None
            # Raw card data is what Stripe.js sends from the card form; the server-side types
            # rightly don't declare it, so it is taken aside for publishable keys only.
            card_data = _take_card_data(data) if key.startswith("pk_") else None
            checked = params.validate(data, found.params)
            if card_data is not None:
                checked.setdefault("payment_method_data", {})["card"] = card_data
            if idem_key and method in ("POST", "DELETE"):
                fingerprint = hashlib.sha256(f"{method} {path} {raw!r}".encode()).hexdigest()
                replay = emulator.idempotent_lookup(key, idem_key, fingerprint)
                if replay is not None:
                    status, body, saved_headers = replay
                    self._send(status, body, {**saved_headers, "Idempotent-Replayed": "true",
                                              "Request-Id": request_id})
                    return
                saving = (key, idem_key)
                headers["Idempotency-Key"] = idem_key
            if fault is not None and fault.get("delay_seconds"):
                time.sleep(float(fault["delay_seconds"]))  # a slow Stripe, holding the idempotency key
            ctx = RequestContext(request_id=request_id, idempotency_key=idem_key,
                                 publishable=key.startswith("pk_"), client_secret=client_secret)
            with state.lock:
                state.set_context(ctx)
                try:
                    result = found.handler(state, checked, **args)
                    payload = _present(state, result, expand)
                finally:
                    state.set_context(None)
            status, body = 200, json.dumps(payload).encode()
            if saving:
                emulator.idempotent_save(saving, fingerprint, status, body, headers)
                saving = None
            self._send(status, body, {**headers, "Content-Type": "application/json"})
        except IdempotencyError as exc:
            self._json(exc.status, exc.body(request_id), headers)
        except StripeError as exc:
            body = json.dumps(exc.body(request_id)).encode()
            if saving and exc.code not in _NOT_SAVED and exc.status < 429:
                emulator.idempotent_save(saving, fingerprint, exc.status, body, headers)
            if exc.status == 429:
                headers["Stripe-Should-Retry"] = "true"
            self._send(exc.status, body, {**headers, "Content-Type": "application/json"})
        except Exception:  # a bug of ours: answer as Stripe would, keep the trace
            log.exception("emulator error on %s %s", method, path)
            self._json(500, ApiError("An unknown error occurred in the emulator.").body(request_id), headers)
        finally:
            if saving:
                emulator.idempotent_release(saving)
            emulator.serving(-1)

    # helpers -------------------------------------------------------------------------

    def _json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        self._send(status, json.dumps(payload).encode(), {**headers, "Content-Type": "application/json"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        # Stripe's API answers browsers too (Stripe.js calls it with a publishable key).
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type, Stripe-Version, Idempotency-Key")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _present(state: Any, result: Any, expand: list[str]) -> Any:
    if isinstance(result, ListResult):
        return list_object(state, result, expand)
    if isinstance(result, dict) and state.find(result.get("id")) is result:
        return apply_expand(state, render(state, result), expand)
    if isinstance(result, dict):
        return apply_expand(state, result, expand)
    return result


def _take_card_data(data: dict[str, Any]) -> dict[str, Any] | None:
    method_data = data.get("payment_method_data")
    if isinstance(method_data, dict) and isinstance(method_data.get("card"), dict):
        card: dict[str, Any] = method_data.pop("card")
        unknown = set(card) - {"number", "exp_month", "exp_year", "cvc"}
        if unknown:
            name = f"payment_method_data[card][{sorted(unknown)[0]}]"
            raise InvalidRequestError(f"Received unknown parameter: {name}", code="parameter_unknown", param=name)
        return card
    return None


def _api_key(authorization: str | None, data: dict[str, Any]) -> str:
    key = ""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(value).decode().split(":", 1)[0]
            except ValueError:
                key = ""
    if not key and isinstance(data.get("key"), str):
        key = data["key"]  # Stripe.js sends its publishable key in the body
    data.pop("key", None)
    if not key:
        raise AuthenticationError(
            "You did not provide an API key. You need to provide your API key in the Authorization "
            "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    if not (key.startswith("sk_test_") or key.startswith("rk_test_") or key.startswith("pk_test_")):
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
        raise AuthenticationError(f"Invalid API Key provided: {shown}", code="api_key_invalid")
    return key


def _apply_fault(fault: dict[str, Any]) -> None:
    status = int(fault.get("status", 0))
    if status == 429:
        raise RateLimitError(
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
    if status >= 500:
        raise ApiError("An unknown error occurred (injected by a test).", status=status)
