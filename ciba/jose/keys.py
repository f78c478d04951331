"""Key sets: a client's registered public keys, this server's own, and validating what a
client registers.

A ``jwks_uri`` is fetched inside the request that needs it (a backchannel or token request),
so the fetch has its own short deadline (``JWKS_FETCH_TIMEOUT``) and a failure is remembered
for ``JWKS_FAILURE_CACHE_SECONDS``: otherwise anyone could hold a web worker per request by
sending assertions that name a client whose ``jwks_uri`` does not answer.

Fetched key sets (and failures) live in Django's cache, shared by every process. When the
cache is unreachable they live in this process for the same time (``_local``), so an
outage neither fails these clients nor makes every request fetch the client's URL again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from typing import Any

import jwt
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.utils import jwk_from_pem

from .. import profile
from ..conf import ciba_settings
from ..constants import FAPI_EC_CURVES, FAPI_MIN_RSA_BITS, JWS_KEY_TYPES
from ..outbound import OutboundError, get_json
from .jws import JoseError, key_fits, load_key

JWKS_CACHE_SECONDS = 300
#: Key sets kept per process while the cache is unreachable (client ids are few).
LOCAL_MAX_ENTRIES = 256

logger = logging.getLogger("ciba.jose")

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
            _load(key)
        except jwt.PyJWTError as exc:
            errors.append(_("Key %(key)s cannot be used: %(reason)s") % {"key": label, "reason": exc})
    if errors:
        raise ValidationError(errors)


def _load(jwk: dict[str, Any]) -> Any:
    """Load ``jwk`` as the client's JWTs will be verified with it: for its own ``alg``, or the
    first algorithm of its type and curve (``jws.load_key`` knows RFC 9864's ``Ed25519`` and
    ``Ed448``, and loads Ed448 keys, which PyJWT cannot without an algorithm). A key of no
    algorithm this server verifies (ES256K, say) is loaded as PyJWT can."""
    declared = jwk.get("alg")
    if declared is None:
        declared = next((alg for alg in JWS_KEY_TYPES if key_fits(jwk, alg)), None)
    if declared in JWS_KEY_TYPES:
        return load_key(jwk, declared)
    return jwt.PyJWK(jwk)


def strong_enough(jwk: Any) -> bool:
    """FAPI 1 Advanced §5.2.2-5/6: RSA keys of at least 2048 bits, EC keys on P-256 (the curve
    of ES256; OKP keys sign EdDSA, which FAPI does not allow)."""
    if not isinstance(jwk, dict):
        return False
    if jwk.get("kty") == "RSA":
        n = jwk.get("n")
        if not isinstance(n, str):
            return False
        padded = n + "=" * (-len(n) % 4)
        try:
            modulus = int.from_bytes(base64.urlsafe_b64decode(padded), "big")
        except (ValueError, binascii.Error):
            return False
        return modulus.bit_length() >= FAPI_MIN_RSA_BITS
    return jwk.get("kty") == "EC" and jwk.get("crv") in FAPI_EC_CURVES


def weak_keys(document: Any) -> str:
    """The ``kid``s (or positions) of the keys in a JWK Set that FAPI finds too weak, joined."""
    entries = document.get("keys") if isinstance(document, dict) else None
    return ", ".join(
        str(entry.get("kid", index) if isinstance(entry, dict) else index)
        for index, entry in enumerate(entries if isinstance(entries, list) else [])
        if not strong_enough(entry)
    )


_JWKS_URI_FAILED = "The client's jwks_uri could not be fetched."


def client_keys(client: Any, *, kid: Any = None) -> list[dict[str, Any]]:
    """The client's public signing JWKs, from ``jwks`` or (cached for 5 minutes) its ``jwks_uri``.

    Keys stay JWK dicts until a JWT is verified: only then is the algorithm known, and an
    RSA key may verify RS256 as well as PS256 unless the JWK itself declares an ``alg``.
    A failed fetch is remembered for ``JWKS_FAILURE_CACHE_SECONDS``; until then the key set
    is refused at once, without calling the URL again.

    ``kid`` is the key the JWT to verify names: a client that rotated its keys publishes the
    new one before signing with it, so a cached set without that ``kid`` is fetched again
    rather than failing every JWT until the cache expires. Anyone can send a JWT naming a
    made-up ``kid``, so that refetch happens at most once per ``JWKS_REFETCH_MIN_INTERVAL``
    seconds per client, counted in the shared cache (every process agrees) from the last
    fetch of the set.
    """
    if client.jwks:
        document = client.jwks
    elif client.jwks_uri:
        document = _fetched_key_set(client, kid)
    else:
        raise JoseError("The client has registered no keys (jwks or jwks_uri).")
    entries = document.get("keys") if isinstance(document, dict) else None
    keys = [
        entry
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and entry.get("use", "sig") == "sig" and entry.get("kty") != "oct"
    ]
    if profile.fapi():
        keys = [entry for entry in keys if strong_enough(entry)]
    if not keys:
        raise JoseError("The client's key set holds no usable signing key.")
    return keys


def _fetched_key_set(client: Any, kid: Any) -> Any:
    """The document behind the client's ``jwks_uri``: cached, fetched, or fetched again for a
    ``kid`` the cached one lacks (``client_keys``)."""
    # The URL is client input of any length (cache keys are limited): it is hashed.
    url_hash = hashlib.sha256(client.jwks_uri.encode()).hexdigest()[:32]
    cache_key = f"ciba:jwks:{client.pk}:{url_hash}"
    failed_key = f"ciba:jwks-failed:{client.pk}:{url_hash}"
    refetch_key = f"ciba:jwks-fetched:{client.pk}:{url_hash}"
    document = _cache_get(cache_key)
    if document is not None:
        if (
            kid is None
            or _names_kid(document, kid)
            or not _cache_add(refetch_key, ciba_settings.JWKS_REFETCH_MIN_INTERVAL)
        ):
            return document
        try:
            fresh = get_json(client.jwks_uri, total_timeout=ciba_settings.JWKS_FETCH_TIMEOUT)
        except OutboundError:
            # The cached set still verifies the keys it holds: keep it, and try again no sooner
            # than the interval (the marker just added says so to every process).
            logger.warning(
                "The jwks_uri of client %s could not be fetched again for an unknown kid; "
                "its cached keys stay.",
                client.client_id,
            )
            return document
        _cache_set(cache_key, fresh, JWKS_CACHE_SECONDS)
        return fresh
    if _cache_get(failed_key):
        raise JoseError(_JWKS_URI_FAILED)
    try:
        document = get_json(client.jwks_uri, total_timeout=ciba_settings.JWKS_FETCH_TIMEOUT)
    except OutboundError:
        # Not the reason: it holds the URL, whose query may be a secret.
        logger.warning(
            "The jwks_uri of client %s could not be fetched; its JWTs are refused for %s s.",
            client.client_id,
            ciba_settings.JWKS_FAILURE_CACHE_SECONDS,
        )
        _cache_set(failed_key, True, ciba_settings.JWKS_FAILURE_CACHE_SECONDS)
        raise JoseError(_JWKS_URI_FAILED) from None
    _cache_set(cache_key, document, JWKS_CACHE_SECONDS)
    # A set just fetched is as fresh as it gets: an unknown kid waits for the interval too.
    _cache_set(refetch_key, True, ciba_settings.JWKS_REFETCH_MIN_INTERVAL)
    return document


def _names_kid(document: Any, kid: Any) -> bool:
    entries = document.get("keys") if isinstance(document, dict) else None
    return any(
        isinstance(entry, dict) and entry.get("kid") == kid
        for entry in (entries if isinstance(entries, list) else [])
    )


def server_keys() -> list[dict[str, Any]]:
    """Public halves of this server's ID-token signing keys (active and inactive)."""
    keys = []
    pems = [oauth2_settings.OIDC_RSA_PRIVATE_KEY, *oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE]
    for pem in filter(None, pems):
        key = jwk_from_pem(pem)
        data = json.loads(key.export_public())
        data.update({"kid": key.thumbprint(), "alg": "RS256", "use": "sig"})
        keys.append(data)
    return keys


