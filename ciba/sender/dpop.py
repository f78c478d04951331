"""DPoP proofs (RFC 9449): checking one, the server's nonces, and key thumbprints (``jkt``).

This module owns the answer to "does this ``DPoP`` header prove possession of a key, for this
request, now?" (RFC 9449 §4.3) and nothing about what the key is then used for: binding a
token to ``jkt`` and checking a bound token's presentation belong to ``bindings``. Every
refusal is an ``InvalidDPoPProof`` or a ``UseDPoPNonce`` (``ciba.errors``), whose description is
safe to return to the client and which every endpoint answers as it is; no input, however
malformed, escapes as another exception.

Nonces (RFC 9449 §8) are stateless: the issue time and a truncated HMAC of it under a key
derived from ``SECRET_KEY``, so every process accepts every other's nonces without a shared
store, and a nonce ages out ``DPOP_NONCE_LIFETIME`` seconds after it was issued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
from django.utils.crypto import constant_time_compare, salted_hmac

from .. import profile
from ..conf import ciba_settings
from ..constants import CLOCK_LEEWAY, DPOP_JWT_TYPE, FAPI_MIN_RSA_BITS, JWS_KEY_TYPES
from ..errors import InvalidDPoPProof, UseDPoPNonce
from ..jose import decode, load_key
from ..replay import first_use

INVALID_DPOP_PROOF = "invalid_dpop_proof"
USE_DPOP_NONCE = "use_dpop_nonce"

#: Longer than any honest proof (an RSA-8192 key and signature fit in half of it): a bound on
#: the work an unauthenticated header can cause before its signature is checked.
MAX_PROOF_LENGTH = 8192
#: RFC 9449 §4.2 asks for enough entropy, not a length; the bound keeps replay records small.
MAX_JTI_LENGTH = 256
#: RSA moduli outside this range are refused: below, too weak (RFC 7518 §3.3); above, and a
#: large public exponent, an attacker could make each verification cost a private-key operation.
MAX_RSA_BITS = 8192
MAX_RSA_EXPONENT_BYTES = 4

#: RFC 7638 §3.2: the required members of each key type, the only ones a thumbprint hashes.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
#: Members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037).
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

_NONCE_SALT = "ciba.sender.dpop.nonce"
_NONCE_MAC_BYTES = 16
_NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}")  # base64url of 8 + 16 bytes, no padding
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Proof:
    """A proof that passed every check: the key it proves possession of and what it said."""

    #: RFC 7638 SHA-256 thumbprint of ``jwk``, base64url without padding (RFC 9449 §6.1).
    jkt: str
    #: The public JWK from the proof's header.
    jwk: dict[str, Any]
    claims: dict[str, Any]


def _invalid(description: str) -> InvalidDPoPProof:
    return InvalidDPoPProof(description)


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    now: float | None = None,
    offer_nonce: bool = False,
) -> Proof:
    """Check a DPoP proof as RFC 9449 §4.3 says, for a request of ``method`` to ``url``.

    ``access_token`` is the token presented with the proof at a protected resource (then the
    proof's ``ath`` must be its hash); at the token endpoint it is None. The ``jti`` is spent
    last, once every other check has passed, so a refused proof never burns one and a client
    told to fetch a nonce can retry with a fresh proof. With ``offer_nonce`` (an endpoint that
    hands out nonces), ``UseDPoPNonce`` carries a new one in ``DPoP-Nonce``.
    """
    now = time.time() if now is None else now
    header = _header(proof)
    alg = header.get("alg")
    if alg not in profile.dpop_algs():
        raise _invalid(f"The DPoP proof must be signed with {' or '.join(profile.dpop_algs())}.")
    public_jwk = _public_jwk(header.get("jwk"), alg)
    claims = _verified_claims(proof, public_jwk, alg)
    _check_claims(claims, method=method, url=url, now=now)
    if access_token is not None:
        _check_ath(claims, access_token)
    _check_nonce(claims, now, offer_nonce=offer_nonce)
    jkt = jwk_thumbprint(public_jwk)
    max_age = ciba_settings.DPOP_PROOF_MAX_AGE
    if not first_use("dpop", jkt, claims["jti"], claims["iat"] + max_age + CLOCK_LEEWAY):
        raise _invalid("The DPoP proof's jti has been used.")
    return Proof(jkt=jkt, jwk=public_jwk, claims=claims)


def _header(proof: Any) -> dict[str, Any]:
    """The proof's JOSE header, once the proof is known to be a plain compact JWS of ours."""
    if not isinstance(proof, str):
        raise _invalid("The DPoP proof is not a JWT (JWS compact serialisation).")
    if not proof:
        raise _invalid("The DPoP proof is empty.")
    if len(proof) > MAX_PROOF_LENGTH:
        raise _invalid("The DPoP proof is too long.")
    if proof.count(".") == 4:
        raise _invalid("The DPoP proof must be a signed JWT, not an encrypted one.")
    if proof.count(".") != 2:
        raise _invalid("The DPoP proof is not a JWT (JWS compact serialisation).")
    try:
        header = jwt.get_unverified_header(proof)
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise _invalid("The DPoP proof's header cannot be read.") from None
    if header.get("typ") != DPOP_JWT_TYPE:
        raise _invalid(f"The DPoP proof's typ must be {DPOP_JWT_TYPE}.")
    # Extensions would change what the signature covers (RFC 7797's b64): none is understood.
    if "crit" in header or "b64" in header:
        raise _invalid("The DPoP proof uses a JWS extension (crit, b64) this server does not support.")
    return header


def _public_jwk(value: Any, alg: str) -> dict[str, Any]:
    """The header's ``jwk``, once it is a public key of the type and curve ``alg`` signs with."""
    if not isinstance(value, dict):
        raise _invalid("The DPoP proof's header must carry the public key as a jwk object.")
    if any(member in value for member in _PRIVATE_MEMBERS) or value.get("kty") == "oct":
        raise _invalid(
            "The DPoP proof's jwk must be a public key; it holds private or symmetric key material."
        )
    if alg not in JWS_KEY_TYPES:  # an algorithm the allow-list gained but no key type is known for
        raise _invalid(f"The DPoP proof's algorithm {alg} is not supported.")
    # Which key (type and curve) the algorithm signs with: an alg the key cannot make is
    # refused before the signature is checked (RFC 8725 §3.1).
    kty, curves = JWS_KEY_TYPES[alg]
    if value.get("kty") != kty:
        raise _invalid(f"The DPoP proof's jwk must be an {kty} key to sign with {alg}.")
    if curves and value.get("crv") not in curves:
        raise _invalid(f"The DPoP proof's jwk must be on {' or '.join(curves)} to sign with {alg}.")
    for member in _THUMBPRINT_MEMBERS[kty]:
        if not isinstance(value.get(member), str) or not _BASE64URL.fullmatch(value[member]):
            raise _invalid(f"The DPoP proof's jwk lacks a valid {member}.")
    if "alg" in value and value["alg"] != alg:
        raise _invalid("The DPoP proof's jwk is declared for another algorithm than the proof's.")
    if "use" in value and value["use"] != "sig":
        raise _invalid("The DPoP proof's jwk is not a signing key (use).")
    if kty == "RSA":
        bits = int.from_bytes(_b64decode(value["n"]), "big").bit_length()
        if not FAPI_MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise _invalid(f"The DPoP proof's RSA key must have {FAPI_MIN_RSA_BITS} to {MAX_RSA_BITS} bits.")
        if len(_b64decode(value["e"])) > MAX_RSA_EXPONENT_BYTES:
            raise _invalid("The DPoP proof's RSA key has an unusable exponent.")
    return dict(value)


def _verified_claims(proof: str, public_jwk: dict[str, Any], alg: str) -> dict[str, Any]:
    """The proof's claims, if its signature verifies with the key in its own header."""
    # PyJWT checks the signature only: the time claims have DPoP's own rules (and PyJWT's
    # int(iat) would raise OverflowError on 1e400).
    checks = (
        "verify_exp",
        "verify_nbf",
        "verify_iat",
        "verify_aud",
        "verify_iss",
        "verify_sub",
        "verify_jti",
    )
    options: Any = {"verify_signature": True, **dict.fromkeys(checks, False)}
    try:
        # ciba.jose verifies every name this server accepts, RFC 9864's Ed25519 and Ed448 too.
        key = load_key(public_jwk, alg)
        claims = decode(proof, key, alg=alg, options=options)
    except jwt.InvalidSignatureError:
        raise _invalid("The DPoP proof's signature does not verify with its jwk.") from None
    except jwt.DecodeError:
        raise _invalid("The DPoP proof's claims cannot be read.") from None
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise _invalid("The DPoP proof's jwk is not a usable public key.") from None
    if not isinstance(claims, dict):
        raise _invalid("The DPoP proof's claims are not a JSON object.")
    return claims


def _check_claims(claims: dict[str, Any], *, method: str, url: str, now: float) -> None:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise _invalid(f"The DPoP proof needs a jti of 1 to {MAX_JTI_LENGTH} characters.")
    if claims.get("htm") != method:
        raise _invalid(f"The DPoP proof's htm must be {method}.")
    htu = claims.get("htu")
    if not isinstance(htu, str) or not htu_matches(htu, url):
        raise _invalid("The DPoP proof's htu does not match this request's URL.")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)):
        raise _invalid("The DPoP proof needs a numeric iat.")
    oldest = now - ciba_settings.DPOP_PROOF_MAX_AGE - CLOCK_LEEWAY
    # Written so that NaN fails too (every comparison with NaN is false).
    if not (oldest <= iat <= now + CLOCK_LEEWAY):
        raise _invalid("The DPoP proof's iat is too old or in the future.")


