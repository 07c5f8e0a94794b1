# CPU config on the generated referring dataset (the main job of `make demo`):
# the small MagNet trained from scratch (vision) / from all-MiniLM-L6-v2
# (language) on 2 CPU cores, for a fixed wall-time budget (10 min of
# training, configs/_base_/schedules/schedule_10min_cpu.py; the CPU runtime
# settings in configs/_base_/cpu_referring_runtime.py).
_base_ = [
    '../_base_/models/magnet_swin-nano_minilm-l6.py',
    '../_base_/datasets/refsynth.py', '../_base_/cpu_referring_runtime.py'
]
# Data loading costs ~12 ms per batch of 8 in the main process (0.5% of a
# step, .dev_scripts/profile_model.py --mode train --real-data): worker
# processes would only compete with the two compute threads.
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
