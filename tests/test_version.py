"""One version number, read from orderengine/client/version.py, in every
place a user or an operator sees one: both installed distributions (and the
server's requirement of the client), the CLI's --version, the gateway's
OpenAPI document and /metrics page, and the CHANGELOG's sections. (make
run's banner, each server's start line and every process's /metrics on the
real stack: tests/test_stack.py.)"""

from __future__ import annotations

import re
from importlib.metadata import distribution, requires, version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from orderengine.cli import main
from orderengine.client.version import VERSION

ROOT = Path(__file__).resolve().parent.parent
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def test_the_version_is_semantic() -> None:
    assert SEMVER.match(VERSION), VERSION


def test_both_distributions_carry_it_and_the_server_needs_that_client() -> None:
    # Installed metadata: make install installs again when version.py changes.
    assert version("orderengine") == version("orderengine-client") == VERSION
    assert f"orderengine-client=={VERSION}" in (requires("orderengine") or [])
    for name in ("orderengine", "orderengine-client"):
        assert distribution(name).metadata["License-Expression"] == "MIT"


def test_the_cli_says_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"orderengine {VERSION}\n"


def test_the_gateway_says_it_in_its_openapi_document_and_its_metrics() -> None:
    app = create_app("127.0.0.1:1")
    assert app.openapi()["info"]["version"] == VERSION
    page = TestClient(app).get("/metrics").text
    assert f'orderengine_build_info{{version="{VERSION}"}} 1.0' in page.splitlines()


def test_the_changelog_has_its_section_with_upgrade_notes_and_the_license_is_mit() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    assert released and released[0][0] == VERSION, released  # the newest one released
    section = changelog.split(f"## [{VERSION}]")[1].split("\n## ")[0]
    assert "\n### Upgrading\n" in section
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{VERSION}]")
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
