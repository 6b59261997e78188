"""Random and malformed bytes as request messages, through raw channels, to
every method of the three real servers (in-process, on free ports): each
answer is a reply or a deliberate error, never INTERNAL or UNKNOWN; what does
not parse is INVALID_ARGUMENT; and every server still serves a normal call
afterwards. Plus routes built from the real pools at random, submitted to
the chain and asked after."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orderengine.market.pools import all_pools
from orderengine.mesh.request_decoding import MALFORMED_REQUEST
from orderengine.tokens import TOKENS
from orderengine.v1 import (
    execution_service_pb2,
    execution_service_pb2_grpc,
    market_pb2,
    order_service_pb2,
    quote_service_pb2,
)
from tests.conftest import OWNER, Services
from tests.helpers import details, item_error_of

# Seeded, no example database, and the fixtures' servers serve every example.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# What a server must never answer: it failed, rather than refused.
FAILED = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
CALL_SECONDS = 5


@dataclass(frozen=True)
class Method:
    server: str  # the Services name: order, quote, execution
    path: str  # /orderengine.v1.OrderService/SubmitOrder
    streams: bool
    # A well-formed request, for mutation and for the call that must still work.
    example: bytes
    # The numbers of the fields down to a string field of the request (bad
    # UTF-8 goes there): one for a string of its own, more for a batch's,
    # in the first of its requests.
    text_path: tuple[int, ...]


def _methods() -> list[Method]:
    examples: dict[str, Any] = {
        "SubmitOrder": order_service_pb2.SubmitOrderRequest(
            input_token="SOL",
            output_token="USDC",
            amount="1.5",
            slippage_bps=50,
            client_order_id="fuzz",
        ),
        "GetOrder": order_service_pb2.GetOrderRequest(
            order_id="9b2f3a4e-0c1d-4e5f-8a9b-0c1d2e3f4a5b"
        ),
        "ListOrders": order_service_pb2.ListOrdersRequest(page_size=5),
        "CancelOrder": order_service_pb2.CancelOrderRequest(
            order_id="9b2f3a4e-0c1d-4e5f-8a9b-0c1d2e3f4a5b"
        ),
        "WatchOrder": order_service_pb2.WatchOrderRequest(
            order_id="9b2f3a4e-0c1d-4e5f-8a9b-0c1d2e3f4a5b", after_sequence=1
        ),
        "QuoteOrder": order_service_pb2.QuoteOrderRequest(
            input_token="SOL", output_token="USDC", amount="2"
        ),
        "GetQuote": quote_service_pb2.GetQuoteRequest(
            input_token="USDC", output_token="SOL", amount="100", slippage_bps=50
        ),
        "SubmitSwap": execution_service_pb2.SubmitSwapRequest(
            attempt_key="fuzz:1",
            owner=OWNER,
            route=market_pb2.Route(
                legs=[
                    market_pb2.RouteLeg(
                        venue=market_pb2.VENUE_METEORA,
                        pool_id="meteora-sol-usdc",
                        input_token="USDC",
                        output_token="SOL",
                        share_bps=10_000,
                    )
                ],
                input_token="USDC",
                output_token="SOL",
                amount_in="10",
            ),
        ),
        "GetSignatureStatuses": execution_service_pb2.GetSignatureStatusesRequest(
            signatures=["1" * 88]
        ),
        "GetBalances": order_service_pb2.GetBalancesRequest(tokens=["SOL"]),
        "RequestAirdrop": order_service_pb2.RequestAirdropRequest(
            token="USDC", amount="1", request_id="fuzz"
        ),
        "GetWallets": execution_service_pb2.GetWalletsRequest(owners=["fuzz"]),
        "FundWallet": execution_service_pb2.FundWalletRequest(
            owner="fuzz", token="SOL", amount="0.5", request_id="fuzz"
        ),
    }
    # A batch: the unary examples, and one of each a bad item.
    examples["BatchGetQuotes"] = quote_service_pb2.BatchGetQuotesRequest(
        requests=[
            examples["GetQuote"],
            quote_service_pb2.GetQuoteRequest(input_token="SOL", output_token="SOL", amount="1"),
        ]
    )
    examples["BatchSubmitSwaps"] = execution_service_pb2.BatchSubmitSwapsRequest(
        requests=[
            examples["SubmitSwap"],
            execution_service_pb2.SubmitSwapRequest(attempt_key="fuzz:2"),
        ]
    )
    examples["BatchSubmitOrders"] = order_service_pb2.BatchSubmitOrdersRequest(
        requests=[
            examples["SubmitOrder"],
            order_service_pb2.SubmitOrderRequest(input_token="SOL", output_token="SOL", amount="1"),
        ]
    )
    services = [
        ("order", order_service_pb2, "OrderService"),
        ("quote", quote_service_pb2, "QuoteService"),
        ("execution", execution_service_pb2, "ExecutionService"),
    ]
    found = []
    for server, module, name in services:
        service = module.DESCRIPTOR.services_by_name[name]
        for method in service.methods:
            found.append(
                Method(
                    server,
                    f"/{service.full_name}/{method.name}",
                    method.server_streaming,
                    examples[method.name].SerializeToString(),
                    _text_path(method.input_type),
                )
            )
    return found


def _text_path(message: Descriptor) -> tuple[int, ...]:
    """The field numbers to the first string field of ``message``, through
    its message fields (a batch's requests) when it has none of its own."""
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return (field.number,)
    for field in message.fields:
        if field.message_type is not None:
            with contextlib.suppress(LookupError):
                return (field.number, *_text_path(field.message_type))
    raise LookupError(f"{message.full_name} holds no string field")


METHODS = _methods()
BY_NAME = {m.path.rsplit("/", 1)[1]: m for m in METHODS}


class Caller:
    """Raw bytes to any method, as each server's legitimate client (the API
    key for OrderService, the internal token for the others)."""

    def __init__(self, services: Services) -> None:
        self.channels = {name: services.channel(name) for name in ("order", "quote", "execution")}
        self.calls = 0

    def call(
        self, method: Method, request: bytes, channel: grpc.Channel | None = None
    ) -> grpc.RpcError | None:
        """The error the call ended with, or None for a reply."""
        self.calls += 1
        target = channel or self.channels[method.server]
        try:
            # No serializers: the bytes go out as they are.
            if method.streams:
                for _ in target.unary_stream(method.path, None, None)(
                    request, timeout=CALL_SECONDS
                ):
                    pass
            else:
                target.unary_unary(method.path, None, None)(request, timeout=CALL_SECONDS)
        except grpc.RpcError as exc:
            return exc
        return None


@pytest.fixture
def caller(services: Services) -> Iterator[Caller]:
    made = Caller(services)
    yield made
    # The servers took it all and still serve: a normal call to each method...
    for method in METHODS:
        error = made.call(method, method.example)
        assert error is None or error.code() not in FAILED | {
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        }, (method.path, error.code(), details(error))
    # ...and each reports SERVING.
    for name in ("order", "quote", "execution"):
        health = health_pb2_grpc.HealthStub(services.bare_channel(name))
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_SECONDS)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


