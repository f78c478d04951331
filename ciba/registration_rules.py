"""The rules of a client's registration, in one place: ``problems(client)`` yields each one it breaks.

Every reader asks this module and none restates a rule:

- ``CibaClientMixin.clean()`` refuses the ``registration`` problems, each at its field (the
  admin form, ``manage.py ciba_client``, and dynamic registration as its validator);
- the endpoints refuse a client that registered CIBA while any ``blocking`` problem stands
  (``unauthorized_client``), through ``CibaClientMixin.ciba_problems()`` and ``is_ciba_client``;
- the system checks report stored clients by these flags and codes, never by their text:
  ``ciba.E032`` the problems ``by_profile``, ``ciba.W005`` the other blocking ones;
- the admin offers ``allowed_choices()`` and shows ``profile_hints()`` next to the fields.

``client`` is anything with the registration metadata of ``ciba.models.CibaClientMixin`` and
DOT's application fields: a saved row or an unsaved one (nothing here touches the database).
"""

from __future__ import annotations

import math
import string
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import AbstractApplication

from . import authorization_details as rar
from . import constants, profile
from .conf import ciba_settings
from .jose import key_fits, validate_public_jwks, weak_keys
from .outbound import validate_outbound_url


@dataclass(frozen=True)
class Problem:
    """One rule a registration breaks."""

    #: The registration metadata field to fix (``clean()`` reports the message there).
    field: str
    #: Stable: checks and dynamic registration tell problems apart by it, never by the message.
    code: str
    #: What whoever registers the client is told (a translated string for most rules).
    message: Any
    #: While it stands, a client that registered CIBA is refused (``unauthorized_client``).
    blocking: bool = False
    #: The security profile in force (``CIBA["PROFILE"]``) causes it.
    by_profile: bool = False
    #: ``clean()`` refuses it; ``False`` for a state only a stored row can be in.
    registration: bool = True
    #: The clause the endpoints give a refused client (``"This client cannot use CIBA: …"``)
    #: and ``ciba.W005`` lists; empty: the message itself.
    said_to_client: str = ""

    @property
    def refusal(self) -> str:
        return self.said_to_client or str(self.message)


def problems(client: Any, *, blocking_only: bool = False) -> Iterator[Problem]:
    """Every problem of ``client``'s registration, in a stable order; with ``blocking_only``,
    only the rules that can block use are evaluated (what the endpoints ask at request time)."""
    for rule, blocking in _RULES:
        if blocking or not blocking_only:
            for problem in rule(client):
                if problem.blocking or not blocking_only:
                    yield problem


def registration_errors(client: Any) -> dict[str, list[Any]]:
    """The problems ``clean()`` refuses, as messages per field (a ``ValidationError`` dict)."""
    errors: dict[str, list[Any]] = {}
    for problem in problems(client):
        if problem.registration:
            errors.setdefault(problem.field, []).append(problem.message)
    return errors


def allowed_choices() -> dict[str, list[str]]:
    """The values this server offers per choice field: the delivery modes in force, and under
    FAPI-CIBA only the methods and algorithms the profile allows."""
    allowed = {"backchannel_token_delivery_mode": profile.delivery_modes()}
    if profile.fapi():
        allowed.update(
            token_endpoint_auth_method=profile.client_auth_methods(),
            token_endpoint_auth_signing_alg=list(constants.FAPI_ALGS),
            backchannel_authentication_request_signing_alg=profile.request_signing_algs(),
            id_token_signed_response_alg=list(constants.FAPI_ALGS),
        )
    return allowed


def profile_hints() -> dict[str, Any]:
    """The rule the profile in force sets on each field it constrains (empty without a profile)."""
    return {field: rule.hint for field, rule in FAPI_RULES.items()} if profile.fapi() else {}


# --- grant types (RFC 7591 §2 ``grant_types``) ----------------------------------------------

