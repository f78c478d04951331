"""CIBA §7.1: what makes an authentication request valid, one small rule per requirement.

``validate(params, client=..., http_request=...)`` turns the form parameters of an
authenticated client's request into a frozen ``NewRequest``, or raises the ``ciba.errors``
error the spec names. Each rule is a plain function of its inputs, so it is tested without
HTTP (tests/test_backchannel_rules.py); the order of ``validate`` is the order in which a
client learns about its mistakes: the request's shape first, then who it is for, then
whether this server will ask them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.http import QueryDict
from oauth2_provider.scopes import get_scopes_backend

from .. import assurance, constants, profile, subjects, user_limits
from .. import authorization_details as rar
from ..claim_requests import accepted_values
from ..conf import ciba_settings
from ..endpoints import backchannel_endpoint_urls
from ..errors import (
    AccessDenied,
    InvalidBindingMessage,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    InvalidUserCode,
    MissingUserCode,
)
from ..sender import bindings
from .request_object import REQUEST_PARAMETERS, parameters_from_request_object

HINTS = ("login_hint", "login_hint_token", "id_token_hint")
#: Parameter names an error description may repeat: ours, never what a client made up.
KNOWN_PARAMETERS = frozenset(
    (
        *REQUEST_PARAMETERS,
        "request",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    )
)
#: The largest requested_expiry stored as asked (it is then capped by MAX_EXPIRES_IN).
MAX_REQUESTED_EXPIRY = 2**31 - 1
#: Parameters a client may repeat (RFC 8707 §2: one ``resource`` per resource); every other
#: repeated parameter is refused (RFC 6749 §3.1). ``single_valued`` hands their values on as
#: one JSON array.
REPEATABLE = ("resource",)
#: Largest ``claims`` request read, in bytes of JSON: a request for every standard claim of
#: OIDC Core §5.1 in both members, with values, fits in a tenth of it.
CLAIMS_MAX_BYTES = 16384
#: Deepest ``claims`` or ``request_context`` accepted (the claims request itself needs 4):
#: stored as JSON and re-encoded on every read, a deeper document would cost recursion that a
#: Django request, already some frames deep, cannot always afford (a 500, not an answer).
MAX_JSON_DEPTH = 32
#: RFC 8707: at most this many ``resource`` values, each at most this long.
MAX_RESOURCES = 16
MAX_RESOURCE_LENGTH = 2048
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_CLAIM_NAME = re.compile(r"[^\x00-\x20\x7f]{1,255}")
#: What OIDC Core §5.5.1 defines for one requested claim; other members are ignored (§5.5).
_CLAIM_QUALIFIERS = ("essential", "value", "values")
_B64TOKEN = re.compile(constants.B64TOKEN_PATTERN)
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class NewRequest:
    """A validated authentication request, ready to be stored (``services.create_request``)."""

    client: Any
    user: Any
    hint_kind: str
    scopes: tuple[str, ...]
    acr_values: str
    acr_essential: bool
    binding_message: str
    client_notification_token: str
    requested_expiry: int | None
    expires_in: int
    interval: int
    dpop_jkt: str = ""
    cert_x5t_s256: str = ""
    #: RFC 9396: the details as the type validators normalised them; what the device shows.
    authorization_details: list[dict[str, Any]] = field(default_factory=list)
    #: OIDC Core §5.5: the ``id_token`` and ``userinfo`` members, each claim normalised.
    claims: dict[str, Any] | None = None
    #: CIBA §7.1 ``request_context``, as the client sent it (and the site's validator accepted).
    request_context: dict[str, Any] | None = None
    #: RFC 8707: the resources the tokens are for.
    resource: list[str] = field(default_factory=list)

    def create_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``services.create_request`` for this request."""
        return {
            "expires_in": self.expires_in,
            "client": self.client,
            "user": self.user,
            "hint_kind": self.hint_kind,
            "scope": " ".join(self.scopes),
            "acr_values": self.acr_values,
            "acr_essential": self.acr_essential,
            "binding_message": self.binding_message,
            "client_notification_token": self.client_notification_token,
            "requested_expiry": self.requested_expiry,
            "interval": self.interval,
            "dpop_jkt": self.dpop_jkt,
            "cert_x5t_s256": self.cert_x5t_s256,
            "authorization_details": list(self.authorization_details),
            "claims": self.claims,
            "request_context": self.request_context,
            "resource": list(self.resource),
        }