def assert_deliberate(method: Method, error: grpc.RpcError | None) -> None:
    if error is not None:
        assert error.code() not in FAILED, (method.path, error.code(), details(error))


def outcome(method: Method, error: grpc.RpcError | None) -> str:
    """For hypothesis's statistics: which method answered what."""
    return f"{method.path.rsplit('/', 1)[1]}: {error.code().name if error else 'OK'}"


# -- hand-picked malformed messages -------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers as protobuf writes them: ten bytes
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def in_text_field(raw: bytes) -> Callable[[Method], bytes]:
    def encoded(method: Method) -> bytes:
        data = raw
        for number in reversed(method.text_path):
            data = key(number, 2) + varint(len(data)) + data
        return data

    return encoded


# Bytes no request of the engine parses (some written for the method's own fields).
UNDECODABLE: dict[str, Callable[[Method], bytes]] = {
    "truncated varint": lambda _: key(1, 0) + b"\xff",
    "varint longer than ten bytes": lambda _: key(1, 0) + b"\xff" * 11 + b"\x01",
    "length past the end": lambda _: key(1, 2) + varint(5) + b"ab",
    "huge length prefix": lambda _: key(1, 2) + varint(2**32 - 1),
    "negative length prefix": lambda _: key(1, 2) + varint(-1),
    "invalid UTF-8 in a string": in_text_field(b"\xc3\x28"),
    "overlong UTF-8 encoding": in_text_field(b"\xc0\xaf"),
    "UTF-16 surrogate in UTF-8": in_text_field(b"\xed\xa0\x80"),
    "field number 0": lambda _: key(0, 0) + b"\x01",
    "wire type 6": lambda _: key(1, 6),
    "wire type 7": lambda _: key(2, 7),
    "unterminated group": lambda _: key(1, 3),
    "unmatched end group": lambda _: key(1, 4),
    "groups nested past the parser's limit": lambda _: key(50, 3) * 200 + key(50, 4) * 200,
    "truncated fixed64": lambda _: key(9, 1) + b"\x01\x02",
}
# Bytes that parse, though no client would send them.
ODD_BUT_DECODABLE = {
    "empty": b"",
    "wrong wire type for a string (varint)": key(1, 0) + b"\x01",
    "wrong wire type for a string (fixed32)": key(1, 5) + b"\x00\x00\x00\x00",
    "unknown field": key(99, 2) + varint(3) + b"abc",
    "highest field number": key(2**29 - 1, 0) + b"\x01",
    "reserved field number": key(19_000, 0) + b"\x01",
    "negative int32 / int64 / enum": key(1, 0) + varint(-1) + key(2, 0) + varint(-(2**63)),
    "uint32 past 32 bits": key(4, 0) + varint(2**64 - 1),
    "a field repeated, last wins": key(1, 2) + varint(3) + b"SOL" + key(1, 2) + varint(3) + b"JUP",
    "NUL bytes in strings": key(1, 2) + varint(3) + b"S\x00L" + key(2, 2) + varint(1) + b"\x00",
    "a nested message with a negative enum": key(2, 2)
    + varint(4)
    + key(1, 2)
    + varint(2)
    + key(1, 0)
    + b"\x7f",
    "unknown groups, nested and closed": key(50, 3) * 20 + key(50, 4) * 20,
}


