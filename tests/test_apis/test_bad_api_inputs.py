"""The inference API refuses bad inputs with a UserError before any work:
expressions without a word (also after tokenisation), output sizes,
thresholds, output files."""
from __future__ import annotations

import numpy as np
import pytest

from projects.magnet.apis import (OUTPUT_SIZES, check_expressions,
                                  inference_model)
from projects.magnet.models.segmentors.magnet import \
    OUTPUT_SIZES as SEGMENTOR_OUTPUT_SIZES
from projects.magnet.utils import (InvalidInputError, OutputPathError,
                                   UserError)


@pytest.fixture
def no_forward(inferencer, monkeypatch):
    """Fail the test if the model runs."""
    def forward(*args, **kwargs):
        raise AssertionError('the model ran before the input was refused')
    monkeypatch.setattr(inferencer.model, 'test_step', forward)
    return inferencer


@pytest.mark.parametrize('text', ['🐶', '!!!', '🐶 🐱 ?!', '→ ★', '...'])
def test_expressions_without_a_word_are_refused(text, no_forward,
                                                image_bgr):
    with pytest.raises(InvalidInputError) as err:
        check_expressions(['the dog', text])
    assert str(err.value).startswith('expression 1: ')
    assert 'has no word' in str(err.value) and repr(text) in str(err.value)
    with pytest.raises(UserError, match=r'^expression 1: .*has no word'):
        no_forward(image_bgr, ['the dog', text])
    # still the built-in families callers catch
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize('text', ['左边', '[MASK]', '[UNK] [SEP]'])
def test_expressions_of_only_unknown_or_special_tokens_are_refused(
        text, no_forward, image_bgr):
    """Letters, so check_expressions lets them through; the tokenizer maps
    them all to [UNK] (CJK missing from the MiniLM vocabulary) or to
    special ids: refused before any image is loaded or model run."""
    assert check_expressions(text) == [text]
    with pytest.raises(UserError) as err:
        no_forward(image_bgr, ['the red square', text])
    msg = str(err.value)
    assert msg.startswith('expression 1: ')
    assert 'has no word the tokenizer knows' in msg
    assert repr(text) in msg


def test_a_word_beside_unknown_tokens_is_kept(inferencer, image_bgr):
    res = inferencer(image_bgr, ['the 🐶', '左边 dog'])
    assert res.masks.shape[0] == 2


def test_one_output_size_vocabulary():
    assert set(OUTPUT_SIZES) == set(SEGMENTOR_OUTPUT_SIZES) == {
        'input', 'original'}


@pytest.mark.parametrize('kwargs, match', [
    (dict(output_size='model_size'), "output_size must be one of 'input', "
     "'original', got 'model_size'"),
    (dict(threshold=1.5), r'threshold must be a number in \[0, 1\], got 1.5'),
    (dict(threshold='0.5'), r"got '0.5'"),
    (dict(threshold=True), 'got True'),
])
def test_bad_call_arguments(kwargs, match, no_forward, image_bgr):
    with pytest.raises(InvalidInputError, match=match):
        no_forward(image_bgr, 'the dog', **kwargs)


def test_out_file_is_checked_before_any_work(no_forward, image_bgr,
                                             tmp_path):
    a_file = tmp_path / 'a.txt'
    a_file.write_text('keep me')
    for out, match in [(a_file / 'x.png', 'is a file, not a folder'),
                       (tmp_path, 'is a folder'),
                       (tmp_path / 'x.pdf', "extension '.pdf'")]:
        with pytest.raises(OutputPathError, match=match):
            no_forward(image_bgr, 'the dog', out_file=str(out))
    image = tmp_path / 'in.png'
    image.write_bytes(b'not read')
    with pytest.raises(OutputPathError, match='is the input'):
        no_forward(str(image), 'the dog', out_file=str(image))
    assert image.read_bytes() == b'not read'
    # several images: out.png stands for out_0.png, out_1.png..., each
    # checked against the inputs before any work
    second = tmp_path / 'out_1.png'
    second.write_bytes(b'an input')
    items = [dict(img=str(image), text='the dog'),
             dict(img=str(second), text='the cat')]
    with pytest.raises(OutputPathError, match='out_1.png.*is the input'):
        no_forward(items, out_file=str(tmp_path / 'out.png'))
    assert second.read_bytes() == b'an input'


def test_inference_model_refuses_wordless_text(inferencer, image_bgr):
    with pytest.raises(UserError, match='expression 0: .*has no word'):
        inference_model(inferencer.model, image_bgr, '???')
    ok = inference_model(inferencer.model, image_bgr, 'the dog?')
    assert np.isfinite(ok.probs).all()
