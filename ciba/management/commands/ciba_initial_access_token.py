"""Issue, list and revoke initial access tokens (RFC 7591 §3): who may register a client.

Registration is closed by default; an operator opens it for one developer at a time by handing
them a token from here (or the admin). The token is printed once and only its hash is kept,
so a lost token is revoked and replaced, never looked up.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ciba.client_registration import initial_access_tokens, metadata
from ciba.models import InitialAccessToken

#: Words that mean "no limit" for --uses and --expires-in.
UNLIMITED = {"uses": "unlimited", "expires_in": "never"}
#: --allow values of a boolean member (dpop_bound_access_tokens=true); all else is text.
BOOLEANS = {"true": True, "false": False}


def _limit(option: str, word: str) -> Any:
    def parse(text: str) -> int | None:
        if text.strip().lower() == word:
            return None
        try:
            value = int(text)
        except ValueError:
            raise CommandError(f"{option}: a whole number or '{word}', not {text!r}.") from None
        if value < 1:
            raise CommandError(f"{option}: at least 1 (or '{word}').")
        return value

    return parse


def allowed_metadata(entries: list[str]) -> dict[str, list[Any]]:
    """``FIELD=VALUE[,VALUE]`` entries as ``allowed_metadata``; a field given twice allows the
    values of both."""
    allowed: dict[str, list[Any]] = {}
    for entry in entries:
        name, sep, values = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CommandError(f"--allow: FIELD=VALUE[,VALUE], not {entry!r}.")
        boolean = name in metadata.BY_NAME and metadata.BY_NAME[name].kind is metadata.Kind.BOOLEAN
        parsed = [v.strip() for v in values.split(",") if v.strip()]
        if boolean:
            if any(v.lower() not in BOOLEANS for v in parsed):
                raise CommandError(f"--allow {name}: true or false.")
            parsed = [BOOLEANS[v.lower()] for v in parsed]
        if not parsed:
            raise CommandError(f"--allow {name}: name at least one value.")
        values_of = allowed.setdefault(name, [])
        values_of.extend(value for value in dict.fromkeys(parsed) if value not in values_of)
    return allowed


def described(row: InitialAccessToken) -> dict[str, Any]:
    return {
        "id": row.pk,
        "name": row.name,
        "state": initial_access_tokens.state(row),
        "uses_left": row.uses_left,
        "expires": row.expires.isoformat() if row.expires else None,
        "revoked": row.revoked.isoformat() if row.revoked else None,
        "created": row.created.isoformat(),
        "allowed_metadata": row.allowed_metadata,
    }


class Command(BaseCommand):
    help = (
        "Issue an initial access token for dynamic client registration (RFC 7591 section 3) and print "
        "it once; or --list the tokens issued, or --revoke one. A registration presents the token as "
        "'Authorization: Bearer TOKEN' at the registration endpoint."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="Who the token is for, and why (required to issue one).")
        parser.add_argument(
            "--uses",
            type=_limit("--uses", UNLIMITED["uses"]),
            default=1,
            metavar="N|unlimited",
            help="Registrations the token allows (default 1).",
        )
        parser.add_argument(
            "--expires-in",
            type=_limit("--expires-in", UNLIMITED["expires_in"]),
            default=86400,
            metavar="SECONDS|never",
            help="Seconds the token stays valid (default 86400, one day).",
        )
        parser.add_argument(
            "--allow",
            action="append",
            default=[],
            metavar="FIELD=VALUE[,VALUE]",
            help="Registrations with the token may give FIELD only these values (a list field: only "
            "these items); repeat for several fields, e.g. --allow backchannel_token_delivery_mode=poll,ping "
            "--allow grant_types=urn:openid:params:grant-type:ciba.",
        )
        parser.add_argument("--json", action="store_true", help="Print JSON.")
        actions = parser.add_mutually_exclusive_group()
        actions.add_argument("--list", action="store_true", help="List the tokens issued (never the tokens).")
        actions.add_argument("--revoke", type=int, metavar="ID", help="Revoke the token with this id.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            self.list(options["json"])
        elif options["revoke"] is not None:
            self.revoke(options["revoke"], options["json"])
        else:
            self.issue(options)

    def issue(self, options: dict[str, Any]) -> None:
        if not options["name"]:
            raise CommandError("Name the token (the first argument): who it is for, and why.")
        try:
            token, row = initial_access_tokens.issue(
                options["name"],
                uses=options["uses"],
                expires_in=options["expires_in"],
                allowed_metadata=allowed_metadata(options["allow"]),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps({"initial_access_token": token, **described(row)}))
            return
        uses = "any number of registrations" if row.uses_left is None else f"{row.uses_left} registration(s)"
        expiry = (
            f"until {timezone.localtime(row.expires):%Y-%m-%d %H:%M:%S %Z}"
            if row.expires
            else "never expires"
        )
        self.stdout.write(f"Initial access token {row.pk} for {row.name!r}: {uses}, {expiry}")
        if row.allowed_metadata:
            self.stdout.write(f"  allowed metadata: {json.dumps(row.allowed_metadata)}")
        self.stdout.write(f"{token}  (shown once; only its hash is stored)")

    def list(self, as_json: bool) -> None:
        rows = [described(row) for row in InitialAccessToken.objects.order_by("pk")]
        if as_json:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("No initial access tokens.")
        for row in rows:
            uses = "unlimited" if row["uses_left"] is None else row["uses_left"]
            self.stdout.write(
                f"{row['id']}  {row['name']!r}  {row['state']}  uses left: {uses}  "
                f"expires: {row['expires'] or 'never'}"
                + (f"  allowed: {json.dumps(row['allowed_metadata'])}" if row["allowed_metadata"] else "")
            )

    def revoke(self, pk: int, as_json: bool) -> None:
        row = initial_access_tokens.revoke(pk)
        if row is None:
            raise CommandError(f"No initial access token has id {pk} (--list shows them).")
        if as_json:
            self.stdout.write(json.dumps(described(row)))
        else:
            self.stdout.write(f"Initial access token {row.pk} ({row.name!r}) is revoked.")
