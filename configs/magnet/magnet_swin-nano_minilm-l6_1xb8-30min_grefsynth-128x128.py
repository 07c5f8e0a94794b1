# CPU config on the generated GRES dataset (refs naming one object, several
# or none; configs/_base_/datasets/grefsynth.py): the small MagNet of the
# CPU referring config (magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-
# 128x128.py, 2 CPU cores, the same CPU runtime) with the no-target decision
# on, GRefSegMetric, and 30 minutes of training: in 10 minutes the decision
# stays at "always a target" (N_acc 0); it starts to tell no-target
# expressions apart after about 15 minutes (docs/training.md, "No-target
# expressions"). Generate the data first:
#   python tools/dataset_converters/generate_refer_dataset.py --gres \
#       --out data/grefsynth
_base_ = [
    '../_base_/models/magnet_swin-nano_minilm-l6.py',
    '../_base_/datasets/grefsynth.py', '../_base_/cpu_referring_runtime.py'
]
# no-target expressions (docs/training.md "No-target expressions"): the
# class branch learns "refers to nothing", predictions carry pred_no_target
model = dict(
    decode_head=dict(no_target=dict(loss_weight=1.0)),
    test_cfg=dict(no_target_threshold=0.5))
# 30 minutes of training (the loop sets the iterations from the measured
# speed; the schedule ends with them)
max_time = 1800
train_cfg = dict(max_time=max_time)
# data loading in the main process, as the referring CPU config
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
# tools/test.py evaluates val / testA / testB; the learning curve follows val
# gIoU (and the other GRES scores) and the losses (decode.loss_cls carries
# the no-target decision)
custom_hooks = [
    dict(_base_.custom_hooks[0], metric='gIoU',
         fractions=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
         losses=('loss', 'decode.loss_cls', 'decode.loss_mask',
                 'decode.loss_dice', 'loss_mg', 'loss_cal_p2p',
                 'loss_cal_p2t'))
]
