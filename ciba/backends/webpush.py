"""Web Push notifier (``pip install "django-ciba[webpush]"``), with VAPID (RFC 8292)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import requests
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from .. import http
from ..conf import ciba_settings
from .notifiers import BaseNotifier, NotificationError, notification_payload, raise_for_status


class WebPushNotifier(BaseNotifier):
    """Sends an encrypted (aes128gcm) push message to each of the user's ``webpush`` devices.

    A subscription's endpoint comes from the user's browser, so it is called through the
    hardened session of ``ciba.http`` (no private addresses, no redirects), like every other
    URL the server did not choose. ``WEBPUSH_VAPID_PRIVATE_KEY`` (PEM or base64url) and
    ``WEBPUSH_VAPID_SUBJECT`` (``mailto:`` or ``https:``) identify the site to push services.
    """

    def notify(self, request: Any, devices: Sequence[Any]) -> None:
        targets = [d for d in devices if d.kind == "webpush" and d.subscription]
        if not targets:
            return
        try:
            from pywebpush import WebPushException, webpush
        except ImportError:
            raise ImproperlyConfigured(
                'The Web Push notifier needs pywebpush: pip install "django-ciba[webpush]".'
            ) from None
        key, subject = ciba_settings.WEBPUSH_VAPID_PRIVATE_KEY, ciba_settings.WEBPUSH_VAPID_SUBJECT
        if not key or not subject:
            raise ImproperlyConfigured(
                'Set CIBA["WEBPUSH_VAPID_PRIVATE_KEY"] and CIBA["WEBPUSH_VAPID_SUBJECT"].'
            )
        if key.lstrip().startswith("-----BEGIN"):
            # pywebpush reads raw or DER keys from strings; PEM is what most tools write.
            from py_vapid import Vapid

            key = Vapid.from_pem(key.encode())
        data = json.dumps({"type": "ciba.authentication_requested", **notification_payload(request)})
        ttl = max(1, int((request.expires_at - timezone.now()).total_seconds()))
        failures = []
        with self.session() as session:
            for device in targets:
                try:
                    response = webpush(
                        subscription_info=device.subscription,
                        data=data,
                        vapid_private_key=key,
                        vapid_claims={"sub": subject},
                        ttl=ttl,
                        headers={"urgency": "high"},
                        timeout=ciba_settings.CALLBACK_READ_TIMEOUT,
                        requests_session=session,
                    )
                    raise_for_status(f"webpush {device.public_id}", response.status_code)
                except WebPushException as exc:
                    status = getattr(exc.response, "status_code", 0) or 0
                    transient = status in (408, 429) or status >= 500
                    failures.append(
                        NotificationError(f"webpush {device.public_id}: HTTP {status}", transient=transient)
                    )
                except requests.RequestException as exc:
                    failures.append(
                        NotificationError(f"webpush {device.public_id}: {type(exc).__name__}", transient=True)
                    )
                except NotificationError as exc:
                    failures.append(exc)
        if failures and len(failures) == len(targets):
            raise NotificationError(
                "; ".join(map(str, failures)), transient=any(f.transient for f in failures)
            )

    def session(self) -> requests.Session:
        return http.session()
