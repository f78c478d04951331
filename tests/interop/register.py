"""Register the interop tier's clients as a site owner does: ``manage.py ciba_client``.

Reads ``{name: registration metadata}`` (JSON, standard input) and prints
``{name: {"client_id", "client_secret", ...what was stored}}``. Each metadata name is the
command's option of that name (``token_endpoint_auth_signing_alg`` is
``--token-endpoint-auth-signing-alg``; a boolean is ``--x`` or ``--no-x``; ``jwks`` is a file),
so the command's validation, the admin's, decides what may be registered. One process
registers them all: a Django start-up per client would cost seconds each.

Run with the site's environment: ``python -m tests.interop.register < clients.json``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from io import StringIO
from typing import Any


def options(metadata: dict[str, Any], directory: str) -> list[str]:
    """The command line that registers ``metadata``."""
    words = []
    for name, value in metadata.items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(option if value else "--no-" + option[2:])
            continue
        if name == "jwks":
            path = os.path.join(directory, f"jwks-{len(words)}.json")
            with open(path, "w") as handle:
                json.dump(value, handle)
            value = path
        words += [option, str(value)]
    return words


def register(name: str, metadata: dict[str, Any]) -> dict[str, Any]:
    from django.core.management import call_command

    with tempfile.TemporaryDirectory() as directory:
        out = StringIO()
        call_command("ciba_client", name, *options(metadata, directory), "--json", stdout=out)
    return json.loads(out.getvalue())


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.interop.settings")
    import django

    django.setup()
    clients = json.load(sys.stdin)
    print(json.dumps({name: register(name, metadata) for name, metadata in clients.items()}))


if __name__ == "__main__":
    main()
