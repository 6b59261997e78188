"""What both clients hold: where OrderService is, the key every call
carries, their deadlines, and the channel they call it on."""

from __future__ import annotations

from typing import Any

from orderengine.client.dialing import ORDER_SERVICE, Dial, dial
from orderengine.client.keys import find_api_key, key_metadata
from orderengine.client.settings import ClientSettings
from orderengine.client.tls import Tls
from orderengine.v1 import order_service_pb2_grpc

# A unary call's deadline unless the client is given another.
TIMEOUT_SECONDS = 10.0
# How long a watch keeps resuming while OrderService is away.
WATCH_GIVE_UP_SECONDS = 30.0


class ClientBase:
    def __init__(
        self,
        address: str | None = None,
        *,
        api_key: str | None = None,
        tls: Tls | None = None,
        timeout: float = TIMEOUT_SECONDS,
        watch_give_up_seconds: float = WATCH_GIVE_UP_SECONDS,
    ) -> None:
        settings = ClientSettings()
        self.address = address or settings.order_service_address
        self.timeout = timeout
        self.watch_give_up_seconds = watch_give_up_seconds
        self._metadata = tuple(key_metadata(api_key or find_api_key(settings)))
        self._channel = self._open(dial(self.address, ORDER_SERVICE, tls))
        self._stub = order_service_pb2_grpc.OrderServiceStub(self._channel)

    def _open(self, how: Dial) -> Any:
        """The channel, blocking or asyncio as the client is."""
        raise NotImplementedError
