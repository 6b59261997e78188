"""An order's later work done on behalf of the request that submitted it:
the worker's job that drives the order and the tracker round that confirms
it use that request's id (so QuoteService and ExecutionService log it) and
join its trace. A job moves up to 32 orders, each from a request of its own,
so what is carried is per order: in the RQ job's meta, and, while tracing,
in Redis beside the swap the tracker watches.

An order queued again without it (by the reconciler) gets a new request id
and, when tracing, a new trace."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from redis import Redis

from orderengine.observability import request_ids, tracing

# {"x-request-id": ..., "traceparent": ...}: what one order carries.
Carrier = dict[str, str]

JOB_META_KEY = "carried"
# Order id -> its carrier, for the tracker; only while tracing.
_TRACKED = "orderengine:carried:"
# Long past any confirmation; the key is no use after.
TRACKED_SECONDS = 3600


def capture() -> Carrier:
    """What work done later for the current request needs: its id, and its
    span when tracing."""
    carrier: Carrier = {}
    request_id = request_ids.current()
    if request_id:
        carrier[request_ids.HEADER] = request_id
    tracing.inject(carrier)
    return carrier


def job_meta(carried: Mapping[str, Carrier], order_ids: Sequence[str]) -> dict[str, Any] | None:
    """The meta of a job driving ``order_ids``: each one's carrier (None: nothing carried)."""
    mine = {order_id: carried[order_id] for order_id in order_ids if carried.get(order_id)}
    return {JOB_META_KEY: mine} if mine else None


def carried_by_job() -> dict[str, Carrier]:
    """The carriers of the RQ job running now ({} outside a job)."""
    from rq import get_current_job

    job = get_current_job()
    return dict(job.meta.get(JOB_META_KEY) or {}) if job is not None else {}


# -- the work done for each order ---------------------------------------------


@dataclass(frozen=True)
class _Order:
    request_id: str
    span: trace.Span | None


# The orders of the job (or tracker round) running in this thread.
_WORK: ContextVar[dict[str, _Order] | None] = ContextVar("order_work", default=None)


@contextmanager
def order_work(
    name: str, order_ids: Iterable[str], carried: Mapping[str, Carrier]
) -> Iterator[None]:
    """Work on several orders at once, each on behalf of its own request:
    when tracing, a span ``name`` per order, child of what it carried, open
    until the work ends. ``within_order`` enters one order's."""
    tracer = tracing.tracer()
    orders: dict[str, _Order] = {}
    for order_id in order_ids:
        carrier = carried.get(order_id) or {}
        request_id = request_ids.accepted(carrier.get(request_ids.HEADER))
        span = (
            None
            if tracer is None
            else tracer.start_span(
                name,
                context=tracing.extract(carrier),
                attributes={tracing.ORDER_ID: order_id, tracing.REQUEST_ID: request_id},
            )
        )
        orders[order_id] = _Order(request_id, span)
    token = _WORK.set(orders)
    try:
        yield
    except BaseException as exc:
        for order in orders.values():
            if order.span is not None:
                order.span.record_exception(exc)
                order.span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        _WORK.reset(token)
        for order in orders.values():
            if order.span is not None:
                order.span.end()


@contextmanager
def within_order(order_id: str) -> Iterator[None]:
    """Calls and jobs made inside are the order's: they send its request id
    and are children of its span. Outside ``order_work``: nothing changes."""
    orders = _WORK.get()
    order = orders.get(order_id) if orders else None
    if order is None:
        yield
        return
    with request_ids.using(order.request_id):
        if order.span is None:
            yield
            return
        token = otel_context.attach(trace.set_span_in_context(order.span))
        try:
            yield
        finally:
            otel_context.detach(token)


@contextmanager
def within_orders(name: str, order_ids: Sequence[str]) -> Iterator[None]:
    """A call made inside is for all these orders at once (a batch call).
    For one order it is that order's (``within_order``). Several, each on
    behalf of a request of its own, are no one order's: the call sends the
    request id they share, if they do (else the server makes one), and,
    when tracing, is the child of a span ``name`` of its own (a trace of its
    own), linked to each order's span and each order's span to it, so every
    order's trace leads to the call. Outside ``order_work``: nothing changes."""
    if len(order_ids) == 1:
        with within_order(order_ids[0]):
            yield
        return
    orders = _WORK.get() or {}
    mine = [orders[order_id] for order_id in dict.fromkeys(order_ids) if order_id in orders]
    if not mine:
        yield
        return
    shared = {order.request_id for order in mine}
    tracer = tracing.tracer()
    with request_ids.using(shared.pop() if len(shared) == 1 else None):
        if tracer is None:
            yield
            return
        spans = [order.span for order in mine if order.span is not None]
        batch = tracer.start_span(
            name,
            context=otel_context.Context(),
            links=[trace.Link(span.get_span_context()) for span in spans],
            attributes={"order.count": len(mine)},
        )
        for span in spans:
            span.add_link(batch.get_span_context())
        with trace.use_span(batch, end_on_exit=True):
            yield


@contextmanager
def one_order_work(name: str, order_id: str, carried: Mapping[str, Carrier]) -> Iterator[None]:
    """``order_work`` on one order, entered."""
    with order_work(name, [order_id], carried), within_order(order_id):
        yield


# -- to the tracker -----------------------------------------------------------------


def keep_for_tracker(redis: Redis, order_ids: Sequence[str]) -> None:
    """Keeps each order's context for the tracker that confirms its swap
    (only while tracing: the tracker's log lines need no request id)."""
    if not order_ids or not tracing.enabled():
        return
    with redis.pipeline(transaction=False) as pipe:
        for order_id in order_ids:
            with within_order(order_id):
                pipe.set(_TRACKED + order_id, json.dumps(capture()), ex=TRACKED_SECONDS)
        pipe.execute()


def kept_for_tracker(redis: Redis, order_ids: Sequence[str]) -> dict[str, Carrier]:
    """What ``keep_for_tracker`` kept for these orders ({} when not tracing)."""
    if not order_ids or not tracing.enabled():
        return {}
    values = redis.mget([_TRACKED + order_id for order_id in order_ids])
    return {
        order_id: json.loads(value)
        for order_id, value in zip(order_ids, values, strict=True)
        if value
    }
