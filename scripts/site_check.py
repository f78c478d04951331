"""Follow docs/integration.md to the letter, as a new site owner would, and prove it works.

Copies this checkout as the clone the guide's step 1 builds its wheel from, and runs the guide
block by block in a new directory: the virtualenv with the wheel and its ``production``
extra, ``django-admin startproject``, the files it says to write, the commands it says to run,
the server and a real Celery worker on Redis, and the curl sessions in which a kiosk asks, a
phone approves and the kiosk gets its tokens, by poll and by ping (the ping reaches a small
HTTP receiver of this script's).

Then Part B's production section, on the same site: PostgreSQL, Redis as cache, poll state and
broker, the queues routed to the documented workers and beat, the fast lane around the site's
``wsgi.py``, the documented granian command, static files from WhiteNoise, ``check --deploy``
and ``ciba_health --queues``. Against that server, as a client behind the TLS terminator
(``X-Forwarded-Proto: https``), this script checks the static files, the RFC 8414 metadata at
the root, a ping delivered by the workers to its receiver and the tokens after it, and that
``check --deploy`` warns about nothing but what the guide says it will.

Each fenced block is preceded by an HTML comment saying what to do with it::

    <!-- site: run -->                 a bash block, run in the site's directory (exported
                                        variables and the working directory carry over)
    <!-- site: run until SECONDS -->   the same, for a health check: run again every 2 s until
                                        it succeeds or SECONDS have passed (then it must succeed)
    <!-- site: file PATH -->           write the block to PATH
    <!-- site: append PATH -->         append it to PATH
    <!-- site: background NAME -->     start each command of the bash block and keep it
                                        running (ready: a Celery worker's "ready.", beat's
                                        "Starting...", anything else listening on $PORT)
    <!-- site: env -->                 the production environment: the block's ``export``
                                        names must be exactly the variables this script
                                        gives its own values (PRODUCTION below)
    <!-- site: compile -->             a Python block that must at least compile
    <!-- site: skip REASON -->         not run, and the reason why

A Python or shell block in README.md or docs/integration.md without such a comment fails the
check: every snippet a reader may paste is either run here or says why not.

Usage: python scripts/site_check.py [--keep]   (needs curl, Redis on 127.0.0.1:6379 and
PostgreSQL on 127.0.0.1:5432 with trust authentication; SITE_CHECK_DATABASE_URL,
SITE_CHECK_REDIS_URL and SITE_CHECK_BROKER_URL choose the database, dropped and created afresh,
and the two Redis databases, flushed; SITE_CHECK_PORT the site's port, default a free one)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "integration.md"
DOCUMENTS = (ROOT / "README.md", GUIDE)
DIRECTIVE = re.compile(r"^\s*<!-- site: (\w+)(?: (.*?))? -->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NEEDS_DIRECTIVE = {"python", "bash", "sh", "shell", "console"}
ACTIONS = ("run", "file", "append", "background", "env", "compile", "skip")
#: Where Part B, the reference (and its production section), begins.
PART_B = re.compile(r"^# Part B\b", re.M)

DATABASE_URL = os.environ.get("SITE_CHECK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ciba_site_check")
REDIS_URL = os.environ.get("SITE_CHECK_REDIS_URL", "redis://127.0.0.1:6379/7")
BROKER = os.environ.get("SITE_CHECK_BROKER_URL", "redis://127.0.0.1:6379/8")

#: What check --deploy may still warn about on the production run, and why (the guide says so).
ACCEPTED_WARNINGS = {
    "security.W021": "HSTS preload is the site's own commitment (docs/integration.md)",
    "ciba.W001": "this script's ping receiver listens on plain http (CIBA_CALLBACK_ALLOW_HTTP=1)",
    "ciba.W002": "... on 127.0.0.1 (CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS=1)",
    "ciba.W023": "stock auth.User's email, a default login_hint identifier, has no index (the guide says so)",
}


STARTED = time.monotonic()


def say(line: str) -> None:
    """A line of progress, with the seconds since the start (the check should stay short)."""
    print(f"[{time.monotonic() - STARTED:4.0f} s] {line}", flush=True)


@dataclass
class Block:
    document: Path
    line: int
    language: str
    text: str
    action: str | None
    argument: str

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(document: Path) -> list[Block]:
    """Every fenced block of ``document`` with the directive just above it, if any."""
    found, pending, lines = [], None, document.read_text().splitlines()
    i = 0
    while i < len(lines):
        directive = DIRECTIVE.match(lines[i])
        fence = FENCE.match(lines[i])
        if directive:
            pending = (directive.group(1), (directive.group(2) or "").strip())
        elif fence:
            indent, language, start, body = fence.group(1), fence.group(2), i + 1, []
            i += 1
            while i < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[i]):
                body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
                i += 1
            action, argument = pending if pending else (None, "")
            found.append(Block(document, start, language, "\n".join(body) + "\n", action, argument))
            pending = None
        elif lines[i].strip():
            pending = None if not lines[i].lstrip().startswith("<!--") else pending
        i += 1
    return found


def unmarked(all_blocks: list[Block]) -> list[str]:
    problems = []
    for block in all_blocks:
        if block.language in NEEDS_DIRECTIVE and block.action is None:
            problems.append(f"{block.where}: a {block.language} block with no <!-- site: ... --> comment")
        if block.action == "skip" and not block.argument:
            problems.append(f"{block.where}: skip without a reason")
        if block.action not in (None, *ACTIONS):
            problems.append(f"{block.where}: unknown action {block.action!r}")
    return problems


def commands(text: str) -> list[str]:
    """The commands of a shell block: one a line, backslash continuations joined, comments out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def exported_names(text: str) -> list[str]:
    return re.findall(r"^\s*export\s+(\w+)=", text, re.M)


