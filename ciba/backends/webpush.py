"""Web Push notifier (``pip install "django-ciba[webpush]"``), with VAPID (RFC 8292)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from django.utils import timezone

from .. import outbound
from ..conf import ciba_settings
from ..errors import NotificationError
from .notifier_base import BaseNotifier, notification_payload, raise_for_status, withdrawal_payload


@dataclass(frozen=True)
class _Batch:
    """What every message about one request shares."""

    webpush: Any
    error: type[Exception]
    session: requests.Session
    key: Any
    data: bytes
    ttl: int
    urgency: str = "high"


#: How long a push service keeps a withdrawal for a phone that is offline: the prompt it
#: withdraws stays on the lock screen (``requireInteraction``) until then, whatever the
#: request's expiry, so the withdrawal outlives the request.
WITHDRAWAL_TTL = 24 * 3600


class WebPushNotifier(BaseNotifier):
    """Sends an encrypted (aes128gcm) push message to each of the user's ``webpush`` devices.

    A subscription's endpoint comes from the user's browser, so it is called through the
    hardened session of ``ciba.outbound`` (no private addresses, no redirects), like every
    other URL the server did not choose. ``WEBPUSH_VAPID_PRIVATE_KEY`` (PEM or base64url) and
    ``WEBPUSH_VAPID_SUBJECT`` (``mailto:`` or ``https:``) identify the site to push services.
    """

    device_kind = "webpush"
    required_settings = ("WEBPUSH_VAPID_PRIVATE_KEY", "WEBPUSH_VAPID_SUBJECT")
    required_modules = {"pywebpush": "django-ciba[webpush]"}

    @contextlib.contextmanager
    def prepare(self, *, auth_request: Any) -> Iterator[_Batch]:
        # UTF-8 as is: a payee's name in \u escapes would take up to six times the room of the
        # 4 KB a push service accepts.
        data = json.dumps(
            {"type": "ciba.authentication_requested", **notification_payload(auth_request)},
            ensure_ascii=False,
        ).encode()
        ttl = max(1, int((auth_request.expires_at - timezone.now()).total_seconds()))
        with self._batch(data, ttl, "high") as batch:
            yield batch

    @contextlib.contextmanager
    def prepare_withdrawal(self, *, auth_request: Any) -> Iterator[_Batch]:
        """A small data message: the service worker closes the notification tagged
        ``ciba-<auth_req_id>`` and tells open device pages to refresh. ``normal`` urgency: a
        prompt going away need not wake a sleeping phone, the next wake-up delivers it."""
        data = json.dumps(withdrawal_payload(auth_request), ensure_ascii=False).encode()
        with self._batch(data, WITHDRAWAL_TTL, "normal") as batch:
            yield batch

    @contextlib.contextmanager
    def _batch(self, data: bytes, ttl: int, urgency: str) -> Iterator[_Batch]:
        from pywebpush import WebPushException, webpush  # an optional extra

        key = self.vapid_private_key()
        if key.lstrip().startswith("-----BEGIN"):
            # pywebpush reads raw or DER keys from strings; PEM is what most tools write.
            from py_vapid import Vapid

            key = Vapid.from_pem(key.encode())
        with self.session() as session:
            yield _Batch(webpush, WebPushException, session, key, data, ttl, urgency)

    def send_one(self, *, auth_request: Any, target: Any, context: _Batch) -> None:
        what = f"webpush {target.public_id}"
        try:
            response = context.webpush(
                subscription_info=target.subscription,
                data=context.data,
                vapid_private_key=context.key,
                vapid_claims={"sub": self.vapid_subject()},
                ttl=context.ttl,
                headers={"urgency": context.urgency},
                timeout=ciba_settings.CALLBACK_READ_TIMEOUT,
                requests_session=context.session,
            )
        except context.error as exc:
            raise_for_status(what, getattr(exc.response, "status_code", 0) or 0)
        except requests.RequestException as exc:
            raise NotificationError(f"{what}: {type(exc).__name__}", transient=True) from None
        else:
            raise_for_status(what, response.status_code)

    def withdraw_one(self, *, auth_request: Any, target: Any, context: _Batch) -> None:
        self.send_one(auth_request=auth_request, target=target, context=context)

    def vapid_private_key(self) -> str:
        """The key that signs the VAPID JWT (``WEBPUSH_VAPID_PRIVATE_KEY``)."""
        return ciba_settings.WEBPUSH_VAPID_PRIVATE_KEY

    def vapid_subject(self) -> str:
        """Who push services contact about this site (``WEBPUSH_VAPID_SUBJECT``)."""
        return ciba_settings.WEBPUSH_VAPID_SUBJECT

    def session(self) -> requests.Session:
        return outbound.session()
