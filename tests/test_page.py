"""The page, in a real headless Chromium (Debian's, driven by Playwright;
no browser is downloaded), in front of the real engine: quotes from both
venues, submit, statuses arriving one by one to CONFIRMED, the signature,
the recent orders; a split route as shares, a two-hop route as a path, the
price per token; cancelling an order. A screenshot goes to artifacts/page.png."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

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
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_submit_from_the_page_and_watch_it_confirm(
    engine: Processes, gateway: GatewayServer, api_keys: dict[str, str]
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

            # The picture shows a split as well: the form quotes a size worth splitting.
            page.fill("#amount", "3000")
            expect(page.locator("#route-title")).to_contain_text("split across", timeout=15_000)
            page.locator("#amount").blur()

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


# -- routes, prices and cancelling, with no worker: the pools stay as they
# are (the page's quote is the test's) and an order stays PENDING -------------


def price_of(amount_in: str, amount_out: str) -> Decimal:
    """What one input token gets, to six significant digits, by hand."""
    return Context(prec=6).divide(Decimal(amount_out), Decimal(amount_in))


def quote_of(gateway: GatewayServer, key: str, src: str, dst: str, amount: str) -> Any:
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        reply = http.get(
            "/api/quote",
            params={"inputToken": src, "outputToken": dst, "amount": amount},
            headers={"authorization": f"Bearer {key}"},
        )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_split_shows_shares_a_two_hop_route_a_path_and_the_price_per_token(
    gateway: GatewayServer, api_keys: dict[str, str], browser: Any
) -> None:
    from playwright.sync_api import expect

    key = api_keys[OWNER]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{gateway.url}/")
    page.fill("#api-key", key)

    # 3000 SOL is worth splitting: over both venues' SOL/USDC pools, and
    # through USDT (docs/market.md).
    page.fill("#amount", "3000")
    quote = quote_of(gateway, key, "SOL", "USDC", "3000")
    route = quote["route"]
    pools = {leg["poolId"] for leg in route["legs"]}
    assert len(pools) > 2
    expect(page.locator("#best-out")).to_have_text(route["amountOut"], timeout=15_000)
    expect(page.locator("#route-title")).to_have_text(
        f"Best route (split across {len(pools)} pools)"
    )
    expect(page.locator("#best-label")).to_have_text(
        f"(best route, split across {len(pools)} pools)"
    )
    # The venues' own quotes: the first is the best single venue, not the route.
    best = page.locator("[data-testid=quote]").first
    expect(best).to_have_attribute("data-venue", quote["quotes"][0]["venue"])
    expect(best.locator("[data-testid=best-venue]")).to_have_text("best single venue")
    expect(page.locator("[data-testid=best-venue]")).to_have_count(1)

    # Each leg with its share of the token it spends: every token's shares
    # add up to 100 %, each within a hundredth of what the amounts say.
    legs = page.locator(".route-legs [data-testid=route-leg]")
    expect(legs).to_have_count(len(route["legs"]))
    spent: dict[str, Decimal] = {}
    for leg in route["legs"]:
        spent[leg["inputToken"]] = spent.get(leg["inputToken"], Decimal(0)) + Decimal(
            leg["amountIn"]
        )
    shown: dict[str, Decimal] = {}
    for row, leg in zip(legs.all(), route["legs"], strict=True):
        assert row.get_attribute("data-pool-id") == leg["poolId"]
        assert row.get_attribute("data-input-token") == leg["inputToken"]
        share = Decimal(row.locator(".share").inner_text().removesuffix("%").strip())
        exact = Decimal(leg["amountIn"]) * 100 / spent[leg["inputToken"]]
        assert abs(share - exact) < Decimal("0.01"), (leg, share, exact)
        shown[leg["inputToken"]] = shown.get(leg["inputToken"], Decimal(0)) + share
        expect(row).to_contain_text(f"→ {leg['outputToken']}")
    assert shown.keys() == spent.keys() and "SOL" in shown
    assert all(total == 100 for total in shown.values()), shown

    # The price per token, from the route's amounts; a click turns it round.
    price = page.locator("#price")
    expect(price).to_have_text(re.compile(r"^1 SOL = [\d.]+ USDC$"))
    assert Decimal(price.inner_text().split()[3]) == price_of(route["amountIn"], route["amountOut"])
    price.click()
    expect(price).to_have_text(re.compile(r"^1 USDC = [\d.]+ SOL$"))
    assert Decimal(price.inner_text().split()[3]) == price_of(route["amountOut"], route["amountIn"])
    # Hovering shows it the other way round.
    assert (price.get_attribute("title") or "").startswith("1 SOL = ")
    price.click()

    # 1000 JUP to USDC goes through SOL: a path, shown as one, with no shares.
    page.select_option("#input-token", "JUP")
    page.fill("#amount", "1000")
    quote = quote_of(gateway, key, "JUP", "USDC", "1000")
    route = quote["route"]
    tokens = [route["inputToken"], *(leg["outputToken"] for leg in route["legs"])]
    assert tokens == ["JUP", "SOL", "USDC"]
    # The page's quote for 1000 (not the one for 3000 JUP before it).
    expect(page.locator("#best-out")).to_have_text(route["amountOut"], timeout=15_000)
    expect(page.locator("#route-title")).to_have_text(
        "Best route (2 hops: JUP → SOL → USDC)", timeout=15_000
    )
    expect(page.locator(".route-path .token")).to_have_text(tokens)
    hops = page.locator(".route-path [data-testid=route-leg]")
    expect(hops).to_have_count(2)
    for hop, leg in zip(hops.all(), route["legs"], strict=True):
        expect(hop).to_contain_text(leg["poolId"])
    expect(page.locator("#route .share")).to_have_count(0)
    assert Decimal(page.locator("#price").inner_text().split()[3]) == price_of(
        route["amountIn"], route["amountOut"]
    )
    assert problems == []


def test_cancel_a_pending_order_from_the_page(
    gateway: GatewayServer, api_keys: dict[str, str], browser: Any
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{gateway.url}/")
    page.fill("#api-key", api_keys[OWNER])
    cancel = page.locator("#cancel-order")
    expect(cancel).to_be_hidden()
    page.click("#submit")

    # No worker runs: the order waits, PENDING, and may be cancelled.
    status = page.locator("#order-status")
    expect(status).to_have_text("PENDING", timeout=15_000)
    expect(cancel).to_be_visible()
    order_id = page.locator("#order-id").inner_text().strip()
    cancel.click()

    # The CANCELLED event comes over the socket: the page changes by itself.
    expect(status).to_have_text("CANCELLED", timeout=15_000)
    expect(cancel).to_be_hidden()
    steps = page.locator("[data-testid=step]")
    expect(steps).to_have_count(2)
    expect(steps.last).to_contain_text("cancelled by the owner")
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        order = http.get(
            f"/api/orders/{order_id}", headers={"authorization": f"Bearer {api_keys[OWNER]}"}
        ).json()
    assert order["status"] == "CANCELLED"
    expect(page.locator(f'[data-testid=recent-order][data-order-id="{order_id}"]')).to_contain_text(
        "CANCELLED", timeout=15_000
    )
