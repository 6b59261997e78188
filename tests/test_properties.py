"""Properties, tried on generated input (hypothesis): the amount parser and
formatter, the gateway's JSON numbers, every field of every OrderService
request (called directly where the check is a function, through the real
server for the rest, and nothing stored for a refused request), and the
order state machine driven at random through the store's compare-and-set
on the real database.

Every test is seeded (derandomize) and bounded, so a run tries the same
cases in a few seconds; docs/development.md ("Fuzzing") lists them."""

from __future__ import annotations

import base64
import json
import re
import threading
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from itertools import pairwise
from typing import Any

import grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import func, select

from gateway.amounts import MAX_DIGITS, decimal_string, loads
from order_service.order_service import _order_id
from orderengine.amounts import MAX_BASE_UNITS, AmountError, format_amount, parse_amount
from orderengine.errors import FieldError
from orderengine.reasons import Reason
from orderengine.statuses import TERMINAL, TRANSITIONS, Status
from orderengine.store.changes import NO_CHANGE, Change, NewOrder, Transition
from orderengine.store.models import EventRow, OrderRow
from orderengine.store.orders import OrderStore, PageTokenError
from orderengine.swaps import DEFAULT_SLIPPAGE_BPS, MAX_SLIPPAGE_BPS, SwapRequest, parse_swap
from orderengine.tokens import TOKENS
from orderengine.v1 import order_service_pb2
from tests.conftest import OWNER, Services
from tests.helpers import field_violations, is_legal, item_error_of

# Seeded and without an example database: the same cases every run, and no
# .hypothesis/ directory in the tree.
PURE = settings(max_examples=400, derandomize=True, database=None, deadline=None)
# Through a real server: fewer, each a gRPC call and a database query or two.
# The fixtures' server and database serve every example of a test.
WITH_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
SERVED = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=WITH_FIXTURES,
)

UINT32_MAX = 2**32 - 1
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
DIGITS = "0123456789"


# -- strategies ---------------------------------------------------------------

plain_decimals = st.builds(
    lambda whole, frac: whole + (f".{frac}" if frac else ""),
    st.text(DIGITS, min_size=1, max_size=22),
    st.text(DIGITS, max_size=14),
)
# Whitespace Python's str.strip() removes, including non-ASCII spaces.
SPACES = ["", " ", "\t", "\n", "\u2003", "\x1c"]
padded_decimals = st.builds(
    lambda left, text, right: left + text + right,
    st.sampled_from(SPACES),
    plain_decimals,
    st.sampled_from(SPACES),
)
# Everything a sloppy client might send: signs, exponents, separators, other
# scripts' digits (which int() and Decimal() would take), floats' spellings.
near_misses = st.text(alphabet="0123456789.-+eE_ ,x\u0661\u0662\uff10\uff11", max_size=45)
SPELLINGS = [
    "",
    "0",
    "0.0",
    "00.000",
    "-1",
    "+1",
    "1e5",
    "1E-3",
    ".5",
    "5.",
    "1_000",
    "1,5",
    "NaN",
    "Infinity",
    "-0",
    "0x10",
    "\u0661\u0660",
    "\uff11",
    "1.5.2",
    "1 000",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "0.000000001",
    "0.0000000001",
]
amount_texts = st.one_of(
    plain_decimals, padded_decimals, near_misses, st.text(max_size=50), st.sampled_from(SPELLINGS)
)


def _case_variants(symbol: str) -> st.SearchStrategy[str]:
    return st.builds(
        lambda flips, left, right: (
            left
            + "".join(c.lower() if flip else c for c, flip in zip(symbol, flips, strict=False))
            + right
        ),
        st.lists(st.booleans(), min_size=len(symbol), max_size=len(symbol)),
        st.sampled_from(["", " ", "\t"]),
        st.sampled_from(["", " ", "\n"]),
    )