def validate(params: Mapping[str, str], *, client: Any, http_request: Any) -> NewRequest:
    """Apply every rule to the single-valued form ``params`` of ``client``'s request."""
    params = signed_request(params, client=client, http_request=http_request)
    scopes = scope(params, client=client)
    hint_kind, hint = one_hint(params)
    notification_token = client_notification_token(params, client=client)
    expires_in = requested_expiry(params)
    message = binding_message(params, client=client)
    requested_claims = claims_request(params)
    acr_values, acr_essential = acr(params)
    details = authorization_details(params, client=client)
    context = request_context(params)
    targets = resources(params)
    resolver = ciba_settings.USER_RESOLVER_CLASS()
    user = resolver.resolve(client=client, http_request=http_request, **{hint_kind: hint})
    if params.get("user_code"):
        # A client the user blocked is refused before its code costs a password hash (and a
        # place in its budgets); services.create_request checks the block for every request.
        user_limits.check_block(client=client, user=user)
    user_code(params, user=user, client=client)
    requested_subject(requested_claims, user=user, client=client)
    check_request_context(context, client=client, user=user)
    ciba_settings.REQUEST_POLICY_CLASS().check(client=client, user=user, scopes=scopes, acr_values=acr_values)
    binding = sender_binding(params, client=client, http_request=http_request)
    return NewRequest(
        client=client,
        user=user,
        hint_kind=hint_kind,
        scopes=tuple(scopes),
        acr_values=acr_values,
        acr_essential=acr_essential,
        binding_message=message,
        client_notification_token=notification_token,
        requested_expiry=seconds(params["requested_expiry"]) if "requested_expiry" in params else None,
        expires_in=expires_in,
        interval=ciba_settings.DEFAULT_INTERVAL,
        dpop_jkt=binding.jkt if binding is not None else "",
        cert_x5t_s256=binding.x5t_s256 if binding is not None else "",
        authorization_details=details,
        claims=requested_claims,
        request_context=context,
        resource=targets,
    )


def single_valued(data: QueryDict | Mapping[str, str], *, repeatable: Iterable[str] = ()) -> dict[str, str]:
    """RFC 6749 §3.1: no parameter may be repeated; and none may hold a NUL, which PostgreSQL
    could not even store. (A body DRF did not parse, such as an empty one, is a plain dict.)

    A ``repeatable`` parameter (the backchannel endpoint's ``REPEATABLE``) may appear any
    number of times: its values are handed on as one JSON array text, the form a signed
    request's array takes too, so one rule reads both."""
    repeatable = frozenset(repeatable)
    lists = list(data.lists()) if isinstance(data, QueryDict) else [(k, [v]) for k, v in data.items()]
    repeated = [key for key, values in lists if len(values) > 1 and key not in repeatable]
    if repeated:
        raise InvalidRequest(f"A parameter is repeated{_names(repeated)}.")
    bad = [key for key, values in lists if "\x00" in key or any("\x00" in value for value in values)]
    if bad:
        raise InvalidRequest(f"A parameter contains a NUL character{_names(bad)}.")
    return {
        key: json.dumps(values, ensure_ascii=False) if key in repeatable else values[0]
        for key, values in lists
    }


def _names(keys: list[str]) -> str:
    """The known names among ``keys``, for a description (a client's own names are not repeated)."""
    known = sorted(k for k in set(keys) if k in KNOWN_PARAMETERS)
    return f": {', '.join(known)}" if known else ""


