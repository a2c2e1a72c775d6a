"""The HTTP listeners' connections: Matrix errors for requests aiohttp cannot
parse, limits on a request's head, and deadlines for slow clients.

aiohttp answers a request its parser refuses (a request line or header over
the limit, too many headers, an unknown method, broken body framing) itself,
in plain text, before any middleware runs; and it waits as long as a client
likes for the rest of a request's headers or body. aiohttp has no option for
either (aio-libs/aiohttp#3287), so each listener accepts its connections with
`MatrixRequestHandler`, aiohttp's connection protocol with its error hook
(`handle_error`) answering in Matrix JSON and two timers of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    HttpProcessingError,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from homeserver.api.http import CORS_HEADERS, json_response
from homeserver.config import HttpConfig

logger = logging.getLogger(__name__)

# The parser names the line that was too long, not whether it was the request
# line: a request target (after the method, with the pure-Python parser) starts
# with "/" or a scheme, a header name never does.
_REQUEST_TARGET = re.compile(rb"^(?:[A-Z]+ )?(?:/|https?:)", re.IGNORECASE)
# Parser errors about how the body is delimited (llhttp's reasons and aiohttp's).
_FRAMING = re.compile(r"content-length|transfer-encoding|chunk", re.IGNORECASE)


def parse_error(exc: BaseException | None, max_url_bytes: int) -> tuple[int, str, str]:
    """(status, errcode, message) for a request aiohttp's parser refused."""
    if isinstance(exc, LineTooLong):
        line, limit = exc.args[0], exc.args[1]
        if limit == max_url_bytes and _REQUEST_TARGET.match(bytes(line)):
            return 414, "M_TOO_LARGE", "Request URI too long"
        return 431, "M_TOO_LARGE", "Request header too large"
    message = exc.message if isinstance(exc, HttpProcessingError) else ""
    if "too many headers" in message.lower():
        return 431, "M_TOO_LARGE", "Too many request headers"
    if isinstance(exc, BadHttpMethod):
        return 400, "M_UNRECOGNIZED", "Unrecognized request method"
    if isinstance(exc, PayloadEncodingError) or _FRAMING.search(message):
        return 400, "M_NOT_JSON", "The request body is not framed correctly"
    return 400, "M_UNRECOGNIZED", "Malformed HTTP request"


