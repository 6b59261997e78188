"""The ``orderengine`` commands that work on the engine's own database
(``keys``) and on the simulated chain (``launch``): they come with the server's distribution, not the client's,
and the CLI finds them through the entry point group ``orderengine.cli``
(pyproject.toml). Adding them to the parser imports nothing more; running
one imports the store."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Command = Callable[[argparse.Namespace], int]


def _on_demand(name: str) -> Command:
    """The command ``name`` of orderengine.admin.keys, imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        from orderengine.admin import keys

        return keys.run(getattr(keys, name), args)

    return run


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Adds ``keys`` to the CLI's ``commands`` (its subparsers); ``common``
    carries --json."""
    keys = commands.add_parser(
        "keys", help="API keys, on the engine's database (DATABASE_URL; needs the server)"
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    create = keys_sub.add_parser(
        "create", parents=[common], help="a new key for NAME, printed once"
    )
    create.add_argument("name", help="the owner: whose orders the key reaches")
    create.set_defaults(run=_on_demand("cmd_keys_create"))
    listing = keys_sub.add_parser(
        "list", parents=[common], help="every key: prefix, owner, when made, state"
    )
    listing.set_defaults(run=_on_demand("cmd_keys_list"))
    revoke = keys_sub.add_parser(
        "revoke", parents=[common], help="revoke a key by its prefix or id"
    )
    revoke.add_argument("prefix", help="as keys list shows it, e.g. oe_AbCd1234")
    revoke.set_defaults(run=_on_demand("cmd_keys_revoke"))

    launch = commands.add_parser(
        "launch",
        parents=[common],
        help="a new token and its pool on the simulated chain (CHAIN_REDIS_URL; needs the server)",
    )
    launch.add_argument("token", help="the new token's symbol, e.g. NEWTOKEN")
    launch.add_argument("--decimals", type=int, default=6, help="the new token's; default 6")
    launch.add_argument(
        "--paired-with", default="USDC", help="the listed token it trades against; default USDC"
    )
    launch.add_argument(
        "--reserves",
        nargs=2,
        required=True,
        metavar=("NEW", "PAIRED"),
        help="what the pool starts with, whole tokens of each, e.g. 1000000 50000",
    )
    launch.set_defaults(run=_launch)


def _launch(args: argparse.Namespace) -> int:
    from orderengine.admin.launch import cmd_launch

    return cmd_launch(args)
