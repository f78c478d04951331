"""Which certificate or key a token is bound to, decided when it is issued and checked when
it is used (RFC 8705 §3, RFC 9449 §§5-7).

At the token endpoint ``for_token_request`` decides the binding of what is about to be
issued: a valid DPoP proof binds to its key, otherwise a forwarded client certificate binds
to the certificate; a client registered for one of them must present it. Where a token is
used, ``check_presentation`` demands the same certificate or a fresh proof of the same key.
A rule that is not met raises ``ciba.errors.BindingRefused`` (a DPoP proof's own refusals are
its subclasses ``InvalidDPoPProof`` and ``UseDPoPNonce``), which every endpoint answers as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..endpoints import request_urls
from ..errors import BindingRefused, InvalidDPoPProof
from ..jose import JoseError, unverified_claims
from ..models import TokenBinding
from ..profile import sender_constrained_tokens_required
from . import dpop
from .certificates import presented_certificate

#: A JWK SHA-256 thumbprint: 32 bytes in unpadded base64url (RFC 7638, RFC 9449 §10).
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Binding:
    """A confirmation: a certificate thumbprint or a DPoP key thumbprint (never both)."""

    x5t_s256: str = ""
    jkt: str = ""

    @property
    def is_dpop(self) -> bool:
        return bool(self.jkt)

    @property
    def cnf(self) -> dict[str, str]:
        return {"x5t#S256": self.x5t_s256} if self.x5t_s256 else {"jkt": self.jkt}


def for_token_request(request: Any, client: Any, urls: list[str]) -> Binding | None:
    """The binding of the tokens a token request is about to receive, or ``None`` (bearer).

    ``urls`` are the URLs that name the token endpoint (its plain and mTLS aliases) for the
    proof's ``htu``. Raises ``BindingRefused`` when a rule is not met; the token endpoint hands
    out DPoP nonces, so ``UseDPoPNonce`` carries one.
    """
    proof = _proof(request, "POST", urls, offer_nonce=True)
    return _choose(
        client,
        proof.jkt if proof is not None else "",
        presented_certificate(request),
        enforce=True,
        who="This client's",
        dpop_hint="send a DPoP proof",
    )


def for_backchannel_request(
    request: Any, client: Any, params: Mapping[str, str], urls: list[str]
) -> Binding | None:
    """The key or certificate a backchannel request declares (RFC 9449 §10 ``dpop_jkt``, or a
    DPoP proof of the request itself; else the client certificate): push tokens are bound to
    it, and a declared DPoP key is the one the token request must prove. A push client
    registered for bound tokens must declare one here, since it never calls the token endpoint."""
    declared = params.get("dpop_jkt")
    if declared is not None and not (isinstance(declared, str) and _JKT.fullmatch(declared)):
        raise BindingRefused("invalid_request", "dpop_jkt must be a base64url SHA-256 JWK thumbprint.")
    proof = _proof(request, "POST", urls)
    if proof is not None and declared is not None and proof.jkt != declared:
        raise InvalidDPoPProof("dpop_jkt is not the thumbprint of the DPoP proof's key.")
    return _choose(
        client,
        proof.jkt if proof is not None else (declared or ""),
        presented_certificate(request),
        enforce=getattr(client, "backchannel_token_delivery_mode", "") == "push",
        who="This push client's",
        dpop_hint="send a DPoP proof or dpop_jkt",
    )


def _choose(
    client: Any, jkt: str, certificate: Any, *, enforce: bool, who: str, dpop_hint: str
) -> Binding | None:
    """The one binding of a request that showed the key ``jkt`` and/or ``certificate``: a
    certificate-bound client's tokens go to its certificate, otherwise a key wins. With
    ``enforce`` (the request the tokens are issued for), a client's registered binding and
    the profile's sender-constraint are required."""
    certificate_bound = getattr(client, "tls_client_certificate_bound_access_tokens", False)
    if enforce and getattr(client, "dpop_bound_access_tokens", False) and not jkt:
        raise InvalidDPoPProof(f"{who} tokens are DPoP-bound: {dpop_hint}.")
    if enforce and certificate_bound and certificate is None:
        raise BindingRefused(
            "invalid_request", f"{who} tokens are certificate-bound: connect with mutual TLS."
        )
    if jkt and not certificate_bound:
        return Binding(jkt=jkt)
    if certificate is not None:
        return Binding(x5t_s256=certificate.x5t_s256)
    if enforce and sender_constrained_tokens_required():
        raise BindingRefused(
            "invalid_request",
            "Tokens must be sender-constrained: connect with mutual TLS or send a DPoP proof.",
        )
    return None