def timeout_reply(message: str) -> bytes:
    """A whole 408 response, written by a connection outside any request."""
    body = json.dumps({"errcode": "M_UNKNOWN", "error": message}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class MatrixRequestHandler(RequestHandler):
    """aiohttp's connection protocol, answering parse errors in Matrix JSON
    and closing the connection of a client too slow to send its request.

    Two deadlines: the headers must be complete `header_timeout_s` after the
    first byte of a request; a body `body_timeout_s` after the headers, plus a
    second per `body_min_rate_bytes` received. A connection sending nothing
    between requests is closed after `idle_timeout_s` (aiohttp's keep-alive).
    """

    def __init__(self, manager: web.Server, *, limits: HttpConfig, **kwargs: Any) -> None:
        super().__init__(
            manager,
            keepalive_timeout=limits.idle_timeout_s,
            max_line_size=limits.max_url_bytes,
            max_field_size=limits.max_header_bytes,
            max_headers=limits.max_headers,
            # The middleware logs every request; aiohttp's access log would repeat it.
            access_log=None,
            **kwargs,
        )
        self._limits = limits
        self._in_request = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None
        self._body_request: web.BaseRequest | None = None
        self._body_started = 0.0
        self._body_received = 0
        self._body_timer: asyncio.TimerHandle | None = None

    # Requests: the server's request factory calls this once a request's head is parsed.

    def head_complete(self, request: web.BaseRequest, payload: StreamReader) -> None:
        self._in_request = True
        self._cancel_head_timer()
        if not payload.is_eof():
            self._body, self._body_request = payload, request
            self._body_started = asyncio.get_running_loop().time()
            self._body_received = 0
            self._schedule_body_check(self._body_started + self._limits.body_timeout_s)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            answered = await super().finish_response(request, resp, start_time)
        finally:
            self._in_request = False
        if request.content.exception() is not None:
            # The body could not be read (bad gzip, say): aiohttp would go on
            # reading it to drain the connection, and log the same error again.
            self.force_close()
        return answered

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._body is not None:
            self._body_received += len(data)
            if self._body.is_eof():
                self._end_body()
        elif data and not self._in_request and self._head_timer is None and self.transport:
            loop = asyncio.get_running_loop()
            self._head_timer = loop.call_later(self._limits.header_timeout_s, self._head_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        self._end_body()
        super().connection_lost(exc)

    # Deadlines.

    def _head_late(self) -> None:
        self._head_timer = None
        if self._in_request:
            return
        self._give_up(
            f"request headers not complete after {self._limits.header_timeout_s:g} s",
            may_answer=True,
        )

    def _schedule_body_check(self, when: float) -> None:
        self._body_timer = asyncio.get_running_loop().call_at(when, self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        body, request = self._body, self._body_request
        if body is None or body.is_eof():
            self._end_body()
            return
        limits = self._limits
        allowed = limits.body_timeout_s + self._body_received / limits.body_min_rate_bytes
        deadline = self._body_started + allowed
        if asyncio.get_running_loop().time() < deadline:
            self._schedule_body_check(deadline)
            return
        self._end_body()
        answered = request is not None and request.writer.output_size > 0
        self._give_up(f"request body not complete after {allowed:.0f} s", may_answer=not answered)

    def _give_up(self, reason: str, *, may_answer: bool) -> None:
        """Close a slow client's connection, with a 408 if no response has begun."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        logger.info("closing connection from %s: %s", self._peer(), reason)
        if may_answer:
            transport.write(timeout_reply(reason))
        # force_close closes the transport once the 408 is written, and wakes a
        # handler waiting for the body with a connection error (a disconnect).
        self.force_close()

    def _end_body(self) -> None:
        self._body = self._body_request = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _peer(self) -> str:
        peer = self.peername
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)

    # aiohttp's answer to requests it could not parse, and to failures outside the middleware.

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already started; the connection is broken")
        if status == 400:
            status, errcode, error = parse_error(exc, self._limits.max_url_bytes)
            detail = (message or "")[:200]
            logger.info("%s bad HTTP request, %d %s: %r", self._peer(), status, errcode, detail)
        else:
            logger.error("request from %s failed", self._peer(), exc_info=exc)
            errcode, error = "M_UNKNOWN", "Internal server error"
        response = json_response(status, {"errcode": errcode, "error": error})
        response.headers.update(CORS_HEADERS)
        response.force_close()
        return response


class Listener:
    """One listening socket serving an app with `MatrixRequestHandler`."""

    def __init__(self, server: asyncio.AbstractServer) -> None:
        self._server = server

    @classmethod
    async def start(
        cls,
        runner: web.AppRunner,
        host: str,
        port: int,
        limits: HttpConfig,
        tls: ssl.SSLContext | None = None,
    ) -> Listener:
        """Listen on host:port for `runner`'s app (after `runner.setup()`)."""
        server = runner.server
        assert server is not None, "runner.setup() first"
        make_request = server.request_factory

        def request_factory(
            message: Any,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: Any,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            request = make_request(message, payload, protocol, writer, task)
            if isinstance(protocol, MatrixRequestHandler):
                protocol.head_complete(request, payload)
            return request

        server.request_factory = request_factory
        loop = asyncio.get_running_loop()
        sockets = await loop.create_server(
            lambda: MatrixRequestHandler(server, limits=limits, loop=loop),
            host,
            port,
            ssl=tls,
        )
        return cls(sockets)

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop accepting connections (the runner's cleanup then ends the open ones)."""
        self._server.close()
