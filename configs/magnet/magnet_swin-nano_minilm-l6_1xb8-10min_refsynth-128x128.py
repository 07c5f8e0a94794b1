# CPU config on the generated referring dataset (the main job of `make demo`):
# the small MagNet trained from scratch (vision) / from all-MiniLM-L6-v2
# (language) on 2 CPU cores, for a fixed wall-time budget (10 min of
# training): TimeBudgetTrainLoop measures the first iterations and sets the
# number of iterations, and the schedule is stretched to that length, so a
# slower machine trains fewer iterations with a complete schedule.
_base_ = [
    '../_base_/models/magnet_swin-nano_minilm-l6.py',
    '../_base_/datasets/refsynth.py', '../_base_/default_runtime.py'
]
max_time = 600  # seconds of training
max_iters = 100000  # upper bound; the loop sets the real length
warmup_iters = 30
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# Data loading costs ~12 ms per batch of 8 in the main process (0.5% of a
# step, .dev_scripts/profile_train_step.py --real-data): worker
# processes would only compete with the two compute threads.
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    nonfinite='error',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.01),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        custom_keys={
            'text_encoder.bert': dict(lr_mult=0.1),
            'norm': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'absolute_pos_embed': dict(decay_mult=0.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0,
         end=warmup_iters),
    # its end is moved to the budgeted length by TimeBudgetTrainLoop
    dict(type='PolyLR', eta_min=0., power=0.9, by_epoch=False,
         begin=warmup_iters, end=max_iters)
]
# No val loop at the end of training: the main job evaluates val / testA /
# testB right after (tools/test.py does the same for a user); the learning
# curve evaluates a fixed val subset during training.
train_cfg = dict(type='TimeBudgetTrainLoop', max_time=max_time,
                 max_iters=max_iters, min_iters=warmup_iters + 1,
                 calibrate_iters=15, skip_iters=3, val_begin=max_iters + 1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# (merged with the base runtime's default hooks, checkpoint_trust included)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(_delete_=True, type='CheckpointHook', by_epoch=False,
                    interval=max_iters, save_last=True))
# learning_curve.json / .png in the work dir: val oIoU (overall, per
# expression kind and length) on 200 fixed val sentences, and the losses
custom_hooks = [
    dict(type='LearningCurveHook', fractions=(0.2, 0.4, 0.6, 0.8, 1.0),
         num_samples=200)
]
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
