# Reference for the vision pre-training config: the same task, head and
# schedule with mmseg's ResNet-18 at the CPU Swin's widths (32-256, strides
# 4-32) instead of the Swin. Not a MagNet backbone; it measures how fast a
# small CNN learns the shapes (docs/demo_training.md, fourth round).
_base_ = './fpn_swin-nano_1xb16-3min_refsynth-categories-128x128.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        stem_channels=32,
        base_channels=32,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        style='pytorch'))
