"""The web server of the fault tests (``test_faults.py``): the test settings, with the poll
state in Redis as the example project sets it (``CIBA_POLL_STATE_REDIS_URL``), and short
breakers so that recovery is seen within a test."""

from example_project import env
from tests.settings import *  # noqa: F403

CIBA = {**CIBA, **env.poll_state(), "POLL_STATE_BREAKER_SECONDS": 1.0}  # noqa: F405
