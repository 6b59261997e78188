"""The page, in a real headless Chromium (Debian's, driven by Playwright;
no browser is downloaded), in front of the real engine: quotes from both
venues, submit, statuses arriving one by one to CONFIRMED, the signature,
the recent orders. A screenshot goes to artifacts/page.png."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import OWNER, ROOT, Processes
from tests.helpers import eventually
from tests.test_gateway import STATUSES, GatewayServer

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACT = ROOT / "artifacts" / "page.png"
# The README's picture: written when missing, or again with UPDATE_SCREENSHOTS=1,
# so that a test run does not change a committed file.
README_SHOT = ROOT / "docs" / "page.png"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


@pytest.fixture
def env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # The real chain's pace, so that statuses arrive one by one as a person sees them.
    pace = {"CHAIN_SLOT_SECONDS": "0.4", "CHAIN_CONFIRM_SECONDS": "0.6"}
    for name, value in pace.items():
        monkeypatch.setenv(name, value)
    return {**env, **pace}


@pytest.fixture
def gateway(engine: Processes, gateway: GatewayServer) -> GatewayServer:
    # The conftest's gateway, in front of a whole engine: orders run to the end.
    return gateway


def test_submit_from_the_page_and_watch_it_confirm(
    gateway: GatewayServer, api_keys: dict[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    key = api_keys[OWNER]  # made for this test by the conftest
    auth = {"authorization": f"Bearer {key}"}
    # An earlier order, so the recent list has history.
    with httpx.Client(base_url=gateway.url, timeout=15, headers=auth) as http:
        earlier = http.post(
            "/api/orders",
            json={
                "inputToken": "USDC",
                "outputToken": "SOL",
                "amount": "2500.5",
                "slippageBps": 100,
            },
        )
        earlier_id = earlier.json()["orderId"]
        eventually(
            lambda: http.get(f"/api/orders/{earlier_id}").json()["status"] == "CONFIRMED",
            timeout=30,
        )

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(f"{gateway.url}/")
            # The page asks for a key before it shows anything of the caller's.
            expect(page.locator("#quotes")).to_contain_text("API key")
            page.fill("#api-key", key)

            # The live quote from each venue, best first.
            for venue in ("raydium", "meteora"):
                expect(page.locator(f'[data-testid=quote][data-venue="{venue}"]')).to_contain_text(
                    "USDC", timeout=15_000
                )
            expect(page.locator("#best-out")).to_have_text(re.compile(r"^\d+\.\d+$"))
            expect(page.locator("#health")).to_have_attribute("data-state", "up")

            page.fill("#amount", "10")
            page.click("#submit")

            # Statuses appear one by one, each with its time.
            status = page.locator("#order-status")
            expect(status).to_have_text("SUBMITTED", timeout=15_000)
            expect(status).to_have_text("CONFIRMED", timeout=30_000)
            steps = page.locator("[data-testid=step]")
            expect(steps).to_have_count(5)
            names = [re.sub(r"^#\d+\s*", "", n) for n in steps.locator(".name").all_inner_texts()]
            assert names == STATUSES
            offsets = [float(t.strip("+s")) for t in steps.locator(".at").all_inner_texts()]
            assert offsets == sorted(offsets) and offsets[0] == 0 and offsets[-1] > 0.4

            order_id = page.locator("#order-id").inner_text().strip()
            with httpx.Client(base_url=gateway.url, timeout=15, headers=auth) as http:
                order = http.get(f"/api/orders/{order_id}").json()
            assert order["status"] == "CONFIRMED"
            expect(page.locator("#signature")).to_have_text(order["txHash"])
            expect(page.locator("#fact-received")).to_have_text(f"{order['amountOut']} USDC")
            expect(page.locator("#fact-route")).to_contain_text(order["route"]["legs"][0]["poolId"])

            # The recent orders list has it (newest first) and the earlier one.
            row = page.locator(f'[data-testid=recent-order][data-order-id="{order_id}"]')
            expect(row).to_contain_text("CONFIRMED", timeout=15_000)
            expect(page.locator("[data-testid=recent-order]").first).to_have_attribute(
                "data-order-id", order_id
            )
            expect(
                page.locator(f'[data-testid=recent-order][data-order-id="{earlier_id}"]')
            ).to_be_visible()

            ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
        finally:
            browser.close()
    assert problems == []
    if not README_SHOT.exists() or os.environ.get("UPDATE_SCREENSHOTS"):
        README_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACT, README_SHOT)


def test_the_page_shows_the_engines_error_for_a_bad_amount(
    gateway: GatewayServer, api_keys: dict[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{gateway.url}/")
            page.fill("#api-key", api_keys[OWNER])
            page.fill("#amount", "0.0000000001")
            page.click("#submit")
            expect(page.locator("#form-error")).to_have_text(
                "amount: has 10 decimal places; this token has 9"
            )
            expect(page.locator("[data-testid=step]")).to_have_count(0)
        finally:
            browser.close()
