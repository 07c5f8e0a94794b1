"""Image arrays: three channels, the size bound of the loaders, and
:class:`LoadImageFromArray` (an in-memory image)."""
from __future__ import annotations

import logging
from typing import Optional, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

from ...utils.errors import MissingKeyError
from .image_checks import ImageTypeError, InvalidInputError

__all__ = [
    'DEFAULT_MAX_SIZE', 'to_three_channels', 'bounded_size',
    'check_max_size', 'fit_max_size', 'log_downscale', 'LoadImageFromArray',
    'MissingImageError'
]


class MissingImageError(MissingKeyError):
    """:class:`LoadImageFromArray` found no ``img`` array in the results
    (a pipeline given a path where it expects an array)."""

#: Default ``max_size`` (longest side, pixels) of the loaders: 4.3x the
#: paper's 480 input and 16x the CPU config's 128, so the network input
#: (the pipeline's ``Resize`` of the bounded image) is unchanged to the eye
#: and no RefCOCO / COCO image (<= 640) is touched; a loaded image holds at
#: most 2048 * 2048 * 3 bytes (12 MiB), and a JPEG of twice that size or
#: more is decoded at 1/2 - 1/8 scale (an 8000x8000 one at 4000x4000). A
#: multiple of the model input would tie the loader to the pipeline's
#: ``Resize``; a fixed bound keeps memory bounded for every config.
DEFAULT_MAX_SIZE = 2048

def to_three_channels(img: np.ndarray, where: str = 'image') -> np.ndarray:
    """An image array as (H, W, 3) uint8, with a defined rule per layout.

    * (H, W) or (H, W, 1) grayscale: the channel is repeated three times;
    * (H, W, 3): returned unchanged (copied only if not C-contiguous);
    * (H, W, 4) with alpha last (RGBA / BGRA): the alpha channel is
      **dropped**, colours are kept as stored (no compositing; PIL's
      ``convert('RGB')``, the official loader's rule).

    The channel order is kept (BGR stays BGR).

    Args:
        img (np.ndarray): uint8 image, (H, W), (H, W, 1), (H, W, 3) or
            (H, W, 4).
        where (str): what the array is, for error messages (e.g. its path).

    Returns:
        np.ndarray: (H, W, 3) uint8.

    Raises:
        ImageTypeError (TypeError): ``img`` is not a numpy array.
        InvalidInputError (ValueError): another dtype than uint8, another
            layout, or an empty image.
    """
    if not isinstance(img, np.ndarray):
        raise ImageTypeError(f'{where}: expected a numpy array, got '
                             f'{type(img).__name__}')
    if img.dtype != np.uint8:
        raise InvalidInputError(
            f'{where}: expected a uint8 image, got dtype {img.dtype} '
            '(convert it, e.g. (img * 255).round().astype(np.uint8) for '
            'floats in [0, 1])')
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise InvalidInputError(
            f'{where}: expected an image of shape (H, W), (H, W, 1), '
            f'(H, W, 3) or (H, W, 4), got {img.shape}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InvalidInputError(f'{where}: the image is empty ({img.shape})')
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def bounded_size(shape: Tuple[int, int],
                 max_size: Optional[int]) -> Tuple[int, int]:
    """(h, w) of an image of ``shape`` (H, W) scaled so that its longest
    side is at most ``max_size`` (aspect ratio kept, sides rounded, >= 1);
    ``shape`` itself when it fits or ``max_size`` is None."""
    h, w = int(shape[0]), int(shape[1])
    if max_size is None or max(h, w) <= max_size:
        return h, w
    scale = max_size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def check_max_size(max_size: Optional[int]) -> Optional[int]:
    """``max_size`` if it is a positive int or None, else
    :class:`InvalidInputError`."""
    if max_size is not None and (isinstance(max_size, bool) or not
                                 isinstance(max_size, int) or max_size < 1):
        raise InvalidInputError(f'max_size must be a positive int or None, '
                                f'got {max_size!r}')
    return max_size


def fit_max_size(img: np.ndarray, max_size: Optional[int]) -> np.ndarray:
    """``img`` (H, W[, C]) resized to :func:`bounded_size` (cv2's area
    interpolation: an antialiased downscale) when it is larger."""
    h, w = bounded_size(img.shape[:2], max_size)
    if (h, w) == img.shape[:2]:
        return img
    return mmcv.imresize(img, (w, h), interpolation='area')


def log_downscale(where: str, ori: Tuple[int, int], img: np.ndarray,
                  max_size: Optional[int]) -> None:
    """One warning line when ``img`` (h, w[, C]) is smaller than the
    input's ``ori`` (H, W)."""
    if tuple(img.shape[:2]) != tuple(ori):
        print_log(
            f'{where}: the {ori[0]}x{ori[1]} (height x width) image is '
            f'downscaled at load to {img.shape[0]}x{img.shape[1]} '
            f'(max_size={max_size}); ori_shape stays {ori[0]}x{ori[1]}, '
            'predictions are resized back to it',
            logger='current', level=logging.WARNING)


@TRANSFORMS.register_module()
class LoadImageFromArray(BaseTransform):
    """Take an in-memory image from ``results['img']`` (inference).

    The in-memory counterpart of ``LoadImageFromFile`` in the test pipeline:
    the image is made (H, W, 3) uint8 by :func:`to_three_channels`
    (grayscale repeated, alpha dropped), in the channel order of the
    pipeline (**BGR**, like ``LoadImageFromFile``), and downscaled to
    ``max_size`` if larger (logged; ``ori_shape`` stays the array's size).

    Required keys: ``img`` (np.uint8, (H, W[, C])).
    Optional keys: ``img_path`` (kept; None otherwise).
    Modified keys: ``img``. Added keys: ``img_path``, ``img_shape``,
    ``ori_shape``.

    Args:
        to_float32 (bool): convert the image to float32. Defaults to False.
        max_size (int, optional): longest side of the loaded image; None
            keeps every size. Defaults to None.
    """

    def __init__(self, to_float32: bool = False,
                 max_size: Optional[int] = None) -> None:
        self.to_float32 = to_float32
        self.max_size = check_max_size(max_size)

    def transform(self, results: dict) -> Optional[dict]:
        img_path = results.get('img_path')
        if 'img' not in results:
            raise MissingImageError(
                'LoadImageFromArray needs "img" (an image array) in the '
                f'results, got the keys {sorted(results)}: give the image '
                'as an array, or use LoadImageFromFile for a path')
        where = img_path or 'image array'
        img = to_three_channels(results['img'], where)
        ori = img.shape[:2]
        img = fit_max_size(img, self.max_size)
        log_downscale(where, ori, img, self.max_size)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_path'] = img_path
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = ori
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_float32={self.to_float32}, '
                f'max_size={self.max_size})')
