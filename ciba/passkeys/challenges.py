"""WebAuthn challenges: issued for one ceremony, consumed by the first response that uses it.

A challenge is what makes a signature fresh: each is random (an approval's also carries the
transaction digest, ``linking``), stored as a ``WebAuthnChallenge`` row with what it is for
(purpose, user, request, transaction, RP ID) and an expiry, and deleted by the first response
that presents it. The delete is the arbiter across processes: two responses racing with the
same challenge both find the row, only one deletes it, the other is told it was already used.

The table cannot be filled from outside: each issue deletes rows that expired over an hour
ago (kept that long so a late response hears "expired", not "unknown"), keeps at most
``PER_USER`` rows per user (the oldest go first; a response to an evicted one is refused like
a used one), and at most ``ANONYMOUS`` sign-in rows without a user.

For a registration challenge the ``transaction_digest`` column holds the hex of the WebAuthn
``user.id`` (user handle) offered in the options: the attestation does not repeat it, and the
passkey must be stored with the handle its authenticator will return at sign-in.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ..conf import ciba_settings
from ..errors import InvalidAuthentication
from ..models import WebAuthnChallenge
from .encoding import b64url

__all__ = ["ANONYMOUS", "PER_USER", "consume", "issue"]

#: Outstanding challenges one user may hold (enough for many pending requests at once).
PER_USER = 32
#: Outstanding sign-in challenges without a user (the sign-in page is public).
ANONYMOUS = 1000
#: How long an expired challenge is kept, so its late response is told "expired".
KEEP_EXPIRED = timedelta(hours=1)

USED = (
    "This passkey response was already used, or its challenge is unknown or was replaced by a "
    "newer one: ask for a new challenge and try again."
)


def issue(
    purpose: str,
    *,
    rp_id: str,
    user: Any = None,
    auth_request: Any = None,
    transaction_digest: str = "",
    challenge: bytes | None = None,
) -> WebAuthnChallenge:
    """Store a new challenge (32 random bytes unless ``challenge`` is given) for ``purpose``."""
    now = timezone.now()
    WebAuthnChallenge.objects.filter(expires_at__lt=now - KEEP_EXPIRED).delete()
    row = WebAuthnChallenge.objects.create(
        challenge=b64url(challenge if challenge is not None else secrets.token_bytes(32)),
        purpose=purpose,
        user=user if getattr(user, "pk", None) is not None else None,
        auth_request=auth_request,
        transaction_digest=transaction_digest,
        rp_id=rp_id,
        expires_at=now + timedelta(seconds=ciba_settings.WEBAUTHN_CHALLENGE_SECONDS),
        created_at=now,
    )
    if row.user_id is not None:
        _keep_newest(WebAuthnChallenge.objects.filter(user_id=row.user_id), PER_USER)
    else:
        _keep_newest(WebAuthnChallenge.objects.filter(user__isnull=True), ANONYMOUS)
    return row


def consume(challenge: str) -> WebAuthnChallenge:
    """The stored challenge ``challenge`` (base64url), deleted now so no other response can use
    it; ``InvalidAuthentication`` when there is none (never issued, used, or evicted). The
    caller checks purpose, owner and expiry on the returned (already deleted) row."""
    row = WebAuthnChallenge.objects.filter(challenge=challenge).first()
    if row is None:
        raise InvalidAuthentication(USED)
    deleted, _ = WebAuthnChallenge.objects.filter(pk=row.pk).delete()
    if not deleted:
        raise InvalidAuthentication(USED)
    return row


def expired(row: WebAuthnChallenge) -> bool:
    return row.expires_at <= timezone.now()


def _keep_newest(queryset: Any, keep: int) -> None:
    boundary = list(queryset.order_by("-id").values_list("id", flat=True)[keep - 1 : keep])
    if boundary:
        queryset.filter(id__lt=boundary[0]).delete()
