"""``Client``: OrderService over gRPC, blocking (docs/client.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Unpack

import grpc

from orderengine.client.connection import ClientBase
from orderengine.client.dialing import Dial, open_channel
from orderengine.client.requests import (
    Amount,
    SubmitOptions,
    airdrop_request,
    quote_request,
    submit_request,
)
from orderengine.client.resumption import Resuming, Watching
from orderengine.v1 import order_pb2, order_service_pb2


class Client(ClientBase):
    """Calls OrderService at ``address`` (default: ORDER_SERVICE_ADDRESS, or
    127.0.0.1:50051) with ``api_key`` (default: ORDERENGINE_API_KEY, or the
    key file make run writes); TLS as ``tls`` says (default: the TLS_*
    settings). A failed call raises grpc.RpcError: ``.code()`` and
    ``.details()`` say why, naming the field for bad input. Reads are
    retried by the channel while OrderService is briefly away; a watch
    resumes by itself."""

    _channel: grpc.Channel

    def _open(self, how: Dial) -> grpc.Channel:
        return open_channel(how)

    def submit(
        self,
        input_token: str,
        output_token: str,
        amount: Amount,
        **options: Unpack[SubmitOptions],
    ) -> order_service_pb2.SubmitOrderResponse:
        """An order: ``.order`` as stored (PENDING; OPEN for a waiting one),
        and ``.already_exists`` when ``client_order_id`` named an order made
        before (then that one). ``priority_fee``: SOL paid on top of the
        network fee. ``order_type``: a LimitOrder, StopOrder or TwapOrder
        (none: a market order), ``expire_time`` a limit or stop order's
        good-till time. Not retried: repeat it yourself with a
        ``client_order_id``, which makes a repeat safe."""
        request = submit_request(input_token, output_token, amount, **options)
        return self._stub.SubmitOrder(request, timeout=self.timeout, metadata=self._metadata)

    def get(self, order_id: str) -> order_pb2.Order:
        return self._stub.GetOrder(
            order_service_pb2.GetOrderRequest(order_id=order_id),
            timeout=self.timeout,
            metadata=self._metadata,
        )

    def list(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> order_service_pb2.ListOrdersResponse:
        """The caller's orders, newest first: ``.orders``, and
        ``.next_page_token`` while there are more."""
        return self._stub.ListOrders(
            order_service_pb2.ListOrdersRequest(page_size=page_size, page_token=page_token),
            timeout=self.timeout,
            metadata=self._metadata,
        )

    def cancel(self, order_id: str) -> order_pb2.Order:
        """The order, CANCELLED; FAILED_PRECONDITION once it is past PENDING."""
        return self._stub.CancelOrder(
            order_service_pb2.CancelOrderRequest(order_id=order_id),
            timeout=self.timeout,
            metadata=self._metadata,
        )

    def quote(
        self, input_token: str, output_token: str, amount: Amount, *, slippage_bps: int = 0
    ) -> order_service_pb2.QuoteOrderResponse:
        """What each venue and the engine's route would give now."""
        request = quote_request(input_token, output_token, amount, slippage_bps)
        return self._stub.QuoteOrder(request, timeout=self.timeout, metadata=self._metadata)

    def balances(self, *tokens: str) -> order_service_pb2.GetBalancesResponse:
        """What the caller's wallet holds of ``tokens`` (default: every token)."""
        return self._stub.GetBalances(
            order_service_pb2.GetBalancesRequest(tokens=tokens),
            timeout=self.timeout,
            metadata=self._metadata,
        )

    def airdrop(
        self, token: str, amount: Amount, *, request_id: str = ""
    ) -> order_service_pb2.RequestAirdropResponse:
        """Funds the caller's wallet from the chain's faucet, within its
        limits; a repeated ``request_id`` funds nothing more."""
        request = airdrop_request(token, amount, request_id)
        return self._stub.RequestAirdrop(request, timeout=self.timeout, metadata=self._metadata)

    def watch(
        self,
        order_id: str,
        *,
        after_sequence: int = 0,
        on_resume: Callable[[Resuming], None] | None = None,
    ) -> Iterator[order_pb2.OrderEvent]:
        """The order's events after ``after_sequence``, every one once and in
        order, ending after its last (CONFIRMED, FAILED, CANCELLED). A
        stream that breaks (OrderService restarting, a replica gone) is
        opened again after the last event seen; ``on_resume`` hears of
        each. Raises the stream's grpc.RpcError once OrderService has been
        away ``watch_give_up_seconds``."""
        watching = Watching(order_id, after_sequence, self.watch_give_up_seconds, on_resume)
        while True:
            stream = self._stub.WatchOrder(watching.request(), metadata=self._metadata)
            try:
                yield from watching.relayed(stream)
                return
            except grpc.RpcError as exc:
                delay = watching.broken(exc)
            finally:
                stream.cancel()
            time.sleep(delay)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
