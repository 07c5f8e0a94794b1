"""Loading images from files or arrays, bounded in size.

* :class:`LoadReferImageFromFile`: mmcv's ``LoadImageFromFile`` (its file
  backends, ``mmcv.imfrombytes`` / mmcv's pillow conversion) plus what they
  do not check (:mod:`.image_checks`: truncated JPEG / PNG, the 8-bit rule
  of 16-bit and LA files), errors naming the file, the check of the size
  recorded in ``instances.json`` and ``max_size``;
* :class:`LoadImageFromArray`: an in-memory image;
* :class:`LoadInferenceImage`: either of the two, by input type (the first
  transform of the inference pipeline).

``max_size``: an image whose longest side exceeds it is downscaled at load
(a JPEG decoded by the pillow backend is already decoded at 1/2 - 1/8 scale
inside libjpeg, PIL's ``draft``, so its full-size pixels never exist), one
line is logged, and ``ori_shape`` stays the file's real size: predictions
are resized back to it (the segmentor's ``output_size='original'``) and the
ground-truth mask is brought to the loaded size by ``LoadReferringMask``.
"""
from __future__ import annotations

import io
import logging
import os
import os.path as osp
from pathlib import Path
from typing import Optional, Tuple

import mmcv
import mmengine.fileio as fileio
# imported here, not in the decoder's try: a changed mmcv must fail loudly,
# not read as a corrupt image
from mmcv.image.io import _pillow2array
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

from .image_arrays import (DEFAULT_MAX_SIZE, LoadImageFromArray,
                           bounded_size, check_max_size, fit_max_size,
                           log_downscale, to_three_channels)
from .image_checks import (ImageFileError, ImageNotFoundError,
                           ImageTypeError, apply_mode_rule, missing_end,
                           needs_mode_rule, sniff_format)

__all__ = [
    'LoadImageFromArray', 'to_three_channels', 'decode_image_bytes',
    'LoadReferImageFromFile', 'LoadInferenceImage', 'ImageFileError',
    'ImageNotFoundError', 'ImageTypeError', 'DEFAULT_MAX_SIZE',
    'bounded_size'
]

#: formats whose truncation was reported as undetectable (warned once)
_WARNED_TRUNCATION: set = set()


def _pillow_decode(content: bytes, flag: str, where: str,
                   max_size: Optional[int]
                   ) -> Tuple[np.ndarray, Tuple[int, int]]:
    """PIL decode + mode rule + mmcv's pillow conversion; a JPEG larger
    than ``max_size`` decoded at reduced scale (PIL ``draft``).

    Returns:
        tuple: (h, w[, 3]) uint8 BGR array, and the (H, W) of the file
        (after the EXIF rotation ``flag`` asks for).
    """
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
        w, h = pil.size
        rotates = flag in ('color', 'grayscale') and pil.getexif().get(
            0x0112) in (5, 6, 7, 8)
        ori = (w, h) if rotates else (h, w)
        if fmt == 'JPEG' and max(h, w) > (max_size or max(h, w)):
            # libjpeg's DCT scaling: decodes at the largest 1/2, 1/4, 1/8
            # scale still >= the bounded size (same file read, truncation
            # still raises)
            bh, bw = bounded_size((h, w), max_size)
            pil.draft(None, (bw, bh))
        pil.load()  # the whole file: PIL raises here if it is truncated
        if needs_mode_rule(pil):
            if flag in ('color', 'grayscale'):
                pil = ImageOps.exif_transpose(pil)
            pil = apply_mode_rule(pil, where, fmt)
        return _pillow2array(pil, flag, 'bgr'), ori


def _decode(content: bytes, flag: str, backend: Optional[str], where: str,
            max_size: Optional[int]) -> Tuple[np.ndarray, Tuple[int, int]]:
    """:func:`decode_image_bytes` and the file's own (H, W)."""
    head = f'cannot read image file {where}'
    if not content:
        raise ImageFileError(f'{head}: the file is empty (0 bytes)')
    fmt = sniff_format(content)
    backend = backend or mmcv.image.io.imread_backend
    try:
        if backend == 'pillow':
            img, ori = _pillow_decode(content, flag, where, max_size)
        else:
            img = mmcv.imfrombytes(content, flag=flag, backend=backend)
            ori = None if img is None else img.shape[:2]
    except ImageFileError:
        raise
    except Exception as e:  # PIL / cv2 / turbojpeg raise many types
        from PIL import UnidentifiedImageError
        if isinstance(e, UnidentifiedImageError) and fmt is None:
            raise ImageFileError(
                f'{head}: not an image file (no known image format; '
                f'{len(content)} bytes starting with {content[:12]!r})'
            ) from e
        kind = 'truncated' if 'truncated' in str(e).lower() else 'corrupt'
        raise ImageFileError(f'{head}: {kind} {fmt or "image"} file '
                             f'({len(content)} bytes; {type(e).__name__}: '
                             f'{e})') from e
    if img is None or img.size == 0:  # cv2 returns None
        what = (f'corrupt or truncated {fmt} file' if fmt else
                'not an image file')
        raise ImageFileError(f'{head}: {what} ({backend} decoded no pixels; '
                             f'{len(content)} bytes starting with '
                             f'{content[:12]!r})')
    missing = missing_end(content, fmt)
    if missing is not None:
        raise ImageFileError(
            f'{head}: truncated {fmt} file ({len(content)} bytes): '
            f'{missing}; its decoded pixels would be partly made up, '
            're-download or re-extract it')
    return fit_max_size(img, max_size), tuple(ori)


