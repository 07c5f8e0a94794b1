# CPU config on the generated referring dataset (the main job of `make demo`):
# the small MagNet trained from scratch (vision) / from all-MiniLM-L6-v2
# (language) on 2 CPU cores, for a fixed wall-time budget (10 min of
# training, configs/_base_/schedules/schedule_10min_cpu.py).
_base_ = [
    '../_base_/models/magnet_swin-nano_minilm-l6.py',
    '../_base_/datasets/refsynth.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_10min_cpu.py'
]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# Data loading costs ~12 ms per batch of 8 in the main process (0.5% of a
# step, .dev_scripts/profile_model.py --mode train --real-data): worker
# processes would only compete with the two compute threads.
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
# the pretrained language model learns at a tenth of the rate
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'text_encoder.bert': dict(lr_mult=0.1)}))
# No val loop at the end of training (the schedule's default): the main job
# evaluates val / testA / testB right after (tools/test.py does the same for
# a user); the learning curve evaluates a fixed val subset during training.
# (merged with the base runtime's default hooks, checkpoint_trust included)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(_delete_=True, type='CheckpointHook', by_epoch=False,
                    interval=_base_.max_iters, save_last=True))
# learning_curve.json / .png in the work dir: val oIoU (overall, per
# expression kind and length) on 200 fixed val sentences, and the losses
custom_hooks = [
    dict(type='LearningCurveHook', fractions=(0.2, 0.4, 0.6, 0.8, 1.0),
         num_samples=200)
]
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
