"""A real nginx TLS terminator, verifying client certificates, in front of gunicorn.

``running(pki, directory)`` starts both and yields an ``MtlsServer``:

* gunicorn serves the test project (``example_project.wsgi`` with ``tests.settings``, so
  ``tests.urls``) with ``CIBA_TEST_MTLS=1``: ``TRUSTED_PROXIES`` is loopback and the client
  certificate is read from ``X-SSL-Client-Cert`` / ``X-SSL-Client-Verify``. It shares this
  pytest run's PostgreSQL test database, Redis and ID-token key, so rows a test creates (with
  ``transactional_db``) are what the server sees.
* nginx listens on ``https://127.0.0.1:<free port>`` with ``nginx.conf.template`` (the server
  block of docs/nginx-mtls.md): ``ssl_verify_client optional_no_ca`` against the test client CA,
  and the certificate headers always overwritten.

Both run in their own process groups, killed on exit whatever happened. nginx missing is a
failure, never a skip: CI installs Debian's package (.ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.integration.tls import MTLS_SETTINGS, Credential, Pki  # noqa: F401 - MTLS_SETTINGS: re-exported

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).with_name("nginx.conf.template")
#: The production server block the template follows (its first ```nginx block).
DOC = ROOT / "docs" / "nginx-mtls.md"
DISCOVERY = "/o/.well-known/openid-configuration"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if not found:
        pytest.fail(
            "nginx is not installed: the mutual-TLS tests need a real TLS terminator "
            "(apt-get install nginx; .ci/run does it)."
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    """The environment of the web processes: this run's test database, Redis and keys."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.fail("The mutual-TLS tests run on PostgreSQL: ./scripts/test --production.")
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CIBA_TEST_MTLS": "1",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "OIDC_RSA_PRIVATE_KEY": settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"],
        "PYTHONPATH": str(ROOT),
    }
    # Tasks run eagerly in the web processes (no worker here), as tests.settings decides.
    env.pop("CIBA_TEST_WORKER", None)
    return env


@dataclass
class MtlsServer:
    url: str  # https://127.0.0.1:<port>, nginx
    upstream_url: str  # http://127.0.0.1:<port>, gunicorn itself
    ca_file: str  # verifies nginx's certificate
    pki: Pki
    directory: Path
    sessions: list[requests.Session] = field(default_factory=list)

    def session(self, cert: Credential | None = None) -> requests.Session:
        """A ``requests`` session to nginx presenting ``cert`` (or no certificate)."""
        session = requests.Session()
        # Not the environment's CA bundle or proxies (REQUESTS_CA_BUNDLE would override
        # Session.verify): the test server CA, straight to loopback.
        session.trust_env = False
        session.verify = self.ca_file
        if cert is not None:
            session.cert = cert.paths
        self.sessions.append(session)
        return session

    def logs(self) -> str:
        return logs(self.directory)


def logs(directory: Path) -> str:
    """The tail of nginx's and gunicorn's logs in ``directory``, for failure messages."""
    parts = []
    for name in ("error.log", "nginx.stderr", "access.log", "gunicorn.log"):
        path = directory / name
        if path.exists():
            lines = path.read_text(errors="replace").splitlines()[-40:]
            parts.append(f"--- {name}\n" + "\n".join(lines))
    return "\n".join(parts)


