# The LAVT/MagNet recipe: AdamW (lr 5e-5, wd 1e-2), no weight decay on norms
# and position tables, per-iteration poly (power 0.9) decay over 40 epochs,
# no warm-up; batch 32 (e.g. 8 GPUs x 4 or 4 x 8).
# GuardedOptimWrapper = mmengine's OptimWrapper that stops on a NaN / Inf
# loss or gradient, naming the samples (nonfinite='skip' drops the step).
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    nonfinite='error',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys=dict(
            norm=dict(decay_mult=0.),
            relative_position_bias_table=dict(decay_mult=0.),
            absolute_pos_embed=dict(decay_mult=0.))))
param_scheduler = [
    dict(type='PolyLR', eta_min=0., power=0.9, begin=0, end=40,
         by_epoch=True, convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=40, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
