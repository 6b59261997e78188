"""The interactive API docs (Swagger UI at /docs, ReDoc at /redoc) with
their scripts, styles and icon served by the gateway itself, from the
fastapi-offline package: FastAPI's own pages load them from a CDN, which
leaves a blank page wherever the browser cannot reach it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI = "/docs"
REDOC = "/redoc"
# Where the pages' assets are served: the files fastapi-offline ships.
ASSETS = "/docs/assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")


def install(app: FastAPI) -> None:
    """Serves both pages and their assets on ``app``, made with
    ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages off)."""
    openapi_url = app.openapi_url or "/openapi.json"
    icon = f"{ASSETS}/favicon.png"

    @app.get(SWAGGER_UI, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=icon,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(REDOC, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=icon,
            with_google_fonts=False,
        )

    app.mount(ASSETS, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
