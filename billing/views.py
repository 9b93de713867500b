"""The webhook endpoint: the only view in billing, because Stripe, not a customer, calls it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import webhooks
from billing.errors import WebhookRejected


@csrf_exempt  # Stripe can't send our CSRF token; the signature is the proof of origin.
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        webhooks.receive(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
    except WebhookRejected as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain")
    return HttpResponse(status=200)
