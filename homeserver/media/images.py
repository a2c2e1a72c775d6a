"""Image work with Pillow: pure, synchronous functions, run in a thread by
their callers because decoding and resizing are CPU work.

Only JPEG, PNG, GIF and WebP are ever decoded: every decoder Pillow is
allowed to use on uploaded bytes is attack surface.

Pillow is imported on first use, not with the module: a server that never
makes a thumbnail keeps its memory (a few MB of resident pages) for other work.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from PIL import Image

DECODERS = ("JPEG", "PNG", "GIF", "WEBP")
THUMBNAIL_SOURCE_TYPES = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"}
)
ANIMATED_TYPE = "image/webp"
_ENCODERS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
# EXIF orientations that swap width and height.
_TRANSPOSED = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


class ImageError(Exception):
    """The bytes are not an image this server can work with."""


@attrs.frozen
class ImageInfo:
    width: int
    height: int
    animated: bool


def _open(source: Path | bytes, max_pixels: int) -> Image.Image:
    from PIL import Image

    try:
        image = Image.open(
            source if isinstance(source, Path) else io.BytesIO(source), formats=DECODERS
        )
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(str(e)) from e
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageError(f"image of {width}x{height} pixels is too large")
    return image


def probe(source: Path | bytes, max_pixels: int) -> ImageInfo:
    """Size (as displayed, EXIF orientation applied) and animation, from the header."""
    with _open(source, max_pixels) as image:
        width, height = image.size
        try:
            orientation = image.getexif().get(_ORIENTATION_TAG)
        except Exception:  # broken EXIF is common; the image itself is fine
            orientation = None
        if orientation in _TRANSPOSED:
            width, height = height, width
        return ImageInfo(width, height, bool(getattr(image, "is_animated", False)))


def thumbnail_type(source_type: str) -> str:
    """Static thumbnails keep JPEG as JPEG; the rest become PNG (keeps alpha)."""
    return "image/jpeg" if source_type in ("image/jpeg", "image/jpg") else "image/png"


def fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest size of this aspect ratio inside the box, never larger
    than the image itself."""
    if box_width * height < box_height * width:
        w, h = box_width, max(box_width * height // width, 1)
    else:
        w, h = max(box_height * width // height, 1), box_height
    return min(w, width), min(h, height)


def _rgb(image: Image.Image) -> Image.Image:
    """Palette and 1-bit images are converted first: resizing them directly
    would use nearest-neighbour and look awful."""
    if image.mode in ("1", "L", "P", "LA", "PA"):
        has_alpha = "transparency" in image.info or image.mode in ("LA", "PA")
        return image.convert("RGBA" if has_alpha else "RGB")
    return image


def _resize(image: Image.Image, width: int, height: int, method: str) -> Image.Image:
    from PIL import Image

    image = _rgb(image)
    if method == "scale":
        return image.resize((width, height), Image.Resampling.LANCZOS)
    # Crop: scale to cover the box, then cut the middle out.
    src_w, src_h = image.size
    if width * src_h > height * src_w:
        scaled = (width, max(width * src_h // src_w, height))
    else:
        scaled = (max(height * src_w // src_h, width), height)
    resized = image.resize(scaled, Image.Resampling.LANCZOS)
    left = (scaled[0] - width) // 2
    top = (scaled[1] - height) // 2
    return resized.crop((left, top, left + width, top + height))


def render(
    source: Path | bytes,
    width: int,
    height: int,
    method: str,
    output_type: str,
    *,
    animated: bool,
    max_pixels: int,
) -> bytes:
    """A thumbnail of exactly width x height, encoded as `output_type`.

    `animated`: every frame is resized and the result is an animated WebP
    (frame durations and loop count kept); otherwise the first frame only,
    encoded as `output_type`.
    """
    from PIL import ImageOps, ImageSequence

    out = io.BytesIO()
    with _open(source, max_pixels) as image:
        # Every frame is decoded: the pixel bound covers all of them, and an
        # animation beyond it gets its first frame only.
        frame_pixels = image.size[0] * image.size[1] * getattr(image, "n_frames", 1)
        if animated and frame_pixels <= max_pixels:
            frames: list[Image.Image] = []
            durations: list[int] = []
            for frame in ImageSequence.Iterator(image):
                durations.append(frame.info.get("duration", image.info.get("duration", 100)))
                frames.append(_resize(frame.convert("RGBA"), width, height, method))
            frames[0].save(
                out,
                "WEBP",
                save_all=True,
                append_images=frames[1:],
                duration=durations,
                loop=image.info.get("loop", 0),
                quality=80,
            )
            return out.getvalue()
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception:  # broken EXIF: use the image as stored
            upright = image
        thumb = _resize(upright, width, height, method)
        if output_type == "image/jpeg" and thumb.mode != "RGB":
            thumb = thumb.convert("RGB")
        thumb.save(out, _ENCODERS[output_type], quality=80)
    return out.getvalue()
