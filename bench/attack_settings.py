"""The benchmark settings (``bench.settings``) with the knobs ``bench.attack`` turns.

``BENCH_CLIENT_SECRET_HASHER=default``: client secrets under DOT's default, the password hasher
(PBKDF2), as before the keyed hash existed (``bench.attack --legacy``).
"""

import os

from bench.settings import *  # noqa: F403

if os.environ.get("BENCH_CLIENT_SECRET_HASHER") == "default":
    OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "CLIENT_SECRET_HASHER": "default"}  # noqa: F405
if os.environ.get("BENCH_EXPENSIVE_CHECKS_IN_FLIGHT"):  # bench.attack --expensive-cap N
    CIBA = {
        **CIBA,  # noqa: F405
        "CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT": int(os.environ["BENCH_EXPENSIVE_CHECKS_IN_FLIGHT"]),
    }
