# Ablation (paper): MagNet without the cross-modal alignment loss.
_base_ = ['../magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480.py']
model = dict(alignment_loss=None)
