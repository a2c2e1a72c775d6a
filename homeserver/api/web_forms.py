"""What the web page handlers share: reading an HTML form, and turning a
failure into an error page instead of the JSON the client API would send."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web

from homeserver.api.http import DATABASE_RETRY_AFTER_S, ClientRequest
from homeserver.errors import MatrixError
from homeserver.web.pages import PageRenderer
from storage.database import is_database_unavailable

logger = logging.getLogger(__name__)

WEB_PREFIXES = ("/_homeserver/web",)
# More fields than any of our forms has is not a form of ours.
_MAX_FIELDS = 20

_TITLES = {
    400: "Something is wrong with this request",
    403: "Not allowed",
    404: "Not found",
    429: "Too many attempts",
}


class BadForm(Exception):
    """A request that no form of ours could have sent; its message says why."""


class HasPages(Protocol):
    @property
    def pages(self) -> PageRenderer: ...


Self = TypeVar("Self", bound=HasPages)
PageHandler = Callable[[Self, ClientRequest], Awaitable[web.StreamResponse]]


def html_errors(handler: PageHandler[Self]) -> PageHandler[Self]:
    """Show an error page for a refused form, a Matrix error a service
    raised or a failure; the Router's JSON errors are for API clients, not
    people."""

    @functools.wraps(handler)
    async def wrapped(self: Self, req: ClientRequest) -> web.StreamResponse:
        try:
            return await handler(self, req)
        except BadForm as e:
            logger.info("refused form at %s: %s", req.path, e)
            return self.pages.error(400, _TITLES[400], str(e))
        except MatrixError as e:
            title = _TITLES.get(e.status, "Something went wrong")
            return self.pages.error(e.status, title, e.message)
        except Exception as e:
            if is_database_unavailable(e):
                logger.warning("database unavailable during web page %s: %s", req.path, e)
                response = self.pages.error(
                    503,
                    "Temporarily unavailable",
                    "The server cannot reach its database. Try again in a moment.",
                )
                response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
                return response
            # Logged with its stack trace; the person sees a page, never the trace.
            logger.exception("web page %s %s failed", req.method, req.path)
            return self.pages.error(
                500,
                "Something went wrong",
                "The server could not complete this request. Try again in a moment.",
            )

    return wrapped


def read_form(req: ClientRequest) -> dict[str, str]:
    """The fields of an application/x-www-form-urlencoded body (what a
    browser sends for our forms); a repeated field is refused."""
    content_type = req.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadForm("Expected a form submission")
    try:
        text = req.body.decode("utf-8", errors="strict")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadForm("The form could not be read") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadForm(f"The field {name!r} was sent twice")
        if "\x00" in value:
            raise BadForm(f"The field {name!r} holds a NUL character")
        fields[name] = value
    return fields


def field(fields: dict[str, str], name: str, *, max_length: int = 1024) -> str:
    """A required form field, stripped of surrounding whitespace only where
    it is not a secret (passwords are taken as typed)."""
    value = fields.get(name)
    if value is None:
        raise BadForm(f"The field {name!r} is missing")
    if len(value) > max_length:
        raise BadForm(f"The field {name!r} is too long")
    return value


def query_arg(req: ClientRequest, name: str) -> str | None:
    """A query parameter given at most once."""
    values = req.query.getall(name, [])
    if len(values) > 1:
        raise BadForm(f"The parameter {name!r} was given twice")
    return values[0] if values else None


def csrf_failure(pages: PageRenderer) -> web.Response:
    """The answer to a form whose CSRF token is missing or wrong: nothing done."""
    return pages.error(
        403,
        "This form has expired",
        "The page you sent the form from was too old or came from elsewhere. "
        "Go back, reload the page and try again.",
    )
