"""Loading images from files or arrays.

* :class:`LoadReferImageFromFile`: mmcv's ``LoadImageFromFile`` with a
  defined rule for the PIL modes mmcv would clip or composite (16-bit, LA),
  truncated files refused, errors that name the file and the check of the
  size recorded in ``instances.json`` (the configs' loader);
* :class:`LoadImageFromArray`: an in-memory image;
* :class:`LoadInferenceImage`: either of the two, by input type (the first
  transform of the inference pipeline).
"""
from __future__ import annotations

import io
import logging
import os
import os.path as osp
from pathlib import Path
from typing import Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

__all__ = [
    'LoadImageFromArray', 'to_three_channels', 'decode_image_bytes',
    'LoadReferImageFromFile', 'LoadInferenceImage'
]


def to_three_channels(img: np.ndarray, where: str = 'image') -> np.ndarray:
    """An image array as (H, W, 3) uint8, with a defined rule per layout.

    * (H, W) or (H, W, 1) grayscale: the channel is repeated three times;
    * (H, W, 3): returned unchanged (copied only if not C-contiguous, e.g.
      a ``[..., ::-1]`` view);
    * (H, W, 4) with alpha last (RGBA / BGRA): the alpha channel is
      **dropped**, colours are kept as stored (no compositing onto a
      background) — what PIL's ``Image.convert('RGB')`` does, i.e. what the
      official loader does with an RGBA file.

    The channel order is kept (BGR stays BGR).

    Args:
        img (np.ndarray): uint8 image, (H, W), (H, W, 1), (H, W, 3) or
            (H, W, 4).
        where (str): what the array is, for error messages (e.g. its path).

    Returns:
        np.ndarray: (H, W, 3) uint8.

    Raises:
        TypeError: ``img`` is not a numpy array.
        ValueError: another dtype than uint8, another layout, or an empty
            image.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f'{where}: expected a numpy array, got '
                        f'{type(img).__name__}')
    if img.dtype != np.uint8:
        raise ValueError(f'{where}: expected a uint8 image, got dtype '
                         f'{img.dtype} (convert it, e.g. '
                         '(img * 255).round().astype(np.uint8) for floats '
                         'in [0, 1])')
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f'{where}: expected an image of shape (H, W), '
                         f'(H, W, 1), (H, W, 3) or (H, W, 4), got '
                         f'{img.shape}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'{where}: the image is empty ({img.shape})')
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.shape[2] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img)


@TRANSFORMS.register_module()
class LoadImageFromArray(BaseTransform):
    """Take an in-memory image from ``results['img']`` (inference).

    The in-memory counterpart of ``LoadImageFromFile`` in the test pipeline:
    the image is made (H, W, 3) uint8 by :func:`to_three_channels`
    (grayscale repeated, alpha dropped), in the channel order of the
    pipeline (**BGR**, like ``LoadImageFromFile``; the data preprocessor's
    ``bgr_to_rgb`` turns it into RGB).

    Required keys: ``img`` (np.uint8, (H, W[, C])).
    Optional keys: ``img_path`` (kept, e.g. the file the array came from;
    None otherwise).
    Modified keys: ``img``. Added keys: ``img_path``, ``img_shape``,
    ``ori_shape``.

    Args:
        to_float32 (bool): convert the image to float32. Defaults to False.
    """

    def __init__(self, to_float32: bool = False) -> None:
        self.to_float32 = to_float32

    def transform(self, results: dict) -> Optional[dict]:
        img_path = results.get('img_path')
        if 'img' not in results:
            raise KeyError('LoadImageFromArray needs "img" (an image '
                           'array) in the results')
        img = to_three_channels(results['img'], img_path or 'image array')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_path'] = img_path
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(to_float32={self.to_float32})'


# ---------------------------------------------------------------------------
# image files
# ---------------------------------------------------------------------------
_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
#: an IEND chunk's type and CRC (the same in every PNG: the chunk is empty)
_PNG_IEND = b'IEND\xaeB`\x82'
_JPEG_EOI = b'\xff\xd9'

#: PIL modes that get a defined rule before mmcv's pillow decoding: mmcv
#: clips 16-bit grayscale at 255 and composites LA onto a grey canvas.
_RULED_MODES = ('LA', 'La', 'I', 'F')

#: formats whose truncation was reported as undetectable (warned once)
_WARNED_TRUNCATION: set = set()


def _sniff_format(content: bytes) -> Optional[str]:
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


def _missing_end(content: bytes, fmt: Optional[str]) -> Optional[str]:
    """Why a JPEG / PNG file is incomplete, or None; a scan of the bytes.

    * JPEG: the main image must end with its end-of-image marker (FF D9):
      :func:`_jpeg_end`. A file ending with FF D9 needs no walk: entropy
      data cannot contain FF D9, so a file cut inside a scan cannot end
      with it (a cut right after an embedded thumbnail leaves no decodable
      main image). Bytes after the EOI are allowed, as decoders allow them.
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


