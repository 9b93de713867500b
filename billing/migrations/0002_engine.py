"""The engine reshaped: notifications become deliveries (a row per message, subject and channel),
changes gain dedupe keys, supersession and bounded retries, events a retry time.

Rows written before keep their meaning: each sent email confirmation also becomes an in-app line
(the dashboard's list now reads the in-app channel), stored message contexts and change results
take their new typed shapes, and client secrets copied into either are dropped (Stripe asks that
they are never stored).
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

CARD_FACTS = ("brand", "last4")


def _old_card_added(context, change_id):
    """The message and facts a card_added confirmation of before stands for now."""
    facts = {key: context.get(key, "") for key in CARD_FACTS}
    outcome = context.get("invoice_status") if context.get("invoice") else None
    if outcome is None:
        return "card_added", facts
    message = {
        "paid": "card_added_invoice_paid",
        "action_required": "card_added_payment_needs_approval",
    }.get(outcome, "card_added_payment_declined")
    return message, {
        **facts,
        "amount": int(context.get("invoice_amount") or 0),
        "currency": context.get("invoice_currency") or "",
        "decline_code": context.get("decline_code") or "",
        "change_id": str(change_id or ""),
    }


def _new_delivery(row):
    context = row.context or {}
    if row.message == "payment_received":
        return (
            "payment_received",
            f"invoice:{context.get('invoice', '')}",
            "paid",
            {
                "invoice": context.get("invoice", ""),
                "number": context.get("number", ""),
                "amount": int(context.get("amount") or 0),
                "currency": context.get("currency", ""),
            },
        )
    about, step = f"change:{row.change_id}", "applied"
    if row.message == "card_added":
        message, facts = _old_card_added(context, row.change_id)
        return message, about, step, facts
    facts = {key: context.get(key, "") for key in CARD_FACTS}
    if row.message == "card_default":
        facts["backup_cleared"] = False
    return row.message, about, step, facts


def _new_result(change):
    result = change.result or {}
    card = {key: result.get(key, "") for key in ("payment_method", *CARD_FACTS)}
    if change.kind == "card_add":
        payment = None
        if result.get("invoice"):
            outcome = result.get("invoice_status")
            payment = {
                "invoice": result["invoice"],
                "amount": int(result.get("invoice_amount") or 0),
                "currency": result.get("invoice_currency") or "",
                "outcome": outcome if outcome in ("paid", "action_required") else "declined",
                "decline_code": result.get("decline_code") or "",
            }
        return {
            **card,
            "subscriptions": result.get("subscriptions", []),
            "backup_cleared": False,
            "payment": payment,
        }
    if change.kind == "card_set_default":
        return {**card, "subscriptions": result.get("subscriptions", []), "backup_cleared": False}
    return card


def forwards(apps, schema_editor):
    Delivery = apps.get_model("billing", "Delivery")
    BillingChange = apps.get_model("billing", "BillingChange")
    for change in BillingChange.objects.exclude(result={}).iterator():
        if change.status == "applied":
            change.result = _new_result(change)
        else:
            change.decline_code = (change.result or {}).get("decline_code", "")
            if change.status == "action_required" and change.result.get("intent"):
                change.error_message = f"intent {change.result['intent']}"
            change.result = {}
        change.save(update_fields=["result", "decline_code", "error_message"])
    for row in Delivery.objects.filter(channel="email").iterator():
        message, about, step, facts = _new_delivery(row)
        row.message, row.about, row.context, row.category = message, about, facts, "confirmation"
        if message.startswith("card_added_payment"):
            row.category = "payment_critical"
        row.dedupe_key = f"{row.customer_id}:{about}:{step}:email"
        row.save(update_fields=["message", "about", "context", "category", "dedupe_key"])
        if row.status == "sent":
            Delivery.objects.get_or_create(
                dedupe_key=f"{row.customer_id}:{about}:{step}:in_app",
                defaults={
                    "customer_id": row.customer_id,
                    "message": message,
                    "category": row.category,
                    "channel": "in_app",
                    "about": about,
                    "context": facts,
                    "change_id": row.change_id,
                    "status": "sent",
                    "send_after": row.created_at,
                    "created_at": row.created_at,
                    "sent_at": row.sent_at,
                },
            )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [
        # ------------------------------------------------------------------ the outbox
        migrations.RenameModel("Notification", "Delivery"),
        migrations.RenameField("delivery", "template", "message"),
        migrations.AlterModelOptions(
            name="delivery", options={"ordering": ["-created_at"], "verbose_name_plural": "deliveries"}
        ),
        migrations.AddField(
            "delivery",
            "category",
            models.CharField(default="confirmation", max_length=30),
            preserve_default=False,
        ),
        migrations.AddField(
            "delivery", "about", models.CharField(default="", max_length=255), preserve_default=False
        ),
        migrations.AddField("delivery", "suppressed_reason", models.CharField(blank=True, max_length=40)),
        migrations.AddField(
            "delivery", "send_after", models.DateTimeField(default=django.utils.timezone.now)
        ),
        migrations.AlterField(
            "delivery",
            "channel",
            models.CharField(
                choices=[("email", "email"), ("sms", "SMS"), ("in_app", "in-app")], max_length=10
            ),
        ),
        migrations.AlterField(
            "delivery",
            "status",
            models.CharField(
                choices=[
                    ("pending", "pending"),
                    ("sent", "sent"),
                    ("failed", "failed"),
                    ("suppressed", "suppressed"),
                ],
                default="pending",
                max_length=20,
            ),
        ),
        migrations.AlterField(
            "delivery",
            "customer",
            models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="billing.billingcustomer",
            ),
        ),
        migrations.AddIndex(
            "delivery", models.Index(fields=["status", "send_after"], name="billing_del_status_466cab_idx")
        ),
        migrations.AddIndex(
            "delivery",
            models.Index(
                fields=["customer", "channel", "-created_at"], name="billing_del_custome_c5af02_idx"
            ),
        ),
        # ------------------------------------------------------------------ changes
        migrations.AddField("billingchange", "attempted_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("billingchange", "decline_code", models.CharField(blank=True, max_length=100)),
        migrations.AddField(
            "billingchange", "dedupe_key", models.CharField(blank=True, max_length=200, null=True)
        ),
        migrations.AddField(
            "billingchange",
            "superseded_by",
            models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="billing.billingchange",
            ),
        ),
        migrations.AlterField("billingchange", "kind", models.CharField(max_length=40)),
        migrations.AlterField(
            "billingchange",
            "status",
            models.CharField(
                choices=[
                    ("pending", "pending"),
                    ("applied", "applied"),
                    ("failed", "failed"),
                    ("action_required", "needs your approval"),
                    ("superseded", "replaced by a newer change"),
                ],
                default="pending",
                max_length=20,
            ),
        ),
        migrations.AddConstraint(
            "billingchange",
            models.UniqueConstraint(
                condition=models.Q(("dedupe_key__isnull", False)),
                fields=("customer", "kind", "dedupe_key"),
                name="one_change_per_dedupe_key",
            ),
        ),
        # ------------------------------------------------------------------ the customer
        migrations.AddField("billingcustomer", "opt_outs", models.JSONField(blank=True, default=list)),
        migrations.AddField("billingcustomer", "phone", models.CharField(blank=True, max_length=20)),
        migrations.AddField("billingcustomer", "time_zone", models.CharField(blank=True, max_length=64)),
        # ------------------------------------------------------------------ the inbox
        migrations.AddField("stripeevent", "next_attempt_at", models.DateTimeField(blank=True, null=True)),
        migrations.AlterField(
            "stripeevent",
            "status",
            models.CharField(
                choices=[
                    ("pending", "pending"),
                    ("retrying", "retrying"),
                    ("processed", "processed"),
                    ("ignored", "ignored"),
                    ("failed", "failed"),
                ],
                default="pending",
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            "stripeevent",
            models.Index(fields=["status", "next_attempt_at"], name="billing_str_status_a17930_idx"),
        ),
        # ------------------------------------------------------------------ rows written before
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
