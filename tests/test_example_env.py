"""The example project's environment switches: a deployment of it can leave the demo posture."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from example_project import env

ROOT = Path(__file__).resolve().parent.parent


def test_callbacks_may_use_http_and_private_addresses_by_default_for_the_demo(monkeypatch):
    monkeypatch.delenv("CIBA_CALLBACK_ALLOW_HTTP", raising=False)
    monkeypatch.delenv("CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS", raising=False)
    assert env.callback_posture() == {"CALLBACK_ALLOW_HTTP": True, "CALLBACK_ALLOW_PRIVATE_NETWORKS": True}


def test_a_value_that_is_neither_on_nor_off_stops_the_start(monkeypatch):
    monkeypatch.setenv("CIBA_CALLBACK_ALLOW_HTTP", "nope")
    with pytest.raises(ImproperlyConfigured, match="CIBA_CALLBACK_ALLOW_HTTP"):
        env.callback_posture()


def test_a_deployment_of_the_example_turns_the_demo_posture_off_and_check_deploy_agrees():
    def deploy_check(**extra):
        return subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy"],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "example_project.settings", **extra},
            capture_output=True,
            text=True,
        )

    demo = deploy_check()
    assert "ciba.W001" in demo.stderr + demo.stdout and "ciba.W002" in demo.stderr + demo.stdout
    off = deploy_check(CIBA_CALLBACK_ALLOW_HTTP="0", CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS="0")
    assert "ciba.W001" not in off.stderr + off.stdout and "ciba.W002" not in off.stderr + off.stdout
