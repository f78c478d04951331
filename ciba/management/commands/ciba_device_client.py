"""Register the site's own authentication-device app: the client a phone app signs in with to
obtain a consent-scoped token for its user (authorization code + PKCE, RFC 7636, RFC 8252)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from oauth2_provider.models import get_application_model

from ciba.conf import ciba_settings
from ciba.designations import designate
from ciba.management.registration import existing_or_new, save_validated


class Command(BaseCommand):
    help = (
        "Create (or update, by --client-id) a public authorization-code client for your device app, "
        "allowed the consent scope, and print its client id and how it signs in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--redirect-uri",
            action="append",
            required=True,
            help="Where the app receives the code: a claimed https link, a private-use scheme "
            "(com.example.bank:/oauth) or a loopback URL (http://127.0.0.1/cb). Repeatable.",
        )
        parser.add_argument("--name", default="Authentication device app")
        parser.add_argument("--client-id", help="Update this client instead of creating one.")
        parser.add_argument(
            "--ask-consent",
            action="store_true",
            help="Show DOT's consent screen at sign-in (by default the site's own app is trusted).",
        )
        parser.add_argument("--json", action="store_true")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        Application = get_application_model()
        app = existing_or_new(options["client_id"])
        app.name = options["name"]
        app.client_type = Application.CLIENT_PUBLIC  # an app on a phone cannot keep a secret
        app.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        app.redirect_uris = " ".join(options["redirect_uri"])
        app.algorithm = Application.RS256_ALGORITHM
        app.skip_authorization = not options["ask_consent"]
        app.client_secret = ""
        save_validated(
            app,
            hint=' (a private-use scheme must also be in OAUTH2_PROVIDER["ALLOWED_REDIRECT_URI_SCHEMES"])',
        )
        designate(app)
        scope = f"openid {ciba_settings.CONSENT_SCOPE}"
        result = {"client_id": app.client_id, "redirect_uris": options["redirect_uri"], "scope": scope}
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"Device app client_id {app.client_id} (public; PKCE S256 required).\n"
            f"Sign in: GET <site>/o/authorize/?response_type=code&client_id={app.client_id}"
            f"&redirect_uri=<one of yours>&scope={scope.replace(' ', '+')}"
            "&code_challenge=<S256 of your verifier>&code_challenge_method=S256\n"
            "then POST <site>/o/token/ grant_type=authorization_code&code=…&redirect_uri=…"
            f"&client_id={app.client_id}&code_verifier=…"
        )
