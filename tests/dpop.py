"""DPoP proofs as a client would make them (RFC 9449 §4.2), built with jwcrypto, for tests.

The proofs are signed by a JOSE library other than the one the server verifies with (PyJWT),
so a test passing means two implementations agree, not that one agrees with itself.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

from jwcrypto import jwk, jws, jwt

#: In ``claims_override`` or ``extra_header``: leave this member out entirely.
OMIT: Any = object()

_DEFAULT_ALG = {"EC": "ES256", "RSA": "PS256", "OKP": "EdDSA"}


class DPoPKey:
    """A client's DPoP key pair, making proofs for requests.

    ``kty`` is ``"EC"`` (P-256, ES256), ``"RSA"`` (2048 bits, PS256) or ``"OKP"`` (Ed25519,
    EdDSA); ``alg`` chooses another algorithm the key can sign with (RS256 for RSA, say).
    """

    def __init__(self, kty: str = "EC", *, alg: str | None = None) -> None:
        if kty == "EC":
            self.key = jwk.JWK.generate(kty="EC", crv="P-256")
        elif kty == "RSA":
            self.key = jwk.JWK.generate(kty="RSA", size=2048)
        elif kty == "OKP":
            self.key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
        else:
            raise ValueError(f"No DPoP test key of type {kty}")
        self.alg = alg or _DEFAULT_ALG[kty]

    @property
    def public_jwk(self) -> dict[str, Any]:
        return self.key.export_public(as_dict=True)

    @property
    def jkt(self) -> str:
        """The key's RFC 7638 thumbprint, as jwcrypto computes it (the ``dpop_jkt`` value)."""
        return self.key.thumbprint()

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: Any = None,
        jti: str | None = None,
        alg: str | None = None,
        typ: str = "dpop+jwt",
        extra_header: dict[str, Any] | None = None,
        claims_override: dict[str, Any] | None = None,
        sign_with: jwk.JWK | None = None,
    ) -> str:
        """A compact DPoP proof for ``method`` ``url``, fresh unless told otherwise.

        ``extra_header`` and ``claims_override`` are applied last (``OMIT`` removes a
        member), so a test can make any one thing wrong; ``sign_with`` signs with another key
        than the one in the header.
        """
        alg = alg or self.alg
        header: dict[str, Any] = {"typ": typ, "alg": alg, "jwk": self.public_jwk}
        claims: dict[str, Any] = {
            "jti": jti or uuid.uuid4().hex,
            "htm": method,
            "htu": url,
            "iat": int(time.time()) if iat is None else iat,
        }
        if access_token is not None:
            claims["ath"] = ath(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        header = _apply(header, extra_header)
        claims = _apply(claims, claims_override)
        token = jwt.JWT(header=header, claims=claims)
        token.make_signed_token(sign_with or self.key)
        return token.serialize()


def unsigned_proof(key: DPoPKey, method: str, url: str) -> str:
    """An ``alg: none`` proof (RFC 7519 §6): no signature at all."""
    claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
    token = jws.JWS(jwt.json_encode(claims))
    token.allowed_algs = ["none"]
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk}
    token.add_signature(jwk.JWK(kty="oct", k=""), alg="none", protected=header)
    return token.serialize(compact=True)


def signed_payload(key: DPoPKey, payload: bytes, header: dict[str, Any] | None = None) -> str:
    """A correctly signed JWS whose payload is ``payload`` as is (not necessarily JSON)."""
    token = jws.JWS(payload)
    protected = header or {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public_jwk}
    token.add_signature(key.key, alg=protected["alg"], protected=protected)
    return token.serialize(compact=True)


def ath(access_token: str) -> str:
    """RFC 9449 §4.2's ``ath``, computed here independently of the server's code."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _apply(values: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    merged = {**values, **(changes or {})}
    return {name: value for name, value in merged.items() if value is not OMIT}
