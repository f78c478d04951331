"""Firebase Cloud Messaging notifier (``pip install "django-ciba[fcm]"``)."""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from ..conf import ciba_settings
from ..errors import NotificationError
from .notifier_base import BaseNotifier, notification_payload, withdrawal_payload


@dataclass(frozen=True)
class _Batch:
    """What every message about one request shares."""

    messaging: Any
    exceptions: Any
    app: Any
    data: dict[str, str]
    ttl: int


#: How long FCM keeps a withdrawal for an offline phone (the prompt it withdraws may still
#: be shown after the request's expiry).
WITHDRAWAL_TTL = 24 * 3600


def _strings(payload: dict[str, Any]) -> dict[str, str]:
    """FCM data values must be strings: anything else travels as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for k, v in payload.items()}


class FcmNotifier(BaseNotifier):
    """Sends a high-priority FCM data message to each of the user's ``fcm`` devices.

    Uses the firebase-admin app named ``CIBA["FCM_APP_NAME"]``; when it does not exist yet it
    is initialised with Google's application default credentials (``GOOGLE_APPLICATION_CREDENTIALS``).
    The message lives no longer than the request. FCM data values must be strings, so the
    scope list travels as JSON.
    """

    device_kind = "fcm"
    required_modules = {"firebase_admin": "django-ciba[fcm]"}

    @contextlib.contextmanager
    def prepare(self, *, auth_request: Any) -> Iterator[_Batch]:
        import firebase_admin  # an optional extra: imported only where it is used
        from firebase_admin import exceptions, messaging

        data = _strings(notification_payload(auth_request))
        ttl = max(1, int((auth_request.expires_at - timezone.now()).total_seconds()))
        yield _Batch(messaging, exceptions, self._app(firebase_admin), data, ttl)

    def send_one(self, *, auth_request: Any, target: Any, context: _Batch) -> None:
        messaging = context.messaging
        message = _message(
            messaging,
            target.token,
            data={"type": "ciba.authentication_requested", **context.data},
            android=messaging.AndroidConfig(priority="high", ttl=context.ttl),
            apns=messaging.APNSConfig(headers={"apns-priority": "10", "apns-push-type": "alert"}),
        )
        self._deliver(message, target, context)

    @contextlib.contextmanager
    def prepare_withdrawal(self, *, auth_request: Any) -> Iterator[_Batch]:
        import firebase_admin
        from firebase_admin import exceptions, messaging

        data = _strings(withdrawal_payload(auth_request))
        yield _Batch(messaging, exceptions, self._app(firebase_admin), data, WITHDRAWAL_TTL)

    def withdraw_one(self, *, auth_request: Any, target: Any, context: _Batch) -> None:
        """A data message the app uses to remove the prompt: normal priority on Android and a
        background push on APNs (nothing to show, no need to wake the phone)."""
        messaging = context.messaging
        message = _message(
            messaging,
            target.token,
            data=context.data,
            android=messaging.AndroidConfig(priority="normal", ttl=context.ttl),
            apns=messaging.APNSConfig(
                headers={"apns-priority": "5", "apns-push-type": "background"},
                payload=messaging.APNSPayload(aps=messaging.Aps(content_available=True)),
            ),
        )
        self._deliver(message, target, context)

    @staticmethod
    def _deliver(message: Any, target: Any, context: _Batch) -> None:
        messaging, exceptions = context.messaging, context.exceptions
        try:
            messaging.send(message, app=context.app)
        except (
            messaging.UnregisteredError,
            messaging.SenderIdMismatchError,
            exceptions.InvalidArgumentError,
        ) as exc:
            raise NotificationError(
                f"fcm {target.public_id}: {type(exc).__name__}", transient=False
            ) from None
        except exceptions.FirebaseError as exc:
            raise NotificationError(f"fcm {target.public_id}: {type(exc).__name__}", transient=True) from None

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
