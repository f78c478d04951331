"""Register (or update) a CIBA client from the command line, as the admin form would.

Every column of the registration metadata (``ciba.models.CibaClientMixin``) has an option named
after it (``token_endpoint_auth_signing_alg`` is ``--token-endpoint-auth-signing-alg``), read
from the model, so that any client the admin can register — FAPI, ES256, mTLS, DPoP — can be
registered by a script, and a column added to the mixin gets its option without a change here.
Validation is the model's (``ciba.registration_rules``, as in the admin): nothing is written
unless every rule holds, and each problem names the option to change. A
``--sector-identifier-uri`` is fetched and checked as dynamic registration checks it
(``ciba.subjects.check_client_sector``). List-valued columns take
their values on the command line (``--grant-types client_credentials
urn:openid:params:grant-type:ciba refresh_token``, or comma-separated); the key set is a file.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from oauth2_provider.models import AbstractApplication, get_application_model

from ciba import authorization_details as rar
from ciba import constants, subjects
from ciba.errors import InvalidClientMetadata
from ciba.management.registration import existing_or_new, save_validated
from ciba.models import CibaClientMixin

#: The columns the command decides itself: a CIBA client uses the CIBA grant; what only
#: dynamic registration (RFC 7591, RFC 7592) writes.
FIXED = ("authorization_grant_type", "software_statement", "registration_access_token_hash")
#: DOT's column a CIBA registration decides too: how ID tokens are signed when
#: ``id_token_signed_response_alg`` is empty.
DOT_FIELDS = ("algorithm",)
#: The option names of earlier versions, kept working.
ALIASES = {
    "backchannel_token_delivery_mode": ("--mode",),
    "backchannel_client_notification_endpoint": ("--notification-endpoint",),
    "backchannel_authentication_request_signing_alg": ("--request-signing-alg",),
    "token_endpoint_auth_method": ("--auth-method",),
    "jwks": ("--jwks-file",),
}
#: Help for DOT's column, which has none of its own.
HELP = {
    "algorithm": "How DOT signs ID tokens when --id-token-signed-response-alg is empty: RS256 with the "
    'server\'s OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"] (the default), or HS256 with the client secret '
    "(then stored unhashed).",
}
#: What a new client starts with where the model's default would not make a CIBA client
#: (the admin's new-client form starts the same way).
NEW_CLIENT = {
    "backchannel_token_delivery_mode": constants.MODE_POLL,
    "algorithm": AbstractApplication.RS256_ALGORITHM,
}


def option(field: str) -> str:
    """The option that sets ``field``: its registration metadata name, with dashes."""
    return "--" + field.replace("_", "-")


def registration_fields() -> list[str]:
    """The columns the options set: the mixin's (but the grant) and DOT's ``algorithm``."""
    return [f.name for f in CibaClientMixin._meta.local_fields if f.name not in FIXED] + list(DOT_FIELDS)


def stored_fields() -> list[str]:
    """What ``--json`` reports of the stored row."""
    shown = [f for f in FIXED if CibaClientMixin._meta.get_field(f).editable]  # never a token's hash
    return ["name", "client_type", *shown, *registration_fields(), "hash_client_secret"]


class Command(BaseCommand):
    help = (
        "Register a confidential CIBA client and print its client id and secret, or update the one with "
        "--client-id (only the options given change; --new-secret for a new secret). Each option sets the "
        "registration metadata of its name, validated exactly as the admin form validates: nothing is "
        "saved unless every rule holds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        Application = get_application_model()
        parser.add_argument(
            "name",
            nargs="?",
            help="A name people recognise (shown on the user's device); required for a new client.",
        )
        parser.add_argument("--client-id", help="Update this client instead of creating one.")
        parser.add_argument(
            "--new-secret",
            action="store_true",
            help="With --client-id: generate a new client secret (the old one stops working at once).",
        )
        for name in registration_fields():
            field = Application._meta.get_field(name)
            names = (option(name), *ALIASES.get(name, ()))
            described = _help(field)
            if isinstance(field, models.BooleanField):
                parser.add_argument(*names, dest=name, action=argparse.BooleanOptionalAction, help=described)
            elif _is_list(field):
                parser.add_argument(
                    *names,
                    dest=name,
                    nargs="*",
                    metavar="VALUE",
                    help=f"{described} Values separated by spaces or commas; none: an empty list.",
                )
            elif isinstance(field, models.JSONField):
                parser.add_argument(
                    *names,
                    dest=name,
                    metavar="FILE",
                    help=f"{described} Read from FILE ('-': standard input; '': remove the key set).",
                )
            else:
                parser.add_argument(*names, dest=name, metavar=_metavar(name), help=described)
        parser.add_argument("--json", action="store_true", help="Print what was stored, as JSON.")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        Application = get_application_model()
        creating = not options["client_id"]
        app = existing_or_new(options["client_id"])
        if creating:
            if not options["name"]:
                raise CommandError("Name the new client (the first argument).")
            app.client_type = Application.CLIENT_CONFIDENTIAL
            app.authorization_grant_type = constants.CIBA_GRANT_TYPE
            for field, value in NEW_CLIENT.items():
                setattr(app, field, value)
        if options["name"]:
            app.name = options["name"]
        for field, value in _given(options).items():
            setattr(app, field, value)
        secret = self.secret(app, creating or options["new_secret"])
        save_validated(app, names={field: option(field) for field in registration_fields()})
        try:
            # As dynamic registration does: the document must vouch for the client's URLs
            # (a failure raises inside the transaction, so nothing stays saved).
            subjects.check_client_sector(app)
        except InvalidClientMetadata as exc:
            raise CommandError(
                f"The client was not saved: {option('sector_identifier_uri')} {exc.description}"
            ) from None
        self.report(app, secret, options["json"])

    def secret(self, app: Any, new: bool) -> str | None:
        """A new secret when asked for; stored unhashed only when the client needs the secret
        itself (client_secret_jwt keys an HMAC with it, HS256 ID tokens are signed with it)."""
        needs_secret_itself = (
            app.token_endpoint_auth_method == constants.AUTH_CLIENT_SECRET_JWT
            or app.algorithm == AbstractApplication.HS256_ALGORITHM
        )
        app.hash_client_secret = not needs_secret_itself
        if new:
            app.client_secret = secrets.token_urlsafe(32)
            return app.client_secret
        if needs_secret_itself and app._client_secret_is_hashed(app.client_secret):
            raise CommandError(
                f"{option('token_endpoint_auth_method')} client_secret_jwt and {option('algorithm')} HS256 "
                "need the client secret itself, and only its hash is stored: add --new-secret."
            )
        return None

    def report(self, app: Any, secret: str | None, as_json: bool) -> None:
        stored = {field: getattr(app, field) for field in stored_fields()}
        if as_json:
            result = {"client_id": app.client_id, **({"client_secret": secret} if secret else {}), **stored}
            # "mode" is what this command printed before it printed every field.
            result["mode"] = app.backchannel_token_delivery_mode
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"Client {app.name!r}: client_id {app.client_id}")
        if secret:
            kept = (
                "stored unhashed: the client needs it itself"
                if not app.hash_client_secret
                else "only its hash is stored"
            )
            self.stdout.write(f"client_secret {secret}  (shown once; {kept})")
        for field in registration_fields():
            value = stored[field]
            if value not in ("", None, False, []):
                shown = json.dumps(value) if isinstance(value, dict) else value
                if isinstance(value, list):
                    shown = " ".join(str(item) for item in value)
                self.stdout.write(f"  {field}: {shown}")


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The columns the options given set, with what they replace: ``jwks`` and ``jwks_uri``
    are alternatives (RFC 7591 §2), and a tls_client_auth client names one certificate name
    (RFC 8705 §2.1.2), so giving one of them clears the others."""
    given = {field: options[field] for field in registration_fields() if options.get(field) is not None}
    Application = get_application_model()
    for field in given:
        if _is_list(Application._meta.get_field(field)):
            given[field] = [
                item.strip() for value in given[field] for item in value.split(",") if item.strip()
            ]
    if "jwks" in given:
        given["jwks"] = _read_jwks(given["jwks"])
    if given.get("jwks") is not None:
        given.setdefault("jwks_uri", "")
    if given.get("jwks_uri"):
        given.setdefault("jwks", None)
    if any(name in given for name in constants.TLS_CLIENT_AUTH_NAME_FIELDS):
        for name in constants.TLS_CLIENT_AUTH_NAME_FIELDS:
            given.setdefault(name, "")
    return given


