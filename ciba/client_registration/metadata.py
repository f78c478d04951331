"""The registration document (RFC 7591 §2, OpenID Connect Registration §2, CIBA §4) and the
application row, both ways: ``read`` a document into typed values, ``apply`` them to a row,
``validate`` the row, and ``to_document`` what was stored.

``MEMBERS`` is the one table of what a client may register here. Each member is a column of
``ciba.models.CibaClientMixin`` or DOT's application (the names are the same except where DOT
chose its own: ``client_name`` is ``name``), or is computed from them (``response_types``,
``id_token_signed_response_alg``, which may be DOT's ``algorithm``). Members not in the table are
ignored, as RFC 7591 §2 asks, and never echoed. ``scope`` is one of them: DOT has no per-client
scope set, so a registered ``scope`` would promise a restriction nothing enforces.

Nothing here states a registration rule: ``validate`` runs the model's ``full_clean()``, which
asks ``ciba.registration_rules`` (the admin's and ``manage.py ciba_client``'s rules, the
FAPI-CIBA profile's included), and maps each problem's field to its metadata name and to the
RFC 7591 §3.2.2 error. What is checked here is only what a row cannot express: JSON types,
sizes, and what this server can do at all.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import EmailValidator
from oauth2_provider.models import AbstractApplication

from .. import constants, profile, registration_rules
from ..conf import ciba_settings
from ..errors import InvalidClientMetadata, InvalidRedirectUri
from ..signing import id_token_algs_available

#: A registration request larger than this is refused before it is parsed (413).
MAX_DOCUMENT_BYTES = 128 * 1024
#: A ``jwks`` larger than this (as JSON), or with more keys, is refused (a client's own keys,
#: current and next, fit in a fraction of it; every request of the client reads them).
MAX_JWKS_BYTES = 64 * 1024
MAX_JWKS_KEYS = 20
#: The most entries of an array member (``redirect_uris``, ``contacts``, ``grant_types``).
MAX_ARRAY_ITEMS = 50
#: The deepest nesting a document may have (a JWK Set needs 4).
MAX_DEPTH = 8

#: RFC 7591 §2's name of the redirect flow's grant (the names a client may register, and DOT's
#: single column for each, are ``registration_rules.REGISTRABLE_GRANT_TYPES`` and
#: ``registration_rules.dot_grant_type``).
GRANT_AUTHORIZATION_CODE = "authorization_code"
#: The only response type: authorization_code's (implicit and hybrid are not offered).
RESPONSE_TYPE_CODE = "code"
#: What needs a client secret, and what needs it stored unhashed (as ``manage.py ciba_client``).
SECRET_METHODS = (
    constants.AUTH_CLIENT_SECRET_BASIC,
    constants.AUTH_CLIENT_SECRET_POST,
    constants.AUTH_CLIENT_SECRET_JWT,
)


class Kind(enum.Enum):
    STRING = "a string"
    BOOLEAN = "a boolean"
    STRINGS = "an array of strings"
    OBJECT = "a JSON object"


@dataclass(frozen=True)
class Member:
    """One registration metadata member: its JSON type and the column that stores it
    (``""``: computed, see ``apply`` and ``to_document``)."""

    name: str
    kind: Kind
    column: str = ""


def _m(name: str, kind: Kind = Kind.STRING, column: str | None = None) -> Member:
    return Member(name, kind, name if column is None else column)


#: Every member a client may register, in the order the response lists them.
MEMBERS: tuple[Member, ...] = (
    _m("client_name", column="name"),
    _m("redirect_uris", Kind.STRINGS),
    _m("grant_types", Kind.STRINGS),
    _m("response_types", Kind.STRINGS, column=""),
    _m("token_endpoint_auth_method"),
    _m("token_endpoint_auth_signing_alg"),
    _m("jwks", Kind.OBJECT),
    _m("jwks_uri"),
    *(_m(name) for name in constants.TLS_CLIENT_AUTH_NAME_FIELDS),
    _m("tls_client_certificate_bound_access_tokens", Kind.BOOLEAN),
    _m("dpop_bound_access_tokens", Kind.BOOLEAN),
    _m("id_token_signed_response_alg", column=""),
    _m("request_object_signing_alg"),
    _m("backchannel_token_delivery_mode"),
    _m("backchannel_client_notification_endpoint"),
    _m("backchannel_authentication_request_signing_alg"),
    _m("backchannel_user_code_parameter", Kind.BOOLEAN),
    # RFC 9396 §10; which types are supported is registration_rules' (authorization_details_types).
    _m("authorization_details_types", Kind.STRINGS),
    # OIDC Core §8, OpenID Connect Registration §2 (ciba.subjects); the URI is fetched and
    # checked when the client is registered or updated (``management``).
    _m("subject_type"),
    _m("sector_identifier_uri"),
    _m("contacts", Kind.STRINGS),
    _m("client_uri"),
    _m("logo_uri"),
    _m("policy_uri"),
    _m("tos_uri"),
    _m("software_id"),
    _m("software_version"),
)
BY_NAME = {member.name: member for member in MEMBERS}

#: The metadata member to name for a problem found at a column that is not one itself.
MEMBER_OF_COLUMN = {
    **{member.column: member.name for member in MEMBERS if member.column},
    "authorization_grant_type": "grant_types",
    "algorithm": "id_token_signed_response_alg",
    "client_type": "token_endpoint_auth_method",
    "hash_client_secret": "token_endpoint_auth_method",
    "client_secret": "token_endpoint_auth_method",
    "software_statement": "software_statement",
}


def read(document: Any) -> dict[str, Any]:
    """The members of ``document`` this server knows, type-checked; ``null`` is taken as
    absent (RFC 7592 §2.2 treats an omitted member as empty). Raises
    ``InvalidClientMetadata`` naming the first member of the wrong type or size."""
    if not isinstance(document, Mapping):
        raise InvalidClientMetadata("The registration request must be a JSON object of client metadata.")
    values: dict[str, Any] = {}
    for member in MEMBERS:
        value = document.get(member.name)
        if value is None:
            continue
        values[member.name] = _typed(member, value)
    if "jwks" in values:
        _check_jwks_size(values["jwks"])
    return values


def parse_body(body: bytes) -> Any:
    """The JSON of a registration request: UTF-8, no ``NaN`` or ``Infinity`` (no database
    stores them), not nested deeper than ``MAX_DEPTH``. Raises ``InvalidClientMetadata``."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidClientMetadata(
            "The registration request must be a JSON object of client metadata."
        ) from None
    if _depth(document) > MAX_DEPTH:
        raise InvalidClientMetadata("The registration request is nested too deeply.")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _depth(value: Any) -> int:
    """How deeply ``value`` nests, without recursion (a hostile document cannot overflow it)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _typed(member: Member, value: Any) -> Any:
    wrong = InvalidClientMetadata(f"{member.name} must be {member.kind.value}.")
    if member.kind is Kind.BOOLEAN:
        if not isinstance(value, bool):
            raise wrong
        return value
    if member.kind is Kind.OBJECT:
        if not isinstance(value, dict):
            raise wrong
        _check_strings(member.name, value)
        return value
    if member.kind is Kind.STRINGS:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise wrong
        if len(value) > MAX_ARRAY_ITEMS:
            raise InvalidClientMetadata(f"{member.name} may have {MAX_ARRAY_ITEMS} entries at most.")
        for item in value:
            _check_string(member.name, item)
        return list(dict.fromkeys(value))
    if not isinstance(value, str):
        raise wrong
    _check_string(member.name, value)
    return value


def _check_string(name: str, value: str) -> None:
    """No NUL and no lone surrogate: a database cannot store them (PostgreSQL refuses both)."""
    if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
        raise InvalidClientMetadata(f"{name} holds characters that cannot be stored.")


def _check_strings(name: str, value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_string(name, item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(name, key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _check_jwks_size(jwks: dict[str, Any]) -> None:
    keys = jwks.get("keys")
    if isinstance(keys, list) and len(keys) > MAX_JWKS_KEYS:
        raise InvalidClientMetadata(f"jwks may hold {MAX_JWKS_KEYS} keys at most.")
    if len(json.dumps(jwks)) > MAX_JWKS_BYTES:
        raise InvalidClientMetadata(
            f"jwks is larger than {MAX_JWKS_BYTES // 1024} KiB; publish it at a jwks_uri."
        )


# --- document -> row -------------------------------------------------------------------------


def default_grant_types(values: Mapping[str, Any]) -> list[str]:
    """RFC 7591 §2: ``authorization_code`` when ``grant_types`` is omitted; a client that
    registers a token delivery mode without it asks for CIBA (CIBA §4), and gets it."""
    if values.get("backchannel_token_delivery_mode"):
        return [constants.CIBA_GRANT_TYPE]
    return [GRANT_AUTHORIZATION_CODE]


def apply(client: Any, values: Mapping[str, Any]) -> None:
    """Set every member's column on ``client`` from ``values`` (``read``'s output): a member
    left out takes the column's default, so an update is a full replacement (RFC 7592 §2.2).
    Also what registration decides itself: a confidential client, DOT's grant, the ID token
    signing. Secrets are ``issue_secret``'s."""
    for member in MEMBERS:
        if not member.column:
            continue
        field = client._meta.get_field(member.column)
        value = values.get(member.name)
        if value is None:
            value = field.get_default()
        elif member.name == "redirect_uris":
            value = _redirect_uris(value)
        setattr(client, member.column, value)
    if values.get("grant_types") == []:
        raise InvalidClientMetadata("grant_types: name at least one grant type (or leave it out).")
    grant_types = values.get("grant_types") or default_grant_types(values)
    client.grant_types = grant_types
    client.authorization_grant_type = registration_rules.dot_grant_type(grant_types)
    _check_response_types(values.get("response_types"), grant_types)
    _check_contacts(values.get("contacts") or ())
    _check_auth_method(client.token_endpoint_auth_method)
    # Every method this server offers authenticates the client: confidential (RFC 6749 §2.1).
    client.client_type = AbstractApplication.CLIENT_CONFIDENTIAL
    client.registration_source = AbstractApplication.RegistrationSource.DCR
    _id_token_signing(client, values.get("id_token_signed_response_alg"))


