"""scripts/_venv.sh: the demo and the test suite never run from (or grow) one environment.

``./scripts/test`` used to install the test, browser and benchmark tooling into the venv a
running ``./scripts/demo`` had made with the demo's needs only (142 MB grew to 684 MB under it).
These tests source the real script in a copy of the project whose venvs are already installed
(their stamps say so), so nothing is created or installed.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def project(tmp_path: Path, *venvs: tuple[str, str]) -> Path:
    """A copy of the project's _venv.sh and pyproject.toml with ``venvs`` (name, extras) installed."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    digest = hashlib.sha256((tmp_path / "pyproject.toml").read_bytes()).hexdigest()
    for name, extras in venvs:
        (tmp_path / name / "bin").mkdir(parents=True)
        (tmp_path / name / "bin" / "python").symlink_to(sys.executable)
        (tmp_path / name / ".ciba-installed").write_text(f"{digest} {extras}\n")
    return tmp_path


def venv_used(root: Path, **variables: str) -> Path:
    """The venv a script sourcing _venv.sh with ``variables`` runs from (first on PATH)."""
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **variables}
    done = subprocess.run(
        ["bash", "-c", f'source "{root}/scripts/_venv.sh" && echo "$CIBA_VENV" && command -v python'],
        env=environment,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "installing" not in done.stderr, done.stderr
    venv, python = done.stdout.split()
    assert python == f"{venv}/bin/python"
    return Path(venv)


def test_the_demo_and_the_tests_run_from_venvs_of_their_own(tmp_path):
    root = project(tmp_path, (".venv", "dev"), (".venv-demo", "demo"))

    assert venv_used(root, CIBA_EXTRAS="demo") == root / ".venv-demo"  # ./scripts/demo
    assert venv_used(root) == root / ".venv"  # ./scripts/test, .ci/run
    # Neither was installed into: the demo's still has the demo's needs only.
    assert (root / ".venv-demo" / ".ciba-installed").read_text().endswith(" demo\n")
    assert (root / ".venv" / ".ciba-installed").read_text().endswith(" dev\n")


def test_a_script_started_by_one_running_from_the_full_venv_runs_there_too(tmp_path):
    root = project(tmp_path, (".venv", "dev"))

    # The benchmarks and the integration tests start ./scripts/serve from the test venv.
    assert venv_used(root, CIBA_EXTRAS="production", CIBA_VENV=str(root / ".venv")) == root / ".venv"
    assert not (root / ".venv-production").exists()
