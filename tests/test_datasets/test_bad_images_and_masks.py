"""Bad images and bad masks in the data transforms: each case's exact
behaviour (an error naming the file / ids / field and what was expected, or
a documented rule). Images are written in the real formats by PIL / OpenCV.
"""
import io
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import TRANSFORMS
from PIL import Image, ImageFile
from pycocotools import mask as mask_utils

from projects.magnet.datasets import RefCOCODataset
from projects.magnet.datasets.transforms import (LoadInferenceImage,
                                                 LoadReferImageFromFile,
                                                 LoadReferringMask,
                                                 decode_image_bytes,
                                                 decode_refer_mask)
from projects.magnet.datasets.transforms import image_loading
from projects.magnet.datasets.transforms import mask_loading
from projects.magnet.datasets.transforms.image_loading import \
    DEFAULT_FILE_LOADER

from .utils import make_ref, write_refer

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _rgb(h=40, w=56, seed=0):
    """A smooth RGB image (JPEG-friendly) with some noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) % 256
    noise = np.random.default_rng(seed).integers(0, 16, (h, w, 3))
    return ((base + noise) % 256).astype(np.uint8)


def _save(path, data: bytes) -> str:
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _configs_loader(**kwargs) -> LoadReferImageFromFile:
    """The file loader of the project's configs."""
    return TRANSFORMS.build(dict(DEFAULT_FILE_LOADER, **kwargs))


def _load(path, **results):
    return _configs_loader()(dict(img_path=str(path), **results))


