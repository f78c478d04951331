"""The interop tier: real relying-party libraries against the example server.

Run with ``./scripts/test --interop`` (PostgreSQL, Redis, a Celery worker, Node.js, nginx). A
missing part fails the tier with a message saying what to install; nothing is skipped, so a
green run means every library really ran.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.interop.harness import (
    JS,
    PYTHON_RP,
    ROOT,
    Site,
    example_site,
    fapi_site,
    install_js,
    install_python_rp,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is ``interop``, and ``integration`` too: it needs the production parts,
    so the fast tier (``-m "not integration ..."``) never collects it into a run."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.interop)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def interop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def site(interop_dir: Path) -> Iterator[Site]:
    with example_site(interop_dir / "site") as running:
        yield running


@pytest.fixture(scope="session")
def fapi(site: Site, interop_dir: Path) -> Iterator[tuple[Site, Any]]:
    with fapi_site(site, interop_dir / "fapi") as running:
        yield running


@pytest.fixture(scope="session")
def node() -> Path:
    return install_js()


@pytest.fixture(scope="session")
def python_rp() -> str:
    return install_python_rp()


# --- the clients' keys ----------------------------------------------------------------------

_PRIVATE = {"d", "p", "q", "dp", "dq", "qi"}


def client_key(alg: str, directory: Path) -> tuple[str, dict[str, Any]]:
    """A new signing key for ``alg``: the private JWK's file (for the relying party) and the
    public JWK Set the client registers."""
    if alg.startswith(("RS", "PS")):
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True)
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True)
    elif alg in ("Ed25519", "EdDSA"):
        key = ed25519.Ed25519PrivateKey.generate()
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key, as_dict=True)
    else:
        raise ValueError(alg)
    jwk.update(kid=f"{alg.lower()}-{secrets.token_hex(4)}", alg=alg, use="sig")
    path = directory / f"{jwk['kid']}.jwk"
    path.write_text(json.dumps(jwk))
    path.chmod(0o600)
    return str(path), {"keys": [{k: v for k, v in jwk.items() if k not in _PRIVATE}]}


# --- running a relying party ----------------------------------------------------------------


def binding_message(label: str) -> str:
    """A message the user compares on both devices; unique, so the approval finds its request."""
    return f"{label} {secrets.token_hex(3).upper()}"


@pytest.fixture
def relying_party() -> Callable[..., dict[str, Any]]:
    """Run a relying party (a command) with ``env``, approve its request on alice's phone once it
    shows ``BINDING_MESSAGE``, and return the JSON it prints. A failure shows what the relying
    party said and the end of the server's log."""

    def run(
        site: Site,
        command: list[str],
        env: dict[str, str],
        approve: bool = True,
        timeout: float = 90,
    ) -> dict[str, Any]:
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "CIBA"))},
            "ISSUER": site.issuer,
            "LOGIN_HINT": "alice",
            "NO_PROXY": "127.0.0.1,localhost",
            **env,
        }
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if approve:
                try:
                    site.approve(env["BINDING_MESSAGE"], timeout=30)
                except BaseException:
                    process.kill()
                    output, errors = process.communicate()
                    print(f"relying party:\n{output}\n{errors}\nserver:\n{site.tail()}")
                    raise
            output, errors = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        if process.returncode != 0:
            pytest.fail(
                f"{' '.join(command[-1:])} failed (exit {process.returncode}):\n{output}\n{errors}\n"
                f"server:\n{site.tail()}"
            )
        return json.loads(output.strip().splitlines()[-1])

    return run


def node_command(script: str) -> list[str]:
    return ["node", str(JS / script)]


def python_command(interpreter: str) -> list[str]:
    return [interpreter, str(PYTHON_RP / "rp.py")]
