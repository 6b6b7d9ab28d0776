"""Photos sent with counterfeit reports: checked by their bytes, re-encoded without metadata, stored.

A photo is accepted only when its first bytes say JPEG, PNG or WebP (the file name and the declared
content type are ignored: both are the sender's claim) and Pillow decodes it as that same format.
It is then re-encoded, which drops EXIF (GPS position, phone model), XMP and any bytes appended to
the image, and turned upright first so that dropping the orientation tag changes nothing visible.

Storage sits behind `PhotoStore`: `LocalPhotoStore` keeps files under the data directory on both
tiers; an object-store adapter only needs `put` / `get`. Keys are content addresses (SHA-256 of the
stored bytes), so a retried upload writes the same file again and never a second one.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps, UnidentifiedImageError

from zhongtai.core.errors import AppError, BadRequest, NotFound

MAX_PHOTOS = 3
MAX_PHOTO_BYTES = 5 * 1024 * 1024
# Decoded size limit: a small file can claim a huge canvas (a decompression bomb).
MAX_PIXELS = 40_000_000
# Photos are stored no larger than this on their longest side: enough to read a label.
MAX_SIDE = 2560

JPEG, PNG, WEBP = "image/jpeg", "image/png", "image/webp"
EXTENSIONS = {JPEG: "jpg", PNG: "png", WEBP: "webp"}
PILLOW_FORMATS = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP"}


class PhotoTooLarge(AppError):
    code = "photo_too_large"
    status_code = 413
    default_message = "Each photo may be at most 5 MiB."


class TooManyPhotos(BadRequest):
    code = "too_many_photos"
    default_message = "At most 3 photos per report."


class UnsupportedPhoto(AppError):
    code = "photo_type"
    status_code = 415
    default_message = "Photos must be JPEG, PNG or WebP images."


class UnreadablePhoto(AppError):
    code = "photo_unreadable"
    status_code = 422
    default_message = "A photo could not be read as an image; take it again."


class PhotoMissing(NotFound):
    default_message = "This photo is not available."


def sniff(head: bytes) -> str | None:
    """The image type the bytes themselves announce (magic numbers), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


@dataclass(frozen=True)
class CleanPhoto:
    content_type: str
    data: bytes
    width: int
    height: int
    original_sha256: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.content_type]


def check_photo(raw: bytes, *, index: int) -> CleanPhoto:
    """Validate one uploaded photo (1-based `index` for messages) and return it re-encoded.

    CPU-bound (decoding and encoding): call it from a worker thread in request handlers.
    """
    if len(raw) > MAX_PHOTO_BYTES:
        raise PhotoTooLarge(photo=index, size_bytes=len(raw), max_bytes=MAX_PHOTO_BYTES)
    if not raw:
        raise UnreadablePhoto("A photo is empty; choose the picture again.", photo=index)
    content_type = sniff(raw[:16])
    if content_type is None:
        raise UnsupportedPhoto(photo=index)
    try:
        with Image.open(io.BytesIO(raw), formats=[PILLOW_FORMATS[content_type]]) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UnreadablePhoto("A photo has too many pixels; send a smaller picture.", photo=index)
            image.load()
            upright = ImageOps.exif_transpose(image)
            cleaned = _encode(upright, content_type)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadablePhoto(photo=index) from exc
    return CleanPhoto(content_type, cleaned[0], cleaned[1], cleaned[2], hashlib.sha256(raw).hexdigest())


def _encode(image: Image.Image, content_type: str) -> tuple[bytes, int, int]:
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    if content_type == JPEG:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=85, optimize=True)
    elif content_type == PNG:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA")
        image.save(out, format="PNG", optimize=True)
    else:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image.save(out, format="WEBP", quality=85)
    # `save` writes only what it is given: no `exif=` / `pnginfo=` / `icc_profile=` arguments, so no
    # metadata of the original survives.
    return out.getvalue(), image.size[0], image.size[1]


class PhotoStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...


def photo_key(tenant_id: uuid.UUID, photo: CleanPhoto) -> str:
    digest = photo.sha256
    return f"{tenant_id}/{digest[:2]}/{digest}.{photo.extension}"


class LocalPhotoStore:
    """Files under `root` (by default `<ZT_DATA_DIR>/uploads/counterfeit-reports`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise PhotoMissing()
        return path

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return  # content-addressed: the same key holds the same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise PhotoMissing() from exc


def local_store(data_dir: Path) -> LocalPhotoStore:
    return LocalPhotoStore(data_dir / "uploads" / "counterfeit-reports")
