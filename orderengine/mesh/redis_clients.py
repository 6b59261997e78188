"""The asyncio Redis client every service opens. redis-py's asyncio
connections pack each command in Python, where its blocking ones use
hiredis's packer when hiredis is installed (it is: a dependency). The
chain's landing and its status reads send thousands of commands a second,
so the asyncio ones here pack as the blocking ones do."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.connection import HiredisRespSerializer

_PACKER = HiredisRespSerializer()


class _HiredisPacking:
    """A connection whose commands hiredis packs, as a blocking connection's are."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _PACKER.pack(*args)


# redis-py's connection class -> the same, packing with hiredis: one of each.
_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _with_hiredis_packing(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    if connection_class not in _PACKED:
        _PACKED[connection_class] = type(
            connection_class.__name__, (_HiredisPacking, connection_class), {}
        )
    return _PACKED[connection_class]


def async_redis(url: str) -> Redis:
    """An asyncio client of ``url`` (redis://, rediss:// or unix://)."""
    client = Redis.from_url(url)
    pool = client.connection_pool
    pool.connection_class = _with_hiredis_packing(pool.connection_class)
    return client
