"""docs/nginx-mtls.md's server block and the integration tier's nginx configuration
(tests/integration/nginx.conf.template) say the same in every directive mutual TLS rests on,
and the documented settings are the ones the tests run with."""

from __future__ import annotations

import re
import runpy
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.nginx import DOC, MTLS_SETTINGS, TEMPLATE, directives, documented_block

#: Directives whose arguments must be the same in both.
SAME = (
    "ssl_protocols",
    "ssl_ciphers",
    "ssl_prefer_server_ciphers",
    "ssl_session_tickets",
    "ssl_verify_client",
    "ssl_verify_depth",
    "proxy_set_header",
)
#: Directives both must have, with paths or addresses that differ.
PRESENT = ("ssl_certificate", "ssl_certificate_key", "ssl_client_certificate", "proxy_pass", "listen")
#: The headers nginx must overwrite, and with what.
OVERWRITTEN = {
    "X-SSL-Client-Cert": "$ssl_client_escaped_cert",
    "X-SSL-Client-Verify": "$ssl_client_verify",
    "X-Forwarded-For": "$remote_addr",
    "X-Forwarded-Proto": "https",
    "Host": "$host",
}


def server_block(text: str) -> list[tuple[str, ...]]:
    start = text.index("server {")
    return directives(text[start:])


@pytest.fixture(scope="module")
def documented() -> list[tuple[str, ...]]:
    return server_block(documented_block())


@pytest.fixture(scope="module")
def tested() -> list[tuple[str, ...]]:
    return server_block(TEMPLATE.read_text())


@pytest.mark.parametrize("name", SAME)
def test_the_documented_and_tested_blocks_agree_on(name, documented, tested):
    def of(block: list[tuple[str, ...]]) -> Counter:
        return Counter(d for d in block if d[0] == name)

    assert of(documented), f"{name} is missing from {DOC.name}"
    assert of(documented) == of(tested)


@pytest.mark.parametrize("name", PRESENT)
def test_both_blocks_have(name, documented, tested):
    assert any(d[0] == name for d in documented), f"{name} is missing from {DOC.name}"
    assert any(d[0] == name for d in tested), f"{name} is missing from {TEMPLATE.name}"


def test_the_documented_block_overwrites_the_certificate_and_address_headers(documented):
    set_headers = {d[1]: " ".join(d[2:]) for d in documented if d[0] == "proxy_set_header"}
    assert {h: set_headers.get(h) for h in OVERWRITTEN} == OVERWRITTEN
    # Requested from every client, none refused: self-signed certificates must reach Django.
    assert ("ssl_verify_client", "optional_no_ca") in documented
    assert not any(d[0] == "underscores_in_headers" and d[1:] == ("on",) for d in documented)
    # TLS 1.2 or later only.
    protocols = next(d[1:] for d in documented if d[0] == "ssl_protocols")
    assert set(protocols) <= {"TLSv1.2", "TLSv1.3"}


def test_the_headers_are_the_settings_meta_keys():
    def meta(header: str) -> str:
        return "HTTP_" + header.upper().replace("-", "_")

    assert MTLS_SETTINGS["MTLS_CERT_HEADER"] == meta("X-SSL-Client-Cert")
    assert MTLS_SETTINGS["MTLS_CERT_VERIFY_HEADER"] == meta("X-SSL-Client-Verify")
    assert MTLS_SETTINGS["MTLS_CERT_HEADER_FORMAT"] == "escaped-pem"  # $ssl_client_escaped_cert


def test_the_documented_settings_are_the_tested_settings():
    text = DOC.read_text()
    python = re.search(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert python, f"no python block in {DOC.name}"
    for key in ("MTLS_CERT_HEADER", "MTLS_CERT_HEADER_FORMAT", "MTLS_CERT_VERIFY_HEADER"):
        assert f'"{key}": "{MTLS_SETTINGS[key]}"' in python.group(1), key
    assert '"TRUSTED_PROXIES"' in python.group(1)


def test_the_test_settings_with_mtls_are_what_the_harness_assumes(monkeypatch):
    monkeypatch.setenv("CIBA_TEST_MTLS", "1")
    monkeypatch.setenv("OIDC_RSA_PRIVATE_KEY", "not-used-here")
    namespace = runpy.run_path(str(Path(__file__).with_name("settings.py")))
    assert {k: namespace["CIBA"].get(k) for k in MTLS_SETTINGS} == MTLS_SETTINGS
