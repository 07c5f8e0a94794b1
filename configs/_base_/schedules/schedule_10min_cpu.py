# The CPU recipe for a fixed wall-time budget (10 minutes of training):
# TimeBudgetTrainLoop measures the first iterations and sets the number of
# iterations, and the schedule is stretched to that length, so a slower
# machine trains fewer iterations with a complete schedule. AdamW (lr 1e-3,
# wd 1e-2, gradients clipped at norm 1), no weight decay on norms and
# position tables, linear warm-up then per-iteration poly (power 0.9).
# Used by every CPU config (referring and pre-training); a config with
# another budget sets ``max_time`` and ``train_cfg.max_time`` together.
# GuardedOptimWrapper = mmengine's OptimWrapper that stops on a NaN / Inf
# loss or gradient, naming the samples (nonfinite='skip' drops the step).
max_time = 600  # seconds of training
max_iters = 100000  # upper bound; the loop sets the real length
warmup_iters = 30
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    nonfinite='error',
    # fused: one kernel per parameter instead of ~10 ops (the same update
    # within float rounding; 0.11 -> 0.05 s of the CPU config's step)
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.01, fused=True),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        custom_keys={
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
# No val loop during training by default (val_begin past the end).
train_cfg = dict(type='TimeBudgetTrainLoop', max_time=max_time,
                 max_iters=max_iters, min_iters=warmup_iters + 1,
                 calibrate_iters=15, skip_iters=3, val_begin=max_iters + 1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