#: The grant types a client may register, by their OAuth names (RFC 7591 §2, CIBA §4).
REGISTRABLE_GRANT_TYPES = (
    constants.CIBA_GRANT_TYPE,
    "client_credentials",
    "authorization_code",
    "refresh_token",
)
#: The grants that issue refresh tokens (client_credentials never does: RFC 6749 §4.4.3).
ISSUE_REFRESH_TOKENS = (constants.CIBA_GRANT_TYPE, "authorization_code")
#: DOT's single-grant column for each OAuth name that has one.
DOT_GRANT_TYPES = {
    constants.CIBA_GRANT_TYPE: constants.CIBA_GRANT_TYPE,
    "client_credentials": AbstractApplication.GRANT_CLIENT_CREDENTIALS,
    "authorization_code": AbstractApplication.GRANT_AUTHORIZATION_CODE,
}
#: What a row without ``grant_types`` may use: DOT's single grant, as DOT's validator maps it
#: (``oauth2_provider.oauth2_validators.GRANT_TYPE_MAPPING``, refresh included), and for the
#: CIBA grant refresh too, as before ``grant_types`` existed.
LEGACY_GRANT_TYPES = {
    AbstractApplication.GRANT_AUTHORIZATION_CODE: ("authorization_code", "refresh_token"),
    AbstractApplication.GRANT_DEVICE_CODE: ("urn:ietf:params:oauth:grant-type:device_code", "refresh_token"),
    AbstractApplication.GRANT_IMPLICIT: ("implicit",),
    AbstractApplication.GRANT_PASSWORD: ("password", "refresh_token"),
    AbstractApplication.GRANT_CLIENT_CREDENTIALS: ("client_credentials", "refresh_token"),
    AbstractApplication.GRANT_OPENID_HYBRID: ("authorization_code", "implicit", "refresh_token"),
    constants.CIBA_GRANT_TYPE: (constants.CIBA_GRANT_TYPE, "refresh_token"),
}


def registered_grant_types(client: Any) -> tuple[str, ...]:
    """The OAuth grant types ``client`` may use: its ``grant_types`` or, for a row that lists
    none (every row older than ``grant_types``), what its single ``authorization_grant_type``
    has always allowed. A list this server cannot honour (not a list, unknown names) allows
    nothing: the ``grant_types_invalid`` problem says why, and no grant is guessed."""
    listed = getattr(client, "grant_types", None)
    if not listed:
        return LEGACY_GRANT_TYPES.get(client.authorization_grant_type, ())
    if not _grant_types_valid(listed):
        return ()
    return tuple(listed)


def lists_grant_types(client: Any) -> bool:
    """Whether ``client`` registered ``grant_types`` (else its single grant decides)."""
    return bool(getattr(client, "grant_types", None))


def dot_grant_type(grant_types: list[str] | tuple[str, ...]) -> str:
    """The value of DOT's single ``authorization_grant_type`` column for a client registering
    ``grant_types``: the CIBA grant if listed, else the first listed that DOT names ("" for
    none). DOT's own code (its ``clean()``, its application views) reads that column; this
    server's grant decisions read ``grant_types``."""
    if constants.CIBA_GRANT_TYPE in grant_types:
        return constants.CIBA_GRANT_TYPE
    return next((DOT_GRANT_TYPES[name] for name in grant_types if name in DOT_GRANT_TYPES), "")


def _grant_types_valid(listed: Any) -> bool:
    return (
        isinstance(listed, list)
        and all(isinstance(name, str) and name in REGISTRABLE_GRANT_TYPES for name in listed)
        and len(set(listed)) == len(listed)
    )


# --- client secrets ------------------------------------------------------------------------

#: What a client secret needs to be stored with the keyed hash (``ciba.client_auth.hashers``)
#: and, unless ``ALLOW_LOW_ENTROPY_CLIENT_SECRETS``, to be registered at all.
MIN_SECRET_BITS = 256
#: Below this many distinct characters a secret is low-entropy whatever its length ("aaaa…").
MIN_DISTINCT_CHARACTERS = 8


