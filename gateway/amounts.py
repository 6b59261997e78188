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


def _no_constants(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser takes them.
    raise json.JSONDecodeError(f"{name} is not a number", name, 0)


def loads(body: bytes) -> Any:
    return json.loads(body, parse_float=Decimal, parse_constant=_no_constants)


def decimal_string(value: object) -> object:
    """A JSON number as its decimal string; a string is left to the engine,
    which knows each token's decimals."""
    if isinstance(value, bool):  # bool is an int to Python, not to a client
        raise PydanticCustomError("amount_type", "must be a decimal string or a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # 1E-7 -> 0.0000001
    if isinstance(value, float):  # a caller that parsed JSON itself
        return format(Decimal(repr(value)), "f")
    if not isinstance(value, str):
        raise PydanticCustomError("amount_type", "must be a decimal string or a number")
    return value


Amount = Annotated[
    str,
    BeforeValidator(decimal_string),
    WithJsonSchema({
        "anyOf": [{"type": "string"}, {"type": "number"}],
        "description": "input amount in whole tokens: a decimal string (\"10\", \"0.25\") "
                       "or a JSON number, read exactly",
        "examples": ["10"],
    }),
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
