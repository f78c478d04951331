"""This server's ID-token signing keys: the key set in the database (``SigningKey``), signing
with its active keys, the public JWK Set it publishes, and the rotation steps
``manage.py ciba_keys`` runs.

Each key type (RSA, EC P-256) has at most one ``active`` key, which signs; ``next`` keys are
published before they sign, so relying parties' JWKS caches know them by the time they do;
``retired`` keys stay published until ID tokens they signed are no longer presented, then
:func:`prune` deletes them. An RSA key signs RS256 and PS256, an EC key ES256. DOT's own RSA
key (``OIDC_RSA_PRIVATE_KEY``, and its inactive keys) stays published as well, and signs
RS256 while no RSA key of the database is active: it is the current RSA signer of a site
without database keys, so the first RSA key added there waits as ``next`` like any other.

Key material is read from the database once per process and kept for
:data:`LOCAL_CACHE_SECONDS`; every change made here bumps a version stamp in Django's cache
when it commits, and each use compares that stamp (one cache read), so with a cache every
process shares a change is seen at the next use. The bound: **a process signs with a key
that is no longer active for at most** ``LOCAL_CACHE_SECONDS`` **after the change commits**
— that long only when the stamp cannot tell it (a per-process cache such as local memory, an
evicted stamp, or a row changed outside this module). If the cache cannot be read, the keys
are read from the database on every use.

The private PEM is stored unencrypted in its row, as DOT's key sits in settings: whoever
reads the table or a backup of it can sign ID tokens (``docs/deployment.md``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.cache import cache
from django.db import IntegrityError, router, transaction
from django.utils import timezone
from jwcrypto.jwk import JWK
from oauth2_provider.settings import oauth2_settings

from . import profile
from .conf import ciba_settings
from .constants import FAPI_MIN_RSA_BITS
from .jose import server_keys
from .models import SigningKey

logger = logging.getLogger("ciba.signing")

#: How long a process trusts the keys it read without seeing a new version stamp.
LOCAL_CACHE_SECONDS = 30
#: Larger RSA keys take minutes to generate and slow every signature, for nothing.
MAX_RSA_BITS = 8192
VERSION_CACHE_KEY = "ciba:signing-keys:version"

RSA = SigningKey.KeyType.RSA.value
EC = SigningKey.KeyType.EC.value
_KTY_OF_ALG = {"RS256": RSA, "PS256": RSA, "ES256": EC}


class SigningKeyMissing(Exception):
    """No active key can produce the algorithm asked for (or no key is waiting to activate)."""


def kty_for_alg(alg: str) -> str:
    """The key type that signs ``alg``: ``"RSA"`` for RS256 and PS256, ``"EC"`` for ES256."""
    try:
        return _KTY_OF_ALG[alg]
    except (KeyError, TypeError):
        raise ValueError(f"{alg!r} is not an ID-token algorithm signed with this server's keys.") from None


# --- the key ring each process keeps -------------------------------------------------------


@dataclass(frozen=True)
class _ActiveKey:
    kid: str
    key: Any  # a cryptography private key


@dataclass(frozen=True)
class _KeyRing:
    version: str | None
    loaded_at: float
    active: dict[str, _ActiveKey] = field(default_factory=dict)
    jwks: tuple[dict[str, Any], ...] = ()


_ring: _KeyRing | None = None
# Only one thread of a process reads the table when the ring is stale; the others wait for it.
_load_lock = threading.Lock()


def _shared_version() -> str | None:
    """The version stamp in Django's cache (set if missing); ``None`` if the cache failed."""
    try:
        version = cache.get(VERSION_CACHE_KEY)
        if version is None:
            # A stamp the cache lost (or never had) must not match a ring read before: a
            # fresh one makes every process read the table once.
            cache.add(VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None)
            version = cache.get(VERSION_CACHE_KEY)
    except Exception:  # any cache backend's failure: fall back to the database, never fail
        logger.warning("The signing-key version stamp cannot be read; keys are read from the database.")
        return None
    return version


def _fresh(ring: _KeyRing | None, version: str | None) -> bool:
    return (
        ring is not None
        and version is not None
        and ring.version == version
        and time.monotonic() - ring.loaded_at < LOCAL_CACHE_SECONDS
    )


def _keyring() -> _KeyRing:
    global _ring
    # The stamp is read before the table: a change committed in between bumps the stamp
    # after this read, so the next use sees a mismatch and reads the table again.
    version = _shared_version()
    if _fresh(_ring, version):
        return _ring  # type: ignore[return-value]
    with _load_lock:
        if _fresh(_ring, version):
            return _ring  # type: ignore[return-value]
        ring = _load(version)
        _ring = ring
        return ring


_STATE_ORDER = {SigningKey.State.ACTIVE: 0, SigningKey.State.NEXT: 1, SigningKey.State.RETIRED: 2}


