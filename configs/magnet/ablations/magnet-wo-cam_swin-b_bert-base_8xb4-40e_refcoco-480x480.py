# Ablation (paper): MagNet without the cross-modal alignment module (the
# normalised PWAM output feeds the decoder, as in LAVT); Mask Grounding and
# the alignment loss stay on.
_base_ = ['../magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480.py']
model = dict(backbone=dict(use_alignment=False))
