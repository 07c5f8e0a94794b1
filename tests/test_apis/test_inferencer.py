"""MagNetInferencer (a BaseInferencer): pipeline, loader, test_cfg."""
from __future__ import annotations

import io

import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import Compose
from mmengine.infer import BaseInferencer
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from projects.magnet.apis import (MagNetInferencer, RefSegResult,
                                  build_inference_pipeline, inference_model,
                                  load_image)
from projects.magnet.apis.result import referent_maps
from projects.magnet.datasets.transforms.image_loading import (
    LoadInferenceImage, LoadReferImageFromFile, decode_image_bytes)

from . import MODEL_SIZE, tiny_config


def _jpeg(path, rgb, exif_orientation=None):
    pil = Image.fromarray(rgb)
    if exif_orientation is None:
        pil.save(path, quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        pil.save(path, quality=90, exif=exif.tobytes())
    return str(path)


# ------------------------------------------------------------- structure
def test_is_a_base_inferencer_with_its_pipeline_from_init_pipeline(
        tiny_files):
    calls = []

    class Spy(MagNetInferencer):

        def _init_pipeline(self, cfg):
            calls.append(cfg)
            return super()._init_pipeline(cfg)

    cfg_file, ckpt = tiny_files
    spy = Spy(cfg_file, ckpt, device='cpu')
    assert isinstance(spy, BaseInferencer) and len(calls) == 1
    assert isinstance(spy.pipeline, Compose)
    names = [type(t).__name__ for t in spy.pipeline.transforms]
    assert names == ['LoadInferenceImage', 'TokenizeText', 'Resize',
                     'PackSegInputs']
    for name in ('preprocess', 'forward', 'visualize', 'postprocess'):
        assert getattr(MagNetInferencer, name) is not getattr(
            BaseInferencer, name, None)
    assert spy._visualizer is None  # built on first use


# -------------------------------------------------------- loader / decoder
def test_path_and_array_inputs_give_identical_results(inferencer, image_bgr,
                                                      tmp_path):
    """A JPEG decoded by the config's loader (pillow, no EXIF rotation) is
    the array the same model gets: bit-identical results."""
    jpg = _jpeg(tmp_path / 'img.jpg', image_bgr[..., ::-1])
    decoded = LoadImageFromFile(imdecode_backend='pillow',
                                color_type='color_ignore_orientation')(
                                    dict(img_path=jpg))['img']
    by_path = inferencer(jpg, ['the red square', 'the blue one'])
    by_array = inferencer(decoded, ['the red square', 'the blue one'])
    np.testing.assert_array_equal(by_path.image, decoded[..., ::-1])
    np.testing.assert_array_equal(by_path.probs, by_array.probs)
    np.testing.assert_array_equal(by_path.masks, by_array.masks)
    assert by_path.img_path == jpg and by_array.img_path is None


def test_loader_follows_the_configured_color_type(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (20, 30, 3), np.uint8)
    jpg = _jpeg(tmp_path / 'rot.jpg', rgb, exif_orientation=6)
    assert load_image(jpg).shape == (20, 30, 3)  # orientation ignored
    rotating = LoadInferenceImage(dict(type='LoadImageFromFile',
                                       imdecode_backend='pillow',
                                       color_type='color'))
    assert isinstance(rotating.from_file, LoadReferImageFromFile)
    assert load_image(jpg, loader=rotating).shape == (30, 20, 3)


def test_loader_modes_16bit_la_and_palette(tmp_path):
    gray16 = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1300)
    p16 = str(tmp_path / 'g16.png')
    Image.fromarray(gray16).save(p16)
    assert Image.open(p16).mode.startswith('I')
    expected = np.clip((gray16 / 257.0).round(), 0, 255).astype(np.uint8)
    out = load_image(p16)
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out[..., 0], expected)
    la = np.stack([np.full((4, 4), 77, np.uint8),
                   np.arange(16, dtype=np.uint8).reshape(4, 4) * 16], -1)
    pla = str(tmp_path / 'la.png')
    Image.fromarray(la, mode='LA').save(pla)
    np.testing.assert_array_equal(load_image(pla), 77)  # alpha dropped
    pal = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), mode='P')
    pal.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    ppal = str(tmp_path / 'pal.png')
    pal.save(ppal, transparency=1)
    np.testing.assert_array_equal(
        load_image(ppal, 'rgb'),
        [[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [40, 50, 60]]])
    # 8-bit RGB: exactly mmcv's decoding
    rgb = np.random.default_rng(2).integers(0, 255, (5, 7, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format='PNG')
    np.testing.assert_array_equal(
        decode_image_bytes(buf.getvalue(), 'color_ignore_orientation',
                           'pillow'),
        mmcv.imfrombytes(buf.getvalue(), 'color_ignore_orientation',
                         backend='pillow'))


def test_loader_errors_name_the_path(tmp_path):
    loader = LoadInferenceImage()
    with pytest.raises(FileNotFoundError, match='gone.png'):
        loader(dict(img=str(tmp_path / 'gone.png')))
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'\x89PNG not really')
    with pytest.raises(ValueError, match='cannot read image file .*bad.png'):
        loader(dict(img=str(bad)))
    with pytest.raises(TypeError, match='path or a numpy array'):
        loader(dict(img=3.5))
    with pytest.raises(ValueError, match='uint8'):
        loader(dict(img=np.zeros((4, 4), np.int32)))
    out = loader(dict(img=np.zeros((4, 5), np.uint8), img_path='x.png'))
    assert out['img'].shape == (4, 5, 3) and out['img_path'] == 'x.png'
    assert out['ori_shape'] == (4, 5)


