"""The whole stack as ``make run`` starts it: every service its own process,
driven from the CLI over gRPC, stopped with Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from orderengine.client.version import VERSION
from orderengine.local.metrics_targets import TARGETS_FILE, read_targets
from orderengine.local.ports import free_port, port_is_free
from orderengine.mesh.auth import PLACEHOLDER_INTERNAL_TOKEN
from orderengine.mesh.channels import channel
from orderengine.mesh.healthcheck import serving, wait_serving
from orderengine.observability.metrics_scrape import scrape
from tests.conftest import ROOT

pytestmark = pytest.mark.stack

STATUSES = ["PENDING", "ROUTING", "ROUTED", "SUBMITTED", "CONFIRMED"]


@pytest.fixture
def stack_env(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "REDIS_URL",
            "DATABASE_URL",
            "INTERNAL_TOKEN",
            "ORDERENGINE_API_KEY",
            "ORDERENGINE_API_KEY_FILE",
        )
    }
    # The embedded defaults, unless the suite runs against real servers: then
    # emptied first, as every test's are (the stack's figures count its orders).
    if os.environ.get("TEST_REDIS_URL"):
        env["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
        request.getfixturevalue("redis")
    if os.environ.get("TEST_DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]
        request.getfixturevalue("store")
    for name in ("ORDER_SERVICE_ADDRESS", "QUOTE_SERVICE_ADDRESS", "EXECUTION_SERVICE_ADDRESS"):
        env[name] = f"127.0.0.1:{free_port()}"
    env["GATEWAY_ADDRESS"] = f"http://127.0.0.1:{free_port()}"
    # A realistic chain: land after a slot, confirmed a little later.
    env.update(CHAIN_SLOT_SECONDS="0.4", CHAIN_CONFIRM_SECONDS="0.6", WORKERS="2")
    # /metrics on free ports: stacks of other test runs may be up beside this one.
    env["METRICS_PORT"] = "0"
    # The examples' placeholder, as a copied .env would leave it: the parts
    # refuse it, so the stack must put a token of its own in its place.
    env["INTERNAL_TOKEN"] = PLACEHOLDER_INTERNAL_TOKEN
    return env


@pytest.fixture
def stack_args() -> list[str]:
    """More arguments for the stack (a test parametrizes it)."""
    return []


@pytest.fixture
def banners() -> list[str]:
    """The banner the stack printed."""
    return []


class Output:
    """What the stack (and its parts, on the same pipe) print after the
    banner, read as it comes: an unread pipe would fill and block them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._thread: threading.Thread | None = None

    def follow(self, stream: IO[str]) -> None:
        self._thread = threading.Thread(target=self.lines.extend, args=(stream,), daemon=True)
        self._thread.start()

    def join(self, timeout: float = 30) -> str:
        """Everything printed, once the stack has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.text()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text(), re.MULTILINE)
            if found:
                return found
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.text()[-3000:]}"
            time.sleep(0.05)


@pytest.fixture
def output() -> Output:
    return Output()


def start_stack(env: dict[str, str], data_dir: Path, *args: str) -> subprocess.Popen[str]:
    # A session of its own, as a shell gives a command in a terminal: Ctrl-C
    # there signals this whole process group.
    return subprocess.Popen(
        [sys.executable, "-m", "orderengine.local.stack", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.fixture
def stack(
    stack_env: dict[str, str],
    tmp_path: Path,
    stack_args: list[str],
    banners: list[str],
    output: Output,
) -> Iterator[subprocess.Popen[str]]:
    process = start_stack(stack_env, tmp_path / "var", *stack_args)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        banner = []
        for line in process.stdout:
            banner.append(line)
            if "Ctrl-C stops everything" in line:
                break
            assert time.monotonic() < deadline, "".join(banner)
        text = "".join(banner)
        assert f"Order engine {VERSION} is up." in text, text
        # The gateway's health answering 503 until OrderService is up is its
        # answer while starting, not a fault to warn of.
        assert "/healthz status=503" not in text, text
        for service in ("OrderService", "QuoteService", "ExecutionService"):
            assert re.search(
                rf"^{service} {re.escape(VERSION)} listening on port \d+$", text, re.M
            ), text
        assert stack_env["ORDER_SERVICE_ADDRESS"] in text
        assert re.search(
            rf"^  gateway +{re.escape(stack_env['GATEWAY_ADDRESS'])} +HTTP \+ WebSocket, "
            r"page at /$",
            text,
            re.MULTILINE,
        ), text
        # The first start made a key for the local owner: printed once, and in
        # a file only its owner can read, which the banner names.
        key_file = tmp_path / "var" / "api-key"
        assert str(key_file) in text, text
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        assert key.startswith("oe_") and key in text
        # The CLI finds it there.
        stack_env["ORDERENGINE_API_KEY_FILE"] = str(key_file)
    except BaseException:  # a stack that did not start right is not left running
        stop(process)
        raise
    banners.append(text)
    output.follow(process.stdout)
    yield process
    stop(process)
    output.join()


def stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C to the stack, as a terminal sends it; killed if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()  # its parts follow it: they die with their parent
            process.wait()


def processes() -> Iterator[tuple[int, list[str]]]:
    """Each process's id and the fields of its /proc stat after its name
    (state, parent, process group, ...)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        yield int(stat.parent.name), fields


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``, from /proc."""
    return [child for child, fields in processes() if int(fields[1]) == pid]


def pids_running(parent: int, *args: str) -> list[int]:
    """The children of ``parent`` whose command line holds ``args`` in a row."""
    found = []
    for pid in children_of(parent):
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if any(words[i : i + len(args)] == list(args) for i in range(len(words))):
            found.append(pid)
    return found


def confirmed(env: dict[str, str], output: Output) -> None:
    """An order submitted with the CLI is watched to CONFIRMED."""
    try:
        submitted = subprocess.run(
            [sys.executable, "-m", "orderengine.cli", "submit", "SOL", "USDC", "1", "--watch"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"not confirmed: {exc.stdout!r} {exc.stderr!r}\n{output.text()[-6000:]}")
    assert submitted.returncode == 0 and "CONFIRMED" in submitted.stdout, submitted


def in_group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    return [pid for pid, fields in processes() if int(fields[2]) == pgid and fields[0] != "Z"]


def cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orderengine.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_make_run_stack_confirms_an_order_watched_live_and_late(
    stack: subprocess.Popen[str], stack_env: dict[str, str], tmp_path: Path, banners: list[str]
) -> None:
    # The CLI in another terminal knows only the default address: the banner
    # tells it this one.
    assert re.search(
        rf"^Try:  ORDER_SERVICE_ADDRESS={re.escape(stack_env['ORDER_SERVICE_ADDRESS'])}"
        r" \.venv/bin/orderengine submit",
        banners[0],
        re.MULTILINE,
    ), banners[0]
    submitter = cli(stack_env, "submit", "SOL", "USDC", "10", "--watch")
    assert submitter.stdout is not None
    first = submitter.stdout.readline()
    match = re.match(r"order (\S+): 10 SOL -> USDC", first)
    assert match, first
    order_id = match.group(1)

    # A second watcher joins after the order is under way.
    time.sleep(0.3)
    late = cli(stack_env, "watch", order_id)
    late_out, late_err = late.communicate(timeout=30)
    rest, err = submitter.communicate(timeout=30)
    assert submitter.returncode == 0, err
    assert late.returncode == 0, late_err

    for output in (rest, late_out):
        lines = [line.split() for line in output.splitlines() if line.strip().startswith("#")]
        assert [words[1] for words in lines] == STATUSES, output
        assert [words[0] for words in lines] == ["#1", "#2", "#3", "#4", "#5"]
    assert "received" in rest and "USDC" in rest

    listed = subprocess.run(
        [sys.executable, "-m", "orderengine.cli", "orders"],
        cwd=ROOT,
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert order_id in listed.stdout and "CONFIRMED" in listed.stdout

    # make run funded the local owner's wallet with a million SOL; the order
    # took 10 of them and the network fee, 5,000 lamports.
    assert re.search(
        r"^  wallet +owner 'local' holds at least 1000000 SOL, 100000000 USDC",
        banners[0],
        re.MULTILINE,
    )
    held = subprocess.run(
        [sys.executable, "-m", "orderengine.cli", "balances", "SOL"],
        cwd=ROOT,
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert held.stdout.split() == ["SOL", "999989.999995"], held

    # Every part serves /metrics, listed for Prometheus; together they saw the order through.
    pages = {target.part: target.url for target in read_targets(tmp_path / "var" / TARGETS_FILE)}
    assert {
        "OrderService",
        "QuoteService",
        "ExecutionService",
        "gateway",
        "worker-1",
        "worker-2",
        "tracker",
    } <= set(pages), pages
    figures = scrape(pages.values())
    # Each says the version it runs.
    assert figures.get("orderengine_build_info", version=VERSION) == len(pages)
    assert figures.get("orderengine_orders", status="CONFIRMED") == 1
    for status in ("PENDING", "ROUTING", "ROUTED", "SUBMITTED"):
        assert figures.get("orderengine_order_status_seconds_count", status=status) == 1, status


@pytest.mark.parametrize("stack_args", [["--replicas", "2"]])  # make run REPLICAS=2
def test_ctrl_c_stops_every_process(
    stack: subprocess.Popen[str], stack_env: dict[str, str], banners: list[str], output: Output
) -> None:
    # Two of every service, each on its own port, serving; the banner names them all.
    for service, prefix in (
        ("OrderService", "ORDER"),
        ("QuoteService", "QUOTE"),
        ("ExecutionService", "EXECUTION"),
    ):
        row = re.search(rf"^  {service} +(\S+), (\S+) +gRPC", banners[0], re.MULTILINE)
        assert row, banners[0]
        assert row.group(1) == stack_env[f"{prefix}_SERVICE_ADDRESS"] != row.group(2)
        for address in row.groups():
            with channel(address) as replica:
                assert serving(replica), f"{service} at {address}"
    workers = int(stack_env["WORKERS"])
    assert f"{workers} RQ workers on queue 'orders', 2 confirmation trackers" in banners[0]
    assert re.search(
        r"^Try:  ORDER_SERVICE_ADDRESS=\S+,\S+ \.venv/bin/orderengine ", banners[0], re.MULTILINE
    ), banners[0]
    pids = children_of(stack.pid)
    assert len(pids) >= 3 * 2 + 1 + workers + 2  # the services twice, gateway, workers, trackers
    # Ctrl-C in the terminal: SIGINT to the whole foreground process group.
    os.killpg(stack.pid, signal.SIGINT)
    stack.wait(timeout=30)
    printed = output.join()
    assert stack.returncode == 0, printed
    assert "stopped." in printed
    # Each part stopped gracefully, Redis last: no part lost its connection.
    assert "Traceback" not in printed, printed
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_no_part_outlives_a_killed_stack(stack: subprocess.Popen[str]) -> None:
    pids = children_of(stack.pid)
    assert len(pids) >= 6
    stack.kill()
    stack.wait()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in pids):
        assert time.monotonic() < deadline, "parts still running after the stack was killed"
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_killed_part_is_restarted_logged_and_counted(
    stack: subprocess.Popen[str], stack_env: dict[str, str], output: Output, tmp_path: Path
) -> None:
    [quote] = pids_running(stack.pid, "router_service.main")
    # The worker that runs RQ's scheduler (one at a time does), once it has
    # forked it.
    deadline = time.monotonic() + 30
    while not (
        worker := next(
            (
                pid
                for pid in pids_running(stack.pid, "executor.main", "worker")
                if len(in_group(pid)) > 1
            ),
            0,
        )
    ):
        assert time.monotonic() < deadline, "no worker started RQ's scheduler"
        time.sleep(0.05)
    os.kill(quote, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    output.wait_for(r"^QuoteService exited with code -9 \(SIGKILL\); restarting it in 0\.25s$")
    killed = output.wait_for(
        r"^(worker-\d) exited with code -9 \(SIGKILL\); restarting it in "
        r"0\.25s$"
    ).group(1)
    # Both are back, the rest kept serving, and the stack is still up.
    wait_serving(stack_env["QUOTE_SERVICE_ADDRESS"], time.monotonic() + 30)
    assert len(pids_running(stack.pid, "executor.main", "worker")) == 2
    # Nothing the killed worker forked (RQ's scheduler) lives on beside its successor.
    assert in_group(worker) == [], in_group(worker)
    confirmed(stack_env, output)
    assert stack.poll() is None
    # The supervisor serves its count of restarts, listed with every part's.
    pages = {target.part: target.url for target in read_targets(tmp_path / "var" / TARGETS_FILE)}
    figures = scrape([pages["supervisor"]])
    assert figures.get("orderengine_stack_restarts_total", part="QuoteService") == 1
    assert figures.get("orderengine_stack_restarts_total", part=killed) == 1
    assert figures.get("orderengine_stack_restarts_total") == 2


def test_a_crash_looping_part_stops_the_stack(stack: subprocess.Popen[str], output: Output) -> None:
    # One worker dies as soon as it is back, again and again.
    seen = set(pids_running(stack.pid, "executor.main", "worker"))
    victim = min(seen)
    for kills in range(1, 7):
        os.kill(victim, signal.SIGKILL)
        if kills == 6:
            break
        deadline = time.monotonic() + 20
        while not (new := set(pids_running(stack.pid, "executor.main", "worker")) - seen):
            assert stack.poll() is None, output.text()
            assert time.monotonic() < deadline, output.text()
            time.sleep(0.02)
        [victim] = new
        seen.add(victim)
    stack.wait(timeout=30)
    printed = output.join()
    assert stack.returncode == 1, printed
    # Five restarts with growing pauses, then one line that says why it stopped.
    pauses = re.findall(
        r"^worker-\d exited with code -9 \(SIGKILL\); restarting it in (\S+)s$",
        printed,
        re.MULTILINE,
    )
    assert pauses == ["0.25", "0.5", "1", "2", "4"], printed
    assert re.search(
        r"^worker-\d exited 6 times in 60s \(last with code -9\): it is "
        r"crash-looping; stopping the stack$",
        printed,
        re.MULTILINE,
    ), printed
    assert "stopped." in printed


@pytest.mark.parametrize("setting", ["ORDER_SERVICE_ADDRESS", "GATEWAY_ADDRESS"])
def test_a_busy_port_is_named_with_its_setting(
    stack_env: dict[str, str], tmp_path: Path, setting: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        stack_env[setting] = address if setting != "GATEWAY_ADDRESS" else f"http://{address}"
        began = time.monotonic()
        process = start_stack(stack_env, tmp_path / "var")
        printed, _ = process.communicate(timeout=60)
    assert process.returncode == 1, printed
    # At once, in one line, with the setting to change; no traceback.
    assert f"{address} is in use: set {setting}\n" in printed, printed
    assert "Traceback" not in printed, printed
    assert time.monotonic() - began < 15, printed


def test_make_run_starts_again_on_the_ports_it_just_released() -> None:
    # A server that closed its connections leaves them in TIME_WAIT: its
    # port is free for the next make run (servers bind with SO_REUSEADDR).
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first, as a stopping server does
            client.recv(1)
    assert port_is_free("127.0.0.1", port)


def test_lines_the_parts_say_at_once_reach_their_shared_output_whole() -> None:
    """The parts write one pipe, unbuffered as the stack runs them: a line
    written as its text and then its newline can be split by another part's."""
    speak = (
        "import sys, time\n"
        "from orderengine.observability.logs import say\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "for n in range(2000): say(f'part {sys.argv[1]} says line {n} ' + 'x' * 60)\n"
    )
    reader, writer = os.pipe()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    together = repr(time.time() + 1.0)  # all at once, once every one has started
    parts = [
        subprocess.Popen(
            [sys.executable, "-c", speak, str(i), together], stdout=writer, env=env, cwd=ROOT
        )
        for i in range(4)
    ]
    os.close(writer)
    with os.fdopen(reader) as output:
        lines = output.read().splitlines()
    assert [p.wait(30) for p in parts] == [0] * 4
    assert len(lines) == 4 * 2000
    assert all(re.fullmatch(r"part \d says line \d+ x{60}", line) for line in lines)
