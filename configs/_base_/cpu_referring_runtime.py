# What the CPU referring configs (generated referring and GRES datasets, the
# CPU ablations) add to the default runtime and the 10-minute CPU schedule:
# gloo, the language model at a tenth of the rate, per-iteration logging and
# one checkpoint at the end, the learning curve, a fixed seed.
_base_ = ['./default_runtime.py', './schedules/schedule_10min_cpu.py']

env_cfg = dict(dist_cfg=dict(backend='gloo'))
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
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
# learning_curve.json / .png in the work dir: val oIoU (overall, per
# expression kind and length) on 200 fixed val sentences, and the losses
custom_hooks = [
    dict(type='LearningCurveHook', fractions=(0.2, 0.4, 0.6, 0.8, 1.0),
         num_samples=200)
]
