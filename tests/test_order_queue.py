"""The order queue on a real Redis: a worker taking the jobs queued behind its own."""

from __future__ import annotations

from redis import Redis

from orderengine.order_queue import QUEUED, enqueue_orders, order_queue, queued_since, take_queued


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def test_a_worker_takes_queued_jobs_that_fit_and_leaves_the_rest_in_order(redis: Redis) -> None:
    queue = order_queue(redis, "orders-test")
    first, second, third = _ids("a", 10), _ids("b", 20), _ids("c", 5)
    for batch in (first, second, third):
        enqueue_orders(queue, batch, carried={batch[0]: {"x-request-id": f"req-{batch[0]}"}})
    jobs_before = queue.get_job_ids()

    orders, carried = take_queued(queue, room=25)

    # The first fits, the second does not (10 + 20 > 25); the third, looked
    # at in the same round trip, fits beside the first.
    assert orders == first + third
    assert carried == {"a-0": {"x-request-id": "req-a-0"}, "c-0": {"x-request-id": "req-c-0"}}
    # The second waits at the head of the queue; the jobs taken are gone.
    assert queue.get_job_ids() == [jobs_before[1]]
    assert not redis.exists(f"rq:job:{jobs_before[0]}") and not redis.exists(
        f"rq:job:{jobs_before[2]}"
    )
    # Taken is not yet driven: the markers stay until the worker leases the
    # orders, so a worker killed in between leaves them to the reconciler.
    assert set(queued_since(redis, first + second + third)) == set(first + second + third)
    assert redis.hlen(QUEUED) == 35


def test_nothing_is_taken_without_room_or_from_an_empty_queue(redis: Redis) -> None:
    queue = order_queue(redis, "orders-test")
    assert take_queued(queue, room=64) == ([], {})
    enqueue_orders(queue, _ids("a", 3))
    assert take_queued(queue, room=0) == ([], {})
    assert len(queue.get_job_ids()) == 1


def test_a_job_that_drives_no_orders_goes_back(redis: Redis) -> None:
    queue = order_queue(redis, "orders-test")
    other = queue.enqueue("builtins.print", "not an order")
    enqueue_orders(queue, _ids("a", 2))

    orders, _ = take_queued(queue, room=64)

    assert orders == _ids("a", 2)
    assert queue.get_job_ids() == [other.id]
