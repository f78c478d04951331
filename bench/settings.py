"""The example project as the benchmarks run it: production parts, quiet logs, knobs from env."""

import os

from example_project.settings import *  # noqa: F403

DEBUG = False
CIBA = {
    **CIBA,  # noqa: F405
    "BACKCHANNEL_THROTTLE_RATE": None,  # the benchmark is one client calling as fast as it can
    "CLIENT_SECRET_CACHE_SECONDS": int(os.environ.get("BENCH_CLIENT_SECRET_CACHE_SECONDS", "300")),
}
if os.environ.get("BENCH_AUTH_FAILURE_GUARD") == "off":  # bench.attack --no-guard: the "before"
    CIBA.update(
        {"CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS": None, "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS": None}
    )
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