# --------------------------------------------------------------- test_cfg
def test_threshold_argument_changes_only_that_call(inferencer, image_bgr):
    model = inferencer.model
    assert model.test_cfg.threshold == 0.5
    low = inferencer(image_bgr, 'the red square', threshold=0.3)
    assert low.threshold == 0.3 and model.test_cfg.threshold == 0.5
    np.testing.assert_array_equal(low.masks, low.probs > 0.3)
    pred = low.data_samples[0].pred_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(pred, low.probs[0] > 0.3)
    default = inferencer(image_bgr, 'the red square')
    assert default.threshold == 0.5
    np.testing.assert_array_equal(default.masks, default.probs > 0.5)
    np.testing.assert_array_equal(default.probs, low.probs)
    # restored after a failing forward too
    real = model.test_step

    def failing(data):
        assert model.test_cfg.threshold == 0.9
        raise RuntimeError('boom')

    model.test_step = failing
    try:
        with pytest.raises(RuntimeError, match='boom'):
            inferencer(image_bgr, 'x', threshold=0.9)
    finally:
        del model.test_step
    assert model.test_step == real
    assert model.test_cfg.threshold == 0.5
    assert model.test_cfg.output_size == inferencer.model_output_size
    with pytest.raises(ValueError, match='threshold'):
        inferencer(image_bgr, 'x', threshold=1.5)


def test_output_size_comes_from_the_model_test_cfg(inferencer, image_bgr):
    model = inferencer.model
    assert inferencer.model_output_size == 'input'  # the config's
    seen = []
    real = model.postprocess_result

    def spy(seg_logits, data_samples=None):
        seen.append((model.test_cfg.output_size, tuple(seg_logits.shape)))
        return real(seg_logits, data_samples)

    model.postprocess_result = spy
    try:
        res = inferencer(image_bgr, ['the red square', 'the blue one'])
        small = inferencer(image_bgr, 'the red square', output_size='input')
    finally:
        del model.postprocess_result
    # the model got logits at its input size and its test_cfg decided
    assert seen == [('original', (2, 1) + MODEL_SIZE),
                    ('input', (1, 1) + MODEL_SIZE)]
    assert res.probs.shape == (2, 48, 80)  # original size by default
    for i, sample in enumerate(res.data_samples):
        np.testing.assert_array_equal(res.probs[i],
                                      sample.seg_logits.data[0].numpy())
    assert small.probs.shape == (1, ) + MODEL_SIZE
    assert model.test_cfg.output_size == 'input'


