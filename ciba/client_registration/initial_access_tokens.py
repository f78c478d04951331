"""Initial access tokens (RFC 7591 §3): issuing, finding, revoking and spending them.

A token is shown once, when it is issued; only its SHA-256 is stored
(``ciba.models.InitialAccessToken``). It carries 256 random bits, so a plain hash is as good as
a slow one, and a lookup by hash is safe from timing: an attacker who learns how far a guess's
hash matched a stored one has learnt nothing about any token.

A use is taken with one conditional ``UPDATE`` (``take_one_use``) inside the registration's
transaction, so two registrations racing for a token's last use cannot both win, and a token
revoked or expired meanwhile is not spent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from ..models import InitialAccessToken
from . import metadata

#: 32 random bytes: 256 bits, beyond guessing however many registrations are tried.
TOKEN_BYTES = 32


def token_hash(token: str) -> str:
    """The stored form of a token: the SHA-256 of its UTF-8 bytes, in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue(
    name: str,
    *,
    uses: int | None = 1,
    expires_in: int | None = 86400,
    allowed_metadata: dict[str, Any] | None = None,
    created_by: Any = None,
) -> tuple[str, InitialAccessToken]:
    """A new token for ``name`` (who it is for, and why) and its row; the token is returned
    only here. ``uses``: registrations it allows (``None``: any number until it expires);
    ``expires_in``: seconds (``None``: never); ``allowed_metadata``: metadata names mapped to
    the values a registration with it may use. ``ValueError`` for values that would make a
    token nobody could use, or one whose limits mean something else than written."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("An initial access token needs a name: who it is for, and why.")
    if uses is not None and (isinstance(uses, bool) or not isinstance(uses, int) or uses < 1):
        raise ValueError("uses must be a whole number of at least 1, or None for any number.")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1
    ):
        raise ValueError("expires_in must be a whole number of seconds, at least 1, or None for never.")
    allowed = normalised_allowed_metadata(allowed_metadata or {})
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = InitialAccessToken.objects.create(
        token_hash=token_hash(token),
        name=name.strip(),
        uses_left=uses,
        expires=timezone.now() + timedelta(seconds=expires_in) if expires_in is not None else None,
        allowed_metadata=allowed,
        created_by=created_by,
    )
    return token, row


def normalised_allowed_metadata(value: Any) -> dict[str, list[Any]]:
    """``allowed_metadata`` as it is stored: each metadata name (``metadata.MEMBERS``) mapped to
    a list of values (a single value becomes a list of one). ``ValueError`` for anything else,
    so a typo in the admin or the command cannot widen a token into one without constraints."""
    if not isinstance(value, dict):
        raise ValueError("allowed_metadata must map metadata names to lists of allowed values.")
    normalised: dict[str, list[Any]] = {}
    for key, allowed in value.items():
        if key not in metadata.BY_NAME:
            # A misspelt name would constrain nothing, silently.
            raise ValueError(f"allowed_metadata: {key!r} is not client metadata this server registers.")
        normalised[key] = list(allowed) if isinstance(allowed, (list, tuple)) else [allowed]
    return normalised


def find(token: str) -> InitialAccessToken | None:
    """The row of ``token`` whatever its state (``problem`` says whether it may be used), or
    ``None`` for a token never issued."""
    if not isinstance(token, str) or not token:
        return None
    digest = token_hash(token)
    row = InitialAccessToken.objects.filter(token_hash=digest).first()
    # The database compared the hash already; comparing again in constant time keeps the
    # answer independent of any collation or index quirk of the column.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


#: Why a token cannot be used, by its state (``state``).
PROBLEMS = {
    "revoked": "The initial access token has been revoked.",
    "expired": "The initial access token has expired.",
    "used up": "The initial access token has been used as many times as it allows.",
}


def state(row: InitialAccessToken) -> str:
    """``"usable"``, or why not: ``"revoked"``, ``"expired"`` or ``"used up"``."""
    if row.revoked is not None:
        return "revoked"
    if row.expires is not None and row.expires <= timezone.now():
        return "expired"
    if row.uses_left is not None and row.uses_left < 1:
        return "used up"
    return "usable"


def problem(row: InitialAccessToken) -> str:
    """Why ``row`` cannot be used now (a sentence for ``error_description``), or ``""``."""
    return PROBLEMS.get(state(row), "")


def usable() -> Q:
    """The rows that may be used now: the condition ``take_one_use`` updates under."""
    now = timezone.now()
    return (
        Q(revoked__isnull=True)
        & (Q(expires__isnull=True) | Q(expires__gt=now))
        & (Q(uses_left__isnull=True) | Q(uses_left__gt=0))
    )


def take_one_use(pk: int) -> bool:
    """Spend one use of token ``pk`` if it is still usable, in one conditional ``UPDATE``;
    whether it was. A token of unlimited uses stays unlimited (``NULL - 1`` is ``NULL``), but
    is still refused once revoked or expired. Call it in the transaction that saves the
    client: a registration that fails afterwards gives the use back by rolling back."""
    return bool(InitialAccessToken.objects.filter(usable(), pk=pk).update(uses_left=F("uses_left") - 1))


def revoke(pk: int) -> InitialAccessToken | None:
    """Revoke token ``pk`` at once (registrations already made stay); the row, or ``None`` if
    there is none. Revoking twice keeps the first time."""
    InitialAccessToken.objects.filter(pk=pk, revoked__isnull=True).update(revoked=timezone.now())
    return InitialAccessToken.objects.filter(pk=pk).first()
