"""``orderengine balances`` and ``orderengine airdrop``: the caller's wallet
from a terminal, over the services running in this process."""

from __future__ import annotations

import pytest

from orderengine.store.api_keys import ApiKeys
from orderengine.store.orders import OrderStore
from tests.conftest import Services
from tests.helpers import run_cli


@pytest.fixture
def carol(services: Services, store: OrderStore, monkeypatch: pytest.MonkeyPatch) -> Services:
    """The CLI calls as a new owner, whose wallet is empty."""
    key, _ = ApiKeys(store.engine).create("carol")
    monkeypatch.setenv("ORDERENGINE_API_KEY", key)
    return services


def test_airdrop_then_balances_show_the_wallet_aligned_on_the_point(
    carol: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, carol, "airdrop", "SOL", "10") == (
        0,
        "airdropped 10 SOL; the wallet holds 10 SOL\n",
        "",
    )
    run_cli(capsys, carol, "airdrop", "usdc", "1234.5")
    code, out, err = run_cli(capsys, carol, "balances")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "SOL     10",
        "USDC  1234.5",
        "USDT     0",
        "JUP      0",
        "BONK     0",
        "RAY      0",
    ]
    assert run_cli(capsys, carol, "balances", "USDC")[1] == "USDC  1234.5\n"


def test_an_airdrop_sent_again_with_its_request_id_gives_nothing_more(
    carol: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(capsys, carol, "airdrop", "SOL", "1", "--request-id", "first")
    code, out, _ = run_cli(capsys, carol, "airdrop", "SOL", "1", "--request-id", "first")
    assert (code, out) == (0, "already airdropped (request id first); the wallet holds 1 SOL\n")


def test_an_airdrop_past_the_limit_names_the_field_and_the_code(
    carol: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, carol, "airdrop", "SOL", "100.5")
    assert (code, out) == (2, "")
    assert err == "error: INVALID_ARGUMENT: amount: the faucet gives at most 100 SOL a call\n"


def test_submit_beyond_the_wallet_is_refused_with_the_balance(
    carol: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(capsys, carol, "airdrop", "SOL", "1")
    code, _, err = run_cli(capsys, carol, "submit", "SOL", "USDC", "1", "--priority-fee", "0.01")
    assert code == 2
    assert err == (
        "error: FAILED_PRECONDITION: amount: the wallet holds 1 SOL, less than the order "
        "needs (1 SOL and 0.010005 SOL in fees); fund it with RequestAirdrop\n"
    )
