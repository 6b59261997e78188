"""The page's waiting orders, in a real headless Chromium in front of the
real engine: a limit order placed for the form's pair, drawn on the live
price chart at its price, listed among the open orders, and cancelled."""

from __future__ import annotations

import re

import httpx

from tests import test_page
from tests.conftest import OWNER, ROOT, GatewayServer

pytestmark = test_page.pytestmark
ARTIFACT = ROOT / "artifacts" / "page-waiting.png"


def test_a_limit_order_from_the_page_is_drawn_on_the_chart_and_cancelled(
    gateway: GatewayServer, api_keys: dict[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    key = api_keys[OWNER]
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(test_page.CHROMIUM), args=test_page.CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.on("pageerror", lambda error: problems.append(str(error)))
            # Script errors, and server errors by URL: a health check may say
            # 503 while the engine behind the gateway is still starting.
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource")
                    else None
                ),
            )
            page.on(
                "response",
                lambda r: (
                    problems.append(f"{r.status} {r.url}")
                    if r.status >= 500 and not r.url.endswith("/healthz")
                    else None
                ),
            )
            page.goto(f"{gateway.url}/")
            page.fill("#api-key", key)
            # The pair's price, live (about 140 USDC a SOL).
            expect(page.locator("#chart-price")).to_have_text(
                re.compile(r"^1[34]\d\.\d+$"), timeout=15_000
            )
            page.fill("#amount", "10")
            page.select_option("#waiting-type", "limit")
            page.fill("#waiting-value", "1600")
            page.select_option("#waiting-expiry", "1h")
            page.click("#place-waiting")

            row = page.locator("[data-testid=open-order]")
            expect(row).to_have_count(1, timeout=10_000)
            expect(row).to_contain_text("limit ≥ 1600 USDC")
            order_id = row.get_attribute("data-order-id")
            assert order_id
            # Drawn on the chart at its price: 1600 USDC for 10 SOL, 160 a SOL.
            lines = page.evaluate(
                "() => [...window.waitingPage.lines.values()].map(l => l.options())"
            )
            assert [(line["price"], line["title"]) for line in lines] == [
                (160, f"limit {order_id[:8]}")
            ]
            assert page.evaluate("() => window.waitingPage.series.data().length") >= 1
            ARTIFACT.parent.mkdir(exist_ok=True)
            page.locator(".waiting").screenshot(path=str(ARTIFACT))

            page.click("[data-testid=cancel]")
            expect(row).to_have_count(0, timeout=10_000)
            assert page.evaluate("() => window.waitingPage.lines.size") == 0
        finally:
            browser.close()
    with httpx.Client(
        base_url=gateway.url, timeout=15, headers={"authorization": f"Bearer {key}"}
    ) as http:
        order = http.get(f"/api/orders/{order_id}").json()
    assert (order["status"], order["orderType"]) == ("CANCELLED", "limit")
    assert problems == []