# What the cache would hold, while it cannot: key → (value, monotonic expiry).
_local: dict[str, tuple[Any, float]] = {}


def _cache_get(key: str) -> Any:
    try:
        value = cache.get(key)
    except Exception:  # noqa: BLE001 - any cache backend's failure: this process remembers
        entry = _local.get(key)
        return entry[0] if entry is not None and entry[1] > time.monotonic() else None
    return value


def _cache_add(key: str, seconds: int) -> bool:
    """Set ``key`` unless it is set (atomically in the shared cache); whether this call set it."""
    try:
        return bool(cache.add(key, True, seconds))
    except Exception:  # noqa: BLE001 - as _cache_get: this process decides alone
        if _cache_get(key):
            return False
        _cache_set(key, True, seconds)
        return True


def _cache_set(key: str, value: Any, seconds: int) -> None:
    try:
        cache.set(key, value, seconds)
    except Exception:  # noqa: BLE001
        if len(_local) >= LOCAL_MAX_ENTRIES:
            _local.clear()
        _local[key] = (value, time.monotonic() + seconds)


def issuer_keys(issuer: str, source: dict[str, Any], *, kid: Any = None) -> list[dict[str, Any]]:
    """The signing keys of a trusted issuer that is not a client (a software-statement
    directory, RFC 7591 §2.3): ``source`` is its ``{"jwks": {...}}`` or ``{"jwks_uri": ...}``.

    Fetched, cached, remembered when failing, fetched again for an unknown ``kid`` and
    filtered (``use``, FAPI strength) exactly as a client's keys are, by ``client_keys``
    itself, so a directory that does not answer holds no web worker and is not called again on
    every registration, and one that rotates its keys is followed.
    """

    class _Issuer:
        # Cache keys are per owner: an issuer's never meet a client's (whose pk is a number).
        pk = "issuer-" + hashlib.sha256(issuer.encode("utf-8", "replace")).hexdigest()[:32]
        client_id = f"directory {issuer[:200]}"
        jwks = source.get("jwks") or {}
        jwks_uri = source.get("jwks_uri") or ""

    return client_keys(_Issuer(), kid=kid)
