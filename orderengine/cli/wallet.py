"""The wallet commands of ``orderengine`` (orderengine.cli): what the
caller's wallet on the simulated chain holds, and the faucet that funds it."""

from __future__ import annotations

import argparse

from orderengine.cli.orders import _stub
from orderengine.v1 import order_service_pb2


def cmd_balances(args: argparse.Namespace) -> int:
    reply = _stub(args).GetBalances(
        order_service_pb2.GetBalancesRequest(tokens=args.tokens), timeout=10
    )
    width = max((len(b.token) for b in reply.balances), default=0)
    # Aligned on the decimal point, as a statement would be.
    whole = max((len(b.amount.partition(".")[0]) for b in reply.balances), default=0)
    for balance in reply.balances:
        integer, dot, fraction = balance.amount.partition(".")
        print(f"{balance.token:<{width}}  {integer:>{whole}}{dot}{fraction}".rstrip())
    return 0


def cmd_airdrop(args: argparse.Namespace) -> int:
    reply = _stub(args).RequestAirdrop(
        order_service_pb2.RequestAirdropRequest(
            token=args.token, amount=args.amount, request_id=args.request_id or ""
        ),
        timeout=10,
    )
    balance = reply.balance
    if reply.duplicate:
        print(f"already airdropped (request id {args.request_id}); the wallet holds ", end="")
    else:
        print(f"airdropped {args.amount.strip()} {balance.token}; the wallet holds ", end="")
    print(f"{balance.amount} {balance.token}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    balances = sub.add_parser("balances", help="what your wallet holds of each token")
    balances.add_argument("tokens", nargs="*", help="only these tokens (default: every one)")
    balances.set_defaults(run=cmd_balances)

    airdrop = sub.add_parser("airdrop", help="fund your wallet from the chain's faucet")
    airdrop.add_argument("token", help="e.g. SOL")
    airdrop.add_argument("amount", help="in whole tokens, e.g. 10 or 0.25")
    airdrop.add_argument(
        "--request-id", help="sending it again with the same id airdrops nothing more"
    )
    airdrop.set_defaults(run=cmd_airdrop)