def estimated_secret_bits(secret: str) -> float:
    """A conservative estimate of a secret's entropy: its length times the bits per character
    of the smallest usual alphabet that holds it (hex, digits, letters, base64url, printable).

    It cannot tell a random string from a chosen one of the same alphabet, so it is generous to
    chosen secrets; what it refuses for sure is short ones, repetitive ones (bounded by what
    zlib cannot compress away) and ones of few distinct characters.
    """
    if not secret:
        return 0.0
    distinct = set(secret)
    if len(distinct) < MIN_DISTINCT_CHARACTERS:
        return len(secret) * math.log2(len(distinct)) if len(distinct) > 1 else 0.0
    alphabet = next((a for a in _ALPHABETS if distinct <= a), None)
    per_character = math.log2(len(alphabet) if alphabet else max(len(_PRINTABLE), len(distinct)))
    # Repetition ("password123" five times) compresses: what zlib leaves is an upper bound.
    compressed = len(zlib.compress(secret.encode("utf-8", "surrogatepass"), 9)) - _ZLIB_OVERHEAD
    return min(len(secret) * per_character, compressed * 8.0)


_ZLIB_OVERHEAD = 6  # header and checksum bytes of zlib.compress
_PRINTABLE = frozenset(string.ascii_letters + string.digits + string.punctuation)
_ALPHABETS = (
    frozenset(string.digits),
    frozenset("0123456789abcdef"),
    frozenset("0123456789ABCDEF"),
    frozenset(string.ascii_lowercase + string.digits),
    frozenset(string.ascii_letters + string.digits),
    frozenset(string.ascii_letters + string.digits + "-_"),
    frozenset(string.ascii_letters + string.digits + "+/="),
    _PRINTABLE,
)


def strong_client_secret(secret: str) -> bool:
    return estimated_secret_bits(secret) >= MIN_SECRET_BITS


# --- the FAPI-CIBA profile -----------------------------------------------------------------


class FapiRule(NamedTuple):
    #: The problem's code ("" for a rule the admin states but registration does not check).
    code: str
    #: What a registration breaking it is told.
    reason: str
    #: The rule as the admin states it after the field's help text.
    hint: Any


#: What FAPI-CIBA (FAPI 1 Advanced §5.2.2, §8.6; FAPI-CIBA §5.2.2) asks of each field it constrains.
FAPI_RULES = {
    "token_endpoint_auth_method": FapiRule(
        "fapi_auth_method",
        "FAPI-CIBA allows private_key_jwt, tls_client_auth or self_signed_tls_client_auth only",
        _(
            "FAPI-CIBA: private_key_jwt, tls_client_auth or self_signed_tls_client_auth only (the mTLS "
            'methods need CIBA["MTLS_CERT_HEADER"]).'
        ),
    ),
    "token_endpoint_auth_signing_alg": FapiRule(
        "fapi_assertion_alg",
        "FAPI-CIBA client assertions use PS256 or ES256",
        _("FAPI-CIBA: PS256 or ES256 for private_key_jwt (empty: either, as the client's key allows)."),
    ),
    "backchannel_authentication_request_signing_alg": FapiRule(
        "fapi_request_signing_alg",
        "FAPI-CIBA authentication requests are signed with PS256 or ES256",
        _("FAPI-CIBA: required, PS256 or ES256: every authentication request is a signed request object."),
    ),
    "id_token_signed_response_alg": FapiRule(
        "fapi_id_token_alg",
        "FAPI-CIBA ID tokens are signed with PS256 or ES256",
        _(
            "FAPI-CIBA: PS256 or ES256, signed with the server's key set (manage.py ciba_keys add --type "
            "rsa or --type ec)."
        ),
    ),
    "backchannel_token_delivery_mode": FapiRule(
        "fapi_push_mode",
        "FAPI-CIBA does not allow the push mode",
        _("FAPI-CIBA: poll or ping; push is not allowed."),
    ),
    "jwks": FapiRule(
        "fapi_weak_keys",
        "FAPI needs RSA keys of 2048 bits or more and EC keys on P-256",
        _("FAPI-CIBA: RSA keys of 2048 bits or more, EC keys on P-256 only."),
    ),
    "tls_client_certificate_bound_access_tokens": FapiRule(
        "",
        "",
        _(
            "FAPI-CIBA: every access token is sender-constrained: bound to this certificate (mTLS) or, "
            "if this is off, to a DPoP key."
        ),
    ),
}


