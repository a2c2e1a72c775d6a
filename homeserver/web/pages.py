"""Rendering the server's web pages: Jinja2 templates, the operator's theme,
and the security headers every page carries.

Pages are plain HTML forms (they work without JavaScript). Every response
forbids framing (clickjacking on the consent page would grant a client an
account), loads nothing but the served stylesheet and images, and is never
cached, because forms carry CSRF tokens.
"""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from homeserver.config import WebConfig
from homeserver.web.links import WEB_PREFIX

STYLESHEET_PATH = WEB_PREFIX + "/style.css"

# No script at all; styles only from the served stylesheet; images from here
# or https (client logos); forms post back here.
_CSP_BASE = (
    "default-src 'none'; style-src 'self'; img-src 'self' https:; "
    "base-uri 'none'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Page URLs may carry authorization ids and user codes.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _headers(*, redirects_to_client: bool) -> dict[str, str]:
    # A browser applies form-action to the redirects after a form is sent;
    # the consent form ends at the client's redirect URI (any scheme, for
    # native apps), so that page cannot restrict it.
    csp = _CSP_BASE if redirects_to_client else _CSP_BASE + "; form-action 'self'"
    return {**SECURITY_HEADERS, "Content-Security-Policy": csp}


class PageRenderer:
    """Turns a template and its values into a complete, themed response."""

    def __init__(self, theme: WebConfig) -> None:
        self._theme = theme
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("homeserver.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._stylesheet = self._env.get_template("style.css").render(theme=theme)

    def page(
        self,
        template: str,
        status: int = 200,
        *,
        redirects_to_client: bool = False,
        **values: Any,
    ) -> web.Response:
        html = self._env.get_template(template).render(
            theme=self._theme, stylesheet=STYLESHEET_PATH, **values
        )
        response = web.Response(status=status, text=html, content_type="text/html")
        response.headers.update(_headers(redirects_to_client=redirects_to_client))
        return response

    def error(self, status: int, title: str, message: str) -> web.Response:
        """A page saying what went wrong in words, never a stack trace."""
        return self.page("error.html", status, title=title, message=message)

    def stylesheet(self) -> web.Response:
        response = web.Response(text=self._stylesheet, content_type="text/css")
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser follows with a GET."""
    response = web.Response(status=303, headers={"Location": location})
    response.headers.update(_headers(redirects_to_client=False))
    return response
