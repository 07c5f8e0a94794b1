default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='RefSegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # mmengine's LoggerHook; the end-of-test metrics JSON is written by the
    # main process only (every rank would write the same file at once)
    logger=dict(type='MainProcessLoggerHook', interval=50,
                log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1,
                    max_keep_ckpts=3, save_best='oIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
    # the project's checkpoint trust policy for this run (weights-only
    # loading; full unpickling only under work_dir):
    # projects/magnet/compat/checkpoint.py
    checkpoint_trust=dict(type='CheckpointTrustHook'),
    # exact resume: the generators' state is saved with each checkpoint and
    # restored on --resume; evaluations during training leave it untouched
    random_state=dict(type='RandomStateHook'),
    # names the samples of a batch whose loss / gradient is NaN / Inf
    # (optim_wrapper type 'GuardedOptimWrapper', nonfinite='error'|'skip')
    batch_identity=dict(type='BatchIdentityHook'),
    # trainable parameters without gradient in the first iterations (a
    # warning; strict=True: an error), and every `interval` iterations the
    # per-module gradient norms and the fusion gates' openness as
    # visualizer scalars (TensorBoard-compatible)
    gradient_health=dict(type='GradientHealthHook', check_iters=3,
                         interval=50))
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
tta_model = None
# DDP: every trainable parameter gets a gradient in every step (MagNet
# freezes the parameters no loss can move: model.frozen_inert), so DDP need
# not search the graph for unused ones each iteration. A model with a branch
# that reaches no loss fails here at the second iteration; the
# gradient_health hook names such parameters in the first one.
find_unused_parameters = False
