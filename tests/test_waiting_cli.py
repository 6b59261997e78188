"""The CLI's waiting orders: ``submit --limit-out/--stop/--expires``,
``orders --open``, cancel; over the OrderService running in this process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderengine.cli.waiting import expiry, twap_terms
from orderengine.v1 import order_pb2, order_service_pb2
from tests.conftest import Services
from tests.test_quote_cli import run_cli

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW + timedelta(seconds=30)),
        ("1h", NOW + timedelta(hours=1)),
        ("1h30m", NOW + timedelta(minutes=90)),
        ("2d", NOW + timedelta(days=2)),
        ("2026-12-31T12:00:00Z", datetime(2026, 12, 31, 12, tzinfo=UTC)),
        ("2026-12-31T12:00:00", datetime(2026, 12, 31, 12, tzinfo=UTC)),
    ],
)
def test_expires_takes_a_duration_or_an_iso_time(text: str, expected: datetime) -> None:
    assert expiry(text, NOW) == expected


def test_twap_takes_slices_and_an_interval() -> None:
    terms = twap_terms("10x30s")
    assert terms.slices == 10 and terms.interval.ToTimedelta() == timedelta(seconds=30)
    with pytest.raises(ValueError, match="--twap"):
        twap_terms("10 every 30s")


def test_expires_refuses_anything_else() -> None:
    with pytest.raises(ValueError, match="--expires"):
        expiry("soon", NOW)


def test_a_limit_order_from_the_cli_waits_open_and_is_cancelled(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC)
    code, out, err = run_cli(
        capsys, services, "submit", "SOL", "USDC", "10", "--limit-out", "1500", "--expires", "1h"
    )
    assert code == 0, err
    assert "limit: at least 1500 USDC, expires" in out
    order_id = out.split()[1].rstrip(":")
    order = services.orders().GetOrder(order_service_pb2.GetOrderRequest(order_id=order_id))
    assert order.status == order_pb2.ORDER_STATUS_OPEN
    assert order.limit.min_amount_out == "1500"
    expires = order.expire_time.ToDatetime(tzinfo=UTC)
    assert before + timedelta(minutes=59) < expires < datetime.now(UTC) + timedelta(minutes=61)

    run_cli(capsys, services, "submit", "SOL", "USDC", "1")  # a market order: not listed
    code, out, _ = run_cli(capsys, services, "submit", "SOL", "USDC", "2", "--stop", "140")
    assert code == 0 and "stop at 140 USDC/SOL" in out
    code, out, _ = run_cli(capsys, services, "orders", "--open")
    header, *rows = out.splitlines()
    assert code == 0 and header.split()[:3] == ["order", "created", "status"] and len(rows) == 2
    assert all("OPEN" in row for row in rows)
    # Newest first: the stop, then the limit.
    assert order_id in rows[1] and "limit: at least 1500 USDC" in rows[1]

    code, out, _ = run_cli(capsys, services, "cancel", order_id)
    assert code == 0 and "CANCELLED" in out
    code, out, _ = run_cli(capsys, services, "orders", "--open")
    assert order_id not in out and len(out.splitlines()) == 2


def test_limit_and_stop_are_one_or_the_other(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, services, "submit", "SOL", "USDC", "1", "--limit-out", "1", "--stop", "1"
    )
    assert code == 2 and "not allowed with argument" in err


def test_quote_shows_the_pairs_price(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, services, "quote", "SOL", "USDC", "1")
    assert code == 0, err
    reply = services.orders().QuoteOrder(
        order_service_pb2.QuoteOrderRequest(input_token="SOL", output_token="USDC", amount="1")
    )
    assert out.splitlines()[1] == f"price now: {reply.price} USDC per SOL"
