"""The example on its production web server serves the files its pages load.

granian (``./scripts/serve``) serves no files itself: the example's WhiteNoise does, from what
``collectstatic`` (run by ``./scripts/serve``) gathered. Without them the device page's script
and stylesheet, the kiosk's script and the admin's CSS were 404, and the device page said
"Loading…" for ever. The server here is ``./scripts/serve`` itself, with DEBUG off (its default),
on this run's test database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection

from tests.integration.nginx import _stop, free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "carol-password-for-static-files"
STATIC = re.compile(r'(?:src|href)="(/static/[^"]+)"')

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``./scripts/serve`` on a free port: the example's settings, this run's database and cache,
    tasks in the web process, the state directory (and so STATIC_ROOT) in ``tmp_path``."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "OIDC_RSA_PRIVATE_KEY": settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"],
        "CIBA_EXAMPLE_VAR_DIR": str(tmp_path),
        # This venv: the script must neither make nor install one for the test.
        "CIBA_VENV": sys.prefix,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    for name in ("DJANGO_DEBUG", "CELERY_BROKER_URL", "CIBA_TEST_WORKER"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "serve"), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/o/.well-known/openid-configuration", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("./scripts/serve did not start:\n" + log.read_text(errors="replace"))
                time.sleep(0.2)
        yield url
    finally:
        _stop(process)


def static_urls(html: str) -> dict[str, str]:
    """The page's /static/ URLs by the file's name without its content hash (``device.js``)."""
    return {
        re.sub(r"\.[0-9a-f]{12}(\.\w+)$", r"\1", path.rsplit("/", 1)[-1]): path
        for path in STATIC.findall(html)
    }


def signed_in_device_page(url: str) -> str:
    """The device page's HTML, after signing in through the example's login page as a user would."""
    # Hashed with the example's password hasher (Django's default), not the tests' fast one.
    hasher = PBKDF2PasswordHasher()
    get_user_model().objects.create(username="carol", password=hasher.encode(PASSWORD, hasher.salt()))
    session = requests.Session()
    session.trust_env = False
    session.get(f"{url}/demo/login/", timeout=5).raise_for_status()
    response = session.post(
        f"{url}/demo/login/",
        data={
            "username": "carol",
            "password": PASSWORD,
            "next": "/ciba/device/",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=5,
    )
    assert response.status_code == 200 and response.url == f"{url}/ciba/device/", response.text[:500]
    return response.text


def test_the_pages_load_their_scripts_and_stylesheets_under_the_production_server(served):
    device = static_urls(signed_in_device_page(served))
    kiosk = static_urls(requests.get(f"{served}/demo/kiosk/", timeout=5).text)
    admin = static_urls(requests.get(f"{served}/admin/login/", timeout=5).text)
    wanted = {
        "device.js": (device, "text/javascript"),
        "device.css": (device, "text/css"),
        "kiosk.js": (kiosk, "text/javascript"),
        "base.css": (admin, "text/css"),  # the admin's
    }

    for name, (page, content_type) in wanted.items():
        assert name in page, f"{name} is not on its page: {sorted(page)}"
        response = requests.get(served + page[name], timeout=5)
        assert response.status_code == 200, (name, page[name], response.status_code)
        assert response.headers["Content-Type"].startswith(content_type)
        assert response.content
        # A hashed name never changes content: browsers may keep it for ever.
        assert "immutable" in response.headers["Cache-Control"], response.headers["Cache-Control"]
    script = requests.get(served + device["device.js"], timeout=5).content
    assert script == (ROOT / "ciba" / "device" / "static" / "ciba" / "device" / "device.js").read_bytes()


def test_compressed_copies_are_served_to_browsers_that_accept_them(served):
    path = static_urls(requests.get(f"{served}/demo/kiosk/", timeout=5).text)["kiosk.js"]
    response = requests.get(served + path, headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert response.status_code == 200 and response.headers.get("Content-Encoding") == "gzip"