@pytest.mark.parametrize("name", sorted(UNDECODABLE))
def test_bytes_that_do_not_parse_are_invalid_argument_on_every_method(
    caller: Caller, name: str
) -> None:
    for method in METHODS:
        error = caller.call(method, UNDECODABLE[name](method))
        assert error is not None, method.path
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (
            method.path,
            error.code(),
            details(error),
        )
        assert "malformed request" in details(error)
        assert _reason(error) == MALFORMED_REQUEST


@pytest.mark.parametrize("name", sorted(ODD_BUT_DECODABLE))
def test_odd_but_parseable_bytes_get_a_reply_or_a_deliberate_error(
    caller: Caller, name: str
) -> None:
    for method in METHODS:
        assert_deliberate(method, caller.call(method, ODD_BUT_DECODABLE[name]))


def test_a_message_past_the_size_limit_is_resource_exhausted(caller: Caller) -> None:
    error = caller.call(BY_NAME["SubmitOrder"], key(5, 2) + varint(5 * 2**20) + b"x" * (5 * 2**20))
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_garbage_from_a_caller_without_credentials_is_unauthenticated_first(
    services: Services, caller: Caller
) -> None:
    """The access check runs before the request is even decoded."""
    for method in METHODS:
        bare = services.bare_channel(method.server)
        error = caller.call(method, UNDECODABLE["truncated varint"](method), channel=bare)
        assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED, (
            method.path,
            error.code() if error else None,
        )


