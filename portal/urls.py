from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from billing import views as billing_views
from portal.views import (
    cancels,
    cards,
    changes,
    dashboard,
    details,
    extensions,
    invoices,
    pauses,
    plans,
    preferences,
    product,
    recovery,
)

app_name = "portal"

portal_patterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("cards/", cards.card_list, name="cards"),
    path("cards/add/", cards.card_add, name="card_add"),
    path("cards/setup/", cards.card_setup, name="card_setup"),
    path("cards/confirm/", cards.card_confirm, name="card_confirm"),
    path("cards/return/", cards.card_return, name="card_return"),
    path("cards/<int:card_id>/default/", cards.card_default, name="card_default"),
    path("cards/<int:card_id>/backup/", cards.card_backup, name="card_backup"),
    path("cards/<int:card_id>/remove/", cards.card_remove, name="card_remove"),
    path("plan/", plans.plan, name="plan"),
    path("plan/preview/", plans.plan_preview, name="plan_preview"),
    path("plan/confirm/", plans.plan_confirm, name="plan_confirm"),
    path("plan/scheduled/cancel/", plans.plan_schedule_cancel, name="plan_schedule_cancel"),
    path("plan/start/", plans.plan_start, name="plan_start"),
    path("plan/start/confirm/", plans.plan_start_confirm, name="plan_start_confirm"),
    path("plan/start/return/", plans.plan_start_return, name="plan_start_return"),
    path("cancel/", cancels.cancel, name="cancel"),
    path("cancel/confirm/", cancels.cancel_confirm, name="cancel_confirm"),
    path("cancel/offer/", cancels.cancel_take_offer, name="cancel_take_offer"),
    path("cancel/pause/", cancels.cancel_take_pause, name="cancel_take_pause"),
    path("cancel/undo/", cancels.cancel_undo, name="cancel_undo"),
    path("invoices/", invoices.invoice_list, name="invoices"),
    path("invoices/<str:invoice_id>/pay/", invoices.invoice_pay, name="invoice_pay"),
    path("invoices/<str:invoice_id>/pay/confirm/", invoices.invoice_pay_confirm, name="invoice_pay_confirm"),
    path("invoices/<str:invoice_id>/pay/return/", invoices.invoice_pay_return, name="invoice_pay_return"),
    path("pause/", pauses.pause, name="pause"),
    path("pause/confirm/", pauses.pause_confirm, name="pause_confirm"),
    path("pause/resume/", pauses.resume_confirm, name="resume_confirm"),
    path("changes/<uuid:change_id>/", changes.change_detail, name="change"),
    path("changes/<uuid:change_id>/retry/", changes.change_retry, name="change_retry"),
    path("changes/<uuid:change_id>/approve/", changes.change_approve, name="change_approve"),
    path("changes/<uuid:change_id>/recheck/", changes.change_recheck, name="change_recheck"),
    path("language/", preferences.language, name="language"),
    path("details/", details.details, name="details"),
    path("fix/<int:case_id>/", recovery.fix, name="fix"),
    path("fix/<int:case_id>/pay/", recovery.fix_pay, name="fix_pay"),
    path("l/<str:token>/", recovery.link, name="link"),
    path("extend/", extensions.extend, name="extend"),
    path("messages/", recovery.message_list, name="messages"),
    path("messages/read/", recovery.messages_read, name="messages_read"),
    path("app/", product.workspace, name="workspace"),
]

urlpatterns = [
    path("", include((portal_patterns, "portal"))),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("billing/webhooks/stripe/", billing_views.stripe_webhook, name="stripe_webhook"),
    path("admin/", admin.site.urls),
]

if "portal.dev" in settings.INSTALLED_APPS:
    urlpatterns.append(path("", include("portal.dev.urls")))
