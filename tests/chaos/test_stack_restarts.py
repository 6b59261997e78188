"""make run's own supervisor under fire: ``python -m orderengine.local.stack
--replicas 2`` as a user starts it, then a worker and one OrderService
replica killed while orders flow. The supervisor starts both again; every
acknowledged order ends, none is lost or lands twice, and the stack keeps
serving, the restarted replica included."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orderengine.local.metrics_targets import TARGETS_FILE, read_targets
from orderengine.local.ports import free_port
from orderengine.mesh.channels import ORDER_SERVICE
from orderengine.mesh.channels import channel as orderengine_channel
from orderengine.mesh.healthcheck import wait_serving
from orderengine.observability.metrics_scrape import scrape
from orderengine.store.orders import OrderStore
from tests.chaos.cluster import RedisServer
from tests.chaos.test_faults import account
from tests.chaos.test_replicas import ORDER_DEADLINE_SECONDS, BalancedLoad
from tests.conftest import ROOT
from tests.helpers import fund
from tests.test_stack import Output, pids_running, start_stack

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

ORDERS = 60
SERVICES = ("ORDER_SERVICE", "QUOTE_SERVICE", "EXECUTION_SERVICE")


def bind_of(pid: int) -> str | None:
    """The address a replica was told to listen on (its <SERVICE>_BIND)."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        name, _, value = entry.decode().partition("=")
        if name == "ORDER_SERVICE_BIND":
            return value
    return None


def test_make_run_restarts_a_killed_worker_and_replica(
    tmp_path: Path, database_url: str, store: OrderStore
) -> None:
    # Redis servers of the test's own, so that it can read what the chain landed.
    redis, chain_redis = RedisServer(tmp_path / "redis"), RedisServer(tmp_path / "chain-redis")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("INTERNAL_TOKEN", "ORDERENGINE_API_KEY", "ORDERENGINE_API_KEY_FILE")
    }
    env.update(
        {
            "REDIS_URL": redis.url,
            "CHAIN_REDIS_URL": chain_redis.url,
            "DATABASE_URL": database_url,
            **{f"{prefix}_ADDRESS": f"127.0.0.1:{free_port()}" for prefix in SERVICES},
            "GATEWAY_ADDRESS": f"http://127.0.0.1:{free_port()}",
            "METRICS_PORT": "0",
            # A still market, and the chaos cluster's quick chain and recovery.
            "MARKET_FLOW_RATE": "0",
            "CHAIN_SLOT_SECONDS": "0.2",
            "CHAIN_CONFIRM_SECONDS": "0.2",
            "RECONCILE_AFTER_SECONDS": "2",
            "ORDER_LEASE_SECONDS": "3",
            # A job the killed worker had taken but not begun still counts as
            # queued: taken to be lost after this (driving twice is harmless).
            "QUEUE_PATIENCE_SECONDS": "5",
            "RETRY_BASE_SECONDS": "0.1",
            "RETRY_CAP_SECONDS": "0.5",
            "MAX_ATTEMPTS": "5",
            "SHUTDOWN_GRACE_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    stack = start_stack(env, tmp_path / "var", "--replicas", "2", "--workers", "2")
    output = Output()
    assert stack.stdout is not None
    output.follow(stack.stdout)
    try:
        output.wait_for(r"^Ctrl-C stops everything", timeout=90)
        row = re.search(r"^  OrderService +(\S+), (\S+) +gRPC", output.text(), re.MULTILINE)
        assert row, output.text()
        replicas = row.groups()
        address = ",".join(replicas)
        env["ORDERENGINE_API_KEY_FILE"] = str(tmp_path / "var" / "api-key")
        # make run funds its owner with SOL and USDC; the load trades more tokens.
        fund(chain_redis.url, "local")
        shared = orderengine_channel(address, service=ORDER_SERVICE)
        try:
            load = BalancedLoad(
                shared,
                address,
                f"make-run-{time.time_ns()}",
                ORDERS,
                (tmp_path / "var" / "api-key").read_text().strip(),
            )
            load.start()
            load.wait_for(0.3)
            [replica] = [
                pid
                for pid in pids_running(stack.pid, "order_service.main")
                if bind_of(pid) == replicas[0]
            ]
            worker = pids_running(stack.pid, "executor.main", "worker")[0]
            struck_at = time.monotonic()
            acknowledged_before = len(load.acknowledged)
            os.kill(replica, signal.SIGKILL)
            os.kill(worker, signal.SIGKILL)
            account(chain_redis.url, store, "make run: worker+replica", load.finish(), struck_at)
        finally:
            shared.close()
        assert acknowledged_before < ORDERS, "the strike came after the last submission"
        assert max(load.seconds) <= ORDER_DEADLINE_SECONDS, sorted(load.seconds)[-3:]
        # The supervisor said what it did, and counts it where Prometheus looks.
        output.wait_for(r"^OrderService 1 exited with code -9 \(SIGKILL\); restarting it in ")
        output.wait_for(r"^worker-\d exited with code -9 \(SIGKILL\); restarting it in ")
        pages = {t.part: t.url for t in read_targets(tmp_path / "var" / TARGETS_FILE)}
        assert scrape([pages["supervisor"]]).get("orderengine_stack_restarts_total") == 2
        # Still serving, on the restarted replica too.
        wait_serving(replicas[0], time.monotonic() + 30)
        submitted = subprocess.run(
            [sys.executable, "-m", "orderengine.cli", "submit", "SOL", "USDC", "1", "--watch"],
            cwd=ROOT,
            env={**env, "ORDER_SERVICE_ADDRESS": replicas[0]},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert submitted.returncode == 0 and "CONFIRMED" in submitted.stdout, submitted
        assert stack.poll() is None, output.text()
    finally:
        if stack.poll() is None:
            stack.send_signal(signal.SIGINT)
            try:
                stack.wait(30)
            except subprocess.TimeoutExpired:
                stack.kill()
                stack.wait()
        print(output.join())  # shown when the test fails
        redis.stop()
        chain_redis.stop()
    assert stack.returncode == 0, output.text()
