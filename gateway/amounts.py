"""Money never passes through a float: JSON numbers in request bodies are
parsed as Decimal and written as the decimal string the engine expects, so
``"amount": 0.1`` is "0.1" and a 20-digit amount keeps every digit."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

# No amount of any token has this many digits. A JSON number that would
# expand to more is refused as it stands: "1e999999999" is 30 bytes of body
# and a gigabyte of zeros once written out.
MAX_DIGITS = 64


def _no_constants(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser takes them.
    raise json.JSONDecodeError(f"{name} is not a number", name, 0)


def loads(body: bytes) -> Any:
    try:
        parsed = json.loads(
            body, parse_float=Decimal, parse_int=_integer, parse_constant=_no_constants
        )
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 text ({exc.reason})", "", exc.start) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
    _refuse_lone_surrogates(parsed)
    return parsed


def _refuse_lone_surrogates(parsed: Any) -> None:
    """JSON may escape half a UTF-16 pair ("\\ud800"), which Python keeps in
    its str but no UTF-8 (and so no protobuf string) can hold: the call to
    OrderService would fail on the gateway's side, a 500."""
    pending = [parsed]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                raise json.JSONDecodeError(
                    "a \\u escape names a lone UTF-16 surrogate", "", 0
                ) from None
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def _integer(text: str) -> int | Decimal:
    # Past 4,300 digits int() raises and FastAPI answers an unnamed 400; as a
    # Decimal it meets the field's own check, which names the field.
    return int(text) if len(text) <= MAX_DIGITS else Decimal(text)


def decimal_string(value: object) -> object:
    """A JSON number as its decimal string; a string is left to the engine,
    which knows each token's decimals."""
    if isinstance(value, bool):  # bool is an int to Python, not to a client
        raise PydanticCustomError("amount_type", "must be a decimal string or a number")
    if isinstance(value, float):  # a caller that parsed JSON itself
        value = Decimal(repr(value))
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, Decimal):
        _, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int) or len(digits) + abs(exponent) > MAX_DIGITS:
            raise PydanticCustomError(
                "amount_size",
                "must be a finite number of at most {max_digits} digits",
                {"max_digits": MAX_DIGITS},
            )
        return format(value, "f")  # 1E-7 -> 0.0000001
    if not isinstance(value, str):
        raise PydanticCustomError("amount_type", "must be a decimal string or a number")
    return value


Amount = Annotated[
    str,
    BeforeValidator(decimal_string),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "number"}],
            "description": 'input amount in whole tokens: a decimal string ("10", "0.25") '
            "or a JSON number, read exactly",
            "examples": ["10"],
        }
    ),
]


class DecimalJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class DecimalJSONRoute(APIRoute):
    """A route whose JSON body is parsed with Decimal for non-integers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def decimal_handler(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return decimal_handler
