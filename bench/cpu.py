"""CPU per request, in process: what one new CIBA request or one pending poll costs the web
process in Python, without a server, wrk or other requests around it.

    python -m bench.cpu                          # backchannel and poll, 3 rounds of 500 each
    python -m bench.cpu --kind backchannel --profile   # cProfile of the backchannel request
    python -m bench.cpu --kind all               # and, beside them, the yardsticks below
    python -m bench.cpu --kind floor             # the Django floor's two views alone
    python -m bench.cpu --kind approve --profile # the consent API's approve request, profiled
    python -m bench.cpu --kind push --profile    # minting an approved request's push tokens

Each request goes through the example project's WSGI application (``example_project.wsgi``:
the fast lane, the middleware, the view) as granian calls it, with the production parts of
``bench.compare`` (PostgreSQL ``ciba_bench``, emptied; Redis for the cache, the poll state and
the broker; ``bench.settings``), and is timed twice: its thread's CPU time
(``time.thread_time``: our Python, psycopg's and redis-py's, not the time spent waiting for
PostgreSQL and Redis) and its wall time. Thread CPU time is far steadier than throughput on a
shared machine, so before/after comparisons of a change to the request path (issue 29) use it;
throughput and the ratios against the reference OP come from ``bench.compare``.

No Celery worker runs: new requests' notifications wait in the database (the broker's kick is
published once per ``NOTIFY_BATCH_WINDOW``, as in production).

``approve`` is the consent API's ``POST /o/ciba/requests/<id>/approve/`` (JSON ``{}``), as the
user's authentication-device app sends it: a consent-scoped bearer token of a designated device
app, one pending request (made and notified beforehand, as the polls' are) approved per call.
The client is in poll mode, so no callback is sent; a ping client's approval adds its outbox
``INSERT`` and the hand-off after the commit, the same Python otherwise.

``push`` is what a sender thread does for a push client's approval before its POST: the
callback row's payload built (``ciba.callbacks.outbox.payload``: the request marked issued, the
access, refresh and ID tokens minted, the body sealed and stored), one approved request per
call, called as the sender calls it (outside any HTTP request). Its row, with its request,
client and user, is read before the timing, as the sender has it in hand already.

Yardsticks, timed the same way (``--kind all``):

- ``ceiling``: the durable ceiling's own request (``../shared/limits/durable_app.py``, the app
  ``bench.compare`` serves: parse the form, one committed ``INSERT``, one Redis ``SET``), called
  in this process against its table in the benchmark database;
- ``django``: Django's request cycle alone in the example project, a form POST to a path no view
  answers (the middleware both ways, URL resolution, the 404 response): what any Django view
  pays before its first line runs;
- ``floor`` (two lines, ``floor`` and ``floor_sql``): the floor's views (``bench.floor``, the
  ceiling's work done the Django way: the form parsed, one complete request row committed with
  ``objects.create``, or with a raw ``INSERT``, the Redis ``SET``, the JSON answer), through the
  same WSGI application; they run in a child process of their own with ``BENCH_FLOOR=1``, so
  the other kinds' URLconf stays the example project's.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from .common import GRANT, ROOT, environment, prepare_database, wsgi_call
from .compare import CEILING_SOURCE, CEILING_TABLE

USERS = 50
SECRET = "bench-cpu-secret-0123456789abcdef0123456789abcdef0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kind",
        choices=["backchannel", "poll", "approve", "push", "both", "ceiling", "django", "floor", "all"],
        default="both",
    )
    parser.add_argument("--requests", type=int, default=500, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8000, help="the issuer's port (no server is started)")
    parser.add_argument("--profile", action="store_true", help="cProfile one round instead of timing")
    parser.add_argument("--in-process", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        run(json.loads(args.in_process))
        return
    env = environment(args.port)
    prepare_database(env)
    kinds = {
        "both": ["backchannel", "poll"],
        "all": ["backchannel", "poll", "ceiling", "django", "floor"],
    }.get(args.kind, [args.kind])
    if "ceiling" in kinds and not CEILING_SOURCE.is_file():
        print(f"ceiling: skipped, no {CEILING_SOURCE}", file=sys.stderr)
        kinds.remove("ceiling")
    # The floor's views need their URLconf (BENCH_FLOOR): a child of their own, after the others.
    children = [
        ([k for k in kinds if k != "floor"], env),
        (["floor", "floor_sql"], {**env, "BENCH_FLOOR": "1"}),
    ]
    for child_kinds, child_env in children:
        if child_kinds and (child_kinds[0] != "floor" or "floor" in kinds):
            spec = {
                "kinds": child_kinds,
                "requests": args.requests,
                "rounds": args.rounds,
                "profile": args.profile,
            }
            subprocess.run(
                [sys.executable, "-m", "bench.cpu", "--in-process", json.dumps(spec)],
                cwd=ROOT,
                env=child_env,
                check=True,
            )


def run(spec: dict[str, Any]) -> None:
    """In the child process: Django set up with ``bench.settings``."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from ciba.models import Application
    from example_project.wsgi import application

    client = Application.objects.create(
        name="bench-cpu",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=GRANT,
        backchannel_token_delivery_mode="poll",
        client_secret=SECRET,
        algorithm="RS256",
    )
    users = [f"cpu-user{i}" for i in range(USERS)]
    # ignore_conflicts: the floor's child process comes second, in the same database
    get_user_model().objects.bulk_create(
        [get_user_model()(username=name) for name in users], ignore_conflicts=True
    )
    auth = "Basic " + base64.b64encode(f"{client.client_id}:{SECRET}".encode()).decode()

    port = int(os.environ["OIDC_ISS_ENDPOINT"].split("/")[2].rsplit(":", 1)[1])

    def call(
        path: str,
        body: bytes,
        authorization: str = auth,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> tuple[str, bytes]:
        headers = {"Authorization": authorization, "Content-Type": content_type}
        return wsgi_call(application, port, "POST", path, body, headers)

    def backchannel(i: int) -> None:
        body = (
            f"scope=openid&login_hint={users[i % USERS]}&binding_message=BENCH-{i:05d}&requested_expiry=600"
        )
        status, content = call("/o/backchannel-authentication/", body.encode())
        assert status.startswith("200"), (status, content)

    pending = []
    # the polls' pending requests (made before timing anything; the floor's child needs none)
    for i in range(0 if "floor" in spec["kinds"] else 200):
        body = f"scope=openid&login_hint={users[i % USERS]}&requested_expiry=3600".encode()
        status, content = call("/o/backchannel-authentication/", body)
        assert status.startswith("200"), (status, content)
        pending.append(json.loads(content)["auth_req_id"])
    from ciba import device_outbox

    device_outbox.notify_due()  # recorded in the Redis poll state, as the worker does

    def poll(i: int) -> None:
        body = f"grant_type={GRANT}&auth_req_id={pending[i % len(pending)]}".encode()
        status, content = call("/o/token/", body)
        assert status.startswith("400") and (b"authorization_pending" in content or b"slow_down" in content)

    def django_cycle(i: int) -> None:
        status, content = call(
            "/bench-cpu/no-view-here/", f"scope=openid&login_hint=cpu-user{i % USERS}".encode()
        )
        assert status.startswith("404"), (status, content)

    def floor_view(variant: str) -> Any:
        """The floor's view (bench.floor) as a function: ours' bodies, its fixed client ours."""
        os.environ["BENCH_FLOOR_CLIENT_ID"] = client.client_id

        def request(i: int) -> None:
            hint = users[i % USERS]
            body = f"scope=openid&login_hint={hint}&binding_message=BENCH-{i:05d}&requested_expiry=600"
            status, content = call(f"/bench/floor/{variant}/", body.encode())
            assert status.startswith("200") and b'"auth_req_id"' in content, (status, content)

        return request

    calls = {"backchannel": backchannel, "poll": poll, "django": django_cycle}
    if "floor" in spec["kinds"]:
        calls.update(floor=floor_view("orm"), floor_sql=floor_view("sql"))
    # one request of its own per call, warm-up included (an approval decides it)
    total = 30 + spec["requests"] * (1 if spec["profile"] else spec["rounds"])
    if "approve" in spec["kinds"]:
        calls["approve"] = approvals(call, client, users, total)
    if "push" in spec["kinds"]:
        calls["push"] = push_minting(users, total)
    if "ceiling" in spec["kinds"]:
        calls["ceiling"] = ceiling_app()
    for kind in spec["kinds"]:
        request = calls[kind]
        for i in range(30):  # warm: secrets verified, code paths run, connections open
            request(i)
        if spec["profile"]:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.enable()
            for i in range(spec["requests"]):
                request(i)
            profile.disable()
            print(f"== {kind}: cProfile of {spec['requests']} requests, by cumulative time")
            stats = pstats.Stats(profile)
            stats.sort_stats("cumulative").print_stats(45)
            print(f"== {kind}: by own time")
            stats.sort_stats("tottime").print_stats(25)
            if os.environ.get("BENCH_PROFILE_OUT"):  # for pstats or snakeviz
                stats.dump_stats(f"{os.environ['BENCH_PROFILE_OUT']}-{kind}.prof")
            continue
        for round_ in range(spec["rounds"]):
            cpu, wall = [], []
            for i in range(spec["requests"]):
                c0, w0 = time.thread_time(), time.perf_counter()
                request(i)
                cpu.append((time.thread_time() - c0) * 1000)
                wall.append((time.perf_counter() - w0) * 1000)
            print(
                f"{kind:11} round {round_ + 1}: CPU p50 {statistics.median(cpu):.3f} ms, mean "
                f"{statistics.fmean(cpu):.3f} | wall p50 {statistics.median(wall):.3f} ms | "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )


def approvals(call: Any, client: Any, users: list[str], total: int) -> Any:
    """The approve request as a function: ``total`` pending requests made (through the
    backchannel endpoint, spread over the users so no per-user limit refuses them) and notified
    beforehand, each user holding a consent token of a designated device app."""
    import secrets
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from oauth2_provider.models import get_access_token_model, get_application_model

    from ciba import designations, device_outbox
    from ciba.conf import ciba_settings

    phone = get_application_model().objects.create(
        name="bench-cpu phone",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris="https://phone.example/cb",
    )
    designations.designate(phone)
    tokens = {}
    for user in get_user_model().objects.filter(username__in=users):
        token = secrets.token_urlsafe(32)
        get_access_token_model().objects.create(
            user=user,
            application=phone,
            token=token,
            scope=ciba_settings.CONSENT_SCOPE,
            expires=timezone.now() + timedelta(hours=2),
        )
        tokens[user.username] = f"Bearer {token}"
    pending: list[tuple[str, str]] = []
    for i in range(total):
        user = users[i % len(users)]
        body = f"scope=openid&login_hint={user}&binding_message=A{i:05d}&requested_expiry=3600".encode()
        status, content = call("/o/backchannel-authentication/", body)
        assert status.startswith("200"), (status, content)
        pending.append((json.loads(content)["auth_req_id"], tokens[user]))
    while device_outbox.notify_due():  # notified, as the worker does: approving withdraws the prompt
        pass
    done = iter(pending)

    def request(i: int) -> None:
        auth_req_id, token = next(done)
        status, content = call(
            f"/o/ciba/requests/{auth_req_id}/approve/",
            b"{}",
            authorization=token,
            content_type="application/json",
        )
        assert status.startswith("200") and b'"approved"' in content, (status, content)

    return request


def push_minting(users: list[str], total: int) -> Any:
    """The push payload's minting as a function: a push client (its endpoint never called),
    ``total`` requests approved beforehand with their callback rows, one row's payload built per
    call as the sender thread builds it (``outbox.payload``), each row read beforehand."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test.utils import override_settings

    from ciba import services
    from ciba.callbacks import outbox
    from ciba.models import Application, CallbackDelivery

    client = Application.objects.create(
        name="bench-cpu push",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=GRANT,
        backchannel_token_delivery_mode="push",
        backchannel_client_notification_endpoint="https://push.bench.invalid/cb",
        client_secret=SECRET,
        algorithm="RS256",
    )
    people = list(get_user_model().objects.filter(username__in=users))
    rows = []
    # No sender thread of this process sends (and mints) them meanwhile: they wait for the calls.
    with override_settings(CIBA={**settings.CIBA, "CALLBACK_INLINE_SENDERS": 0}):
        for i in range(total):
            user = people[i % len(people)]
            ar = services.create_request(
                client=client,
                user=user,
                hint_kind="login_hint",
                scope="openid",
                interval=5,
                client_notification_token=f"bench-{i:06d}",
                expires_in=3600,
            )
            services.approve(ar, user=user)
            rows.append(CallbackDelivery.objects.get(request=ar).pk)
    # Read beforehand, as the sender has them in hand (``services.committed_callback``).
    loaded = CallbackDelivery.objects.select_related("request__client", "request__user")
    done = iter(sorted(loaded.filter(pk__in=rows), key=lambda delivery: delivery.pk))

    def request(i: int) -> None:
        delivery = next(done)
        body = outbox.payload(delivery)
        assert "access_token" in body and "id_token" in body, body

    return request


def ceiling_app() -> Any:
    """The durable ceiling's request as a function, its app loaded from its source, writing to
    its table (created here) in the benchmark database and to the cache's Redis database."""
    import importlib.util

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(CEILING_TABLE)
    os.environ["LIMIT_DSN"] = os.environ["DATABASE_URL"]
    os.environ["LIMIT_REDIS"] = os.environ["CACHE_URL"]
    loader = importlib.util.spec_from_file_location("durable_app", CEILING_SOURCE)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)

    def request(i: int) -> None:
        body = f"scope=openid&login_hint=cpu-user{i % USERS}&binding_message=BENCH-{i:05d}".encode()
        environ = {"CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        status: list[str] = []
        b"".join(module.app(environ, lambda line, headers: status.append(line)))
        assert status == ["200 OK"], status

    return request


if __name__ == "__main__":
    main()
