"""Random masking of expression tokens for Mask Grounding.

The rules (BERT/ovr-cnn practice; the paper's exact ratio is not published,
see docs/training.md):

* only real word pieces are candidates: never padding (``attention_mask ==
  0``) and never the special ids ([CLS], [SEP], [PAD], [MASK], [UNK]);
* each candidate is selected with probability ``ratio``; a sentence with at
  least one candidate always gets at least one selected token (one drawn
  uniformly among its candidates when the coin flips chose none);
* a selected token becomes ``[MASK]`` with probability ``mask_prob``, a
  random vocabulary word with probability ``random_prob`` and stays itself
  otherwise;
* the labels hold the original id at selected positions and
  ``ignore_index`` elsewhere.

Everything is drawn from ``generator`` when one is given (deterministic),
otherwise from torch's global RNG (seeded by mmengine's ``randomness.seed``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from mmseg.registry import MODELS
from ..errors import ModelConfigError

Tensor = torch.Tensor

#: bert-base-uncased: [PAD], [UNK], [CLS], [SEP], [MASK].
BERT_SPECIAL_IDS = (0, 100, 101, 102, 103)
BERT_MASK_ID = 103
#: First id of a real word piece in bert-base-uncased (before it: [PAD],
#: [unused*] and the special tokens).
BERT_FIRST_WORD_ID = 999


@MODELS.register_module()
class TokenMasker:
    """Select and corrupt expression tokens (see the module docstring).

    Args:
        ratio (float): Selection probability of a candidate token.
            Defaults to 0.15.
        mask_prob (float): Probability that a selected token becomes
            ``mask_token_id``. Defaults to 0.9 (ovr-cnn).
        random_prob (float): Probability that it becomes a random word
            (``[first_word_id, vocab_size)``). Defaults to 0.0. The rest
            keep their token.
        min_masked (int): Tokens selected at least per sentence (when it
            has that many candidates). Defaults to 1.
        special_ids (Sequence[int]): Never selected.
        mask_token_id (int): Defaults to 103 (bert-base-uncased [MASK]).
        vocab_size (int): Defaults to 30522.
        first_word_id (int): Smallest id drawn as a random word.
        ignore_index (int): Label of unselected positions. Defaults to -100.
    """

    def __init__(self,
                 ratio: float = 0.15,
                 mask_prob: float = 0.9,
                 random_prob: float = 0.0,
                 min_masked: int = 1,
                 special_ids: Sequence[int] = BERT_SPECIAL_IDS,
                 mask_token_id: int = BERT_MASK_ID,
                 vocab_size: int = 30522,
                 first_word_id: int = BERT_FIRST_WORD_ID,
                 ignore_index: int = -100) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ModelConfigError(f'ratio must be in [0, 1], got {ratio}')
        if mask_prob < 0 or random_prob < 0 or mask_prob + random_prob > 1:
            raise ModelConfigError(
                'mask_prob and random_prob must be >= 0 with a sum <= 1, got '
                f'{mask_prob} and {random_prob}')
        if not 0 <= first_word_id < vocab_size:
            raise ModelConfigError(
                f'first_word_id {first_word_id} is outside the '
                f'vocabulary (size {vocab_size})')
        self.ratio = ratio
        self.mask_prob = mask_prob
        self.random_prob = random_prob
        self.min_masked = min_masked
        self.special_ids = tuple(special_ids)
        self.mask_token_id = mask_token_id
        self.vocab_size = vocab_size
        self.first_word_id = first_word_id
        self.ignore_index = ignore_index

    def candidates(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, N) bool: real, non-special tokens."""
        special = torch.zeros_like(input_ids, dtype=torch.bool)
        for token_id in self.special_ids:
            special |= input_ids == token_id
        return attention_mask.bool() & ~special

    def _rand(self, shape, device, generator) -> Tensor:
        # draw on the CPU when a CPU generator drives a CUDA batch
        gen_device = generator.device if generator is not None else device
        return torch.rand(shape, generator=generator,
                          device=gen_device).to(device)

    def select(self, input_ids: Tensor, attention_mask: Tensor,
               generator: Optional[torch.Generator] = None) -> Tensor:
        """(B, N) bool: the positions to predict."""
        cand = self.candidates(input_ids, attention_mask)
        scores = self._rand(input_ids.shape, input_ids.device, generator)
        selected = cand & (scores < self.ratio)
        # top up sentences below min_masked with their lowest-scoring
        # candidates (uniformly random among the remaining ones)
        need = (self.min_masked - selected.sum(1)).clamp(min=0)
        if self.min_masked > 0 and bool((need > 0).any()):
            free = cand & ~selected
            order = torch.where(free, scores, torch.full_like(scores, 2.0))
            rank = order.argsort(1).argsort(1)
            selected |= free & (rank < need[:, None])
        return selected

    def __call__(self, input_ids: Tensor, attention_mask: Tensor,
                 generator: Optional[torch.Generator] = None,
                 mask_only: bool = False) -> Tuple[Tensor, Tensor]:
        """Mask a batch of token ids.

        Args:
            input_ids (Tensor): (B, N) int64 token ids.
            attention_mask (Tensor): (B, N), 1 for real tokens.
            generator (torch.Generator, optional): Source of randomness.
            mask_only (bool): Replace every selected token by [MASK]
                (evaluation: no visible or random targets).

        Returns:
            tuple: masked ids (B, N) and labels (B, N) (the original id at
            selected positions, ``ignore_index`` elsewhere).
        """
        selected = self.select(input_ids, attention_mask, generator)
        action = self._rand(input_ids.shape, input_ids.device, generator)
        mask_prob = 1.0 if mask_only else self.mask_prob
        random_prob = 0.0 if mask_only else self.random_prob
        to_mask = selected & (action < mask_prob)
        to_random = selected & (action >= mask_prob) & (
            action < mask_prob + random_prob)
        masked = input_ids.masked_fill(to_mask, self.mask_token_id)
        if bool(to_random.any()):
            gen_device = (generator.device if generator is not None else
                          input_ids.device)
            words = torch.randint(self.first_word_id, self.vocab_size,
                                  input_ids.shape, generator=generator,
                                  device=gen_device).to(input_ids.device)
            masked = torch.where(to_random, words, masked)
        labels = input_ids.masked_fill(~selected, self.ignore_index)
        return masked, labels