# =================================================================== images
# ------------------------------------------------------ truncated / broken
def _real_jpeg(**kwargs) -> bytes:
    """A JPEG written by libjpeg (via PIL), large enough that half of it is
    inside the entropy-coded scan."""
    full = _encode(Image.fromarray(_rgb(96, 128)), 'JPEG', quality=90,
                   **kwargs)
    assert full[:3] == b'\xff\xd8\xff' and full[-2:] == b'\xff\xd9'
    assert full.find(b'\xff\xda') < len(full) // 2
    return full


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
    full = _real_jpeg()
    path = _save(tmp_path / 'cut.jpg', full[:len(full) // 2])
    with pytest.raises(ValueError,
                       match=r'cannot read image file .*cut\.jpg: '
                       r'truncated JPEG file \(\d+ bytes; OSError: image '
                       'file is truncated'):
        _load(path)
    # cut inside the headers (tables): PIL fails while parsing them
    head = _save(tmp_path / 'head.jpg', full[:300])
    with pytest.raises(ValueError,
                       match=r'head\.jpg: truncated JPEG file \(300 bytes; '
                       'OSError: Truncated File Read'):
        _load(head)
    # cut only the end-of-image marker: still refused
    path2 = _save(tmp_path / 'no_eoi.jpg', full[:-2])
    with pytest.raises(ValueError, match=r'no_eoi\.jpg: truncated JPEG'):
        _load(path2)


def test_truncated_jpeg_refused_when_pil_accepts_partial_data(
        tmp_path, monkeypatch):
    """PIL's global LOAD_TRUNCATED_IMAGES (set by some libraries) makes PIL
    fill the missing rows with grey and raise nothing: the loader checks
    the bytes itself."""
    full = _real_jpeg()
    path = _save(tmp_path / 'cut.jpg', full[:len(full) // 2])
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
    partial = np.asarray(Image.open(path).convert('RGB'))  # no error...
    assert partial.shape == (96, 128, 3)
    assert (partial[-5:] == 128).all()  # ...and half-grey data
    with pytest.raises(ValueError,
                       match=r'cut\.jpg: truncated JPEG file \(\d+ bytes\): '
                       r'no end-of-image marker \(FF D9\) ends its image '
                       'data: the file was cut short'):
        _load(path)
    # a progressive JPEG cut between two of its scans
    prog = _real_jpeg(progressive=True)
    sos = [i for i in range(len(prog) - 1) if prog[i:i + 2] == b'\xff\xda']
    assert len(sos) > 2
    cut = _save(tmp_path / 'prog.jpg', prog[:sos[2]])
    assert Image.open(cut).convert('RGB').size == (128, 96)  # PIL accepts
    with pytest.raises(ValueError, match=r'prog\.jpg: truncated JPEG'):
        _load(cut)
    # a truncated PNG likewise (no IEND chunk)
    png = _encode(Image.fromarray(_rgb()), 'PNG')
    cut_png = _save(tmp_path / 'cut.png', png[:len(png) // 2])
    Image.open(cut_png).load()  # PIL accepts it with the flag
    with pytest.raises(ValueError,
                       match=r'cut\.png: truncated PNG file .*no IEND'):
        _load(cut_png)


def test_undetectable_truncation_is_logged_once_per_format(
        tmp_path, monkeypatch, logged):
    """Other formats rely on the decoder: with PIL's flag set a warning
    says so (once per format), the image still loads."""
    monkeypatch.setattr(image_loading, '_WARNED_TRUNCATION', set())
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
    bmp = _save(tmp_path / 'a.bmp', _encode(Image.fromarray(_rgb()), 'BMP'))
    for _ in range(2):
        np.testing.assert_array_equal(_load(bmp)['img'][..., ::-1], _rgb())
    _load(_save(tmp_path / 'a.jpg', _real_jpeg()))  # checked: no warning
    assert logged == [
        'PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set (by other code): a '
        'truncated BMP file decodes without error and cannot be told from '
        'a complete one (JPEG and PNG files still are checked)'
    ]
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', False)
    _load(_save(tmp_path / 'b.gif', _encode(Image.fromarray(_rgb()), 'GIF')))
    assert len(logged) == 1


def test_truncated_jpeg_refused_with_the_cv2_backend(tmp_path, monkeypatch):
    full = _real_jpeg()
    path = _save(tmp_path / 'cut.jpg', full[:len(full) // 2])
    loader = _configs_loader(imdecode_backend='cv2')
    with pytest.raises(ValueError, match=r'cut\.jpg: .*truncated .*JPEG'):
        loader(dict(img_path=path))
    # OpenCV < 5 returns the partial image filled with grey (libjpeg's
    # "premature end of JPEG file" is only a warning): simulate it
    grey = np.full((96, 128, 3), 128, np.uint8)
    monkeypatch.setattr(mmcv, 'imfrombytes', lambda *a, **k: grey)
    with pytest.raises(ValueError,
                       match=r'cut\.jpg: truncated JPEG file .*no '
                       'end-of-image marker'):
        loader(dict(img_path=path))
    monkeypatch.undo()


def test_jpeg_completeness_check_follows_the_marker_structure(
        tmp_path, monkeypatch):
    """Bytes after the end-of-image marker (camera trailers, the video of
    a "motion photo", padding) are allowed, as decoders allow them, even
    when they hold marker-like bytes; an embedded EXIF thumbnail's own EOI
    does not make a cut file complete."""
    full = _real_jpeg()
    ref = _load(_save(tmp_path / 'full.jpg', full))['img']
    noise = np.random.default_rng(4).integers(0, 256, 100_000, np.uint8)
    for i, trailer in enumerate((b'\x00' * 7 + b'junk',
                                 b'\xff\xda\x00\x08' + b'\x01' * 40,
                                 noise.tobytes())):
        path = _save(tmp_path / f'trailer{i}.jpg', full + trailer)
        np.testing.assert_array_equal(_load(path)['img'], ref)
    thumb = _encode(Image.fromarray(_rgb(8, 8)), 'JPEG')
    payload = b'Exif\x00\x00' + thumb  # APP1 segment holding a JPEG
    app1 = b'\xff\xe1' + (len(payload) + 2).to_bytes(2, 'big') + payload
    with_thumb = full[:2] + app1 + full[2:]
    good = _save(tmp_path / 'thumb.jpg', with_thumb)
    np.testing.assert_array_equal(_load(good)['img'], ref)
    cut = _save(tmp_path / 'thumb_cut.jpg',
                with_thumb[:len(app1) + len(full) // 2])
    with pytest.raises(ValueError, match=r'thumb_cut\.jpg: truncated JPEG'):
        _load(cut)
    # restart markers inside the scan (FF D0..D7) are not its end
    rst = _encode(Image.fromarray(_rgb(96, 128)), 'JPEG',
                  restart_marker_blocks=2)
    assert b'\xff\xd0' in rst
    rst_path = _save(tmp_path / 'rst.jpg', rst[:-2] + b'\x00' * 3)
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
    with pytest.raises(ValueError,
                       match=r'rst\.jpg: truncated JPEG .*no end-of-image'):
        _load(rst_path)
    np.testing.assert_array_equal(
        _load(_save(tmp_path / 'rst_ok.jpg', rst))['img'],
        np.asarray(Image.open(tmp_path / 'rst_ok.jpg'))[..., ::-1])


def test_not_an_image_empty_and_missing_files(tmp_path):
    text = _save(tmp_path / 'notes.jpg', b'this is not an image at all')
    with pytest.raises(ValueError,
                       match=r'cannot read image file .*notes\.jpg: not an '
                       r'image file \(no known image format; 27 bytes '
                       "starting with b'this is not '"):
        _load(text)
    empty = _save(tmp_path / 'empty.png', b'')
    with pytest.raises(ValueError,
                       match=r'cannot read image file .*empty\.png: the file '
                       r'is empty \(0 bytes\)'):
        _load(empty)
    with pytest.raises(FileNotFoundError,
                       match=r'image file not found: .*gone\.jpg$'):
        _load(tmp_path / 'gone.jpg')
    with pytest.raises(FileNotFoundError, match=r'\(it is a directory\)'):
        _load(tmp_path)
    # a JPEG header followed by garbage: corrupt, not "not an image"
    corrupt = _save(tmp_path / 'corrupt.jpg', b'\xff\xd8\xff' + b'\x00' * 50)
    with pytest.raises(ValueError, match=r'corrupt\.jpg: corrupt JPEG file'):
        _load(corrupt)
    # mmcv's ignore_empty: skipped (None) instead of raising
    quiet = _configs_loader(ignore_empty=True)
    for path in (text, empty, str(tmp_path / 'gone.jpg')):
        assert quiet(dict(img_path=path)) is None
    with pytest.raises(ValueError, match='the file is empty'):
        decode_image_bytes(b'', 'color', 'pillow', where='x.png')


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
WHERE = r'imgs/a\.jpg image_id=3 ref_id=7 ann_id=11: "segmentation"'


def _mask(segmentation, height=10, width=10, ann_id=11,
          **kwargs) -> np.ndarray:
    results = dict(img_path='imgs/a.jpg', image_id=3, ref_id=7, ann_id=ann_id,
                   segmentation=segmentation, height=height, width=width)
    return LoadReferringMask(**kwargs)(results)['gt_seg_map']


SQUARE = [1, 1, 8, 1, 8, 8, 1, 8]


def _official(seg, h, w):
    """The official decoding (REFER getMask + ``== 1``), pycocotools only."""
    if isinstance(seg, list) and not isinstance(seg[0], dict):
        rle = mask_utils.frPyObjects(seg, h, w)
    elif isinstance(seg, dict) and isinstance(seg['counts'], list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = seg
    m = mask_utils.decode(rle)
    if m.ndim == 3:
        m = np.sum(m, axis=2).astype(np.uint8)
    return (m == 1).astype(np.uint8)


def test_valid_segmentations_decode_as_the_official_code():
    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(5, 40, 2))
        polys = []
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(3, 9))
            pts = rng.uniform(-0.6, 0.6, (n, 2)) * [w, h] + [w / 2, h / 2]
            polys.append(pts.ravel().tolist())
        np.testing.assert_array_equal(decode_refer_mask(polys, h, w),
                                      _official(polys, h, w))
        m = (rng.random((h, w)) > rng.random()).astype(np.uint8)
        rle = mask_utils.encode(np.asfortranarray(m))
        rle_json = dict(rle, counts=rle['counts'].decode())
        for seg in (rle, rle_json):
            np.testing.assert_array_equal(decode_refer_mask(seg, h, w), m)
        runs = [int(len(list(g))) for g in _runs(m.ravel(order='F'))]
        crowd = dict(counts=runs, size=[h, w])
        np.testing.assert_array_equal(decode_refer_mask(crowd, h, w),
                                      _official(crowd, h, w))
        np.testing.assert_array_equal(
            decode_refer_mask([rle, rle_json], h, w),
            np.zeros_like(m))  # the same RLE twice: sum 2 -> background


def _runs(flat):
    """Uncompressed COCO runs (first run: zeros) as groups."""
    import itertools
    groups = [list(g) for _, g in itertools.groupby(flat)]
    if flat[0] == 1:
        groups.insert(0, [])
    return groups


@pytest.mark.parametrize('segmentation, message', [
    ([SQUARE, [1, 1, 8, 1, 8, 8, 1]],
     'polygon 1 has 7 coordinates, an odd number; expected x, y pairs'),
    ([[1, 1, 8, 8]], r'no polygon has 3 points or more \(polygon 0 has 4 '
     r'coordinates\); expected at least 6 coordinates'),
    ([[], [1, 2]], r'no polygon has 3 points or more \(polygon 0 has 0 '
     r'coordinates\)'),
    ([[1, 1, float('nan'), 1, 8, 8]],
     r'polygon 0 has a non-finite coordinate \(nan at index 2\); expected '
     'finite numbers'),
    ([SQUARE, [1, 1, 8, float('inf'), 8, 8]],
     r'polygon 1 has a non-finite coordinate \(inf at index 3\)'),
    ([[1, 1, 8, 1, -1e12, 8]],
     r'polygon 0 has x coordinates in \[-1000000000000\.0, 8\.0\], far '
     r'outside the '
     r'image \(x size 10; expected within \[-40, 50\]\)'),
    ([[1, 1, 'a', 1, 8, 8]], 'polygon 0 must be a flat list of numbers'),
    ([[1, 1, float('nan'), 2]], r'polygon 0 has a non-finite coordinate'),
    ([[1, 1, None, 1, 8, 8]], 'polygon 0 must be a flat list of numbers'),
    ([[[1, 1], [8, 1], [8, 8]]], 'polygon 0 must be a flat list of numbers'),
    ([SQUARE, dict(counts='T3', size=[10, 10])],
     'the list mixes RLE dicts and polygons'),
])
def test_bad_polygons(segmentation, message):
    with pytest.raises(ValueError,
                       match=f'{WHERE}: cannot decode segmentation: '
                       f'{message}'):
        _mask(segmentation)


def test_polygons_of_fewer_than_3_points_are_dropped_and_logged(logged):
    """0 - 2 points: no area; the rest is decoded as the official code does
    (pycocotools rasterises such polygons to no pixel)."""
    line, point = [1, 1, 8, 8], [3, 3]
    cases = (([SQUARE, line], ['1 has 4 coordinates (2 points']),
             ([line, SQUARE, point], ['0 has 4 coordinates (2 points',
                                      '2 has 2 coordinates (1 point,']),
             ([SQUARE, []], ['1 has 0 coordinates (0 points']))
    for ann_id, (seg, dropped) in enumerate(cases):
        logged.clear()
        np.testing.assert_array_equal(_mask(seg, ann_id=ann_id),
                                      _official([SQUARE], 10, 10))
        assert len(logged) == len(dropped)
        for msg, what in zip(logged, dropped):
            assert msg.startswith(
                f'imgs/a.jpg image_id=3 ref_id=7 ann_id={ann_id}: '
                f'"segmentation": polygon {what}')
            assert 'no area): dropped' in msg
        _mask(seg, ann_id=ann_id)  # logged once per annotation and polygon
        assert len(logged) == len(dropped)
    # not the first: exactly the official decoding, line included
    np.testing.assert_array_equal(
        decode_refer_mask([SQUARE, line], 10, 10),
        _official([SQUARE, line], 10, 10))


def test_why_polygons_are_checked_before_pycocotools():
    """What pycocotools does with them (the checks prevent it)."""
    # a first polygon of 4 numbers is taken for a box [x, y, w, h] (which
    # then fails for lists); as an array it *is* decoded as a box
    with pytest.raises(TypeError, match="'bb'"):
        mask_utils.frPyObjects([[1, 1, 8, 8], SQUARE], 10, 10)
    box = mask_utils.decode(
        mask_utils.frPyObjects(np.array([[1., 1., 8., 8.]]), 10, 10))
    assert box.sum() == 64
    # a polygon of 2 points later in the list rasterises to no pixel
    two = mask_utils.decode(mask_utils.frPyObjects([SQUARE, [1, 1, 8, 8]],
                                                   10, 10))
    assert two[..., 0].sum() == 49 and two[..., 1].sum() == 0
    # an odd coordinate is silently dropped
    odd = mask_utils.decode(mask_utils.frPyObjects([SQUARE[:7]], 10, 10))
    six = mask_utils.decode(mask_utils.frPyObjects([SQUARE[:6]], 10, 10))
    np.testing.assert_array_equal(odd, six)


def test_empty_and_wrong_type_segmentations():
    with pytest.raises(ValueError,
                       match=rf'{WHERE}: the segmentation is empty \(\[\]\): '
                       'expected polygons or RLE'):
        _mask([])
    with pytest.raises(ValueError,
                       match=rf'{WHERE}: expected polygons or RLE, got str'):
        _mask('1 1 8 1 8 8')
    with pytest.raises(ValueError,
                       match=r'the image size must be positive integers, got '
                       'height=0, width=10'):
        decode_refer_mask([SQUARE], 0, 10)


_CD = 'cannot decode segmentation: '


@pytest.mark.parametrize('rle, message', [
    (dict(counts='T3', size=[10, 12]),
     r'RLE "size" \[10, 12\] differs from the image size \[10, 10\] '
     r'\(height, width recorded in instances\.json\)'),
    (dict(counts='T3'), r'an RLE segmentation needs "counts" and "size", '
     r"got keys \['counts'\]"),
    (dict(counts='<?', size=[10, 10]),
     'cannot decode segmentation: the RLE runs cover 27 pixels, expected '
     'height x width = 10 x 10 = 100'),
    (dict(counts=[10, 20], size=[10, 10]),
     'cannot decode segmentation: the RLE runs cover 30 pixels, expected '
     'height x width = 10 x 10 = 100'),
    (dict(counts=[10, 20, 30, 40, 50], size=[10, 10]),
     _CD + 'the RLE runs cover 150 pixels'),
    (dict(counts=[50.0, 50.0], size=[10, 10]),
     _CD + 'the RLE "counts" list must hold non-negative integers'),
    (dict(counts=[-3, 103], size=[10, 10]),
     _CD + 'the RLE "counts" list must hold non-negative integers'),
    (dict(counts='0T3~', size=[10, 10]),
     _CD + r"the RLE \"counts\" string has the character '~' at 3 \(expected "
     r"'0'..'o'\)"),
    (dict(counts='0T', size=[10, 10]),
     _CD + 'the RLE "counts" string ends inside a run'),
    (dict(counts='0H', size=[10, 10]),  # second run: 24 - 32 = -8
     _CD + r'RLE run 1 is negative \(-8\)'),
    (dict(counts=1234, size=[10, 10]),
     _CD + r'RLE "counts" must be a str \(compressed\) or a list of '
     'integers, got int'),
])
def test_bad_rle(rle, message):
    with pytest.raises(ValueError, match=f'{WHERE}: {message}'):  # whole
        _mask(rle)
    with pytest.raises(ValueError, match=message):  # also inside a list
        _mask([dict(counts='T3', size=[10, 10]), rle])


def test_short_rle_would_decode_uninitialised_memory():
    """Why the runs are counted: pycocotools trusts them."""
    rle = dict(counts='<?', size=[10, 10])  # 27 of 100 pixels
    assert list(mask_loading._rle_string_counts(rle['counts'], '')) == [12,
                                                                        15]
    np.testing.assert_array_equal(
        decode_refer_mask(dict(counts='T3', size=[10, 10]), 10, 10),
        np.zeros((10, 10), np.uint8))  # 100 zeros: complete


def test_rle_string_parser_matches_pycocotools():
    rng = np.random.default_rng(5)
    for i in range(80):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        m = (rng.random((h, w)) > rng.random()).astype(np.uint8)
        if i % 4 == 0:
            m[:] = i % 8 == 0
        counts = mask_utils.encode(np.asfortranarray(m))['counts'].decode()
        runs = [len(g) for g in _runs(m.ravel(order='F'))]
        assert list(mask_loading._rle_string_counts(counts, '')) == runs


# ------------------------------------------------------------- zero area
def test_zero_area_mask_raises_by_default():
    sliver = [[2, 2, 7, 2.1, 2, 2.2]]  # thinner than a pixel
    twice = [SQUARE, SQUARE]  # the "sum == 1" rule removes both
    empty_rle = dict(counts='T3', size=[10, 10])
    for seg in (sliver, twice, empty_rle):
        assert not decode_refer_mask(seg, 10, 10).any()  # decoded: zeros
        with pytest.raises(ValueError,
                           match=rf'{WHERE}: the mask decodes to zero area '
                           r'\(no foreground pixel\): a broken annotation'):
            _mask(seg)


def test_zero_area_mask_kept_and_logged_with_allow_empty(logged):
    t = LoadReferringMask(allow_empty=True)
    base = dict(img_path='imgs/a.jpg', image_id=3, ref_id=7, height=10,
                width=10, segmentation=[SQUARE, SQUARE])
    for ann_id in (11, 11, 12):  # once per ann_id, with the running count
        out = t(dict(base, ann_id=ann_id))
        np.testing.assert_array_equal(out['gt_seg_map'],
                                      np.zeros((10, 10), np.uint8))
    assert len(logged) == 2
    assert 'ann_id=11' in logged[0] and '1 annotation(s)' in logged[0]
    assert 'ann_id=12' in logged[1] and '2 annotation(s)' in logged[1]
    assert 'kept as an empty target (allow_empty=True)' in logged[0]
    assert t(dict(base, ann_id=13, segmentation=[SQUARE]))['gt_seg_map'].sum(
    ) == 49
    assert len(logged) == 2
    assert repr(t) == 'LoadReferringMask(allow_empty=True)'