def _reason(error: grpc.RpcError) -> str | None:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None


# -- generated bytes ------------------------------------------------------------

methods = st.sampled_from(METHODS)


@settings(FUZZ, max_examples=300)
@given(method=methods, request=st.binary(max_size=256))
def test_random_bytes_get_a_reply_or_a_deliberate_error(
    caller: Caller, method: Method, request: bytes
) -> None:
    error = caller.call(method, request)
    event(outcome(method, error))
    assert_deliberate(method, error)


Edit = tuple[int, int, int]  # (kind, position, byte): 0 flip, 1 insert, 2 delete, 3 cut


def mutated(example: bytes, edits: list[Edit]) -> bytes:
    data = bytearray(example)
    for kind, position, byte in edits:
        at = position % (len(data) + 1)
        if kind == 0 and data:
            data[at % len(data)] ^= byte or 1
        elif kind == 1:
            data.insert(at, byte)
        elif kind == 2 and data:
            del data[at % len(data)]
        elif kind == 3:
            del data[at:]
    return bytes(data)


edits = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1024), st.integers(0, 255)), min_size=1, max_size=4
)


@settings(FUZZ, max_examples=300)
@given(method=methods, changes=edits)
def test_good_requests_with_bytes_flipped_inserted_or_cut_get_a_deliberate_answer(
    caller: Caller, method: Method, changes: list[Edit]
) -> None:
    """Mutations of a well-formed request mostly still parse: they reach the
    handlers with fields no client would send."""
    error = caller.call(method, mutated(method.example, changes))
    event(outcome(method, error))
    assert_deliberate(method, error)


# -- routes from the real pools, to the chain -----------------------------------

POOLS = sorted(all_pools().values(), key=lambda p: p.id)
SYMBOLS = sorted(TOKENS)


@st.composite
def routes(draw: st.DrawFn) -> market_pb2.Route:
    """Legs over real pools in real directions, chained or not; amounts and
    shares anything from plausible to absurd."""
    legs = []
    for _ in range(draw(st.integers(1, 4))):
        pool = draw(st.sampled_from(POOLS))
        forward = draw(st.booleans())
        legs.append(
            market_pb2.RouteLeg(
                venue=cast("market_pb2.Venue", draw(st.sampled_from([0, 1, 2, -1, 99]))),
                pool_id=pool.id,
                input_token=pool.token_a if forward else pool.token_b,
                output_token=pool.token_b if forward else pool.token_a,
                share_bps=draw(st.one_of(st.integers(0, 10_001), st.just(10_000))),
            )
        )
    amount = draw(
        st.one_of(
            st.integers(1, 10**6).map(str),
            st.sampled_from(
                [
                    "0.000001",
                    "9223372036",
                    "9223372036854775807",
                    "18446744073709551615",
                    "18446744073709551616",
                    "0",
                    "-1",
                    "1e3",
                    "",
                ]
            ),
        )
    )
    return market_pb2.Route(
        legs=legs,
        input_token=draw(st.one_of(st.just(legs[0].input_token), st.sampled_from(SYMBOLS))),
        output_token=draw(st.one_of(st.just(legs[-1].output_token), st.sampled_from(SYMBOLS))),
        amount_in=amount,
        min_amount_out=draw(st.sampled_from(["", "0.000001", "1", "99999999999"])),
    )