def signed_request(params: Mapping[str, str], *, client: Any, http_request: Any) -> Mapping[str, str]:
    """§7.1.1: the parameters of a signed request are the claims of its ``request`` JWT; a
    client that registered a signing algorithm may send nothing else."""
    if "request" in params:
        return parameters_from_request_object(params["request"], params, client, http_request)
    if client.backchannel_authentication_request_signing_alg:
        raise InvalidRequest("This client registered a signing algorithm and must send a signed request.")
    if profile.signed_requests_required():
        raise InvalidRequest("This server accepts signed authentication requests only (FAPI-CIBA).")
    return params


def sender_binding(params: Mapping[str, str], *, client: Any, http_request: Any) -> bindings.Binding | None:
    """RFC 9449 §10, RFC 8705 §3: the key (DPoP proof or ``dpop_jkt``) or certificate this
    request is made with; push tokens are bound to it. Checked last, so a refused request
    never spends a proof's ``jti``. The URLs a proof's ``htu`` may name are worked out only for
    a request that carries one (``HTTP_DPOP``): without it they are never read."""
    has_proof = "HTTP_DPOP" in getattr(http_request, "META", {})
    urls = backchannel_endpoint_urls(http_request) if has_proof else []
    return bindings.for_backchannel_request(http_request, client, params, urls)


def scope(params: Mapping[str, str], *, client: Any) -> list[str]:
    """§7.1: ``openid`` is REQUIRED, so a scope without it is a missing required value
    (``invalid_request``); every scope must be one the client may ask for (``invalid_scope``);
    the consent scope is never granted through CIBA."""
    scopes = params.get("scope", "").split()
    if "openid" not in scopes:
        raise InvalidRequest("scope must contain openid (CIBA section 7.1).")
    if not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
        raise InvalidScope("scope holds characters RFC 6749 section 3.3 does not allow.")
    available = set(get_scopes_backend().get_available_scopes(application=client))
    if any(s not in available for s in scopes):
        raise InvalidScope("scope names a value this server does not offer to this client.")
    if ciba_settings.CONSENT_SCOPE in scopes:
        # A token with the consent scope approves CIBA requests; a client must never obtain
        # one through CIBA itself.
        raise InvalidScope(f"The {ciba_settings.CONSENT_SCOPE} scope cannot be requested through CIBA.")
    return list(dict.fromkeys(scopes))


def one_hint(params: Mapping[str, str]) -> tuple[str, str]:
    """§7.1: exactly one of ``login_hint``, ``login_hint_token`` and ``id_token_hint``."""
    present = [h for h in HINTS if params.get(h)]
    if len(present) != 1:
        raise InvalidRequest("Send exactly one of login_hint, login_hint_token and id_token_hint.")
    return present[0], params[present[0]]


def client_notification_token(params: Mapping[str, str], *, client: Any) -> str:
    """§7.1: required of ping and push clients, a bearer token of at most 1024 characters
    (RFC 6750 b64token); a poll client's is ignored, as it is never called back."""
    token = params.get("client_notification_token", "")
    if not client.receives_notifications:
        return ""
    if not token:
        raise InvalidRequest("client_notification_token is required for ping and push clients.")
    if len(token) > constants.CLIENT_NOTIFICATION_TOKEN_MAX_LENGTH:
        raise InvalidRequest("client_notification_token is longer than 1024 characters.")
    if not _B64TOKEN.fullmatch(token):
        raise InvalidRequest("client_notification_token is not a valid bearer token (RFC 6750 section 2.1).")
    return token


def requested_expiry(params: Mapping[str, str]) -> int:
    """§7.1: a positive whole number of seconds; the server may shorten it (``MAX_EXPIRES_IN``)."""
    if "requested_expiry" not in params:
        return ciba_settings.DEFAULT_EXPIRES_IN
    return min(seconds(params["requested_expiry"]), ciba_settings.MAX_EXPIRES_IN)


