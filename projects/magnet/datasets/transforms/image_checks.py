"""What decoders do not check about an image file: its completeness (JPEG /
PNG) and the 8-bit rule of the PIL modes mmcv would clip or composite; the
image errors.

Why these stay hand-written:

* cv2 (OpenCV < 5) and PIL with ``ImageFile.LOAD_TRUNCATED_IMAGES = True``
  (set by some libraries) decode a cut JPEG / PNG without an error and fill
  the missing rows with grey; a scan of the bytes is the only check that
  holds for every backend and needs no second decode;
* mmcv's pillow conversion clips 16-bit grayscale at 255 and composites LA
  onto a grey canvas, where the official loader keeps the picture
  (``convert('RGB')``: alpha dropped).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...utils.errors import InputFileError, InvalidInputError, UserError

__all__ = [
    'ImageFileError', 'ImageNotFoundError', 'ImageTypeError',
    'InvalidInputError', 'sniff_format', 'missing_end', 'needs_mode_rule',
    'apply_mode_rule'
]


class ImageFileError(UserError, ValueError):
    """An image file that cannot be used (empty, not an image, truncated,
    corrupt, no 8-bit range, or another size than recorded); the message
    names the file."""


class ImageNotFoundError(InputFileError, FileNotFoundError):
    """An image path that is not a file; the message names it."""


class ImageTypeError(UserError, TypeError):
    """An image given as something else than a path or a numpy array."""


_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
#: an IEND chunk's type and CRC (the same in every PNG: the chunk is empty)
_PNG_IEND = b'IEND\xaeB`\x82'
_JPEG_EOI = b'\xff\xd9'

#: PIL modes that get a defined rule before mmcv's pillow conversion: mmcv
#: clips 16-bit grayscale at 255 and composites LA onto a grey canvas.
_RULED_MODES = ('LA', 'La', 'I', 'F')


def sniff_format(content: bytes) -> Optional[str]:
    """``'JPEG'`` / ``'PNG'`` by the file's signature, else None."""
    if content.startswith(_JPEG_MAGIC):
        return 'JPEG'
    if content.startswith(_PNG_MAGIC):
        return 'PNG'
    return None


def _jpeg_end(content: bytes) -> Optional[int]:
    """Offset after the JPEG's end-of-image marker, or None if it has none.

    Walks the marker structure from the start: header segments are skipped
    by their length (so an EXIF thumbnail's own markers are not seen), the
    entropy-coded data after each start-of-scan is skipped to the next
    marker (in it, FF is always followed by a stuffed 00 or a restart
    marker D0-D7). The first EOI found is the main image's end: bytes after
    it (camera trailers, an appended video) are not looked at. Stray bytes
    between segments are skipped, as libjpeg does.
    """
    n, pos = len(content), 2
    while True:
        if pos < n and content[pos] != 0xFF:  # stray bytes
            pos = content.find(b'\xff', pos)
            if pos < 0:
                return None
        if pos + 1 >= n:
            return None
        marker = content[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # no length field
            pos += 2
            continue
        if pos + 4 > n:
            return None
        seg_end = pos + 2 + int.from_bytes(content[pos + 2:pos + 4], 'big')
        if seg_end > n:
            return None
        pos = seg_end
        if marker != 0xDA:
            continue
        while True:  # entropy-coded data of the scan
            pos = content.find(b'\xff', pos)
            if pos < 0 or pos + 1 >= n:
                return None
            nxt = content[pos + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                pos += 2
            elif nxt == 0xFF:
                pos += 1
            else:
                break


def missing_end(content: bytes, fmt: Optional[str]) -> Optional[str]:
    """Why a JPEG / PNG file is incomplete, or None; a scan of the bytes.

    * JPEG: the main image must end with its end-of-image marker (FF D9):
      :func:`_jpeg_end`. A file ending with FF D9 needs no walk: entropy
      data cannot contain FF D9, so a file cut inside a scan cannot end
      with it. Bytes after the EOI are allowed, as decoders allow them.
    * PNG: the IEND chunk must be present.

    Other formats are not checked (None).
    """
    if fmt == 'JPEG':
        if content.endswith(_JPEG_EOI) or _jpeg_end(content) is not None:
            return None
        return ('no end-of-image marker (FF D9) ends its image data: the '
                'file was cut short')
    if fmt == 'PNG' and content.rfind(_PNG_IEND) < 0:
        return 'it has no IEND chunk: the file was cut short'
    return None


def needs_mode_rule(pil) -> bool:
    """Whether the PIL image's mode gets :func:`apply_mode_rule`."""
    return pil.mode in _RULED_MODES or pil.mode.startswith('I;16') or (
        pil.mode == 'P' and 'transparency' in pil.info)


def apply_mode_rule(pil, where: str, fmt: Optional[str]):
    """PIL image -> 8-bit ``L`` / ``RGBA`` for the modes of _RULED_MODES.

    * ``LA``: alpha dropped, grey values kept (PIL's ``convert('RGB')``, the
      official loader's rule; no compositing);
    * 16-bit grayscale (``I;16*`` modes; ``I`` from a PNG, i.e. 16-bit PNG
      on older Pillow): ``round(v / 257)``, computed exactly as
      ``(v + 128) // 257``: 0 -> 0, 32768 -> 128, 65535 -> 255 (the
      full 16-bit range onto the full 8-bit range; PIL's own conversion
      would clip every value above 255 to 255). The rule depends on the
      bit depth only, never on the pixel values;
    * ``I`` (32-bit integer, e.g. TIFF) and ``F`` (float): no defined
      8-bit range, :class:`ImageFileError`;
    * ``P`` with transparency: expanded to ``RGBA`` (whose alpha the RGB
      conversion then drops) instead of PIL's warning.

    ``fmt`` is the file's format (PIL's ``format``, lost by a transpose).
    """
    from PIL import Image
    if pil.mode in ('LA', 'La'):
        return pil.convert('L')
    if pil.mode == 'P':
        return pil.convert('RGBA')
    if pil.mode.startswith('I;16') or (pil.mode == 'I' and fmt == 'PNG'):
        arr = np.asarray(pil).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageFileError(
                f'cannot read image file {where}: 16-bit values outside '
                f'[0, 65535] (min {arr.min()}, max {arr.max()})')
        return Image.fromarray(((arr + 128) // 257).astype(np.uint8))
    raise ImageFileError(
        f'cannot read image file {where}: PIL mode {pil.mode!r} '
        f'({fmt or "unknown format"}; 32-bit integer or float '
        'pixels) has no defined 8-bit range; expected an 8-bit or 16-bit '
        'image (save it as 8-bit RGB)')
