# Ablation (cpu): MagNet without the cross-modal alignment module (the
# normalised PWAM output feeds the decoder, as in LAVT); Mask Grounding and
# the alignment loss stay on.
_base_ = ['../magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py']
model = dict(backbone=dict(use_alignment=False))