def seconds(raw: str) -> int:
    """``requested_expiry`` as a whole number from 1 to ``MAX_REQUESTED_EXPIRY``, or
    ``invalid_request``. The length is checked before ``int()``: Python refuses to convert
    more than 4,300 digits (``ValueError``), and converting a long string costs quadratic time,
    so a 5,000-digit value must be refused as text, never parsed."""
    significant = raw.lstrip("0")
    if (
        not raw.isascii()
        or not raw.isdigit()
        or len(significant) > len(str(MAX_REQUESTED_EXPIRY))
        or not 0 < int(significant or "0") <= MAX_REQUESTED_EXPIRY
    ):
        raise InvalidRequest(
            f"requested_expiry must be a whole number of seconds from 1 to {MAX_REQUESTED_EXPIRY}."
        )
    return int(significant)


def binding_message(params: Mapping[str, str], *, client: Any) -> str:
    """§7.1: what both devices show; checked by ``BINDING_MESSAGE_VALIDATOR_CLASS``."""
    message = params.get("binding_message")
    if message is None:
        if ciba_settings.BINDING_MESSAGE_REQUIRED:
            raise InvalidBindingMessage("binding_message is required by this server.")
        return ""
    return ciba_settings.BINDING_MESSAGE_VALIDATOR_CLASS().validate(message=message, client=client)


def acr(params: Mapping[str, str]) -> tuple[str, bool]:
    """§7.1 ``acr_values`` (voluntary, in order of preference) and, per OIDC Core §5.5.1.1, an
    essential ``acr`` asked for through ``claims``; returns the values and whether they are
    essential. An essential requirement this server cannot meet at all (none of its values in
    ``assurance.acr_values_supported()``) is refused before anyone is asked: OIDC Core treats it
    as a failed authentication, which §13 names ``access_denied``."""
    values = plain_text("acr_values", params.get("acr_values", "")).split()
    requirement = _acr_claim(params.get("claims"))
    if requirement is None:
        return " ".join(values), False
    essential, claimed = requirement
    if not essential:
        return " ".join(values or claimed), False
    supported = set(assurance.acr_values_supported())
    if not supported.intersection(claimed):
        raise AccessDenied("This server cannot meet the essential acr the request asks for.")
    return " ".join(claimed), True


def _acr_claim(raw: str | None) -> tuple[bool, list[str]] | None:
    """``claims.id_token.acr`` as (essential, values); ``None`` when it does not ask for acr."""
    if raw is None:
        return None
    try:
        claims = json.loads(raw)
    except (ValueError, RecursionError):  # a document nested thousands deep is no claims request
        raise InvalidRequest("claims is not a JSON object.") from None
    id_token = claims.get("id_token", {}) if isinstance(claims, dict) else None
    if not isinstance(id_token, dict):
        raise InvalidRequest("claims is not a JSON object of claim requests (OIDC Core 5.5).")
    requested = id_token.get("acr")
    if requested is None:
        return None
    if not isinstance(requested, dict):
        raise InvalidRequest("claims: id_token.acr must be an object or null.")
    values = requested.get("values", [requested["value"]] if "value" in requested else [])
    essential = requested.get("essential", False)
    if not isinstance(essential, bool) or not isinstance(values, list):
        raise InvalidRequest(
            "claims: id_token.acr has an essential that is not a boolean or values that are not a list."
        )
    if not all(isinstance(v, str) and v and not _CONTROL.search(v) and " " not in v for v in values):
        raise InvalidRequest("claims: each id_token.acr value must be a non-empty string without spaces.")
    if essential and not values:
        raise InvalidRequest("claims: an essential id_token.acr needs value or values.")
    return essential, values


def plain_text(name: str, value: str) -> str:
    """Values stored and shown as text hold no control characters."""
    if _CONTROL.search(value):
        raise InvalidRequest(f"{name} contains control characters.")
    return value


def user_code(params: Mapping[str, str], *, user: Any, client: Any) -> None:
    """§7.1.2: checked when the server supports user codes and the client registered them; a
    request without one is ``missing_user_code`` when the verifier requires one of this user."""
    if not (ciba_settings.USER_CODE_SUPPORTED and client.backchannel_user_code_parameter):
        return
    verifier = ciba_settings.USER_CODE_VERIFIER_CLASS()
    code = params.get("user_code")
    if not code:
        required = getattr(verifier, "required_for", None)
        if required is None or required(user=user, client=client):
            raise MissingUserCode("user_code is required for this client.")
        return
    if not verifier.verify(user=user, user_code=code, client=client):
        raise InvalidUserCode("user_code is not correct.")


