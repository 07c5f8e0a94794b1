# Ablation (paper): Mask Grounding plugged into the LAVT-style baseline (no
# alignment module, no alignment loss) by config alone.
_base_ = ['../magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480.py']
model = dict(backbone=dict(use_alignment=False), alignment_loss=None)