# --- the rules, in the order they are reported ---------------------------------------------

Rule = Callable[[Any], Iterator[Problem]]
#: Each rule with whether it can block use; the order is the order of the reports.
_RULES: list[tuple[Rule, bool]] = []


def _rule(*, blocking: bool = False) -> Callable[[Rule], Rule]:
    def register(rule: Rule) -> Rule:
        _RULES.append((rule, blocking))
        return rule

    return register


@_rule(blocking=True)
def _ciba_registration(client: Any) -> Iterator[Problem]:
    """CIBA §4: a client with the CIBA grant registers a delivery mode (and only such a client),
    is confidential, uses a mode this server supports, and can receive ID tokens."""
    mode = client.backchannel_token_delivery_mode
    listed = lists_grant_types(client)
    uses_ciba = constants.CIBA_GRANT_TYPE in registered_grant_types(client)
    if not mode:
        if uses_ciba:
            yield Problem(
                "backchannel_token_delivery_mode",
                "grant_types_ciba_without_mode" if listed else "delivery_mode_missing",
                _("A client using the CIBA grant must register a token delivery mode (CIBA §4)."),
            )
        return  # not a CIBA client: nothing else here concerns it
    if not uses_ciba:
        yield Problem(
            "grant_types" if listed else "authorization_grant_type",
            "grant_types_mode_without_ciba" if listed else "grant_not_ciba",
            _("A client registering a token delivery mode must use the CIBA grant (CIBA §4)."),
            blocking=True,
            said_to_client="it is not registered for the CIBA grant",
        )
    if client.client_type != AbstractApplication.CLIENT_CONFIDENTIAL:
        yield Problem(
            "client_type",
            "not_confidential",
            _("CIBA clients must be confidential: they authenticate at every request."),
            blocking=True,
            said_to_client="it is not a confidential client",
        )
    supported_modes = profile.delivery_modes()
    if mode not in supported_modes:
        yield Problem(
            "backchannel_token_delivery_mode",
            "delivery_mode_unsupported",
            _("This server supports the delivery modes %(modes)s only.")
            % {"modes": ", ".join(supported_modes) or "-"},
            blocking=True,
            said_to_client="its token delivery mode is not supported by this server",
        )
    yield from _id_token_signing(client)


def _id_token_signing(client: Any) -> Iterator[Problem]:
    """ID tokens are part of every CIBA token response; DOT cannot sign them without an
    algorithm (``id_token_signed_response_alg`` signs with this server's key set instead)."""
    if client.algorithm == AbstractApplication.NO_ALGORITHM and not client.id_token_signed_response_alg:
        yield Problem(
            "algorithm",
            "id_token_alg_missing",
            _(
                "CIBA clients receive ID tokens: choose RS256 (signed with the server's key; "
                "the usual choice) or HS256 (signed with the unhashed client secret)."
            ),
            blocking=True,
            said_to_client="it has no ID token signing algorithm",
        )
    if client.algorithm != AbstractApplication.HS256_ALGORITHM:
        return
    secret = client.client_secret
    if not client.id_token_signed_response_alg and (not secret or client._client_secret_is_hashed(secret)):
        # The stored secret, whatever the flag says (rows also change through the ORM).
        yield Problem(
            "hash_client_secret",
            "hs256_secret_unavailable",
            "HS256 ID tokens need its client secret stored unhashed",
            blocking=True,
            registration=False,
        )
    if client.hash_client_secret:
        yield Problem(
            "hash_client_secret",
            "hs256_secret_hashed",
            _("HS256 ID tokens are signed with the client secret, so it must be stored unhashed."),
        )


@_rule()
def _grant_types(client: Any) -> Iterator[Problem]:
    """RFC 7591 §2.1: the grant types a client lists must make sense together. Only rows that
    list ``grant_types`` are judged: an empty list keeps the single grant DOT validates."""
    listed = getattr(client, "grant_types", None)
    if not listed:
        return
    if not _grant_types_valid(listed):
        yield Problem(
            "grant_types",
            "grant_types_invalid",
            _("grant_types must be a list without repeats of %(names)s.")
            % {"names": ", ".join(REGISTRABLE_GRANT_TYPES)},
        )
        return
    if "refresh_token" in listed and not any(name in ISSUE_REFRESH_TOKENS for name in listed):
        yield Problem(
            "grant_types",
            "grant_types_refresh_without_grant",
            _("refresh_token needs a grant that issues refresh tokens: %(names)s.")
            % {"names": " or ".join(ISSUE_REFRESH_TOKENS)},
        )
    if not dot_grant_type(listed):
        return  # refresh_token alone, reported above: nothing else to compare
    if client.authorization_grant_type != dot_grant_type(listed):
        yield Problem(
            "authorization_grant_type",
            "grant_types_primary_mismatch",
            _("The authorization grant type must be %(grant)s for these grant types.")
            % {"grant": dot_grant_type(listed)},
        )
    if "authorization_code" in listed and not (client.redirect_uris or "").split():
        yield Problem(
            "redirect_uris",
            "grant_types_redirect_uris_missing",
            _("The authorization_code grant needs at least one redirect URI."),
        )
    if "client_credentials" in listed and client.client_type != AbstractApplication.CLIENT_CONFIDENTIAL:
        yield Problem(
            "client_type",
            "grant_types_client_credentials_public",
            _("The client_credentials grant is for confidential clients only (RFC 6749 §4.4)."),
        )


@_rule()
def _notification_endpoint(client: Any) -> Iterator[Problem]:
    mode = client.backchannel_token_delivery_mode
    endpoint = client.backchannel_client_notification_endpoint
    if mode in constants.NOTIFICATION_MODES and not endpoint:
        yield Problem(
            "backchannel_client_notification_endpoint",
            "notification_endpoint_missing",
            _("The %(mode)s mode needs a client notification endpoint.") % {"mode": mode},
        )
    if endpoint:
        yield from _outbound_url("backchannel_client_notification_endpoint", endpoint)


@_rule()
def _signed_requests(client: Any) -> Iterator[Problem]:
    alg = client.backchannel_authentication_request_signing_alg
    if not alg:
        return
    supported_algs = profile.request_signing_algs()
    if alg not in supported_algs:
        yield Problem(
            "backchannel_authentication_request_signing_alg",
            "request_signing_alg_unsupported",
            _("This server accepts signed requests with %(algs)s only.")
            % {"algs": ", ".join(supported_algs) or "-"},
        )
    if not client.jwks and not client.jwks_uri:
        yield Problem(
            "jwks",
            "request_signing_keys_missing",
            _("Signed authentication requests need the client's jwks or jwks_uri."),
        )


@_rule()
def _user_codes(client: Any) -> Iterator[Problem]:
    if client.backchannel_user_code_parameter and not ciba_settings.USER_CODE_SUPPORTED:
        yield Problem(
            "backchannel_user_code_parameter",
            "user_code_unsupported",
            _("This server does not support user codes."),
        )


@_rule()
def _authorization_details_types(client: Any) -> Iterator[Problem]:
    """RFC 9396 §10: a client may register only types the server supports; a type the site
    later drops only stops being accepted (the backchannel refuses it), so it does not block."""
    listed = client.authorization_details_types
    if not listed:
        return
    if not isinstance(listed, list) or not all(isinstance(item, str) and item for item in listed):
        yield Problem(
            "authorization_details_types",
            "authorization_details_types_invalid",
            _("List the authorization details types as an array of type names."),
        )
        return
    supported = set(rar.supported_types())
    unsupported = [item for item in listed if item not in supported]
    if unsupported:
        yield Problem(
            "authorization_details_types",
            "authorization_details_type_unsupported",
            _(
                "This server does not support the authorization details type(s) %(types)s "
                "(supported: %(supported)s)."
            )
            % {
                "types": ", ".join(unsupported),
                "supported": ", ".join(sorted(supported)) or _("none"),
            },
        )