def _proof(
    request: Any,
    method: str,
    urls: list[str],
    *,
    access_token: str | None = None,
    required: bool = False,
    offer_nonce: bool = False,
) -> dpop.Proof | None:
    """The request's verified DPoP proof (``None`` without a ``DPoP`` header, unless
    ``required``); a bad one raises RFC 9449's error (``InvalidDPoPProof``, ``UseDPoPNonce``)."""
    meta = getattr(request, "headers", None) or getattr(request, "META", {})
    header = dpop.proof_header(meta)
    if header is None:
        if required:
            raise InvalidDPoPProof("A DPoP proof is required.")
        return None
    return _verified(header, method, urls, access_token=access_token, offer_nonce=offer_nonce)


def of_request(ar: Any) -> Binding | None:
    """The binding a stored CIBA request declared, for tokens minted without a token request (push)."""
    if ar.dpop_jkt:
        return Binding(jkt=ar.dpop_jkt)
    if ar.cert_x5t_s256:
        return Binding(x5t_s256=ar.cert_x5t_s256)
    return None


def same_key_as_declared(ar: Any, binding: Binding | None) -> None:
    """RFC 9449 §10: a request made with a DPoP key is collected only with a proof of that key."""
    if ar.dpop_jkt and (binding is None or binding.jkt != ar.dpop_jkt):
        raise InvalidDPoPProof("This request was made with a DPoP key: prove the same key to collect it.")


def _verified(
    header: str, method: str, urls: list[str], access_token: str | None = None, offer_nonce: bool = False
) -> dpop.Proof:
    """Verify the proof against whichever of ``urls`` its ``htu`` names (the first otherwise,
    so a wrong ``htu`` is reported as such)."""
    try:
        htu = unverified_claims(header).get("htu")
    except JoseError:
        htu = None
    url = next((u for u in urls if isinstance(htu, str) and dpop.htu_matches(htu, u)), urls[0])
    return dpop.verify_proof(
        header, method=method, url=url, access_token=access_token, offer_nonce=offer_nonce
    )


def refresh_keeps(stored: TokenBinding | None, binding: Binding | None) -> None:
    """A refresh token issued with a binding refreshes only with one of the same kind: its
    access tokens stay sender-constrained (the key or certificate may be new: CIBA clients
    are confidential, so the refresh token itself is bound by client authentication)."""
    if stored is None:
        return
    if stored.jkt and (binding is None or not binding.jkt):
        raise BindingRefused("invalid_grant", "This refresh token is DPoP-bound: send a DPoP proof.")
    if stored.x5t_s256 and (binding is None or not binding.x5t_s256):
        raise BindingRefused("invalid_grant", "This refresh token is certificate-bound: use mutual TLS.")


def save(binding: Binding, *, access_token: Any = None, refresh_token: Any = None) -> None:
    """Record ``binding`` for one token row (replacing an earlier one: DOT may update a token in place)."""
    key = {"access_token": access_token} if access_token is not None else {"refresh_token": refresh_token}
    TokenBinding.objects.update_or_create(**key, defaults={"x5t_s256": binding.x5t_s256, "jkt": binding.jkt})


def row(binding: Binding, *, access_token: Any = None, refresh_token: Any = None) -> TokenBinding:
    """The new row ``save`` writes for a token row being created (not yet saved)."""
    return TokenBinding(
        access_token=access_token, refresh_token=refresh_token, x5t_s256=binding.x5t_s256, jkt=binding.jkt
    )


def stored_for(*, access_token: Any = None, refresh_token: Any = None) -> TokenBinding | None:
    if access_token is not None:
        return TokenBinding.objects.filter(access_token=access_token).first()
    if refresh_token is not None:
        return TokenBinding.objects.filter(refresh_token=refresh_token).first()
    return None


def loaded_with(access_token: Any) -> TokenBinding | None:
    """The binding of an access token loaded with ``select_related("ciba_binding")`` (no query)."""
    if access_token is None:
        return None
    try:
        return access_token.ciba_binding
    except TokenBinding.DoesNotExist:
        return None


def check_presentation(stored: TokenBinding | None, request: Any, *, token: str, scheme: str) -> None:
    """RFC 8705 §3 / RFC 9449 §7: a bound token is honoured only with its certificate, or with
    the ``DPoP`` scheme and a proof of its key for this very request (``ath`` = the token)."""
    if stored is None:
        if scheme == "dpop":
            raise BindingRefused("invalid_token", "This token is not DPoP-bound: use the Bearer scheme.")
        return
    if stored.x5t_s256:
        certificate = presented_certificate(request)
        if certificate is None or certificate.x5t_s256 != stored.x5t_s256:
            raise BindingRefused(
                "invalid_token", "This token is bound to a client certificate not presented."
            )
        return
    if scheme != "dpop":
        raise BindingRefused("invalid_token", "This token is DPoP-bound: use the DPoP scheme with a proof.")
    method = getattr(request, "http_method", None) or getattr(request, "method", "GET")
    proof = _proof(request, method, request_urls(request), access_token=token, required=True)
    assert proof is not None
    if proof.jkt != stored.jkt:
        raise InvalidDPoPProof("The DPoP proof is signed by another key than the token's.")
