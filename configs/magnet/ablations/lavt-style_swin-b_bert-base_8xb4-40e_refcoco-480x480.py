# Ablation (paper): the LAVT-style baseline: no alignment module, no Mask
# Grounding, no alignment loss (segmentation loss only).
_base_ = ['../magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480.py']
model = dict(
    backbone=dict(use_alignment=False),
    mask_grounding=None,
    alignment_loss=None)