@_rule()
def _jwt_client_authentication(client: Any) -> Iterator[Problem]:
    method = client.token_endpoint_auth_method
    if method == constants.AUTH_PRIVATE_KEY_JWT and not client.jwks and not client.jwks_uri:
        yield Problem(
            "jwks", "private_key_jwt_keys_missing", _("private_key_jwt needs the client's jwks or jwks_uri.")
        )
    if method == constants.AUTH_CLIENT_SECRET_JWT and client.hash_client_secret:
        yield Problem(
            "hash_client_secret",
            "client_secret_jwt_secret_hashed",
            _(
                "client_secret_jwt verifies an HMAC keyed with the client secret, so the "
                "secret must be stored unhashed."
            ),
        )


@_rule()
def _mutual_tls(client: Any) -> Iterator[Problem]:
    """RFC 8705 §2.1.2: a ``tls_client_auth`` client registers exactly one certificate name;
    §2.2: a ``self_signed_tls_client_auth`` client registers its keys. One binding only."""
    method = client.token_endpoint_auth_method
    names = [f for f in constants.TLS_CLIENT_AUTH_NAME_FIELDS if getattr(client, f)]
    if method == constants.AUTH_TLS_CLIENT_AUTH and len(names) != 1:
        yield Problem(
            "tls_client_auth_subject_dn",
            "tls_client_auth_names",
            _(
                "tls_client_auth needs exactly one of the subject DN or a subjectAltName "
                "(DNS, URI, IP or email) the certificate must carry (RFC 8705 §2.1.2)."
            ),
        )
    if method != constants.AUTH_TLS_CLIENT_AUTH and names:
        yield Problem(
            names[0], "tls_client_auth_names_unused", _("Certificate names are used by tls_client_auth only.")
        )
    if client.tls_client_auth_subject_dn:
        try:
            x509.Name.from_rfc4514_string(client.tls_client_auth_subject_dn)
        except ValueError:
            yield Problem(
                "tls_client_auth_subject_dn", "subject_dn_invalid", _("Not a distinguished name (RFC 4514).")
            )
    if method == constants.AUTH_SELF_SIGNED_TLS_CLIENT_AUTH and not client.jwks and not client.jwks_uri:
        yield Problem(
            "jwks",
            "self_signed_keys_missing",
            _("self_signed_tls_client_auth needs the certificate's key in jwks or jwks_uri."),
        )
    if client.tls_client_certificate_bound_access_tokens and client.dpop_bound_access_tokens:
        yield Problem(
            "dpop_bound_access_tokens",
            "two_token_bindings",
            _("Tokens are bound to a certificate or to a DPoP key, not both: choose one."),
        )


@_rule()
def _client_secret(client: Any) -> Iterator[Problem]:
    """A new client secret (not yet hashed) needs 256 bits of entropy: it is then stored under
    a keyed hash that costs microseconds to check (``ciba.client_auth.hashers``). A weaker,
    site-chosen one is accepted only with ``ALLOW_LOW_ENTROPY_CLIENT_SECRETS`` (it keeps the
    slow password hash, and ``check --deploy`` warns). Generated secrets always pass."""
    secret = client.client_secret
    if not secret or ciba_settings.ALLOW_LOW_ENTROPY_CLIENT_SECRETS:
        return
    if client._client_secret_is_hashed(secret) or strong_client_secret(secret):
        return
    yield Problem(
        "client_secret",
        "client_secret_weak",
        _(
            "This client secret is too easy to guess (about %(bits)d bits; %(min)d needed). "
            'Keep the generated one, or generate one such as python -c "import secrets; '
            'print(secrets.token_urlsafe(32))".'
        )
        % {"bits": int(estimated_secret_bits(secret)), "min": MIN_SECRET_BITS},
    )


