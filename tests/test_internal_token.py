"""The INTERNAL_TOKEN the examples ship (docker-compose.yml, .env.example,
the Kubernetes Secret) is a placeholder: every process that holds the token
refuses to start with it, saying why. make run makes its own
(tests/test_stack.py starts it with the placeholder set)."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from orderengine.mesh.auth import PLACEHOLDER_INTERNAL_TOKEN
from tests.conftest import ROOT

# Every process that shows or checks the token.
PARTS = {
    "order-service": ["order_service.main"],
    "quote-service": ["router_service.main"],
    "execution-service": ["executor.main", "chain"],
    "executor-worker": ["executor.main", "worker"],
    "executor-tracker": ["executor.main", "tracker"],
}


def test_every_example_ships_the_placeholder_the_processes_refuse() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    default = re.fullmatch(
        r"\$\{INTERNAL_TOKEN:-(.+)\}", compose["x-app"]["environment"]["INTERNAL_TOKEN"]
    )
    assert default is not None and default.group(1) == PLACEHOLDER_INTERNAL_TOKEN
    env_example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env_example["INTERNAL_TOKEN"] == PLACEHOLDER_INTERNAL_TOKEN
    secrets = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "secrets.yaml").read_text())
    [token] = [s for s in secrets if s["metadata"]["name"] == "orderengine-internal-token"]
    assert token["stringData"]["INTERNAL_TOKEN"] == PLACEHOLDER_INTERNAL_TOKEN


def test_every_part_refuses_to_start_with_the_placeholder(env: dict[str, str]) -> None:
    # Nothing listens at these: a part that went on would hang or fail
    # elsewhere, not exit at once with the reason.
    given = {
        **env,
        "INTERNAL_TOKEN": PLACEHOLDER_INTERNAL_TOKEN,
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "ORDER_SERVICE_ADDRESS": "127.0.0.1:9",
        "QUOTE_SERVICE_ADDRESS": "127.0.0.1:9",
        "EXECUTION_SERVICE_ADDRESS": "127.0.0.1:9",
        "METRICS_PORT": "off",
    }
    started = {
        part: subprocess.Popen(
            [sys.executable, "-m", *argv],
            cwd=ROOT,
            env=given,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for part, argv in PARTS.items()
    }
    for part, process in started.items():
        try:
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
        assert process.returncode == 1, (part, out, err)
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"{part}: INTERNAL_TOKEN is the placeholder"), (part, err)
        assert "openssl rand" in last
