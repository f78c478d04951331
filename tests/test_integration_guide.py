"""docs/integration.md, read as a site owner reads it: every snippet is run by
``./scripts/site-check`` or says why not, the documented workers consume every queue ciba
routes work to, and the guide's settings file works with the environment variables a
development machine does not set (no ``KeyError: 'REDIS_URL'``) as with the production ones.

``./scripts/site-check`` runs all of it for real (PostgreSQL, Redis, workers, granian); these
tests catch the same mistakes in the fast tier, in a second."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ciba.dispatch import QUEUES, TASK_ROUTES

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("site_check", ROOT / "scripts" / "site_check.py")
site_check = sys.modules["site_check"] = importlib.util.module_from_spec(SPEC)  # dataclasses look it up
SPEC.loader.exec_module(site_check)
GUIDE = site_check.blocks(site_check.GUIDE)


def background(name: str) -> list[str]:
    """The commands of the guide's last ``background NAME`` block (Part B's ``web`` replaces
    Part A's)."""
    *_, block = [block for block in GUIDE if block.action == "background" and block.argument == name]
    return site_check.commands(block.text)


def queues_of(command: str) -> set[str]:
    return set(re.search(r"-Q ([\w,-]+)", command).group(1).split(","))


def test_every_snippet_of_the_readme_and_the_guide_is_run_or_says_why_not():
    every = [block for document in site_check.DOCUMENTS for block in site_check.blocks(document)]
    assert not site_check.unmarked(every)


def test_the_development_worker_consumes_the_default_queue_and_every_routed_one():
    (worker,) = background("worker")
    routed = {route["queue"] for route in TASK_ROUTES.values()}
    assert queues_of(worker) >= routed | {"celery"}
    assert " -B" in worker  # beat, for the sweeps


def test_the_production_workers_consume_every_routed_queue_and_every_one_sweeps():
    workers = [command for command in background("workers") if " worker " in command]
    routed = {route["queue"] for route in TASK_ROUTES.values()}
    assert routed == set(QUEUES)
    assert set().union(*map(queues_of, workers)) == routed
    assert all("ciba-sweeps" in queues_of(command) for command in workers)
    assert any(" beat" in command for command in background("workers"))


def test_the_production_server_runs_the_sites_wsgi_file_with_the_fast_lane():
    (server,) = background("web")
    assert "mysite.wsgi:application" in server
    (wsgi,) = [block for block in GUIDE if block.action == "file" and block.argument == "mysite/wsgi.py"]
    assert "application = FastLane(application)" in wsgi.text


def test_the_production_environment_block_names_what_site_check_sets():
    (block,) = [block for block in GUIDE if block.action == "env"]
    assert set(site_check.exported_names(block.text)) >= {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}


def settings_file(tmp_path: Path) -> Path:
    """mysite/settings.py as the guide leaves it: startproject's, then every block appended."""
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    path = tmp_path / "mysite" / "settings.py"
    with path.open("a") as handle:
        for block in GUIDE:
            if block.action == "append" and block.argument == "mysite/settings.py":
                handle.write("\n" + block.text)
    return path


def read_settings(path: Path, environment: dict[str, str]) -> dict:
    """The values that matter, from a fresh interpreter with only ``environment`` set."""
    code = (
        "import json, runpy, sys\n"
        "s = runpy.run_path(sys.argv[1])\n"
        "print(json.dumps({'DEBUG': s['DEBUG'], 'ENGINE': s['DATABASES']['default']['ENGINE'],\n"
        "  'CACHE': s.get('CACHES', {}).get('default', {}).get('BACKEND'),\n"
        "  'POLL_STATE': s['CIBA'].get('POLL_STATE_CLASS'), 'HTTP': s['CIBA']['CALLBACK_ALLOW_HTTP'],\n"
        "  'SSL_REDIRECT': s.get('SECURE_SSL_REDIRECT', False), 'EAGER': s['CELERY_TASK_ALWAYS_EAGER'],\n"
        "  'WHITENOISE': 'whitenoise.middleware.WhiteNoiseMiddleware' in s['MIDDLEWARE'],\n"
        "  'REUSE': s['OAUTH2_PROVIDER']['REFRESH_TOKEN_REUSE_PROTECTION']}))\n"
    )
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env={**base, **environment}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_guides_settings_run_on_a_development_machine_with_no_variable_set(tmp_path):
    values = read_settings(settings_file(tmp_path), {})
    assert values == {
        "DEBUG": True,
        "ENGINE": "django.db.backends.sqlite3",
        "CACHE": None,  # Django's default, local memory
        "POLL_STATE": None,  # ciba's default, the database
        "HTTP": True,
        "SSL_REDIRECT": False,
        "EAGER": True,
        "WHITENOISE": True,
        "REUSE": True,
    }


def test_the_guides_settings_in_production_bound_every_dependency_and_require_https(tmp_path):
    values = read_settings(
        settings_file(tmp_path),
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://mysite@db.internal:5432/mysite",
            "REDIS_URL": "redis://redis.internal:6379/0",
            "CELERY_BROKER_URL": "redis://redis.internal:6379/1",
        },
    )
    assert values == {
        "DEBUG": False,
        "ENGINE": "ciba.db",
        "CACHE": "ciba.outages.BoundedRedisCache",
        "POLL_STATE": "ciba.polling.RedisPollState",
        "HTTP": False,
        "SSL_REDIRECT": True,
        "EAGER": False,
        "WHITENOISE": True,
        "REUSE": True,
    }


@pytest.mark.parametrize("document", ["README.md", "docs/integration.md"])
def test_no_install_command_names_a_package_index_release_that_does_not_exist(document):
    for block in site_check.blocks(ROOT / document):
        assert 'pip install "django-ciba[production]"' not in block.text, block.where
