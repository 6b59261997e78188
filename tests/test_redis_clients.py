"""The services' asyncio Redis client (orderengine.mesh.redis_clients), on a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import pytest
from redis import DataError, Redis
from redis.asyncio import Redis as AsyncRedis
from redis.connection import PythonRespSerializer

from orderengine.mesh.redis_clients import async_redis

hiredis_pack_command = hiredis.pack_command

# What a service stores: text, binary, amounts (u64), a float score.
VALUES: dict[Any, Any] = {
    "text": "SOL→USDC",
    "binary": b"\x00\r\n\xff route",
    "u64": 2**64 - 1,
    "negative": -7,
    "price": 0.1 + 0.2,
}


def test_hiredis_packs_each_command_byte_for_byte_as_redis_py_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    packed: list[tuple[Any, ...]] = []

    def pack_command(args: tuple[Any, ...]) -> bytes:
        packed.append(args)
        return hiredis_pack_command(args)

    monkeypatch.setattr(hiredis, "pack_command", pack_command)
    connection = async_redis("redis://127.0.0.1:1/0").connection_pool.make_connection()
    python = PythonRespSerializer(6000, connection.encoder.encode)
    commands: list[tuple[Any, ...]] = [
        ("SET", "key", *VALUES.values()),
        ("CONFIG GET", "maxmemory"),
        (b"CLIENT SETNAME", "orderengine"),
        ("EVALSHA", "0" * 40, 2, "chain:tx:a", "chain:landing", b"\x01\x02", 1.5, "now"),
    ]
    for command in commands:
        assert b"".join(connection.pack_command(*command)) == b"".join(python.pack(*command))
    assert len(packed) == len(commands)


def test_it_keeps_the_connection_kind_its_url_names(redis_url: str) -> None:
    ours = async_redis(redis_url).connection_pool.connection_class
    theirs = AsyncRedis.from_url(redis_url).connection_pool.connection_class
    assert issubclass(ours, theirs)
    assert ours is async_redis(redis_url).connection_pool.connection_class


def test_what_it_writes_reads_back_the_same(redis: Redis, redis_url: str) -> None:
    async def write() -> list[bytes]:
        async with async_redis(redis_url) as client:
            await client.hset("values", mapping=VALUES)
            async with client.pipeline(transaction=True) as pipe:
                pipe.set("text", VALUES["text"])
                pipe.incrby("count", 3)
                pipe.zadd("landing", {"sig": 1.25})
                await pipe.execute()
            script = client.register_script("return redis.call('GET', KEYS[1])")
            pubsub = client.pubsub()
            await pubsub.subscribe("events")
            await client.publish("events", VALUES["binary"])
            received: list[bytes] = []
            while len(received) < 2:
                message = await pubsub.get_message(timeout=5)
                assert message is not None
                received.append(message["data"])
            await pubsub.aclose()
            return [await script(keys=["text"]), received[1]]

    from_script, published = asyncio.run(write())
    assert redis.hgetall("values") == {
        k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in VALUES.items()
    }
    assert from_script == redis.get("text") == "SOL→USDC".encode()
    assert redis.get("count") == b"3"
    assert redis.zscore("landing", "sig") == 1.25
    assert published == VALUES["binary"]


def test_a_value_redis_cannot_hold_is_refused_and_sends_nothing(
    redis: Redis, redis_url: str
) -> None:
    async def write() -> Any:
        async with async_redis(redis_url) as client:
            with pytest.raises(DataError):
                await client.set("key", None)  # type: ignore[arg-type]
            with pytest.raises(DataError):
                await client.set("key", True)
            await client.set("after", "ok")  # the connection still works
            return await client.get("key")

    assert asyncio.run(write()) is None
    assert redis.get("after") == b"ok"
