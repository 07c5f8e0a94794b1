from .refseg_visualizer import (EXPRESSION_COLORS, RefSegLocalVisualizer,
                                blend_mask, expression_of, mask_outline,
                                sample_iou)

__all__ = [
    'RefSegLocalVisualizer', 'EXPRESSION_COLORS', 'blend_mask',
    'expression_of', 'mask_outline', 'sample_iou'
]
