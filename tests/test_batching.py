"""The coalescer behind submissions and watchers' reads, on a real event loop
and real threads."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from orderengine.batching import Coalescer


class Recorded:
    """A batch function that records each batch it was given, and can be
    held (its thread waits) until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()

    def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(10)
        # An odd item is refused on its own; the rest are doubled.
        return [ValueError(item) if item % 2 else item * 2 for item in items]


async def _while_held(
    run: Recorded, batcher: Coalescer[int, int], first: int
) -> asyncio.Future[int]:
    """Submits ``first`` and returns once its batch runs, held: what is
    submitted next waits for the next batch."""
    run.release.clear()
    started = asyncio.ensure_future(batcher.submit(first))
    await asyncio.to_thread(run.started.wait, 10)
    return started


def test_a_lone_item_goes_at_once_and_gets_its_own_result() -> None:
    run = Recorded()

    async def lone() -> tuple[int, float]:
        batcher: Coalescer[int, int] = Coalescer(run, 4)
        began = asyncio.get_running_loop().time()
        result = await batcher.submit(2)
        return result, asyncio.get_running_loop().time() - began

    result, seconds = asyncio.run(lone())
    assert result == 4
    assert run.batches == [[2]]
    assert seconds < 1  # no waiting for company


def test_items_that_arrive_while_a_batch_runs_go_together_never_past_the_limit() -> None:
    run = Recorded()

    async def crowd() -> list[object]:
        batcher: Coalescer[int, int] = Coalescer(run, 4)
        first = await _while_held(run, batcher, 0)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(2, 22, 2)]
        await asyncio.sleep(0)
        assert len(batcher) == 10
        run.release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(crowd()) == [i * 2 for i in range(0, 22, 2)]
    # In arrival order, at most 4 a batch.
    assert run.batches == [[0], [2, 4, 6, 8], [10, 12, 14, 16], [18, 20]]


def test_an_items_own_exception_reaches_only_its_caller() -> None:
    run = Recorded()

    async def mixed() -> list[object]:
        batcher: Coalescer[int, int] = Coalescer(run, 8)
        first = await _while_held(run, batcher, 0)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        run.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    got = asyncio.run(mixed())
    assert got[0] == 0 and got[2] == 4
    assert isinstance(got[1], ValueError) and got[1].args == (1,)
    assert isinstance(got[3], ValueError) and got[3].args == (3,)


def test_a_batch_wide_failure_reaches_every_waiter_and_the_next_batch_runs() -> None:
    failing = {"on": True}
    batches: list[list[int]] = []

    def run(items: list[int]) -> Sequence[int | Exception]:
        batches.append(list(items))
        if failing["on"]:
            raise ConnectionError("away")
        return items

    async def crowd() -> tuple[list[int | BaseException], int]:
        batcher: Coalescer[int, int] = Coalescer(run, 3)
        got = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
        failing["on"] = False
        return got, await batcher.submit(9)

    got, after = asyncio.run(crowd())
    assert len(got) == 5 and all(isinstance(r, ConnectionError) for r in got)
    assert batches[:2] == [[0], [1, 2, 3]] or batches[:2] == [[0, 1, 2], [3, 4]]
    assert after == 9  # a failed batch leaves the coalescer working


def test_a_cancelled_waiter_is_left_out_and_the_rest_get_their_answers() -> None:
    run = Recorded()

    async def one_leaves() -> tuple[list[int], bool]:
        batcher: Coalescer[int, int] = Coalescer(run, 8)
        first = await _while_held(run, batcher, 0)
        staying = asyncio.ensure_future(batcher.submit(2))
        leaving = asyncio.ensure_future(batcher.submit(4))
        also = asyncio.ensure_future(batcher.submit(6))
        await asyncio.sleep(0)
        leaving.cancel()
        run.release.set()
        got = list(await asyncio.gather(first, staying, also))
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return got, leaving.cancelled()

    got, cancelled = asyncio.run(one_leaves())
    assert got == [0, 4, 12] and cancelled
    assert run.batches == [[0], [2, 6]]  # what it asked for is never run


def test_a_batch_whose_every_waiter_left_is_not_run() -> None:
    run = Recorded()

    async def all_leave() -> int:
        batcher: Coalescer[int, int] = Coalescer(run, 8)
        first = await _while_held(run, batcher, 0)
        leaving = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 4)]
        await asyncio.sleep(0)
        for waiter in leaving:
            waiter.cancel()
        run.release.set()
        await first
        await asyncio.gather(*leaving, return_exceptions=True)
        return await batcher.submit(8)

    assert asyncio.run(all_leave()) == 16
    assert run.batches == [[0], [8]]