def decode_image_bytes(content: bytes,
                       flag: str = 'color',
                       backend: Optional[str] = None,
                       where: str = '<bytes>',
                       max_size: Optional[int] = None) -> np.ndarray:
    """``mmcv.imfrombytes`` (BGR), with the mode rule and complete checks.

    With the ``'pillow'`` backend the file is decoded completely (a
    truncated file raises), EXIF-rotated first when ``flag`` asks for it
    (``'color'`` / ``'grayscale'``) and a 16-bit / LA / transparent-palette
    image gets :func:`~.image_checks.apply_mode_rule`; then mmcv's own
    pillow conversion runs, so 8-bit RGB / L / RGBA / P / CMYK files give
    exactly ``mmcv.imfrombytes``: ``L`` (and scaled 16-bit grey) repeated to
    B, G, R; ``P`` expanded; alpha **dropped** (no compositing); ``CMYK``
    by PIL's ``convert('RGB')``; 16-bit RGB keeps the high byte.

    Other backends are ``mmcv.imfrombytes`` as it is. For every backend a
    JPEG or PNG file must be complete (:func:`~.image_checks.missing_end`);
    other formats rely on the decoder (a warning is logged once per format
    when ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` makes that impossible).

    Args:
        content (bytes): the file's bytes.
        flag (str): mmcv's ``color_type``.
        backend (str, optional): mmcv's ``imdecode_backend``.
        where (str): the file, for error messages.
        max_size (int, optional): see :class:`LoadReferImageFromFile`.

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR (``'color*'``), (H, W) for
        ``'grayscale*'`` (``'unchanged'``: as stored, after the mode rule).

    Raises:
        ImageFileError (ValueError): ``cannot read image file <where>:
            ...`` for an empty file, a file that is not an image, a
            truncated or corrupt one, a 32-bit / float image, or no pixels.
    """
    return _decode(content, flag, backend, where, max_size)[0]


