"""Response headers for served media, chosen so that a browser opening a
media URL can never run it as part of this server's origin.

Only types a browser displays harmlessly are `inline`; everything else (HTML,
SVG, JavaScript, XML, unknown types) is an `attachment`. The sandboxing CSP
and nosniff apply to every file, so even an inline file cannot script.
"""

from __future__ import annotations

from urllib.parse import quote

# Types with a text body: served with an explicit UTF-8 charset.
TEXT_TYPES = frozenset(
    {
        "text/css",
        "text/csv",
        "text/html",
        "text/calendar",
        "text/plain",
        "text/javascript",
        "application/json",
        "application/ld+json",
        "application/rtf",
        "image/svg+xml",
        "text/xml",
    }
)

# Types a browser may show in place (the list Element's web client trusts;
# SVG deliberately absent: it can carry script).
INLINE_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)

CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)

# RFC 2616 separators: a filename containing one cannot be a bare token.
_SEPARATORS = frozenset('()<>@,;:\\"/[]?={}')


def _is_token(name: str) -> bool:
    return all(32 < ord(c) < 127 and c not in _SEPARATORS for c in name)


def content_disposition(content_type: str, filename: str | None) -> str:
    """`inline` or `attachment`, with the filename as a token when it is
    plain ASCII and RFC 5987 `filename*=utf-8''...` otherwise."""
    essence = content_type.split(";", 1)[0].strip().lower()
    disposition = "inline" if essence in INLINE_TYPES else "attachment"
    if not filename:
        return disposition
    if _is_token(filename):
        return f"{disposition}; filename={filename}"
    return f"{disposition}; filename*=utf-8''{quote(filename, safe='')}"


def media_headers(content_type: str, filename: str | None) -> dict[str, str]:
    """Every header a media or thumbnail response carries besides CORS."""
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence in TEXT_TYPES and ";" not in content_type:
        content_type += "; charset=UTF-8"
    return {
        "Content-Type": content_type,
        "Content-Disposition": content_disposition(content_type, filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Cache-Control": "public, max-age=86400, s-maxage=0, proxy-revalidate",
        "X-Robots-Tag": "noindex, nofollow, noarchive, noimageindex",
    }
