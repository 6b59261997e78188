"""SubmitOrder refuses an order whose route would move the price more than
QuoteService allows (MAX_PRICE_IMPACT_PCT): the orders of one submit are
quoted in BatchGetQuotes calls, and an order QuoteService refuses with
PRICE_IMPACT_TOO_HIGH is refused with its error, naming ``amount``.

Only that refusal counts here. An order QuoteService cannot quote for
another reason, or that it cannot quote at all (down, slow), is taken: the
worker that routes it quotes it again and fails it with its reason. So a
QuoteService outage costs no submit, only this check."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import cast

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2

from orderengine.amounts import format_amount
from orderengine.errors import FieldError, ItemFailure
from orderengine.reasons import Reason
from orderengine.store.changes import NewOrder
from orderengine.tokens import token
from orderengine.v1 import item_error_pb2, quote_service_pb2, quote_service_pb2_grpc

log = logging.getLogger(__name__)

# Where a failed call's google.rpc.Status travels (grpc_status reads it
# from sync calls only).
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# QuoteService's BatchGetQuotes takes at most this many.
QUOTES_PER_CALL = 64
# A submit waits this long at most for its quotes, then takes its orders...
QUOTE_TIMEOUT_SECONDS = 1.0
# ...and after such a failure, submits take their orders unchecked this long.
OUTAGE_SECONDS = 5.0
# A route's impact grows with its size: an order no larger than one
# QuoteService passed for the same pair this recently passes without asking
# again (the worker that routes it checks the impact once more). Under load
# most orders are answered so, and QuoteService quotes each order once.
PASSED_SECONDS = 1.0


class TooMuchImpact(Exception):
    """QuoteService refuses the order's route for its price impact: SubmitOrder
    refuses the order so, storing nothing (a resubmission of a stored order
    is answered with it)."""

    def __init__(self, failure: ItemFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def refusal(error: item_error_pb2.ItemError) -> ItemFailure:
    """QuoteService's refusal of an order's route, as SubmitOrder's."""
    field = error.field or "amount"
    return ItemFailure(
        grpc.StatusCode.FAILED_PRECONDITION,
        error.message,
        Reason.PRICE_IMPACT_TOO_HIGH,
        field=FieldError(field, error.message.removeprefix(f"{field}: ")),
        metadata=dict(error.metadata),
    )


def refusal_of_call(error: grpc.aio.AioRpcError) -> ItemFailure | None:
    """QuoteService's refusal of a GetQuote for its price impact, read off the
    failed call's status details; None for any other failure."""
    metadata = cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    for key, value in metadata:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        info = error_details_pb2.ErrorInfo()
        field = ""
        for detail in status_pb2.Status.FromString(value).details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                field = bad.field_violations[0].field if bad.field_violations else ""
        if info.reason == Reason.PRICE_IMPACT_TOO_HIGH:
            return refusal(
                item_error_pb2.ItemError(
                    message=error.details() or "", field=field, metadata=info.metadata
                )
            )
    return None


class PriceImpactCheck:
    """Asks QuoteService which orders of a submit move the price too much.
    A call that fails (QuoteService down, or slower than
    QUOTE_TIMEOUT_SECONDS) lets its orders through, and so do the submits of
    the next OUTAGE_SECONDS without asking: an outage costs one slow submit
    in that while, not every submit."""

    def __init__(self, quotes: quote_service_pb2_grpc.QuoteServiceAsyncStub) -> None:
        self.quotes = quotes
        self._asks_again_at = 0.0  # time.monotonic()
        # (input, output) -> the largest amount_in passed, and until when it counts.
        self._passed: dict[tuple[str, str], tuple[int, float]] = {}

    def _known_within(self, new: NewOrder, now: float) -> bool:
        amount, until = self._passed.get((new.input_token, new.output_token), (0, 0.0))
        return new.amount_in <= amount and now < until

    def _pass(self, new: NewOrder, now: float) -> None:
        pair = (new.input_token, new.output_token)
        amount, until = self._passed.get(pair, (0, 0.0))
        if new.amount_in >= amount or now >= until:
            self._passed[pair] = (new.amount_in, now + PASSED_SECONDS)

    async def refusals(self, news: Sequence[NewOrder]) -> dict[int, ItemFailure]:
        """The orders (by index) whose route QuoteService refuses for its price impact."""
        now = time.monotonic()
        if now < self._asks_again_at:
            return {}
        asked = [i for i, new in enumerate(news) if not self._known_within(new, now)]
        if not asked:
            return {}
        requests = [
            quote_service_pb2.GetQuoteRequest(
                input_token=new.input_token,
                output_token=new.output_token,
                amount=format_amount(new.amount_in, token(new.input_token).decimals),
                slippage_bps=new.slippage_bps,
            )
            for new in (news[i] for i in asked)
        ]
        starts = range(0, len(requests), QUOTES_PER_CALL)
        try:
            replies = await asyncio.gather(
                *(
                    self.quotes.BatchGetQuotes(
                        quote_service_pb2.BatchGetQuotesRequest(
                            requests=requests[start : start + QUOTES_PER_CALL]
                        ),
                        timeout=QUOTE_TIMEOUT_SECONDS,
                    )
                    for start in starts
                )
            )
        except grpc.aio.AioRpcError as exc:
            self._asks_again_at = time.monotonic() + OUTAGE_SECONDS
            log.warning(
                "QuoteService answered %s: price impact not checked at submit for %.0f s; "
                "workers check it when they route",
                exc.code().name,
                OUTAGE_SECONDS,
            )
            return {}
        refused: dict[int, ItemFailure] = {}
        for start, reply in zip(starts, replies, strict=True):
            for offset, result in enumerate(reply.results):
                index = asked[start + offset]
                error = result.error
                if result.WhichOneof("result") != "error":
                    self._pass(news[index], now)
                elif (
                    error.code == code_pb2.FAILED_PRECONDITION
                    and error.reason == Reason.PRICE_IMPACT_TOO_HIGH
                ):
                    refused[index] = refusal(error)
        return refused
