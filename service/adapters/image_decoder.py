"""Image bytes to a BGR pixel array, refusing what is not an image or is too large."""

from __future__ import annotations

import io
import struct
import warnings

import cv2
import numpy as np
import simplejpeg
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from service.domain.errors import ErrorCode, Rejected

# Pillow's JPEG parser also opens MPO, the JPEG with a multi-picture segment many phones write.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")


class ReusedPixels:
    """Memory that one decode after another writes its pixels into.

    A 12 MP photo's 36 MB is past the size glibc keeps for reuse: a fresh array is mapped
    for every decode, page-faulted in as libjpeg writes it (about 5 ms) and unmapped after.
    A decode into this memory returns a view of it, valid until the next decode into it, so
    its owner decodes one image at a time and keeps no image past its next decode. Images of
    over `max_bytes` get an array of their own.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._memory = np.empty(0, dtype=np.uint8)

    def take(self, nbytes: int) -> NDArray[np.uint8] | None:
        """`nbytes` of the memory, grown to hold them; None over `max_bytes`."""
        if nbytes > self._max_bytes:
            return None
        if self._memory.size < nbytes:
            self._memory = np.empty(nbytes, dtype=np.uint8)
        return self._memory[:nbytes]


def decode_image(
    data: bytes, max_pixels: int, reused: ReusedPixels | None = None
) -> NDArray[np.uint8]:
    """The image's BGR pixels; with `reused`, plain JPEGs are decoded into its memory."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Only the accepted formats' parsers ever see the bytes.
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            # The header gives the size: refuse before any pixel is allocated.
            width, height = image.size
            if width * height > max_pixels:
                raise Rejected(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"the image is {width}x{height}, over {max_pixels} pixels",
                )
            image.seek(0)
            orientation = image.getexif().get(_ORIENTATION, 1)
            if _libjpeg_decodes_alike(image, orientation):
                pixels = _decode_jpeg(data, width, height, reused)
                if pixels is not None:
                    return pixels
            rgb = _to_rgb(_upright(image, orientation))
    except Image.DecompressionBombError:
        raise Rejected(
            ErrorCode.IMAGE_TOO_LARGE, f"the image has over {max_pixels} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error) as error:
        raise Rejected(
            ErrorCode.IMAGE_FORMAT,
            f"the bytes are not a decodable JPEG, PNG, WebP, BMP or GIF image "
            f"({type(error).__name__})",
        ) from None
    # One pass: NumPy's reversed-channel copy is several times slower at 12 MP.
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)


def _libjpeg_decodes_alike(image: Image.Image, orientation: object) -> bool:
    """Whether libjpeg-turbo alone decodes these bytes to exactly Pillow's pixels: a plain
    colour JPEG (Pillow converts no other mode the same way), already upright."""
    return image.format == "JPEG" and image.mode == "RGB" and orientation == 1


def _decode_jpeg(
    data: bytes, width: int, height: int, reused: ReusedPixels | None
) -> NDArray[np.uint8] | None:
    """libjpeg-turbo writes BGR rows straight into the array, where Pillow's path costs two
    more copies (a 12 MP photo: 29 ms instead of 120). Strict: at any libjpeg warning (a
    file cut short or corrupt, which libjpeg would patch with grey) it is None, and Pillow
    decides, as for every other image; so is a size other than the header's."""
    memory = reused.take(width * height * 3) if reused is not None else None
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True, buffer=memory)
    except ValueError:
        return None
    if pixels.dtype != np.uint8 or pixels.shape != (height, width, 3):
        return None
    return np.ascontiguousarray(pixels, dtype=np.uint8)


_ORIENTATION = 0x0112
_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(image: Image.Image, orientation: object) -> Image.Image:
    if orientation == 1:
        return image  # exif_transpose would copy every pixel to change none
    try:
        return ImageOps.exif_transpose(image)
    except (struct.error, ValueError, TypeError):
        # Pillow rewrites all of EXIF while turning the image: a malformed tag elsewhere
        # must not cost the picture, nor its orientation.
        method = _TRANSPOSES.get(orientation) if isinstance(orientation, int) else None
        return image.transpose(method) if method is not None else image


def _to_rgb(image: Image.Image) -> NDArray[np.uint8]:
    if image.mode.startswith("I;16") or image.mode == "I":
        # Pillow's convert clips 16-bit samples at 255 (an almost white picture): scale.
        wide = np.asarray(image).astype(np.uint32)
        gray = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    # convert() copies even an RGB image: 36 MB at 12 MP.
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
