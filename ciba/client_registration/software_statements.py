"""Software statements (RFC 7591 §2.3): signed client metadata from a directory this server trusts.

An open-banking directory (Open Finance Brasil, Open Banking UK) signs a statement for each
piece of software it has vetted; the software presents it in its registration request. This
server trusts the issuers in ``SOFTWARE_STATEMENT_ISSUERS`` only, with their keys (inline
``jwks`` or a ``jwks_uri`` fetched, cached and filtered as client keys are: ``ciba.jose``),
and only asymmetric signatures the security profile allows (never ``none``, never HMAC: a
statement must be verifiable by anyone holding the directory's public keys).

Refusals (RFC 7591 §3.2.2):

* ``invalid_software_statement``: not a signed JWT, an algorithm not allowed, a bad signature,
  no ``iss`` or ``iat``, expired (``exp``), issued more than ``SOFTWARE_STATEMENT_MAX_AGE``
  seconds ago (``iat``).
* ``unapproved_software_statement``: a well-formed statement from an issuer not trusted here.
* ``temporarily_unavailable`` (503): the trusted directory's ``jwks_uri`` cannot be fetched
  now; nothing is wrong with the statement.

A verified statement's claims override the request's metadata (RFC 7591 §2.3: "the values in
the software statement take precedence"): every claim but the JWT's own (``iss``, ``sub``,
``aud``, ``exp``, ``nbf``, ``iat``, ``jti``), under its RFC 7591 name. Directories name some
metadata after the software (``STATEMENT_ALIASES``): ``software_jwks_uri`` (Brazil) and
``software_jwks_endpoint`` (UK) become ``jwks_uri``, ``software_redirect_uris``
``redirect_uris``, ``software_client_name`` ``client_name``, and so on; a plain RFC 7591 name in
the statement wins over its alias. A statement that names where the client's keys are
(``jwks`` or ``jwks_uri``) replaces both of the request's. Claims that are no client metadata
(``org_id``, ``software_roles``) are carried along and ignored by registration, which
validates the result as any request (so a statement contradicting the profile is refused
there).
"""

from __future__ import annotations

import time
from typing import Any

from .. import jose, profile
from ..conf import ciba_settings
from ..constants import ASYMMETRIC_JWS_ALGORITHMS, CLOCK_LEEWAY
from ..errors import InvalidSoftwareStatement, TemporarilyUnavailable, UnapprovedSoftwareStatement
from ..jose.keys import issuer_keys

#: Directory claim names and the RFC 7591 metadata they carry.
STATEMENT_ALIASES = {
    "software_client_name": "client_name",
    "software_client_uri": "client_uri",
    "software_redirect_uris": "redirect_uris",
    "software_logo_uri": "logo_uri",
    "software_policy_uri": "policy_uri",
    "software_tos_uri": "tos_uri",
    "software_jwks_uri": "jwks_uri",  # Open Finance Brasil
    "software_jwks_endpoint": "jwks_uri",  # Open Banking UK
    "software_contacts": "contacts",
}
#: The JWT's own claims (RFC 7519 §4.1): about the statement, not the client.
JWT_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
#: Metadata only one of which a client registers (OIDC Registration §2): where its keys are.
KEY_LOCATIONS = ("jwks", "jwks_uri")


def algorithms() -> list[str]:
    """The algorithms a statement may be signed with: asymmetric only, narrowed by the profile."""
    return profile.jws_algs(ASYMMETRIC_JWS_ALGORITHMS)


def verify(statement: Any) -> dict[str, Any]:
    """The verified claims of ``statement``; ``InvalidSoftwareStatement`` or
    ``UnapprovedSoftwareStatement`` as the module docstring says."""
    if not isinstance(statement, str) or not statement:
        raise InvalidSoftwareStatement("software_statement must be a signed JWT (a string).")
    try:
        header = jose.header_of(statement)
        unverified = jose.unverified_claims(statement)
    except jose.JoseError as exc:
        raise InvalidSoftwareStatement(f"software_statement: {exc}") from None
    allowed = algorithms()
    if header["alg"] not in allowed:
        raise InvalidSoftwareStatement(f"software_statement must be signed with {' or '.join(allowed)}.")
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise InvalidSoftwareStatement("software_statement has no iss: the directory that issued it.")
    source = _trusted_issuers().get(issuer)
    if not isinstance(source, dict):
        raise UnapprovedSoftwareStatement(
            "software_statement was issued by a directory this server does not trust."
        )
    try:
        keys = issuer_keys(issuer, source, kid=header.get("kid"))
    except jose.JoseError:
        # The directory's keys are unreachable (or it publishes none usable): nothing is wrong
        # with the statement, and a retry may succeed.
        raise TemporarilyUnavailable(
            "The software statement's directory keys cannot be fetched now; try again later.", retry_after=30
        ) from None
    try:
        claims = jose.verify(statement, keys, algorithms=allowed, issuer=issuer, require=("iss", "iat"))
    except jose.JoseError as exc:
        raise InvalidSoftwareStatement(f"software_statement: {exc}") from None
    issued_at = claims.get("iat")
    if not isinstance(issued_at, (int, float)) or isinstance(issued_at, bool):
        raise InvalidSoftwareStatement("software_statement: iat must be a number of seconds.")
    max_age = ciba_settings.SOFTWARE_STATEMENT_MAX_AGE
    if time.time() - issued_at > max_age + CLOCK_LEEWAY:
        raise InvalidSoftwareStatement(
            f"software_statement was issued more than {max_age} seconds ago (iat); "
            "ask the directory for a new one."
        )
    return claims


def metadata(claims: dict[str, Any]) -> dict[str, Any]:
    """The client metadata a verified statement's ``claims`` carry, under RFC 7591 names."""
    carried: dict[str, Any] = {}
    for name, value in claims.items():
        if name in STATEMENT_ALIASES and STATEMENT_ALIASES[name] not in claims:
            carried.setdefault(STATEMENT_ALIASES[name], value)
    for name, value in claims.items():
        if name not in JWT_CLAIMS and name not in STATEMENT_ALIASES:
            carried[name] = value
    return carried


def overridden(document: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any]:
    """``document`` (the request's metadata) with the statement's metadata taking precedence,
    and without ``software_statement`` itself (kept by the caller as presented)."""
    carried = metadata(claims)
    merged = {name: value for name, value in document.items() if name != "software_statement"}
    if any(location in carried for location in KEY_LOCATIONS):
        for location in KEY_LOCATIONS:
            merged.pop(location, None)
    merged.update(carried)
    return merged


def _trusted_issuers() -> dict[str, Any]:
    issuers = ciba_settings.SOFTWARE_STATEMENT_ISSUERS
    return issuers if isinstance(issuers, dict) else {}
