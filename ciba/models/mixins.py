"""CIBA client registration metadata as columns of the OAuth application table."""

from __future__ import annotations

import math
import string
import zlib
from collections import defaultdict
from typing import Any

from cryptography import x509
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import AbstractApplication

from .. import constants, profile
from ..conf import ciba_settings
from ..jose import validate_public_jwks, weak_keys
from ..outbound import validate_outbound_url

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


class CibaClientMixin(models.Model):
    """Abstract mixin adding the CIBA registration metadata (CIBA §4) to an Application.

    Field names are exactly the registration metadata names, so a registration document
    maps 1:1 onto a row. Put the mixin **before** ``AbstractApplication`` in the bases:
    it redeclares ``authorization_grant_type`` to add the CIBA grant to the choices, and
    Django takes a field from the first base that declares it::

        class Application(CibaClientMixin, AbstractApplication):
            class Meta(AbstractApplication.Meta):
                swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"

    A client registers for CIBA with the CIBA grant as its grant type and a
    ``backchannel_token_delivery_mode`` (CIBA §4). It takes part only while its registration
    is usable (``ciba_problems()`` is empty): confidential, a mode this server supports, and an
    ID-token signing algorithm. ``clean()`` refuses anything else; the endpoints re-check at
    request time, because rows also arrive through the ORM, fixtures and data migrations.
    """

    GRANT_CIBA = constants.CIBA_GRANT_TYPE
    GRANT_TYPES = AbstractApplication.GRANT_TYPES + ((GRANT_CIBA, _("Client-initiated backchannel (CIBA)")),)

    DELIVERY_MODE_CHOICES = (
        (constants.MODE_POLL, _("Poll")),
        (constants.MODE_PING, _("Ping")),
        (constants.MODE_PUSH, _("Push")),
    )
    AUTH_METHOD_CHOICES = tuple((method, method) for method in constants.TOKEN_ENDPOINT_AUTH_METHODS)
    SIGNING_ALG_CHOICES = tuple((alg, alg) for alg in constants.ASYMMETRIC_JWS_ALGORITHMS)
    ID_TOKEN_ALG_CHOICES = tuple((alg, alg) for alg in constants.ID_TOKEN_SIGNING_ALGS)
    AUTH_SIGNING_ALG_CHOICES = tuple(
        (alg, alg) for alg in constants.HMAC_JWS_ALGORITHMS + constants.ASYMMETRIC_JWS_ALGORITHMS
    )
    #: The assertion algorithm used when ``token_endpoint_auth_signing_alg`` is left empty.
    DEFAULT_AUTH_SIGNING_ALGS = {
        constants.AUTH_CLIENT_SECRET_JWT: "HS256",
        constants.AUTH_PRIVATE_KEY_JWT: "RS256",
    }

    authorization_grant_type = models.CharField(
        max_length=44, choices=GRANT_TYPES, verbose_name=_("authorization grant type")
    )
    backchannel_token_delivery_mode = models.CharField(
        max_length=8,
        choices=DELIVERY_MODE_CHOICES,
        blank=True,
        verbose_name=_("backchannel token delivery mode"),
        help_text=_("How this client receives CIBA results. Leave empty for clients that do not use CIBA."),
    )
    backchannel_client_notification_endpoint = models.URLField(
        max_length=2000,
        blank=True,
        verbose_name=_("backchannel client notification endpoint"),
        help_text=_("HTTPS URL the server calls in ping and push modes."),
    )
    backchannel_authentication_request_signing_alg = models.CharField(
        max_length=8,
        choices=SIGNING_ALG_CHOICES,
        blank=True,
        verbose_name=_("backchannel authentication request signing algorithm"),
        help_text=_("When set, this client must send signed authentication requests with this algorithm."),
    )
    backchannel_user_code_parameter = models.BooleanField(
        default=False,
        verbose_name=_("backchannel user code parameter"),
        help_text=_("Whether this client sends the user_code parameter."),
    )
    token_endpoint_auth_method = models.CharField(
        max_length=32,
        choices=AUTH_METHOD_CHOICES,
        default=constants.AUTH_CLIENT_SECRET_BASIC,
        verbose_name=_("token endpoint authentication method"),
        help_text=_("How this client authenticates at the backchannel and token endpoints."),
    )
    token_endpoint_auth_signing_alg = models.CharField(
        max_length=8,
        choices=AUTH_SIGNING_ALG_CHOICES,
        blank=True,
        verbose_name=_("token endpoint authentication signing algorithm"),
        help_text=_(
            "The only algorithm accepted for this client's JWT assertions. Empty: HS256 for "
            "client_secret_jwt, RS256 for private_key_jwt."
        ),
    )
    jwks = models.JSONField(
        null=True,
        blank=True,
        verbose_name=_("JWKS"),
        help_text=_('The client\'s public keys as a JWK Set ({"keys": [...]}).'),
    )
    jwks_uri = models.URLField(
        max_length=2000,
        blank=True,
        verbose_name=_("JWKS URI"),
        help_text=_("HTTPS URL of the client's public JWK Set."),
    )

    # --- mutual TLS (RFC 8705 §2.1.2: a tls_client_auth client registers exactly one name) ---
    tls_client_auth_subject_dn = models.CharField(
        max_length=500,
        blank=True,
        verbose_name=_("TLS client auth subject DN"),
        help_text=_("tls_client_auth: the certificate's subject DN (RFC 4514), e.g. CN=kiosk-7,O=Shop."),
    )
    tls_client_auth_san_dns = models.CharField(
        max_length=253,
        blank=True,
        verbose_name=_("TLS client auth SAN DNS"),
        help_text=_("tls_client_auth: a dNSName the certificate's subjectAltName must contain."),
    )
    tls_client_auth_san_uri = models.CharField(
        max_length=2000,
        blank=True,
        verbose_name=_("TLS client auth SAN URI"),
        help_text=_("tls_client_auth: a URI the certificate's subjectAltName must contain."),
    )
    tls_client_auth_san_ip = models.CharField(
        max_length=45,
        blank=True,
        verbose_name=_("TLS client auth SAN IP"),
        help_text=_("tls_client_auth: an IP address the certificate's subjectAltName must contain."),
    )
    tls_client_auth_san_email = models.CharField(
        max_length=254,
        blank=True,
        verbose_name=_("TLS client auth SAN email"),
        help_text=_("tls_client_auth: an rfc822Name the certificate's subjectAltName must contain."),
    )
    # --- sender-constrained tokens (RFC 8705 §3, RFC 9449 §5.2) ---
    tls_client_certificate_bound_access_tokens = models.BooleanField(
        default=False,
        verbose_name=_("certificate-bound access tokens"),
        help_text=_(
            "Every token request must come over mutual TLS; the tokens are bound to the certificate "
            "(cnf.x5t#S256). Tokens are bound whenever a certificate is presented, even when this is off."
        ),
    )
    dpop_bound_access_tokens = models.BooleanField(
        default=False,
        verbose_name=_("DPoP-bound access tokens"),
        help_text=_("Every token request must carry a DPoP proof (RFC 9449); tokens are bound to its key."),
    )
    # --- ID tokens (OpenID Connect Dynamic Client Registration §2) ---
    id_token_signed_response_alg = models.CharField(
        max_length=8,
        choices=ID_TOKEN_ALG_CHOICES,
        blank=True,
        verbose_name=_("ID token signing algorithm"),
        help_text=_(
            "Sign this client's ID tokens with the server's key set (manage.py ciba_keys). Empty: "
            "DOT's algorithm field decides (RS256 with OIDC_RSA_PRIVATE_KEY, or HS256)."
        ),
    )

    class Meta:
        abstract = True

    # --- what the client may do -------------------------------------------------------

    @property
    def registers_ciba(self) -> bool:
        """It registered CIBA metadata (a delivery mode), usable or not."""
        return bool(self.backchannel_token_delivery_mode)

    @property
    def is_ciba_client(self) -> bool:
        """It may use CIBA now: registered, and nothing in ``ciba_problems()``."""
        return self.registers_ciba and not self.ciba_problems()

    def ciba_problems(self) -> list[str]:
        """Why this registration cannot take part in CIBA, in words safe to tell the client."""
        problems = []
        if self.authorization_grant_type != constants.CIBA_GRANT_TYPE:
            problems.append("it is not registered for the CIBA grant")
        if self.client_type != AbstractApplication.CLIENT_CONFIDENTIAL:
            problems.append("it is not a confidential client")
        if self.backchannel_token_delivery_mode not in profile.delivery_modes():
            problems.append("its token delivery mode is not supported by this server")
        if problem := self._signing_problem():
            problems.append(problem)
        problems.extend(message for _field, message in self.profile_problems())
        return problems

    def profile_problems(self) -> list[tuple[str, str]]:
        """What the security profile in force (``CIBA["PROFILE"]``) forbids in this
        registration, as ``(field, reason)``; empty without a profile. FAPI-CIBA: PS256 or
        ES256 for signed requests, client assertions and ID tokens; private_key_jwt or mTLS
        client authentication; poll or ping; strong registered keys."""
        if not profile.fapi() or not self.registers_ciba:
            return []  # other clients (a device app, say) are not CIBA clients of the profile
        found: list[tuple[str, str]] = []
        if self.token_endpoint_auth_method not in constants.FAPI_AUTH_METHODS:
            found.append(
                (
                    "token_endpoint_auth_method",
                    "FAPI-CIBA allows private_key_jwt, tls_client_auth or self_signed_tls_client_auth only",
                )
            )
        if (
            self.token_endpoint_auth_method == constants.AUTH_PRIVATE_KEY_JWT
            and self.client_assertion_alg not in constants.FAPI_ALGS
        ):
            found.append(
                ("token_endpoint_auth_signing_alg", "FAPI-CIBA client assertions use PS256 or ES256")
            )
        if self.backchannel_authentication_request_signing_alg not in constants.FAPI_ALGS:
            found.append(
                (
                    "backchannel_authentication_request_signing_alg",
                    "FAPI-CIBA authentication requests are signed with PS256 or ES256",
                )
            )
        if self.id_token_signed_response_alg not in constants.FAPI_ALGS:
            found.append(
                ("id_token_signed_response_alg", "FAPI-CIBA ID tokens are signed with PS256 or ES256")
            )
        if self.backchannel_token_delivery_mode == constants.MODE_PUSH:
            found.append(("backchannel_token_delivery_mode", "FAPI-CIBA does not allow the push mode"))
        if isinstance(self.jwks, dict):
            weak = weak_keys(self.jwks)
            if weak:
                found.append(
                    ("jwks", f"FAPI needs RSA keys of 2048 bits or more and EC keys on P-256 ({weak})")
                )
        return found

    def _secret_errors(self) -> list[tuple[str, Any]]:
        """A new client secret (not yet hashed) needs 256 bits of entropy: it is then stored under
        a keyed hash that costs microseconds to check (``ciba.client_auth.hashers``). A weaker,
        site-chosen one is accepted only with ``ALLOW_LOW_ENTROPY_CLIENT_SECRETS`` (it keeps the
        slow password hash, and ``check --deploy`` warns). Generated secrets always pass."""
        secret = self.client_secret
        if not secret or ciba_settings.ALLOW_LOW_ENTROPY_CLIENT_SECRETS:
            return []
        if self._client_secret_is_hashed(secret) or strong_client_secret(secret):
            return []
        return [
            (
                "client_secret",
                _(
                    "This client secret is too easy to guess (about %(bits)d bits; %(min)d needed). "
                    'Keep the generated one, or generate one such as python -c "import secrets; '
                    'print(secrets.token_urlsafe(32))".'
                )
                % {"bits": int(estimated_secret_bits(secret)), "min": MIN_SECRET_BITS},
            )
        ]

    def _signing_problem(self) -> str:
        """ID tokens are part of every CIBA token response; DOT cannot sign them without this
        (``id_token_signed_response_alg`` signs with this server's key set instead)."""
        if self.id_token_signed_response_alg:
            return ""
        if self.algorithm == AbstractApplication.NO_ALGORITHM:
            return "it has no ID token signing algorithm"
        if self.algorithm == AbstractApplication.HS256_ALGORITHM and (
            not self.client_secret or self._client_secret_is_hashed(self.client_secret)
        ):
            return "HS256 ID tokens need its client secret stored unhashed"
        return ""

    @property
    def uses_token_endpoint_for_ciba(self) -> bool:
        """Poll and ping clients collect tokens at the token endpoint; push clients may not (§11)."""
        return self.backchannel_token_delivery_mode in constants.TOKEN_ENDPOINT_MODES

    @property
    def receives_notifications(self) -> bool:
        return self.backchannel_token_delivery_mode in constants.NOTIFICATION_MODES

    @property
    def client_assertion_alg(self) -> str:
        """The pinned JWS algorithm of this client's client assertions (RFC 7523)."""
        method = self.token_endpoint_auth_method
        return self.token_endpoint_auth_signing_alg or self.DEFAULT_AUTH_SIGNING_ALGS.get(method, "")

    def allows_grant_type(self, *grant_types: str) -> bool:
        """DOT asks this before running a grant; CIBA clients get the CIBA and refresh grants.

        The CIBA grant is allowed to poll and ping clients only: a push-mode client asking
        for it is ``unauthorized_client`` (CIBA §11). ``"refresh_token"`` is the OAuth grant
        name; DOT's own validator asks about refresh with a tuple of DOT grant names, which
        ``ciba.oauth.validators.CibaValidator`` translates.
        """
        if (
            constants.CIBA_GRANT_TYPE in grant_types
            and self.uses_token_endpoint_for_ciba
            and self.is_ciba_client
        ):
            return True
        if "refresh_token" in grant_types and self.is_ciba_client:
            return True
        # The CIBA grant is decided above only: DOT's equality test on the main grant type
        # would let a push-mode (or mode-less) client with the CIBA grant type poll.
        others = [g for g in grant_types if g != constants.CIBA_GRANT_TYPE]
        return bool(others) and super().allows_grant_type(*others)

    # --- validation -----------------------------------------------------------------------

    def clean(self) -> None:
        """Validate DOT's fields and the CIBA metadata, each error keyed by its field."""
        field_errors: dict[str, list[Any]] = defaultdict(list)
        try:
            super().clean()
        except ValidationError as exc:
            for field, messages in exc.update_error_dict({}).items():
                field_errors[field].extend(messages)
        for field, message in self._ciba_errors():
            field_errors[field].append(message)
        if field_errors:
            raise ValidationError(dict(field_errors))

    def _ciba_errors(self) -> list[tuple[str, Any]]:
        errors: list[tuple[str, Any]] = []
        mode = self.backchannel_token_delivery_mode
        supported_modes = profile.delivery_modes()

        if self.authorization_grant_type == constants.CIBA_GRANT_TYPE and not mode:
            errors.append(
                (
                    "backchannel_token_delivery_mode",
                    _("A client using the CIBA grant must register a token delivery mode (CIBA §4)."),
                )
            )
        if mode and self.authorization_grant_type != constants.CIBA_GRANT_TYPE:
            errors.append(
                (
                    "authorization_grant_type",
                    _("A client registering a token delivery mode must use the CIBA grant (CIBA §4)."),
                )
            )
        if (
            mode
            and self.algorithm == AbstractApplication.NO_ALGORITHM
            and not self.id_token_signed_response_alg
        ):
            errors.append(
                (
                    "algorithm",
                    _(
                        "CIBA clients receive ID tokens: choose RS256 (signed with the server's key; "
                        "the usual choice) or HS256 (signed with the unhashed client secret)."
                    ),
                )
            )
        if mode and self.algorithm == AbstractApplication.HS256_ALGORITHM and self.hash_client_secret:
            errors.append(
                (
                    "hash_client_secret",
                    _("HS256 ID tokens are signed with the client secret, so it must be stored unhashed."),
                )
            )
        if mode and mode not in supported_modes:
            errors.append(
                (
                    "backchannel_token_delivery_mode",
                    _("This server supports the delivery modes %(modes)s only.")
                    % {"modes": ", ".join(supported_modes) or "-"},
                )
            )
        if mode and self.client_type != AbstractApplication.CLIENT_CONFIDENTIAL:
            errors.append(
                ("client_type", _("CIBA clients must be confidential: they authenticate at every request."))
            )

        endpoint = self.backchannel_client_notification_endpoint
        if mode in constants.NOTIFICATION_MODES and not endpoint:
            errors.append(
                (
                    "backchannel_client_notification_endpoint",
                    _("The %(mode)s mode needs a client notification endpoint.") % {"mode": mode},
                )
            )
        if endpoint:
            errors.extend(_outbound_url_errors("backchannel_client_notification_endpoint", endpoint))

        alg = self.backchannel_authentication_request_signing_alg
        if alg:
            supported_algs = profile.request_signing_algs()
            if alg not in supported_algs:
                errors.append(
                    (
                        "backchannel_authentication_request_signing_alg",
                        _("This server accepts signed requests with %(algs)s only.")
                        % {"algs": ", ".join(supported_algs) or "-"},
                    )
                )
            if not self.jwks and not self.jwks_uri:
                errors.append(
                    ("jwks", _("Signed authentication requests need the client's jwks or jwks_uri."))
                )

        if self.backchannel_user_code_parameter and not ciba_settings.USER_CODE_SUPPORTED:
            errors.append(("backchannel_user_code_parameter", _("This server does not support user codes.")))

        method = self.token_endpoint_auth_method
        if method == constants.AUTH_PRIVATE_KEY_JWT and not self.jwks and not self.jwks_uri:
            errors.append(("jwks", _("private_key_jwt needs the client's jwks or jwks_uri.")))
        if method == constants.AUTH_CLIENT_SECRET_JWT and self.hash_client_secret:
            errors.append(
                (
                    "hash_client_secret",
                    _(
                        "client_secret_jwt verifies an HMAC keyed with the client secret, so the "
                        "secret must be stored unhashed."
                    ),
                )
            )
        errors.extend(self._mtls_errors())
        errors.extend(self._secret_errors())
        errors.extend(self.profile_problems())
        auth_alg = self.token_endpoint_auth_signing_alg
        if (
            auth_alg
            and method == constants.AUTH_CLIENT_SECRET_JWT
            and auth_alg not in constants.HMAC_JWS_ALGORITHMS
        ):
            errors.append(
                (
                    "token_endpoint_auth_signing_alg",
                    _("client_secret_jwt assertions use HS256, HS384 or HS512."),
                )
            )
        if (
            auth_alg
            and method == constants.AUTH_PRIVATE_KEY_JWT
            and auth_alg in constants.HMAC_JWS_ALGORITHMS
        ):
            errors.append(
                (
                    "token_endpoint_auth_signing_alg",
                    _("private_key_jwt assertions use an asymmetric algorithm."),
                )
            )
        if self.jwks and self.jwks_uri:
            errors.append(("jwks_uri", _("Register either jwks or jwks_uri, not both (RFC 7591 §2).")))
        if self.jwks:
            try:
                validate_public_jwks(self.jwks)
            except ValidationError as exc:
                errors.extend(("jwks", message) for message in exc.messages)
        if self.jwks_uri:
            errors.extend(_outbound_url_errors("jwks_uri", self.jwks_uri))
        return errors

    def _mtls_errors(self) -> list[tuple[str, Any]]:
        """RFC 8705 §2.1.2: a ``tls_client_auth`` client registers exactly one certificate name;
        §2.2: a ``self_signed_tls_client_auth`` client registers its keys. One binding only."""
        errors: list[tuple[str, Any]] = []
        method = self.token_endpoint_auth_method
        names = [f for f in constants.TLS_CLIENT_AUTH_NAME_FIELDS if getattr(self, f)]
        if method == constants.AUTH_TLS_CLIENT_AUTH and len(names) != 1:
            errors.append(
                (
                    "tls_client_auth_subject_dn",
                    _(
                        "tls_client_auth needs exactly one of the subject DN or a subjectAltName "
                        "(DNS, URI, IP or email) the certificate must carry (RFC 8705 §2.1.2)."
                    ),
                )
            )
        if method != constants.AUTH_TLS_CLIENT_AUTH and names:
            errors.append((names[0], _("Certificate names are used by tls_client_auth only.")))
        if self.tls_client_auth_subject_dn:
            try:
                x509.Name.from_rfc4514_string(self.tls_client_auth_subject_dn)
            except ValueError:
                errors.append(("tls_client_auth_subject_dn", _("Not a distinguished name (RFC 4514).")))
        if method == constants.AUTH_SELF_SIGNED_TLS_CLIENT_AUTH and not self.jwks and not self.jwks_uri:
            errors.append(
                ("jwks", _("self_signed_tls_client_auth needs the certificate's key in jwks or jwks_uri."))
            )
        if self.tls_client_certificate_bound_access_tokens and self.dpop_bound_access_tokens:
            errors.append(
                (
                    "dpop_bound_access_tokens",
                    _("Tokens are bound to a certificate or to a DPoP key, not both: choose one."),
                )
            )
        return errors


def _outbound_url_errors(field: str, url: str) -> list[tuple[str, Any]]:
    try:
        validate_outbound_url(url)
    except ValidationError as exc:
        return [(field, message) for message in exc.messages]
    return []
