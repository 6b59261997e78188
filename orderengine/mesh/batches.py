"""Batch methods (BatchGetQuotes, BatchSubmitSwaps) and their unary
siblings as one piece of code: a servicer answers a list of requests with
each one's reply or ItemFailure; a unary call is a batch of one that aborts
with its item's failure, and a batch answers every item in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from orderengine.errors import FieldError, ItemFailure, abort_invalid

Request = TypeVar("Request")
Reply = TypeVar("Reply")

Answers = Callable[[Sequence[Request]], Awaitable[list[Reply | ItemFailure]]]


async def answer_one(
    answers: Answers[Request, Reply], request: Request, context: grpc.aio.ServicerContext
) -> Reply:
    (answer,) = await answers([request])
    if isinstance(answer, ItemFailure):
        await answer.abort(context)
    return answer


async def refuse_more_than(
    limit: int, items: Sequence[Any], field: str, context: grpc.aio.ServicerContext
) -> None:
    """INVALID_ARGUMENT naming ``field`` when it holds more than ``limit``."""
    if len(items) > limit:
        await abort_invalid(
            context, FieldError(field, f"at most {limit} per call, got {len(items)}")
        )


async def answer_all(
    answers: Answers[Request, Reply],
    requests: Sequence[Request],
    limit: int,
    batch_response: Any,
    context: grpc.aio.ServicerContext,
) -> Any:
    """A batch call's ``batch_response``: each request's reply or error, in
    order, in its ``Result``s; INVALID_ARGUMENT when it holds more than
    ``limit`` requests."""
    await refuse_more_than(limit, requests, "requests", context)
    result = batch_response.Result
    return batch_response(
        results=[
            result(error=answer.item_error())
            if isinstance(answer, ItemFailure)
            else result(response=answer)
            for answer in await answers(requests)
        ]
    )
