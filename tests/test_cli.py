"""The ``orderengine`` command as a person and a script use it, against real
servers: fields and tables a person reads (amounts in their tokens, local
ISO times, status words), ``--json`` on every command, a wait that shows
the statuses passing, plain --help. (quote: tests/test_quote_cli.py; keys:
tests/test_access.py; the whole stack: tests/test_stack.py.)"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.cli import main, parser
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import Processes, Services

Captured = pytest.CaptureFixture[str]


def run(capsys: Captured, services: Services, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["--address", services.address("order"), *args])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def fields(out: str) -> dict[str, str]:
    """``name  value`` lines: every value starts in one column."""
    lines = out.splitlines()
    starts = {re.match(r"\S+(?: \S+)?\s+", line).end() for line in lines if line[:1] != " "}  # type: ignore[union-attr]
    assert len(starts) == 1, out
    column = starts.pop()
    found: dict[str, str] = {}
    for line in lines:
        if line[:1] != " ":
            found[line[:column].strip()] = line[column:]
    return found


def local(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC).astimezone().replace(microsecond=0)


def submit(services: Services, amount: str = "1") -> order_pb2.Order:
    return (
        services.orders()
        .SubmitOrder(
            order_service_pb2.SubmitOrderRequest(
                input_token="SOL", output_token="USDC", amount=amount
            ),
            timeout=10,
        )
        .order
    )


def test_submit_wait_shows_the_statuses_then_the_order_for_a_person(
    services: Services, engine: Processes, capsys: Captured
) -> None:
    code, out, err = run(capsys, services, "submit", "SOL", "USDC", "2.5", "--wait")
    assert code == 0, err
    head, rest = out.split("\n", 1)
    order_id = re.fullmatch(r"order (\S+): 2\.5 SOL -> USDC, slippage 50 bps", head).group(1)  # type: ignore[union-attr]
    # Standard error: each status as it passed, then how long it took.
    progress = re.fullmatch(
        r"PENDING → ROUTING → ROUTED → SUBMITTED → CONFIRMED in (\d+\.\d{3}) s\n", err
    )
    assert progress, err
    stored = services.orders().GetOrder(order_service_pb2.GetOrderRequest(order_id=order_id))
    took = (stored.update_time.ToNanoseconds() - stored.create_time.ToNanoseconds()) / 1e9
    assert float(progress.group(1)) == pytest.approx(took, abs=0.0015)

    # Then the order as it ended: what `get` prints.
    code, got, _ = run(capsys, services, "get", order_id)
    assert code == 0 and got == rest
    shown = fields(got)
    assert shown["order"] == order_id and shown["status"] == "CONFIRMED"
    assert shown["swap"] == "2.5 SOL -> USDC, slippage 50 bps"
    assert shown["received"] == f"{stored.amount_out} USDC"
    assert shown["signature"] == stored.signature and shown["attempt"] == "1"
    # Times in this machine's zone, ISO 8601, to the second.
    assert datetime.fromisoformat(shown["created"]) == local(stored.create_time)
    updated, after = re.fullmatch(r"(\S+ \S+) \((\d+\.\d{3}) s after\)", shown["updated"]).groups()  # type: ignore[union-attr]
    assert datetime.fromisoformat(updated) == local(stored.update_time)
    assert float(after) == pytest.approx(took, abs=0.0015)
    assert shown["events"].startswith("5 ")
    # The route, a leg a line, each in its tokens.
    legs = [line.strip() for line in got.splitlines() if re.match(r"^(route)?\s+\d\.", line)]
    assert len(legs) == len(stored.route.legs)
    for number, (line, leg) in enumerate(zip(legs, stored.route.legs, strict=True), 1):
        assert line.removeprefix("route").split() == [
            f"{number}.",
            {1: "raydium", 2: "meteora"}[leg.venue],
            leg.pool_id,
            leg.amount_in,
            leg.input_token,
            "->",
            leg.amount_out,
            leg.output_token,
        ]
    assert "ORDER_STATUS" not in got and "seconds:" not in got and "{" not in got

    # For a script: every field, proto3 JSON names, sequence numbers as numbers.
    code, out, _ = run(capsys, services, "get", order_id, "--json")
    as_json = json.loads(out)
    assert as_json["orderId"] == order_id and as_json["status"] == "ORDER_STATUS_CONFIRMED"
    assert as_json["amountOut"] == stored.amount_out and as_json["lastSequence"] == 5
    assert as_json["clientOrderId"] == "" and as_json["failureReason"] == ""
    moment = datetime.fromisoformat(as_json["createTime"].replace("Z", "+00:00"))
    assert moment == stored.create_time.ToDatetime(tzinfo=UTC)

    # --wait --json: the progress still on standard error, the order as JSON.
    code, out, err = run(capsys, services, "submit", "SOL", "USDC", "1", "--wait", "--json")
    assert code == 0 and re.fullmatch(r"PENDING → .* → CONFIRMED in \d+\.\d{3} s\n", err), err
    assert json.loads(out)["status"] == "ORDER_STATUS_CONFIRMED"


def test_orders_says_when_there_are_none_and_lists_newest_first(
    services: Services, capsys: Captured
) -> None:
    code, out, _ = run(capsys, services, "orders")
    assert code == 0 and out.startswith("no orders yet")
    assert json.loads(run(capsys, services, "orders", "--json")[1]) == {
        "orders": [],
        "nextPageToken": "",
    }
    older, newer = submit(services, "1"), submit(services, "3")
    code, out, _ = run(capsys, services, "orders")
    header, *rows = out.splitlines()
    assert header.split() == ["order", "created", "status", "swap", "received"]
    assert [row.split()[0] for row in rows] == [newer.order_id, older.order_id]
    assert rows[0].split()[3:] == ["PENDING", "3", "SOL", "->", "USDC"]
    # The columns line up under the header.
    assert {row.index("PENDING") for row in rows} == {header.index("status")}
    code, out, _ = run(capsys, services, "orders", "--page-size", "1", "--json")
    page = json.loads(out)
    assert [o["orderId"] for o in page["orders"]] == [newer.order_id] and page["nextPageToken"]
    code, out, _ = run(capsys, services, "orders", "--page-token", page["nextPageToken"], "--json")
    assert [o["orderId"] for o in json.loads(out)["orders"]] == [older.order_id]


def test_cancel_and_watch_for_a_person_and_a_script(services: Services, capsys: Captured) -> None:
    order = submit(services)  # no worker: it stays PENDING
    code, out, _ = run(capsys, services, "cancel", order.order_id)
    assert code == 0 and fields(out)["status"] == "CANCELLED"
    # A watch of an order that did not confirm ends with exit 1.
    code, out, _ = run(capsys, services, "watch", order.order_id)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"order {order.order_id}: 1 SOL -> USDC"
    assert [line.split()[:2] for line in lines[1:]] == [["#1", "PENDING"], ["#2", "CANCELLED"]]
    # One JSON object a line, as they come.
    code, out, _ = run(capsys, services, "watch", order.order_id, "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["sequence"], e["status"]) for e in events] == [
        (1, "ORDER_STATUS_PENDING"),
        (2, "ORDER_STATUS_CANCELLED"),
    ]
    code, out, _ = run(capsys, services, "watch", order.order_id, "--after", "1", "--json")
    assert [json.loads(line)["sequence"] for line in out.splitlines()] == [2]
    # Cancelled already: the error names the code.
    code, out, err = run(capsys, services, "cancel", order.order_id, "--json")
    assert (code, out) == (2, "") and err.startswith("error: FAILED_PRECONDITION: ")


def test_submit_json_and_submit_watch_json(services: Services, capsys: Captured) -> None:
    code, out, _ = run(
        capsys, services, "submit", "SOL", "USDC", "1", "--client-order-id", "c-1", "--json"
    )
    reply = json.loads(out)
    assert reply["alreadyExists"] is False and reply["order"]["clientOrderId"] == "c-1"
    assert reply["order"]["status"] == "ORDER_STATUS_PENDING"
    code, out, _ = run(
        capsys, services, "submit", "SOL", "USDC", "1", "--client-order-id", "c-1", "--json"
    )
    assert json.loads(out)["alreadyExists"] is True
    # With --watch: the reply, then each event, a line each (cancelled meanwhile by hand).
    services.orders().CancelOrder(
        order_service_pb2.CancelOrderRequest(order_id=reply["order"]["orderId"]), timeout=10
    )
    code, out, _ = run(
        capsys,
        services,
        "submit",
        "SOL",
        "USDC",
        "1",
        "--client-order-id",
        "c-1",
        "--watch",
        "--json",
    )
    first, *events = (json.loads(line) for line in out.splitlines())
    assert first["order"]["orderId"] == reply["order"]["orderId"]
    assert [e["status"] for e in events] == ["ORDER_STATUS_PENDING", "ORDER_STATUS_CANCELLED"]
    assert code == 1


def subcommands(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command, ``keys create`` and the like included."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                inner = subcommands(command)
                found.update(
                    {f"{name} {k}": v for k, v in inner.items()} if inner else {name: command}
                )
    return found


def test_every_command_takes_json_and_help_is_plain_text(capsys: Captured) -> None:
    commands = subcommands(parser())
    assert {"submit", "quote", "watch", "orders", "get", "cancel", "keys create"} <= set(commands)
    for name, command in commands.items():
        assert "--json" in command._option_string_actions, name
    for args in [[], *(name.split() for name in commands)]:
        with pytest.raises(SystemExit):
            main([*args, "--help"])
        text = capsys.readouterr().out
        assert text.startswith("usage: orderengine")
        assert "``" not in text and not re.search(r":\w+:`", text), text
