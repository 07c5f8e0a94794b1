# Ablation (paper): MagNet without Mask Grounding.
_base_ = ['../magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480.py']
model = dict(mask_grounding=None)
