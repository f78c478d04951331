"""A user's authentication device: where notifications about their CIBA requests go."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Device(models.Model):
    """One registered authentication device of a user (a phone app, a browser, a gateway handle).

    Devices are addressed in the API by ``public_id`` (random), never by the sequential primary
    key, so ids cannot be enumerated.
    """

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", _("Site push gateway (webhook)")
        FCM = "fcm", _("Firebase Cloud Messaging")
        WEBPUSH = "webpush", _("Web Push")
        APNS = "apns", _("Apple Push Notification service")

    id = models.BigAutoField(primary_key=True)
    public_id = models.UUIDField(_("device id"), default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_devices",
        verbose_name=_("user"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    token = models.TextField(
        _("push token"), blank=True, help_text=_("FCM or APNs token, or the gateway's handle.")
    )
    subscription = models.JSONField(_("Web Push subscription"), null=True, blank=True)
    label = models.CharField(_("label"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("last seen at"), null=True, blank=True)

    class Meta:
        verbose_name = _("CIBA authentication device")
        verbose_name_plural = _("CIBA authentication devices")
        indexes = [models.Index(fields=["user", "kind"], name="ciba_device_user_kind")]

    def __str__(self) -> str:
        return self.label or f"{self.get_kind_display()} device"
