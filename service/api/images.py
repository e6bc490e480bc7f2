"""Receiving a PNG image (signature or seal): checked, then kept as a blob."""

from __future__ import annotations

import asyncio
import io

from PIL import Image, UnidentifiedImageError
from starlette.requests import Request

from service.api.multipart import receive_body
from service.documents import BlobStore
from service.errors import InvalidInputError

__all__ = ["receive_png"]

MAX_IMAGE_BYTES = 2 * 1024 * 1024


def _check_png(data: bytes) -> None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InvalidInputError("the image must be a PNG (with a transparent background)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
            if img.width > 4000 or img.height > 4000:
                raise InvalidInputError("the image is larger than 4000×4000 pixels")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError("the PNG image is damaged") from exc


async def receive_png(request: Request, blobs: BlobStore) -> str:
    """Store the request body as a PNG blob; returns its SHA-256. Raises InvalidInputError, TooLargeError."""
    writer = await receive_body(request, blobs, MAX_IMAGE_BYTES)
    try:
        await asyncio.to_thread(_check_png, writer.tmp_path.read_bytes())
        writer.commit(writer.sha256)
    except BaseException:
        writer.discard()
        raise
    return writer.sha256
