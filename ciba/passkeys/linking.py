"""Dynamic linking: the approval challenge is derived from the very transaction approved.

The challenge of an approval ceremony is 16 random bytes followed by the SHA-256 of the
transaction, in RFC 8785 canonical JSON::

    {"auth_req_id": ..., "binding_message": ... or null,
     "scope": the scopes approved, sorted and space-joined (as services.approve grants them:
              the requested ones when the device names none, openid always kept),
     "authorization_details": the (narrowed) details approved, or null (all, as requested),
     "displayed_details_hash": the hash of the display the user saw (required when the
                               request has authorization_details), or null}

The authenticator signs over ``clientDataJSON``, which carries the challenge, so the stored
assertion proves that this user's authenticator approved exactly this transaction: anyone
holding the passkey's public key can recompute the digest from the decision and re-verify.
It can be rebuilt from the decided request: ``granted_scope``, ``displayed_details_hash``
and, when the device narrowed them, ``approved_authorization_details`` are what it holds. The approve call
must carry the same ``scopes`` / ``authorization_details`` /
``displayed_details_hash`` as the options call: an assertion made for a payment of 100 does
not approve a payment of 50.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import rfc8785

from ..errors import InvalidAuthentication

__all__ = ["approval_challenge", "transaction", "transaction_digest"]

#: Random bytes before the digest: two options calls for the same transaction differ.
NONCE_BYTES = 16


def transaction(
    auth_request: Any,
    *,
    scopes: Any = None,
    authorization_details: Any = None,
    displayed_details_hash: Any = None,
) -> dict[str, Any]:
    """The transaction object an approval of ``auth_request`` with these approve-body fields
    signs; ``InvalidAuthentication`` when a field has the wrong shape."""
    if scopes is None:
        granted = list(auth_request.scopes)
    elif isinstance(scopes, list | tuple) and all(isinstance(scope, str) for scope in scopes):
        granted = list(dict.fromkeys(scopes))
    else:
        raise InvalidAuthentication("scopes must be an array of strings.")
    if "openid" not in granted:
        granted.insert(0, "openid")
    if displayed_details_hash is not None and not isinstance(displayed_details_hash, str):
        raise InvalidAuthentication("displayed_details_hash must be a string.")
    if displayed_details_hash is None and auth_request.authorization_details:
        # Without it the decision would record a display the signature does not cover.
        raise InvalidAuthentication(
            "Approving authorization details with a passkey needs displayed_details_hash: the "
            "signature must cover what you were shown."
        )
    return {
        "auth_req_id": auth_request.auth_req_id,
        "binding_message": auth_request.binding_message or None,
        "scope": " ".join(sorted(granted)),
        "authorization_details": authorization_details,
        "displayed_details_hash": displayed_details_hash,
    }


def transaction_digest(
    auth_request: Any,
    *,
    scopes: Any = None,
    authorization_details: Any = None,
    displayed_details_hash: Any = None,
) -> bytes:
    """SHA-256 (32 bytes) of the canonical JSON of ``transaction(...)``."""
    data = transaction(
        auth_request,
        scopes=scopes,
        authorization_details=authorization_details,
        displayed_details_hash=displayed_details_hash,
    )
    try:
        canonical = rfc8785.dumps(data)
    except (ValueError, TypeError, RecursionError) as exc:  # CanonicalizationError is a ValueError
        raise InvalidAuthentication(
            "authorization_details cannot be canonicalized (RFC 8785): numbers must be within "
            "the JSON interoperable range."
        ) from exc
    return hashlib.sha256(canonical).digest()


def approval_challenge(digest: bytes) -> bytes:
    """A fresh challenge bound to ``digest``: 16 random bytes, then the digest (48 bytes)."""
    return secrets.token_bytes(NONCE_BYTES) + digest


def digest_of(challenge: bytes) -> bytes:
    """The transaction digest an approval challenge carries."""
    return challenge[NONCE_BYTES:]