def test_inference_model_keeps_the_model_as_it_is(tiny_files, image_bgr):
    from projects.magnet.apis import init_model
    cfg_file, ckpt = tiny_files
    model = init_model(cfg_file, ckpt)
    before = dict(model.test_cfg)
    res = inference_model(model, image_bgr, ['a', 'b'], threshold=0.2)
    assert dict(model.test_cfg) == before
    assert res.masks.shape == (2, 48, 80) and res.threshold == 0.2
    assert next(model.parameters()).device.type == 'cpu'


# --------------------------------------------------- inputs and outputs
def test_dict_inputs_and_datasamples(inferencer, image_bgr, tmp_path):
    png = str(tmp_path / 'img.png')
    Image.fromarray(image_bgr[..., ::-1]).save(png)
    both = inferencer([dict(img=image_bgr, text=['the red square', 'x']),
                       dict(img=png, text='the blue one')], batch_size=2)
    assert [len(r) for r in both] == [2, 1]
    one = inferencer(image_bgr, ['the red square', 'x'])
    np.testing.assert_allclose(both[0].probs, one.probs, atol=1e-6)
    single = inferencer(dict(img=png, text='the blue one'))
    assert isinstance(single, RefSegResult) and single.img_path == png
    np.testing.assert_allclose(both[1].probs, single.probs, atol=1e-6)
    samples = inferencer(image_bgr, ['a', 'b'], return_datasamples=True)
    assert len(samples) == 2 and all(
        isinstance(s, SegDataSample) for s in samples)
    with pytest.raises(TypeError, match='dict\\(img=image'):
        inferencer(image_bgr)
    with pytest.raises(TypeError, match='expressions go with one image'):
        inferencer([dict(img=png, text='a')], 'b')
    with pytest.raises(ValueError, match='unknown argument'):
        inferencer(image_bgr, 'a', thresh=0.3)


def test_visualize_draws_what_postprocess_returns(inferencer, image_bgr,
                                                  tmp_path):
    out_file = str(tmp_path / 'overlay.png')
    res = inferencer(image_bgr, ['the red square', 'the blue one'],
                     out_file=out_file, threshold=0.45, alpha=0.4)
    assert res.visualization.shape == (48, 80, 3)
    expected = inferencer.visualizer.draw_expression_masks(
        res.image, res.masks, res.expressions, alpha=0.4)
    np.testing.assert_array_equal(res.visualization, expected)
    written = np.asarray(Image.open(out_file).convert('RGB'))
    np.testing.assert_array_equal(written, expected)
    small = inferencer(image_bgr, 'x', output_size='input',
                       out_file=str(tmp_path / 'small.png'))
    assert small.visualization.shape == MODEL_SIZE + (3, )
    assert inferencer(image_bgr, 'x').visualization is None


def test_two_class_head_maps():
    """A stock 2-class head: class 1's probability, argmax mask."""
    prob = torch.rand(2, 3, 4)
    prob = prob / prob.sum(0, keepdim=True)
    sample = SegDataSample()
    sample.seg_logits = PixelData(data=prob)
    sample.pred_sem_seg = PixelData(data=prob.argmax(0, keepdim=True))
    p, m = referent_maps(sample)
    np.testing.assert_allclose(p, prob[1].numpy())
    np.testing.assert_array_equal(m, (prob[1] > prob[0]).numpy())


def test_pipeline_from_a_config_with_an_array_loader(minilm_dir):
    cfg = tiny_config(minilm_dir)
    pipe = cfg['test_dataloader']['dataset']['datasets'][0]['pipeline']
    pipe = [dict(type='LoadImageFromArray')] + pipe[1:]
    pipeline = build_inference_pipeline(pipe)
    loader = pipeline.transforms[0]
    assert isinstance(loader, LoadInferenceImage)
    assert loader.from_file.color_type == 'color_ignore_orientation'