@_rule(blocking=True)
def _fapi_profile(client: Any) -> Iterator[Problem]:
    """What FAPI-CIBA forbids in a CIBA client's registration (other clients, a device app say,
    are not CIBA clients of the profile): PS256 or ES256 for signed requests, client assertions
    and ID tokens; private_key_jwt or mTLS client authentication; poll or ping; strong keys."""
    if not profile.fapi() or not client.backchannel_token_delivery_mode:
        return
    broken = []
    if client.token_endpoint_auth_method not in constants.FAPI_AUTH_METHODS:
        broken.append(("token_endpoint_auth_method", ""))
    # Empty registers no algorithm: the profile narrows what the token endpoint accepts to its
    # own (ciba.profile), and _keys_for_algorithms asks for a key that can make one of them.
    assertion_alg = client.token_endpoint_auth_signing_alg
    if (
        client.token_endpoint_auth_method == constants.AUTH_PRIVATE_KEY_JWT
        and assertion_alg
        and assertion_alg not in constants.FAPI_ALGS
    ):
        broken.append(("token_endpoint_auth_signing_alg", ""))
    if client.backchannel_authentication_request_signing_alg not in constants.FAPI_ALGS:
        broken.append(("backchannel_authentication_request_signing_alg", ""))
    if client.id_token_signed_response_alg not in constants.FAPI_ALGS:
        broken.append(("id_token_signed_response_alg", ""))
    if client.backchannel_token_delivery_mode == constants.MODE_PUSH:
        broken.append(("backchannel_token_delivery_mode", ""))
    if isinstance(client.jwks, dict) and (weak := weak_keys(client.jwks)):
        broken.append(("jwks", f" ({weak})"))
    for field, detail in broken:
        rule = FAPI_RULES[field]
        yield Problem(field, rule.code, rule.reason + detail, blocking=True, by_profile=True)


@_rule()
def _assertion_algorithm(client: Any) -> Iterator[Problem]:
    method, alg = client.token_endpoint_auth_method, client.token_endpoint_auth_signing_alg
    if alg and method == constants.AUTH_CLIENT_SECRET_JWT and alg not in constants.HMAC_JWS_ALGORITHMS:
        yield Problem(
            "token_endpoint_auth_signing_alg",
            "assertion_alg_not_hmac",
            _("client_secret_jwt assertions use HS256, HS384 or HS512."),
        )
    if alg and method == constants.AUTH_PRIVATE_KEY_JWT and alg in constants.HMAC_JWS_ALGORITHMS:
        yield Problem(
            "token_endpoint_auth_signing_alg",
            "assertion_alg_hmac",
            _("private_key_jwt assertions use an asymmetric algorithm."),
        )


@_rule()
def _client_keys(client: Any) -> Iterator[Problem]:
    if client.jwks and client.jwks_uri:
        yield Problem(
            "jwks_uri", "jwks_and_jwks_uri", _("Register either jwks or jwks_uri, not both (RFC 7591 §2).")
        )
    if client.jwks:
        try:
            validate_public_jwks(client.jwks)
        except ValidationError as exc:
            for message in exc.messages:
                yield Problem("jwks", "jwks_invalid", message)
    if client.jwks_uri:
        yield from _outbound_url("jwks_uri", client.jwks_uri)


@_rule()
def _subject_identifiers(client: Any) -> Iterator[Problem]:
    """OIDC Core §8, OpenID Connect Registration §2: a ``subject_type`` this server offers
    (``SUBJECT_TYPES_SUPPORTED``; a stored one the site stopped offering keeps working, so it
    does not block); a ``sector_identifier_uri`` this server may fetch; and a pairwise client
    whose redirect URIs span several hosts names its sector with one (OIDC Core §8.1), since
    no single host is its sector. What the document says is checked where it is fetched
    (``ciba.subjects.verify_sector_identifier``): nothing here touches the network."""
    chosen = getattr(client, "subject_type", "") or ""
    supported = list(ciba_settings.SUBJECT_TYPES_SUPPORTED)
    if chosen and chosen not in supported:
        yield Problem(
            "subject_type",
            "subject_type_unsupported",
            _("This server offers the subject types %(types)s only.")
            % {"types": ", ".join(supported) or "-"},
        )
    uri = getattr(client, "sector_identifier_uri", "") or ""
    if uri:
        yield from _outbound_url("sector_identifier_uri", uri)
    pairwise = (chosen or ciba_settings.DEFAULT_SUBJECT_TYPE) == "pairwise"
    if pairwise and not uri and len(redirect_hosts(client)) > 1:
        yield Problem(
            "sector_identifier_uri",
            "sector_identifier_uri_required",
            _(
                "A pairwise client whose redirect URIs are on several hosts must register a "
                "sector_identifier_uri (OpenID Connect Core 8.1)."
            ),
        )


