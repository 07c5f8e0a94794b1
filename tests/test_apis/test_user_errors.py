"""Errors a user can fix are :class:`UserError` s in every module family
(segmentor config, layers, objectives, language encoder, metric,
visualiser, dataset generator, image loader, benchmark arguments, the
inference API's build) and keep their built-in type; a bad model config
given to the demo ends with one ``error:`` line naming the key."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from PIL import Image

from projects.magnet.utils import UserError, run_cli

from ..conftest import load_tool, tiny_magnet_cfg
from . import tiny_config


def _build(cfg: dict):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS.build(cfg)


def _tiny(**model_changes):
    """The tiny MagNet config with ``{'part.key': value}`` changes."""
    cfg = copy.deepcopy(tiny_magnet_cfg())
    for dotted, value in model_changes.items():
        node = cfg
        *path, last = dotted.split('.')
        for key in path:
            node = node[key]
        node[last] = value
    return cfg


def _segmentor(**changes):
    return lambda: _build(_tiny(**changes))


def _mask_grounding(**head):
    mg = dict(type='MaskGroundingHead', text_channels=32,
              visual_channels=128, hidden_channels=32, num_heads=2,
              visual_level=3, vocab_size=30522)
    mg.update(head)
    return lambda: _build(_tiny(mask_grounding=mg))


def _metric(**kwargs):
    from projects.magnet.evaluation import RefSegMetric
    return lambda: RefSegMetric(**kwargs)


def _metric_sample(pred, gt=None, **meta):
    def run():
        from projects.magnet.evaluation import RefSegMetric
        sample = dict(img_path='img7.jpg', ref_id=3, sent_id=9, **meta)
        if pred is not None:
            sample['pred_sem_seg'] = dict(data=torch.as_tensor(pred)[None])
        if gt is not None:
            sample['gt_sem_seg'] = dict(data=torch.as_tensor(gt)[None])
        RefSegMetric().process({}, [sample])
    return run


def _benchmark(*argv):
    return lambda: load_tool('tools/analysis_tools/benchmark.py').parse_args(
        ['config.py', *argv])


def _init_model(**changes):
    def run():
        from projects.magnet.apis import init_model
        cfg = tiny_config('unused-tokenizer')
        cfg['model'] = _tiny(**changes)
        init_model(cfg, None)
    return run


ZEROS = np.zeros((4, 4), np.int64)
CASES = [
    # segmentor config (checked once the parts are built)
    ('fusion-width', _segmentor(**{'backbone.text_channels': 48}),
     ValueError, ['backbone.text_channels=48', 'set backbone.text_channels'
                  '=32']),
    ('vision-widths', _segmentor(**{
        'text_encoder.vision_channels': (16, 32, 64, 96)}), ValueError,
     ['text_encoder.vision_channels=(16, 32, 64, 96)', '(16, 32, 64, 128)']),
    ('stages', _segmentor(**{'text_encoder.stage_ends': (2, 4),
                             'text_encoder.vision_channels': (16, 32),
                             'text_encoder.fusion_heads': (1, 1)}),
     ValueError, ['text_encoder has 2 stages', 'the backbone has 4']),
    ('test-threshold', _segmentor(test_cfg=dict(threshold=1.5)), ValueError,
     ['test_cfg.threshold', '1.5']),
    ('sentence-pooling', _segmentor(sentence_pooling='max'), ValueError,
     ['sentence_pooling', "'max'"]),
    ('mask-grounding-level', _mask_grounding(visual_level=7), ValueError,
     ['mask_grounding.visual_level=7', '4 stages']),
    ('mask-grounding-width', _mask_grounding(visual_channels=64),
     ValueError, ['mask_grounding.visual_channels=64',
                  'mask_grounding.visual_channels=128']),
    ('alignment-width', _segmentor(
        alignment_loss=dict(type='CrossModalAlignmentLoss'),
        lang_proj_dim=24), ValueError,
     ['lang_proj_dim=24', 'mask_channels=32']),
    # layers, objectives, language encoder
    ('pwam-heads', lambda: load_pwam()(channels=30, text_channels=8,
                                       num_heads=4), ValueError,
     ['channels (30)', 'num_heads (4)']),
    ('token-masking', lambda: _build(dict(type='TokenMasker', ratio=1.5)),
     ValueError, ['ratio', '1.5']),
    ('gate-init', _segmentor(**{'backbone.gate_init': 'ones'}), ValueError,
     ['gate init', "'ones'"]),
    ('alignment-temperature', lambda: _build(dict(
        type='CrossModalAlignmentLoss', temperature=0)), ValueError,
     ['temperature must be > 0, got 0']),
    ('bert-stage-ends', _segmentor(**{'text_encoder.stage_ends': (1, 2, 3,
                                                                  5)}),
     ValueError, ['stage_ends (1, 2, 3, 5)', 'num_hidden_layers=4']),
    ('bert-frozen-layers', _segmentor(**{'text_encoder.frozen_layers': (9,
                                                                        )}),
     ValueError, ['frozen_layers [9]', '4 BERT layers']),
    # the metric: its arguments and the sample it cannot score
    ('metric-thresholds', _metric(iou_thrs=(0.5, 1.5)), ValueError,
     ['iou_thrs', '(0.5, 1.5)']),
    ('metric-argument', _metric(iou_metrics=['mIoU']), TypeError,
     ["['iou_metrics']"]),
    ('metric-buckets', _metric(length_buckets=(4, 2)), ValueError,
     ['length_buckets', '[4, 2]']),
    ('metric-probabilities', _metric_sample(ZEROS + 0.7, ZEROS), ValueError,
     ['img7.jpg ref_id=3 sent_id=9', '"pred_sem_seg"', '0.7']),
    ('metric-sizes', _metric_sample(ZEROS, np.zeros((5, 5), np.int64)),
     ValueError, ['img7.jpg ref_id=3 sent_id=9', '(4, 4)', '(5, 5)']),
    ('metric-no-prediction', _metric_sample(None, ZEROS), KeyError,
     ['img7.jpg ref_id=3 sent_id=9', 'no "pred_sem_seg"']),
    ('metric-empty', lambda: _metric()().compute_metrics([]), ValueError,
     ['no sample to score']),
    # the visualiser
    ('visualiser-sizes', lambda: load_vis().sample_iou(ZEROS, np.zeros(
        (3, 3))), ValueError, ['(4, 4)', '(3, 3)', 'differ in size']),
    ('visualiser-masks', lambda: load_vis().RefSegLocalVisualizer(
        name='user_errors_vis').draw_expression_masks(
            np.zeros((4, 4, 3), np.uint8), np.zeros((2, 4, 4), bool),
            ['one expression']), ValueError,
     ['2 masks but 1 expressions']),
    ('visualiser-grid', lambda: load_vis().prediction_grid([], cols=0),
     ValueError, ['cols must be >= 1, got 0']),
    # the image loader of arrays
    ('image-array', lambda: load_transforms().LoadImageFromArray()(dict(
        img_path='x.png')), KeyError, ['LoadImageFromArray needs "img"',
                                       "['img_path']"]),
    # the benchmark's arguments
    ('benchmark-repeat', _benchmark('--repeat', '0'), ValueError,
     ['--repeat must be >= 1', 'got 0']),
    # the inference API's build
    ('init-model-width', _init_model(**{'backbone.text_channels': 48}),
     ValueError, ['backbone.text_channels=48']),
    ('init-model-argument', _init_model(**{'backbone.embed_dim': 16}),
     ValueError, ['the config: cannot build the model', 'embed_dim']),
    ('init-model-type', _init_model(**{'decode_head.type': 'NoSuchHead'}),
     ValueError, ['the config: cannot build the model', 'NoSuchHead']),
    ('init-model-bert-weights', _init_model(**{
        'text_encoder.init_cfg': dict(type='Pretrained',
                                      checkpoint='/no/such/bert')}),
     OSError, ["text_encoder.init_cfg.checkpoint='/no/such/bert'",
               'cannot load BERT weights']),
    ('as-config', lambda: load_apis().as_config(42), TypeError,
     ['config must be a file path', 'got int']),
]


def load_pwam():
    from projects.magnet.models.layers.pwam import PixelWordAttention
    return PixelWordAttention


def load_vis():
    import projects.magnet.visualization as vis
    return vis


def load_transforms():
    from projects.magnet.datasets import transforms
    return transforms


def load_apis():
    from projects.magnet.apis import model
    return model


@pytest.mark.parametrize('make, builtin, needles',
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_mistakes_are_user_errors_of_the_old_type(make, builtin,
                                                       needles):
    with pytest.raises(builtin) as info:
        make()
    assert isinstance(info.value, UserError), type(info.value).__mro__
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)


@pytest.mark.parametrize('kwargs, needles', [
    (dict(min_objects=5, max_objects=2),
     ['min_objects=5', 'max_objects=2']),
    (dict(num_shapes=(1, 9)), ['num_shapes', '<= 6', '(1, 9)']),
    (dict(num_colours=(0, 2)), ['num_colours', '(0, 2)']),
    (dict(occlusion_prob=1.5), ['occlusion_prob', '[0, 1]', '1.5']),
    (dict(image_format='gif'), ['image_format', "'gif'"]),
    (dict(train_kind_weights={'colour': 1.0}), ['unknown expression kinds',
                                                "['colour']"]),
], ids=['objects', 'shapes', 'colours', 'probability', 'format', 'kinds'])
def test_generator_parameters_are_refused_before_writing(
        kwargs, needles, tmp_path):
    from projects.magnet.datasets.refsynth import generate_refer_dataset
    out = tmp_path / 'refsynth'
    with pytest.raises(ValueError) as info:
        generate_refer_dataset(str(out), num_train_images=1,
                               num_val_images=0, num_test_images=0,
                               img_size=32, progress=False, **kwargs)
    assert isinstance(info.value, UserError)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
    assert not out.exists()  # nothing half-written


def test_a_programming_mistake_keeps_its_built_in_type():
    """Calling the segmentor without the expressions' tokens is a mistake
    of the calling code, not of the user's config: not a UserError (its
    traceback is shown)."""
    model = _build(_tiny())
    with pytest.raises(ValueError) as info:
        model.extract_feat(torch.zeros(1, 3, 64, 64), None)
    assert not isinstance(info.value, UserError)


def _one_error(capsys, code, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1, err
    errors = [line for line in err if line.startswith('error: ')]
    assert len(errors) == 1, err[-5:]
    assert not any('Traceback' in line for line in err), err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def test_demo_with_a_wrong_fusion_width_ends_with_one_error_line(
        tiny_files, tmp_path, capsys, monkeypatch):
    cfg_file, _ = tiny_files
    image = tmp_path / 'img.png'
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    out = tmp_path / 'demo.png'
    monkeypatch.delenv('MAGNET_TRACEBACK', raising=False)
    demo = load_tool('demo/image_demo.py')
    code = demo.main([str(image), 'the cat', '--config', cfg_file,
                      '--out-file', str(out), '--device', 'cpu',
                      '--cfg-options', 'model.backbone.text_channels=48'])
    _one_error(capsys, code, 'backbone.text_channels=48',
               'set backbone.text_channels=32')
    assert not out.exists()


def test_run_cli_around_init_model_with_an_unknown_argument(
        tiny_files, capsys, monkeypatch):
    from projects.magnet.apis import init_model
    cfg_file, _ = tiny_files
    monkeypatch.delenv('MAGNET_TRACEBACK', raising=False)
    code = run_cli(lambda: init_model(
        cfg_file, None, cfg_options={'model.backbone.embed_dim': 16}))
    _one_error(capsys, code, cfg_file, 'cannot build the model',
               'embed_dim')
