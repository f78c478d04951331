"""docs/transactions.md's walk-through, run exactly as written against the running example.

The example server runs with its production parts (``tests.interop.harness.example_site``:
PostgreSQL, Redis, a Celery worker, the production web server). The document's
``<!-- site: run -->`` bash blocks run in order in one shell state, as
``tests/integration/test_registration_walkthrough.py`` runs docs/registration.md's; the reader's
"repository root" is a scratch directory holding the repository's ``manage.py``. Each block's
output is checked for what the text around it says it shows: a payment of EUR 42.00 asked for,
an unknown type refused, the phone's rendering, EUR 40.00 approved, and the kiosk's token
response carrying the approved payment, not the requested one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.harness import ROOT, Site, example_site

from .walkthrough import reader_shell, run_blocks, site_check

DOCUMENT = ROOT / "docs" / "transactions.md"
BLOCKS = site_check.blocks(DOCUMENT)
RUN = [block for block in BLOCKS if block.action == "run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with example_site(tmp_path_factory.mktemp("transactions-walkthrough")) as running:
        yield running


@pytest.fixture
def shell(site: Site, tmp_path: Path) -> Any:
    return reader_shell(site, tmp_path)


def test_every_code_block_is_run_compiled_or_says_why_not():
    shell_blocks = [b for b in BLOCKS if b.language in site_check.NEEDS_DIRECTIVE]
    assert shell_blocks and not site_check.unmarked(BLOCKS)
    assert all(b.action in ("run", "skip", "compile") for b in shell_blocks), [b.where for b in shell_blocks]
    for block in shell_blocks:
        if block.action in ("compile", "skip") and block.language == "python":
            compile(block.text, block.where, "exec")


def test_the_walkthrough_pays_less_than_asked_and_the_kiosk_learns_what_was_approved(site, shell):
    assert len(RUN) == 6, [block.where for block in RUN]
    outputs = run_blocks(site, shell, RUN)
    supported, started, refused, shown, approved, tokens = outputs

    assert supported.strip() == "['payment_initiation']"
    assert started.startswith("started ") and len(started.split()[1]) >= 27

    error = json.loads(refused)
    assert error["error"] == "invalid_authorization_details"
    assert "account_information" not in error.get("error_description", "")  # never echoes input

    # The phone shows the amount and the payee, as the server rendered them (English here).
    assert shown.splitlines() == [
        "Payment of \u20ac42.00",
        "To: Corner Shop",
        "Account: DE02 1001 0010 9307 1186 03",
        "Reference: Corner Shop #K7Q2",
    ]

    assert json.loads(approved.replace("'", '"')) == {"currency": "EUR", "amount": "40.00"}

    [payment] = json.loads(tokens)
    assert payment["type"] == "payment_initiation"
    assert payment["instructedAmount"] == {"currency": "EUR", "amount": "40.00"}
    assert payment["creditorName"] == "Corner Shop"
    assert payment["creditorAccount"] == {"iban": "DE02100100109307118603"}
