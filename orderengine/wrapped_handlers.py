"""Method handlers wrapped once per method, not on every call.

An interceptor that wraps the handler it is given (to observe a call, to
decode its request) would otherwise make the wrapper's functions anew for
each call, and every open stream would hold its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class WrappedOnce:
    """The last wrapping of each method's handler; wrapped again whenever a
    call comes with another handler (an interceptor's refusal)."""

    __slots__ = ("_by_method",)

    def __init__(self) -> None:
        self._by_method: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler,
            wrap: Callable[..., grpc.RpcMethodHandler], *args: Any) -> grpc.RpcMethodHandler:
        """``wrap(handler, *args)``, made once while ``handler`` stays the same."""
        known = self._by_method.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = wrap(handler, *args)
        self._by_method[method] = (handler, wrapped)
        return wrapped
