"""Configs shared by the segmentor tests."""

#: Mask Grounding head sized for ``tiny_magnet_cfg(lang_proj_dim=32)``
MG = dict(type='MaskGroundingHead', text_channels=32, visual_channels=128,
          num_heads=2)
#: the cross-modal alignment loss with its defaults
CAL = dict(type='CrossModalAlignmentLoss')