class Receiver:
    """A client's notification endpoint: records every POST (its bearer token and body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.headers.get("Authorization", ""), json.loads(body or b"{}")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ciba/notify"

    def wait_for(self, auth_req_id: str, seconds: float = 30) -> str:
        """The bearer token of the ping for ``auth_req_id``, once it has arrived."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for authorization, body in list(self.received):
                if body.get("auth_req_id") == auth_req_id:
                    assert body == {"auth_req_id": auth_req_id}, body
                    return authorization
            time.sleep(0.1)
        raise SystemExit(f"no ping for {auth_req_id} arrived within {seconds:g} s (got {self.received})")


class Site:
    """The new site's directory, its environment, and the processes the guide starts."""

    def __init__(self, base: Path, port: int, environment: dict[str, str]) -> None:
        self.base, self.port = base, port
        self.state = base / "state"
        self.state.mkdir()
        (self.state / "cwd").write_text(str(base))
        environment = {
            "PATH": f"{base / 'venv' / 'bin'}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", str(base)),
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",
            **environment,
        }
        self.export(environment)
        self.processes: list[tuple[str, subprocess.Popen, Path]] = []

    @property
    def cwd(self) -> Path:
        return Path((self.state / "cwd").read_text().strip())

    def export(self, variables: dict[str, str]) -> None:
        """Add ``variables`` to what every later block and process sees."""
        with (self.state / "env.sh").open("a") as handle:
            handle.write("".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items()))

    def script(self, text: str, keep_state: bool = True) -> str:
        save = f'\nexport -p > "{self.state}/env.sh"\npwd > "{self.state}/cwd"\n' if keep_state else ""
        return (
            f'set -euo pipefail\nset -a\nsource "{self.state}/env.sh"\ncd "$(cat "{self.state}/cwd")"\n'
            f"{text}{save}"
        )

    def run(self, text: str, where: str) -> str:
        result = subprocess.run(
            ["bash", "-c", self.script(text)], capture_output=True, text=True, env={}, timeout=600
        )
        if result.returncode:
            raise SystemExit(
                f"{where}: exited {result.returncode}\n{text}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}{self.logs()}"
            )
        return result.stdout

    def output(self, text: str) -> str:
        """stdout and stderr of ``text``, whatever its exit status (for reading a report)."""
        return subprocess.run(
            ["bash", "-c", self.script(f"{{ {text}\n}} 2>&1 || true", keep_state=False)],
            capture_output=True,
            text=True,
            env={},
        ).stdout

    def succeeds(self, text: str) -> bool:
        return not subprocess.run(
            ["bash", "-c", self.script(text, keep_state=False)], capture_output=True, env={}, timeout=600
        ).returncode

    def environment(self) -> dict[str, str]:
        dump = subprocess.run(
            ["bash", "-c", self.script("env -0", keep_state=False)], capture_output=True, env={}
        ).stdout
        return dict(item.split("=", 1) for item in dump.decode().split("\0") if "=" in item)

    def start(self, name: str, command: str, where: str) -> None:
        log = self.base / f"{name}.log"
        process = subprocess.Popen(
            ["bash", "-c", self.script("exec " + command, keep_state=False)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={},
            start_new_session=True,
        )
        self.processes.append((name, process, log))
        ready = _readiness(command, log, self.port)
        deadline = time.monotonic() + 90
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{where}: {name} did not start\n{log.read_text()[-4000:]}")
            time.sleep(0.2)

    def log(self, name: str) -> str:
        return "".join(log.read_text() for n, _, log in self.processes if n == name)

    def logs(self) -> str:
        return "".join(
            f"\n--- {name}.log (last lines)\n" + "\n".join(log.read_text().splitlines()[-30:])
            for name, _, log in self.processes
        )

    def stop(self) -> None:
        for _, process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for _, process, _ in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(5)
        self.processes.clear()


def _readiness(command: str, log: Path, port: int) -> Callable[[], bool]:
    if re.search(r"\bcelery\b.*\bworker\b", command):
        return lambda: " ready." in log.read_text()
    if re.search(r"\bcelery\b.*\bbeat\b", command):
        return lambda: "beat: Starting" in log.read_text()
    return lambda: _listening(port)


def apply(site: Site, block: Block, production: dict[str, str]) -> None:
    if block.action == "run":
        say(f"--> run {block.where}")
        until = re.fullmatch(r"until (\d+)", block.argument)
        deadline = time.monotonic() + (int(until.group(1)) if until else 0)
        waited = time.monotonic()
        while until and time.monotonic() < deadline:  # a health check, run as monitoring would
            if site.succeeds(block.text):
                say(f"    succeeded after {time.monotonic() - waited:.0f} s")
                break
            time.sleep(2)
        site.run(block.text, block.where)
    elif block.action in ("file", "append"):
        say(f"--> {block.action} {block.argument} ({block.where})")
        path = site.cwd / block.argument
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if block.action == "append" else "w") as handle:
            handle.write(("\n" if block.action == "append" else "") + block.text)
    elif block.action == "background":
        found = commands(block.text)
        for number, command in enumerate(found, 1):
            name = block.argument if len(found) == 1 else f"{block.argument}-{number}"
            say(f"--> start {name} ({block.where})")
            site.start(name, command, block.where)
    elif block.action == "env":
        say(f"--> the production environment ({block.where})")
        names = exported_names(block.text)
        if sorted(names) != sorted(production):
            raise SystemExit(
                f"{block.where}: the guide exports {sorted(names)}; site-check sets {sorted(production)}. "
                "Give every variable the guide names a value here (PRODUCTION), and no other."
            )
        site.export(production)
    elif block.action == "compile":
        compile(block.text, block.where, "exec")


