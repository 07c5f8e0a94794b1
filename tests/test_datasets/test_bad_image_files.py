"""Truncated, broken, empty and missing image files: an error naming the
file and what was expected, with the pillow and the cv2 backend."""

import mmcv
import numpy as np
import pytest
from PIL import Image, ImageFile

from projects.magnet.datasets.transforms import decode_image_bytes
from projects.magnet.datasets.transforms import image_loading

from .image_utils import configs_loader as _configs_loader
from .image_utils import encode as _encode
from .image_utils import load_file as _load
from .image_utils import save_bytes as _save
from .image_utils import smooth_rgb as _rgb



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


