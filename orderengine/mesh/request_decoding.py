"""Requests that are not the message they claim to be are bad input.

grpc.aio decodes a request before any handler runs and answers bytes that
do not parse (truncated varints, bad UTF-8 in a string field, a length past
the end) with UNKNOWN "Unexpected DecodeError", as if the server had failed.
So every server hands each handler's raw bytes to the call's one wrapper
(orderengine.mesh.wrapped_handlers), which decodes them: what does not parse
is INVALID_ARGUMENT, after the caller's key or token has been checked."""

from __future__ import annotations

MALFORMED_REQUEST = "MALFORMED_REQUEST"
# Quoted from the parser's error; enough to tell what broke.
MAX_DETAIL_CHARS = 200
