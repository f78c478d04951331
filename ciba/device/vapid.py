"""What the browser needs to subscribe to Web Push: the VAPID public key, when push is on.

A browser subscription is bound to the application server's public key (RFC 8292), and the
site configures only the private one (``WEBPUSH_VAPID_PRIVATE_KEY``), so the public key is
derived here. ``cryptography`` does it in every format the notifier accepts, which keeps the
page working without the optional pywebpush extra on the web servers.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..backends.webpush import WebPushNotifier
from ..conf import ciba_settings


class UnreadableVapidKey(ValueError):
    """``WEBPUSH_VAPID_PRIVATE_KEY`` is not a P-256 private key in a format we read."""


def webpush_enabled() -> bool:
    """Whether the site sends Web Push: the notifier is configured and has its private key."""
    try:
        notifiers = ciba_settings.NOTIFIER_CLASSES or []
    except ImportError:
        return False  # ciba.E007 reports the unimportable path
    configured = any(isinstance(cls, type) and issubclass(cls, WebPushNotifier) for cls in notifiers)
    return configured and bool(ciba_settings.WEBPUSH_VAPID_PRIVATE_KEY)


def vapid_public_key(private_key: str) -> str:
    """The uncompressed P-256 public point (65 bytes) of a VAPID private key, base64url.

    Reads PEM (PKCS#8 or SEC 1), or base64url of the raw 32-byte scalar or of DER, as
    pywebpush does. Raises ``UnreadableVapidKey`` for anything else.
    """
    key = _private_key(private_key.strip())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UnreadableVapidKey("VAPID keys are P-256 (prime256v1) elliptic-curve keys.")
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode("ascii")


def configured_public_key() -> str | None:
    """The public key the page hands to ``pushManager.subscribe``, or None when push is off.

    Raises ``UnreadableVapidKey`` when push is on but the private key cannot be read (the
    system check ``ciba_device.E001`` reports it at start-up).
    """
    if not webpush_enabled():
        return None
    return vapid_public_key(ciba_settings.WEBPUSH_VAPID_PRIVATE_KEY)


def _private_key(text: str) -> object:
    try:
        if text.startswith("-----BEGIN"):
            return serialization.load_pem_private_key(text.encode("ascii"), password=None)
        b64 = _urlsafe(text)
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        if len(raw) == 32:
            scalar = int.from_bytes(raw, "big")
            return ec.derive_private_key(scalar, ec.SECP256R1())
        return serialization.load_der_private_key(raw, password=None)
    except (ValueError, TypeError, UnicodeError, binascii.Error) as exc:
        raise UnreadableVapidKey(f"Not a PEM, DER or raw P-256 private key: {type(exc).__name__}.") from None


def _urlsafe(text: str) -> str:
    # Some tools print standard base64; both alphabets name the same bytes.
    return text.replace("+", "-").replace("/", "_").rstrip("=")
