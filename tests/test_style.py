"""Formatting and lint are a tool's job: ruff, configured in pyproject.toml, over the whole repository."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _ruff() -> list[str]:
    try:
        import ruff  # noqa: F401  (the test extra installs it; its binary sits beside the interpreter)
    except ImportError:
        if shutil.which("ruff") is None:
            pytest.skip("ruff is not installed (pip install -e '.[test]')")
        return ["ruff"]
    return [sys.executable, "-m", "ruff"]


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_the_repository_is_clean_under_ruff(command):
    out = subprocess.run([*_ruff(), *command], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
