"""Legitimate clients of every authentication method, polling while someone attacks client
authentication (issue 21, findings 1 and 2).

    python -m bench.attack                # about 3 minutes; PostgreSQL and Redis on loopback
    python -m bench.attack --legacy       # secrets under the password hasher (PBKDF2), as before
    python -m bench.attack --duration 10 --scenarios baseline,wrong-secret
    python -m bench.attack --legacy --expensive-cap 1   # the cap at one expensive check

The example project runs on gunicorn (``--workers`` sync workers, 2 by default) with the
production parts, behind a pretend TLS terminator: every request comes from 127.0.0.1, listed in
``TRUSTED_PROXIES``, and says where it came from in ``X-Forwarded-For`` and which certificate
its client presented in ``X-SSL-Client-Cert`` (nginx's escaped PEM, with ``X-SSL-Client-Verify``),
as docs/nginx-mtls.md configures nginx. Four legitimate poll clients, one per method —
``client_secret_basic`` (a generated secret), ``private_key_jwt`` (a new assertion per poll),
``tls_client_auth`` and ``self_signed_tls_client_auth`` (certificates made as
tests/integration/tls.py makes them) — each start a CIBA request and poll it every
``--poll-every`` seconds on a fixed schedule (each poll timed from when it was due; a poll
unanswered after 10 s counts as 10 s), from addresses of their own, while an attacker sends,
paced, for ``--duration`` seconds, after a fresh cache:

- ``baseline``: nothing;
- ``wrong-secret``: the secret client's own id with a wrong secret, ``--rate`` per second from
  one address;
- ``unknown-ids``: a new random client id each time, ``--rate`` per second from 250 addresses;
- ``bogus-mtls``: requests naming the two mTLS clients with a certificate of someone else (or
  none), ``--bogus-rate`` per second from one address;
- ``bogus-jwt``: assertions naming the ``private_key_jwt`` client signed with another key,
  ``--bogus-rate`` per second from one address.

A legitimate poll succeeds when it is answered ``authorization_pending`` or ``slow_down``.
Targets, per (scenario, method): at least 99 % success and p95 under 50 ms. Then the costs:
one keyed-hash check and one PBKDF2 check (in-process, the example's hashers), and, through
the server, the median of a failure answered 429 (over budget) and of one answered 401.
Writes ``docs/performance/attack[-legacy].json``; the command fails if a target is missed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.common import (
    GRANT,
    RESULTS,
    environment,
    finish,
    flush_redis,
    gunicorn,
    manage,
    percentiles,
    post,
    prepare_database,
)

FORM = "application/x-www-form-urlencoded"
TARGET_SUCCESS = 0.99
TARGET_P95_MS = 50.0
SCENARIOS = ("baseline", "wrong-secret", "unknown-ids", "bogus-mtls", "bogus-jwt")
METHODS = ("client_secret_basic", "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: Registers the legitimate clients (run with ``manage.py shell``); reads a JSON spec on stdin.
REGISTER = """
import json, sys
from oauth2_provider.models import get_application_model
from ciba.constants import CIBA_GRANT_TYPE
spec = json.loads(sys.stdin.read())
Application = get_application_model()
out = {}
for method, fields in spec.items():
    app = Application(
        name=f"Bench {method}", client_type="confidential", authorization_grant_type=CIBA_GRANT_TYPE,
        backchannel_token_delivery_mode="poll", algorithm="RS256", token_endpoint_auth_method=method,
        **fields,
    )
    app.full_clean()
    app.save()
    out[method] = app.client_id
print(json.dumps(out))
"""

#: One keyed-hash check and one PBKDF2 check, timed in-process (``manage.py shell``).
COSTS = """
import json, secrets, time
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from ciba.client_auth.hashers import ClientSecretHasher
secret = secrets.token_urlsafe(32)
keyed, slow = ClientSecretHasher(), PBKDF2PasswordHasher()
k, s = make_password(secret, hasher="ciba_hmac_sha256"), slow.encode(secret, slow.salt())
t = time.perf_counter()
for _ in range(20000):
    keyed.verify("wrong", k)
keyed_us = (time.perf_counter() - t) / 20000 * 1e6
t = time.perf_counter()
for _ in range(3):
    slow.verify("wrong", s)
slow_ms = (time.perf_counter() - t) / 3 * 1e3
print(json.dumps({"keyed_hash_check_us": round(keyed_us, 1), "pbkdf2_check_ms": round(slow_ms, 1),
                  "pbkdf2_iterations": slow.iterations}))
