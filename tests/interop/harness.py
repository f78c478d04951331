"""The example server as a relying party meets it, for the interop tier.

``example_site`` runs the example project (``tests.interop.settings``: the example's settings with
DPoP nonces required; not the test settings)
with the production parts: its own PostgreSQL database (``<DATABASE_URL's name>_interop``,
created and dropped here, like pytest-django's ``test_`` copy), Redis for the cache, the poll
state and the Celery broker, the production web server (``./scripts/serve``, as
``bench.common.serve`` runs it) and a real Celery worker with beat (``tests.integration.conftest.Worker``).
Clients are registered with ``manage.py ciba_client`` (``tests/interop/register.py``); the users
and their consent-API tokens come from ``manage.py ciba_demo_data``, and a user approves through
the consent API as their phone app would (``Site.approve``).

``fapi_site`` is a second server on the same database: the FAPI-CIBA profile behind a real nginx
verifying client certificates (``tests.integration.nginx``), as docs/fapi.md runs it.

Ports come from ``CIBA_INTEROP_PORTS`` (``8400-8499``) when set, so that parallel runs on one
machine can be given disjoint ranges; otherwise the system picks free ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from bench.common import flush_redis, serve_command, stop_session, wait_until_serving
from ciba.dispatch import QUEUES

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
JS = HERE / "js"
DISCOVERY = "/o/.well-known/openid-configuration"

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, from ``CIBA_INTEROP_PORTS`` (``LOW-HIGH``) if set."""
    wanted = os.environ.get("CIBA_INTEROP_PORTS", "").strip()
    candidates: Any = [0]
    if wanted:
        low, _, high = wanted.partition("-")
        candidates = (p for p in range(int(low), int(high or low) + 1) if p not in _handed_out)
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = probe.getsockname()[1]
        _handed_out.add(port)
        return port
    pytest.fail(f"no free port left in CIBA_INTEROP_PORTS={wanted}")


def production_urls() -> dict[str, str]:
    """The production parts this run may use, from the environment ``./scripts/test --interop`` sets."""
    urls = {name: os.environ.get(name, "") for name in ("DATABASE_URL", "CACHE_URL", "CELERY_BROKER_URL")}
    if not urls["DATABASE_URL"].startswith("postgres"):
        pytest.fail("The interop tier runs on PostgreSQL: set DATABASE_URL (./scripts/test --interop).")
    for name in ("CACHE_URL", "CELERY_BROKER_URL"):
        if urlsplit(urls[name]).scheme != "redis":
            pytest.fail(f"The interop tier runs on Redis: set {name}=redis://... (./scripts/test --interop).")
    return urls


