"""The local owner's wallet, topped up when the stack starts: make run's
key can trade at once, as a devnet wallet does after its airdrop. Through
OrderService's public calls with that key (GetBalances, RequestAirdrop),
within the faucet's limits like anyone's."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import grpc

from orderengine.mesh.auth import key_metadata
from orderengine.mesh.channels import ORDER_SERVICE, channel
from orderengine.v1 import order_service_pb2, order_service_pb2_grpc

# What make run's owner holds at least after a start, in whole tokens. make
# run is a local network, as solana-test-validator is: its faucet is the
# local owner's to draw on, so a load test of any length is paid for.
LOCAL_WALLET = {"SOL": "1000000", "USDC": "100000000"}
# make run's faucet limits (FAUCET_MAX_PER_CALL and FAUCET_MAX_PER_OWNER,
# unless set): a call gives what a local network's would, a thousandfold
# the defaults of a deployed one.
LOCAL_FAUCET = {
    "FAUCET_MAX_PER_CALL": "SOL=1000000,USDC=100000000,USDT=100000000,JUP=100000000,"
    "RAY=50000000,BONK=1000000000000",
    "FAUCET_MAX_PER_OWNER": "SOL=10000000,USDC=1000000000,USDT=1000000000,JUP=1000000000,"
    "RAY=500000000,BONK=10000000000000",
}
CALL_SECONDS = 10.0


def top_up(address: str, key: str, wanted: Mapping[str, str] = LOCAL_WALLET) -> list[str]:
    """Airdrops to the key's owner what it lacks of ``wanted``; returns a
    line for each token it could not (the faucet's limit reached, say), so
    that the stack still starts and says why the wallet is short."""
    problems: list[str] = []
    with channel(address, key_metadata(key), service=ORDER_SERVICE) as opened:
        stub = order_service_pb2_grpc.OrderServiceStub(opened)
        held = {
            b.token: Decimal(b.amount)
            for b in stub.GetBalances(
                order_service_pb2.GetBalancesRequest(tokens=list(wanted)), timeout=CALL_SECONDS
            ).balances
        }
        for symbol, amount in wanted.items():
            short = Decimal(amount) - held.get(symbol, Decimal(0))
            if short <= 0:
                continue
            try:
                stub.RequestAirdrop(
                    order_service_pb2.RequestAirdropRequest(token=symbol, amount=str(short)),
                    timeout=CALL_SECONDS,
                )
            except grpc.RpcError as exc:
                problems.append(f"could not fund {short} {symbol}: {exc.details()}")
    return problems