def render_config(directory: Path, pki: Pki, port: int, upstream_port: int) -> str:
    user = ""
    if os.geteuid() == 0:
        # A root master would run its worker as "nobody", which cannot enter pytest's private
        # temporary directories (temp files of buffered bodies live there).
        import grp
        import pwd

        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    values = {
        "@USER@": user,
        "@DIR@": str(directory),
        "@PORT@": str(port),
        "@UPSTREAM_PORT@": str(upstream_port),
        "@SERVER_CERT@": str(pki.server.cert_path),
        "@SERVER_KEY@": str(pki.server.key_path),
        "@CLIENT_CA@": str(pki.ca_file),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(name, value)
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, f"unfilled placeholders in {TEMPLATE.name}: {left}"
    return text


def documented_block() -> str:
    """The first ```nginx block of docs/nginx-mtls.md."""
    match = re.search(r"^```nginx\n(.*?)^```", DOC.read_text(), re.S | re.M)
    assert match, f"no nginx block in {DOC}"
    return match.group(1)


def directives(text: str) -> list[tuple[str, ...]]:
    """The simple directives of an nginx configuration, as (name, *arguments), in order."""
    text = re.sub(r"#[^\n]*", "", text)
    found = []
    for statement in re.split(r"[;{}]", text):
        words = statement.split()
        if words:
            found.append(tuple(words))
    return found


def documented_config(pki: Pki, directory: Path) -> str:
    """docs/nginx-mtls.md's block as a whole configuration, with the test PKI's files and
    a free loopback port in place of the production paths and port 443."""
    block = documented_block()
    for name, path in (
        ("ssl_certificate", pki.server.cert_path),
        ("ssl_certificate_key", pki.server.key_path),
        ("ssl_client_certificate", pki.ca_file),
        ("ssl_trusted_certificate", pki.ca_file),
    ):
        block = re.sub(rf"(^\s*{name}\s+)[^;]+;", rf"\g<1>{path};", block, flags=re.M)
    block = re.sub(r"(^\s*listen\s+)443(\s)", rf"\g<1>127.0.0.1:{free_port()}\2", block, flags=re.M)
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"error_log {directory / 'error.log'};\npid {directory / 'nginx.pid'};\n"
        f"events {{}}\nhttp {{\n    access_log off;\n{temp}\n{block}\n}}\n"
    )


def check_config(text: str, directory: Path) -> None:
    """``nginx -t`` on ``text``: fails the test with nginx's words if it is refused."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(text)
    command = [nginx_binary(), "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(f"nginx rejects {conf}:\n{check.stderr}\n{text}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL to whatever is left of it."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:  # children (gunicorn workers, nginx workers) that outlived their master
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break


def _wait_until_up(process: subprocess.Popen, what: str, url: str, logs: Any, **kw: Any) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=2, **kw)
            return  # any answer: it is serving
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start (exit {process.poll()}):\n{logs()}")
        time.sleep(0.1)


@contextmanager
def gunicorn(directory: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """The test project on gunicorn (2 sync workers) on a free loopback port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        log = stack.enter_context(open(directory / "gunicorn.log", "ab"))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "example_project.wsgi:application",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "--graceful-timeout",
                "2",
            ],
            cwd=ROOT,
            env=env or server_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(_stop, process)
        _wait_until_up(process, "gunicorn", url + DISCOVERY, lambda: logs(directory))
        yield url


@contextmanager
def proxy(pki: Pki, directory: Path, upstream_url: str, port: int | None = None) -> Iterator[MtlsServer]:
    """nginx terminating TLS on ``port`` (default: a free loopback port) in front of ``upstream_url``."""
    binary = nginx_binary()
    port = port or free_port()
    server = MtlsServer(
        url=f"https://127.0.0.1:{port}",
        upstream_url=upstream_url,
        ca_file=str(pki.server_ca_file),
        pki=pki,
        directory=directory,
    )
    upstream_port = int(upstream_url.rsplit(":", 1)[1])
    check_config(render_config(directory, pki, port, upstream_port), directory)
    conf = directory / "nginx.conf"
    command = [binary, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
    with ExitStack() as stack:
        process = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=stack.enter_context(open(directory / "nginx.stderr", "ab")),
            start_new_session=True,
        )
        stack.callback(_stop, process)
        _wait_until_up(process, "nginx", server.url + "/", server.logs, verify=server.ca_file)
        try:
            yield server
        finally:
            for session in server.sessions:
                session.close()


@contextmanager
def running(
    pki: Pki, directory: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[MtlsServer]:
    """gunicorn and nginx in front of it, up and answering; both process groups are killed
    on exit, whatever happened. ``port``: nginx's, when ``env`` must name it beforehand (an
    issuer); ``env``: gunicorn's, ``server_env()`` plus what a test adds."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with gunicorn(directory, env) as upstream, proxy(pki, directory, upstream, port) as server:
        yield server
