# Ablation (cpu): MagNet without the cross-modal alignment loss.
_base_ = ['../magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py']
model = dict(alignment_loss=None)
