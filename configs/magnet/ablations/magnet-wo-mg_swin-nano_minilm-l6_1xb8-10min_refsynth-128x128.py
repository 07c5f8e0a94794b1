# Ablation (cpu): MagNet without Mask Grounding.
_base_ = ['../magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py']
model = dict(mask_grounding=None)
