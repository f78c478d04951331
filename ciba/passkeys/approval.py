"""Approving one CIBA request with a passkey: options bound to the transaction, and their
verification (dynamic linking, ``linking``).

``approval_options`` derives the challenge from the request and the fields the approve call
will carry; ``verify_approval`` consumes the challenge, checks that it was issued to this user
for this request and this very transaction, verifies the assertion (``ceremony``) and returns
the ``assurance.Authentication`` the approval reached, with the evidence to store.
"""

from __future__ import annotations

import json
from typing import Any

from webauthn import generate_authentication_options, options_to_json
from webauthn.helpers.structs import UserVerificationRequirement

from .. import assurance
from ..conf import ciba_settings
from ..errors import InvalidAuthentication
from ..models import Passkey, WebAuthnChallenge
from . import challenges, linking
from .ceremony import find_passkey, verify_assertion
from .encoding import from_b64url
from .enrollment import descriptors
from .relying_party import relying_party
from .responses import parse_assertion

__all__ = ["approval_options", "verify_approval"]

NO_PASSKEY = "You have no passkey to approve with: enroll one first."


def usable_passkeys(user: Any) -> list[Passkey]:
    """``user``'s passkeys that may still sign (none suspected of being cloned)."""
    return list(Passkey.objects.filter(user_id=getattr(user, "pk", None), cloned_at__isnull=True))


def approval_options(
    http_request: Any,
    auth_request: Any,
    user: Any,
    *,
    scopes: Any = None,
    authorization_details: Any = None,
    displayed_details_hash: Any = None,
) -> dict[str, Any]:
    """``{"publicKey": PublicKeyCredentialRequestOptionsJSON, "transaction_digest": hex}`` for
    approving ``auth_request`` with these approve-body fields."""
    if auth_request.user_id != getattr(user, "pk", None):
        raise InvalidAuthentication("This request is for another account.")
    passkeys = usable_passkeys(user)
    if not passkeys:
        raise InvalidAuthentication(NO_PASSKEY)
    digest = linking.transaction_digest(
        auth_request,
        scopes=scopes,
        authorization_details=authorization_details,
        displayed_details_hash=displayed_details_hash,
    )
    rp = relying_party(http_request)
    row = challenges.issue(
        WebAuthnChallenge.Purpose.APPROVE,
        rp_id=rp.id,
        user=user,
        auth_request=auth_request,
        transaction_digest=digest.hex(),
        challenge=linking.approval_challenge(digest),
    )
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=from_b64url(row.challenge),
        timeout=ciba_settings.WEBAUTHN_CHALLENGE_SECONDS * 1000,
        allow_credentials=descriptors(passkeys),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return {"publicKey": json.loads(options_to_json(options)), "transaction_digest": digest.hex()}


def verify_approval(
    http_request: Any,
    auth_request: Any,
    user: Any,
    credential: Any,
    *,
    scopes: Any = None,
    authorization_details: Any = None,
    displayed_details_hash: Any = None,
) -> assurance.Authentication:
    """Verify an ``AuthenticationResponseJSON`` approving ``auth_request`` with these
    approve-body fields; the ``Authentication`` reached, or ``InvalidAuthentication``."""
    parsed = parse_assertion(credential)
    row = challenges.consume(parsed.client.challenge)
    if row.purpose != WebAuthnChallenge.Purpose.APPROVE:
        raise InvalidAuthentication("This passkey response was not made to approve a request.")
    if row.auth_request_id != auth_request.pk:
        raise InvalidAuthentication(
            "This passkey response is for another request: ask for a new challenge for this one."
        )
    if row.user_id != getattr(user, "pk", None):
        raise InvalidAuthentication("This passkey response was made for another account.")
    if challenges.expired(row):
        raise InvalidAuthentication("This passkey challenge expired: ask for a new one and try again.")
    digest = linking.transaction_digest(
        auth_request,
        scopes=scopes,
        authorization_details=authorization_details,
        displayed_details_hash=displayed_details_hash,
    )
    if digest.hex() != row.transaction_digest or linking.digest_of(from_b64url(row.challenge)) != digest:
        raise InvalidAuthentication(
            "This passkey signed a different transaction than the one being approved (other "
            "scopes or details): ask for a new challenge for what you approve."
        )
    passkey = find_passkey(parsed.credential_id, user)
    verified = verify_assertion(parsed, challenge=row, passkey=passkey, rp=relying_party(http_request))
    return assurance.Authentication(
        level=verified.level,
        amr=verified.amr,
        auth_time=verified.verified_at,
        evidence=verified.evidence(challenge=row.challenge, transaction_digest=row.transaction_digest),
    )