def url_host(url: str) -> str:
    """The host of ``url``, lower-cased, without port (``""``: none, or not a URL)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        return ""


def redirect_hosts(client: Any) -> list[str]:
    """The distinct hosts of ``client``'s redirect URIs, in order (a custom-scheme URI without
    a host has none)."""
    hosts = (url_host(uri) for uri in (getattr(client, "redirect_uris", "") or "").split())
    return list(dict.fromkeys(host for host in hosts if host))


def key_requirement(alg: str) -> tuple[str, tuple[str, ...]] | None:
    """The key type, and the curves (empty: any), of a key that can produce ``alg``
    (``ciba.constants.JWS_KEY_TYPES``, the table verification uses too); ``None`` for a name of
    no asymmetric family (HMAC, ``none``): no key of the client's produces it."""
    return constants.JWS_KEY_TYPES.get(alg)


def can_produce(jwk: Any, alg: str) -> bool:
    """Whether the public JWK ``jwk`` verifies what its private half signs with ``alg``: the
    right type and curve (``ciba.jose.key_fits``), a signing key (no ``"use": "enc"``), and no
    ``alg`` of its own naming another algorithm (``ciba.jose.jws.verify`` would not try it for
    ``alg``)."""
    if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
        return False
    return key_fits(jwk, alg)


def _key_description(alg: str) -> str:
    kty, curves = key_requirement(alg) or ("", ())
    kind = {"RSA": "an RSA key", "EC": "an EC key", "OKP": "an OKP key"}.get(kty, "a key")
    return f"{kind} on {' or '.join(curves)}" if curves else kind


@_rule()
def _keys_for_algorithms(client: Any) -> Iterator[Problem]:
    """A client whose keys are registered inline (``jwks``) holds a key for each algorithm it
    registered to sign with, so that a key set which can never verify its client assertions or
    signed requests is refused when it is registered, not at the first request (where the client
    is only told the signature does not verify). An empty ``token_endpoint_auth_signing_alg``
    registers no algorithm: any key that can produce one the server accepts will do. Keys behind
    a ``jwks_uri`` change without this server: they are judged when used."""
    keys = client.jwks.get("keys") if isinstance(client.jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        return  # no inline keys, or a set _client_keys refuses
    signs_assertions = client.token_endpoint_auth_method == constants.AUTH_PRIVATE_KEY_JWT
    assertion_alg = client.token_endpoint_auth_signing_alg
    if signs_assertions and not assertion_alg:
        accepted = profile.jws_algs(constants.ASYMMETRIC_JWS_ALGORITHMS)
        if not any(can_produce(key, alg) for key in keys for alg in accepted):
            yield Problem(
                "jwks",
                "jwks_no_signing_key",
                _(
                    "jwks holds no key that can sign private_key_jwt client assertions with an "
                    'algorithm this server accepts (%(algs)s); a key with "use": "enc" does not count.'
                )
                % {"algs": ", ".join(accepted) or "-"},
            )
    request_alg = client.backchannel_authentication_request_signing_alg
    registered = {
        "token_endpoint_auth_signing_alg": assertion_alg if signs_assertions else "",
        "backchannel_authentication_request_signing_alg": request_alg,
    }
    for field, alg in registered.items():
        if not alg or key_requirement(alg) is None:
            continue  # nothing registered, or an algorithm other rules refuse
        if not any(can_produce(key, alg) for key in keys):
            yield Problem(
                "jwks",
                "jwks_no_key_for_alg",
                _(
                    "jwks holds no key that can sign %(alg)s, the %(field)s registered: it needs "
                    '%(key)s (a key with "use": "enc", or an "alg" naming another algorithm, does not '
                    "count)."
                )
                % {"alg": alg, "field": field, "key": _key_description(alg)},
            )


def _outbound_url(field: str, url: str) -> Iterator[Problem]:
    try:
        validate_outbound_url(url)
    except ValidationError as exc:
        for message in exc.messages:
            yield Problem(field, "url_refused", message)