# --- what a request asks beyond scope (RFC 9396, OIDC Core §5.5, CIBA §7.1, RFC 8707) --------


def authorization_details(params: Mapping[str, str], *, client: Any) -> list[dict[str, Any]]:
    """RFC 9396 §2, §3: a JSON array of objects, each checked by the validator registered for
    its ``type`` (``AUTHORIZATION_DETAILS_TYPES``), among the types the client registered
    (``authorization_details_types``, §10); anything else is ``invalid_authorization_details``
    (§5), so what the user is asked to approve is exactly what the client meant."""
    raw = params.get("authorization_details")
    if raw is None:
        return []
    details = rar.parse(raw)
    allowed = (
        client.authorization_details_types if isinstance(client.authorization_details_types, list) else []
    )
    return rar.validate(details, allowed_types=allowed)


def claims_request(params: Mapping[str, str]) -> dict[str, Any] | None:
    """OIDC Core §5.5: the claims the client wants released in the ID token (``id_token``)
    and at userinfo (``userinfo``), each ``null`` or an object of ``essential`` (a boolean),
    ``value`` and ``values`` (an array). Kept normalised to those members, as the spec asks
    for members it does not define (ignored, so never stored either); a member of the wrong
    shape is ``invalid_request``."""
    raw = params.get("claims")
    if raw is None:
        return None
    document = strict_json("claims", raw, CLAIMS_MAX_BYTES)
    if not isinstance(document, dict):
        raise InvalidRequest("claims is not a JSON object.")
    requested: dict[str, Any] = {}
    for member in ("id_token", "userinfo"):
        if member not in document:
            continue
        claims = document[member]
        if not isinstance(claims, dict):
            raise InvalidRequest(f"claims: {member} must be an object of claim requests (OIDC Core 5.5).")
        requested[member] = {name: _claim_request(member, name, value) for name, value in claims.items()}
    return requested


def _claim_request(member: str, name: str, value: Any) -> dict[str, Any] | None:
    if not _CLAIM_NAME.fullmatch(name):
        raise InvalidRequest(f"claims: each {member} claim name must be 1 to 255 characters without spaces.")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"claims: each {member} claim request must be null or an object (OIDC Core 5.5.1)."
        )
    if "essential" in value and not isinstance(value["essential"], bool):
        raise InvalidRequest(f"claims: essential must be a boolean ({member}).")
    if "values" in value and not isinstance(value["values"], list):
        raise InvalidRequest(f"claims: values must be an array ({member}).")
    return {qualifier: value[qualifier] for qualifier in _CLAIM_QUALIFIERS if qualifier in value}


def requested_subject(claims: Mapping[str, Any] | None, *, user: Any, client: Any = None) -> None:
    """OIDC Core §5.5.1: a ``sub`` requested with a value is a demand that the tokens be about
    that user; tokens about anyone else must never be issued, so a hint naming another user is
    refused before the user is asked (``access_denied``, as for an essential acr that cannot be
    met). The value is compared with the ``sub`` ``client`` would see: its pairwise one, if
    it is a pairwise client."""
    for member in (claims or {}).values():
        wanted = member.get("sub")
        acceptable = accepted_values(wanted)
        if acceptable is not None and subject_of(user, client) not in acceptable:
            raise AccessDenied("The claims request asks for another subject than the user the hint names.")


def subject_of(user: Any, client: Any = None) -> str:
    """The ``sub`` the ID token will carry for ``user`` (``ciba.subjects.subject_for``): the
    pairwise one of ``client``'s sector, or the configured OAuth validator's, so a site that
    derives ``sub`` differently is compared with its own value. Without a client: the
    validator's."""
    if client is None:
        return subjects.public_subject(user)
    return subjects.subject_for(user, client, issue=False)  # compared, not handed out


