"""Create or update the demo users, CIBA clients and phones, and print how to use them.

Each demo user also gets a customer profile with a phone number and an IBAN, which the example's
``LOGIN_HINT_IDENTIFIERS`` let a kiosk use as a ``login_hint`` beside the username and e-mail.

Idempotent, and safe to run beside a running demo: running it again keeps the same rows,
client ids and devices, and also what the running kiosk relies on. Client secrets stay as they
are (the kiosk's credentials file still holds them, so they are printed again), passwords stay
(only their hashes are stored, so they are not printed again), and the ping and push clients
keep their notification endpoints unless ``--notification-base-url`` is given. ``--rotate``
issues new passwords and secrets and rewrites the kiosk's credentials file with them
(``./scripts/demo`` does on every start). Every run issues fresh consent-API tokens (the
previous ones are revoked): that is what a script runs it for.

``--fapi`` also registers ``demo-fapi``, a FAPI-CIBA poll client (``example_project.demo.fapi``):
a client of that kind holds a key pair and a certificate rather than a secret, so they are
written to a directory (``--out``) instead of printed. Re-runs treat them as they treat
secrets: same row and client id, a new key and certificate (the demo CA in the directory is
kept). With ``CIBA["PROFILE"] = "fapi-ciba"`` ``--fapi`` is implied, and the kiosk's
client-secret clients are left out: the profile does not allow them.

``--initial-access-token`` also issues an initial access token (RFC 7591 §3), the credential a
developer registers a client with at ``/o/register/`` (docs/registration.md): single use unless
``--initial-access-token-uses`` says otherwise (a number, or ``unlimited`` as
``ciba_initial_access_token --uses`` takes it), valid for a day. It is printed once; only its
hash is stored, so every run that asks for one issues a new one.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model
from oauth2_provider.settings import oauth2_settings

from ciba import authorization_details as rar
from ciba import designations, profile, signing
from ciba.client_auth.secret import check_secret
from ciba.client_registration import initial_access_tokens
from ciba.conf import ciba_settings
from ciba.constants import (
    AUTH_CLIENT_SECRET_BASIC,
    AUTH_PRIVATE_KEY_JWT,
    AUTH_TLS_CLIENT_AUTH,
    CIBA_GRANT_TYPE,
    DELIVERY_MODES,
    MODE_POLL,
)
from ciba.models import Device, SigningKey
from example_project.demo import fapi
from example_project.demo.models import Profile

USERS = ("alice", "bob")
#: What else a kiosk may know each demo user by (LOGIN_HINT_IDENTIFIERS in the example's
#: settings): a phone number in Ofcom's range for drama (020 7946 0000-0999, never a real line,
#: and valid to libphonenumber, which rejects the 07700 900xxx drama mobiles) and an IBAN of the
#: fictional bank WEST with correct check digits. Stored normalised (E.164, compact IBAN).
IDENTIFIERS = {
    "alice": {"phone_number": "+442079460123", "account_iban": "GB82WEST12345698765432"},
    "bob": {"phone_number": "+442079460456", "account_iban": "GB55WEST12345698765433"},
}
PHONE_APP = "demo-phone"
#: The RFC 9396 types the demo kiosk clients may send (docs/transactions.md).
KIOSK_DETAIL_TYPES = ("payment_initiation",)
#: Where the phone app, a native app, would return after signing in: a private-use URI scheme
#: (RFC 8252 §7.1) the example's ALLOWED_REDIRECT_URI_SCHEMES lists beside https. Its consent
#: tokens are minted here, so nothing redirects there in the demo.
PHONE_REDIRECT_URI = "org.example.ciba-demo:/signed-in"
#: How long the printed consent-API tokens work: long enough for a day of demos and scripts.
TOKEN_LIFETIME = timedelta(days=7)
#: How long a printed initial access token may be used to register a client.
INITIAL_ACCESS_TOKEN_LIFETIME = timedelta(days=1)


#: --initial-access-token-uses's word for "no limit" (ciba_initial_access_token's too).
UNLIMITED = "unlimited"


def _uses(text: str) -> int | str:
    if text.strip().lower() == UNLIMITED:
        return UNLIMITED
    try:
        value = int(text)
    except ValueError:
        raise CommandError(
            f"--initial-access-token-uses: a whole number or '{UNLIMITED}', not {text!r}."
        ) from None
    if value < 1:
        raise CommandError(f"--initial-access-token-uses: at least 1 (or '{UNLIMITED}').")
    return value


def base_url() -> str:
    """Where ``./scripts/demo`` serves the demo: 127.0.0.1 on ``PORT`` (default 8000)."""
    return f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"


def phone_base_url() -> str:
    """The same server by name: browsers offer passkeys only on a domain, never on an IP
    address, so the phone's page is opened on localhost."""
    return f"http://localhost:{os.environ.get('PORT') or 8000}"


class Command(BaseCommand):
    help = "Create or update the demo users (admin, alice, bob) and one CIBA client per delivery mode."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the demo data as JSON.")
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="Issue new passwords and client secrets, and write the secrets to the kiosk's "
            "credentials file (without it, existing ones are kept: a running demo goes on working).",
        )
        parser.add_argument(
            "--notification-base-url",
            default=None,
            help="Base URL of the ping/push clients' notification endpoints (the mode is appended). "
            f"Default: their registered endpoints, or {base_url()}/demo/callbacks for new clients.",
        )
        parser.add_argument(
            "--fapi",
            action="store_true",
            help="Also register demo-fapi, a FAPI-CIBA poll client (PS256, certificate-bound tokens), and "
            "write its key, certificate and JWKS to --out. Implied when CIBA['PROFILE'] is fapi-ciba.",
        )
        parser.add_argument(
            "--fapi-auth",
            choices=fapi.AUTH_METHODS,
            default=None,
            help="How demo-fapi authenticates (implies --fapi; default tls_client_auth, with a "
            "certificate of a demo CA written beside it).",
        )
        parser.add_argument(
            "--out",
            type=Path,
            default=None,
            help="Where demo-fapi's credentials are written (implies --fapi; default: demo-fapi/ beside "
            "CIBA_DEMO_CLIENTS_FILE, in the example's var/ directory). Private keys get mode 0600.",
        )
        parser.add_argument(
            "--initial-access-token",
            action="store_true",
            help="Also issue an initial access token for dynamic client registration at /o/register/ "
            "(RFC 7591; docs/registration.md), valid for a day, and print it (it is shown only once).",
        )
        parser.add_argument(
            "--initial-access-token-uses",
            type=_uses,
            default=None,
            metavar="N|unlimited",
            help="How many clients the initial access token may register (default 1; unlimited: any "
            "number until it expires). Implies --initial-access-token.",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        Application = get_application_model()
        site = base_url()
        data: dict[str, Any] = {
            "issuer": oauth2_settings.OIDC_ISS_ENDPOINT,
            "urls": {
                "kiosk": site + reverse("demo:kiosk"),
                "phone": phone_base_url() + reverse("ciba_device:home"),
                "admin": site + reverse("admin:index"),
                "discovery": f"{site}/o/.well-known/openid-configuration",
            },
            "users": {},
            "clients": {},
        }

        rotate = options["rotate"]
        admin, created = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
        admin.is_staff = admin.is_superuser = True
        admin_password = self._password(admin, created or rotate)
        admin.save()
        data["users"]["admin"] = {"password": admin_password, "admin_url": "/admin/"}

        for name in USERS:
            user, created = User.objects.get_or_create(
                username=name, defaults={"email": f"{name}@example.com"}
            )
            password = self._password(user, created or rotate)
            user.save()
            Profile.objects.update_or_create(user=user, defaults=IDENTIFIERS[name])
            data["users"][name] = {
                "password": password,
                "login_hint": name,
                # Other login_hints that name the same user (any written form of them works).
                "login_hints": [name, user.email, *IDENTIFIERS[name].values()],
                "consent_token": self._consent_token(user),
                "device": self._device(user),
            }

        given_base = options["notification_base_url"]
        base = (given_base or f"{site}/demo/callbacks").rstrip("/")
        kiosk = {} if rotate else self._read_kiosk_config()
        # The FAPI-CIBA profile forbids client secrets and push: these clients would not validate.
        for mode in () if profile.fapi() else DELIVERY_MODES:
            app, created = Application.objects.get_or_create(
                client_id=f"demo-{mode}",
                defaults={"client_type": Application.CLIENT_CONFIDENTIAL},
            )
            secret = None if created else self._kept_secret(app, kiosk.get(mode))
            if secret is None:
                secret = app.client_secret = secrets.token_urlsafe(32)
            registered = app.backchannel_client_notification_endpoint
            app.name = f"Demo kiosk ({mode})"
            app.client_type = Application.CLIENT_CONFIDENTIAL
            app.authorization_grant_type = CIBA_GRANT_TYPE
            app.algorithm = Application.RS256_ALGORITHM
            app.hash_client_secret = True
            app.token_endpoint_auth_method = AUTH_CLIENT_SECRET_BASIC
            app.backchannel_token_delivery_mode = mode
            # The kiosk describes each payment as an RFC 9396 payment_initiation object, when
            # this server still registers that type (a site may have replaced the registry).
            app.authorization_details_types = [t for t in KIOSK_DETAIL_TYPES if t in rar.supported_types()]
            if mode == "poll":
                app.backchannel_client_notification_endpoint = ""
            elif given_base or not registered:
                app.backchannel_client_notification_endpoint = f"{base}/{mode}/"
            app.full_clean()
            app.save()
            data["clients"][mode] = {
                "client_id": app.client_id,
                "client_secret": secret,
                "token_endpoint_auth_method": app.token_endpoint_auth_method,
                "mode": mode,
                "notification_endpoint": app.backchannel_client_notification_endpoint or None,
            }

        self._write_kiosk_config(data["clients"])
        if options["fapi"] or options["fapi_auth"] or options["out"] or profile.fapi():
            out = options["out"] or Path(settings.CIBA_DEMO_CLIENTS_FILE).parent / "demo-fapi"
            auth_method = options["fapi_auth"] or AUTH_TLS_CLIENT_AUTH
            data["fapi_client"] = self._fapi_client(auth_method, out, data["urls"]["discovery"])
        uses = options["initial_access_token_uses"]
        if options["initial_access_token"] or uses is not None:
            limit = 1 if uses is None else None if uses == UNLIMITED else uses
            data["initial_access_token"] = self._initial_access_token(limit, admin, site)
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
            return
        self.stdout.write(self.style.SUCCESS("Demo data ready:"))
        urls = data["urls"]
        kept = "(password unchanged; --rotate sets new ones)"
        self.stdout.write(f"  admin  / {admin_password or kept}   -> {urls['admin']}")
        for name in USERS:
            user = data["users"][name]
            self.stdout.write(
                f"  {name:<6} / {user['password'] or kept}   consent-API token {user['consent_token']}"
            )
            self.stdout.write(f"           login_hint: {', '.join(user['login_hints'])}")
        for client in data["clients"].values():
            self.stdout.write(f"  client {client['client_id']:<10} secret {client['client_secret']}")
        if profile.fapi():
            self.stdout.write("  (FAPI-CIBA profile: no client-secret clients, so the kiosk page cannot pay)")
        if "fapi_client" in data:
            self._print_fapi_client(data["fapi_client"])
        if "initial_access_token" in data:
            self._print_initial_access_token(data["initial_access_token"])
        self.stdout.write(f"Kiosk:     {urls['kiosk']}")
        self.stdout.write(f"Phone:     {urls['phone']}  (django-ciba's device page; log in as alice or bob)")
        self.stdout.write(f"Discovery: {urls['discovery']}")

    @staticmethod
    def _fapi_client(auth_method: str, out: Path, discovery: str) -> dict[str, Any]:
        """Register ``demo-fapi`` as a FAPI-CIBA site registers a client, and write its
        credentials to ``out``; returns what ``client.json`` says (no private key material)."""
        Application = get_application_model()
        credentials = fapi.make(auth_method, out)
        app, _ = Application.objects.get_or_create(
            client_id=fapi.CLIENT_ID, defaults={"client_type": Application.CLIENT_CONFIDENTIAL}
        )
        app.name = "Demo kiosk (FAPI-CIBA)"
        app.client_type = Application.CLIENT_CONFIDENTIAL
        app.authorization_grant_type = CIBA_GRANT_TYPE
        app.algorithm = Application.RS256_ALGORITHM  # DOT's field; PS256 below is what signs
        app.client_secret = secrets.token_urlsafe(32)  # never used: its method takes no secret
        app.hash_client_secret = True
        app.backchannel_token_delivery_mode = MODE_POLL
        app.backchannel_client_notification_endpoint = ""
        app.backchannel_authentication_request_signing_alg = fapi.ALG
        app.token_endpoint_auth_method = auth_method
        app.token_endpoint_auth_signing_alg = fapi.ALG if auth_method == AUTH_PRIVATE_KEY_JWT else ""
        app.id_token_signed_response_alg = fapi.ALG
        app.tls_client_certificate_bound_access_tokens = True
        app.dpop_bound_access_tokens = False
        app.jwks = credentials.jwks
        app.jwks_uri = ""
        app.tls_client_auth_subject_dn = credentials.subject_dn if auth_method == AUTH_TLS_CLIENT_AUTH else ""
        for name in ("san_dns", "san_uri", "san_ip", "san_email"):
            setattr(app, f"tls_client_auth_{name}", "")
        app.full_clean()
        app.save()
        # PS256 ID tokens are signed with the server's key set: an RSA key of the database must
        # be active (the settings key signs RS256 only). A new key of a site whose settings key
        # signs waits as `next` to be published first; the demo activates it at once, as a site
        # with no relying parties yet may (`ciba_keys`, docs/operations.md).
        if not SigningKey.objects.filter(kty=signing.RSA, state=SigningKey.State.ACTIVE).exists():
            waiting = SigningKey.objects.filter(kty=signing.RSA, state=SigningKey.State.NEXT).exists()
            if waiting or signing.generate_key(signing.RSA).state != SigningKey.State.ACTIVE:
                signing.activate(signing.RSA)
        summary: dict[str, Any] = {
            "client_id": app.client_id,
            "token_endpoint_auth_method": auth_method,
            "backchannel_token_delivery_mode": app.backchannel_token_delivery_mode,
            "signing_alg": fapi.ALG,
            "kid": credentials.kid,
            "tls_client_auth_subject_dn": app.tls_client_auth_subject_dn or None,
            "issuer": oauth2_settings.OIDC_ISS_ENDPOINT,
            "discovery": discovery,
        }
        files = fapi.write(credentials, out, summary)
        return {**summary, "files": files, "ca_reused": credentials.ca_reused}

    def _print_fapi_client(self, client: dict[str, Any]) -> None:
        files = client["files"]
        self.stdout.write(
            f"  client {client['client_id']:<10} {client['token_endpoint_auth_method']}, poll, "
            f"PS256 requests and ID tokens, certificate-bound tokens"
        )
        self.stdout.write(f"    credentials: {Path(files['client_json']).parent}/ (see client.json)")
        if client["tls_client_auth_subject_dn"]:
            self.stdout.write(f"    certificate subject: {client['tls_client_auth_subject_dn']}")
        if "ca_certificate" in files:
            state = "kept" if client["ca_reused"] else "new"
            ca = files["ca_certificate"]
            self.stdout.write(f"    demo CA ({state}), for nginx's ssl_client_certificate: {ca}")
        if not ciba_settings.MTLS_CERT_HEADER:
            self.stdout.write(
                "    (no TLS terminator forwards certificates yet: set CIBA_MTLS_CERT_HEADER and "
                "CIBA_TRUSTED_PROXIES, docs/nginx-mtls.md)"
            )

    @staticmethod
    def _initial_access_token(uses: int | None, admin: Any, site: str) -> dict[str, Any]:
        """A new initial access token, issued as an operator issues one (the same ``issue()`` as
        the admin and ``ciba_initial_access_token`` use), recorded as the demo admin's."""
        token, row = initial_access_tokens.issue(
            "ciba_demo_data",
            uses=uses,
            expires_in=int(INITIAL_ACCESS_TOKEN_LIFETIME.total_seconds()),
            created_by=admin,
        )
        return {
            "token": token,
            "uses": row.uses_left,
            "expires": row.expires.isoformat() if row.expires else None,
            "registration_endpoint": f"{site}/o/register/",
            "registration_enabled": bool(ciba_settings.REGISTRATION_ENABLED),
        }

    def _print_initial_access_token(self, issued: dict[str, Any]) -> None:
        uses = "single use" if issued["uses"] == 1 else f"{issued['uses'] or 'any number of'} uses"
        self.stdout.write(
            f"  initial access token {issued['token']}   ({uses}, until {issued['expires']}; "
            f"Authorization: Bearer ... at {issued['registration_endpoint']})"
        )
        if not issued["registration_enabled"]:
            self.stdout.write(
                "    (registration is off on this server: set CIBA['REGISTRATION_ENABLED'] = True)"
            )

    @staticmethod
    def _consent_token(user: Any) -> str:
        """A bearer token for the consent and device APIs, as the user's phone app would hold.

        Issued to a "demo phone" application (the device app's own login is the site's
        business); earlier demo tokens of the user are revoked so only the printed one works.
        """
        Application = get_application_model()
        phone, _ = Application.objects.get_or_create(
            client_id=PHONE_APP,
            defaults={
                "name": "Demo phone app",
                "client_type": Application.CLIENT_PUBLIC,
                "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            },
        )
        if phone.redirect_uris != PHONE_REDIRECT_URI:
            phone.redirect_uris = PHONE_REDIRECT_URI
            phone.save(update_fields=["redirect_uris"])
        designations.designate(phone)  # only the site's own device apps may hold the consent scope
        AccessToken = get_access_token_model()
        AccessToken.objects.filter(user=user, application=phone).delete()
        token = secrets.token_urlsafe(32)
        AccessToken.objects.create(
            user=user,
            application=phone,
            token=token,
            scope=ciba_settings.CONSENT_SCOPE,
            expires=timezone.now() + TOKEN_LIFETIME,
        )
        return token

    @staticmethod
    def _device(user: Any) -> dict[str, str]:
        """One registered phone per user, reached through the site's push gateway (webhook)."""
        device, _ = Device.objects.get_or_create(
            user=user,
            label="Demo phone",
            defaults={"kind": Device.Kind.WEBHOOK, "token": f"demo-phone-{user.username}"},
        )
        return {"id": str(device.public_id), "kind": device.kind, "token": device.token}

    @staticmethod
    def _password(user: Any, new: bool) -> str | None:
        """A fresh password for ``user`` when ``new`` (or it has none), else ``None``: the
        stored hash cannot be printed back, and changing it would sign people out of the demo."""
        if not new and user.has_usable_password():
            return None
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        return password

    @staticmethod
    def _kept_secret(app: Any, kiosk_entry: dict[str, Any] | None) -> str | None:
        """The secret the kiosk holds for ``app`` if it is still the one stored, else ``None``
        (a new client, a missing or stale credentials file, ``--rotate``): a new one is issued
        and written to the file, so the file and the database never disagree."""
        if not kiosk_entry or kiosk_entry.get("client_id") != app.client_id:
            return None
        secret = kiosk_entry.get("client_secret")
        if isinstance(secret, str) and secret and check_secret(secret, app.client_secret):
            return secret
        return None

    @staticmethod
    def _read_kiosk_config() -> dict[str, Any]:
        """The kiosk's credentials by mode; nothing when the file is missing or unreadable."""
        try:
            clients = json.loads(Path(settings.CIBA_DEMO_CLIENTS_FILE).read_text())["clients"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}
        return clients if isinstance(clients, dict) else {}

    @staticmethod
    def _write_kiosk_config(clients: dict[str, Any]) -> None:
        """The kiosk's own configuration: its client credentials, readable by the owner only."""
        path = Path(settings.CIBA_DEMO_CLIENTS_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"clients": clients}, handle)
