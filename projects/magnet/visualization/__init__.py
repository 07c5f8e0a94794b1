from .prediction_panels import (MASK_COLOR, legend_below, mask_view,
                                panel_scale, prediction_grid,
                                prediction_panel)
from .refseg_visualizer import (EXPRESSION_COLORS, RefSegLocalVisualizer,
                                blend_mask, expression_of, mask_outline,
                                sample_iou)

__all__ = [
    'RefSegLocalVisualizer', 'EXPRESSION_COLORS', 'blend_mask',
    'expression_of', 'mask_outline', 'sample_iou', 'MASK_COLOR',
    'legend_below', 'mask_view', 'panel_scale', 'prediction_grid',
    'prediction_panel'
]
