"""Load on the gateway's HTTP API (``POST /api/orders``, the seed's body):
autocannon (pinned, installed once under a cache directory) when node and
npm are here, else this module as a process of its own, an asyncio client
(httpx). Every result is a dict of the same keys.

    python -m orderengine.local.bench.http_load closed --url U --concurrency 64 --seconds 5
    python -m orderengine.local.bench.http_load rate --url U --rate 500 --seconds 30
    python -m orderengine.local.bench.http_load serial --url U --count 500

The API key comes from ORDERENGINE_API_KEY."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from orderengine.local.bench.stats import percentile

# The seed's own body, so that both APIs see the same request.
BODY = '{"inputToken":"SOL","outputToken":"USDC","amount":0.01}'
AUTOCANNON_VERSION = "9.0.0"  # as the shared side-by-side script pins it
# The shared script's cache, so that one install serves both.
CACHE = Path(os.environ.get("SEED_BENCH_CACHE", "~/.cache/seed-side-by-side")).expanduser()


def autocannon_path() -> Path | None:
    """The pinned autocannon, installed now if need be; None without npm or
    when the install fails."""
    tool = CACHE / "loadtool"
    binary = tool / "node_modules" / ".bin" / "autocannon"
    if binary.exists():
        return binary
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    tool.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(tool),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"autocannon@{AUTOCANNON_VERSION}",
        ],
        capture_output=True,
        check=False,
    )
    return binary if done.returncode == 0 and binary.exists() else None


def autocannon_command(
    binary: Path, url: str, key: str, seconds: float, concurrency: int, rate: float = 0
) -> list[str]:
    command = [
        str(binary),
        "-j",
        "-m",
        "POST",
        "-H",
        "content-type: application/json",
        "-H",
        f"authorization: Bearer {key}",
        "-b",
        BODY,
        "-c",
        str(concurrency),
    ]
    if rate > 0:
        # A number of requests rather than a duration: autocannon then waits
        # for every answer, where at a duration's end it drops those in
        # flight uncounted (stored by the engine, yet neither 2xx nor error).
        return [*command, "-R", str(rate), "-a", str(round(rate * seconds)), url]
    return [*command, "-d", str(max(1, round(seconds))), url]


def autocannon_result(output: str) -> dict[str, Any]:
    """autocannon's JSON summary, in this module's keys."""
    r = json.loads(output)
    return {
        "tool": "autocannon",
        "per_second": float(r["requests"]["average"]),
        "ok": int(r["2xx"]),
        "non2xx": int(r["non2xx"]),
        "errors": int(r["errors"]) + int(r["timeouts"]),
        "p50_ms": float(r["latency"]["p50"]),
        "p99_ms": float(r["latency"]["p99"]),
        "seconds": float(r["duration"]),
    }


def python_command(kind: str, url: str, **options: float) -> list[str]:
    args = [sys.executable, "-m", "orderengine.local.bench.http_load", kind, "--url", url]
    for name, value in options.items():
        args += [f"--{name}", str(value)]
    return args


def run_load(command: list[str]) -> dict[str, Any]:
    """Runs an autocannon or Python load command to its end."""
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed:\n{out.stderr[-2000:]}")
    last = out.stdout.strip().splitlines()[-1]
    return autocannon_result(last) if "autocannon" in command[0] else dict(json.loads(last))


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.non2xx = 0
        self.errors = 0


async def _post(client: Any, url: str, tally: _Tally) -> None:
    import httpx  # a dev dependency: only this load process needs it

    began = time.perf_counter()
    try:
        reply = await client.post(url, content=BODY)
    except httpx.HTTPError:
        tally.errors += 1
        return
    if 200 <= reply.status_code < 300:
        tally.latencies.append(time.perf_counter() - began)
    else:
        tally.non2xx += 1


def _client(connections: int) -> Any:
    import httpx

    key = os.environ.get("ORDERENGINE_API_KEY", "")
    return httpx.AsyncClient(
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=30,
        trust_env=False,
    )


def _result(tally: _Tally, elapsed: float) -> dict[str, Any]:
    return {
        "tool": "python httpx",
        "per_second": len(tally.latencies) / elapsed,
        "ok": len(tally.latencies),
        "non2xx": tally.non2xx,
        "errors": tally.errors,
        "p50_ms": percentile(tally.latencies, 50) * 1000,
        "p99_ms": percentile(tally.latencies, 99) * 1000,
        "seconds": elapsed,
    }


async def closed(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    tally = _Tally()
    async with _client(concurrency) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def loop() -> None:
            while time.perf_counter() < deadline:
                await _post(client, url, tally)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return _result(tally, time.perf_counter() - start)


async def steady(url: str, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    """Open loop: ``rate`` requests a second, whatever the answers take."""
    tally = _Tally()
    async with _client(connections) as client:
        tasks = []
        sent = 0
        start = time.perf_counter()
        while (now := time.perf_counter()) < start + seconds:
            while sent < int((now - start) * rate) + 1:
                tasks.append(asyncio.ensure_future(_post(client, url, tally)))
                sent += 1
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
        return _result(tally, time.perf_counter() - start)


def serial(url: str, count: int) -> dict[str, Any]:
    """One request at a time on one kept-alive connection, by the standard
    library's http.client: the leanest client this machine has, so that the
    figure is the server's, not the client's (an asyncio client adds ~1 ms)."""
    from http.client import HTTPConnection, HTTPException
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    key = os.environ.get("ORDERENGINE_API_KEY", "")
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    connection = HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    tally = _Tally()

    def post() -> None:
        began = time.perf_counter()
        try:
            connection.request("POST", parts.path, body=BODY, headers=headers)
            reply = connection.getresponse()
            reply.read()
        except (HTTPException, OSError):
            tally.errors += 1
            connection.close()  # the next request opens another
            return
        if 200 <= reply.status < 300:
            tally.latencies.append(time.perf_counter() - began)
        else:
            tally.non2xx += 1

    try:
        for _ in range(5):  # open the connection, warm the path
            post()
        tally = _Tally()
        start = time.perf_counter()
        for _ in range(count):
            post()
        return {**_result(tally, time.perf_counter() - start), "tool": "python http.client"}
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m orderengine.local.bench.http_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    c = sub.add_parser("closed")
    c.add_argument("--concurrency", type=int, default=64)
    r = sub.add_parser("rate")
    r.add_argument("--rate", type=float, default=500)
    r.add_argument("--connections", type=int, default=64)
    for p in (c, r):
        p.add_argument("--seconds", type=float, default=5)
    s = sub.add_parser("serial")
    s.add_argument("--count", type=int, default=500)
    for p in (c, r, s):
        p.add_argument("--url", required=True)
    args = parser.parse_args()
    if args.kind == "closed":
        result = asyncio.run(closed(args.url, args.concurrency, args.seconds))
    elif args.kind == "rate":
        result = asyncio.run(steady(args.url, args.rate, args.seconds, args.connections))
    else:
        result = serial(args.url, args.count)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
