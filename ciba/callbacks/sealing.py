"""Encrypting what must be kept but never read at rest: push token payloads awaiting delivery.

The key is derived from ``SECRET_KEY`` with HKDF (and from each of ``SECRET_KEY_FALLBACKS``,
so rotating ``SECRET_KEY`` the Django way keeps in-flight payloads readable). Fernet gives
authenticated encryption: a tampered payload fails to decrypt rather than yielding tokens.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"django-ciba callback payload v1"


def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _keys() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(s) for s in secrets])


def seal(data: dict[str, Any]) -> bytes:
    return _keys().encrypt(json.dumps(data, separators=(",", ":")).encode())


def unseal(token: bytes) -> dict[str, Any]:
    return json.loads(_keys().decrypt(bytes(token)))