def clone(target: Path) -> None:
    """The clone of step 1: this checkout's files as git sees them (committed or not, ignored
    ones left out), so that nothing of an earlier build (``build/``) reaches the wheel and the
    build writes nothing into the checkout."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the checkout is not in it
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def build_site(base: Path, receiver: Receiver) -> Site:
    clone(base / "django-ciba")
    port = int(os.environ.get("SITE_CHECK_PORT") or _free_port())
    return Site(base, port, {"CELERY_BROKER_URL": BROKER, "NOTIFY_ENDPOINT": receiver.url})


def part_a_checks(site: Site, receiver: Receiver) -> None:
    """What Part A's blocks cannot see themselves: the device app's page and assets as the
    signed-in alice sees them (templates and static files are package data), the ping the
    worker delivered, and what check --deploy says about the development posture."""
    say("--> the device app's page and assets")
    site.run(
        # grep reads to the end (no -q): quitting at the first match would fail curl's write
        # (exit 23) under pipefail whenever the page is still arriving.
        'curl -sf -b jar "$SITE/ciba/device/" | grep "ciba-request-template" > /dev/null\n'
        'curl -sf "$SITE/static/ciba/device/device.js" | grep "approve" > /dev/null\n'
        'curl -sf "$SITE/ciba/device/manifest.webmanifest" | python -m json.tool > /dev/null\n',
        "device app",
    )
    environment = site.environment()
    authorization = receiver.wait_for(environment["PING_REQ_ID"])
    assert authorization == f"Bearer {environment['NOTIFY_TOKEN']}", authorization
    say("    the worker delivered the ping, with the request's client_notification_token")
    deploy = site.output("python manage.py check --deploy")
    assert "ciba.W001" in deploy and "ciba.E018" not in deploy, deploy
    say("    check --deploy names what the development posture leaves unsafe")


def prepare_services(site: Site) -> dict[str, str]:
    """A new PostgreSQL database and empty Redis databases; the values this script gives the
    variables of the guide's production environment."""
    import psycopg  # the production extra's driver, in the venv scripts/site-check runs in
    from psycopg import sql

    database = sql.Identifier(urlsplit(DATABASE_URL).path.lstrip("/"))
    with psycopg.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(database))
    for url in (REDIS_URL, BROKER):
        subprocess.run(["redis-cli", "-u", url, "flushdb"], check=True, capture_output=True)
    return {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OIDC_ISS_ENDPOINT": f"https://127.0.0.1:{site.port}/o",  # behind the TLS terminator
        "OIDC_RSA_PRIVATE_KEY": (site.cwd / "oidc-key.pem").read_text(),  # step 7's key
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": BROKER,
    }


