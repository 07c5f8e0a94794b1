default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='RefSegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
tta_model = None
# DDP: some parameters get no gradient in a step (modules whose output does
# not reach the losses, e.g. the last stage's gate, unused norms, and the
# training objectives when switched off)
find_unused_parameters = True
