"""Follow docs/integration.md to the letter, as a new site owner would, and prove it works.

Builds the wheel of this checkout, installs it (not editable, with the ``production`` extra)
into a fresh virtualenv, then runs Part A of the integration guide block by block in a new
directory: ``django-admin startproject``, the files it says to write, the commands it says to
run, the server and a real Celery worker on Redis, and the curl session in which a kiosk asks,
a phone approves and the kiosk gets its tokens. Then, with the documented commands, a ping
client: a real worker delivers the ping to a local endpoint and the client collects tokens.

Each fenced block is preceded by an HTML comment saying what to do with it::

    <!-- site: run -->                 a bash block, run in the site's directory (exported
                                        variables and the working directory carry over)
    <!-- site: file PATH -->           write the block to PATH
    <!-- site: append PATH -->         append it to PATH
    <!-- site: background NAME -->     start the bash block and keep it running
    <!-- site: compile -->             a Python block that must at least compile
    <!-- site: skip REASON -->         not run, and the reason why

A Python or shell block in README.md or docs/integration.md without such a comment fails the
check: every snippet a reader may paste is either run here or says why not.

Usage: python scripts/site_check.py [--keep]   (needs Redis on 127.0.0.1:6379 and curl)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "integration.md"
DOCUMENTS = (ROOT / "README.md", GUIDE)
DIRECTIVE = re.compile(r"^\s*<!-- site: (\w+)(?: (.*?))? -->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NEEDS_DIRECTIVE = {"python", "bash", "sh", "shell", "console"}
BROKER = "redis://127.0.0.1:6379/12"


@dataclass
class Block:
    document: Path
    line: int
    language: str
    text: str
    action: str | None
    argument: str


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
        where = f"{block.document.relative_to(ROOT)}:{block.line}"
        if block.language in NEEDS_DIRECTIVE and block.action is None:
            problems.append(f"{where}: a {block.language} block with no <!-- site: ... --> comment")
        if block.action == "skip" and not block.argument:
            problems.append(f"{where}: skip without a reason")
        if block.action not in (None, "run", "file", "append", "background", "compile", "skip"):
            problems.append(f"{where}: unknown action {block.action!r}")
    return problems


class Site:
    """The new site's directory, its environment, and the processes the guide starts."""

    def __init__(self, base: Path, venv: Path, port: int) -> None:
        self.base, self.venv, self.port = base, venv, port
        self.state = base / "state"
        self.state.mkdir()
        (self.state / "cwd").write_text(str(base))
        environment = {
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", str(base)),
            "PORT": str(port),
            "CELERY_BROKER_URL": BROKER,
            "PYTHONUNBUFFERED": "1",
            "VIRTUAL_ENV": str(venv),
        }
        (self.state / "env.sh").write_text(
            "".join(f"export {k}={_quote(v)}\n" for k, v in environment.items())
        )
        self.processes: list[tuple[str, subprocess.Popen, Path]] = []

    @property
    def cwd(self) -> Path:
        return Path((self.state / "cwd").read_text().strip())

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
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result.stdout

    def start(self, name: str, text: str, where: str) -> None:
        log = self.base / f"{name}.log"
        process = subprocess.Popen(
            ["bash", "-c", self.script("exec " + text.strip(), keep_state=False)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={},
            start_new_session=True,
        )
        self.processes.append((name, process, log))
        ready = (
            (lambda: _listening(self.port)) if "runserver" in text else (lambda: " ready." in log.read_text())
        )
        deadline = time.monotonic() + 60
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{where}: {name} did not start\n{log.read_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        for _, process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for _, process, _ in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)


def apply(site: Site, block: Block) -> None:
    where = f"{block.document.relative_to(ROOT)}:{block.line}"
    if block.action == "run":
        print(f"--> run {where}", flush=True)
        site.run(block.text, where)
    elif block.action in ("file", "append"):
        print(f"--> {block.action} {block.argument} ({where})", flush=True)
        path = site.cwd / block.argument
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if block.action == "append" else "w") as handle:
            handle.write(("\n" if block.action == "append" else "") + block.text)
    elif block.action == "background":
        print(f"--> start {block.argument} ({where})", flush=True)
        site.start(block.argument or "process", block.text, where)
    elif block.action == "compile":
        compile(block.text, where, "exec")


