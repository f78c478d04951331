"""Manage this server's ID-token signing keys (``ciba.signing``): list, add, activate, rotate, prune."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ciba import signing
from ciba.conf import ciba_settings
from ciba.models import SigningKey

ROTATE_GUIDANCE = (
    "published now; run rotate again after your relying parties' JWKS cache time "
    "(default advice: 24 h) to start signing with it"
)
SETTINGS_KEY = 'OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]'


def _when(value: Any) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"


class Command(BaseCommand):
    # Adding a key is how a site fixes a missing-key check, so checks must not stop it.
    requires_system_checks: list[str] = []
    help = (
        "Manage the keys that sign ID tokens: list them, add one (published before it signs), "
        "activate the waiting one (the active one is retired, still published), rotate (add, or "
        "activate what waits) and prune retired keys past SIGNING_KEY_RETIRED_KEEP_SECONDS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        actions.add_parser("list", help="Every key: kid, type, state and dates (never the key itself).")
        for name, text in (
            (
                "add",
                "Create a key: next (published, not signing), or active at once if no key of its type "
                "signs yet (for RSA: no active database key and no OIDC_RSA_PRIVATE_KEY).",
            ),
            ("activate", "Sign with the newest next key of this type; retire the active one."),
            ("rotate", "Add a next key if none waits, else activate the one waiting."),
        ):
            action = actions.add_parser(name, help=text)
            action.add_argument("--type", required=True, choices=("rsa", "ec"), help="RSA or EC P-256.")
            if name != "activate":
                action.add_argument(
                    "--bits", type=int, default=2048, help="RSA key size (2048 to 8192; default 2048)."
                )
        actions.add_parser("prune", help="Delete keys retired longer than SIGNING_KEY_RETIRED_KEEP_SECONDS.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self.list_keys()
        elif action == "add":
            self.add(options["type"], options["bits"])
        elif action == "activate":
            self.activate(options["type"])
        elif action == "rotate":
            kty = options["type"].upper()
            if SigningKey.objects.filter(kty=kty, state=SigningKey.State.NEXT).exists():
                self.activate(options["type"])
            else:
                self.add(options["type"], options["bits"])
        elif action == "prune":
            count = signing.prune()
            self.stdout.write(f"Deleted {count} retired key(s).")

    def list_keys(self) -> None:
        keys = SigningKey.objects.order_by("kty", "-created_at", "-pk")
        if not keys:
            self.stdout.write("No signing keys in the database (DOT's OIDC_RSA_PRIVATE_KEY signs RS256).")
            return
        self.stdout.write(f"{'kid':<44} {'type':<4} {'state':<8} {'created':<24} {'activated':<24} retired")
        for key in keys:
            self.stdout.write(
                f"{key.kid:<44} {key.kty:<4} {key.state:<8} {_when(key.created_at):<24} "
                f"{_when(key.activated_at):<24} {_when(key.retired_at)}"
            )

    def add(self, kty: str, bits: int) -> None:
        try:
            key = signing.generate_key(kty, bits=bits)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if key.state == SigningKey.State.ACTIVE:
            self.stdout.write(
                f"Added {key.kty} key {key.kid}: active now, published and signing: no {key.kty} key "
                "signed before, so no relying party has cached a key it replaces: no overlap to wait for."
            )
            return
        self.stdout.write(f"Added {key.kty} key {key.kid} as next: {ROTATE_GUIDANCE}.")
        active = SigningKey.objects.filter(kty=key.kty, state=SigningKey.State.ACTIVE)
        if signing.settings_key_signs(key.kty) and not active.exists():
            # The settings key is the current signer: say what signs meanwhile, and the way out
            # for a site nobody relies on yet.
            self.stdout.write(
                f"Until then {SETTINGS_KEY} keeps signing RS256 ID tokens, and no key signs PS256. "
                "On a site no relying party uses yet, sign with the new key at once: "
                f"manage.py ciba_keys activate --type {key.kty.lower()}."
            )

    def activate(self, kty: str) -> None:
        try:
            new, old = signing.activate(kty)
        except signing.SigningKeyMissing as exc:
            raise CommandError(f"{exc} (manage.py ciba_keys add --type {kty})") from None
        self.stdout.write(f"Activated {new.kty} key {new.kid}: it signs new ID tokens now.")
        if old is None and signing.settings_key_signs(new.kty):
            self.stdout.write(
                f"It takes over from {SETTINGS_KEY}, which no longer signs the ID tokens of clients "
                "that registered id_token_signed_response_alg (DOT still signs with it for the others); "
                "it stays published while it is in the settings."
            )
        elif old is None:
            self.stdout.write(f"No {new.kty} key was active before.")
        else:
            keep = ciba_settings.SIGNING_KEY_RETIRED_KEEP_SECONDS
            self.stdout.write(
                f"Retired {old.kty} key {old.kid}: still published, so ID tokens it signed verify, "
                f"until prune runs {keep} s (SIGNING_KEY_RETIRED_KEEP_SECONDS) from now."
            )
