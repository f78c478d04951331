"""docs/fapi.md's walk-through ("Running the profile behind nginx") through a real nginx.

The server runs as the walk-through runs the example: the FAPI-CIBA profile, nginx's
certificate headers believed from loopback, ``X-Forwarded-Proto`` trusted, and the issuer
nginx's https URL (``CIBA_TEST_PROFILE``/``CIBA_TEST_ISSUER`` give tests/settings.py what
``CIBA_PROFILE`` and ``OIDC_ISS_ENDPOINT`` give the example). Each test creates the signing keys
and the demo FAPI client with the management commands, then runs
``python -m example_project.demo.fapi_client`` against nginx, as the walk-through does, and
approves the request as alice's device would.

nginx trusts the harness's test CA and the demo CA together (a bundle, as a production
``ssl_client_certificate`` lists every CA that issues client certificates): the demo CA is made
once, before nginx starts, in the directory ``ciba_demo_data --out`` reuses it from.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command

from ciba import services
from ciba.constants import AUTH_TLS_CLIENT_AUTH
from ciba.models import AuthenticationRequest, TokenBinding
from example_project import env
from example_project.demo import fapi
from tests.integration.conftest import wait_for
from tests.integration.nginx import MTLS_SETTINGS, ROOT, MtlsServer, free_port, running, server_env
from tests.integration.tls import Pki

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ``ciba_demo_data --fapi --out`` writes; its demo CA exists before nginx starts."""
    directory = tmp_path_factory.mktemp("demo-fapi")
    fapi.write(fapi.make(AUTH_TLS_CLIENT_AUTH, directory), directory, {})
    return directory


@pytest.fixture(scope="module")
def walkthrough_server(
    django_db_setup: Any, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MtlsServer]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.ca_file.write_bytes(pki.ca_file.read_bytes() + (demo_dir / fapi.CA_CERT).read_bytes())
    port = free_port()
    server = {
        **server_env(),
        "CIBA_TEST_PROFILE": "fapi-ciba",
        "CIBA_TEST_ISSUER": f"https://127.0.0.1:{port}/o",
    }
    with running(pki, tmp_path_factory.mktemp("nginx"), server, port) as started:
        yield started


@pytest.fixture(autouse=True)
def fapi_settings(settings: Any) -> None:
    """This process (which registers the client and approves) configured as the server is."""
    settings.CIBA = {**settings.CIBA, **MTLS_SETTINGS, **env.FAPI_CIBA}


def x5t_s256(path: Path) -> str:
    der = x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


@pytest.mark.parametrize("method", fapi.AUTH_METHODS)
def test_the_fapi_walkthrough_client_gets_bound_tokens_through_nginx(walkthrough_server, demo_dir, method):
    call_command("ciba_keys", "add", "--type", "rsa", stdout=StringIO())
    call_command("ciba_keys", "add", "--type", "ec", stdout=StringIO())
    printed = StringIO()
    call_command("ciba_demo_data", "--fapi", "--fapi-auth", method, "--out", str(demo_dir), stdout=printed)
    if method != "self_signed_tls_client_auth":
        assert "demo CA (kept)" in printed.getvalue()  # the one nginx trusts

    command = [sys.executable, "-m", "example_project.demo.fapi_client", "--dir", str(demo_dir)]
    command += ["--server", walkthrough_server.url, "--ca", walkthrough_server.ca_file]
    command += ["--login-hint", "alice"]
    client = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pending = AuthenticationRequest.objects.filter(
            client__client_id=fapi.CLIENT_ID, state=AuthenticationRequest.State.PENDING
        )
        ar = wait_for(lambda: pending.first() or client.poll() is not None, timeout=30)
        if not isinstance(ar, AuthenticationRequest):  # the client gave up, or never got through
            client.kill()
            pytest.fail(f"no request arrived:\n{client.communicate()[0]}\n{walkthrough_server.logs()}")
        assert ar.user.username == "alice" and ar.binding_message.startswith("Pay EUR 12.50")
        services.approve(ar, user=ar.user)  # what alice's device (or the approval URL) does
        output, _ = client.communicate(timeout=60)
    finally:
        client.kill()
        client.wait()

    assert client.returncode == 0, f"{output}\n{walkthrough_server.logs()}"
    assert f"auth_req_id: {ar.auth_req_id}" in output
    assert f"sub={ar.user.pk} iss={walkthrough_server.url}/o" in output
    assert "userinfo with the client certificate: 200" in output
    assert "userinfo without it: 401" in output
    # Bound to the certificate the client presented through nginx (RFC 8705 §3).
    binding = TokenBinding.objects.get(access_token__application__client_id=fapi.CLIENT_ID)
    assert binding.x5t_s256 == x5t_s256(demo_dir / fapi.CLIENT_CERT)