"""


class Legit:
    """The four legitimate clients: how each authenticates a request."""

    def __init__(self, base: str, issuer: str, secret_client: dict, ids: dict, material: dict) -> None:
        self.base, self.issuer = base, issuer
        self.secret_client = secret_client
        self.ids = ids
        self.key = material["jwt_key"]
        self.certs = material["certs"]

    def auth(self, method: str) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, form fields) that authenticate ``method``'s client, from its own address."""
        headers = {"Content-Type": FORM, "X-Forwarded-For": ADDRESSES[method]}
        if method == "client_secret_basic":
            c = self.secret_client
            token = base64.b64encode(f"{c['client_id']}:{c['client_secret']}".encode()).decode()
            return {**headers, "Authorization": f"Basic {token}"}, {}
        client_id = self.ids[method]
        if method == "private_key_jwt":
            now = int(time.time())
            claims = {"iss": client_id, "sub": client_id, "aud": self.issuer, "iat": now, "exp": now + 60}
            claims["jti"] = secrets.token_urlsafe(16)
            assertion = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "bench"})
            return headers, {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        return {**headers, **cert_headers(self.certs[method])}, {"client_id": client_id}


ADDRESSES = {
    "client_secret_basic": "192.0.2.11",
    "private_key_jwt": "192.0.2.12",
    "tls_client_auth": "192.0.2.13",
    "self_signed_tls_client_auth": "192.0.2.14",
}


def cert_headers(credential: Any, verdict: str = "SUCCESS") -> dict[str, str]:
    return {"X-SSL-Client-Cert": credential.escaped_pem, "X-SSL-Client-Verify": verdict}


def start_request(legit: Legit, method: str) -> str:
    headers, fields = legit.auth(method)
    body = urlencode({**fields, "scope": "openid", "login_hint": "alice", "binding_message": "ATTACK"})
    status, answer = post(f"{legit.base}/o/backchannel-authentication/", body.encode(), headers)
    if status != 200:
        raise RuntimeError(f"backchannel for {method} answered {status}: {answer}")
    return answer["auth_req_id"]


def legitimate_polls(
    legit: Legit, method: str, auth_req_id: str, every: float, duration: float, offset: float
) -> dict[str, Any]:
    """Polls sent on a fixed schedule, each timed from when it was due: a poll stuck behind the
    attack delays none of the later ones, so a stall shows in every poll it hit."""
    latencies: list[float] = []
    answers: Counter = Counter()
    lock = threading.Lock()

    def one(due: float) -> None:
        headers, fields = legit.auth(method)
        body = urlencode({**fields, "grant_type": GRANT, "auth_req_id": auth_req_id}).encode()
        try:
            status, answer = post(f"{legit.base}/o/token/", body, headers)
            outcome = f"{status} {answer.get('error', '')}".strip()
        except OSError as exc:  # urllib.error.URLError is one; a timeout is the attack's effect
            status, outcome = 0, f"socket error {type(exc).__name__}"
        elapsed = (time.perf_counter() - due) * 1000 if status else 10_000.0
        with lock:
            latencies.append(elapsed)
            answers[outcome] += 1

    with ThreadPoolExecutor(max_workers=32) as pool:
        started = time.perf_counter() + offset
        for i in range(int(duration / every)):
            due = started + i * every
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(one, due)
    ok = answers["400 authorization_pending"] + answers["400 slow_down"]
    p = percentiles(latencies)
    success = ok / len(latencies) if latencies else 0.0
    return {
        "polls": len(latencies),
        "success_rate": round(success, 4),
        "poll_ms": p,
        "answers": dict(answers.most_common()),
        "target_met": success >= TARGET_SUCCESS and p.get("p95", 1e9) < TARGET_P95_MS,
    }


def attack_request(kind: str, legit: Legit, material: dict, i: int) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of the attacker's i-th request."""
    token_url = "/o/token/"
    body = {"grant_type": GRANT, "auth_req_id": secrets.token_urlsafe(24)}
    headers = {"Content-Type": FORM, "X-Forwarded-For": "203.0.113.7"}
    if kind == "wrong-secret":
        wrong = f"{legit.secret_client['client_id']}:{secrets.token_urlsafe(24)}"
        headers["Authorization"] = "Basic " + base64.b64encode(wrong.encode()).decode()
    elif kind == "unknown-ids":
        guess = f"guess-{secrets.token_hex(8)}:x{secrets.token_urlsafe(16)}"
        headers["Authorization"] = "Basic " + base64.b64encode(guess.encode()).decode()
        headers["X-Forwarded-For"] = f"10.20.0.{i % 250 + 1}"  # 250 addresses
    elif kind == "bogus-mtls":
        method = ("tls_client_auth", "self_signed_tls_client_auth")[i % 2]
        body["client_id"] = legit.ids[method]
        if i % 4 < 2:  # half with someone else's certificate, half with none
            headers.update(cert_headers(material["stranger"]))
    elif kind == "bogus-jwt":
        client_id = legit.ids["private_key_jwt"]
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": legit.issuer, "exp": now + 60}
        claims["jti"] = secrets.token_urlsafe(16)
        body["client_assertion_type"] = ASSERTION_TYPE
        body["client_assertion"] = jwt.encode(claims, material["forged_key"], algorithm="RS256")
    return token_url, urlencode(body).encode(), headers


def attacker(kind: str, legit: Legit, material: dict, rate: float, stop: threading.Event) -> Counter:
    """Requests at a fixed pace, each on its own thread: a slow answer must not slow the attack."""
    answers: Counter = Counter()
    lock = threading.Lock()

    def one(i: int) -> None:
        path, body, headers = attack_request(kind, legit, material, i)
        try:
            status, answer = post(legit.base + path, body, headers)
            outcome = f"{status} {answer.get('error', '')}".strip()
        except OSError as exc:
            outcome = f"socket error {type(exc).__name__}"
        with lock:
            answers[outcome] += 1

    with ThreadPoolExecutor(max_workers=64) as pool:
        started, i = time.perf_counter(), 0
        while not stop.is_set():
            due = started + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                stop.wait(pause)
                if stop.is_set():
                    break
            pool.submit(one, i)
            i += 1
    return answers


def scenario(kind: str, legit: Legit, material: dict, env: dict[str, str], args: argparse.Namespace) -> dict:
    flush_redis(env["CACHE_URL"])  # no failure counts or remembered secrets left from before
    started = {method: start_request(legit, method) for method in METHODS}
    # Each client's first poll (a slow hash in --legacy, then remembered); then the attack.
    for method in METHODS:
        legitimate_polls(legit, method, started[method], 0.5, 0.5, 0.0)
    stop = threading.Event()
    answers: Counter = Counter()
    thread = None
    rate = args.rate if kind in ("wrong-secret", "unknown-ids") else args.bogus_rate
    if kind != "baseline":

        def run() -> None:
            answers.update(attacker(kind, legit, material, rate, stop))

        thread = threading.Thread(target=run)
        thread.start()
    results: dict[str, Any] = {}
    threads = []
    for n, method in enumerate(METHODS):
        offset = args.poll_every * n / len(METHODS)  # staggered, as independent clients are

        def run_polls(method: str = method, offset: float = offset) -> None:
            results[method] = legitimate_polls(
                legit, method, started[method], args.poll_every, args.duration, offset
            )

        threads.append(threading.Thread(target=run_polls))
        threads[-1].start()
    for t in threads:
        t.join()
    stop.set()
    if thread:
        thread.join()
    return {
        "scenario": kind,
        "attacker_requests_per_second": 0 if kind == "baseline" else rate,
        "attacker_answers": dict(answers.most_common()),
        "legitimate": {method: results[method] for method in METHODS},
        "target_met": all(r["target_met"] for r in results.values()),
    }


def costs(legit: Legit, env: dict[str, str]) -> dict[str, Any]:
    """Median server round trip of a failure answered 401 (checked) and of one answered 429
    (over budget), sequentially on loopback; and the hashers' own cost, in-process."""
    measured = json.loads(manage(env, "shell", "-c", COSTS).strip().splitlines()[-1])
    flush_redis(env["CACHE_URL"])
    client_id = legit.secret_client["client_id"]
    wrong = "Basic " + base64.b64encode(f"{client_id}:wrong".encode()).decode()
    body = urlencode({"grant_type": GRANT, "auth_req_id": secrets.token_urlsafe(24)}).encode()
    by_status: dict[int, list[float]] = {}
    for _ in range(200):
        headers = {"Content-Type": FORM, "Authorization": wrong, "X-Forwarded-For": "198.51.100.5"}
        t0 = time.perf_counter()
        try:
            status, _ = post(f"{legit.base}/o/token/", body, headers)
        except OSError:  # still busy with what an attack left queued (--legacy)
            status = 0
        by_status.setdefault(status, []).append((time.perf_counter() - t0) * 1000)

    def median(values: list[float]) -> float | None:
        return round(sorted(values)[len(values) // 2], 2) if values else None

    measured["failure_checked_401_ms"] = median(by_status.get(401, []))
    measured["failure_over_budget_429_ms"] = median(by_status.get(429, []))
    return measured


def prepare(env: dict[str, str], workdir: Path) -> tuple[dict, dict, dict]:
    """Demo data (alice, the secret client), the three other clients, and their key material."""
    from tests.integration.tls import Pki, jwks

    demo = json.loads(manage(env, "ciba_demo_data", "--json"))
    pki = Pki(workdir)
    jwt_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(jwt_key.public_key()))
    public.update(kid="bench", use="sig")
    certs = {
        "tls_client_auth": pki.issue("bench-kiosk"),
        "self_signed_tls_client_auth": pki.self_signed("bench-kiosk-self"),
    }
    spec = {
        "private_key_jwt": {"jwks": {"keys": [public]}},
        "tls_client_auth": {"tls_client_auth_subject_dn": certs["tls_client_auth"].subject_dn},
        "self_signed_tls_client_auth": {"jwks": jwks(certs["self_signed_tls_client_auth"])},
    }
    ids = json.loads(
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", REGISTER],
            cwd=Path(__file__).resolve().parents[1],
            env=env,
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    material = {
        "jwt_key": jwt_key,  # the key object: loading a PEM per assertion costs ~50 ms (RSA checks)
        "forged_key": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "certs": certs,
        "stranger": pki.issue("someone-else"),
    }
    return demo, ids, material


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=20.0, help="wrong-secret and unknown-ids requests/s")
    parser.add_argument("--bogus-rate", type=float, default=2.0, help="bogus-mtls and bogus-jwt requests/s")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--poll-every", type=float, default=0.25, help="seconds between one client's polls")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--legacy", action="store_true", help="client secrets under PBKDF2 (the 'before')")
    parser.add_argument(
        "--expensive-cap", type=int, help="CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT (default: its default)"
    )
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    extra = {"BENCH_CLIENT_SECRET_HASHER": "default"} if args.legacy else {}
    if args.expensive_cap:
        extra["BENCH_EXPENSIVE_CHECKS_IN_FLIGHT"] = str(args.expensive_cap)
    env = environment(
        args.port,
        DJANGO_SETTINGS_MODULE="bench.attack_settings",
        BENCH_CLIENT_SECRET_CACHE_SECONDS="300",
        CIBA_TRUSTED_PROXIES="127.0.0.1/32",
        CIBA_MTLS_CERT_HEADER="HTTP_X_SSL_CLIENT_CERT",
        CIBA_MTLS_CERT_VERIFY_HEADER="HTTP_X_SSL_CLIENT_VERIFY",
        **extra,
    )
    prepare_database(env)
    flush_redis(env["CACHE_URL"], env["CELERY_BROKER_URL"])
    with tempfile.TemporaryDirectory(prefix="ciba-attack-") as workdir:
        demo, ids, material = prepare(env, Path(workdir))
        results: dict[str, Any] = {
            "command": " ".join(["python -m bench.attack", *sys.argv[1:]]),
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_before": [round(x, 2) for x in os.getloadavg()],
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "setup": f"gunicorn {args.workers} sync workers, PostgreSQL, Redis cache, client secrets "
            f"{'under PBKDF2 (legacy)' if args.legacy else 'under the keyed hash'}, guard defaults, "
            "requests from 127.0.0.1 (a trusted proxy) with X-Forwarded-For and forwarded certificates",
            "target": f"per (scenario, method): success >= {TARGET_SUCCESS:.0%}, "
            f"poll p95 < {TARGET_P95_MS:.0f} ms",
            "scenarios": [],
        }
        with gunicorn(env, args.port, args.workers) as base:
            legit = Legit(base, env["OIDC_ISS_ENDPOINT"], demo["clients"]["poll"], ids, material)
            for kind in args.scenarios.split(","):
                print(f"{kind} ...", flush=True)
                results["scenarios"].append(scenario(kind, legit, material, env, args))
            print("cost per request ...", flush=True)
            results["cost"] = costs(legit, env)
        results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["errors"] = 0
    results["targets_met"] = all(s["target_met"] for s in results["scenarios"])
    shown = {
        "command": results["command"],
        "load": [results["machine"]["load_average_before"], results["machine"]["load_average_after"]],
        "table": table(results),
        "attackers": {s["scenario"]: s["attacker_answers"] for s in results["scenarios"]},
        "cost": results["cost"],
        "targets_met": results["targets_met"],
    }
    name = "attack-legacy" if args.legacy else "attack"
    name += f"-cap{args.expensive_cap}" if args.expensive_cap else ""
    finish(results, args.results / f"{name}.json", shown)
    if not results["targets_met"] and not args.legacy:
        sys.exit("a target was missed")


def table(results: dict[str, Any]) -> list[str]:
    """One line per (scenario, method): success and latency percentiles."""
    lines = []
    for s in results["scenarios"]:
        for method, r in s["legitimate"].items():
            p = r["poll_ms"]
            lines.append(
                f"{s['scenario']:<13} {method:<28} success {r['success_rate']:.2%} "
                f"p50 {p.get('p50')} p95 {p.get('p95')} p99 {p.get('p99')} max {p.get('max')} ms"
            )
    return lines


if __name__ == "__main__":
    main()
