"""Register (or update) a CIBA client from the command line, as the admin form would."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from oauth2_provider.models import get_application_model

from ciba import constants
from ciba.management.registration import existing_or_new, save_validated


class Command(BaseCommand):
    help = (
        "Register a confidential CIBA client (or update the one with --client-id) and print its "
        "client id and a new secret. Validated exactly as the admin form validates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="A name people recognise (shown on the user's device).")
        parser.add_argument("--mode", choices=constants.DELIVERY_MODES, default="poll")
        parser.add_argument("--notification-endpoint", default="", help="https URL, for ping and push.")
        parser.add_argument(
            "--auth-method",
            choices=constants.TOKEN_ENDPOINT_AUTH_METHODS,
            default=constants.AUTH_CLIENT_SECRET_BASIC,
        )
        parser.add_argument(
            "--jwks-file", help="The client's public JWK Set, for private_key_jwt or signed requests."
        )
        parser.add_argument(
            "--request-signing-alg", default="", help="Require signed requests with this alg."
        )
        parser.add_argument("--client-id", help="Update this client instead of creating one.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        Application = get_application_model()
        app = existing_or_new(options["client_id"])
        secret = secrets.token_urlsafe(32)
        app.name = options["name"]
        app.client_type = Application.CLIENT_CONFIDENTIAL
        app.authorization_grant_type = constants.CIBA_GRANT_TYPE
        app.algorithm = Application.RS256_ALGORITHM
        app.backchannel_token_delivery_mode = options["mode"]
        app.backchannel_client_notification_endpoint = options["notification_endpoint"]
        app.token_endpoint_auth_method = options["auth_method"]
        app.backchannel_authentication_request_signing_alg = options["request_signing_alg"]
        # client_secret_jwt keys an HMAC with the secret itself, so it cannot be hashed.
        app.hash_client_secret = options["auth_method"] != constants.AUTH_CLIENT_SECRET_JWT
        app.client_secret = secret
        if options["jwks_file"]:
            with open(options["jwks_file"]) as handle:
                app.jwks = json.load(handle)
        save_validated(app)
        result = {
            "client_id": app.client_id,
            "client_secret": secret,
            "mode": app.backchannel_token_delivery_mode,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"Client {app.name!r}: client_id {app.client_id}\n"
                f"client_secret {secret}  (shown once; only its hash is stored)"
            )
