"""Bad and unusual referring expressions: TokenizeText, SampleSentence and
the inference API's check_expressions, with the exact behaviour of each."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from projects.magnet.apis import check_expressions
from projects.magnet.datasets.transforms import (SampleSentence,
                                                 TextTruncationWarning,
                                                 TokenizeText, get_tokenizer)
from projects.magnet.datasets.transforms import text as text_module

from .utils import TOKENIZER_DIR

PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103


def _tokenize(text, **kwargs) -> dict:
    return TokenizeText(tokenizer=TOKENIZER_DIR, **kwargs)(dict(text=text))


def _words(text: str) -> list:
    """Ids of the word pieces of ``text`` (no special tokens)."""
    out = _tokenize(text)
    n = int(out['attention_mask'].sum())
    return out['input_ids'][1:n - 1].tolist()


@pytest.fixture
def logs(monkeypatch) -> list:
    """Messages TokenizeText sends to mmengine's logger."""
    messages = []
    monkeypatch.setattr(text_module, 'print_log',
                        lambda msg, **kwargs: messages.append(
                            (msg, kwargs.get('level'))))
    return messages


# ------------------------------------------------------ empty expressions
@pytest.mark.parametrize('text', ['', ' ', '   \t\n', '\u3000', '\xa0 '])
def test_empty_or_whitespace_text_is_refused(text):
    t = TokenizeText(tokenizer=TOKENIZER_DIR)
    with pytest.raises(ValueError, match=r'^ref_id=4 sent_id=9: "text" is '
                       r'empty or whitespace only \(.*allow_empty=True'):
        t(dict(text=text, ref_id=4, sent_id=9))
    # free text (inference) is not given a meaningless ref_id=None
    with pytest.raises(ValueError, match=r'^"text" is empty'):
        t(dict(text=text))
    out = _tokenize(text, allow_empty=True)
    assert out['input_ids'][:3].tolist() == [CLS, SEP, PAD]
    assert out['attention_mask'].tolist() == [1, 1] + [0] * 18


@pytest.mark.parametrize('text', ['\u200b', '\x00', '\u0301', '\ufeff\u200d',
                                  ' \x7f '])
def test_text_the_tokenizer_drops_entirely_is_refused(text):
    """Zero-width / control / lone combining characters: not whitespace for
    str.strip(), yet no token; treated like empty text."""
    assert text.strip()
    with pytest.raises(ValueError, match=r'^ref_id=1 sent_id=2: "text" .* '
                       'has no tokens.*allow_empty=True'):
        TokenizeText(tokenizer=TOKENIZER_DIR)(
            dict(text=text, ref_id=1, sent_id=2))
    out = _tokenize(text, allow_empty=True)
    assert out['input_ids'][:3].tolist() == [CLS, SEP, PAD]


# ---------------------------------------------------- overlong expressions
LONG = ' '.join(['red'] * 30)  # 32 ids with [CLS] and [SEP]


def test_overlong_text_is_truncated_and_logged_once(logs):
    t = TokenizeText(tokenizer=TOKENIZER_DIR)
    out = t(dict(text=LONG))
    red = get_tokenizer(TOKENIZER_DIR).convert_tokens_to_ids('red')
    # the official rule: [CLS] + the first 19 word pieces, no [SEP]
    assert out['input_ids'].tolist() == [CLS] + [red] * 19
    assert out['attention_mask'].tolist() == [1] * 20
    assert len(logs) == 1
    msg, level = logs[0]
    assert level == 20  # logging.INFO
    assert msg.startswith("TokenizeText: expression 'red red")
    assert ('has 32 tokens (with [CLS] and [SEP]) but the token budget is '
            '20: 12 tokens dropped from the end') in msg
    assert 'further truncations are not logged' in msg
    t(dict(text=LONG + ' blue'))
    t(dict(text='the red circle'))
    assert len(logs) == 1  # once per transform (per dataloader worker)
    # a text of exactly max_length ids is not truncated
    TokenizeText(tokenizer=TOKENIZER_DIR)(dict(text=' '.join(['red'] * 18)))
    assert len(logs) == 1


def test_overlong_text_warns_every_time_with_warn_truncation(logs):
    t = TokenizeText(tokenizer=TOKENIZER_DIR, warn_truncation=True)
    for extra in ('', ' blue'):
        with pytest.warns(TextTruncationWarning,
                          match=r'tokens \(with \[CLS\] and \[SEP\]\) but '
                          'the token budget is 20'):
            t(dict(text=LONG + extra))
    assert logs == []
    with warnings.catch_warnings():
        warnings.simplefilter('error', TextTruncationWarning)
        t(dict(text='the red circle'))


def test_very_long_text_is_cut_to_max_length():
    text = 'the second red circle from the left ' * 200  # > 512 tokens
    out = _tokenize(text, max_length=7)
    assert out['attention_mask'].tolist() == [1] * 7
    assert out['input_ids'][0] == CLS and SEP not in out['input_ids']


# ------------------------------------------------------ unicode and ascii
def test_accents_are_stripped_and_case_folded():
    assert _words('Café À GAUCHE') == _words('cafe a gauche')
    # ß is no accent: kept (a word piece of its own)
    assert _words('Ünïcödé straße') == _words('unicode straße')
    assert _words('Ünïcödé straße') != _words('unicode strasse')


def test_cjk_emoji_and_unknown_characters():
    # CJK text is split one token per character; MiniLM's vocabulary
    # (bert-base-uncased's) has some (的) and lacks others (左, 边) and the
    # emoji: [UNK]
    de = _words('的')
    assert len(de) == 1 and de != [UNK]
    assert _words('左边的') == [UNK, UNK] + de
    assert _words('🐶') == [UNK]
    assert _words('the 🐶 dog') == [_words('the')[0], UNK, _words('dog')[0]]