def device_page(site: Site) -> None:
    """The device app, as the signed-in alice of the guide's session sees it, with its assets
    served from the installed wheel (templates and static files are package data)."""
    print("--> the device app's page and assets", flush=True)
    site.run(
        # grep reads to the end (no -q): quitting at the first match would fail curl's write
        # (exit 23) under pipefail whenever the page is still arriving.
        'curl -sf -b jar "$SITE/ciba/device/" | grep "ciba-request-template" > /dev/null\n'
        'curl -sf "$SITE/static/ciba/device/device.js" | grep "approve" > /dev/null\n'
        'curl -sf "$SITE/ciba/device/manifest.webmanifest" | python -m json.tool > /dev/null\n',
        "device app",
    )


def ping_flow(site: Site) -> None:
    """The documented ping client, a real worker, a local notification endpoint."""
    received: list[tuple[str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            received.append(
                (self.headers.get("Authorization", ""), self.rfile.read(int(self.headers["Content-Length"])))
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/ciba/notify"
    print("--> ping flow", flush=True)
    client = json.loads(
        site.run(
            'python manage.py ciba_client "Corner Shop kiosk (ping)" --mode ping '
            f"--notification-endpoint {endpoint} --json",
            "ping client",
        )
    )
    environment = _environment(site)
    site_url, token = f"http://127.0.0.1:{site.port}", environment["TOKEN"]
    basic = {"Authorization": "Basic " + _b64(f"{client['client_id']}:{client['client_secret']}")}
    started = _post(
        f"{site_url}/o/backchannel-authentication/",
        {
            "scope": "openid",
            "login_hint": "alice",
            "client_notification_token": "ping-token-0123456789",
        },
        basic,
    )
    auth_req_id = started["auth_req_id"]
    _post(f"{site_url}/o/ciba/requests/{auth_req_id}/approve/", {}, {"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    server.shutdown()
    if not received:
        raise SystemExit("ping flow: no ping arrived (is the worker running?)")
    authorization, body = received[0]
    assert authorization == "Bearer ping-token-0123456789", authorization
    assert json.loads(body) == {"auth_req_id": auth_req_id}, body
    tokens = _post(
        f"{site_url}/o/token/",
        {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id},
        basic,
    )
    assert tokens["id_token"] and tokens["access_token"], tokens
    print("    the ping arrived and the client collected its tokens", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the site directory")
    args = parser.parse_args()
    all_blocks = [block for document in DOCUMENTS for block in blocks(document)]
    if problems := unmarked(all_blocks):
        raise SystemExit("Snippets that are neither run nor marked:\n" + "\n".join(problems))
    base = Path(tempfile.mkdtemp(prefix="ciba-site-"))
    print(f"==> building the wheel and a fresh virtualenv in {base}", flush=True)
    with (base / "pip.log").open("w") as log:  # pip's chatter, kept out of CI's output
        pip = {"check": True, "stdout": log, "stderr": log}
        wheel_dir = str(base / "dist")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheel_dir, str(ROOT)], **pip
        )
        (wheel,) = (base / "dist").glob("django_ciba-*.whl")
        venv = base / "venv"
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{wheel}[production]"], **pip
        )
    subprocess.run(["redis-cli", "-n", BROKER.rsplit("/", 1)[1], "flushdb"], check=True, capture_output=True)
    site = Site(base, venv, _free_port())
    try:
        print("==> following docs/integration.md, Part A", flush=True)
        for block in blocks(GUIDE):
            if block.action not in (None, "skip"):
                apply(site, block)
        device_page(site)
        ping_flow(site)
        print("==> check --deploy names what a development posture leaves unsafe", flush=True)
        deploy = subprocess.run(
            ["bash", "-c", site.script("python manage.py check --deploy 2>&1 || true", keep_state=False)],
            capture_output=True,
            text=True,
            env={},
        ).stdout
        assert "ciba.W001" in deploy and "ciba.E018" not in deploy, deploy
    finally:
        site.stop()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print("site check passed", flush=True)


def _environment(site: Site) -> dict[str, str]:
    dump = subprocess.run(
        ["bash", "-c", site.script("env -0", keep_state=False)], capture_output=True, env={}
    ).stdout
    return dict(item.split("=", 1) for item in dump.decode().split("\0") if "=" in item)


def _post(url: str, form: dict[str, str], headers: dict[str, str]) -> dict:
    request = urllib.request.Request(url, data=urlencode(form).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


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