@settings(FUZZ, max_examples=60)
@given(route=routes(), attempt=st.integers(1, 10**6))
def test_any_route_over_real_pools_is_taken_or_refused_and_its_status_always_answers(
    caller: Caller, route: market_pb2.Route, attempt: int
) -> None:
    submit = BY_NAME["SubmitSwap"]
    statuses = BY_NAME["GetSignatureStatuses"]
    request = execution_service_pb2.SubmitSwapRequest(
        attempt_key=f"fuzz-route:{attempt}", route=route, owner=OWNER
    )
    channel = caller.channels["execution"]
    try:
        reply = channel.unary_unary(
            submit.path,
            request_serializer=_serialize,
            response_deserializer=execution_service_pb2.SubmitSwapResponse.FromString,
        )(request, timeout=CALL_SECONDS)
    except grpc.RpcError as exc:
        event(f"SubmitSwap: {exc.code().name}")
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), details(exc))
        return
    event("SubmitSwap: taken")
    # The slot is 0 in tests: asking lands it, whatever the route does to the pools.
    answer = channel.unary_unary(
        statuses.path,
        request_serializer=_serialize,
        response_deserializer=execution_service_pb2.GetSignatureStatusesResponse.FromString,
    )(
        execution_service_pb2.GetSignatureStatusesRequest(signatures=[reply.signature]),
        timeout=CALL_SECONDS,
    )
    (status,) = answer.statuses
    event(f"landed: {status.error_code or 'OK'}")
    assert status.found and status.commitment != execution_service_pb2.COMMITMENT_PENDING


@settings(FUZZ, max_examples=30)
@given(items=st.lists(st.tuples(routes(), st.integers(1, 3)), min_size=1, max_size=5))
def test_any_batch_of_routes_answers_each_as_submit_swap_would(
    caller: Caller, items: list[tuple[market_pb2.Route, int]]
) -> None:
    """Routes in one BatchSubmitSwaps, attempt keys repeating at times: each
    item is taken, a duplicate of an earlier one, or refused as SubmitSwap
    refuses it; and each signature answers its status."""
    batch = BY_NAME["BatchSubmitSwaps"]
    prefix = uuid.uuid4().hex
    requests = [
        execution_service_pb2.SubmitSwapRequest(
            attempt_key=f"{prefix}:{n}", route=route, owner=OWNER
        )
        for route, n in items
    ]
    chain = execution_service_pb2_grpc.ExecutionServiceStub(caller.channels["execution"])
    results = (
        caller.channels["execution"]
        .unary_unary(
            batch.path,
            request_serializer=_serialize,
            response_deserializer=execution_service_pb2.BatchSubmitSwapsResponse.FromString,
        )(execution_service_pb2.BatchSubmitSwapsRequest(requests=requests), timeout=CALL_SECONDS)
        .results
    )
    assert len(results) == len(requests)
    taken: set[str] = set()
    for request, result in zip(requests, results, strict=True):
        if result.WhichOneof("result") == "error":
            event(f"BatchSubmitSwaps item: {result.error.reason}")
            assert (result.error.code, result.error.field) == (code_pb2.INVALID_ARGUMENT, "route")
            with pytest.raises(grpc.RpcError) as unary:
                chain.SubmitSwap(request, timeout=CALL_SECONDS)
            assert result.error == item_error_of(unary.value)
            continue
        answer = result.response
        event(f"BatchSubmitSwaps item: {'duplicate' if answer.duplicate else 'taken'}")
        assert answer.duplicate == (request.attempt_key in taken)
        taken.add(request.attempt_key)
        again = chain.SubmitSwap(request, timeout=CALL_SECONDS)
        assert (again.signature, again.duplicate) == (answer.signature, True)
    signatures = sorted({r.response.signature for r in results if r.HasField("response")})
    statuses = chain.GetSignatureStatuses(
        execution_service_pb2.GetSignatureStatusesRequest(signatures=signatures),
        timeout=CALL_SECONDS,
    ).statuses
    assert all(
        s.found and s.commitment != execution_service_pb2.COMMITMENT_PENDING for s in statuses
    )


_serialize: Callable[[Any], bytes] = lambda message: message.SerializeToString()  # noqa: E731
