# MagNet, paper recipe on gRefCOCO (GRES: expressions naming one object,
# several or none): Swin-B (22K, window 12) + BERT-base, 480x480, AdamW +
# poly, 40 epochs, batch 32 (4 per GPU x 8 GPUs), with the no-target
# decision (docs/training.md "No-target expressions") and GRefSegMetric.
_base_ = [
    '../_base_/models/magnet_swin-b_bert-base.py',
    '../_base_/datasets/grefcoco.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40e.py'
]
model = dict(
    decode_head=dict(no_target=dict(loss_weight=1.0)),
    test_cfg=dict(no_target_threshold=0.5))
train_dataloader = dict(batch_size=4)