def request_context(params: Mapping[str, str]) -> dict[str, Any] | None:
    """CIBA §7.1 ``request_context``: a JSON object of at most ``REQUEST_CONTEXT_MAX_BYTES``,
    stored as sent and shown to the device; the site's ``REQUEST_CONTEXT_VALIDATOR`` judges
    its content once the user is known (``check_request_context``)."""
    raw = params.get("request_context")
    if raw is None:
        return None
    context = strict_json("request_context", raw, ciba_settings.REQUEST_CONTEXT_MAX_BYTES)
    if not isinstance(context, dict):
        raise InvalidRequest("request_context must be a JSON object.")
    return context


def check_request_context(context: dict[str, Any] | None, *, client: Any, user: Any) -> None:
    """The site's ``REQUEST_CONTEXT_VALIDATOR(request_context=..., client=..., user=...)``, run
    for a request that carries a context; it refuses by raising a ``ciba.errors.CibaError``,
    answered as it is."""
    validator = ciba_settings.REQUEST_CONTEXT_VALIDATOR
    if context is not None and validator:
        validator(request_context=context, client=client, user=user)


def resources(params: Mapping[str, str]) -> list[str]:
    """RFC 8707 §2: each ``resource`` an absolute URI without a fragment, else
    ``invalid_target``; the tokens of every mode are then restricted to them. The value is the
    JSON array ``single_valued`` (or the signed request) made of the client's values."""
    raw = params.get("resource")
    if raw is None:
        return []
    try:
        values = json.loads(raw)
    except ValueError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidTarget("resource must be one or more absolute URIs.")
    if not values or len(values) > MAX_RESOURCES:
        raise InvalidTarget(f"Send from 1 to {MAX_RESOURCES} resource values.")
    for value in values:
        if not _absolute_uri(value):
            raise InvalidTarget(
                "Each resource must be an absolute URI without a fragment (RFC 8707 section 2), "
                f"at most {MAX_RESOURCE_LENGTH} characters."
            )
    return list(dict.fromkeys(values))


def _absolute_uri(value: str) -> bool:
    """RFC 3986 §4.3: a scheme, then something; RFC 8707 §2 forbids a fragment. Whitespace,
    controls and non-ASCII are not URI characters (RFC 3986 §2)."""
    if not 0 < len(value) <= MAX_RESOURCE_LENGTH or not value.isascii() or "#" in value:
        return False
    if any(c.isspace() or c < "\x21" or c == "\x7f" for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed IPv6 bracket
        return False
    scheme, _, rest = value.partition(":")
    return bool(parts.scheme) and bool(_URI_SCHEME.fullmatch(scheme)) and bool(rest)


def strict_json(name: str, raw: str, max_bytes: int) -> Any:
    """``raw`` as JSON that can be stored and shown: at most ``max_bytes`` of UTF-8, no
    duplicate member names (two readers, two answers: RFC 7493 §2.3), finite numbers, no NUL
    or lone surrogate (PostgreSQL's ``jsonb`` refuses both: a 500 after validation otherwise),
    at most ``MAX_JSON_DEPTH`` deep; else ``invalid_request`` naming the parameter."""
    if len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InvalidRequest(f"{name} is larger than {max_bytes} bytes.")
    try:
        value = json.loads(
            raw, object_pairs_hook=_unique_members, parse_constant=_no_constant, parse_float=_finite
        )
    except (ValueError, RecursionError):  # a document nested thousands deep is no JSON we read
        raise InvalidRequest(f"{name} is not valid JSON (RFC 8259, without duplicate members).") from None
    _storable(name, value)
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("duplicate member")
    return document


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _storable(name: str, value: Any) -> None:
    """Walk ``value`` without recursion: depth, and text PostgreSQL can store."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(f"{name} is nested more than {MAX_JSON_DEPTH} levels deep.")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((member, depth + 1) for member in item.values())
            else:
                stack.extend((member, depth + 1) for member in item)
        elif isinstance(item, str) and ("\x00" in item or not _utf8(item)):
            raise InvalidRequest(f"{name} holds a NUL character or a lone surrogate.")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
