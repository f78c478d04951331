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
from .notifier_base import BaseNotifier, notification_payload, raise_for_status


@dataclass(frozen=True)
class _Batch:
    """What every message about one request shares."""

    webpush: Any
    error: type[Exception]
    session: requests.Session
    key: Any
    data: bytes
    ttl: int


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
        from pywebpush import WebPushException, webpush  # an optional extra

        key = ciba_settings.WEBPUSH_VAPID_PRIVATE_KEY
        if key.lstrip().startswith("-----BEGIN"):
            # pywebpush reads raw or DER keys from strings; PEM is what most tools write.
            from py_vapid import Vapid

            key = Vapid.from_pem(key.encode())
        # UTF-8 as is: a payee's name in \u escapes would take up to six times the room of the
        # 4 KB a push service accepts.
        data = json.dumps(
            {"type": "ciba.authentication_requested", **notification_payload(auth_request)},
            ensure_ascii=False,
        ).encode()
        ttl = max(1, int((auth_request.expires_at - timezone.now()).total_seconds()))
        with self.session() as session:
            yield _Batch(webpush, WebPushException, session, key, data, ttl)

    def send_one(self, *, auth_request: Any, target: Any, context: _Batch) -> None:
        what = f"webpush {target.public_id}"
        try:
            response = context.webpush(
                subscription_info=target.subscription,
                data=context.data,
                vapid_private_key=context.key,
                vapid_claims={"sub": ciba_settings.WEBPUSH_VAPID_SUBJECT},
                ttl=context.ttl,
                headers={"urgency": "high"},
                timeout=ciba_settings.CALLBACK_READ_TIMEOUT,
                requests_session=context.session,
            )
        except context.error as exc:
            raise_for_status(what, getattr(exc.response, "status_code", 0) or 0)
        except requests.RequestException as exc:
            raise NotificationError(f"{what}: {type(exc).__name__}", transient=True) from None
        else:
            raise_for_status(what, response.status_code)

    def session(self) -> requests.Session:
        return outbound.session()