def test_items_of_one_key_share_a_batch_and_count_once() -> None:
    run = Recorded()

    async def keyed() -> list[int]:
        batcher: Coalescer[int, int] = Coalescer(run, 2, key=lambda item: item % 10)
        first = await _while_held(run, batcher, 0)
        # Keys 2, 4, 2, 6, 4, 2: keys 2 and 4 fill the next batch, with every
        # item of theirs, and key 6 waits for the one after.
        items = [2, 4, 12, 6, 14, 22]
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in items]
        await asyncio.sleep(0)
        run.release.set()
        return list(await asyncio.gather(first, *rest))

    assert asyncio.run(keyed()) == [0, 4, 8, 24, 12, 28, 44]
    assert run.batches == [[0], [2, 12, 22, 4, 14], [6]]


def test_a_one_thread_executor_runs_batches_on_that_thread_in_turn() -> None:
    threads: set[str] = set()
    order: list[int] = []

    def run(items: list[int]) -> Sequence[int | Exception]:
        threads.add(threading.current_thread().name)
        order.extend(items)
        return items

    async def crowd() -> list[int]:
        with ThreadPoolExecutor(1, "writer") as writer:
            batcher: Coalescer[int, int] = Coalescer(run, 3, executor=writer)
            return list(await asyncio.gather(*(batcher.submit(i) for i in range(10))))

    assert asyncio.run(crowd()) == list(range(10))
    assert order == list(range(10))
    assert len(threads) == 1 and threads.pop().startswith("writer")


def test_a_batch_function_that_answers_the_wrong_number_fails_the_batch() -> None:
    async def short() -> object:
        batcher: Coalescer[int, int] = Coalescer(lambda items: items[:-1], 4)
        got = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        return got

    got = asyncio.run(short())
    assert isinstance(got, list) and all(isinstance(r, RuntimeError) for r in got)


def test_with_two_in_flight_the_next_batch_goes_while_one_is_out_and_none_waits_forever() -> None:
    """A call to another process (an async batch function): with
    ``in_flight=2`` a second batch goes while the first is out, a third
    waits for one of them; once all are answered, a lone item still goes."""
    out: list[list[int]] = []

    async def crowd() -> tuple[list[object], int]:
        gate = asyncio.Event()

        async def call(items: list[int]) -> list[int | Exception]:
            out.append(list(items))
            await gate.wait()
            return [item * 2 for item in items]

        batcher: Coalescer[int, int] = Coalescer(call, 2, in_flight=2)
        first = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0)
        second = [asyncio.ensure_future(batcher.submit(i)) for i in (3, 4, 5)]
        await asyncio.sleep(0.01)
        out_at_once = len(out)
        gate.set()
        results = await asyncio.gather(*first, *second)
        return [*results, await batcher.submit(6)], out_at_once

    results, out_at_once = asyncio.run(crowd())
    assert results == [2, 4, 6, 8, 10, 12]
    # Two batches out together, the rest after one came back, then the lone one.
    assert out_at_once == 2
    assert out == [[1, 2], [3, 4], [5], [6]]


def test_in_flight_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="in_flight"):
        Coalescer(lambda items: items, 4, in_flight=0)


def test_then_follows_each_batch_before_the_next_and_a_lone_one_after_its_answers() -> None:
    """What a batch leaves to do goes on the executor's thread before the
    next batch; after a lone batch (nobody else waiting) only once its
    callers have their answers and have run on. A failed batch is
    followed too."""
    seen: list[object] = []
    threads: set[str] = set()
    release = threading.Event()

    def run(items: list[int]) -> Sequence[int | Exception]:
        seen.append(("batch", list(items)))
        release.wait(10)
        if 0 in items:
            raise RuntimeError("the whole batch fails")
        return items

    def then() -> None:
        threads.add(threading.current_thread().name)
        seen.append("then")

    async def crowd() -> None:
        with ThreadPoolExecutor(1, "writer") as writer:
            batcher: Coalescer[int, int] = Coalescer(run, 4, executor=writer, then=then)

            async def caller(item: int) -> None:
                with contextlib.suppress(RuntimeError):
                    await batcher.submit(item)
                seen.append(("answered", item))

            first = asyncio.ensure_future(caller(1))
            while not seen:  # the first batch is running, held
                await asyncio.sleep(0.001)
            rest = [asyncio.ensure_future(caller(i)) for i in (2, 3)]  # they wait
            await asyncio.sleep(0.01)
            release.set()
            await asyncio.gather(first, *rest)
            await caller(0)
            await asyncio.sleep(0.01)  # the drain hands ``then`` on

    asyncio.run(crowd())
    # Others were waiting when the first batch ended: its ``then`` went at
    # once, beside its answer, ahead of the next batch.
    assert seen.index(("answered", 1)) > seen.index(("batch", [1]))
    seen.remove(("answered", 1))
    assert seen == [
        ("batch", [1]),
        "then",
        ("batch", [2, 3]),
        ("answered", 2),
        ("answered", 3),
        "then",
        ("batch", [0]),
        ("answered", 0),
        "then",
    ]
    assert len(threads) == 1 and threads.pop().startswith("writer")


def test_then_needs_an_executor() -> None:
    with pytest.raises(ValueError, match="then"):
        Coalescer(lambda items: items, 4, then=lambda: None)