def _check_ath(claims: dict[str, Any], access_token: str) -> None:
    ath = claims.get("ath")
    if not isinstance(ath, str):
        raise _invalid("The DPoP proof needs the access token's hash (ath).")
    try:
        expected = access_token_hash(access_token)
    except UnicodeEncodeError:  # no token of ours: they are ASCII (RFC 6750 §2.1)
        expected = None
    if expected is None or not constant_time_compare(ath, expected):
        raise _invalid("The DPoP proof's ath does not match the access token.")


def _check_nonce(claims: dict[str, Any], now: float, *, offer_nonce: bool) -> None:
    """RFC 9449 §8: a nonce when the server requires one; an expired one is never accepted."""
    if "nonce" not in claims:
        if ciba_settings.DPOP_NONCE_REQUIRED:
            raise _use_nonce("The DPoP proof must carry the nonce the server provides.", offer_nonce)
        return
    nonce = claims["nonce"]
    if not isinstance(nonce, str):
        raise _invalid("The DPoP proof's nonce must be a string.")
    if not nonce_is_fresh(nonce, now):
        raise _use_nonce("The DPoP proof's nonce has expired or was not issued here.", offer_nonce)


def _use_nonce(description: str, offer_nonce: bool) -> UseDPoPNonce:
    return UseDPoPNonce(description, nonce=new_nonce() if offer_nonce else "")


