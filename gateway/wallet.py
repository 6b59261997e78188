"""The HTTP API of the caller's wallet on the simulated chain: its balances
and the faucet, each one OrderService call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.amounts import DecimalJSONRoute
from gateway.models import AirdropBody, AirdropReply, BalanceJSON, BalancesJSON
from gateway.orders import BAD_INPUT, UNAVAILABLE, Stub, _error
from gateway.upstream import CALL_TIMEOUT_SECONDS
from orderengine.v1 import order_service_pb2

router = APIRouter(prefix="/api", route_class=DecimalJSONRoute, tags=["wallet"])


@router.get(
    "/balances",
    response_model=BalancesJSON,
    summary="What your wallet holds",
    responses={**BAD_INPUT, **UNAVAILABLE},
)
async def get_balances(
    stub: Stub,
    token: Annotated[
        list[str] | None,
        Query(description="only these tokens, in this order (default: every one)"),
    ] = None,
) -> BalancesJSON:
    """Every token the engine trades, zero included, SOL first: what landed
    swaps and their fees left, and airdrops added."""
    reply = await stub.GetBalances(
        order_service_pb2.GetBalancesRequest(tokens=token or []), timeout=CALL_TIMEOUT_SECONDS
    )
    return BalancesJSON(balances=[BalanceJSON.of(b) for b in reply.balances])


@router.post(
    "/airdrop",
    response_model=AirdropReply,
    summary="Fund your wallet from the chain's faucet",
    responses={
        **BAD_INPUT,
        409: _error("the wallet would hold more than a token account holds"),
        429: _error("the faucet has given this owner all it gives of the token"),
        **UNAVAILABLE,
    },
)
async def request_airdrop(body: AirdropBody, stub: Stub) -> AirdropReply:
    """Credits the wallet at once, as devnet's airdrop: at most
    FAUCET_MAX_PER_CALL a call (a 400 naming `amount` past it) and
    FAUCET_MAX_PER_OWNER in all."""
    reply = await stub.RequestAirdrop(
        order_service_pb2.RequestAirdropRequest(
            token=body.token, amount=body.amount, request_id=body.request_id or ""
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )
    return AirdropReply(balance=BalanceJSON.of(reply.balance), duplicate=reply.duplicate)
