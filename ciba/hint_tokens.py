"""``login_hint_token``\\ s this server issues itself: the device page's "show my code".

A signed-in user asks for a code; the device page shows it as a QR code; a kiosk (a CIBA
client) scans it and sends it as its ``login_hint_token``. The token is a compact JWS:

- header ``{"alg": "HS256", "typ": "login-hint+jwt"}``: HMAC with a key derived from
  ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` still verify, so a key rotation does not void the
  codes on screen). Only this server ever verifies it, so a shared secret is enough, and HS256
  keeps the token short enough for a QR code a camera reads at arm's length.
- claims ``iss`` and ``aud`` (both this server's issuer), ``iat``, ``exp``
  (``LOGIN_HINT_TOKEN_LIFETIME``) and ``sub_id`` = ``{"format": "opaque", "id": <handle>}``
  (RFC 9493's opaque subject identifier): 16 random bytes, base64url. No username, ``sub``,
  e-mail or primary key: a code photographed over a shoulder names nobody.

Only the handle's SHA-256 is stored (``ciba.models.LoginHintHandle``), with its user and
expiry. Redeeming it is one conditional ``UPDATE`` (unused and unexpired → used now): of any
number of requests racing with the same code, in any number of processes, exactly one wins.

Interface (pinned):

- ``enabled() -> bool``: ``LOGIN_HINT_TOKEN_ISSUANCE``.
- ``issue(user, http_request) -> Issued``: a signed token for ``user`` carrying an opaque,
  single-use handle (``ciba.models.LoginHintHandle``), and when it expires.
- ``is_own(token, http_request) -> bool``: whether ``token`` claims to be one of ours (so the
  resolver routes it here instead of to the client's keys); cheap, no signature check.
- ``redeem(token, http_request) -> user``: verify (signature, issuer, audience, expiry), then
  consume the handle exactly once across processes; raises ``ExpiredLoginHintToken``,
  ``InvalidRequest`` or ``UnknownUserId`` as CIBA §13 names them.

The table cannot grow from one page left open all day: each issue deletes the user's expired
codes and keeps only their ``PER_USER`` newest; ``purge_expired`` (the expiry sweep) removes
the expired codes of users who never came back.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import router, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .conf import ciba_settings
from .endpoints import issuer
from .errors import AccessDenied, ExpiredLoginHintToken, InvalidRequest, UnknownUserId
from .jose import JoseError, header_of, unverified_claims, verify
from .models import LoginHintHandle

__all__ = [
    "ALG",
    "PER_USER",
    "TYP",
    "IssuanceDisabled",
    "Issued",
    "enabled",
    "is_own",
    "issue",
    "purge_expired",
    "redeem",
]

#: The JWS ``typ`` of our own tokens (RFC 8725 §3.11: explicit typing), what ``is_own`` looks for.
TYP = "login-hint+jwt"
ALG = "HS256"
#: The key-derivation salt: the signing key is ours alone, unrelated to any other use of SECRET_KEY.
_KEY_SALT = "ciba.hint_tokens.login-hint-token"
#: Seconds of clock difference tolerated between the processes of this deployment (we set both
#: ``exp`` and the clock that reads it, so no more than that).
OWN_LEEWAY = 2
#: Codes one user holds at once (several screens showing one each); a newer one evicts the oldest.
PER_USER = 3
#: ``PER_USER`` codes within this window is the most one user may mint: about one a second,
#: sustained, for the consent API and the device page alike.
RATE_WINDOW = timedelta(seconds=PER_USER)
#: Our tokens are about 250 characters; anything far longer is not one, and is not parsed.
MAX_TOKEN_LENGTH = 2048
_HANDLE_BYTES = 16

USED = "login_hint_token: already used; the user can show a new code."
UNKNOWN = (
    "login_hint_token: this code is no longer valid (a newer one replaced it); the user can show a new code."
)
EXPIRED = "The login_hint_token has expired; the user can show a new code."


class IssuanceDisabled(RuntimeError):
    """``issue`` was called while ``LOGIN_HINT_TOKEN_ISSUANCE`` is off (the views answer 404)."""


@dataclass(frozen=True)
class Issued:
    token: str
    expires_at: datetime
    expires_in: int


def enabled() -> bool:
    """Whether this server issues (and accepts) its own ``login_hint_token``\\ s."""
    return bool(ciba_settings.LOGIN_HINT_TOKEN_ISSUANCE)


def issue(user: AbstractBaseUser, http_request: Any) -> Issued:
    """A new single-use code for ``user``, signed for this server's issuer.

    Under a lock on the user's row (concurrent issues for one user are counted in turn): refuses
    with ``429 access_denied`` (``Retry-After``) when the user's ``PER_USER`` newest codes were
    all minted within ``RATE_WINDOW``; deletes the user's expired codes; stores the new handle's
    hash; keeps only the ``PER_USER`` newest (an evicted code is refused like an unknown one).
    """
    if not enabled():
        raise IssuanceDisabled(
            'This server does not issue login_hint_tokens: set CIBA["LOGIN_HINT_TOKEN_ISSUANCE"] = True.'
        )
    lifetime = int(ciba_settings.LOGIN_HINT_TOKEN_LIFETIME)
    handle = base64.urlsafe_b64encode(secrets.token_bytes(_HANDLE_BYTES)).rstrip(b"=").decode("ascii")
    now = timezone.now()
    iat = int(now.timestamp())
    exp = iat + lifetime
    db = router.db_for_write(LoginHintHandle)
    with transaction.atomic(using=db):
        User = get_user_model()
        list(User._default_manager.using(db).select_for_update().filter(pk=user.pk).values_list("pk"))
        mine = LoginHintHandle.objects.using(db).filter(user_id=user.pk)
        newest = list(mine.order_by("-created_at").values_list("created_at", flat=True)[:PER_USER])
        if len(newest) == PER_USER and newest[-1] > now - RATE_WINDOW:
            wait = max(1, math.ceil((newest[-1] + RATE_WINDOW - now).total_seconds()))
            raise AccessDenied(
                "Too many codes asked for at once; retry in a moment.",
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        mine.filter(expires_at__lte=now).delete()
        LoginHintHandle.objects.using(db).create(
            digest=_digest(handle),
            user_id=user.pk,
            created_at=now,
            # The instant redeem stops accepting it, the same rule as the token's exp check.
            expires_at=datetime.fromtimestamp(exp + OWN_LEEWAY, tz=UTC),
        )
        keep = list(mine.order_by("-created_at").values_list("pk", flat=True)[:PER_USER])
        mine.exclude(pk__in=keep).delete()
    our_issuer = issuer(http_request)
    claims = {
        "iss": our_issuer,
        "aud": our_issuer,
        "iat": iat,
        "exp": exp,
        "sub_id": {"format": "opaque", "id": handle},
    }
    token = jwt.encode(claims, _signing_keys()[0], algorithm=ALG, headers={"typ": TYP})
    return Issued(token=token, expires_at=datetime.fromtimestamp(exp, tz=UTC), expires_in=exp - iat)


def is_own(token: str, http_request: Any) -> bool:
    """Whether ``token`` claims to be ours: its header's ``typ`` is ``TYP``, or its (unverified)
    ``iss`` is this server's issuer (a client signs its own with ``iss`` = its client id). No
    signature is checked here: ``redeem`` does that, so a forgery that claims to be ours is
    refused by our key, never tried against a client's."""
    if not isinstance(token, str):
        return False
    try:
        if header_of(token).get("typ") == TYP:
            return True
        return unverified_claims(token).get("iss") == issuer(http_request)
    except JoseError:
        return False