def interop_database(url: str) -> str:
    """``DATABASE_URL``'s database with ``_interop`` appended: the named database is never touched."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_interop"))


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


@dataclass
class Site:
    """A running example server: its issuer, its environment, its users."""

    base: str  # where a client reaches it (the web server, or nginx)
    issuer: str
    env: dict[str, str]
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    consent_base: str = ""  # where the users' phones reach the consent API
    ca_file: str | None = None  # verifies the server's certificate (https sites)
    logs: list[Path] = field(default_factory=list)  # the web server's, nginx's
    worker: Any = None

    def manage(self, *args: str, stdin: str | None = None) -> str:
        """``python manage.py ARGS`` as the site's operator runs it; fails the test on error."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode:
            pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def register(self, clients: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Register ``{name: registration metadata}``; returns ``{name: {client_id, client_secret, ...}}``."""
        result = subprocess.run(
            [sys.executable, "-m", "tests.interop.register"],
            cwd=ROOT,
            env=self.env,
            input=json.dumps(clients),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode:
            pytest.fail(f"registering {sorted(clients)} failed:\n{result.stdout}\n{result.stderr}")
        return json.loads(result.stdout)

    def pending(self, user: str = "alice") -> list[dict[str, Any]]:
        """The user's pending requests, as their phone app lists them (consent API)."""
        response = requests.get(
            f"{self.consent_base}/o/ciba/requests/",
            headers={"Authorization": f"Bearer {self.users[user]['consent_token']}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def approve(self, binding_message: str, user: str = "alice", timeout: float = 30) -> dict[str, Any]:
        """Wait for the user's pending request showing ``binding_message`` and approve it, as the
        user does on their phone: the consent API with the phone app's token."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.pending(user) if r["binding_message"] == binding_message]
            if found:
                response = requests.post(
                    f"{self.consent_base}/o/ciba/requests/{found[0]['auth_req_id']}/approve/",
                    headers={"Authorization": f"Bearer {self.users[user]['consent_token']}"},
                    json={},
                    timeout=10,
                )
                assert response.status_code == 200, response.text
                return response.json()
            time.sleep(0.1)
        pytest.fail(f"no pending request of {user} shows {binding_message!r} after {timeout} s")

    def tail(self, lines: int = 40) -> str:
        """The end of the server's logs (and the worker's), for a failure message."""
        parts = []
        for path in self.logs:
            if path.exists():
                text = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                parts.append(f"--- {path.name}\n{text}")
        if self.worker is not None:
            periodic = ("Scheduler: Sending", "ciba.sweep_", "ciba.expire_requests")
            told = [line for line in self.worker.output if not any(p in line for p in periodic)]
            parts.append("--- celery worker\n" + "".join(told[-lines:]))
        return "\n".join(parts)


@contextmanager
def web_server(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """The production web server (``./scripts/serve``, as ``bench.common.serve`` runs it), its
    output to ``log``; stopped with every process it started."""
    command, extra, label = serve_command(port, 2)
    base = f"http://127.0.0.1:{port}"
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, **extra},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_until_serving(base, process, label, DISCOVERY)
        except RuntimeError:
            pytest.fail(f"{label} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        yield base
    finally:
        stop_session(process)


def site_env(urls: dict[str, str], var_dir: Path, issuer: str, **extra: str) -> dict[str, str]:
    """The example project's environment, as docs/integration.md sets it for production parts.

    The per-user limits keep their defaults, as a deployment's would: every relying party here
    starts one request for alice and it is approved before the next starts (never more than one
    pending), about 14 in a session, under ``USER_REQUEST_RATE``'s 20 an hour. A tier that
    grows past that sets ``CIBA_USER_REQUEST_RATE=off`` here, saying why.
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.interop.settings",
        "DJANGO_DEBUG": "0",
        "DATABASE_URL": urls["DATABASE_URL"],
        "CACHE_URL": urls["CACHE_URL"],
        "CELERY_BROKER_URL": urls["CELERY_BROKER_URL"],
        "OIDC_ISS_ENDPOINT": issuer,
        # One secret key and ID-token key for every process of both sites (made on first use).
        "CIBA_EXAMPLE_VAR_DIR": str(var_dir),
        "CIBA_SWEEP_SECONDS": "2",
    }
    for name in ("CIBA_TEST_WORKER", "CIBA_TEST_MTLS", "CIBA_TEST_PROFILE", "CIBA_TEST_NOTIFIERS"):
        env.pop(name, None)  # the test settings' switches mean nothing to the example
    env.update(extra)
    return env


@contextmanager
def example_site(directory: Path) -> Iterator[Site]:
    """The example server with PostgreSQL, Redis and a Celery worker, migrated and seeded."""
    from tests.integration.conftest import Worker

    urls = production_urls()
    urls["DATABASE_URL"] = interop_database(urls["DATABASE_URL"])
    flush_redis(urls["CACHE_URL"], urls["CELERY_BROKER_URL"])
    recreate_database(urls["DATABASE_URL"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    site = Site(base=base, issuer=f"{base}/o", env=site_env(urls, directory / "var", f"{base}/o"))
    site.consent_base = base
    with ExitStack() as stack:
        stack.callback(drop_database, urls["DATABASE_URL"])
        site.manage("migrate", "--noinput", "-v", "0")
        # PS256 and ES256 ID tokens are signed with the server's key set (ciba.signing). On a new
        # site: publish an RSA key, then sign with it (docs/deployment.md, rotation steps 1 and 3,
        # without the wait: no relying party has cached the JWKS yet); the first EC key signs at once.
        site.manage("ciba_keys", "rotate", "--type", "rsa")
        site.manage("ciba_keys", "rotate", "--type", "rsa")
        site.manage("ciba_keys", "add", "--type", "ec")
        demo = json.loads(site.manage("ciba_demo_data", "--json"))
        site.users = demo["users"]
        worker = Worker(
            {**site.env, "CELERY_BROKER_URL": urls["CELERY_BROKER_URL"]},
            ("--pool=solo", "--beat", f"--schedule={directory / 'beat-schedule'}"),
            QUEUES,
        )
        worker.start()
        stack.callback(worker.stop)
        site.worker = worker
        site.logs.append(directory / "web.log")
        stack.enter_context(web_server(site.env, port, directory / "web.log"))
        yield site


@contextmanager
def fapi_site(site: Site, directory: Path) -> Iterator[tuple[Site, Any]]:
    """The FAPI-CIBA profile behind nginx (client certificates verified, forwarded to the server
    as docs/nginx-mtls.md says), on ``site``'s database; yields the site and its test PKI."""
    from tests.integration.nginx import proxy
    from tests.integration.tls import Pki

    pki = Pki(directory / "pki")
    nginx_port, upstream_port = free_port(), free_port()
    issuer = f"https://127.0.0.1:{nginx_port}/o"
    env = {
        **site.env,
        "OIDC_ISS_ENDPOINT": issuer,
        "CIBA_PROFILE": "fapi-ciba",
        "CIBA_TRUSTED_PROXIES": "127.0.0.1/32",
        "CIBA_MTLS_CERT_HEADER": "X-SSL-Client-Cert",
        "CIBA_MTLS_CERT_VERIFY_HEADER": "X-SSL-Client-Verify",
        "CIBA_MTLS_CERT_HEADER_FORMAT": "escaped-pem",
        "DJANGO_SECURE_PROXY_SSL_HEADER": "1",
    }
    nginx_dir = directory / "nginx"
    nginx_dir.mkdir(parents=True, exist_ok=True)
    with web_server(env, upstream_port, directory / "web.log") as upstream:
        with proxy(pki, nginx_dir, upstream, nginx_port) as nginx:
            fapi = Site(
                base=nginx.url,
                issuer=issuer,
                env=env,
                users=site.users,
                consent_base=site.consent_base,
                ca_file=nginx.ca_file,
                logs=[directory / "web.log", nginx_dir / "error.log"],
                worker=site.worker,
            )
            yield fapi, pki


# --- the relying parties' own environments --------------------------------------------------


def _lock_hash(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def install_js() -> Path:
    """``npm ci`` of tests/interop/js (openid-client, pinned by package-lock.json), once per lock
    file. No node or no registry is a failure that says so: a skipped tier would pass unseen."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("The interop tier needs Node.js 20+ and npm (Debian: apt-get install nodejs npm).")
    stamp = JS / "node_modules" / ".interop-lock"
    digest = _lock_hash(JS / "package-lock.json")
    if stamp.exists() and stamp.read_text() == digest:
        return JS
    try:
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", "--fetch-retries=2"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("npm ci in tests/interop/js did not finish in 300 s: is the npm registry reachable?")
    if result.returncode:
        pytest.fail(
            "npm ci in tests/interop/js failed (the npm registry must be reachable to install "
            f"openid-client):\n{result.stderr[-3000:]}"
        )
    stamp.write_text(digest)
    return JS


PYTHON_RP = HERE / "python"


def install_python_rp() -> str:
    """The Python relying party's own virtualenv (tests/interop/python/.venv, from the pinned
    requirements.txt), once per requirements file: its libraries never share the server's
    environment, as a relying party's would not. Returns its interpreter."""
    requirements = PYTHON_RP / "requirements.txt"
    venv = PYTHON_RP / ".venv"
    python = venv / "bin" / "python"
    stamp = venv / ".interop-requirements"
    digest = _lock_hash(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return str(python)
    shutil.rmtree(venv, ignore_errors=True)
    steps = (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements],
    )
    for step in steps:
        try:
            result = subprocess.run([str(word) for word in step], capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(step)} did not finish in 300 s: is PyPI reachable?")
        if result.returncode:
            pytest.fail(
                f"installing the Python relying party ({requirements.relative_to(ROOT)}) failed; "
                f"PyPI must be reachable:\n{result.stderr[-3000:]}"
            )
    stamp.write_text(digest)
    return str(python)
