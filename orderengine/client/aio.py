"""``AsyncClient``: OrderService over gRPC, for asyncio (docs/client.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Unpack

import grpc

from orderengine.client.connection import ClientBase
from orderengine.client.dialing import Dial, open_aio_channel
from orderengine.client.requests import (
    Amount,
    SubmitOptions,
    airdrop_request,
    quote_request,
    submit_request,
)
from orderengine.client.resumption import Resuming, Watching
from orderengine.v1 import order_pb2, order_service_pb2


class AsyncClient(ClientBase):
    """What ``Client`` does, each call a coroutine and ``watch`` an async
    iterator. Make it inside the running event loop (``async with
    AsyncClient() as client:``); a failed call raises grpc.aio.AioRpcError
    (a grpc.RpcError)."""

    _channel: grpc.aio.Channel

    def _open(self, how: Dial) -> grpc.aio.Channel:
        return open_aio_channel(how)

    async def submit(
        self,
        input_token: str,
        output_token: str,
        amount: Amount,
        **options: Unpack[SubmitOptions],
    ) -> order_service_pb2.SubmitOrderResponse:
        request = submit_request(input_token, output_token, amount, **options)
        return await self._stub.SubmitOrder(request, timeout=self.timeout, metadata=self._metadata)

    async def get(self, order_id: str) -> order_pb2.Order:
        return await self._stub.GetOrder(
            order_service_pb2.GetOrderRequest(order_id=order_id),
            timeout=self.timeout,
            metadata=self._metadata,
        )

    async def list(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> order_service_pb2.ListOrdersResponse:
        return await self._stub.ListOrders(
            order_service_pb2.ListOrdersRequest(page_size=page_size, page_token=page_token),
            timeout=self.timeout,
            metadata=self._metadata,
        )

    async def cancel(self, order_id: str) -> order_pb2.Order:
        return await self._stub.CancelOrder(
            order_service_pb2.CancelOrderRequest(order_id=order_id),
            timeout=self.timeout,
            metadata=self._metadata,
        )

    async def quote(
        self, input_token: str, output_token: str, amount: Amount, *, slippage_bps: int = 0
    ) -> order_service_pb2.QuoteOrderResponse:
        request = quote_request(input_token, output_token, amount, slippage_bps)
        return await self._stub.QuoteOrder(request, timeout=self.timeout, metadata=self._metadata)

    async def balances(self, *tokens: str) -> order_service_pb2.GetBalancesResponse:
        return await self._stub.GetBalances(
            order_service_pb2.GetBalancesRequest(tokens=tokens),
            timeout=self.timeout,
            metadata=self._metadata,
        )

    async def airdrop(
        self, token: str, amount: Amount, *, request_id: str = ""
    ) -> order_service_pb2.RequestAirdropResponse:
        request = airdrop_request(token, amount, request_id)
        return await self._stub.RequestAirdrop(
            request, timeout=self.timeout, metadata=self._metadata
        )

    async def watch(
        self,
        order_id: str,
        *,
        after_sequence: int = 0,
        on_resume: Callable[[Resuming], None] | None = None,
    ) -> AsyncIterator[order_pb2.OrderEvent]:
        """As ``Client.watch``: resumes by itself after a broken stream."""
        watching = Watching(order_id, after_sequence, self.watch_give_up_seconds, on_resume)
        while True:
            stream = self._stub.WatchOrder(watching.request(), metadata=self._metadata)
            try:
                async for event in watching.relayed_async(stream):
                    yield event
                return
            except grpc.RpcError as exc:
                delay = watching.broken(exc)
            finally:
                stream.cancel()
            await asyncio.sleep(delay)

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