def _redirect_uris(uris: list[str]) -> str:
    """DOT stores them space-separated: a URI with whitespace would become two."""
    for uri in uris:
        if not uri or any(c.isspace() for c in uri):
            raise InvalidRedirectUri("redirect_uris: a redirect URI cannot be empty or contain whitespace.")
    return " ".join(uris)


def _check_response_types(response_types: list[str] | None, grant_types: list[str]) -> None:
    """OpenID Registration §2: ``response_types`` and ``grant_types`` must agree; only ``code``
    is offered, and only with ``authorization_code``."""
    if response_types is None:
        return
    if any(rt != RESPONSE_TYPE_CODE for rt in response_types):
        raise InvalidClientMetadata("response_types: this server supports the response type code only.")
    if response_types and GRANT_AUTHORIZATION_CODE not in grant_types:
        raise InvalidClientMetadata("response_types: code needs the authorization_code grant in grant_types.")
    if not response_types and GRANT_AUTHORIZATION_CODE in grant_types:
        raise InvalidClientMetadata(
            "response_types: the authorization_code grant needs the response type code."
        )


def _check_auth_method(method: str) -> None:
    """The mutual-TLS methods work only behind a TLS terminator that forwards the certificate
    (``MTLS_CERT_HEADER``; ``ciba.profile.client_auth_methods``); any other unknown name is the
    column's choice error."""
    if method in constants.MTLS_AUTH_METHODS and method not in profile.client_auth_methods():
        raise InvalidClientMetadata(f"token_endpoint_auth_method: this server does not offer {method}.")


