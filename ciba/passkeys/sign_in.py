"""Signing in to the device page with a passkey (discoverable credentials, no username).

The options name no credential: the authenticator offers the user's passkeys for the RP ID
and returns the chosen one's ``userHandle``. The passkey is found by its credential ID, the
returned handle must be the one stored with it, the account must be active, and the user
verified; the result is the user and the ``assurance.Authentication`` reached.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from webauthn import generate_authentication_options, options_to_json
from webauthn.helpers.structs import UserVerificationRequirement

from .. import assurance
from ..client_auth.guard import client_address
from ..conf import ciba_settings
from ..errors import AccessDenied, InvalidAuthentication
from ..models import WebAuthnChallenge
from ..user_limits import count_in_window, parse_rate
from . import challenges
from .ceremony import find_passkey, verify_assertion
from .encoding import from_b64url
from .relying_party import relying_party
from .responses import parse_assertion

__all__ = ["sign_in_options", "verify_sign_in"]


def sign_in_options(http_request: Any) -> dict[str, Any]:
    """``{"publicKey": PublicKeyCredentialRequestOptionsJSON}`` for a discoverable sign-in.

    Anyone may ask (the user is not known yet), and each answer stores a challenge; the
    anonymous ones are capped in number (``challenges.ANONYMOUS``), so a flood from one address
    would evict everyone else's and make passkey sign-in fail for all. ``PASSKEY_SIGN_IN_RATE``
    per address stops that first (429 with ``Retry-After``)."""
    _spend_sign_in_rate(http_request)
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


def _spend_sign_in_rate(http_request: Any) -> None:
    """Count this sign-in against its address's ``PASSKEY_SIGN_IN_RATE`` (a window aligned to
    the clock, in the shared cache); past it, ``429 access_denied``. With the cache down the
    sign-in goes on: the challenges table bounds itself, and refusing every user's sign-in
    during a cache outage would be the larger harm."""
    rate = ciba_settings.PASSKEY_SIGN_IN_RATE
    if rate is None:
        return
    allowed, period = parse_rate(rate)
    now = time.time()
    address = hashlib.sha256(client_address(http_request).encode("utf-8", "replace")).hexdigest()[:32]
    count = count_in_window(
        f"ciba:passkey-sign-in:{address}:{period}:{int(now // period)}", period, counting="Passkey sign-in"
    )
    if count is None:  # the cache is down or misbehaves: see the docstring
        return
    if count > allowed:
        wait = max(1, int(period - now % period))
        raise AccessDenied(
            "Too many passkey sign-ins from this address; retry in a moment.",
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