def _needs_mode_rule(pil) -> bool:
    return pil.mode in _RULED_MODES or pil.mode.startswith('I;16') or (
        pil.mode == 'P' and 'transparency' in pil.info)


def _apply_mode_rule(pil, where: str, fmt: Optional[str]):
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
      8-bit range, ValueError;
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
            raise ValueError(f'cannot read image file {where}: 16-bit '
                             f'values outside [0, 65535] (min {arr.min()}, '
                             f'max {arr.max()})')
        return Image.fromarray(((arr + 128) // 257).astype(np.uint8))
    raise ValueError(
        f'cannot read image file {where}: PIL mode {pil.mode!r} '
        f'({fmt or "unknown format"}; 32-bit integer or float '
        'pixels) has no defined 8-bit range; expected an 8-bit or 16-bit '
        'image (save it as 8-bit RGB)')


def _pillow_decode(content: bytes, flag: str, where: str) -> np.ndarray:
    from mmcv.image.io import _pillow2array
    from PIL import Image, ImageFile, ImageOps
    with io.BytesIO(content) as buff, Image.open(buff) as pil:
        fmt = pil.format
        if (ImageFile.LOAD_TRUNCATED_IMAGES and fmt not in ('JPEG', 'PNG')
                and fmt not in _WARNED_TRUNCATION):
            _WARNED_TRUNCATION.add(fmt)
            print_log(
                'PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set (by other '
                f'code): a truncated {fmt} file decodes without error and '
                'cannot be told from a complete one (JPEG and PNG files '
                'still are checked)', logger='current',
                level=logging.WARNING)
        pil.load()  # the whole file: PIL raises here if it is truncated
        if _needs_mode_rule(pil):
            if flag in ('color', 'grayscale'):
                pil = ImageOps.exif_transpose(pil)
            pil = _apply_mode_rule(pil, where, fmt)
        return _pillow2array(pil, flag, 'bgr')


def decode_image_bytes(content: bytes,
                       flag: str = 'color',
                       backend: Optional[str] = None,
                       where: str = '<bytes>') -> np.ndarray:
    """``mmcv.imfrombytes`` (BGR), with the mode rule and complete checks.

    With the ``'pillow'`` backend the file is decoded completely (a
    truncated file raises), EXIF-rotated first when ``flag`` asks for it
    (``'color'`` / ``'grayscale'``; the configs' ``'*_ignore_orientation'``
    never rotate) and a ``_RULED_MODES`` / 16-bit image gets
    :func:`_apply_mode_rule`; then mmcv's own pillow conversion runs, so
    8-bit RGB / L / RGBA / P / CMYK files give exactly ``mmcv.imfrombytes``:

    * ``L`` (and 16-bit grayscale, after scaling): grey repeated to B, G, R;
    * ``P``: palette expanded (alpha of a transparent palette dropped);
    * ``RGBA`` / ``LA``: alpha **dropped**, colours kept as stored (PIL's
      ``convert('RGB')``, the official loader's rule; no compositing);
    * ``CMYK`` (e.g. Adobe CMYK JPEG): PIL's ``convert('RGB')``;
    * 16-bit RGB(A) PNG: PIL keeps the high byte (``v >> 8``: 32768 -> 128,
      65535 -> 255), within 1 of the grayscale rule ``round(v / 257)``.

    Other backends are ``mmcv.imfrombytes`` as it is (cv2 converts modes
    its own way). For every backend, after a successful decode, a JPEG or
    PNG file must be complete (:func:`_missing_end`: a scan of the bytes,
    no second decode): ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True`` (set
    by some libraries) and older OpenCV (< 5) accept a cut file and fill
    the missing part with grey, which is refused here. For other formats a
    truncated file is only refused by the decoder itself (a warning is
    logged once per format when PIL's flag makes that impossible).

    Args:
        content (bytes): the file's bytes.
        flag (str): mmcv's ``color_type``.
        backend (str, optional): mmcv's ``imdecode_backend``.
        where (str): the file, for error messages.

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR (``'color*'``), (H, W) for
        ``'grayscale*'`` (``'unchanged'``: as stored, after the mode rule).

    Raises:
        ValueError: ``cannot read image file <where>: ...`` for an empty
            file, a file that is not an image, a truncated or corrupt one,
            a 32-bit / float image (no defined 8-bit range), or no pixels.
    """
    head = f'cannot read image file {where}'
    if not content:
        raise ValueError(f'{head}: the file is empty (0 bytes)')
    fmt = _sniff_format(content)
    backend = backend or mmcv.image.io.imread_backend
    try:
        if backend == 'pillow':
            img = _pillow_decode(content, flag, where)
        else:
            img = mmcv.imfrombytes(content, flag=flag, backend=backend)
    except ValueError as e:
        if str(e).startswith(head):
            raise
        raise ValueError(f'{head}: {type(e).__name__}: {e}') from e
    except Exception as e:  # PIL / cv2 / turbojpeg raise many types
        from PIL import UnidentifiedImageError
        if isinstance(e, UnidentifiedImageError) and fmt is None:
            raise ValueError(
                f'{head}: not an image file (no known image format; '
                f'{len(content)} bytes starting with {content[:12]!r})'
            ) from e
        kind = 'truncated' if 'truncated' in str(e).lower() else 'corrupt'
        raise ValueError(f'{head}: {kind} {fmt or "image"} file '
                         f'({len(content)} bytes; {type(e).__name__}: '
                         f'{e})') from e
    if img is None or img.size == 0:  # cv2 returns None
        what = (f'corrupt or truncated {fmt} file' if fmt else
                'not an image file')
        raise ValueError(f'{head}: {what} ({backend} decoded no pixels; '
                         f'{len(content)} bytes starting with '
                         f'{content[:12]!r})')
    missing = _missing_end(content, fmt)
    if missing is not None:
        raise ValueError(f'{head}: truncated {fmt} file ({len(content)} '
                         f'bytes): {missing}; its decoded pixels would be '
                         'partly made up, re-download or re-extract it')
    return img


@TRANSFORMS.register_module()
class LoadReferImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with checks, clear errors and the mode
    rule: the loader of training and testing.

    Same arguments, keys and result as ``LoadImageFromFile`` (``img``:
    uint8 BGR, (H, W, 3), or (H, W) for a grayscale ``color_type``;
    ``img_shape``, ``ori_shape``), decoded by :func:`decode_image_bytes`:
    identical for 8-bit RGB / L / RGBA / P / CMYK files; 16-bit grayscale is
    scaled to 8 bits and the alpha of LA dropped, where mmcv would clip or
    composite; truncated JPEG / PNG files are refused.

    EXIF orientation: applied only for ``color_type='color'`` /
    ``'grayscale'``. The configs use ``'color_ignore_orientation'``: the
    official loader (``Image.open(...).convert('RGB')``) and the COCO
    annotations ignore it.

    Size check (``check_size``): when the results carry the ``height`` and
    ``width`` recorded in ``instances.json`` (``RefCOCODataset`` items), the
    decoded array must have that size; otherwise the mask, decoded at the
    recorded size, would be misaligned with the image. The size comes from
    the decoded array (no extra decode). Inference
    (:class:`LoadInferenceImage`) turns it off: its images have no recorded
    size.

    Args:
        check_size (bool): see above. Defaults to True.
        *args, **kwargs: ``LoadImageFromFile``'s.

    Raises:
        FileNotFoundError: a local path that is not a file (the path named).
        ValueError: the file is empty, not an image, truncated or corrupt
            (``cannot read image file <path>: ...``); not raised with
            ``ignore_empty`` (returns None). Also (even with
            ``ignore_empty``) a decoded size that differs from the recorded
            ``height`` / ``width``: the message names the file, the
            ``image_id`` and both sizes.
    """

    def __init__(self, *args, check_size: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.check_size = check_size

    def transform(self, results: dict) -> Optional[dict]:
        path = os.fspath(results['img_path'])
        if '://' not in path and not osp.isfile(path):
            if self.ignore_empty:
                return None
            what = ' (it is a directory)' if osp.isdir(path) else ''
            raise FileNotFoundError(f'image file not found: {path}{what}')
        try:
            if self.file_client_args is not None:
                img_bytes = fileio.FileClient.infer_client(
                    self.file_client_args, path).get(path)
            else:
                img_bytes = fileio.get(path, backend_args=self.backend_args)
            img = decode_image_bytes(img_bytes, self.color_type,
                                     self.imdecode_backend, where=path)
        except Exception as e:  # file backends raise many types
            if self.ignore_empty:
                return None
            if isinstance(e, (FileNotFoundError, ValueError)):
                raise
            raise ValueError(f'cannot read image file {path}: '
                             f'{type(e).__name__}: {e}') from e
        if self.check_size:
            self._check_recorded_size(img, results, path)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _check_recorded_size(self, img: np.ndarray, results: dict,
                             path: str) -> None:
        """ValueError if ``img`` (H, W[, C]) is not the recorded size."""
        if results.get('height') is None or results.get('width') is None:
            return
        recorded = (int(results['height']), int(results['width']))
        decoded = tuple(img.shape[:2])
        if decoded == recorded:
            return
        hint = 'replace the file or fix the record'
        if decoded == recorded[::-1]:
            hint = ('height and width are swapped: '
                    + ('the EXIF orientation rotated it, load with '
                       "color_type='color_ignore_orientation' (the official"
                       ' loader and the annotations ignore EXIF)'
                       if self.color_type in ('color', 'grayscale') else
                       'a rotated copy of the image?'))
        raise ValueError(
            f'{path} (image_id={results.get("image_id")}): the decoded '
            f'image is {decoded[0]}x{decoded[1]} (height x width) but '
            f'instances.json records {recorded[0]}x{recorded[1]}; the '
            f'mask would be misaligned ({hint})')

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, check_size={self.check_size})'


#: The file loader of the project's configs (no EXIF rotation, as the
#: official loader and the RefCOCO annotations).
DEFAULT_FILE_LOADER = dict(type='LoadReferImageFromFile',
                           imdecode_backend='pillow',
                           color_type='color_ignore_orientation')


@TRANSFORMS.register_module()
class LoadInferenceImage(BaseTransform):
    """Load an inference image given as a path or as an array.

    The first transform of the inference pipeline (like mmseg's
    ``InferencerLoader``): ``results['img']`` (or ``results['img_path']``)
    is

    * a path (str / Path): decoded by ``file_loader``, the config's own file
      loader (mmcv's ``LoadImageFromFile`` becomes
      :class:`LoadReferImageFromFile` with the same arguments: the decoder
      of testing), then made three-channel;
    * a uint8 array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), BGR: taken
      by :class:`LoadImageFromArray` (grayscale repeated, alpha dropped).

    Required keys: ``img`` (path or array) or ``img_path``.
    Modified / added keys: ``img`` ((H, W, 3) uint8 BGR, float32 with the
    loader's ``to_float32``), ``img_path`` (the file, or None / the given
    one for an array), ``img_shape``, ``ori_shape``.

    Args:
        file_loader (dict, optional): the file loader's config; defaults to
            :data:`DEFAULT_FILE_LOADER`. Its ``to_float32`` applies to both
            inputs; ``ignore_empty`` is turned off (inference raises), and
            so is the ``check_size`` of :class:`LoadReferImageFromFile`
            (an inference image has no size recorded in ``instances.json``;
            a ``height`` / ``width`` in the results is not checked).

    Raises:
        TypeError: the image is neither a path nor an array.
        FileNotFoundError / ValueError: see :class:`LoadReferImageFromFile`
            and :func:`to_three_channels`.
    """

    def __init__(self, file_loader: Optional[dict] = None) -> None:
        cfg = dict(file_loader or DEFAULT_FILE_LOADER)
        name = cfg.get('type')
        name = name if isinstance(name, str) else getattr(name, '__name__',
                                                          '')
        if name.rsplit('.', 1)[-1] == 'LoadImageFromFile':
            cfg['type'] = 'LoadReferImageFromFile'
        self.to_float32 = bool(cfg.pop('to_float32', False))
        cfg['ignore_empty'] = False
        self.file_loader = cfg
        self.from_file = TRANSFORMS.build(cfg)
        if isinstance(self.from_file, LoadReferImageFromFile):
            # an inference image has no recorded size to check against
            self.from_file.check_size = False
        self.from_array = LoadImageFromArray()

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        if img is None and results.get('img_path') is not None:
            img = results['img_path']
        if isinstance(img, (str, Path)):
            path = os.fspath(img)
            results = dict(results, img_path=path)
            results.pop('img', None)
            results = self.from_file(results)
            results['img'] = to_three_channels(results['img'], path)
        elif isinstance(img, np.ndarray):
            results = self.from_array(dict(results))
        else:
            raise TypeError('image must be a path or a numpy array, got '
                            f'{type(img).__name__}')
        if self.to_float32:
            results['img'] = results['img'].astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(file_loader='
                f'{self.file_loader!r}, to_float32={self.to_float32})')
