"""Token masking rules of Mask Grounding."""
import pytest
import torch

from projects.magnet.models.layers import TokenMasker

CLS, SEP, PAD, MASK, UNK = 101, 102, 0, 103, 100


def _batch(rows, length=10):
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
    return ids, (ids != PAD).long()


def test_special_and_pad_tokens_are_never_selected():
    ids, am = _batch([[CLS, 2000, UNK, 2001, MASK, SEP],
                      [CLS, 3000, SEP]])
    masked, labels = TokenMasker(ratio=1.0, mask_prob=1.0)(ids, am)
    words = torch.zeros_like(ids, dtype=torch.bool)
    words[0, [1, 3]] = True
    words[1, 1] = True
    assert torch.equal(labels != -100, words)
    assert torch.equal(labels[words], ids[words])
    assert torch.equal(masked[words], torch.full((3, ), MASK))
    assert torch.equal(masked[~words], ids[~words])  # specials, pads kept


def test_ratio_is_respected_on_a_large_batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (400, 32), generator=g)
    am = torch.ones_like(ids)
    masker = TokenMasker(ratio=0.15, min_masked=0)
    _, labels = masker(ids, am, torch.Generator().manual_seed(1))
    frac = (labels != -100).float().mean().item()
    assert abs(frac - 0.15) < 0.01


def test_at_least_one_token_per_sentence_with_candidates():
    ids, am = _batch([[CLS, 2000, 2001, 2002, SEP], [CLS, SEP],
                      [CLS, 4000, SEP]])
    masker = TokenMasker(ratio=0.0)
    for seed in range(5):
        _, labels = masker(ids, am, torch.Generator().manual_seed(seed))
        counts = (labels != -100).sum(1).tolist()
        assert counts == [1, 0, 1]  # the [CLS][SEP]-only sentence: none


def test_min_masked_tops_up_only_candidates():
    ids, am = _batch([[CLS, 2000, 2001, 2002, SEP]])
    _, labels = TokenMasker(ratio=0.0, min_masked=2)(ids, am)
    sel = (labels != -100)[0]
    assert sel.sum() == 2 and not sel[0] and not sel[4]


def test_replacement_policy_proportions():
    ids = torch.randint(1000, 30000, (300, 40),
                        generator=torch.Generator().manual_seed(0))
    masker = TokenMasker(ratio=1.0, mask_prob=0.8, random_prob=0.1,
                         first_word_id=999)
    masked, labels = masker(ids, torch.ones_like(ids),
                            torch.Generator().manual_seed(2))
    assert (labels != -100).all()
    n = ids.numel()
    to_mask = (masked == MASK).float().sum() / n
    kept = (masked == ids).float().sum() / n
    assert abs(to_mask - 0.8) < 0.02
    # random words collide with the original only 1 in ~29k times
    assert abs(kept - 0.1) < 0.02
    randoms = masked[(masked != MASK) & (masked != ids)]
    assert randoms.numel() > 0.08 * n
    assert randoms.min() >= 999 and randoms.max() < 30522


def test_mask_only_overrides_the_policy():
    ids = torch.randint(1000, 30000, (20, 10))
    masker = TokenMasker(ratio=1.0, mask_prob=0.5, random_prob=0.5)
    masked, _ = masker(ids, torch.ones_like(ids), mask_only=True)
    assert (masked == MASK).all()


def test_deterministic_under_a_seeded_generator():
    ids = torch.randint(1000, 30000, (16, 20))
    am = torch.ones_like(ids)
    am[:, 15:] = 0
    masker = TokenMasker(ratio=0.3, mask_prob=0.8, random_prob=0.1)
    a = masker(ids, am, torch.Generator().manual_seed(7))
    b = masker(ids, am, torch.Generator().manual_seed(7))
    c = masker(ids, am, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    torch.manual_seed(3)
    d = masker(ids, am)
    torch.manual_seed(3)
    e = masker(ids, am)
    assert torch.equal(d[0], e[0])
    assert ((a[1] != -100) & (am == 0)).sum() == 0


@pytest.mark.parametrize('kwargs', [
    dict(ratio=1.5), dict(mask_prob=0.8, random_prob=0.3),
    dict(first_word_id=40000)
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        TokenMasker(**kwargs)
