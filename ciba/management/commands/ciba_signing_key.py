"""Create the RSA key that signs ID tokens (``OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    # It makes the key the checks ask for (ciba.E003), so it must run before they pass.
    requires_system_checks: list[str] = []
    help = (
        "Create an RSA private key for signing ID tokens and say where to put it. With --output, "
        "write it to a new file readable only by you; otherwise print it. Keep it out of source "
        "control."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", type=Path, help="Write the PEM to this new file (mode 0600).")
        parser.add_argument("--bits", type=int, default=2048, choices=(2048, 3072, 4096), help="Key size.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=options["bits"])
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path: Path | None = options["output"]
        if path is None:
            self.stdout.write(pem, ending="")
            self.stderr.write(
                "Put this key in the environment the server and the Celery workers start with, e.g.\n"
                '  export OIDC_RSA_PRIVATE_KEY="$(cat key.pem)"\n'
                "and read it in settings:\n"
                '  OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"] = os.environ["OIDC_RSA_PRIVATE_KEY"]'
            )
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CommandError(
                f"{path} exists; not overwritten (rotate keys on purpose, not by accident)."
            ) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        self.stdout.write(
            f"Wrote {path} (mode 0600). Load it at start-up, e.g.\n"
            f'  OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"] = Path("{path}").read_text()\n'
            f'or export OIDC_RSA_PRIVATE_KEY="$(cat {path})" and read the environment.'
        )
