"""The wallet commands of ``orderengine``: what the caller's wallet on the
simulated chain holds, and the faucet that funds it."""

from __future__ import annotations

import argparse

from orderengine.cli.orders import client
from orderengine.cli.show import print_json


def cmd_balances(args: argparse.Namespace) -> int:
    with client(args) as orders:
        reply = orders.balances(*args.tokens)
    if args.json:
        print_json(reply)
        return 0
    if not reply.balances:
        print("the wallet holds nothing yet: orderengine airdrop SOL 10 funds it")
        return 0
    width = max(len(b.token) for b in reply.balances)
    # Aligned on the decimal point, as a statement would be.
    whole = max(len(b.amount.partition(".")[0]) for b in reply.balances)
    for balance in reply.balances:
        integer, dot, fraction = balance.amount.partition(".")
        print(f"{balance.token:<{width}}  {integer:>{whole}}{dot}{fraction}".rstrip())
    return 0


def cmd_airdrop(args: argparse.Namespace) -> int:
    with client(args) as orders:
        reply = orders.airdrop(args.token, args.amount.strip(), request_id=args.request_id or "")
    if args.json:
        print_json(reply)
        return 0
    balance = reply.balance
    if reply.duplicate:
        print(f"already airdropped (request id {args.request_id}); the wallet holds ", end="")
    else:
        print(f"airdropped {args.amount.strip()} {balance.token}; the wallet holds ", end="")
    print(f"{balance.amount} {balance.token}")
    return 0
