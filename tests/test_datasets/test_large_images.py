"""Images far larger than the model input: downscaled at load (max_size),
one log line, geometry kept (mask at the loaded size, ori_shape the file's,
predictions back at the original size)."""
import io

import numpy as np
import pytest
from mmseg.registry import TRANSFORMS
from PIL import Image, JpegImagePlugin

from projects.magnet.datasets.transforms import (DEFAULT_MAX_SIZE,
                                                 ImageFileError,
                                                 LoadInferenceImage,
                                                 LoadReferringMask,
                                                 bounded_size,
                                                 decode_image_bytes,
                                                 decode_refer_mask)
from projects.magnet.datasets.transforms.image_loading import \
    DEFAULT_FILE_LOADER
from projects.magnet.utils.errors import UserError


def _picture(h, w):
    """Smooth colours and a dark rectangle over the middle third."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h,
                    np.full_like(xx, 160)], -1).astype(np.uint8)
    rgb[h // 3:2 * h // 3, w // 3:2 * w // 3] = 10
    return rgb


def _file(tmp_path, name, rgb, fmt, **kwargs):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kwargs)
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    return str(path), buf.getvalue()


def _loader(**kwargs):
    return TRANSFORMS.build(dict(DEFAULT_FILE_LOADER, **kwargs))


def test_bounded_size_keeps_the_aspect_ratio():
    assert bounded_size((8000, 8000), 4096) == (4096, 4096)
    assert bounded_size((3000, 4000), 500) == (375, 500)
    assert bounded_size((2, 9000), 100) == (1, 100)  # never 0
    assert bounded_size((300, 200), 500) == (300, 200)  # fits: unchanged
    assert bounded_size((9000, 9000), None) == (9000, 9000)
    assert DEFAULT_MAX_SIZE == 2048


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch,
                                                logged):
    path, _ = _file(tmp_path, 'big.jpg', _picture(1200, 1600), 'JPEG',
                    quality=90)
    decoded_at = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def draft(self, mode, size):
        out = real_draft(self, mode, size)
        decoded_at.append(self.size)
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, 'draft', draft)
    out = _loader(max_size=300)(dict(img_path=path, height=1200,
                                     width=1600, image_id=1))
    # libjpeg decoded at 1/4 (400x300: the largest DCT scale still >= the
    # bound), never at the full 1600x1200; then resized to the bound
    assert decoded_at == [(400, 300)]
    assert out['img'].shape == (225, 300, 3)
    assert out['img_shape'] == (225, 300)
    assert out['ori_shape'] == (1200, 1600)  # the file's, recorded size
    # the picture is kept: the dark middle third is where it was
    small = out['img'][..., ::-1].astype(int)
    assert small[80:145, 105:195].mean() < 20
    assert small[:60].mean() > 60
    assert logged == [
        f'{path}: the 1200x1600 (height x width) image is downscaled at '
        'load to 225x300 (max_size=300); ori_shape stays 1200x1600, '
        'predictions are resized back to it'
    ]
    # a bound at a DCT scale: decoded straight at it (1/8)
    decoded_at.clear()
    assert _loader(max_size=200)(dict(img_path=path))['img'].shape == (
        150, 200, 3)
    assert decoded_at == [(200, 150)]
    logged.clear()
    # the recorded size is checked against the file's size
    with pytest.raises(ImageFileError, match=r'the decoded image is '
                       r'1200x1600 \(height x width\) but instances\.json '
                       r'records 1200x1601'):
        _loader(max_size=200)(dict(img_path=path, height=1200, width=1601))
    # a small image is not touched (no draft, nothing logged)
    logged.clear()
    decoded_at.clear()
    out = _loader(max_size=1600)(dict(img_path=path))
    assert out['img'].shape == (1200, 1600, 3) and not logged
    assert decoded_at == []


def test_large_png_and_cv2_backend_are_bounded_too(tmp_path, logged):
    rgb = _picture(300, 500)
    png, content = _file(tmp_path, 'big.png', rgb, 'PNG')
    out = _loader(max_size=100)(dict(img_path=png))
    assert out['img'].shape == (60, 100, 3)
    assert out['ori_shape'] == (300, 500)
    cv2_out = _loader(max_size=100, imdecode_backend='cv2')(
        dict(img_path=png))
    np.testing.assert_array_equal(cv2_out['img'], out['img'])
    assert len(logged) == 2
    assert decode_image_bytes(content, max_size=100).shape == (60, 100, 3)
    assert _loader(max_size=None)(dict(img_path=png))['img'].shape == (
        300, 500, 3)


def test_truncated_large_jpeg_is_still_refused(tmp_path):
    _, full = _file(tmp_path, 'x.jpg', _picture(600, 800), 'JPEG')
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(full[:len(full) // 2])
    with pytest.raises(ImageFileError, match=r'cut\.jpg: truncated JPEG'):
        _loader(max_size=100)(dict(img_path=str(cut)))


def test_mask_follows_the_downscaled_image(tmp_path):
    path, _ = _file(tmp_path, 'big.jpg', _picture(800, 1200), 'JPEG')
    square = [300, 200, 900, 200, 900, 600, 300, 600]  # x, y: middle half
    results = _loader(max_size=300)(
        dict(img_path=path, height=800, width=1200, image_id=1))
    out = LoadReferringMask()(dict(results, segmentation=[square]))
    mask = out['gt_seg_map']
    assert mask.shape == out['img'].shape[:2] == (200, 300)
    assert set(np.unique(mask)) == {0, 1}
    # the full-size mask, every 4th pixel (nearest): the square at 1/4
    full = decode_refer_mask([square], 800, 1200)
    np.testing.assert_array_equal(mask, full[::4, ::4])
    ys, xs = np.nonzero(mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (50, 149, 75, 224)
    # the check still compares the file's size with the record
    with pytest.raises(ValueError, match='the loaded image is 800x1200'):
        LoadReferringMask()(dict(results, height=801, segmentation=[square]))


def test_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError):
        _loader()(dict(img_path=str(tmp_path / 'gone.jpg')))
    with pytest.raises(UserError):
        LoadInferenceImage()(dict(img=3))
    with pytest.raises(UserError):
        LoadInferenceImage()(dict(img=np.zeros((4, 4), np.float32)))
    with pytest.raises(UserError):
        LoadReferringMask()(dict(segmentation=[], height=4, width=4))
    with pytest.raises(ValueError, match='max_size must be a positive int'):
        LoadInferenceImage(max_size=0)


def test_inference_array_is_bounded_and_prediction_at_original_size(
        tmp_path, minilm_dir, logged):
    from mmengine.config import Config

    from projects.magnet.apis import (MagNetInferencer,
                                      build_inference_pipeline)
    from projects.magnet.apis.pipeline import config_test_pipeline

    from ..test_apis import write_tiny_model
    cfg_file, ckpt = write_tiny_model(tmp_path, minilm_dir)
    rest = config_test_pipeline(Config.fromfile(cfg_file))[1:]
    pipeline = build_inference_pipeline(
        [dict(type='LoadInferenceImage', max_size=40)] + rest)
    inferencer = MagNetInferencer(cfg_file, ckpt, device='cpu',
                                  pipeline=pipeline)
    bgr = _picture(150, 250)[..., ::-1].copy()
    jpg, _ = _file(tmp_path, 'in.jpg', _picture(150, 250), 'JPEG')
    for image in (bgr, jpg):
        logged.clear()
        loaded = pipeline.transforms[0](dict(img=image))
        assert loaded['img'].shape == (24, 40, 3)
        assert loaded['ori_shape'] == (150, 250)
        assert len(logged) == 1 and 'downscaled at load to 24x40' in \
            logged[0]
        result = inferencer(image, ['the dark box', 'the top'])
        assert result.masks.shape == (2, 150, 250)
        assert result.probs.shape == (2, 150, 250)
