"""The ExecutionService servicer: the chain's RPC face. SubmitSwap and
BatchSubmitSwaps are one piece of code (``submit_all``): SubmitSwap is a
batch of one that aborts with its item's failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import grpc

from executor.chain.chain import Chain, RpcTimeout
from orderengine.errors import FieldError, ItemFailure
from orderengine.market.routes import RouteError
from orderengine.mesh.batches import answer_all, answer_one, refuse_more_than
from orderengine.reasons import Reason
from orderengine.v1 import execution_service_pb2, execution_service_pb2_grpc

# As Solana's getSignatureStatuses.
MAX_SIGNATURES = 256
# Swaps in one BatchSubmitSwaps: one call stays as short as a unary one. A
# worker's job sends up to 32 (ORDERS_PER_JOB).
MAX_SWAPS_PER_CALL = 64

Answer = execution_service_pb2.SubmitSwapResponse | ItemFailure

# As a node that took the transaction and went quiet: the client cannot
# know, and must send the same attempt again.
TIMED_OUT = ItemFailure(
    grpc.StatusCode.DEADLINE_EXCEEDED,
    "RPC timeout: the transaction may or may not have been received; "
    "send the same attempt_key again",
    Reason.RPC_TIMEOUT,
)


class ExecutionServicer(execution_service_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, chain: Chain) -> None:
        self.chain = chain

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
        sent: list[tuple[int, execution_service_pb2.SubmitSwapRequest]] = []
        for request in requests:
            if not request.attempt_key or len(request.attempt_key) > 128:
                answers.append(
                    ItemFailure.invalid(
                        FieldError("attempt_key", "is required, at most 128 characters")
                    )
                )
            else:
                sent.append((len(answers), request))
                answers.append(None)
        outcomes = (
            await self.chain.submit_many(
                [(request.attempt_key, request.route) for _, request in sent]
            )
            if sent
            else []
        )
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
