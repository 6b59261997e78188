"""Not Python: a Node.js client (@grpc/grpc-js, protos read directly)
submits an order to the real engine and watches it to CONFIRMED."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, Processes, Services

NODE_DIR = ROOT / "tests" / "node"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def installed() -> Path:
    """tests/node/node_modules as the lock file pins it (npm ci when missing
    or older than the lock)."""
    modules = NODE_DIR / "node_modules"
    marker = modules / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        if NPM is None:
            pytest.skip("npm is not installed: cannot install @grpc/grpc-js")
        subprocess.run(
            [NPM, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
            check=True,
            timeout=300,
        )
    return modules


def node_client(*args: str) -> subprocess.CompletedProcess[str]:
    installed()
    assert NODE is not None
    return subprocess.run(
        [NODE, str(NODE_DIR / "client.mjs"), *args], capture_output=True, text=True, timeout=90
    )


def test_node_client_submits_and_watches_to_confirmed(
    engine: Processes, services: Services
) -> None:
    run = node_client(services.address("order"), "SOL", "USDC", "10")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert re.match(r"order [0-9a-f-]{36}: 10 SOL -> USDC$", lines[0]), run.stdout
    steps = [line.split()[1] for line in lines if line.strip().startswith("#")]
    assert steps == ["PENDING", "ROUTING", "ROUTED", "SUBMITTED", "CONFIRMED"]
    assert "received" in run.stdout and lines[-1] == "final: CONFIRMED"


def test_node_client_reports_grpc_errors(services: Services) -> None:
    run = node_client(services.address("order"), "SOL", "DOGE", "10")
    assert run.returncode == 2
    assert "INVALID_ARGUMENT: output_token: unknown token 'DOGE'" in run.stderr
