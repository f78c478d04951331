"""Pairwise subject identifiers on the production parts: concurrent first issues on PostgreSQL
agree on one stored sub, and the sector identifier document is fetched over real TLS, with http
refused as production refuses it."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection

from ciba import subjects
from ciba.errors import InvalidClientMetadata
from ciba.models import SubjectIdentifier
from tests.integration.tls import Pki


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_issues_of_a_pairwise_sub_store_one_and_agree(alice, make_client):
    app, _secret = make_client("poll", subject_type="pairwise")
    n = 8
    barrier = threading.Barrier(n)
    seen: list[str] = []
    failures: list[BaseException] = []

    def issue() -> None:
        try:
            barrier.wait()
            seen.append(subjects.pairwise_subject(alice, app))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=issue) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(seen) == n and len(set(seen)) == 1
    assert SubjectIdentifier.objects.filter(user=alice).count() == 1


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def https_documents(pki: Pki, monkeypatch: Any) -> Iterator[Any]:
    """An HTTPS server on loopback (the test PKI's server certificate for 127.0.0.1) serving
    ``server.documents``; ``requests`` trusts the test CA for the duration of the test."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            document = server.documents.get(self.path)
            body = json.dumps(document).encode()
            self.send_response(200 if document is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki.server.paths)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.documents = {}
    server.url = lambda path: f"https://127.0.0.1:{server.server_address[1]}{path}"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.server_ca_file))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def https_only(settings: Any) -> None:
    """Production's URL policy, but for the loopback address the test server listens on."""
    settings.CIBA = {**django_settings.CIBA, "CALLBACK_ALLOW_HTTP": False}


def test_a_sector_document_is_fetched_over_tls(https_documents, https_only):
    https_documents.documents["/sector.json"] = ["https://cb.kiosk.example/ciba"]
    listed = subjects.verify_sector_identifier(
        https_documents.url("/sector.json"), ["https://cb.kiosk.example/other"]
    )
    assert listed == ["https://cb.kiosk.example/ciba"]


def test_a_sector_document_over_tls_must_still_vouch_for_the_client(https_documents, https_only):
    https_documents.documents["/sector.json"] = ["https://keys.kiosk.example/jwks.json"]
    with pytest.raises(InvalidClientMetadata, match="cb.kiosk.example"):
        subjects.verify_sector_identifier(https_documents.url("/sector.json"), ["https://cb.kiosk.example/"])


def test_a_sector_document_over_http_is_refused(json_server, https_only):
    json_server.documents["/sector.json"] = ["https://cb.kiosk.example/ciba"]
    with pytest.raises(InvalidClientMetadata, match="must use https"):
        subjects.verify_sector_identifier(json_server.url("/sector.json"), [])
    assert json_server.hits == {}


def test_a_sector_server_whose_certificate_is_not_trusted_is_refused(
    https_documents, https_only, monkeypatch
):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    https_documents.documents["/sector.json"] = ["https://cb.kiosk.example/ciba"]
    with pytest.raises(InvalidClientMetadata, match="could not be fetched"):
        subjects.verify_sector_identifier(https_documents.url("/sector.json"), [])