def proof_header(meta: Mapping[str, Any]) -> str | None:
    """The one DPoP header value of a request, None when there is none.

    ``meta`` is Django's ``request.META`` (key ``HTTP_DPOP``) or an oauthlib headers dict, which
    DOT fills from ``request.META``; a mapping keyed by header name (``DPoP``, any case) works
    too. RFC 9449 §4.3 step 1 allows exactly one header: servers join repeated headers with
    commas, which a compact JWS never contains, so a comma means several, refused.
    """
    value = meta.get("HTTP_DPOP")
    if value is None:
        value = next((v for k, v in meta.items() if isinstance(k, str) and k.lower() == "dpop"), None)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise _invalid("A request carries exactly one DPoP header.")
        value = value[0]
    if not isinstance(value, str):
        raise _invalid("The DPoP header cannot be read.")
    if "," in value:
        raise _invalid("A request carries exactly one DPoP header.")
    value = value.strip(" \t")
    if not value:
        raise _invalid("The DPoP header is empty.")
    return value


def new_nonce(now: float | None = None) -> str:
    """A nonce for the ``DPoP-Nonce`` header (RFC 9449 §8): its issue time, authenticated."""
    issued = int(time.time() if now is None else now).to_bytes(8, "big")
    return _b64encode(issued + _nonce_mac(issued))