def _id_token_signing(client: Any, alg: str | None) -> None:
    """``RS256``, ``PS256`` or ``ES256`` sign with this server's key set (the column);
    ``HS256`` with the client secret (DOT's ``algorithm``). Left out: RS256 as DOT signs it,
    or under FAPI-CIBA the first profile algorithm this server can sign with (RFC 7591 §3.2.1
    lets the server choose; the response says what it chose)."""
    client.id_token_signed_response_alg = ""
    client.algorithm = AbstractApplication.RS256_ALGORITHM
    available = profile.jws_algs(id_token_algs_available())
    if alg is None:
        if profile.fapi():
            alg = next((a for a in available if a in constants.ID_TOKEN_SIGNING_ALGS), None)
        if alg is None:
            return
    if alg not in available:
        offered = ", ".join(available) or "-"
        raise InvalidClientMetadata(f"id_token_signed_response_alg: this server signs with {offered} only.")
    if alg == AbstractApplication.HS256_ALGORITHM:
        client.algorithm = AbstractApplication.HS256_ALGORITHM
    else:
        client.id_token_signed_response_alg = alg


def issue_secret(client: Any, *, renew: bool = False) -> str | None:
    """Give ``client`` the secret its method (or HS256 ID tokens) needs, as ``manage.py
    ciba_client`` does: 256 random bits, hashed (``ciba.client_auth.hashers``) unless the
    server needs the secret itself (``client_secret_jwt`` keys an HMAC with it, HS256 ID tokens
    are signed with it). Returns a new secret (shown once), or ``None`` if the one it has
    stays. A client that needs no secret has none: it cannot fall back to one."""
    needs = client.token_endpoint_auth_method in SECRET_METHODS or (
        client.algorithm == AbstractApplication.HS256_ALGORITHM
    )
    in_clear = (
        client.token_endpoint_auth_method == constants.AUTH_CLIENT_SECRET_JWT
        or client.algorithm == AbstractApplication.HS256_ALGORITHM
    )
    current = client.client_secret if client.pk else ""
    if not needs:
        client.client_secret = ""
        client.hash_client_secret = False
        return None
    usable = bool(current) and not (in_clear and client._client_secret_is_hashed(current))
    if usable and not renew:
        client.hash_client_secret = not in_clear  # a secret kept in clear is hashed when saved
        client.client_secret = current
        return None
    client.client_secret = secrets.token_urlsafe(32)
    client.hash_client_secret = not in_clear
    return str(client.client_secret)


