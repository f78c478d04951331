"""docs/clients.md shows the relying parties the interop tier runs (tests/interop), verbatim.

Each code block the page introduces with a link to a file must be that file, byte for byte,
and every example file of the tier must be shown: the page cannot drift from what CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "clients.md"
#: The relying parties' code, as docs/clients.md must show it.
EXAMPLES = sorted(
    [*(ROOT / "tests" / "interop" / "js").glob("*.mjs"), ROOT / "tests" / "interop" / "python" / "rp.py"]
)
#: "[`path`](../path):", a blank line, then a fenced block.
SHOWN = re.compile(r"^\[`([^`]+)`\]\(\.\./\1\):\n\n```[a-z]*\n(.*?)^```$", re.M | re.S)


def shown_files() -> dict[str, str]:
    found: dict[str, str] = {}
    for path, block in SHOWN.findall(DOC.read_text()):
        assert path not in found, f"docs/clients.md shows {path} twice"
        found[path] = block
    return found


def test_every_code_block_naming_a_file_is_that_file_verbatim():
    shown = shown_files()
    assert shown, "docs/clients.md shows no example file"
    for path, block in shown.items():
        assert (ROOT / path).is_file(), f"docs/clients.md shows {path}, which does not exist"
        assert block == (ROOT / path).read_text(), f"docs/clients.md's copy of {path} differs from the file"


def test_every_relying_party_the_interop_tier_runs_is_shown():
    shown = shown_files()
    missing = [str(p.relative_to(ROOT)) for p in EXAMPLES if str(p.relative_to(ROOT)) not in shown]
    assert not missing, f"docs/clients.md does not show {missing}"
