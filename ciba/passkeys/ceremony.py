"""Verifying one assertion (approval or sign-in) against its challenge and passkey.

Shared by ``approval`` and ``sign_in`` once they have consumed the challenge and found the
passkey: origin, RP ID hash, the UP and UV flags, the signature (py_webauthn's
``verify_authentication_response``), then the sign count.

The sign count is checked here, after the signature, never before: an assertion that does
not verify must not be able to disable a passkey. A count that does not increase (when either
it or the stored one is non-zero) means another copy of the key signed meanwhile: the passkey
is marked ``cloned_at`` (refused from then on), a warning is logged without secrets, and
``passkey_clone_suspected`` is sent. The new count is stored with a conditional UPDATE (only
over a lower count), so of two assertions racing, a stale count never overwrites a newer one:
the one that loses is refused and may simply be tried again (it is not taken for a clone: a
device approving two requests at once can deliver its counts out of order).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone
from webauthn import verify_authentication_response
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, WebAuthnException

from .. import signals
from ..errors import InvalidAuthentication
from ..models import Passkey, WebAuthnChallenge
from . import flags
from .encoding import from_b64url
from .relying_party import RelyingParty
from .responses import ParsedAssertion

__all__ = ["VerifiedAssertion", "find_passkey", "verify_assertion"]

logger = logging.getLogger("ciba.passkeys")

UNKNOWN = "This passkey is unknown here: it is not enrolled for your account."
CLONED = (
    "This passkey is disabled: its sign count went backwards, so it was possibly cloned. "
    "Use another passkey, or remove this one and enroll it again."
)


@dataclass(frozen=True)
class VerifiedAssertion:
    """A verified assertion: the passkey (with its updated count) and what the response said."""

    passkey: Passkey
    parsed: ParsedAssertion
    rp_id: str
    verified_at: datetime

    @property
    def user_present(self) -> bool:
        return bool(self.parsed.authenticator_data.flags.up)

    @property
    def user_verified(self) -> bool:
        return bool(self.parsed.authenticator_data.flags.uv)

    @property
    def backup_eligible(self) -> bool:
        return bool(self.parsed.authenticator_data.flags.be)

    @property
    def backed_up(self) -> bool:
        return bool(self.parsed.authenticator_data.flags.bs)

    @property
    def sign_count(self) -> int:
        return int(self.parsed.authenticator_data.sign_count)

    @property
    def level(self) -> str:
        return flags.level(backup_eligible=self.backup_eligible or self.passkey.backup_eligible)

    @property
    def amr(self) -> tuple[str, ...]:
        return flags.amr(
            backup_eligible=self.backup_eligible or self.passkey.backup_eligible,
            user_present=self.user_present,
            user_verified=self.user_verified,
        )

    def evidence(self, *, challenge: str, transaction_digest: str = "") -> dict[str, Any]:
        """``ApprovalEvidence`` fields (all but ``auth_request``) for this assertion."""
        return {
            "level": self.level,
            "method": "passkey",
            "verified_at": self.verified_at,
            "passkey": self.passkey,
            "credential_id": self.parsed.credential_id,
            "challenge": challenge,
            "transaction_digest": transaction_digest,
            "authenticator_data": self.parsed.authenticator_data_b64,
            "client_data_json": self.parsed.client.text,
            "signature": self.parsed.signature_b64,
            "user_handle": self.parsed.user_handle or "",
            "origin": self.parsed.client.data.origin,
            "rp_id": self.rp_id,
            "sign_count": self.sign_count,
            "user_present": self.user_present,
            "user_verified": self.user_verified,
            "backup_eligible": self.backup_eligible,
            "backed_up": self.backed_up,
        }


def find_passkey(credential_id: str, user: Any = None) -> Passkey:
    """The enrolled, usable passkey with ``credential_id`` (of ``user`` when given)."""
    query = Q(credential_id=credential_id)
    if user is not None:
        query &= Q(user_id=getattr(user, "pk", None))
    passkey = Passkey.objects.select_related("user").filter(query).first()
    if passkey is None:
        raise InvalidAuthentication(UNKNOWN)
    if passkey.cloned_at is not None:
        raise InvalidAuthentication(CLONED)
    return passkey


def check_origin(origin: str, rp: RelyingParty, cross_origin: bool | None) -> None:
    if origin not in rp.origins:
        shown = re.sub(r"[^A-Za-z0-9:/.\[\]_-]", "?", origin[:100])
        raise InvalidAuthentication(
            f"The passkey response came from origin {shown!r}, which is not allowed here."
        )
    if cross_origin:
        raise InvalidAuthentication("The passkey response was made inside another site's frame: not allowed.")


def check_rp_id_hash(rp_id_hash: bytes, rp_id: str) -> None:
    if rp_id_hash != hashlib.sha256(rp_id.encode("utf-8")).digest():
        raise InvalidAuthentication(
            "The passkey response is for another relying party: its RP ID hash does not match."
        )


def check_user_flags(*, user_present: bool, user_verified: bool) -> None:
    if not user_present:
        raise InvalidAuthentication(
            "The authenticator did not confirm your presence: user presence is required."
        )
    if not user_verified:
        raise InvalidAuthentication(
            "The authenticator did not verify you (PIN, pattern or biometric): user verification is required."
        )


def verify_assertion(
    parsed: ParsedAssertion, *, challenge: WebAuthnChallenge, passkey: Passkey, rp: RelyingParty
) -> VerifiedAssertion:
    """Verify ``parsed`` for the consumed ``challenge`` and ``passkey``; update the passkey."""
    check_origin(parsed.client.data.origin, rp, parsed.client.data.cross_origin)
    data = parsed.authenticator_data
    check_rp_id_hash(data.rp_id_hash, challenge.rp_id)
    check_user_flags(user_present=bool(data.flags.up), user_verified=bool(data.flags.uv))
    if parsed.user_handle is not None and parsed.user_handle != passkey.user_handle:
        raise InvalidAuthentication(
            "This passkey answered for another account than the one it is enrolled for."
        )
    try:
        verify_authentication_response(
            credential=parsed.credential,
            expected_challenge=from_b64url(challenge.challenge),
            expected_rp_id=challenge.rp_id,
            expected_origin=parsed.client.data.origin,
            credential_public_key=bytes(passkey.public_key),
            # 0: the library's own count check is skipped; ours runs after the signature.
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except InvalidAuthenticationResponse as exc:
        if "signature" in str(exc):
            raise InvalidAuthentication("The passkey signature is not valid.") from None
        raise InvalidAuthentication("The passkey response could not be verified.") from None
    except (WebAuthnException, ValueError, TypeError) as exc:
        logger.warning("Passkey %s could not be used: %s", passkey.pk, type(exc).__name__)
        raise InvalidAuthentication(
            "This passkey's stored public key cannot be used: remove it and enroll it again."
        ) from None
    now = timezone.now()
    _count(passkey, data.sign_count, backed_up=bool(data.flags.bs), now=now)
    return VerifiedAssertion(passkey=passkey, parsed=parsed, rp_id=challenge.rp_id, verified_at=now)


def _count(passkey: Passkey, received: int, *, backed_up: bool, now: datetime) -> None:
    stored = passkey.sign_count
    if (received > 0 or stored > 0) and received <= stored:
        _suspect_clone(passkey, received, stored, now)
    over = Q(sign_count__lt=received) if received > 0 else Q(sign_count=0)
    updated = Passkey.objects.filter(over, pk=passkey.pk, cloned_at__isnull=True).update(
        sign_count=received, last_used_at=now, backed_up=backed_up
    )
    if not updated:
        if Passkey.objects.filter(pk=passkey.pk, cloned_at__isnull=False).exists():
            raise InvalidAuthentication(CLONED)
        raise InvalidAuthentication(
            "This passkey was used for another approval or sign-in at the same moment: try again."
        )
    passkey.sign_count = received
    passkey.last_used_at = now
    passkey.backed_up = backed_up


def _suspect_clone(passkey: Passkey, received: int, stored: int, now: datetime) -> None:
    if Passkey.objects.filter(pk=passkey.pk, cloned_at__isnull=True).update(cloned_at=now):
        passkey.cloned_at = now
        logger.warning(
            "Passkey %s of user %s: sign count %d did not increase over %d; possibly cloned, disabled.",
            passkey.pk,
            passkey.user_id,
            received,
            stored,
        )
        signals.passkey_clone_suspected.send(
            sender=Passkey, passkey=passkey, user=passkey.user, sign_count=received, stored_sign_count=stored
        )
    raise InvalidAuthentication(CLONED)
