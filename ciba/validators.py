"""Validation of client-supplied key material."""

from __future__ import annotations

from typing import Any

import jwt
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# Members that only a private or symmetric JWK carries (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def validate_public_jwks(value: Any) -> None:
    """Accept only a JWK Set of usable *public* asymmetric keys.

    A registered ``jwks`` is published to everyone who can read the client row (admins,
    backups), so a private key pasted by mistake must be refused rather than stored, and a
    key PyJWT cannot load would only surface later as failed client authentication.
    """
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list) or not value["keys"]:
        raise ValidationError(_('jwks must be a JWK Set: {"keys": [ ... ]} with at least one key.'))
    errors = []
    for index, key in enumerate(value["keys"]):
        label = key.get("kid", index) if isinstance(key, dict) else index
        if not isinstance(key, dict):
            errors.append(_("Key %(key)s is not a JSON object.") % {"key": label})
            continue
        if key.get("kty") == "oct" or _PRIVATE_MEMBERS & set(key):
            errors.append(_("Key %(key)s contains private or symmetric key material.") % {"key": label})
            continue
        try:
            jwt.PyJWK(key)
        except jwt.PyJWTError as exc:
            errors.append(_("Key %(key)s cannot be used: %(reason)s") % {"key": label, "reason": exc})
    if errors:
        raise ValidationError(errors)
