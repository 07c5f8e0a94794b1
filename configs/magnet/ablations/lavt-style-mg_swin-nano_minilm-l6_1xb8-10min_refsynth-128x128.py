# Ablation (cpu): Mask Grounding plugged into the LAVT-style baseline (no
# alignment module, no alignment loss) by config alone.
_base_ = ['../magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py']
model = dict(backbone=dict(use_alignment=False), alignment_loss=None)
