"""URL previews: OpenGraph data of a web page, its og:image copied into the
media repository so that clients load it from here (as an mxc URI), not
from the site. Previews are kept for an hour, so a link posted in a busy
room is fetched once, not once per reader.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urljoin

from homeserver.errors import MatrixError
from homeserver.media import images
from homeserver.media.opengraph import parse_opengraph
from homeserver.media.safe_fetch import Fetched, SafeFetcher
from homeserver.media.upload import MediaUploader
from storage.database import now_ms
from storage.media import MediaStore

CACHE_MS = 60 * 60 * 1000
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class UrlPreviewer:
    def __init__(
        self,
        store: MediaStore,
        uploader: MediaUploader,
        fetcher: SafeFetcher,
        *,
        max_image_pixels: int,
    ) -> None:
        self._store = store
        self._uploader = uploader
        self._fetcher = fetcher
        self._max_pixels = max_image_pixels

    async def preview(self, user_id: str, url: str) -> dict[str, Any]:
        self._fetcher.check_url(url)
        now = now_ms()
        cached = await self._store.get_preview(url, now)
        if cached is not None:
            return json.loads(cached)
        page = await self._fetcher.fetch(url)
        if page.content_type in images.THUMBNAIL_SOURCE_TYPES:
            og = await self._image_fields(user_id, page)
        elif page.content_type in _HTML_TYPES:
            og = dict(parse_opengraph(page.body, page.charset))
            # The site's own image URL is never handed out: ours, or none.
            og.update(await self._og_image(user_id, page.url, og.pop("og:image", None)))
        else:
            og = {}
        await self._store.put_preview(url, json.dumps(og), now + CACHE_MS)
        return og

    async def _og_image(self, user_id: str, page_url: str, image_url: Any) -> dict[str, Any]:
        """The page's og:image as repository fields; none if it cannot be had."""
        if not isinstance(image_url, str) or not image_url:
            return {}
        try:
            image = await self._fetcher.fetch(urljoin(page_url, image_url))
        except MatrixError:
            return {}
        if image.content_type not in images.THUMBNAIL_SOURCE_TYPES:
            return {}
        return await self._image_fields(user_id, image)

    async def _image_fields(self, user_id: str, image: Fetched) -> dict[str, Any]:
        media_id, length = await self._uploader.store_fetched(
            user_id, image.body, image.content_type, image.url
        )
        fields: dict[str, Any] = {
            "og:image": self._uploader.mxc(media_id),
            "og:image:type": image.content_type,
            "matrix:image:size": length,
        }
        try:
            info = await asyncio.to_thread(images.probe, image.body, self._max_pixels)
        except images.ImageError:
            return fields
        fields["og:image:width"] = info.width
        fields["og:image:height"] = info.height
        return fields
