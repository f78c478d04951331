"""docs/operations.md's worker layout, systemd units and supervisor config consume every queue
ciba routes to, run the sweeps on every worker, and name the settings ``broker_settings``
really sets: what the document tells an operator to run is what the code needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ciba.dispatch import QUEUES, TASK_ROUTES, broker_settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def block(marker: str) -> str:
    """The fenced code block after ``<!-- operations: marker -->`` (and the blocks that follow
    it up to the next heading, for the systemd section's several files)."""
    text = DOC.read_text()
    start = text.index(f"<!-- operations: {marker} -->")
    heading = re.compile(r"^#{2,3} ", re.M).search(text, start)
    return text[start : heading.start() if heading else None]


def worker_queue_sets(text: str) -> list[set[str]]:
    """The queues of each worker a block starts: ``-Q a,b`` on a command line or ``QUEUES=a,b``."""
    found = re.findall(r"(?:-Q |QUEUES=)([\w,-]+)", text)
    return [set(queues.split(",")) for queues in found]


@pytest.mark.parametrize("marker", ["layout", "systemd", "supervisor"])
def test_every_routed_queue_has_a_worker_and_every_worker_sweeps(marker):
    workers = worker_queue_sets(block(marker))
    assert workers, f"no worker in the {marker} block"
    routed = {route["queue"] for route in TASK_ROUTES.values()}
    assert routed == set(QUEUES)
    assert set().union(*workers) == routed
    assert all("ciba-sweeps" in queues for queues in workers)  # sweeping needs no special worker
    slow = [queues for queues in workers if "ciba-callbacks-slow" in queues]
    assert slow and all("ciba-callbacks" not in queues for queues in slow)  # a lane of its own


@pytest.mark.parametrize("marker", ["systemd", "supervisor"])
def test_supervised_processes_restart_and_stop_warmly(marker):
    text = block(marker)
    assert "beat" in text
    if marker == "systemd":
        assert text.count("Restart=always") >= 2 and "TimeoutStopSec=30" in text
        assert "ciba_health" in text and "OnUnitActiveSec=1min" in text
    else:
        assert text.count("autorestart=true") == 4 and "stopwaitsecs=30" in text


def test_the_documented_settings_are_the_ones_broker_settings_sets():
    text = DOC.read_text()
    for name in broker_settings("redis://127.0.0.1:6379/0"):
        short = name.removesuffix("_ON_STARTUP")
        assert f"`{name}`" in text or f"`{short}`" in text, name


def test_the_health_command_the_document_shows_exists():
    from django.core.management import get_commands, load_command_class

    assert "manage.py ciba_health" in block("health")
    command = load_command_class(get_commands()["ciba_health"], "ciba_health")
    assert "--max-age" in command.create_parser("manage.py", "ciba_health").format_help()