def _load(version: str | None) -> _KeyRing:
    rows = sorted(SigningKey.objects.all(), key=lambda row: (_STATE_ORDER.get(row.state, 3), -row.pk))
    active: dict[str, _ActiveKey] = {}
    jwks = []
    for row in rows:
        if row.state == SigningKey.State.ACTIVE:
            active[row.kty] = _ActiveKey(row.kid, _private_key(row.private_pem))
        jwks.append(_public_jwk(row.private_pem, row.kid, row.kty))
    return _KeyRing(version=version, loaded_at=time.monotonic(), active=active, jwks=tuple(jwks))


def _forget() -> None:
    global _ring
    _ring = None


def _bump() -> None:
    try:
        cache.set(VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # the change is committed; other processes see it within the local window
        logger.warning(
            "The signing-key version stamp cannot be bumped; other processes see the change within %s s.",
            LOCAL_CACHE_SECONDS,
        )
    _forget()


def _changed(using: str) -> None:
    """After a change: this process forgets its ring now, every process once it commits.

    The stamp is bumped only after commit: bumped before, another process could read the old
    rows under the new stamp and keep them for ``LOCAL_CACHE_SECONDS``.
    """
    _forget()
    transaction.on_commit(_bump, using=using)


@lru_cache(maxsize=16)
def _private_key(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode(), password=None)


@lru_cache(maxsize=16)
def _dot_key(pem: str) -> _ActiveKey:
    return _ActiveKey(JWK.from_pem(pem.encode()).thumbprint(), _private_key(pem))


def _public_jwk(pem: str, kid: str, kty: str) -> dict[str, Any]:
    data: dict[str, Any] = JWK.from_pem(pem.encode()).export_public(as_dict=True)
    data.update(kid=kid, use="sig")
    # An RSA key signs RS256 and PS256: a single "alg" would make relying parties refuse the
    # other. An EC P-256 key has only one.
    if kty == EC:
        data["alg"] = "ES256"
    return data


# --- signing and publishing ----------------------------------------------------------------


class _StrEncoder(json.JSONEncoder):
    """Claims DOT builds may hold values JSON lacks; DOT itself dumps them with ``str``."""

    def default(self, o: Any) -> Any:
        return str(o)


def sign_id_token(claims: dict[str, Any], alg: str) -> str:
    """``claims`` as a JWS with header ``{"typ": "JWT", "alg": alg, "kid": kid}``, signed with the
    active key of ``alg``'s key type; for RS256 without an active RSA key, DOT's
    ``OIDC_RSA_PRIVATE_KEY``. Raises :class:`SigningKeyMissing` when no key can sign ``alg``
    (``ValueError`` for an algorithm no key here signs, such as HS256)."""
    kty = kty_for_alg(alg)
    active = _keyring().active.get(kty)
    if active is None and alg == "RS256" and oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        active = _dot_key(oauth2_settings.OIDC_RSA_PRIVATE_KEY)
    if active is None:
        raise SigningKeyMissing(f"No active {kty} signing key can sign {alg}; run manage.py ciba_keys.")
    return jwt.encode(
        claims, active.key, algorithm=alg, headers={"typ": "JWT", "kid": active.kid}, json_encoder=_StrEncoder
    )


def published_jwks() -> list[dict[str, Any]]:
    """The public JWKs to publish: the database's active, next and retired keys, then DOT's.

    Every JWK has ``kid`` and ``use: sig``; RSA keys of the database carry no ``alg`` (they
    sign RS256 and PS256), EC keys ``alg: ES256``, DOT's keys ``alg: RS256``.
    """
    keys = [dict(jwk) for jwk in _keyring().jwks]
    kids = {jwk["kid"] for jwk in keys}
    # A key both in the table and in DOT's settings is published once, without the alg.
    keys.extend(jwk for jwk in server_keys() if jwk["kid"] not in kids)
    return keys


def verification_keys() -> list[dict[str, Any]]:
    """Public JWKs that verify ID tokens this server signed (for ``id_token_hint``)."""
    return published_jwks()


def id_token_algs_available() -> list[str]:
    """The ID-token algorithms that can be produced now, in the order RS256, PS256, ES256, HS256.

    HS256 is DOT's signing with the client's secret; FAPI does not allow it.
    """
    active = _keyring().active
    algs = []
    if oauth2_settings.OIDC_RSA_PRIVATE_KEY or RSA in active:
        algs.append("RS256")
    if RSA in active:
        algs.append("PS256")
    if EC in active:
        algs.append("ES256")
    if not profile.fapi():
        algs.append("HS256")
    return algs


# --- the life cycle ------------------------------------------------------------------------


def _normalised_kty(kty: str) -> str:
    value = {"RSA": RSA, "EC": EC}.get(str(kty).upper())
    if value is None:
        raise ValueError(f"Unknown key type {kty!r}: use RSA or EC.")
    return value


def generate_key(kty: str, *, bits: int = 2048) -> SigningKey:
    """Create and store a new key: RSA of ``bits`` (2048 to 8192) or EC P-256.

    Its ``kid`` is its RFC 7638 thumbprint. It is ``next`` (published, not signing), or
    ``active`` at once when nothing of its type signs yet (no active key of its type, nor the
    settings key: :func:`settings_key_signs`); only then has no relying party cached a key it
    replaces, so there is no overlap to wait for.
    """
    kty = _normalised_kty(kty)
    private: Any
    if kty == RSA:
        if not FAPI_MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise ValueError(f"RSA keys must have {FAPI_MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}.")
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = JWK.from_pem(pem.encode()).thumbprint()
    using = router.db_for_write(SigningKey)
    with transaction.atomic(using=using):
        key = SigningKey(kid=kid, kty=kty, private_pem=pem, state=SigningKey.State.NEXT)
        if not _has_active(kty, using) and not settings_key_signs(kty):
            try:
                with transaction.atomic(using=using):
                    return _saved_active(key, using)
            except IntegrityError:
                # Another process activated a key of this type meanwhile (one active per
                # type is a constraint): this one waits its turn.
                key = SigningKey(kid=kid, kty=kty, private_pem=pem, state=SigningKey.State.NEXT)
        key.save(using=using)
        _changed(using)
    return key


def _has_active(kty: str, using: str) -> bool:
    return SigningKey.objects.using(using).filter(kty=kty, state=SigningKey.State.ACTIVE).exists()


def settings_key_signs(kty: str) -> bool:
    """Whether DOT's settings key (``OIDC_RSA_PRIVATE_KEY``) is the key of type ``kty`` that
    signs while no database key of that type is active: RSA, when the setting is set. Relying
    parties hold its ``kid`` in their cached JWK Sets, so a database key taking over from it
    is published first, as from any other active key."""
    return _normalised_kty(kty) == RSA and bool(oauth2_settings.OIDC_RSA_PRIVATE_KEY)


def _saved_active(key: SigningKey, using: str) -> SigningKey:
    key.state, key.activated_at = SigningKey.State.ACTIVE, timezone.now()
    key.save(using=using)
    _changed(using)
    return key


def activate(kty: str) -> tuple[SigningKey, SigningKey | None]:
    """The rotation step: the newest ``next`` key of ``kty`` becomes active, the active one
    retired. Returns ``(activated, retired or None)``.

    One transaction, with the type's rows locked, so two concurrent rotations activate two
    different keys one after the other instead of both retiring the same one (and the
    database allows one active key per type in any case). Raises :class:`SigningKeyMissing`
    when no key of ``kty`` is waiting.
    """
    kty = _normalised_kty(kty)
    using = router.db_for_write(SigningKey)
    with transaction.atomic(using=using):
        rows = list(
            SigningKey.objects.using(using)
            .select_for_update()
            .filter(kty=kty, state__in=[SigningKey.State.NEXT, SigningKey.State.ACTIVE])
            .order_by("-created_at", "-pk")
        )
        new = next((row for row in rows if row.state == SigningKey.State.NEXT), None)
        if new is None:
            raise SigningKeyMissing(f"No {kty} key is waiting to be activated; add one first.")
        old = next((row for row in rows if row.state == SigningKey.State.ACTIVE), None)
        now = timezone.now()
        queryset = SigningKey.objects.using(using)
        if old is not None:
            # Retired first: the database allows only one active key per type at any moment.
            queryset.filter(pk=old.pk, state=SigningKey.State.ACTIVE).update(
                state=SigningKey.State.RETIRED, retired_at=now
            )
            old.state, old.retired_at = SigningKey.State.RETIRED, now
        queryset.filter(pk=new.pk, state=SigningKey.State.NEXT).update(
            state=SigningKey.State.ACTIVE, activated_at=now
        )
        new.state, new.activated_at = SigningKey.State.ACTIVE, now
        _changed(using)
    return new, old


def prune(now: datetime | None = None) -> int:
    """Delete the retired keys retired more than ``SIGNING_KEY_RETIRED_KEEP_SECONDS`` ago;
    returns how many. ID tokens they signed no longer verify afterwards (``id_token_hint``
    included), so the keep time must cover the tokens' lifetime and how long relying parties
    may present them."""
    cutoff = (now or timezone.now()) - timedelta(seconds=ciba_settings.SIGNING_KEY_RETIRED_KEEP_SECONDS)
    using = router.db_for_write(SigningKey)
    with transaction.atomic(using=using):
        deleted, _ = (
            SigningKey.objects.using(using)
            .filter(state=SigningKey.State.RETIRED, retired_at__lt=cutoff)
            .delete()
        )
        if deleted:
            _changed(using)
    return deleted