def redeem(token: str, http_request: Any) -> AbstractBaseUser:
    """The active user a code of ours names, consuming the code.

    In this order, so that each refusal says only what was proved: the signature (HS256 only,
    our key or a fallback's, ``typ`` checked), ``iss`` and ``aud`` (exactly our issuer), then
    ``exp`` (``expired_login_hint_token``: only a genuine token earns it), then one conditional
    ``UPDATE`` that marks the handle used if it is unused and unexpired (``invalid_request``
    when another request used it first, or a newer code evicted it), then the user (inactive
    or gone: ``unknown_user_id``).
    """
    if not enabled():
        raise InvalidRequest("login_hint_token: this server does not accept codes of its own.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidRequest("login_hint_token: too long to be a code this server issued.")
    our_issuer = issuer(http_request)
    try:
        if header_of(token).get("typ") != TYP:
            raise JoseError(f"The JWT's typ must be {TYP}.")
        claims = verify(
            token,
            _signing_keys(),
            algorithms=[ALG],
            audience=[our_issuer],
            issuer=our_issuer,
            require=("iss", "aud", "iat", "exp", "sub_id"),
            verify_exp=False,
        )
    except JoseError as exc:
        raise InvalidRequest(f"login_hint_token: {exc}") from None
    if claims["aud"] != our_issuer:
        raise InvalidRequest("login_hint_token: aud must be exactly this server's issuer.")
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise InvalidRequest("login_hint_token: exp must be a number.")
    handle = _handle_of(claims["sub_id"])
    now = timezone.now()
    if exp + OWN_LEEWAY <= now.timestamp():
        raise ExpiredLoginHintToken(EXPIRED)
    digest = _digest(handle)
    db = router.db_for_write(LoginHintHandle)
    handles = LoginHintHandle.objects.using(db).filter(digest=digest)
    if not handles.filter(used_at__isnull=True, expires_at__gt=now).update(used_at=now):
        row = handles.values("used_at").first()
        if row is None:
            raise InvalidRequest(UNKNOWN)
        if row["used_at"] is not None:
            raise InvalidRequest(USED)
        raise ExpiredLoginHintToken(EXPIRED)  # the stored expiry passed in between (clock change)
    users = get_user_model()._default_manager.filter(ciba_login_hint_handles__digest=digest, is_active=True)
    user = users.first()
    if user is None:
        raise UnknownUserId("The login_hint_token does not identify a user of this server.")
    return user


def purge_expired(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Delete up to ``batch_size`` codes that can no longer be redeemed (past ``expires_at``);
    the number deleted. Run by the expiry sweep; each issue also clears its user's own."""
    now = now or timezone.now()
    expired = LoginHintHandle.objects.filter(expires_at__lte=now).order_by("expires_at")
    pks = list(expired.values_list("pk", flat=True)[:batch_size])
    if not pks:
        return 0
    deleted, _ = LoginHintHandle.objects.filter(pk__in=pks, expires_at__lte=now).delete()
    return deleted


def _handle_of(sub_id: Any) -> str:
    """The handle of an RFC 9493 opaque subject identifier, as we write it."""
    if not isinstance(sub_id, dict) or sub_id.get("format") != "opaque":
        raise InvalidRequest("login_hint_token: sub_id must be an opaque subject identifier (RFC 9493).")
    handle = sub_id.get("id")
    if not isinstance(handle, str) or not 16 <= len(handle) <= 64:
        raise InvalidRequest("login_hint_token: sub_id's id is not a code this server issued.")
    return handle


def _digest(handle: str) -> str:
    return hashlib.sha256(handle.encode("ascii", "replace")).hexdigest()


def _signing_keys() -> list[bytes]:
    """The HMAC keys, current first: derived from ``SECRET_KEY`` and each of
    ``SECRET_KEY_FALLBACKS`` (Django's rotation: sign with the first, accept all)."""
    secrets_in_order = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [
        salted_hmac(_KEY_SALT, "login_hint_token signing key", secret=secret, algorithm="sha256").digest()
        for secret in secrets_in_order
    ]