def nonce_is_fresh(nonce: str, now: float | None = None) -> bool:
    """Whether this server issued ``nonce`` at most ``DPOP_NONCE_LIFETIME`` seconds ago.

    A nonce issued up to ``CLOCK_LEEWAY`` seconds "in the future" is accepted: another process
    with a clock a little ahead may have issued it.
    """
    if not isinstance(nonce, str) or not _NONCE_PATTERN.fullmatch(nonce):
        return False
    raw = _b64decode(nonce)
    issued, mac = raw[:8], raw[8:]
    if not constant_time_compare(mac, _nonce_mac(issued)):
        return False
    age = (time.time() if now is None else now) - int.from_bytes(issued, "big")
    return -CLOCK_LEEWAY <= age <= ciba_settings.DPOP_NONCE_LIFETIME


def _nonce_mac(issued: bytes) -> bytes:
    return salted_hmac(_NONCE_SALT, issued, algorithm="sha256").digest()[:_NONCE_MAC_BYTES]


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public RSA, EC or OKP key, base64url without padding.

    Only the key type's required members are hashed, in lexicographic order without
    whitespace (RFC 7638 §3.2, §3.3), so ``kid``, ``alg`` or ``use`` never change it. Raises
    ``ValueError`` for a key of another type or lacking a required member.
    """
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))
    if members is None:
        raise ValueError("Thumbprints are computed for RSA, EC and OKP keys only.")
    required = {}
    for member in members:
        if not isinstance(jwk.get(member), str):
            raise ValueError(f"The JWK lacks its {member} member.")
        required[member] = jwk[member]
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _b64encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim for ``access_token`` (RFC 9449 §4.2): base64url(SHA-256(ASCII token))."""
    return _b64encode(hashlib.sha256(access_token.encode("ascii")).digest())


def htu_matches(htu: str, url: str) -> bool:
    """Whether a proof's ``htu`` names ``url`` (RFC 9449 §4.3 step 9).

    Query and fragment are ignored; both sides are normalised as RFC 3986 §6.2.2 and §6.2.3
    suggest (case of scheme and host, default ports, percent-encoding, dot segments, an empty
    path being ``/``), so an honest client is not refused for spelling the URL differently.
    The path is compared percent-decoded, as Django routes it. Only http and https URLs match.
    """
    left, right = _normalised_url(htu), _normalised_url(url)
    return left is not None and left == right


def _normalised_url(url: Any) -> tuple[Any, ...] | None:
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        port = _DEFAULT_PORTS[scheme] if parts.port is None else parts.port
        path = _remove_dot_segments(unquote(parts.path, errors="strict"))
    except ValueError:  # unbalanced IPv6 brackets, a port out of range, percent-encoded non-UTF-8
        return None
    return (scheme, parts.username, parts.password, parts.hostname.lower(), port, path or "/")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for absolute paths."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    trailing = path.endswith(("/.", "/.."))
    return "/" + "/".join(output) + ("/" if trailing and output else "") if path else ""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return b""


__all__ = [
    "INVALID_DPOP_PROOF",
    "USE_DPOP_NONCE",
    "Proof",
    "access_token_hash",
    "htu_matches",
    "jwk_thumbprint",
    "new_nonce",
    "nonce_is_fresh",
    "proof_header",
    "verify_proof",
]
