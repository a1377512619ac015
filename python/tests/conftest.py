"""Shared helpers: the release binary `jghm` (the reference the bindings are checked against)."""

import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def jghm_binary() -> pathlib.Path:
    """`$JGHM_BIN`, else `target/release/jghm` of this repository."""
    path = pathlib.Path(os.environ.get("JGHM_BIN", ROOT / "target" / "release" / "jghm"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --release` first (or set JGHM_BIN)")
    return path


def cli(*args: str) -> str:
    """Runs `jghm ARGS...` and returns its stdout; a failure fails the test with stderr."""
    done = subprocess.run([str(jghm_binary()), *args], capture_output=True, text=True)
    assert done.returncode == 0, f"jghm {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def cli_json(*args: str):
    """`jghm --json ARGS...`, parsed."""
    return json.loads(cli("--json", *args))


def tokens_arg(row) -> str:
    """A token row as the CLI's comma-separated list."""
    return ",".join(str(int(t)) for t in row)