symbols = st.sampled_from(sorted(TOKENS)).flatmap(_case_variants)
token_texts = st.one_of(
    symbols,
    st.text(max_size=8),
    st.sampled_from(["", "DOGE", "SOL/USDC", "S0L", "US DC", "\x00SOL", "\u017fol"]),
)
slippages = st.one_of(st.integers(0, MAX_SLIPPAGE_BPS + 100), st.integers(0, UINT32_MAX))
# Good for every token (the fewest decimals are BONK's 5), up to 10,000 tokens.
good_amounts = st.builds(lambda units: format_amount(units, 5), st.integers(1, 10**9))
ANY_VALUE = {
    "input_token": token_texts,
    "output_token": token_texts,
    "amount": amount_texts,
    "slippage_bps": slippages,
}


@st.composite
def swap_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A good swap request with none, one, some or all of its fields drawn
    from anything: so that accepted and refused requests both come often,
    and a refusal is mostly for one field."""
    fields: dict[str, Any] = {
        "input_token": draw(symbols),
        "output_token": draw(symbols),
        "amount": draw(good_amounts),
        "slippage_bps": draw(st.integers(0, MAX_SLIPPAGE_BPS)),
    }
    for name in draw(st.sets(st.sampled_from(sorted(ANY_VALUE)), max_size=len(ANY_VALUE))):
        fields[name] = draw(ANY_VALUE[name])
    return fields


# How an order id may be written: its own form, and others uuid.UUID would take.
ID_SPELLINGS: list[Callable[[str], str]] = [
    str,
    str,
    str.upper,
    lambda i: i.replace("-", ""),
    lambda i: f"{{{i}}}",
    lambda i: f" {i}",
    lambda i: i.replace("-", "_"),
    lambda i: i[:-1],
    lambda i: f"urn:uuid:{i}",
    lambda i: i.replace("-", "", 1),
    # Other scripts' digits: int(..., 16) takes them.
    lambda i: i.translate(
        str.maketrans(DIGITS, "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")
    ),
]
spellings = st.sampled_from(ID_SPELLINGS)
uuid_texts = st.one_of(
    st.builds(lambda spell, u: spell(str(u)), spellings, st.uuids()), st.text(max_size=40)
)


# -- oracles: the rules as docs/api.md states them, written apart from the code ---


def expected_units(text: str, decimals: int) -> int | None:
    """Base units of a plain positive decimal (ASCII digits, at most one
    point with digits on both sides, 40 characters, surrounding whitespace
    ignored) that the token can represent; None for anything else."""
    raw = text.strip()
    whole, point, frac = raw.partition(".")
    if not raw or len(raw) > 40 or not whole or (point and not frac):
        return None
    if not all(c in DIGITS for c in whole + frac):
        return None
    with localcontext() as exact:
        exact.prec = 200
        scaled = Decimal(raw).scaleb(decimals)
        if scaled != scaled.to_integral_value():
            return None
    units = int(scaled)
    return units if 0 < units <= MAX_BASE_UNITS else None


def known_symbol(text: str) -> str | None:
    symbol = text.strip()
    # Symbols are ASCII: "\u017fol".upper() is "SOL", and is no symbol.
    return symbol.upper() if symbol.isascii() and symbol.upper() in TOKENS else None


def first_bad_swap_field(
    input_token: str, output_token: str, amount: str, slippage_bps: int
) -> str | None:
    """The field a swap request is refused for: the first bad one, in order."""
    src, dst = known_symbol(input_token), known_symbol(output_token)
    if src is None:
        return "input_token"
    if dst is None or dst == src:
        return "output_token"
    if expected_units(amount, TOKENS[src].decimals) is None:
        return "amount"
    if not 1 <= (slippage_bps or DEFAULT_SLIPPAGE_BPS) <= MAX_SLIPPAGE_BPS:
        return "slippage_bps"
    return None


def is_order_id(text: str) -> bool:
    """A UUID written in ASCII hex, 8-4-4-4-12 or the 32 digits alone."""
    bare = text.replace("-", "") if text.count("-") in (0, 4) else ""
    hyphens_in_place = text.count("-") == 0 or [len(p) for p in text.split("-")] == [8, 4, 4, 4, 12]
    return len(bare) == 32 and hyphens_in_place and all(c in "0123456789abcdefABCDEF" for c in bare)


# -- amounts ------------------------------------------------------------------


@PURE
@given(units=st.integers(1, MAX_BASE_UNITS), decimals=st.integers(0, 9))
def test_every_amount_formats_and_parses_back_to_itself(units: int, decimals: int) -> None:
    text = format_amount(units, decimals)
    assert re.fullmatch(r"[0-9]+(\.[0-9]*[1-9])?", text), text  # no exponent, no trailing 0
    parsed = parse_amount(text, decimals)
    assert type(parsed) is int and parsed == units


@PURE
@given(text=amount_texts, decimals=st.integers(0, 9))
def test_any_text_is_parsed_exactly_or_refused_with_an_amount_error(
    text: str, decimals: int
) -> None:
    expected = expected_units(text, decimals)
    try:
        parsed = parse_amount(text, decimals)
    except AmountError as exc:
        assert expected is None, f"{text!r} refused: {exc}"
        assert str(exc)
        return
    assert type(parsed) is int, "never a float, never a Decimal"
    assert parsed == expected
    assert parse_amount(format_amount(parsed, decimals), decimals) == parsed


# -- the gateway's JSON numbers ----------------------------------------------


@PURE
@given(
    value=st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False),
        st.decimals(allow_nan=False, allow_infinity=False, places=9),
        st.integers(-(10**70), 10**70),
    )
)
def test_a_json_number_becomes_its_exact_decimal_string_or_a_named_refusal(
    value: Decimal | int,
) -> None:
    try:
        text = decimal_string(value)
    except PydanticCustomError as exc:
        # Only what would not fit any amount is refused, and said so.
        assert exc.type == "amount_size"
        _, digits, exponent = Decimal(value).as_tuple()
        assert isinstance(exponent, int) and len(digits) + abs(exponent) > MAX_DIGITS
        return
    assert isinstance(text, str)
    assert "e" not in text.lower(), "written out, never in exponent form"
    assert Decimal(text) == Decimal(value)
    assert len(text) <= MAX_DIGITS + 2  # a sign and a point beside the digits


json_numbers = st.one_of(
    st.integers(-(10**80), 10**80).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-999, 999), st.integers(-(10**9), 10**9)),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


@PURE
@given(number=json_numbers, nested=st.booleans())
def test_json_bodies_never_hold_a_float(number: str, nested: bool) -> None:
    body = (
        f'{{"amount": {number}, "more": [{number}, {{"x": {number}}}]}}'
        if nested
        else (f'{{"amount": {number}}}')
    )
    parsed = loads(body.encode())

    def walk(value: Any) -> None:
        assert not isinstance(value, float)
        for item in (
            value.values()
            if isinstance(value, dict)
            else (value if isinstance(value, list) else ())
        ):
            walk(item)

    walk(parsed)
    amount = parsed["amount"]
    assert Decimal(amount) == Decimal(number)  # exactly what was written
    if isinstance(amount, int):
        assert len(number.lstrip("-")) <= MAX_DIGITS


# -- request fields, checked directly ---------------------------------------


@PURE
@given(fields=swap_fields())
def test_a_swap_request_is_accepted_exactly_or_refused_naming_its_first_bad_field(
    fields: dict[str, Any],
) -> None:
    bad = first_bad_swap_field(**fields)
    try:
        swap = parse_swap(**fields)
    except FieldError as exc:
        event(f"refused: {exc.field}")
        assert exc.field == bad, f"refused for {exc.field}, expected {bad}: {exc}"
        assert str(exc).startswith(f"{exc.field}: ") and exc.description
        return
    event("accepted")
    assert bad is None, f"accepted though {bad} is bad"
    src, dst = known_symbol(fields["input_token"]), known_symbol(fields["output_token"])
    assert src is not None and dst is not None
    units = expected_units(fields["amount"], TOKENS[src].decimals)
    assert swap == SwapRequest(src, dst, units or 0, fields["slippage_bps"] or DEFAULT_SLIPPAGE_BPS)


@PURE
@given(text=uuid_texts)
def test_an_order_id_is_a_uuid_in_ascii_or_refused(text: str) -> None:
    try:
        order_id = _order_id(text)
    except FieldError as exc:
        assert exc.field == "order_id"
        assert not is_order_id(text), f"{text!r} refused"
        return
    assert is_order_id(text), f"{text!r} accepted"
    assert order_id == str(uuid.UUID(text))  # one spelling inside: lower case, hyphens


page_tokens = st.one_of(
    st.text(max_size=300),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=40),
        lambda inner: st.lists(inner, max_size=3),
        max_leaves=6,
    ).map(lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")),
    st.builds(
        lambda stamp, oid: (
            base64.urlsafe_b64encode(json.dumps([stamp, oid]).encode()).decode().rstrip("=")
        ),
        st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=30),
        st.uuids().map(str) | st.text(max_size=40),
    ),
    st.integers(1, 20_000).map(lambda depth: base64.urlsafe_b64encode(b"[" * depth).decode()),
)


@settings(PURE, max_examples=200, suppress_health_check=WITH_FIXTURES)
@given(page_token=page_tokens)
def test_a_page_token_is_one_this_store_gave_out_or_refused(
    store: OrderStore, page_token: str
) -> None:
    try:
        rows, _ = store.list_page("nobody", 10, page_token)
    except PageTokenError:
        return
    assert rows == []


# -- request fields, through the real OrderService ----------------------------


def count_orders(store: OrderStore) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(OrderRow)).scalar_one())


def refused(call: Callable[[], Any]) -> grpc.RpcError | None:
    try:
        result = call()
        if hasattr(result, "__iter__"):
            list(result)
    except grpc.RpcError as exc:
        return exc
    return None


client_order_ids = st.one_of(
    st.just(""),
    st.text(max_size=140),
    st.sampled_from(
        [
            "a\x00b",
            "tab\there",
            "x" * 128,
            "x" * 129,
            "same-id",
            "same-id",
            "\u00e9t\u00e9",
            "rtl\u202eoverride",
            "line\u2028separator",
        ]
    ),
)


@SERVED
@given(fields=swap_fields(), client_order_id=client_order_ids)
def test_submit_order_stores_a_valid_order_and_nothing_for_a_bad_field(
    services: Services, store: OrderStore, fields: dict[str, Any], client_order_id: str
) -> None:
    bad = first_bad_swap_field(**fields)
    # Control, format (bidirectional, zero-width) and line or paragraph separators.
    refused_id = len(client_order_id) > 128 or any(
        unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in client_order_id
    )
    if bad is None and refused_id:
        bad = "client_order_id"
    before = count_orders(store)
    # A refused id was never stored (and PostgreSQL cannot be asked for one
    # holding a NUL).
    earlier = (
        _by_client_order_id(store, client_order_id) if client_order_id and not refused_id else None
    )
    try:
        reply = services.orders().SubmitOrder(
            order_service_pb2.SubmitOrderRequest(**fields, client_order_id=client_order_id),
            timeout=10,
        )
    except grpc.RpcError as exc:
        assert count_orders(store) == before, "a refused order stored something"
        event(f"{exc.code().name} {bad or ''}")
        if bad is not None:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
            assert field_violations(exc) == [bad]
            return
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            # A valid order whose route would lose more than MAX_PRICE_IMPACT_PCT.
            assert item_error_of(exc).reason == "PRICE_IMPACT_TOO_HIGH", exc.details()
            assert field_violations(exc) == ["amount"]
            return
        # A valid order whose client_order_id was taken by another one.
        assert exc.code() == grpc.StatusCode.ALREADY_EXISTS, exc.details()
        assert earlier is not None and not _same(earlier, fields)
        return
    assert bad is None, f"accepted though {bad} is bad"
    event("stored" if earlier is None else "the earlier order")
    assert reply.already_exists == (earlier is not None)
    assert count_orders(store) == before + (0 if earlier else 1)
    if earlier is not None:
        assert reply.order.order_id == earlier.order_id
        assert _same(earlier, fields)


def _by_client_order_id(store: OrderStore, client_order_id: str) -> OrderRow | None:
    with store.engine.connect() as connection:
        found = connection.execute(
            select(OrderRow.__table__).where(
                OrderRow.owner == OWNER, OrderRow.client_order_id == client_order_id
            )
        ).first()
    return OrderRow(**found._mapping) if found else None


def _same(row: OrderRow, fields: dict[str, Any]) -> bool:
    swap = parse_swap(**fields)
    return (row.input_token, row.output_token, row.amount_in, row.slippage_bps) == (
        swap.input_token,
        swap.output_token,
        swap.amount_in,
        swap.slippage_bps,
    )


@SERVED
@given(fields=swap_fields())
def test_quote_order_answers_or_names_the_bad_field(
    services: Services, fields: dict[str, Any]
) -> None:
    bad = first_bad_swap_field(**fields)
    error = refused(
        lambda: services.orders().QuoteOrder(
            order_service_pb2.QuoteOrderRequest(**fields), timeout=10
        )
    )
    event(f"{error.code().name} {bad or ''}" if error else "quoted")
    if bad is not None:
        assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(error) == [bad]
    elif error is not None:
        # A valid request no pool can fill in this size: NO_ROUTE.
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()


@SERVED
@given(
    page_size=st.one_of(st.integers(0, 100), INT32),
    page_token=st.one_of(st.just(""), st.just(""), page_tokens),
)
def test_list_orders_pages_or_names_the_bad_field(
    services: Services, page_size: int, page_token: str
) -> None:
    stub = services.orders()
    error = refused(
        lambda: stub.ListOrders(
            order_service_pb2.ListOrdersRequest(page_size=page_size, page_token=page_token),
            timeout=10,
        )
    )
    event(f"{error.code().name} {field_violations(error)}" if error else "listed")
    if error is None:
        assert page_size >= 0
        return
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field_violations(error) == ["page_size" if page_size < 0 else "page_token"]


@SERVED
@given(
    existing=st.booleans(),
    spell=spellings,
    other=st.uuids(),
    text=st.text(max_size=40),
    written=st.sampled_from(["spelled", "spelled", "text"]),
    after_sequence=st.one_of(st.integers(-2, 3), INT64),
)
def test_order_ids_are_found_not_found_or_named(
    services: Services,
    existing: bool,
    spell: Callable[[str], str],
    other: uuid.UUID,
    text: str,
    written: str,
    after_sequence: int,
) -> None:
    """An order of the caller's (made for the case) or another id, in any
    spelling or none; Get, Cancel, then Watch it."""
    stub = services.orders()
    target = str(other)
    if existing:
        target = stub.SubmitOrder(
            order_service_pb2.SubmitOrderRequest(
                input_token="SOL", output_token="USDC", amount="1"
            ),
            timeout=10,
        ).order.order_id
    order_id = spell(target) if written == "spelled" else text
    calls = {
        "GetOrder": lambda: stub.GetOrder(
            order_service_pb2.GetOrderRequest(order_id=order_id), timeout=10
        ),
        "CancelOrder": lambda: stub.CancelOrder(
            order_service_pb2.CancelOrderRequest(order_id=order_id), timeout=10
        ),
        # After the cancel, the stream has its end: it cannot hang.
        "WatchOrder": lambda: stub.WatchOrder(
            order_service_pb2.WatchOrderRequest(order_id=order_id, after_sequence=after_sequence),
            timeout=10,
        ),
    }
    for name, call in calls.items():
        error = refused(call)
        if name == "WatchOrder" and after_sequence < 0:
            expected: list[str] | None = ["after_sequence"]
        else:
            expected = None if is_order_id(order_id) else ["order_id"]
        event(f"{name} {error.code().name if error else 'OK'}")
        if expected:
            assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert field_violations(error) == expected, name
        elif existing and str(uuid.UUID(order_id)) == target:
            assert error is None, (name, error.details() if error else "")
        else:
            assert error is not None and error.code() == grpc.StatusCode.NOT_FOUND, name


# -- the state machine, through the store's compare-and-set --------------------


@dataclass
class Modelled:
    """An order as the state machine says it must be."""

    history: list[Status] = field(default_factory=lambda: [Status.PENDING])
    attempt: int = 1

    @property
    def status(self) -> Status:
        return self.history[-1]

    def apply(self, target: Status, next_attempt: bool, attempt: int | None) -> bool:
        if target not in TRANSITIONS[self.status] or attempt not in (None, self.attempt):
            return False
        self.history.append(target)
        self.attempt += next_attempt
        return True


STATUSES = st.sampled_from(list(Status))
# Orders under way at once: few, so that each goes a long way.
MACHINE_ORDERS = 3
ENDINGS = frozenset({Status.FAILED, Status.CANCELLED})


class OrderLifecycle(RuleBasedStateMachine):
    """Random status changes, one at a time or several in one transaction,
    to a few orders: the store must do exactly what the state machine allows
    and record each change as the next event.

    Statuses are drawn half the time from the order's way forward, else from
    all it may take now or from those it may not; attempts mostly the
    order's own. Only legal changes would never test a refusal;
    only random ones would rarely get an order past ROUTING."""

    def __init__(self, store: OrderStore) -> None:
        super().__init__()
        self.store = store
        self.model: dict[str, Modelled] = {}

    # In the order they were made: their ids are random, and what is drawn
    # must not depend on them.
    def _under_way(self) -> list[str]:
        return [i for i, m in self.model.items() if m.status not in TERMINAL]

    def _order(self, data: st.DataObject) -> str:
        under_way = self._under_way()
        everyone = st.sampled_from(list(self.model))
        if not under_way:
            return data.draw(everyone)
        return data.draw(
            st.one_of(st.sampled_from(under_way), st.sampled_from(under_way), everyone)
        )

    def _status(self, data: st.DataObject, now: Status) -> Status:
        legal = sorted(TRANSITIONS[now])
        forward = [s for s in legal if s not in ENDINGS]
        illegal = [s for s in Status if s not in TRANSITIONS[now]]
        return data.draw(
            st.one_of(
                *(
                    st.sampled_from(options)
                    for options in (forward, forward, legal, illegal)
                    if options
                )
            )
        )

    def _attempt(self, data: st.DataObject, own: int) -> int | None:
        return data.draw(st.sampled_from([own, own, own, None, own - 1, own + 1]))

    @precondition(lambda self: len(self._under_way()) < MACHINE_ORDERS)
    @rule()
    def submit(self) -> None:
        row, event = self.store.submit(
            NewOrder(
                owner="machine",
                input_token="SOL",
                output_token="USDC",
                amount_in=10**9,
                slippage_bps=50,
            )
        )
        assert event is not None and event.sequence == 1
        self.model[row.order_id] = Modelled()

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), next_attempt=st.booleans())
    def change(self, data: st.DataObject, next_attempt: bool) -> None:
        order_id = self._order(data)
        modelled = self.model[order_id]
        status = self._status(data, modelled.status)
        attempt = self._attempt(data, modelled.attempt)
        result = self.store.transition(
            order_id,
            status,
            Change(reason="fuzz", reason_code=Reason.UNKNOWN, next_attempt=next_attempt),
            attempt=attempt,
        )
        self._check(order_id, status, next_attempt, attempt, result)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), size=st.integers(1, 5))
    def change_many(self, data: st.DataObject, size: int) -> None:
        """Several changes in one transaction, to several orders or the same
        one again (each drawn as if the changes before it were made)."""
        batch: list[tuple[str, Status, bool, int | None]] = []
        after = {i: Modelled(list(m.history), m.attempt) for i, m in self.model.items()}
        for _ in range(size):
            order_id = self._order(data)
            status = self._status(data, after[order_id].status)
            again, attempt = data.draw(st.booleans()), self._attempt(data, after[order_id].attempt)
            after[order_id].apply(status, again, attempt)
            batch.append((order_id, status, again, attempt))
        results = self.store.transition_many(
            [
                Transition(order_id, status, Change(next_attempt=again), attempt)
                for order_id, status, again, attempt in batch
            ]
        )
        for (order_id, status, again, attempt), result in zip(batch, results, strict=True):
            self._check(order_id, status, again, attempt, result)

    def _check(
        self, order_id: str, target: Status, next_attempt: bool, attempt: int | None, result: Any
    ) -> None:
        modelled = self.model[order_id]
        was = modelled.status
        allowed = modelled.apply(target, next_attempt, attempt)
        if not allowed:
            assert result is None, f"{was} -> {target} (attempt {attempt}) was not refused"
            return
        assert result is not None, f"{was} -> {target} (attempt {attempt}) was refused"
        row, event = result
        assert Status(row.status) is target and row.attempt == modelled.attempt
        assert event.sequence == row.last_sequence == len(modelled.history)
        assert Status.from_proto(event.status) is target
        if target in TERMINAL:
            # Final: every status, for its attempt or any, in one transaction.
            tries = [
                Transition(order_id, s, NO_CHANGE, attempt)
                for s in Status
                for attempt in (None, modelled.attempt)
            ]
            assert self.store.transition_many(tries) == [None] * len(tries), target

    @invariant()
    def stored_as_modelled_with_gap_free_events(self) -> None:
        if not self.model:
            return
        # Two queries for every order, not two per order: this runs each step.
        rows = self.store.get_many(list(self.model))
        with self.store.engine.connect() as connection:
            stored = connection.execute(
                select(EventRow.order_id, EventRow.sequence, EventRow.status)
                .where(EventRow.order_id.in_(list(self.model)))
                .order_by(EventRow.order_id, EventRow.sequence)
            ).all()
        for order_id, modelled in self.model.items():
            row = rows[order_id]
            assert Status(row.status) is modelled.status
            assert row.attempt == modelled.attempt
            events = [e for e in stored if e.order_id == order_id]
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
            assert row.last_sequence == len(events)
            path = [Status(e.status) for e in events]
            assert path == modelled.history
            assert all(is_legal(a, b) for a, b in pairwise(path))
            assert not any(s in TERMINAL for s in path[:-1]), "a terminal status moved on"


MACHINE = settings(
    max_examples=25,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_no_sequence_of_changes_leads_to_an_illegal_state(store: OrderStore) -> None:
    class OnThisStore(OrderLifecycle):
        def __init__(self) -> None:
            super().__init__(store)

    run_state_machine_as_test(OnThisStore, settings=MACHINE)


@settings(PURE, max_examples=20, suppress_health_check=WITH_FIXTURES)
@given(targets=st.lists(STATUSES, min_size=2, max_size=4))
def test_racing_changes_to_one_order_let_at_most_one_through(
    store: OrderStore, targets: list[Status]
) -> None:
    """Threads that change one PENDING order at once: the first legal change
    wins, every other one that is no longer legal after it is refused."""
    row, _ = store.submit(
        NewOrder(
            owner="racer", input_token="SOL", output_token="USDC", amount_in=1, slippage_bps=50
        )
    )
    start = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)

    def race(i: int) -> None:
        start.wait()
        results[i] = store.transition(row.order_id, targets[i], attempt=1)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    events = store.events(row.order_id)
    path = [Status.from_proto(e.status) for e in events]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert all(is_legal(a, b) for a, b in pairwise(path))
    assert len(path) - 1 == sum(result is not None for result in results)
    stored = store.get(row.order_id)
    assert stored is not None and Status(stored.status) is path[-1]
