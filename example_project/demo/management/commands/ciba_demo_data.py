"""Create or update the demo users, CIBA clients and phones, and print how to use them.

Idempotent: running it again keeps the same rows, client ids and devices but issues fresh
secrets, passwords and consent-API tokens (only hashes of the first two are stored, so the
old ones cannot be printed again; the previous tokens are revoked).
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
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model
from oauth2_provider.settings import oauth2_settings

from ciba import consent
from ciba.conf import ciba_settings
from ciba.constants import CIBA_GRANT_TYPE, DELIVERY_MODES
from ciba.models import Device

USERS = ("alice", "bob")
PHONE_APP = "demo-phone"
#: How long the printed consent-API tokens work: long enough for a day of demos and scripts.
TOKEN_LIFETIME = timedelta(days=7)


def base_url() -> str:
    """Where ``./scripts/demo`` serves the demo: 127.0.0.1 on ``PORT`` (default 8000)."""
    return f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"


class Command(BaseCommand):
    help = "Create or update the demo users (admin, alice, bob) and one CIBA client per delivery mode."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the demo data as JSON.")
        parser.add_argument(
            "--notification-base-url",
            default=f"{base_url()}/demo/callbacks",
            help="Base URL of the ping/push clients' notification endpoints (the mode is appended).",
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
                "phone": site + reverse("ciba_device:home"),
                "admin": site + reverse("admin:index"),
                "discovery": f"{site}/o/.well-known/openid-configuration",
            },
            "users": {},
            "clients": {},
        }

        admin_password = secrets.token_urlsafe(12)
        admin, _ = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(admin_password)
        admin.save()
        data["users"]["admin"] = {"password": admin_password, "admin_url": "/admin/"}

        for name in USERS:
            password = secrets.token_urlsafe(12)
            user, _ = User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})
            user.set_password(password)
            user.save()
            data["users"][name] = {
                "password": password,
                "login_hint": name,
                "consent_token": self._consent_token(user, data["urls"]["phone"]),
                "device": self._device(user),
            }

        base = options["notification_base_url"].rstrip("/")
        for mode in DELIVERY_MODES:
            secret = secrets.token_urlsafe(32)
            app, _ = Application.objects.get_or_create(
                client_id=f"demo-{mode}",
                defaults={"client_type": Application.CLIENT_CONFIDENTIAL},
            )
            app.name = f"Demo kiosk ({mode})"
            app.client_type = Application.CLIENT_CONFIDENTIAL
            app.authorization_grant_type = CIBA_GRANT_TYPE
            app.algorithm = Application.RS256_ALGORITHM
            app.client_secret = secret
            app.hash_client_secret = True
            app.backchannel_token_delivery_mode = mode
            app.backchannel_client_notification_endpoint = f"{base}/{mode}/" if mode != "poll" else ""
            app.full_clean()
            app.save()
            data["clients"][mode] = {
                "client_id": app.client_id,
                "client_secret": secret,
                "mode": mode,
                "notification_endpoint": app.backchannel_client_notification_endpoint or None,
            }

        self._write_kiosk_config(data["clients"])
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
            return
        self.stdout.write(self.style.SUCCESS("Demo data ready (passwords and secrets are new on every run):"))
        urls = data["urls"]
        self.stdout.write(f"  admin  / {admin_password}   -> {urls['admin']}")
        for name in USERS:
            user = data["users"][name]
            self.stdout.write(f"  {name:<6} / {user['password']}   consent-API token {user['consent_token']}")
        for client in data["clients"].values():
            self.stdout.write(f"  client {client['client_id']:<10} secret {client['client_secret']}")
        self.stdout.write(f"Kiosk:     {urls['kiosk']}")
        self.stdout.write(f"Phone:     {urls['phone']}  (django-ciba's device page; log in as alice or bob)")
        self.stdout.write(f"Discovery: {urls['discovery']}")

    @staticmethod
    def _consent_token(user: Any, phone_url: str) -> str:
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
        if phone.redirect_uris != phone_url:
            phone.redirect_uris = phone_url
            phone.save(update_fields=["redirect_uris"])
        consent.designate(phone)  # only the site's own device apps may hold the consent scope
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
    def _write_kiosk_config(clients: dict[str, Any]) -> None:
        """The kiosk's own configuration: its client credentials, readable by the owner only."""
        path = Path(settings.CIBA_DEMO_CLIENTS_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"clients": clients}, handle)
