"""When the latest call reached a server: each call's wrapper notes it
(orderengine.mesh.wrapped_handlers) and a stopping server drains until its
calls go quiet (orderengine.mesh.serving)."""

from __future__ import annotations

import asyncio
import math
import time

# A stopping server's drain ends once no call has come for this long: its
# clients watch its health and have moved to other replicas.
QUIET_SECONDS = 0.1


class Arrivals:
    """When the latest call reached this server, on the
    ``time.perf_counter`` clock."""

    __slots__ = ("latest",)

    def __init__(self) -> None:
        self.latest = -math.inf

    async def quiet(self, longest: float) -> None:
        """Returns once no call has come for QUIET_SECONDS, or after ``longest``."""
        end = time.perf_counter() + longest
        while (wait := min(self.latest + QUIET_SECONDS, end) - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
