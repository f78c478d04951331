"""CIBA client registration metadata as columns of the OAuth application table."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import AbstractApplication

from .. import assurance, constants, registration_rules

#: ``approval_level`` choices: ciba.assurance's levels, weakest first.
APPROVAL_LEVEL_CHOICES = [
    (assurance.SESSION, _("A tap in the signed-in session")),
    (assurance.PASSWORD, _("Password re-entered at approval")),
    (assurance.PASSKEY, _("Passkey with user verification")),
    (assurance.PASSKEY_DEVICE_BOUND, _("Device-bound passkey with user verification")),
]


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
    request time, because rows also arrive through the ORM, fixtures and data migrations. Both
    read the one list of rules, ``ciba.registration_rules``.
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
            "The only algorithm accepted for this client's JWT assertions. Empty: any this server "
            "accepts for the method (HS256, HS384 or HS512 for client_secret_jwt; an asymmetric one "
            "its key can make for private_key_jwt)."
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
    # --- grants (RFC 7591 §2 grant_types): a client may hold several -------------------------
    grant_types = models.JSONField(
        default=list,
        blank=True,
        verbose_name=_("grant types"),
        help_text=_(
            "The OAuth grant types this client may use, by their registration names "
            "(urn:openid:params:grant-type:ciba, client_credentials, authorization_code, "
            "refresh_token). Empty: the authorization grant type alone, as before."
        ),
    )
    # --- rich authorization requests (RFC 9396 §10) -----------------------------------------
    authorization_details_types = models.JSONField(
        default=list,
        blank=True,
        verbose_name=_("authorization details types"),
        help_text=_(
            "The authorization_details types this client may send (RFC 9396 §10), among those the "
            "server supports (CIBA['AUTHORIZATION_DETAILS_TYPES']). Empty: none."
        ),
    )
    # --- authentication at approval (ciba.assurance, docs/authentication.md) -------------------
    approval_level = models.CharField(
        max_length=32,
        blank=True,
        choices=APPROVAL_LEVEL_CHOICES,
        verbose_name=_("approval level"),
        help_text=_(
            "How the user must authenticate to approve this client's requests, at least. Empty: "
            "the site's CIBA['APPROVAL_MINIMUM_LEVEL']."
        ),
    )
    # --- subject identifiers (OIDC Core §8; OpenID Connect Dynamic Client Registration §2) ---
    subject_type = models.CharField(
        max_length=16,
        blank=True,
        choices=[("public", _("public")), ("pairwise", _("pairwise"))],
        verbose_name=_("subject type"),
        help_text=_(
            "public: every client sees the same sub for a user; pairwise: this client's sector sees "
            "its own. Empty: CIBA['DEFAULT_SUBJECT_TYPE']."
        ),
    )
    sector_identifier_uri = models.URLField(
        max_length=2000,
        blank=True,
        verbose_name=_("sector identifier URI"),
        help_text=_(
            "https URL of a JSON array of this client's URLs; its host is the pairwise sector "
            "(OIDC Core 8.1), shared by the clients that name it."
        ),
    )
    # --- client metadata (RFC 7591 §2; OpenID Connect Dynamic Client Registration §2) --------
    contacts = models.JSONField(
        default=list,
        blank=True,
        verbose_name=_("contacts"),
        help_text=_("E-mail addresses of people responsible for this client."),
    )
    client_uri = models.URLField(max_length=2000, blank=True, verbose_name=_("client URI"))
    logo_uri = models.URLField(max_length=2000, blank=True, verbose_name=_("logo URI"))
    policy_uri = models.URLField(max_length=2000, blank=True, verbose_name=_("policy URI"))
    tos_uri = models.URLField(max_length=2000, blank=True, verbose_name=_("terms of service URI"))
    request_object_signing_alg = models.CharField(
        max_length=8,
        choices=SIGNING_ALG_CHOICES,
        blank=True,
        verbose_name=_("request object signing algorithm"),
        help_text=_("OpenID Registration §2: the algorithm of request objects at the authorize endpoint."),
    )
    software_id = models.CharField(max_length=255, blank=True, verbose_name=_("software ID"))
    software_version = models.CharField(max_length=255, blank=True, verbose_name=_("software version"))
    software_statement = models.TextField(
        blank=True,
        verbose_name=_("software statement"),
        help_text=_("RFC 7591 §2.3: the signed statement the client registered with, as presented."),
    )
    # --- RFC 7592 client management ----------------------------------------------------------
    registration_access_token_hash = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        verbose_name=_("registration access token hash"),
        help_text=_("SHA-256 of the RFC 7592 registration access token; the token itself is never stored."),
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
        """Why this CIBA registration cannot take part in CIBA, in words safe to tell the client:
        its blocking problems (``ciba.registration_rules``). Empty for a client that registers
        no delivery mode: ask ``registers_ciba`` first."""
        return [problem.refusal for problem in registration_rules.problems(self, blocking_only=True)]

    def profile_problems(self) -> list[tuple[str, str]]:
        """What the security profile in force (``CIBA["PROFILE"]``) forbids in this CIBA
        registration, as ``(field, reason)``; empty without a profile
        (``ciba.registration_rules.FAPI_RULES``)."""
        return [
            (problem.field, problem.message)
            for problem in registration_rules.problems(self, blocking_only=True)
            if problem.by_profile
        ]

    @property
    def uses_token_endpoint_for_ciba(self) -> bool:
        """Poll and ping clients collect tokens at the token endpoint; push clients may not (§11)."""
        return self.backchannel_token_delivery_mode in constants.TOKEN_ENDPOINT_MODES

    @property
    def receives_notifications(self) -> bool:
        return self.backchannel_token_delivery_mode in constants.NOTIFICATION_MODES

    @property
    def client_assertion_algs(self) -> tuple[str, ...]:
        """The JWS algorithms this client's JWT assertions may use (RFC 7523), before the
        security profile narrows them (``ciba.profile.assertion_algs``).

        One registered in ``token_endpoint_auth_signing_alg`` pins them; left empty, nothing is
        registered and, as OIDC Registration §2 says, "any algorithm supported by the OP and the
        RP MAY be used": the key the assertion names must still fit it (``ciba.jose``). The
        method's family bounds both: an HMAC never signs a ``private_key_jwt`` assertion, nor a
        private key a ``client_secret_jwt`` one, whatever a row says.
        """
        family = constants.ASSERTION_ALGORITHMS.get(self.token_endpoint_auth_method, ())
        registered = self.token_endpoint_auth_signing_alg
        return tuple(alg for alg in ((registered,) if registered else family) if alg in family)

    @property
    def registered_grant_types(self) -> tuple[str, ...]:
        """The OAuth grant types (RFC 7591 names) this client may use: ``grant_types``, or for a
        row listing none, what its single ``authorization_grant_type`` always allowed (refresh
        included, as DOT allows it). ``ciba.registration_rules.registered_grant_types``."""
        return registration_rules.registered_grant_types(self)

    @property
    def issues_refresh_tokens(self) -> bool:
        """Whether the token endpoint gives this client refresh tokens: a client listing
        ``grant_types`` only if it listed ``refresh_token`` (RFC 7591 §2); any other as before
        (DOT's grants always, the CIBA grant while the client may use CIBA)."""
        if registration_rules.lists_grant_types(self):
            return self.allows_grant_type("refresh_token")
        if self.authorization_grant_type == constants.CIBA_GRANT_TYPE:
            return self.allows_grant_type("refresh_token")
        return True

    def allows_grant_type(self, *grant_types: str) -> bool:
        """DOT asks this before running a grant; CIBA clients get the CIBA and refresh grants.

        ``grant_types`` are OAuth names (``"refresh_token"``, the CIBA grant) or DOT's names
        of its single column (``"authorization-code"``, which DOT's authorization endpoint asks
        about for ``response_type=code``); true if the client may use any of them.

        The CIBA grant is allowed to poll and ping clients only: a push-mode client asking
        for it is ``unauthorized_client`` (CIBA §11). DOT's own validator asks about refresh
        with a tuple of DOT grant names, which ``ciba.oauth.validators.CibaValidator``
        translates to ``"refresh_token"``.

        A client listing ``grant_types`` may use exactly those (a refresh grant or CIBA grant
        of a CIBA registration that cannot take part is still refused); a row listing none
        keeps the single grant it always had.
        """
        if registration_rules.lists_grant_types(self):
            return any(self._lists_grant_type(name) for name in grant_types)
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

    def _lists_grant_type(self, name: str) -> bool:
        """One grant, by its OAuth name or DOT's, against the ``grant_types`` listed."""
        oauth_name = _OAUTH_NAMES.get(name, name)
        if oauth_name not in self.registered_grant_types:
            return False
        if oauth_name == constants.CIBA_GRANT_TYPE:
            return self.uses_token_endpoint_for_ciba and self.is_ciba_client
        if oauth_name == "refresh_token" and self.registers_ciba:
            return self.is_ciba_client  # as before grant_types: a CIBA registration in use
        return True

    # --- validation -----------------------------------------------------------------------

    def clean(self) -> None:
        """Validate DOT's fields and the CIBA metadata (``ciba.registration_rules``), each error
        keyed by its field."""
        field_errors: dict[str, list[Any]] = defaultdict(list)
        try:
            super().clean()
        except ValidationError as exc:
            for field, messages in exc.update_error_dict({}).items():
                field_errors[field].extend(messages)
        for field, messages in registration_rules.registration_errors(self).items():
            if field == "redirect_uris" and field_errors.get(field):
                continue  # DOT's clean() already asks for redirect URIs, in its own words
            field_errors[field].extend(messages)
        if field_errors:
            raise ValidationError(dict(field_errors))


#: DOT's names of its single-grant column, as the OAuth grant type each one is: what DOT's
#: authorization endpoint asks ``allows_grant_type`` about (``response_type=code`` asks for
#: ``"authorization-code"``; the hybrid and implicit flows for names a ``grant_types`` list
#: never holds, so they stay refused).
_OAUTH_NAMES = {
    AbstractApplication.GRANT_AUTHORIZATION_CODE: "authorization_code",
    AbstractApplication.GRANT_CLIENT_CREDENTIALS: "client_credentials",
    AbstractApplication.GRANT_IMPLICIT: "implicit",
    AbstractApplication.GRANT_PASSWORD: "password",
    AbstractApplication.GRANT_OPENID_HYBRID: "openid-hybrid",
}