@TRANSFORMS.register_module()
class LoadReferImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with checks, clear errors, the mode
    rule and a size bound: the loader of training and testing.

    Same arguments, keys and result as ``LoadImageFromFile``, decoded by
    :func:`decode_image_bytes`: identical for 8-bit RGB / L / RGBA / P /
    CMYK files; 16-bit grayscale is scaled to 8 bits and the alpha of LA
    dropped, where mmcv would clip or composite; truncated JPEG / PNG
    files are refused. EXIF orientation: applied only for ``color_type=
    'color'`` / ``'grayscale'`` (the configs' ``'color_ignore_orientation'``
    follows the official loader and the COCO annotations).

    Size check (``check_size``): when the results carry the ``height`` and
    ``width`` recorded in ``instances.json``, the file's size must be that
    (otherwise the mask would be misaligned); it is taken from the decode
    (no extra one). :class:`LoadInferenceImage` turns it off.

    ``max_size``: a file whose longest side exceeds it is loaded downscaled
    to that side (see the module docstring; ``img_shape`` the loaded size,
    ``ori_shape`` the file's), with one warning line. Default
    :data:`DEFAULT_MAX_SIZE`; None loads every size as it is.

    Args:
        check_size (bool): see above. Defaults to True.
        max_size (int, optional): see above.
        *args, **kwargs: ``LoadImageFromFile``'s.

    Raises:
        ImageNotFoundError (FileNotFoundError): a local path that is not a
            file (the path named).
        ImageFileError (ValueError): the file is empty, not an image,
            truncated or corrupt (``cannot read image file <path>: ...``);
            not raised with ``ignore_empty`` (returns None). Also (even with
            ``ignore_empty``) a size that differs from the recorded
            ``height`` / ``width``: the message names the file, the
            ``image_id`` and both sizes.
    """

    def __init__(self, *args, check_size: bool = True,
                 max_size: Optional[int] = DEFAULT_MAX_SIZE,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.check_size = check_size
        self.max_size = check_max_size(max_size)

    def transform(self, results: dict) -> Optional[dict]:
        path = os.fspath(results['img_path'])
        if '://' not in path and not osp.isfile(path):
            if self.ignore_empty:
                return None
            what = ' (it is a directory)' if osp.isdir(path) else ''
            raise ImageNotFoundError(f'image file not found: {path}{what}')
        try:
            if self.file_client_args is not None:
                img_bytes = fileio.FileClient.infer_client(
                    self.file_client_args, path).get(path)
            else:
                img_bytes = fileio.get(path, backend_args=self.backend_args)
            img, ori = _decode(img_bytes, self.color_type,
                               self.imdecode_backend, path, self.max_size)
        except Exception as e:  # file backends raise many types
            if self.ignore_empty:
                return None
            if isinstance(e, (FileNotFoundError, ImageFileError)):
                raise
            raise ImageFileError(f'cannot read image file {path}: '
                                 f'{type(e).__name__}: {e}') from e
        if self.check_size:
            self._check_recorded_size(ori, results, path)
        log_downscale(path, ori, img, self.max_size)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = ori
        return results

    def _check_recorded_size(self, decoded: Tuple[int, int], results: dict,
                             path: str) -> None:
        """ImageFileError if the file's (H, W) is not the recorded size."""
        if results.get('height') is None or results.get('width') is None:
            return
        recorded = (int(results['height']), int(results['width']))
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
        raise ImageFileError(
            f'{path} (image_id={results.get("image_id")}): the decoded '
            f'image is {decoded[0]}x{decoded[1]} (height x width) but '
            f'instances.json records {recorded[0]}x{recorded[1]}; the '
            f'mask would be misaligned ({hint})')

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, check_size={self.check_size}, '
                f'max_size={self.max_size})')


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

    Either is bounded by ``max_size`` (longest side; ``ori_shape`` stays
    the input's size, so predictions come back at it).

    Required keys: ``img`` (path or array) or ``img_path``.
    Modified / added keys: ``img`` ((h, w, 3) uint8 BGR, float32 with the
    loader's ``to_float32``), ``img_path`` (the file, or None / the given
    one for an array), ``img_shape`` (h, w), ``ori_shape`` (H, W).

    Args:
        file_loader (dict, optional): the file loader's config; defaults to
            :data:`DEFAULT_FILE_LOADER`. Its ``to_float32`` applies to both
            inputs; ``ignore_empty`` and ``check_size`` are turned off
            (inference raises; its images have no recorded size).
        max_size (int, optional): longest side of the loaded image, for
            both inputs (a file loader's own ``max_size`` is replaced).
            Defaults to :data:`DEFAULT_MAX_SIZE`; None: no bound.

    Raises:
        ImageTypeError (TypeError): the image is neither a path nor an
            array.
        ImageNotFoundError / ImageFileError / InvalidInputError: see
            :class:`LoadReferImageFromFile` and :func:`to_three_channels`.
    """

    def __init__(self, file_loader: Optional[dict] = None,
                 max_size: Optional[int] = DEFAULT_MAX_SIZE) -> None:
        cfg = dict(file_loader or DEFAULT_FILE_LOADER)
        name = cfg.get('type')
        name = name if isinstance(name, str) else getattr(name, '__name__',
                                                          '')
        if name.rsplit('.', 1)[-1] == 'LoadImageFromFile':
            cfg['type'] = 'LoadReferImageFromFile'
        self.to_float32 = bool(cfg.pop('to_float32', False))
        self.max_size = check_max_size(max_size)
        cfg['ignore_empty'] = False
        self.file_loader = cfg
        self.from_file = TRANSFORMS.build(cfg)
        if isinstance(self.from_file, LoadReferImageFromFile):
            # an inference image has no recorded size to check against
            self.from_file.check_size = False
            self.from_file.max_size = self.max_size
        self.from_array = LoadImageFromArray(max_size=self.max_size)

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        if img is None and results.get('img_path') is not None:
            img = results['img_path']
        if isinstance(img, (str, Path)):
            path = os.fspath(img)
            results = dict(results, img_path=path)
            results.pop('img', None)
            results = self.from_file(results)
            # another file loader (no max_size of its own) is bounded here
            ori = results['ori_shape']
            img = fit_max_size(to_three_channels(results['img'], path),
                       self.max_size)
            if tuple(img.shape[:2]) != tuple(results['img_shape'][:2]):
                log_downscale(path, ori, img, self.max_size)
            results['img'], results['img_shape'] = img, img.shape[:2]
        elif isinstance(img, np.ndarray):
            results = self.from_array(dict(results))
        else:
            raise ImageTypeError('image must be a path or a numpy array, '
                                 f'got {type(img).__name__}')
        if self.to_float32:
            results['img'] = results['img'].astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(file_loader='
                f'{self.file_loader!r}, to_float32={self.to_float32}, '
                f'max_size={self.max_size})')
