# MagNet, paper recipe on refcoco: Swin-B (22K, window 12) + BERT-base,
# 480x480, AdamW + poly, 40 epochs, batch 32 (4 per GPU x 8 GPUs).
_base_ = [
    '../_base_/models/magnet_swin-b_bert-base.py',
    '../_base_/datasets/refcoco.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40e.py'
]
train_dataloader = dict(batch_size=4)
