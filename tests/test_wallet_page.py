"""The page's wallet card, in a real headless Chromium in front of the real
engine: a new owner's empty wallet, funded from the faucet with the page's
button, an order beyond it refused naming the amount, and an order that
lands moving the balances by its input, output and fee."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from orderengine.store.api_keys import ApiKeys
from orderengine.store.orders import OrderStore
from tests.conftest import Processes
from tests.test_gateway import GatewayServer
from tests.test_page import ARTIFACT as PAGE_ARTIFACT
from tests.test_page import CHROMIUM, CHROMIUM_ARGS

ARTIFACT = PAGE_ARTIFACT.with_name("wallet.png")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


@pytest.fixture
def gateway(engine: Processes, gateway: GatewayServer) -> GatewayServer:
    # The conftest's gateway, in front of a whole engine: orders run to the end.
    return gateway


def balance(page: Any, symbol: str) -> Any:
    return page.locator(f'[data-testid=balance][data-token="{symbol}"] .amount')


def test_fund_the_wallet_from_the_page_and_see_an_order_move_it(
    gateway: GatewayServer, store: OrderStore
) -> None:
    from playwright.sync_api import expect, sync_playwright

    key, _ = ApiKeys(store.engine).create("carol")  # nobody funded this wallet
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{gateway.url}/")
            expect(page.locator("#wallet-note")).to_contain_text("API key")
            page.fill("#api-key", key)
            expect(page.locator("[data-testid=balance]")).to_have_count(6)
            for symbol in ("SOL", "USDC", "USDT", "JUP", "BONK", "RAY"):
                expect(balance(page, symbol)).to_have_text("0")

            # Nothing to pay with: the engine's refusal, under the form.
            page.fill("#amount", "1")
            page.click("#submit")
            expect(page.locator("#form-error")).to_have_text(
                "amount: the wallet holds 0 SOL, less than the order needs "
                "(1 SOL and 0.000005 SOL in fees); fund it with RequestAirdrop"
            )

            # Past the faucet's limit a call (100 SOL): refused, nothing given.
            page.fill("#airdrop-amount", "100.5")
            page.click("#airdrop")
            expect(page.locator("#wallet-note")).to_have_text(
                "amount: the faucet gives at most 100 SOL a call"
            )
            expect(balance(page, "SOL")).to_have_text("0")

            page.fill("#airdrop-amount", "5")
            page.click("#airdrop")
            expect(page.locator("#wallet-note")).to_have_text(
                "airdropped 5 SOL; the wallet holds 5 SOL"
            )
            expect(balance(page, "SOL")).to_have_text("5")

            page.click("#submit")
            expect(page.locator("#order-status")).to_have_text("CONFIRMED", timeout=30_000)
            order_id = page.locator("#order-id").inner_text().strip()
            with httpx.Client(
                base_url=gateway.url, timeout=15, headers={"authorization": f"Bearer {key}"}
            ) as http:
                order = http.get(f"/api/orders/{order_id}").json()
            # 5 SOL - 1 SOL - the network fee of 5,000 lamports; what the order received.
            expect(balance(page, "SOL")).to_have_text("3.999995", timeout=10_000)
            expect(balance(page, "USDC")).to_have_text(order["amountOut"])
            assert Decimal(order["amountOut"]) > 100
            ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
        finally:
            browser.close()
    assert problems == []