def test_typed_special_tokens_are_encoded_as_special_ids():
    """As the official ``tokenizer.encode``: '[MASK]' in the text is the
    [MASK] id (and the TokenMasker never selects it); lower case is a
    plain word."""
    assert _words('the [MASK] dog')[1] == MASK
    assert _words('[SEP]') == [SEP]
    assert MASK not in _words('the [mask] dog')


@pytest.mark.parametrize('value, got', [
    (None, 'NoneType'), (42, r'int \(42\)'), (b'red', 'bytes'),
    (['red'], 'list'), (3.5, 'float')])
def test_non_str_text_is_refused(value, got):
    with pytest.raises(ValueError, match=rf'^ref_id=1 sent_id=2: "text" must '
                       rf'be a str, got {got}.*SampleSentence'):
        TokenizeText(tokenizer=TOKENIZER_DIR)(
            dict(text=value, ref_id=1, sent_id=2))


def test_missing_text_is_refused():
    with pytest.raises(ValueError, match=r'^ref_id=7 sent_id=None: "text" '
                       r'must be a str, got nothing \("text" is missing\)'):
        TokenizeText(tokenizer=TOKENIZER_DIR)(dict(ref_id=7))


def test_str_subclasses_are_accepted():
    np.testing.assert_array_equal(
        _tokenize(np.str_('the red circle'))['input_ids'],
        _tokenize('the red circle')['input_ids'])


# --------------------------------------------------------- SampleSentence
@pytest.mark.parametrize('results', [dict(ref_id=3), dict(
    ref_id=3, sentences=[]), dict(ref_id=3, sentences=None)])
def test_sample_without_sentences(results):
    with pytest.raises(ValueError, match=r'^ref_id=3: "sentences" is missing '
                       r'or empty \(and there is no "text"\)$'):
        SampleSentence()(results)


@pytest.mark.parametrize('sentences, got', [
    ('the red circle', r'"sentences" must be a list of dicts with "raw" and '
     r'"sent_id", got str'),
    ([dict(raw='a', sent_id=1), 'b'],
     r'"sentences"\[1\] must be a dict with "raw" and "sent_id", got str'),
    ([dict(raw='a')], r'"sentences"\[0\] must be a dict with "raw" and '
     r'"sent_id", got keys \[\'raw\'\]'),
    ([dict(sent='a', sent_id=1)], r'"sentences"\[0\] .*got keys '
     r'\[\'sent\', \'sent_id\'\]'),
])
def test_malformed_sentences(sentences, got):
    with pytest.raises(ValueError, match=rf'^ref_id=5: {got}$'):
        SampleSentence()(dict(ref_id=5, sentences=sentences))


def test_sampled_empty_sentence_fails_in_tokenize_with_its_ids():
    pipeline = [SampleSentence(), TokenizeText(tokenizer=TOKENIZER_DIR)]
    results = dict(ref_id=8, sentences=[dict(raw='  ', sent_id=81)])
    for t in pipeline[:1]:
        results = t(results)
    with pytest.raises(ValueError,
                       match=r'^ref_id=8 sent_id=81: "text" is empty'):
        pipeline[1](results)


# ------------------------------------------------------- check_expressions
@pytest.mark.parametrize('exprs, error, match', [
    ([], ValueError, r'^no expression given$'),
    ((), ValueError, r'^no expression given$'),
    ('', ValueError, r"^expression 0 is empty or whitespace only \(''\)$"),
    (['a', ' \t'], ValueError, r'^expression 1 is empty or whitespace only'),
    (None, TypeError, r'^expressions must be a string or a list of strings, '
     r'got NoneType$'),
    (42, TypeError, r'got int$'),
    (b'the cat', TypeError, r'^expressions must be a string or a list of '
     r'strings, got bytes \(decode it first\)$'),
    (bytearray(b'x'), TypeError, r'got bytearray \(decode it first\)'),
    ((x for x in ['a']), TypeError, r'got generator$'),
    (['a', 3], TypeError, r'^expression 1 must be a str, got int \(3\)$'),
    (['a', None], TypeError, r'^expression 1 must be a str, got NoneType'),
    (['a', b'b'], TypeError, r"^expression 1 must be a str, got bytes"),
])
def test_check_expressions_bad_inputs(exprs, error, match):
    with pytest.raises(error, match=match):
        check_expressions(exprs)


def test_check_expressions_passes_valid_text_unchanged():
    exprs = ('la pelota roja à gauche', '左边的红色圆圈', LONG)
    assert check_expressions(exprs) == list(exprs)
    assert check_expressions('the cat') == ['the cat']


@pytest.mark.parametrize('exprs, index', [
    ('🐶', 0), (['the cat', '🐶'], 1), (['the cat', '?!', 'a dog'], 1)])
def test_check_expressions_refuses_text_without_a_word(exprs, index):
    """An expression of only emoji / symbols / punctuation has no word a
    tokenizer knows: refused as a UserError (and a ValueError) naming the
    expression's index and text."""
    from projects.magnet.utils import UserError
    text = [exprs][0] if isinstance(exprs, str) else exprs[index]
    with pytest.raises(ValueError) as info:
        check_expressions(exprs)
    assert isinstance(info.value, UserError)
    assert str(info.value) == (
        f'expression {index}: {text!r} has no word (only symbols, emoji or '
        'punctuation): no token a text encoder knows')
