"""Loading images from files or arrays.

* :class:`LoadReferImageFromFile`: mmcv's ``LoadImageFromFile`` with a
  defined rule for the PIL modes mmcv would clip or composite (16-bit, LA)
  and errors that name the file (the configs' loader);
* :class:`LoadImageFromArray`: an in-memory image;
* :class:`LoadInferenceImage`: either of the two, by input type (the first
  transform of the inference pipeline).
"""
from __future__ import annotations

import io
import os
import os.path as osp
from pathlib import Path
from typing import Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
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
#: PIL modes that get a defined rule before mmcv's pillow decoding: mmcv
#: clips 16/32-bit grayscale at 255 and composites LA onto a grey canvas.
_RULED_MODES = ('LA', 'La', 'I', 'F')


def _needs_mode_rule(pil) -> bool:
    return pil.mode in _RULED_MODES or pil.mode.startswith('I;16') or (
        pil.mode == 'P' and 'transparency' in pil.info)


def _apply_mode_rule(pil):
    """PIL image -> 8-bit ``L`` / ``RGBA`` for the modes of _RULED_MODES.

    * ``LA``: alpha dropped, grey values kept (PIL's ``convert('RGB')``, the
      official loader's rule; no compositing);
    * ``I;16*`` / ``I`` / ``F`` grayscale: divided by 257 (16 -> 8 bits)
      when a value exceeds 255, rounded, clipped to [0, 255];
    * ``P`` with transparency: expanded to ``RGBA`` (whose alpha the RGB
      conversion then drops) instead of PIL's warning.
    """
    from PIL import Image
    if pil.mode in ('LA', 'La'):
        return pil.convert('L')
    if pil.mode == 'P':
        return pil.convert('RGBA')
    arr = np.asarray(pil, dtype=np.float64)
    if arr.size and arr.max() > 255:
        arr = arr / 257.0
    return Image.fromarray(np.clip(arr.round(), 0, 255).astype(np.uint8))


def decode_image_bytes(content: bytes,
                       flag: str = 'color',
                       backend: Optional[str] = None) -> np.ndarray:
    """``mmcv.imfrombytes`` (BGR), with the mode rule for pillow.

    With the ``'pillow'`` backend the file is decoded completely (a
    truncated file raises here), EXIF-rotated first when ``flag`` asks for
    it (``'color'`` / ``'grayscale'``) and a ``_RULED_MODES`` image gets
    :func:`_apply_mode_rule`; then mmcv's own pillow conversion runs, so
    8-bit RGB / L / RGBA / P / CMYK files give exactly ``mmcv.imfrombytes``.
    Other backends are ``mmcv.imfrombytes`` as it is.

    Args:
        content (bytes): the file's bytes.
        flag (str): mmcv's ``color_type``.
        backend (str, optional): mmcv's ``imdecode_backend``.

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR (``'color*'``), (H, W) for
        ``'grayscale*'``; ``None`` if the cv2 backend cannot decode it.
    """
    if (backend or mmcv.image.io.imread_backend) != 'pillow':
        return mmcv.imfrombytes(content, flag=flag, backend=backend)
    from mmcv.image.io import _pillow2array
    from PIL import Image, ImageOps
    with io.BytesIO(content) as buff, Image.open(buff) as pil:
        pil.load()
        if _needs_mode_rule(pil):
            if flag in ('color', 'grayscale'):
                pil = ImageOps.exif_transpose(pil)
            pil = _apply_mode_rule(pil)
        return _pillow2array(pil, flag, 'bgr')


@TRANSFORMS.register_module()
class LoadReferImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with clear errors and the mode rule.

    Same arguments, keys and result as ``LoadImageFromFile`` (``img``:
    uint8 BGR, (H, W, 3), or (H, W) for a grayscale ``color_type``;
    ``img_shape``, ``ori_shape``), decoded by :func:`decode_image_bytes`:
    identical for 8-bit RGB / L / RGBA / P / CMYK files; 16-bit grayscale is
    scaled to 8 bits and the alpha of LA dropped, where mmcv would clip or
    composite.

    Raises:
        FileNotFoundError: a local path that is not a file (the path named).
        ValueError: the file is not a readable image, is truncated or empty
            (the path named); not raised with ``ignore_empty`` (returns
            None).
    """

    def transform(self, results: dict) -> Optional[dict]:
        path = os.fspath(results['img_path'])
        if '://' not in path and not osp.isfile(path):
            if self.ignore_empty:
                return None
            raise FileNotFoundError(f'image file not found: {path}')
        try:
            if self.file_client_args is not None:
                img_bytes = fileio.FileClient.infer_client(
                    self.file_client_args, path).get(path)
            else:
                img_bytes = fileio.get(path, backend_args=self.backend_args)
            img = decode_image_bytes(img_bytes, self.color_type,
                                     self.imdecode_backend)
            if img is None or img.size == 0:
                raise ValueError('no pixels decoded')
        except Exception as e:  # PIL/cv2/file backends raise many types
            if self.ignore_empty:
                return None
            if isinstance(e, FileNotFoundError):
                raise
            raise ValueError(f'cannot read image file {path}: '
                             f'{type(e).__name__}: {e}') from e
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


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
            inputs; ``ignore_empty`` is turned off (inference raises).

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