class Client:
    """HTTP as a client behind the site's TLS terminator sees it; no redirect is followed."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    def __init__(self, site_url: str) -> None:
        self.site_url = site_url
        self.opener = urllib.request.build_opener(self._NoRedirect)

    def call(
        self, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.site_url + path,
            data=urlencode(form).encode() if form is not None else None,
            headers={"X-Forwarded-Proto": "https", **(headers or {})},
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, path: str, form: dict[str, str] | None = None, **headers: str) -> tuple[int, dict]:
        status, body = self.call(path, form, headers)
        try:
            return status, json.loads(body or b"{}")
        except ValueError:
            raise SystemExit(f"{path}: {status}, not JSON: {body[:300]!r}") from None


def production_checks(site: Site, receiver: Receiver) -> None:
    """The production run, from outside: what a browser, an OAuth client and a ping client see."""
    client = Client(f"http://127.0.0.1:{site.port}")
    environment = site.environment()
    assert "fast lane is off" not in site.log("web"), site.log("web")

    say("--> static files from the production server (WhiteNoise)")
    for path in ("ciba/device/device.js", "ciba/device/device.css", "admin/css/base.css"):
        status, _ = client.call(f"/static/{path}")
        assert status == 200, f"/static/{path}: {status}{site.logs()}"
    status, manifest = client.json("/ciba/device/manifest.webmanifest")
    assert status == 200, status
    for icon in manifest["icons"]:  # the hashed names the manifest storage gives the templates
        status, _ = client.call(icon["src"])
        assert status == 200, f"{icon['src']}: {status}"

    say("--> RFC 8414 metadata at the site's root")
    issuer = environment["OIDC_ISS_ENDPOINT"]
    status, metadata = client.json("/.well-known/oauth-authorization-server" + urlsplit(issuer).path)
    assert status == 200, (status, metadata)
    assert metadata["issuer"] == issuer and metadata["backchannel_authentication_endpoint"], metadata

    say("--> a ping client, the workers and the fast lane")
    consent_token = secrets.token_urlsafe(32)
    site.run(  # alice, and the bearer token her phone app would hold (consent scope)
        'python manage.py shell -c "'
        "from datetime import timedelta; from django.contrib.auth.models import User; "
        "from django.utils import timezone; from oauth2_provider.models import get_access_token_model; "
        "alice = User.objects.create_user('alice', 'alice@example.com', 'correct-horse-battery'); "
        f"get_access_token_model().objects.create(user=alice, token='{consent_token}', "
        "scope='ciba:consent', expires=timezone.now() + timedelta(minutes=10))\"",
        "alice",
    )
    ping = json.loads(
        site.run(
            'python manage.py ciba_client "Corner Shop kiosk (ping, production)" --mode ping '
            f"--notification-endpoint {receiver.url} --json",
            "ping client",
        )
    )
    basic = "Basic " + base64.b64encode(f"{ping['client_id']}:{ping['client_secret']}".encode()).decode()
    notify_token = secrets.token_urlsafe(32)
    status, started = client.json(
        "/o/backchannel-authentication/",
        {"scope": "openid", "login_hint": "alice", "client_notification_token": notify_token},
        Authorization=basic,
    )
    assert status == 200, (status, started)
    auth_req_id, poll = started["auth_req_id"], {"grant_type": "urn:openid:params:grant-type:ciba"}
    poll["auth_req_id"] = auth_req_id
    for _ in range(2):  # the second is the fast lane's: the first put the request in Redis
        status, answer = client.json("/o/token/", poll, Authorization=basic)
        assert status == 400 and answer["error"] in ("authorization_pending", "slow_down"), answer
    status, _ = client.json(
        f"/o/ciba/requests/{auth_req_id}/approve/", {}, Authorization=f"Bearer {consent_token}"
    )
    assert status == 200, status
    assert receiver.wait_for(auth_req_id) == f"Bearer {notify_token}"
    say("    the callbacks worker delivered the ping")
    for _ in range(4):
        status, tokens = client.json("/o/token/", poll, Authorization=basic)
        if tokens.get("error") != "slow_down":
            break
        time.sleep(started.get("interval", 5))
    assert status == 200 and tokens["id_token"] and tokens["access_token"], (status, tokens)
    say("    the client collected its tokens")

    say("--> check --deploy: no errors, and only the warnings the guide accepts")
    deploy = site.output("python manage.py check --deploy")
    found = set(re.findall(r"\((\w+\.[EWC]\d+)\)", deploy))
    unexpected = sorted(found - set(ACCEPTED_WARNINGS))
    assert not unexpected, f"check --deploy reports {unexpected}:\n{deploy}"
    say(f"    accepted: {', '.join(sorted(found)) or 'nothing'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the site directory")
    args = parser.parse_args()
    all_blocks = [block for document in DOCUMENTS for block in blocks(document)]
    if problems := unmarked(all_blocks):
        raise SystemExit("Snippets that are neither run nor marked:\n" + "\n".join(problems))
    guide = blocks(GUIDE)
    part_b = GUIDE.read_text()[: PART_B.search(GUIDE.read_text()).start()].count("\n") + 1
    base = Path(tempfile.mkdtemp(prefix="ciba-site-"))
    subprocess.run(["redis-cli", "-u", BROKER, "flushdb"], check=True, capture_output=True)
    receiver = Receiver()
    site = build_site(base, receiver)
    say(f"==> a new site in {base}")
    try:
        say("==> following docs/integration.md, Part A")
        for block in guide:
            if block.line < part_b and block.action not in (None, "skip"):
                apply(site, block, {})
        part_a_checks(site, receiver)
        say("==> Part B: the same site in production")
        site.stop()
        production = prepare_services(site)
        # Not the guide's production values: the ping receiver of this script listens on
        # http://127.0.0.1 (check --deploy: ciba.W001, ciba.W002), and two web processes are
        # enough here.
        site.export(
            {
                "CIBA_CALLBACK_ALLOW_HTTP": "1",
                "CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS": "1",
                "WEB_CONCURRENCY": "2",
            }
        )
        for block in guide:
            if block.line > part_b and block.action not in (None, "skip"):
                apply(site, block, production)
        production_checks(site, receiver)
    finally:
        site.stop()
        receiver.server.shutdown()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    say("site check passed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
