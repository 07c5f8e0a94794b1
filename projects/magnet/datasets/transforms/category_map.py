"""Category maps of whole images (dense labels for vision pre-training)."""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .mask_loading import SegmentationError, decode_refer_mask


@TRANSFORMS.register_module()
class LoadCategoryMap(BaseTransform):
    """Paint the annotations of an image into a category map.

    Required keys: ``instances`` (``[(label, segmentation), ...]``, from
    :class:`ReferCategorySegDataset`), ``height``, ``width``; ``ori_shape``
    or ``img`` (optional, used to check the size); ``img_path``,
    ``image_id`` (optional, named in the errors).

    The map has the size recorded in ``instances.json``: put it before
    ``Resize`` in training pipelines, after it in test pipelines (the
    prediction is scored at the original size, as mmseg does).

    Added keys: ``gt_seg_map`` (np.uint8, (H, W); 0 background, ``label``
    under each annotation, a later annotation covering an earlier one),
    appended to ``seg_fields``. Each segmentation is decoded by
    :func:`decode_refer_mask` (the referring masks' rule and checks).
    """

    def transform(self, results: dict) -> dict:
        height, width = int(results['height']), int(results['width'])
        where = (f'{results.get("img_path", "<image>")} image_id='
                 f'{results.get("image_id")}')
        # the loaded size: 'ori_shape' (also after a Resize, as in mmseg's
        # test pipelines, which load the labels after resizing the image)
        shape = results.get('ori_shape')
        if shape is None and results.get('img') is not None:
            shape = results['img'].shape[:2]
        if shape is not None and tuple(shape[:2]) != (height, width):
            raise SegmentationError(
                f'{where}: the loaded image is {shape[0]}x{shape[1]} '
                f'(height x width) but instances.json records '
                f'{height}x{width}')
        seg_map = np.zeros((height, width), dtype=np.uint8)
        for i, (label, segmentation) in enumerate(results['instances']):
            mask = decode_refer_mask(segmentation, height, width,
                                     f'{where}: instances[{i}]')
            seg_map[mask.astype(bool)] = label
        results['gt_seg_map'] = seg_map
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results
