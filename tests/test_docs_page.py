"""The gateway's API docs, rendered in a real headless Chromium (Debian's,
driven by Playwright) that may reach nothing but the gateway: Swagger UI
and ReDoc draw the operations from their own assets, with no CDN."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, Route

from tests.conftest import GatewayServer
from tests.test_page import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)

REDOC_FOOTER_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayServer]:
    # The docs need no OrderService: nothing listens at this address, and
    # nothing here calls it.
    server = GatewayServer("127.0.0.1:9")
    yield server
    server.stop()


class Offline:
    """A browser page that reaches only ``origin``; what else it asked for,
    and every script error, are kept to be asserted empty."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.elsewhere: list[str] = []
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)

        def only_the_gateway(route: Route, request: Request) -> None:
            if request.url.startswith(("data:", "blob:")) or _origin(request.url) == origin:
                route.continue_()
            else:
                self.elsewhere.append(request.url)
                route.abort()

        page.route("**/*", only_the_gateway)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture
def offline(gateway: GatewayServer) -> Iterator[Offline]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield Offline(browser.new_page(viewport={"width": 1280, "height": 900}), gateway.url)
        finally:
            browser.close()


def test_swagger_ui_lists_the_operations_from_its_own_assets(
    gateway: GatewayServer, offline: Offline
) -> None:
    from playwright.sync_api import expect

    page = offline.page
    page.goto(f"{gateway.url}/docs")
    submit = page.locator(".opblock.opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/orders"]')
    )
    expect(submit).to_be_visible(timeout=15_000)
    expect(submit.locator(".opblock-summary-method")).to_have_text("POST")
    # The other operations of the document, each under its method.
    cancel = page.locator(".opblock.opblock-delete").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/orders/{order_id}"]')
    )
    expect(cancel).to_be_visible()
    expect(page.locator(".opblock-summary-path[data-path='/healthz']")).to_be_visible()
    # The API key scheme the document declares: the Authorize button.
    expect(page.locator(".btn.authorize")).to_be_visible()

    # Opening the submit shows its request body's fields.
    submit.locator(".opblock-summary").click()
    expect(submit.locator(".opblock-body")).to_contain_text("inputToken")
    assert offline.elsewhere == []
    assert offline.problems == []


def test_redoc_renders_the_document_from_its_own_assets(
    gateway: GatewayServer, offline: Offline
) -> None:
    from playwright.sync_api import expect

    page = offline.page
    page.goto(f"{gateway.url}/redoc")
    # ReDoc draws each operation's method and path once the document is read.
    expect(page.locator("h1").first).to_contain_text("Order engine gateway", timeout=15_000)
    endpoint = page.locator("button", has=page.locator(".http-verb.post"))
    expect(endpoint.filter(has_text="/api/orders").first).to_be_visible()
    cancel = page.locator("button", has=page.locator(".http-verb.delete"))
    expect(cancel.filter(has_text="/api/orders/{order_id}").first).to_be_attached()
    # Only the footer's "API docs by Redocly" logo, which ReDoc always asks
    # its CDN for and hides when that fails; nothing the page needs.
    assert set(offline.elsewhere) <= {REDOC_FOOTER_LOGO}
    assert [p for p in offline.problems if "ERR_FAILED" not in p] == []
