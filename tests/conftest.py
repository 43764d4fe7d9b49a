"""Shared fixtures: paths of the repository and of the tools in the active environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def run_snakemake(
    *args: str, cwd: Path = REPO, timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the workflow's Snakefile as a user would, capturing output."""
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *args]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result
