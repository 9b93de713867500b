"""Stripe's error objects and the HTTP statuses it sends them with."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    status = 400
    type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        if status is not None:
            self.status = status

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://docs.stripe.com/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        error.update(self.extra)
        return {"error": error}


class InvalidRequestError(StripeError):
    pass


class NotFound(InvalidRequestError):
    status = 404

    def __init__(self, kind: str, ident: str, *, param: str = "id") -> None:
        super().__init__(f"No such {kind}: '{ident}'", code="resource_missing", param=param)


class CardError(StripeError):
    status = 402
    type = "card_error"


class AuthenticationError(StripeError):
    status = 401
    type = "invalid_request_error"


class IdempotencyError(StripeError):
    type = "idempotency_error"


class RateLimitError(StripeError):
    status = 429
    type = "invalid_request_error"


class ApiError(StripeError):
    status = 500
    type = "api_error"
