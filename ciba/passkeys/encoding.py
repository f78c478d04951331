"""base64url as WebAuthn's JSON forms carry bytes (unpadded), decoded strictly.

py_webauthn's ``base64url_to_bytes`` is lenient (Python's decoder skips characters outside
the alphabet), so what a device sends is checked against the alphabet first.
"""

from __future__ import annotations

import re

from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

__all__ = ["b64url", "from_b64url", "is_b64url"]

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    return bytes_to_base64url(data)


def is_b64url(text: object) -> bool:
    """Whether ``text`` is a string of the unpadded base64url alphabet, of a possible length."""
    return isinstance(text, str) and _ALPHABET.fullmatch(text) is not None and len(text) % 4 != 1


def from_b64url(text: str) -> bytes:
    """Decode unpadded base64url; ``ValueError`` on anything else."""
    if not is_b64url(text):
        raise ValueError("not base64url")
    return base64url_to_bytes(text)