def _is_list(field: Any) -> bool:
    """A JSON column holding a list of strings (``grant_types``, ``contacts``): its values are
    given on the command line, where a key set (``jwks``) is read from a file."""
    return isinstance(field, models.JSONField) and field.default is list


def _read_jwks(path: str) -> Any:
    if not path:
        return None
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CommandError(f"{option('jwks')}: {path} cannot be read ({exc.strerror}).") from None
    try:
        return json.loads(text)
    except ValueError:
        raise CommandError(f'{option("jwks")}: {path} is not JSON (a JWK Set: {{"keys": [...]}}).') from None


def _help(field: Any) -> str:
    """The admin's help text for the field, with the values it takes; ``%`` escaped for argparse."""
    text = HELP.get(field.name) or str(field.help_text or field.verbose_name)
    if field.name == "authorization_details_types":
        text += f" Supported here: {', '.join(rar.supported_types()) or 'none'}."
    if field.choices:
        values = [value for value, _label in field.choices if value]
        text += f" One of: {', '.join(values)}" + (" ('' for none)." if field.blank else ".")
    return text.replace("%", "%%")


def _metavar(field: str) -> str:
    if field.endswith("_alg") or field == "algorithm":
        return "ALG"
    if field.endswith(("_endpoint", "_uri")):
        return "URL"
    return field.rsplit("_", 1)[-1].upper()
