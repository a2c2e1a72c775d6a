"""A browser for the web page tests: an aiohttp client with a cookie jar
that reads pages' forms with the standard library's HTML parser and sends
them back as a browser would (hidden fields included)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import attrs
from multidict import CIMultiDictProxy


@attrs.define
class Form:
    action: str
    method: str
    fields: dict[str, str]
    # (name, value) of each submit button that has a name.
    buttons: list[tuple[str, str]]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs_}
        if tag == "form":
            self._current = Form(a.get("action", ""), a.get("method", "get").lower(), {}, [])
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and "name" in a:
            self._current.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and self._current is not None and "name" in a:
            self._current.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


class _LabelParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.labelled: set[str] = set()
        self.inputs: list[str] = []

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs_}
        if tag == "label" and "for" in a:
            self.labelled.add(a["for"])
        elif tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.inputs.append(a.get("id", f"<{tag} name={a.get('name')} without id>"))


def unlabelled_inputs(html: str) -> list[str]:
    """The visible form controls that no <label for=...> names."""
    parser = _LabelParser()
    parser.feed(html)
    return [i for i in parser.inputs if i not in parser.labelled]


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


@attrs.define
class Page:
    status: int
    url: str
    html: str
    headers: CIMultiDictProxy[str]

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    def form_list(self) -> list[Form]:
        return forms_of(self.html)

    def form(self, action_contains: str = "") -> Form:
        matching = [f for f in forms_of(self.html) if action_contains in f.action]
        assert matching, f"no form with action containing {action_contains!r} in {self.html}"
        return matching[0]


class Browser:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        # unsafe: accept cookies from an IP address host (127.0.0.1).
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, *, follow: bool = True) -> Page:
        url = urljoin(self.base_url, path)
        async with self.http.get(url, allow_redirects=follow) as resp:
            return Page(resp.status, str(resp.url), await resp.text(), resp.headers)

    async def post(self, path: str, data: dict[str, str], *, follow: bool = True) -> Page:
        url = urljoin(self.base_url, path)
        async with self.http.post(url, data=data, allow_redirects=follow) as resp:
            return Page(resp.status, str(resp.url), await resp.text(), resp.headers)

    async def submit(
        self,
        page: Page,
        action_contains: str = "",
        *,
        button: str | None = None,
        follow: bool = True,
        **values: Any,
    ) -> Page:
        """Fill in a form of `page` and send it; `button` is the value of
        the named submit button to press."""
        form = page.form(action_contains)
        data = {**form.fields, **{k: str(v) for k, v in values.items()}}
        if button is not None:
            name = next(n for n, v in form.buttons if v == button)
            data[name] = button
        target = urljoin(page.url, form.action)
        if form.method == "get":
            async with self.http.get(target, params=data, allow_redirects=follow) as resp:
                return Page(resp.status, str(resp.url), await resp.text(), resp.headers)
        async with self.http.post(target, data=data, allow_redirects=follow) as resp:
            return Page(resp.status, str(resp.url), await resp.text(), resp.headers)

    async def sign_in(self, username: str, password: str, next_path: str = "") -> Page:
        query = f"?next={next_path}" if next_path else ""
        page = await self.get(f"/_homeserver/web/sign_in{query}")
        return await self.submit(page, "sign_in", username=username, password=password)
