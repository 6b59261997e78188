"""The failure reason codes an order can carry (``OrderEvent.reason_code``,
beside the free-text reason): one closed vocabulary, so that whoever names a
failure (the chain, the programs, the router, the driver, a cancel) and
whoever acts on one (the retry policy, a client) cannot disagree on a
spelling. The values are wire strings that clients match on: never change
one, only add.

The API's error reasons (ErrorInfo.reason of a refused call: QUEUE_FULL,
ORDER_NOT_FOUND ...) are another vocabulary, about calls, not orders."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # The chain: failures it injects as real swaps meet them (executor.chain.faults);
    # INSUFFICIENT_FUNDS is also the owner's wallet short of the fee or the
    # input at landing (executor.chain.chain).
    BLOCKHASH_EXPIRED = "BLOCKHASH_EXPIRED"
    TRANSACTION_DROPPED = "TRANSACTION_DROPPED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    RPC_TIMEOUT = "RPC_TIMEOUT"
    # The chain, at landing: the pool moved past the minimum out; the swap
    # program raised what no program check names; a failed transaction
    # stored without a code.
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
    PROGRAM_FAILED = "PROGRAM_FAILED"
    UNKNOWN = "UNKNOWN"
    # The programs' refusals of a route, at quote or landing
    # (orderengine.market.routes' RouteError classes).
    ROUTE_INVALID = "ROUTE_INVALID"
    POOL_OUT_OF_LIQUIDITY = "POOL_OUT_OF_LIQUIDITY"
    AMOUNT_OVERFLOW = "AMOUNT_OVERFLOW"
    ZERO_AMOUNT_OUT = "ZERO_AMOUNT_OUT"
    # The driver: no pool trades the pair in this size; the chain refused
    # the swap request; the order's request cannot even be built.
    NO_ROUTE = "NO_ROUTE"
    SWAP_REJECTED = "SWAP_REJECTED"
    ORDER_INVALID = "ORDER_INVALID"
    # The router: the route's price impact is above MAX_PRICE_IMPACT_PCT.
    # SubmitOrder refuses such an order; one the market moved against
    # between its submit and its routing fails with it.
    PRICE_IMPACT_TOO_HIGH = "PRICE_IMPACT_TOO_HIGH"
    # The owner cancelled it.
    CANCELLED = "CANCELLED"
    # Waiting orders: the trigger fired; a limit order's route or landing
    # gave less than its minimum (back to OPEN); its expire_time passed.
    TRIGGERED = "TRIGGERED"
    LIMIT_NOT_MET = "LIMIT_NOT_MET"
    EXPIRED = "EXPIRED"
    # A TWAP order's slice ended (OPEN again, with the amount filled so
    # far): filled, or failed with its own order's reason.
    SLICE_FILLED = "SLICE_FILLED"
    SLICE_FAILED = "SLICE_FAILED"

    @classmethod
    def of(cls, code: str) -> Reason:
        """The member a code read off the wire names; UNKNOWN for one this
        engine does not know (a newer chain), so an order never carries a
        code outside the vocabulary."""
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN
