"""Signing in to the device page with a passkey (discoverable credentials, no username).

The options name no credential: the authenticator offers the user's passkeys for the RP ID
and returns the chosen one's ``userHandle``. The passkey is found by its credential ID, the
returned handle must be the one stored with it, the account must be active, and the user
verified; the result is the user and the ``assurance.Authentication`` reached.
"""

from __future__ import annotations

import json
from typing import Any

from webauthn import generate_authentication_options, options_to_json
from webauthn.helpers.structs import UserVerificationRequirement

from .. import assurance
from ..conf import ciba_settings
from ..errors import InvalidAuthentication
from ..models import WebAuthnChallenge
from . import challenges
from .ceremony import find_passkey, verify_assertion
from .encoding import from_b64url
from .relying_party import relying_party
from .responses import parse_assertion

__all__ = ["sign_in_options", "verify_sign_in"]


def sign_in_options(http_request: Any) -> dict[str, Any]:
    """``{"publicKey": PublicKeyCredentialRequestOptionsJSON}`` for a discoverable sign-in."""
    rp = relying_party(http_request)
    row = challenges.issue(WebAuthnChallenge.Purpose.SIGN_IN, rp_id=rp.id)
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=from_b64url(row.challenge),
        timeout=ciba_settings.WEBAUTHN_CHALLENGE_SECONDS * 1000,
        allow_credentials=[],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return {"publicKey": json.loads(options_to_json(options))}


def verify_sign_in(http_request: Any, credential: Any) -> tuple[Any, assurance.Authentication]:
    """Verify a sign-in ``AuthenticationResponseJSON``: ``(user, Authentication)``."""
    parsed = parse_assertion(credential)
    row = challenges.consume(parsed.client.challenge)
    if row.purpose != WebAuthnChallenge.Purpose.SIGN_IN:
        raise InvalidAuthentication("This passkey response was not made to sign in.")
    if challenges.expired(row):
        raise InvalidAuthentication("This passkey challenge expired: ask for a new one and try again.")
    passkey = find_passkey(parsed.credential_id)
    if parsed.user_handle is None:
        raise InvalidAuthentication("The passkey did not say which account it is for (no user handle).")
    verified = verify_assertion(parsed, challenge=row, passkey=passkey, rp=relying_party(http_request))
    user = passkey.user
    if not getattr(user, "is_active", False):  # said only to whoever holds the passkey
        raise InvalidAuthentication("This account is disabled: it cannot sign in.")
    return user, assurance.Authentication(
        level=verified.level,
        amr=verified.amr,
        auth_time=verified.verified_at,
        evidence=verified.evidence(challenge=row.challenge),
    )
