"""Receiving a PNG image (signature or seal): checked, then kept as a blob."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator

from PIL import Image
from starlette.requests import Request

from service.api.multipart import receive_body
from service.documents import BlobStore, BlobWriter
from service.errors import InvalidInputError

__all__ = ["received_png"]

MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_SIDE = 2000  # a seal 40 mm across at 1,200 dpi; decoding one takes 16 MB at most


def _check_png(data: bytes) -> None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InvalidInputError("the image must be a PNG (with a transparent background)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width > MAX_SIDE or img.height > MAX_SIDE:
                raise InvalidInputError(f"the image is larger than {MAX_SIDE}×{MAX_SIDE} pixels")
            img.verify()  # the chunks' checksums; it does not decode the pixels
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # a file cut short fails here, not at the first signature made with it
    except InvalidInputError:
        raise
    except Image.DecompressionBombError as exc:  # declares far more pixels than it could hold
        raise InvalidInputError(f"the image is larger than {MAX_SIDE}×{MAX_SIDE} pixels") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow fails on a damaged file in many ways (IndexError for a PNG
        # without image data, besides OSError, SyntaxError, ValueError): each is the sender's file, not a crash
        raise InvalidInputError("the PNG image is damaged: save it again as PNG and upload the new file") from exc


@contextlib.asynccontextmanager
async def received_png(request: Request, blobs: BlobStore) -> AsyncIterator[BlobWriter]:
    """The request body, checked to be a PNG; kept in the store if the block ends normally
    (the caller was allowed to set it), removed if it raises. Raises InvalidInputError, TooLargeError."""
    writer = await receive_body(request, blobs, MAX_IMAGE_BYTES)
    try:
        await asyncio.to_thread(_check_png, writer.tmp_path.read_bytes())
        yield writer
        writer.commit(writer.sha256)
    finally:
        writer.discard()  # nothing to remove once committed
