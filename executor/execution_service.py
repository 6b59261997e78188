"""The ExecutionService servicer: the chain's RPC face."""

from __future__ import annotations

import grpc

from executor.chain import Chain, RpcTimeout
from executor.faults import RPC_TIMEOUT
from orderengine.errors import FieldError, abort, abort_invalid
from orderengine.market.routes import RouteError
from orderengine.v1 import execution_service_pb2, execution_service_pb2_grpc

# As Solana's getSignatureStatuses.
MAX_SIGNATURES = 256


class ExecutionServicer(execution_service_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    async def SubmitSwap(
        self, request: execution_service_pb2.SubmitSwapRequest, context: grpc.aio.ServicerContext
    ) -> execution_service_pb2.SubmitSwapResponse:
        if not request.attempt_key or len(request.attempt_key) > 128:
            await abort_invalid(context, FieldError("attempt_key", "is required, at most 128 "
                                                                   "characters"))
        try:
            submitted = await self.chain.submit(request.attempt_key, request.route)
        except RouteError as exc:
            await abort_invalid(context, FieldError("route", str(exc)))
        except RpcTimeout:
            # As a node that took the transaction and went quiet: the client
            # cannot know, and must send the same attempt again.
            await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                        "RPC timeout: the transaction may or may not have been received; "
                        "send the same attempt_key again", RPC_TIMEOUT)
        return execution_service_pb2.SubmitSwapResponse(
            signature=submitted.signature, duplicate=submitted.duplicate
        )

    async def GetSignatureStatuses(
        self, request: execution_service_pb2.GetSignatureStatusesRequest,
        context: grpc.aio.ServicerContext,
    ) -> execution_service_pb2.GetSignatureStatusesResponse:
        if len(request.signatures) > MAX_SIGNATURES:
            await abort_invalid(context, FieldError(
                "signatures", f"at most {MAX_SIGNATURES} per call, got {len(request.signatures)}"))
        statuses = await self.chain.statuses(list(request.signatures))
        return execution_service_pb2.GetSignatureStatusesResponse(statuses=statuses)
