"""Requests aiohttp's HTTP parser refuses, and slow clients, on both listeners.

Sent over raw sockets, since no HTTP client library will write them: each
gets a Matrix JSON error with its status, nothing is logged as a server
error, and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import ssl
import time
from typing import Any
from urllib.parse import quote

import pytest

V3 = "/_matrix/client/v3"
FED_SEND = "/_matrix/federation/v1/send/txn1"


def tls_context() -> ssl.SSLContext:
    """The federation listener's certificate is self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def connect(hs: Any, listener: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if listener == "client":
        return await asyncio.open_connection("127.0.0.1", hs.server.client_port)
    return await asyncio.open_connection("127.0.0.1", hs.server.federation_port, ssl=tls_context())


def parse_response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    return status, headers, json.loads(body[:length]) if length and body else None


async def exchange(hs: Any, listener: str, *parts: bytes, pause: float = 0.0) -> bytes:
    """Send `parts` (with a pause between them) and read until the server closes."""
    reader, writer = await connect(hs, listener)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def head(target: bytes | str, *headers: bytes, method: bytes = b"GET") -> bytes:
    if isinstance(target, str):
        target = target.encode()
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: localhost", *headers]
    if not any(h.lower().startswith(b"connection:") for h in headers):
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def body_request(target: str, *headers: bytes, body: bytes = b"", method: bytes = b"POST") -> bytes:
    return head(target, *headers, method=method) + body


def hostile_requests(target: str, method: bytes) -> list[tuple[str, bytes, int, str]]:
    """(what, request, status, errcode) for requests the parser refuses, to an
    endpoint that reads a body with `method`."""
    return [
        ("URL over 8 KiB", head(target + "?x=" + "a" * 9000), 414, "M_TOO_LARGE"),
        ("header over 8 KiB", head(target, b"X-Big: " + b"b" * 9000), 431, "M_TOO_LARGE"),
        (
            "too many headers",
            head(target, *(b"X-H%d: 1" % i for i in range(150))),
            431,
            "M_TOO_LARGE",
        ),
        # llhttp refuses a method it does not know (400); aiohttp's pure-Python
        # parser (AIOHTTP_NO_EXTENSIONS) takes any token and the router answers 405.
        ("unknown method", head(target, method=b"BREW"), 400, "M_UNRECOGNIZED"),
        (
            "TLS on a plain port",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 4 + b"\r\n\r\n",
            400,
            "",
        ),
        (
            "Content-Length and Transfer-Encoding",
            body_request(
                target,
                b"Content-Length: 5",
                b"Transfer-Encoding: chunked",
                body=b"0\r\n\r\n",
                method=method,
            ),
            400,
            "M_NOT_JSON",
        ),
        (
            "Content-Length not a number",
            body_request(target, b"Content-Length: 12abc", method=method),
            400,
            "M_NOT_JSON",
        ),
        (
            "chunk size not hex",
            body_request(
                target, b"Transfer-Encoding: chunked", body=b"zz\r\n{}\r\n0\r\n\r\n", method=method
            ),
            400,
            "M_NOT_JSON",
        ),
        (
            "gzip body that is not gzip",
            body_request(
                target,
                b"Content-Encoding: gzip",
                b"Content-Length: 7",
                body=b"{nogzip",
                method=method,
            ),
            400,
            "M_NOT_JSON",
        ),
    ]


def no_server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("listener", ["client", "federation"])
async def test_requests_the_parser_refuses_get_matrix_errors(hs, caplog, listener):
    target, method = (f"{V3}/login", b"POST") if listener == "client" else (FED_SEND, b"PUT")
    for what, request, status, errcode in hostile_requests(target, method):
        if listener == "federation" and what == "TLS on a plain port":
            continue
        raw = await exchange(hs, listener, request)
        got_status, headers, body = parse_response(raw)
        assert got_status == status or (what, got_status) == ("unknown method", 405), (
            what,
            raw[:300],
        )
        assert headers["content-type"].startswith("application/json"), what
        assert set(body) == {"errcode", "error"}, what
        if errcode:
            assert body["errcode"] == errcode, what
        else:
            assert body["errcode"].startswith("M_"), what
    # Still serving, and nothing was a server error.
    status, _ = await hs.request("GET", "/_matrix/client/versions")
    assert status == 200
    assert no_server_errors(caplog) == []


async def test_a_gzip_body_is_read(hs):
    """The refusal above is of broken gzip, not of Content-Encoding itself."""
    body = gzip.compress(json.dumps(registration("gus")).encode())
    request = body_request(
        f"{V3}/register",
        b"Content-Encoding: gzip",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
        body=body,
    )
    status, _, answer = parse_response(await exchange(hs, "client", request))
    assert (status, answer["user_id"]) == (200, "@gus:localhost")


def registration(username: str, **extra: Any) -> dict[str, Any]:
    return {
        "username": username,
        "password": "secret",
        "auth": {"type": "m.login.dummy"},
        **extra,
    }


