"""OpenGraph metadata from an HTML page, with the standard library's parser.

`og:*` meta tags are taken as they are (the first of each name); `<title>`
and `<meta name="description">` stand in when og:title or og:description is
missing. Values are cut to a bounded length, since they end up in every
client that shows the preview.
"""

from __future__ import annotations

from html.parser import HTMLParser

MAX_VALUE_LENGTH = 1000


class _OpenGraphParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.title: str | None = None
        self.description: str | None = None
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.title is None:
            self._in_title = True
        elif tag == "meta":
            values = dict(attrs)
            name = values.get("property") or values.get("name")
            content = values.get("content")
            if not name or content is None:
                return
            name = name.strip()
            if name.startswith("og:"):
                self.og.setdefault(name, content[:MAX_VALUE_LENGTH])
            elif name.lower() == "description" and self.description is None:
                self.description = content[:MAX_VALUE_LENGTH]

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = " ".join("".join(self._title_parts).split())[:MAX_VALUE_LENGTH]


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def parse_opengraph(body: bytes, charset: str | None) -> dict[str, str]:
    parser = _OpenGraphParser()
    parser.feed(_decode(body, charset))
    parser.close()
    og = dict(parser.og)
    if "og:title" not in og and parser.title:
        og["og:title"] = parser.title
    if "og:description" not in og and parser.description:
        og["og:description"] = parser.description
    return og
