from __future__ import annotations

from django.urls import path

from portal.dev import mailbox

urlpatterns = [
    path("dev/mailbox/", mailbox.mailbox, name="dev_mailbox"),
    path("dev/mailbox/<str:name>/", mailbox.message, name="dev_mailbox_message"),
]
