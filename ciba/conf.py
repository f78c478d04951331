"""The ``CIBA = {...}`` settings dict, read through one object: ``ciba_settings``.

Every key, its default and what it is for is documented in ``docs/settings.md``; the
defaults here are the single source of truth for those values. Keys named in
``IMPORT_STRINGS`` are dotted paths: they are imported on first access and the class (or
list of classes) is cached, so a hot path never pays for ``import_string``. Django's
``setting_changed`` signal clears the cache, so ``override_settings(CIBA=...)`` works in
tests exactly as it does in DOT and DRF.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

SETTINGS_NAME = "CIBA"

DEFAULTS: dict[str, Any] = {
    # --- one switch for a security profile: "" (plain CIBA) or "fapi-ciba" (docs/fapi.md) ---
    "PROFILE": "",
    # --- delivery modes and request lifetime (CIBA §5, §7.3) ---
    "DELIVERY_MODES": ["poll", "ping", "push"],
    "DEFAULT_EXPIRES_IN": 300,
    "MAX_EXPIRES_IN": 1800,
    "DEFAULT_INTERVAL": 5,
    "SLOW_DOWN_INCREMENT": 5,
    "AUTH_REQ_ID_BYTES": 32,
    # --- dynamic client registration (RFC 7591, RFC 7592; docs/registration.md) ---
    # Closed unless a site opens it: with initial access tokens (manage.py ciba_initial_access_token,
    # the admin), with software statements from SOFTWARE_STATEMENT_ISSUERS, or for anyone.
    "REGISTRATION_ENABLED": False,
    "REGISTRATION_OPEN": False,
    "REGISTRATION_OPEN_RATE": "10/hour",
    # iss -> {"jwks_uri": "https://..."} or {"jwks": {"keys": [...]}}: directories whose
    # software statements (RFC 7591 §2.3) this server trusts.
    "SOFTWARE_STATEMENT_ISSUERS": {},
    "SOFTWARE_STATEMENT_REQUIRED": False,
    "SOFTWARE_STATEMENT_MAX_AGE": 300,
    "REGISTRATION_ACCESS_TOKEN_ROTATE": True,
    # DOT's self-service application pages (/o/applications/, /o/authorized_tokens/)
    "DOT_APPLICATION_VIEWS": False,
    # Fewest seconds between two fetches of one client's jwks_uri for an unknown kid
    "JWKS_REFETCH_MIN_INTERVAL": 60,
    # --- rich authorization requests (RFC 9396; docs/transactions.md) ---
    # type -> dotted path of its DetailType class, or {"class": dotted path, **options}
    "AUTHORIZATION_DETAILS_TYPES": {
        "payment_initiation": "ciba.authorization_details.payment.PaymentInitiation",
    },
    "AUTHORIZATION_DETAILS_MAX_BYTES": 16384,
    "AUTHORIZATION_DETAILS_MAX_ITEMS": 10,
    # dotted path of a callable(request_context, client, user) that may raise a CibaError
    "REQUEST_CONTEXT_VALIDATOR": "",
    "REQUEST_CONTEXT_MAX_BYTES": 4096,
    # --- signed authentication requests (CIBA §7.1.1) ---
    "REQUEST_SIGNING_ALGS": ["RS256", "PS256", "ES256"],
    "REQUEST_OBJECT_MAX_LIFETIME": 3600,
    # --- user code (CIBA §7.1.2) and binding message (CIBA §7.1) ---
    "USER_CODE_SUPPORTED": False,
    "USER_CODE_MIN_LENGTH": 6,
    "USER_CODE_MAX_FAILURES": 5,
    # Wrong user codes one client may send for all users together per USER_CODE_LOCKOUT_SECONDS
    "USER_CODE_MAX_FAILURES_PER_CLIENT": 30,
    "USER_CODE_LOCKOUT_SECONDS": 900,
    "BINDING_MESSAGE_MAX_LENGTH": 64,
    "BINDING_MESSAGE_REQUIRED": False,
    # --- hints (CIBA §7.1): how long past its exp an ID token is still a valid id_token_hint ---
    "ID_TOKEN_HINT_MAX_AGE": 30 * 24 * 3600,
    # Which user fields a login_hint may match, each with its normaliser (ciba.identifiers);
    # None: the user model's USERNAME_FIELD exactly, and its email field case-insensitively
    "LOGIN_HINT_IDENTIFIERS": None,
    # Region a phone number written without its country code is read in (ISO 3166, "GB");
    # "": only international forms (+44 ..., 0044 ...) are phone numbers
    "PHONE_NUMBER_REGION": "",
    # The device page's "show my code": login_hint_tokens this server signs for a signed-in
    # user, shown as a QR code for a kiosk to scan (ciba.hint_tokens)
    "LOGIN_HINT_TOKEN_ISSUANCE": False,
    "LOGIN_HINT_TOKEN_LIFETIME": 120,
    # --- client authentication (CIBA §7.1, RFC 7523) ---
    "CLIENT_SECRET_CACHE_SECONDS": 300,
    # Keys of the keyed client-secret hash, current first (None: SECRET_KEY, SECRET_KEY_FALLBACKS)
    "CLIENT_SECRET_HASH_KEYS": None,
    # Accept site-chosen client secrets under 256 bits (kept under the slow hash; W013 warns)
    "ALLOW_LOW_ENTROPY_CLIENT_SECRETS": False,
    "CLIENT_ASSERTION_MAX_LIFETIME": 3600,
    # --- where single-use jti records live: "auto" (the cache if shared, else the database) ---
    "REPLAY_STORE": "auto",
    # --- failed client authentications, refused before any hash (docs/security.md) ---
    "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS": "60/minute",
    "CLIENT_AUTH_FAILURE_BURST": 5,
    # Failed client authentications per (client id, source address); replaces ..._PER_CLIENT
    "CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS": "20/minute",
    # Expensive checks (slow hashes, jwks_uri fetches) in flight at once, all processes (None = no cap)
    "CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT": 1,
    "TRUSTED_PROXIES": [],
    "CLIENT_ADDRESS_HEADER": "HTTP_X_FORWARDED_FOR",
    # --- mutual TLS (RFC 8705): the client certificate as the TLS terminator forwards it ---
    "MTLS_CERT_HEADER": "",
    "MTLS_CERT_HEADER_FORMAT": "escaped-pem",
    "MTLS_CERT_VERIFY_HEADER": "",
    "MTLS_BASE_URL": "",
    # --- DPoP (RFC 9449) proofs at the token endpoint and on bound tokens' use ---
    "DPOP_SIGNING_ALGS": ["PS256", "ES256", "RS256", "EdDSA", "Ed25519", "Ed448"],
    "DPOP_PROOF_MAX_AGE": 60,
    "DPOP_NONCE_REQUIRED": False,
    "DPOP_NONCE_LIFETIME": 300,
    # --- this server's ID-token signing keys (manage.py ciba_keys) ---
    "SIGNING_KEY_RETIRED_KEEP_SECONDS": 31 * 24 * 3600,
    # --- where pending polls are answered (docs/deployment.md) ---
    "POLL_STATE_CLASS": "ciba.polling.DatabasePollState",
    "POLL_STATE_REDIS_URL": "",
    "POLL_STATE_REDIS_TIMEOUT": 0.25,
    "POLL_STATE_BREAKER_SECONDS": 5.0,
    # Middleware besides Django's own that the pending-poll fast lane may skip (ciba.fast_lane)
    "FAST_LANE_SKIPPABLE_MIDDLEWARE": [],
    # --- per-client rate limit of the backchannel endpoint (DRF rate syntax, None = off) ---
    "BACKCHANNEL_THROTTLE_RATE": "600/minute",
    # --- where the backchannel endpoint is published, when not derivable from the URLconf ---
    "BACKCHANNEL_AUTHENTICATION_ENDPOINT": "",
    # --- pluggable parts (dotted paths) ---
    "USER_RESOLVER_CLASS": "ciba.backends.users.UsernameOrEmailUserResolver",
    "NOTIFIER_CLASSES": ["ciba.backends.notifiers.LogNotifier"],
    "USER_CODE_VERIFIER_CLASS": "ciba.backends.user_code_verifier.StoredUserCodeVerifier",
    "BINDING_MESSAGE_VALIDATOR_CLASS": "ciba.backends.binding_message.PlainTextBindingMessageValidator",
    "REQUEST_POLICY_CLASS": "ciba.backends.policy.AllowAllRequestPolicy",
    # The user's claims (OIDC Core §5.1) and the scope releasing each (§5.4): ciba.claims
    "USER_CLAIMS_CLASS": "ciba.claims.UserClaims",
    # --- device notifications (CIBA §8): retries, and the shipped notifiers' settings ---
    "NOTIFY_BATCH_WINDOW": 0.1,
    "NOTIFY_BATCH_SIZE": 100,
    "NOTIFY_MAX_RETRIES": 5,
    "NOTIFY_RETRY_BACKOFF_BASE": 2.0,
    "NOTIFY_RETRY_BACKOFF_MAX": 300,
    "WEBHOOK_NOTIFIER_URL": "",
    "WEBHOOK_NOTIFIER_SECRET": "",
    "WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS": False,
    "FCM_APP_NAME": "[DEFAULT]",
    "WEBPUSH_VAPID_PRIVATE_KEY": "",
    "WEBPUSH_VAPID_SUBJECT": "",
    "MAX_DEVICES_PER_USER": 20,
    # --- authentication at approval: levels, acr/amr (docs/authentication.md) ---
    # The acr each way of approving achieves (ciba.assurance.LEVELS, weakest first; "" claims
    # none). "phr" is OpenID EAP ACR Values 1.0's phishing-resistant authentication.
    "APPROVAL_ACR": {"session": "", "password": "", "passkey": "phr", "passkey_device_bound": "phr"},
    # What every approval must reach at least; the FAPI-CIBA profile's own floor ("": none more)
    "APPROVAL_MINIMUM_LEVEL": "session",
    "FAPI_APPROVAL_MINIMUM_LEVEL": "",
    # Whether re-entering the password at approval is offered as the "password" level
    "PASSWORD_REAUTHENTICATION": True,
    # acr values advertised in discovery and accepted as essential (None: those APPROVAL_ACR
    # maps a reachable level to; a list: what a site's own APPROVAL_POLICY_CLASS achieves)
    "ACR_VALUES_SUPPORTED": None,
    # --- passkeys (WebAuthn) on the authentication device ---
    # Relying Party ID and the origins assertions may come from ("" / []: the request's own host)
    "WEBAUTHN_RP_ID": "",
    "WEBAUTHN_RP_NAME": "",
    "WEBAUTHN_ORIGINS": [],
    # How long a ceremony's challenge is valid (s) and how many passkeys one user may hold
    "WEBAUTHN_CHALLENGE_SECONDS": 300,
    "PASSKEYS_PER_USER": 10,
    # A browser session may enroll a passkey only this long (s) after it signed in (None: any time)
    "PASSKEY_ENROLLMENT_MAX_AUTH_AGE": 900,
    # Passkey sign-ins the public sign-in page starts per address (each stores a challenge)
    "PASSKEY_SIGN_IN_RATE": "30/minute",
    # --- protecting the person being asked (docs/security.md, "Protecting users") ---
    # Pending requests at once for one user (all clients) and for one (client, user); None = no cap
    "MAX_PENDING_PER_USER": 5,
    "MAX_PENDING_PER_CLIENT_USER": 2,
    # New requests for one user across clients (DRF rate syntax, None = off)
    "USER_REQUEST_RATE": "20/hour",
    # At a pending cap: "refuse" the new request (access_denied) or "supersede" the oldest
    # pending one from the same client (it is cancelled and its prompt withdrawn)
    "PENDING_CAP_ACTION": "refuse",
    # --- subject identifiers (OIDC Core §8) ---
    "SUBJECT_TYPES_SUPPORTED": ["public", "pairwise"],
    "DEFAULT_SUBJECT_TYPE": "public",
    # Secret mixed into pairwise subs ("": derived from SECRET_KEY; set it so rotating
    # SECRET_KEY never changes a sub). Changing it changes every pairwise sub not yet issued.
    "PAIRWISE_SUBJECT_SALT": "",
    # --- the consent API (the authentication device's side) ---
    "CONSENT_SCOPE": "ciba:consent",
    "APPROVAL_POLICY_CLASS": "ciba.backends.policy.AuthenticationLevelPolicy",
    # --- conformance runs only: the suite's automated_ciba_approval_url (off when empty) ---
    "AUTOMATED_APPROVAL_SECRET": "",
    # --- outbound callbacks to client notification endpoints (CIBA §10.2, §10.3) ---
    "CALLBACK_CONNECT_TIMEOUT": 3.0,
    "CALLBACK_READ_TIMEOUT": 10.0,
    # Wall-clock limit of one outbound attempt, connect to last byte (a peer that drips bytes
    # never holds a worker longer); jwks_uri fetches run inside web requests, so shorter.
    "CALLBACK_TOTAL_TIMEOUT": 15.0,
    "JWKS_FETCH_TIMEOUT": 2.0,
    "JWKS_FAILURE_CACHE_SECONDS": 30,
    "CALLBACK_MAX_RETRIES": 8,
    "CALLBACK_RETRY_BACKOFF_BASE": 2.0,
    "CALLBACK_RETRY_BACKOFF_MAX": 300,
    "CALLBACK_ALLOW_HTTP": False,
    "CALLBACK_ALLOW_PRIVATE_NETWORKS": False,
    # A sending thread reuses its connection to a notification endpoint for this many seconds
    # after its last answer (0: a new connection, and TLS handshake, for every callback)
    "CALLBACK_KEEP_ALIVE": 4.0,
    # An attempt running this long moves its endpoint to the slow lane (None: a third of
    # CALLBACK_TOTAL_TIMEOUT; 0: no slow lane)
    "CALLBACK_SLOW_LANE_AFTER": None,
    # An endpoint leaves the slow lane on its first success, or after this long without attempts
    "CALLBACK_SLOW_LANE_SECONDS": 900,
    # Threads per process that send a callback right after its commit, from the process that
    # committed it (0: every callback goes through the workers; ciba.callbacks.inline)
    "CALLBACK_INLINE_SENDERS": 2,
    # --- workers: the publish breaker and the sweep-age alert (docs/operations.md) ---
    # After a failed publish, this process sends no task for this long (the sweep sends them)
    "DISPATCH_BREAKER_SECONDS": 5.0,
    # manage.py ciba_health fails when a sweep's last run, or an overdue outbox entry, is older
    "SWEEP_MAX_AGE": 300,
    # --- outages of PostgreSQL or the cache (docs/deployment.md#timeouts-and-outages) ---
    # Retry-After (s) of the 503 temporarily_unavailable a request gets while a dependency is down
    "OUTAGE_RETRY_AFTER": 1,
}

IMPORT_STRINGS = (
    "USER_RESOLVER_CLASS",
    "NOTIFIER_CLASSES",
    "USER_CODE_VERIFIER_CLASS",
    "BINDING_MESSAGE_VALIDATOR_CLASS",
    "REQUEST_POLICY_CLASS",
    "APPROVAL_POLICY_CLASS",
    "POLL_STATE_CLASS",
    "USER_CLAIMS_CLASS",
    "REQUEST_CONTEXT_VALIDATOR",
)


class CibaSettings:
    """Attribute access to ``settings.CIBA`` with defaults and resolved import strings.

    Unknown keys in the user's dict are not silently ignored: the system check
    ``ciba.E010`` reports them, because a typo in a security setting (say
    ``CALLBACK_ALLOW_HTTPS``) would otherwise leave the default in force unnoticed.
    """

    def __init__(self, defaults: dict[str, Any] | None = None, import_strings: tuple[str, ...] = ()):
        self.defaults = defaults if defaults is not None else DEFAULTS
        self.import_strings = import_strings
        self._cached: set[str] = set()
        # A value read while the settings change must not be cached after the change: each
        # reload starts a new generation, and a value is kept only if read within one.
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, SETTINGS_NAME, None)
        return value if isinstance(value, dict) else {}

    def unknown_keys(self) -> list[str]:
        return sorted(set(self.user_settings) - set(self.defaults))

    def raw(self, name: str) -> Any:
        """The configured value before import-string resolution (for checks and docs)."""
        if name not in self.defaults:
            raise AttributeError(f"Invalid CIBA setting: {name!r}")
        return self.user_settings.get(name, self.defaults[name])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Invalid CIBA setting: {name!r}")
        generation = self._generation
        value = self.raw(name)
        if name in self.import_strings and value:
            value = _import(value, name)
        with self._lock:
            if generation == self._generation:
                self._cached.add(name)
                setattr(self, name, value)
        return value

    def reload(self) -> None:
        with self._lock:
            self._generation += 1
            for name in self._cached:
                self.__dict__.pop(name, None)
            self._cached.clear()


def _import(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return _import_one(value, name)
    if isinstance(value, (list, tuple)):
        return [_import_one(item, name) if isinstance(item, str) else item for item in value]
    return value


def _import_one(path: str, name: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImportError(f"Could not import {path!r} for CIBA setting {name!r}: {exc}") from exc


ciba_settings = CibaSettings(DEFAULTS, IMPORT_STRINGS)


@receiver(setting_changed)
def _reload_ciba_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        ciba_settings.reload()
