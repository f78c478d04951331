"""Running a document's ``<!-- site: run -->`` shell blocks exactly as written against the running
example, as a reader would (``docs/registration.md``, ``docs/transactions.md``).

``scripts/site_check.py`` already knows how to read a document's blocks and run them in one shell
state; this loads it once and puts the reader in a scratch "repository root" holding only the
repository's ``manage.py``, so what a walk-through writes stays out of the checkout.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.interop.harness import ROOT, Site

SPEC = importlib.util.spec_from_file_location("site_check", ROOT / "scripts" / "site_check.py")
site_check = sys.modules.setdefault("site_check", importlib.util.module_from_spec(SPEC))
if not hasattr(site_check, "blocks"):
    SPEC.loader.exec_module(site_check)


def reader_shell(site: Site, directory: Path) -> Any:
    """A shell in the reader's place: the example's environment, ``PORT`` the server's."""
    reader = directory / "reader"
    reader.mkdir()
    (reader / "manage.py").symlink_to(ROOT / "manage.py")
    environment = {
        **{k: v for k, v in site.env.items() if k not in ("PWD", "OLDPWD")},
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PORT": site.base.rsplit(":", 1)[1],
    }
    return site_check.Site(reader, int(environment["PORT"]), environment)


def run_blocks(site: Site, shell: Any, blocks: list[Any]) -> list[str]:
    """Each block's output, in order; a failing block fails the test with the server's log."""
    outputs = []
    for block in blocks:
        try:
            outputs.append(shell.run(block.text, block.where))
        except SystemExit as failed:  # site_check's way of failing: the block, its output, the logs
            pytest.fail(f"{failed}\n{site.tail()}")
    return outputs