# --- validation --------------------------------------------------------------------------------


def validate(client: Any) -> None:
    """Refuse ``client`` unless it passes the admin's validation (``full_clean()``: the field
    checks and ``ciba.registration_rules``) and would be usable at once (no blocking problem
    that only a stored row can have). Raises ``InvalidRedirectUri`` when the redirect URIs are
    all that is wrong, else ``InvalidClientMetadata`` naming every member to change."""
    errors: dict[str, list[str]] = {}
    try:
        client.full_clean()
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(_member(field), []).extend(messages)
    for problem in registration_rules.problems(client, blocking_only=True):
        if not problem.registration:
            errors.setdefault(_member(problem.field), []).append(str(problem.message))
    if not errors:
        return
    described = "; ".join(
        f"{member}: {' '.join(dict.fromkeys(messages))}" for member, messages in errors.items()
    )
    if set(errors) == {"redirect_uris"}:
        raise InvalidRedirectUri(described)
    raise InvalidClientMetadata(described)


def _member(field: str) -> str:
    if field == NON_FIELD_ERRORS:
        return "client metadata"
    return MEMBER_OF_COLUMN.get(field, field)


def _check_contacts(contacts: Any) -> None:
    """``contacts`` are e-mail addresses (OpenID Registration §2): the column holds any JSON."""
    validator = EmailValidator()
    for contact in contacts:
        try:
            validator(contact)
        except ValidationError:
            raise InvalidClientMetadata("contacts: each contact must be an e-mail address.") from None


# --- row -> document -------------------------------------------------------------------------


def registered_grant_types(client: Any) -> list[str]:
    """The grant types the client holds (``CibaClientMixin.registered_grant_types`` when the
    model has it, else the stored list)."""
    held = getattr(client, "registered_grant_types", None)
    return list(held if held is not None else client.grant_types or [])


def to_document(client: Any) -> dict[str, Any]:
    """What is stored, as registration metadata (RFC 7591 §3.2.1): every member with a value
    (flags always), and ``client_id``, ``client_id_issued_at``, ``client_secret_expires_at``
    (0: never) for a client that has a secret. No secret and no token: callers add those."""
    document: dict[str, Any] = {"client_id": client.client_id}
    if client.created:
        document["client_id_issued_at"] = int(client.created.timestamp())
    if client.client_secret:
        document["client_secret_expires_at"] = 0
    grant_types = registered_grant_types(client)
    for member in MEMBERS:
        value = _value(client, member, grant_types)
        if value not in ("", None, []) or member.kind is Kind.BOOLEAN or member.name == "response_types":
            document[member.name] = value
    return document


def _value(client: Any, member: Member, grant_types: list[str]) -> Any:
    if member.name == "grant_types":
        return grant_types
    if member.name == "response_types":
        return [RESPONSE_TYPE_CODE] if GRANT_AUTHORIZATION_CODE in grant_types else []
    if member.name == "redirect_uris":
        return client.redirect_uris.split()
    if member.name == "id_token_signed_response_alg":
        return client.id_token_signed_response_alg or client.algorithm or None
    if member.name == "subject_type":
        # The type in force (OpenID Connect Registration §3.2: the server's choice when omitted).
        return client.subject_type or ciba_settings.DEFAULT_SUBJECT_TYPE
    return getattr(client, member.column)