async def test_the_longest_identifiers_matrix_allows_fit_in_a_url(hs):
    """A state event whose type and state key are 255 bytes each, every byte
    percent-encoded, in a room whose id is as long as the server makes it."""
    reg = await hs.register("lena")
    token = reg["access_token"]
    status, room = await hs.request("POST", f"{V3}/createRoom", token=token, json={})
    assert status == 200
    event_type = "ü" * 127 + "t"  # 255 bytes of UTF-8
    state_key = "é" * 127 + "k"
    path = (
        f"{V3}/rooms/{quote(room['room_id'], safe='')}/state/"
        f"{quote(event_type, safe='')}/{quote(state_key, safe='')}"
    )
    assert len(path) > 1500
    status, body = await hs.request("PUT", path, token=token, json={"v": 1})
    assert status == 200, body
    assert await hs.request("GET", path, token=token) == (200, {"v": 1})


SLOW = {
    "http": {
        "header_timeout_s": 0.5,
        "body_timeout_s": 0.5,
        "body_min_rate_bytes": 100,
        "idle_timeout_s": 1.0,
    }
}


async def timed_exchange(hs: Any, listener: str, request: bytes) -> tuple[bytes, float]:
    """Send a request that never finishes; return what came back and when the server closed."""
    reader, writer = await connect(hs, listener)
    started = time.monotonic()
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
        return raw, time.monotonic() - started
    finally:
        writer.close()


@pytest.mark.parametrize("listener", ["client", "federation"])
async def test_headers_that_never_end_are_cut_off_at_the_deadline(server_factory, caplog, listener):
    caplog.set_level(logging.INFO)
    hs = await server_factory(**SLOW)
    partial = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n"
    raw, elapsed = await timed_exchange(hs, listener, partial)
    assert 0.4 < elapsed < 3
    status, headers, body = parse_response(raw)
    assert (status, body["errcode"]) == (408, "M_UNKNOWN")
    assert headers["connection"] == "close"
    assert any("request headers not complete" in r.getMessage() for r in caplog.records)
    assert no_server_errors(caplog) == []


@pytest.mark.parametrize("listener", ["client", "federation"])
async def test_a_body_that_never_finishes_is_cut_off_at_the_deadline(
    server_factory, caplog, listener
):
    caplog.set_level(logging.INFO)
    hs = await server_factory(**SLOW)
    target, method = (f"{V3}/login", b"POST") if listener == "client" else (FED_SEND, b"PUT")
    request = body_request(target, b"Content-Length: 1000", body=b'{"type": ', method=method)
    raw, elapsed = await timed_exchange(hs, listener, request)
    assert 0.4 < elapsed < 3
    status, _, body = parse_response(raw)
    assert (status, body["errcode"]) == (408, "M_UNKNOWN")
    # The handler waiting for the body sees a client that went away: one line
    # at INFO, no traceback, no 500.
    for _ in range(50):
        messages = [r.getMessage() for r in caplog.records]
        if any("client disconnected" in m for m in messages):
            break
        await asyncio.sleep(0.05)
    assert any("request body not complete" in m for m in messages)
    assert any("client disconnected" in m for m in messages)
    assert no_server_errors(caplog) == []
    assert not any(" 500 " in m for m in messages)


async def test_a_body_trickled_byte_by_byte_is_cut_off(server_factory):
    hs = await server_factory(**SLOW)
    reader, writer = await connect(hs, "client")
    started = time.monotonic()
    try:
        writer.write(body_request(f"{V3}/login", b"Content-Length: 1000"))
        while not reader.at_eof() and time.monotonic() - started < 5:
            writer.write(b" ")
            await writer.drain()
            try:
                raw = await asyncio.wait_for(reader.read(), 0.1)
            except TimeoutError:
                continue
            break
    finally:
        writer.close()
    assert time.monotonic() - started < 2
    assert parse_response(raw)[0] == 408


async def test_a_slow_but_steady_body_is_given_the_time_it_needs(server_factory):
    """The body deadline grows with what arrives: 600 bytes at 200 bytes per
    0.3 s take longer than body_timeout_s, and are read in full."""
    hs = await server_factory(**SLOW)
    body = json.dumps(registration("steady", pad="x" * 520)).encode()
    assert len(body) >= 600
    request = body_request(
        f"{V3}/register", b"Content-Length: %d" % len(body), b"Connection: close"
    )
    chunks = [body[i : i + 200] for i in range(0, len(body), 200)]
    raw = await exchange(hs, "client", request, *chunks, pause=0.3)
    status, _, answer = parse_response(raw)
    assert (status, answer["user_id"]) == (200, "@steady:localhost")


async def test_an_idle_connection_is_closed(server_factory):
    hs = await server_factory(**SLOW)
    reader, writer = await connect(hs, "client")
    started = time.monotonic()
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
    assert 0.9 < time.monotonic() - started < 3


async def read_response(reader: asyncio.StreamReader) -> tuple[int, Any]:
    """One response from a kept-alive connection: (status, JSON body)."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    length = int(parse_response(raw)[1]["content-length"])
    raw += await reader.readexactly(length)
    status, _, body = parse_response(raw)
    return status, body


async def test_keep_alive_requests_are_not_cut_off(server_factory):
    """Requests sent one after another on one connection, each well within
    the deadlines, are all answered although together they take longer."""
    hs = await server_factory(**SLOW)
    reader, writer = await connect(hs, "client")
    try:
        for _ in range(4):
            writer.write(head("/_matrix/client/versions", b"Connection: keep-alive"))
            await writer.drain()
            status, body = await read_response(reader)
            assert status == 200 and "versions" in body
            await asyncio.sleep(0.3)
    finally:
        writer.close()
