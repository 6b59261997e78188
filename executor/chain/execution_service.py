"""The ExecutionService servicer: the chain's RPC face. SubmitSwap and
BatchSubmitSwaps are one piece of code (``submit_all``): SubmitSwap is a
batch of one that aborts with its item's failure. GetWallets and FundWallet
read and fund the owners' wallets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import grpc

from executor.chain.chain import Chain, RpcTimeout, SwapTransaction
from executor.chain.faucet import FaucetLimits, FaucetRefused, airdrop
from executor.chain.wallets import read_wallets
from orderengine.errors import FieldError, ItemFailure, abort_invalid
from orderengine.fees import parse_priority_fee
from orderengine.market.routes import RouteError
from orderengine.mesh.batches import answer_all, answer_one, refuse_more_than
from orderengine.reasons import Reason
from orderengine.swaps import amount_field, token_field
from orderengine.v1 import execution_service_pb2, execution_service_pb2_grpc
from orderengine.wallets import balances_to_proto, token_balance

# As Solana's getSignatureStatuses.
MAX_SIGNATURES = 256
# Swaps in one BatchSubmitSwaps: one call stays as short as a unary one. A
# worker's job sends up to 32 (ORDERS_PER_JOB).
MAX_SWAPS_PER_CALL = 64
# Wallets in one GetWallets: what one OrderService batch of submits asks.
MAX_WALLETS_PER_CALL = 256
# An owner names an API key's owner (64 characters in the store).
MAX_OWNER_CHARS = 128
# An airdrop's request id: OrderService's "<owner>:<client's id>".
MAX_REQUEST_ID_CHARS = 200

Answer = execution_service_pb2.SubmitSwapResponse | ItemFailure

# As a node that took the transaction and went quiet: the client cannot
# know, and must send the same attempt again.
TIMED_OUT = ItemFailure(
    grpc.StatusCode.DEADLINE_EXCEEDED,
    "RPC timeout: the transaction may or may not have been received; "
    "send the same attempt_key again",
    Reason.RPC_TIMEOUT,
)


def _owner(value: str) -> str:
    if not value or len(value) > MAX_OWNER_CHARS:
        raise FieldError("owner", f"is required, at most {MAX_OWNER_CHARS} characters")
    return value


def _swap(request: execution_service_pb2.SubmitSwapRequest) -> SwapTransaction:
    """The transaction a request asks for; FieldError when it is not one."""
    if not request.attempt_key or len(request.attempt_key) > 128:
        raise FieldError("attempt_key", "is required, at most 128 characters")
    return SwapTransaction(
        request.attempt_key,
        request.route,
        _owner(request.owner),
        parse_priority_fee(request.priority_fee),
    )


class ExecutionServicer(execution_service_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, chain: Chain, faucet: FaucetLimits | None = None) -> None:
        self.chain = chain
        # None: the faucet gives nothing (no limits were configured).
        self.faucet = faucet if faucet is not None else FaucetLimits({}, {})

    async def SubmitSwap(
        self, request: execution_service_pb2.SubmitSwapRequest, context: grpc.aio.ServicerContext
    ) -> execution_service_pb2.SubmitSwapResponse:
        return await answer_one(self.submit_all, request, context)

    async def BatchSubmitSwaps(
        self,
        request: execution_service_pb2.BatchSubmitSwapsRequest,
        context: grpc.aio.ServicerContext,
    ) -> execution_service_pb2.BatchSubmitSwapsResponse:
        return await answer_all(
            self.submit_all,
            request.requests,
            MAX_SWAPS_PER_CALL,
            execution_service_pb2.BatchSubmitSwapsResponse,
            context,
        )

    async def submit_all(
        self, requests: Sequence[execution_service_pb2.SubmitSwapRequest]
    ) -> list[Answer]:
        """Each request's signature, or why it has none, in order; the
        swaps are taken in one Redis round trip (Chain.submit_many)."""
        answers: list[Answer | None] = []
        sent: list[tuple[int, SwapTransaction]] = []
        for request in requests:
            try:
                sent.append((len(answers), _swap(request)))
                answers.append(None)
            except FieldError as exc:
                answers.append(ItemFailure.invalid(exc))
        outcomes = await self.chain.submit_many([swap for _, swap in sent]) if sent else []
        for (index, _), outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, RouteError):
                answers[index] = ItemFailure.invalid(FieldError("route", str(outcome)))
            elif isinstance(outcome, RpcTimeout):
                answers[index] = TIMED_OUT
            else:
                answers[index] = execution_service_pb2.SubmitSwapResponse(
                    signature=outcome.signature, duplicate=outcome.duplicate
                )
        return cast(list[Answer], answers)  # every place filled

    async def GetSignatureStatuses(
        self,
        request: execution_service_pb2.GetSignatureStatusesRequest,
        context: grpc.aio.ServicerContext,
    ) -> execution_service_pb2.GetSignatureStatusesResponse:
        await refuse_more_than(MAX_SIGNATURES, request.signatures, "signatures", context)
        statuses = await self.chain.statuses(list(request.signatures))
        return execution_service_pb2.GetSignatureStatusesResponse(statuses=statuses)

    async def GetWallets(
        self, request: execution_service_pb2.GetWalletsRequest, context: grpc.aio.ServicerContext
    ) -> execution_service_pb2.GetWalletsResponse:
        await refuse_more_than(MAX_WALLETS_PER_CALL, request.owners, "owners", context)
        for owner in request.owners:
            try:
                _owner(owner)
            except FieldError as exc:
                await abort_invalid(context, exc)
        wallets = await read_wallets(self.chain.redis, request.owners)
        return execution_service_pb2.GetWalletsResponse(
            wallets=[
                execution_service_pb2.Wallet(
                    owner=owner, balances=balances_to_proto(wallets[owner])
                )
                for owner in request.owners
            ]
        )

    async def FundWallet(
        self, request: execution_service_pb2.FundWalletRequest, context: grpc.aio.ServicerContext
    ) -> execution_service_pb2.FundWalletResponse:
        try:
            owner = _owner(request.owner)
            found = token_field("token", request.token)
            units = amount_field("amount", request.amount, found)
            if not request.request_id or len(request.request_id) > MAX_REQUEST_ID_CHARS:
                raise FieldError(
                    "request_id", f"is required, at most {MAX_REQUEST_ID_CHARS} characters"
                )
        except FieldError as exc:
            await abort_invalid(context, exc)
        try:
            given = await airdrop(
                self.chain.redis, owner, found.symbol, units, self.faucet, request.request_id
            )
        except FaucetRefused as refused:
            await refused.failure.abort(context)
        return execution_service_pb2.FundWalletResponse(
            balance=token_balance(found.symbol, given.held), duplicate=given.duplicate
        )
