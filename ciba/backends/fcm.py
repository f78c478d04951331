"""Firebase Cloud Messaging notifier (``pip install "django-ciba[fcm]"``)."""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from ..conf import ciba_settings
from .notifiers import BaseNotifier, NotificationError, notification_payload


class FcmNotifier(BaseNotifier):
    """Sends a high-priority FCM data message to each of the user's ``fcm`` devices.

    Uses the firebase-admin app named ``CIBA["FCM_APP_NAME"]``; when it does not exist yet it
    is initialised with Google's application default credentials (``GOOGLE_APPLICATION_CREDENTIALS``).
    The message lives no longer than the request. FCM data values must be strings, so the
    scope list travels as JSON.
    """

    def notify(self, request: Any, devices: Sequence[Any]) -> None:
        targets = [d for d in devices if d.kind == "fcm" and d.token]
        if not targets:
            return
        try:
            import firebase_admin
            from firebase_admin import exceptions, messaging
        except ImportError:
            raise ImproperlyConfigured(
                'The FCM notifier needs firebase-admin: pip install "django-ciba[fcm]".'
            ) from None
        app = self._app(firebase_admin)
        payload = notification_payload(request)
        data = {k: v if isinstance(v, str) else _json(v) for k, v in payload.items()}
        ttl = max(1, int((request.expires_at - timezone.now()).total_seconds()))
        failures = []
        for device in targets:
            message = _message(
                messaging,
                device.token,
                data={"type": "ciba.authentication_requested", **data},
                android=messaging.AndroidConfig(priority="high", ttl=ttl),
                apns=messaging.APNSConfig(headers={"apns-priority": "10", "apns-push-type": "alert"}),
            )
            try:
                messaging.send(message, app=app)
            except (
                messaging.UnregisteredError,
                messaging.SenderIdMismatchError,
                exceptions.InvalidArgumentError,
            ) as exc:
                failures.append(
                    NotificationError(f"fcm {device.public_id}: {type(exc).__name__}", transient=False)
                )
            except exceptions.FirebaseError as exc:
                failures.append(
                    NotificationError(f"fcm {device.public_id}: {type(exc).__name__}", transient=True)
                )
        if failures and len(failures) == len(targets):
            raise NotificationError(
                "; ".join(map(str, failures)), transient=any(f.transient for f in failures)
            )

    @staticmethod
    def _app(firebase_admin: Any) -> Any:
        name = ciba_settings.FCM_APP_NAME
        try:
            return firebase_admin.get_app(name)
        except ValueError:
            return firebase_admin.initialize_app(name=name)


#: A Firebase installation ID: 22 characters of base64url (registration tokens are far longer).
_FID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def _message(messaging: Any, value: str, **fields: Any) -> Any:
    """Address a device by installation ID (``fid``, firebase-admin 7.7+) or registration token.

    Registration tokens still work but are deprecated in firebase-admin 7.7; apps that
    register an installation ID get the current addressing.
    """
    if _FID.match(value) and "fid" in inspect.signature(messaging.Message).parameters:
        return messaging.Message(fid=value, **fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return messaging.Message(token=value, **fields)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
