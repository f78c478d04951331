"""The example project as the benchmarks run it: production parts, quiet logs, knobs from env.

The per-user limits (``MAX_PENDING_PER_USER``, ``MAX_PENDING_PER_CLIENT_USER``,
``USER_REQUEST_RATE``) are off: the benchmarks measure throughput, not policy. Their scenarios
pile up to 1,000 pending requests from one client on one user (bench.load) or on 50
(bench.compare), which the defaults (2 pending per client and user) would refuse after the
second, and the reference OP they are compared with has no such limits. The block list is
still consulted on every request, as it is in production.
"""

import os

from example_project.settings import *  # noqa: F403

DEBUG = False
CIBA = {
    **CIBA,  # noqa: F405
    "BACKCHANNEL_THROTTLE_RATE": None,  # the benchmark is one client calling as fast as it can
    # Throughput, not policy: see the module's docstring.
    "MAX_PENDING_PER_USER": None,
    "MAX_PENDING_PER_CLIENT_USER": None,
    "USER_REQUEST_RATE": None,
    "CLIENT_SECRET_CACHE_SECONDS": int(os.environ.get("BENCH_CLIENT_SECRET_CACHE_SECONDS", "300")),
}
if os.environ.get("BENCH_CALLBACK_INLINE_SENDERS"):  # bench.breakdown's in-process part: 0
    CIBA["CALLBACK_INLINE_SENDERS"] = int(os.environ["BENCH_CALLBACK_INLINE_SENDERS"])
if os.environ.get("BENCH_AUTH_FAILURE_GUARD") == "off":  # bench.attack --no-guard: the "before"
    CIBA.update(
        {"CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS": None, "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS": None}
    )
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
if os.environ.get("BENCH_HOPS_LOG"):  # bench.breakdown: timestamps of each approve -> callback hop
    INSTALLED_APPS = [*INSTALLED_APPS, "bench.hops.HopsConfig"]  # noqa: F405
if os.environ.get("BENCH_FLOOR"):  # bench.compare's and bench.cpu's floor: two plain views added
    ROOT_URLCONF = "bench.floor_urls"
if os.environ.get("BENCH_CELERY_DB_REUSE_MAX"):  # bench.breakdown --celery-db-reuse N: an experiment
    CELERY_DB_REUSE_MAX = int(os.environ["BENCH_CELERY_DB_REUSE_MAX"])
