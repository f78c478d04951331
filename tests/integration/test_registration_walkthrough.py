"""docs/registration.md's curl walk-through, run exactly as written against the running example.

The example server runs with its production parts (``tests.interop.harness.example_site``:
PostgreSQL, Redis, a Celery worker, the production web server), and registration on, as
``example_project/settings.py`` has it. The document's ``<!-- site: run -->`` bash blocks run in
order in one shell state, as ``scripts/site_check.py`` runs docs/integration.md's (exported
variables and the working directory carry over from block to block); the reader's "repository
root" is a scratch directory holding the repository's ``manage.py``, so what the walk-through
writes (``demo.json``, ``kiosk.json``) stays out of the checkout. Each block's output is
checked for what the text around it says it shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.harness import ROOT, Site, example_site

from .walkthrough import reader_shell, run_blocks, site_check

DOCUMENT = ROOT / "docs" / "registration.md"
BLOCKS = site_check.blocks(DOCUMENT)
RUN = [block for block in BLOCKS if block.action == "run"]


def documents(output: str) -> list[Any]:
    """The JSON documents curl printed one after another (without newlines between them)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(output.rstrip()):
        value, at = decoder.raw_decode(output, at)
        found.append(value)
        while at < len(output) and output[at].isspace():
            at += 1
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with example_site(tmp_path_factory.mktemp("registration-walkthrough")) as running:
        yield running


@pytest.fixture
def shell(site: Site, tmp_path: Path) -> Any:
    return reader_shell(site, tmp_path)


def test_every_shell_block_is_run_or_says_why_not():
    shell_blocks = [b for b in BLOCKS if b.language in site_check.NEEDS_DIRECTIVE]
    assert shell_blocks and not site_check.unmarked(BLOCKS)
    assert all(b.action in ("run", "skip", "compile") for b in shell_blocks), [b.where for b in shell_blocks]
    for block in shell_blocks:
        if block.action == "compile":
            compile(block.text, block.where, "exec")


def test_the_walkthrough_registers_a_client_runs_a_poll_flow_and_manages_it(site, shell):
    assert len(RUN) == 9, [block.where for block in RUN]
    outputs = run_blocks(site, shell, RUN)
    discovery, registered, again, pending, approval, tokens, read, updated, deleted = outputs

    assert discovery.strip() == f"{site.issuer}/register/"

    client = json.loads(registered)
    assert client["client_name"] == "Corner Shop kiosk"
    assert client["grant_types"] == ["urn:openid:params:grant-type:ciba", "refresh_token"]
    assert client["backchannel_token_delivery_mode"] == "poll"
    assert client["contacts"] == ["it@corner-shop.example"]
    assert client["client_secret"] and client["client_secret_expires_at"] == 0
    assert client["registration_client_uri"] == f"{site.issuer}/register/{client['client_id']}/"
    assert client["registration_access_token"]

    assert json.loads(again)["error"] == "invalid_token"
    assert json.loads(pending)["error"] == "authorization_pending"

    listed, approved = documents(approval)
    auth_req_id = shell.output('echo "$AUTH_REQ_ID"').strip()
    shown = next(r for r in listed if r["auth_req_id"] == auth_req_id)
    assert shown["binding_message"] == "R3G1S"
    assert "Corner Shop kiosk" in json.dumps(shown)
    assert approved["auth_req_id"] == auth_req_id

    token_type, _, members = tokens.strip().partition(" ")
    assert token_type == "Bearer"
    assert {"access_token", "id_token", "refresh_token"} <= set(json.loads(members.replace("'", '"')))

    assert json.loads(read)["client_name"] == "Corner Shop kiosk"
    assert "client_secret" not in json.loads(read)

    assert updated.split() == ["Corner", "Shop", "kiosk,", "till", "2", "401"]

    status, _, after = deleted.partition("\n")
    assert status == "204"
    assert json.loads(after)["error"] == "invalid_client"
