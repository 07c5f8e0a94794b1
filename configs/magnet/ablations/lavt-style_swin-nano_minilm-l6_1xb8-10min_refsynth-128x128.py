# Ablation (cpu): the LAVT-style baseline: no alignment module, no Mask
# Grounding, no alignment loss (segmentation loss only).
_base_ = ['../magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py']
model = dict(
    backbone=dict(use_alignment=False),
    mask_grounding=None,
    alignment_loss=None)
