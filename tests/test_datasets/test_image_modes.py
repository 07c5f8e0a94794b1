"""Image modes (grayscale, palette, alpha, CMYK, 16-bit, float), EXIF
orientation and the size recorded in instances.json: each case's exact,
documented rule."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import TRANSFORMS
from PIL import Image

from projects.magnet.datasets import RefCOCODataset
from projects.magnet.datasets.transforms import (LoadInferenceImage,
                                                 LoadReferringMask)
from projects.magnet.datasets.transforms.image_loading import \
    DEFAULT_FILE_LOADER

from .image_utils import configs_loader as _configs_loader
from .image_utils import encode as _encode
from .image_utils import load_file as _load
from .image_utils import save_bytes as _save
from .image_utils import smooth_rgb as _rgb
from .utils import make_ref, write_refer

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# -------------------------------------------------------------- PIL modes
def test_grayscale_and_palette(tmp_path):
    gray = _rgb()[..., 1]
    path = _save(tmp_path / 'gray.png', _encode(Image.fromarray(gray, 'L'),
                                                'PNG'))
    out = _load(path)['img']
    assert out.shape == (40, 56, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)
    idx = (np.arange(40 * 56) % 5).reshape(40, 56).astype(np.uint8)
    pal = Image.fromarray(idx, 'P')
    colours = [10, 20, 30, 200, 100, 0, 1, 2, 3, 255, 255, 255, 90, 80, 70]
    pal.putpalette(colours)
    expected = np.asarray(colours, np.uint8).reshape(5, 3)[idx]  # RGB
    plain = _save(tmp_path / 'pal.png', _encode(pal, 'PNG'))
    assert Image.open(plain).mode == 'P'
    np.testing.assert_array_equal(_load(plain)['img'][..., ::-1], expected)
    # transparent palette entry: alpha dropped, the colour kept
    transp = _save(tmp_path / 'palt.png', _encode(pal, 'PNG', transparency=1))
    assert 'transparency' in Image.open(transp).info
    np.testing.assert_array_equal(_load(transp)['img'][..., ::-1], expected)


def test_alpha_is_dropped_not_composited(tmp_path):
    """Documented rule (the official ``convert('RGB')``): RGBA / LA keep
    their colours as stored, the alpha channel is dropped."""
    rgb = _rgb()
    alpha = np.random.default_rng(1).integers(0, 256, (40, 56, 1), np.uint8)
    alpha[0, 0] = 0  # a fully transparent pixel keeps its colour too
    rgba = _save(tmp_path / 'rgba.png',
                 _encode(Image.fromarray(np.concatenate([rgb, alpha], -1),
                                         'RGBA'), 'PNG'))
    np.testing.assert_array_equal(_load(rgba)['img'][..., ::-1], rgb)
    la = _save(tmp_path / 'la.png',
               _encode(Image.fromarray(
                   np.concatenate([rgb[..., :1], alpha], -1), 'LA'), 'PNG'))
    assert Image.open(la).mode == 'LA'
    out = _load(la)['img']
    for c in range(3):  # mmcv would paste onto (124, 117, 104) instead
        np.testing.assert_array_equal(out[..., c], rgb[..., 0])


def test_cmyk_jpeg_converts_like_pil(tmp_path):
    rgb = _rgb(seed=3)
    cmyk = Image.fromarray(rgb).convert('CMYK')
    path = _save(tmp_path / 'cmyk.jpg', _encode(cmyk, 'JPEG', quality=95))
    with Image.open(path) as pil:
        assert pil.mode == 'CMYK' and pil.format == 'JPEG'
        official = np.asarray(pil.convert('RGB'))
    out = _load(path)['img'][..., ::-1]
    np.testing.assert_array_equal(out, official)
    # and that is the picture (Adobe-inverted channels read back right)
    err = np.abs(out.astype(int) - rgb.astype(int))
    assert err.mean() < 3 and np.percentile(err, 99) < 16


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    vals = np.array([0, 1, 128, 129, 255, 256, 257, 1000, 32767, 32768,
                     65279, 65534, 65535], np.uint16)
    expected = np.array([0, 0, 0, 1, 1, 1, 1, 4, 127, 128, 254, 255, 255],
                        np.uint8)  # round(v / 257), worked out by hand
    img16 = np.tile(vals, (3, 1))
    path = _save(tmp_path / 'g16.png', _encode(Image.fromarray(img16), 'PNG'))
    with Image.open(path) as pil:
        assert pil.mode == 'I;16'
        clipped = np.asarray(pil.convert('RGB'))[..., 0]
    assert (clipped[0, 5:] == 255).all()  # PIL alone clips every v > 255
    out = _load(path)['img']
    assert out.dtype == np.uint8 and out.shape == (3, 13, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], np.tile(expected, (3, 1)))
    # the rule follows the bit depth, not the pixel values: a dark 16-bit
    # image (all values <= 255) is scaled too, not read as 8-bit values
    dark = np.array([[0, 100, 200, 255]], np.uint16)
    pdark = _save(tmp_path / 'dark16.png', _encode(Image.fromarray(dark),
                                                   'PNG'))
    np.testing.assert_array_equal(_load(pdark)['img'][0, :, 0], [0, 0, 1, 1])


def test_16bit_rgb_png_keeps_the_high_byte(tmp_path):
    bgr16 = np.array([[[0, 32768, 65535], [65535, 257, 255]]], np.uint16)
    ok, enc = cv2.imencode('.png', bgr16)  # PIL cannot write 48-bit RGB
    assert ok
    path = _save(tmp_path / 'rgb16.png', enc.tobytes())
    assert Image.open(path).mode == 'RGB'
    np.testing.assert_array_equal(_load(path)['img'],
                                  [[[0, 128, 255], [255, 1, 0]]])


def test_32bit_and_float_images_have_no_8bit_range(tmp_path):
    for name, arr, mode in (
            ('i32.tif', np.arange(12, dtype=np.int32).reshape(3, 4) * 10**6,
             'I'), ('f32.tif', np.linspace(0, 1, 12, dtype=np.float32)
                    .reshape(3, 4), 'F')):
        path = _save(tmp_path / name, _encode(Image.fromarray(arr), 'TIFF'))
        assert Image.open(path).mode == mode
        with pytest.raises(ValueError,
                           match=rf"{name}: PIL mode '{mode}' \(TIFF; 32-bit"
                           ' integer or float pixels\\) has no defined '
                           '8-bit range'):
            _load(path)


# ------------------------------------------------------------ orientation
def test_configs_ignore_exif_orientation(tmp_path):
    """The official loader and the COCO sizes ignore EXIF: every config
    loads with color_type='color_ignore_orientation' (pillow)."""
    loaders = [DEFAULT_FILE_LOADER]
    for name in ('refcoco.py', 'refsynth.py'):
        cfg = Config.fromfile(
            osp.join(REPO_ROOT, 'configs', '_base_', 'datasets', name))
        for key in ('train_pipeline', 'test_pipeline'):
            loaders += [t for t in cfg[key]
                        if t['type'] == 'LoadReferImageFromFile']
    assert len(loaders) == 5
    for t in loaders:
        assert t['color_type'] == 'color_ignore_orientation'
        assert t['imdecode_backend'] == 'pillow'
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rgb = _rgb(20, 30)
    jpg = _save(tmp_path / 'rot.jpg',
                _encode(Image.fromarray(rgb), 'JPEG', quality=92, exif=exif))
    out = _load(jpg)['img']
    assert out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out[..., ::-1],
                                  np.asarray(Image.open(jpg).convert('RGB')))
    rotated = _configs_loader(color_type='color')(dict(img_path=jpg))
    assert rotated['img'].shape == (30, 20, 3)
    # a mode-ruled (16-bit) file follows the same flag
    g16 = _save(tmp_path / 'rot16.png',
                _encode(Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
                        'PNG', exif=exif))
    out16 = _load(g16)['img']
    np.testing.assert_array_equal(out16[..., 0], rgb[..., 0])
    rot16 = _configs_loader(color_type='color')(dict(img_path=g16))['img']
    np.testing.assert_array_equal(rot16[..., 0], np.rot90(rgb[..., 0], -1))


# ------------------------------------------------------ recorded image size
def test_decoded_size_must_match_instances_json(tmp_path, monkeypatch):
    path = _save(tmp_path / 'COCO_1.jpg',
                 _encode(Image.fromarray(_rgb(20, 30)), 'JPEG'))
    out = _load(path, height=20, width=30, image_id=5)  # agrees
    assert out['img'].shape == (20, 30, 3)
    with pytest.raises(ValueError,
                       match=r'COCO_1\.jpg \(image_id=5\): the decoded image '
                       r'is 20x30 \(height x width\) but instances\.json '
                       r'records 21x30; the mask would be misaligned'):
        _load(path, height=21, width=30, image_id=5)
    with pytest.raises(ValueError, match='EXIF orientation rotated it'):
        _configs_loader(color_type='color')(
            dict(img_path=path, height=30, width=20, image_id=5))
    # no extra decode: one Image.open per load, the size from the array
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, 'open',
                        lambda *a, **k: opened.append(1) or real_open(*a, **k))
    _load(path, height=20, width=30, image_id=5)
    assert len(opened) == 1
    monkeypatch.undo()
    # the check is off on request and without a recorded size
    assert _configs_loader(check_size=False)(
        dict(img_path=path, height=21, width=30))['img'].shape[:2] == (20, 30)
    assert _load(path)['ori_shape'] == (20, 30)
    # the inference loader never checks: its images have no recorded size
    inf = LoadInferenceImage()
    assert inf.from_file.check_size is False
    res = inf(dict(img=path, height=21, width=30))
    assert res['img'].shape == (20, 30, 3)
    # mmcv's own loader does not check: LoadReferringMask still does
    plain = TRANSFORMS.build(dict(DEFAULT_FILE_LOADER,
                                  type='LoadImageFromFile'))(
        dict(img_path=path, height=21, width=30))
    with pytest.raises(ValueError,
                       match=r'image_id=None ref_id=None ann_id=None: '
                       r'"segmentation": the loaded image is 20x30 \(height '
                       r'x width\) but instances\.json records 21x30'):
        LoadReferringMask()(dict(plain, segmentation=[[1, 1, 9, 1, 9, 9]]))


def test_dataset_items_reach_the_checks(tmp_path):
    """RefCOCODataset items carry img_path / image_id / height / width /
    ann_id / ref_id: the configs' pipeline names them."""
    img_dir = tmp_path / 'images' / 'mscoco' / 'images' / 'train2014'
    img_dir.mkdir(parents=True)
    full = _encode(Image.fromarray(_rgb(20, 30)), 'JPEG')
    _save(img_dir / 'good.jpg', full)
    _save(img_dir / 'cut.jpg', full[:len(full) // 2])
    _save(img_dir / 'small.jpg', _encode(Image.fromarray(_rgb(18, 30)),
                                         'JPEG'))
    images = [dict(id=i, file_name=f, height=20, width=30)
              for i, f in ((1, 'good.jpg'), (2, 'cut.jpg'), (3, 'small.jpg'))]
    square = [1, 1, 9, 1, 9, 9, 1, 9]
    anns = [dict(id=10, image_id=1, segmentation=[square]),
            dict(id=20, image_id=2, segmentation=[square]),
            dict(id=30, image_id=3, segmentation=[square]),
            dict(id=40, image_id=1, segmentation=[square, square])]
    refs = [make_ref(100 + i, a['id'], a['image_id'], 'val', [('x', i)])
            for i, a in enumerate(anns)]
    write_refer(str(tmp_path), refs, images, anns)
    ds = RefCOCODataset(
        data_root=str(tmp_path), dataset='handmade', split='val',
        test_mode=True,
        pipeline=[DEFAULT_FILE_LOADER, dict(type='LoadReferringMask')])
    assert ds[0]['gt_seg_map'].sum() == 64
    with pytest.raises(ValueError, match=r'cut\.jpg: truncated JPEG'):
        ds[1]
    with pytest.raises(ValueError,
                       match=r'small\.jpg \(image_id=3\): the decoded image '
                       'is 18x30'):
        ds[2]
    with pytest.raises(ValueError,
                       match=r'good\.jpg image_id=1 ref_id=103 ann_id=40: '
                       '"segmentation": the mask decodes to zero area'):
        ds[3]


# ==================================================================== masks
