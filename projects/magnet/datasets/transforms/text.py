"""Sentence sampling and BERT tokenisation for referring segmentation."""
from __future__ import annotations

import functools
import warnings

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

__all__ = [
    'SampleSentence', 'TokenizeText', 'TextTruncationWarning', 'get_tokenizer'
]


class TextTruncationWarning(UserWarning):
    """An expression has more tokens than the model's token budget."""


@TRANSFORMS.register_module()
class SampleSentence(BaseTransform):
    """Pick one sentence of the referred object uniformly at random.

    Training items of ``RefCOCODataset`` carry all ``sentences`` of a ref
    (``[{'raw', 'sent_id'}, ...]``); like the official training loop, one is
    drawn per ``__getitem__`` with numpy's global RNG (seeded per worker by
    mmengine, so runs are reproducible). Evaluation items already have
    ``text``; they pass through unchanged.

    Required keys: ``sentences`` or ``text``.
    Added keys: ``text`` (the sentence's ``raw`` string), ``sent_id``.
    """

    def transform(self, results: dict) -> dict:
        if 'text' in results:
            return results
        sentences = results.get('sentences')
        if not sentences:
            raise ValueError(
                f'ref_id={results.get("ref_id")}: "sentences" is missing or '
                'empty (and there is no "text")')
        sent = sentences[np.random.randint(len(sentences))]
        results['text'] = sent['raw']
        results['sent_id'] = sent['sent_id']
        return results


@functools.lru_cache(maxsize=None)
def get_tokenizer(name_or_dir: str):
    """``AutoTokenizer.from_pretrained`` cached per process.

    Args:
        name_or_dir (str): hub name, local folder, or
            ``pkg://<package>/<subdir>`` (a folder inside an installed
            package, resolved like the text encoder's ``init_cfg``).

    ``AutoTokenizer`` reads the tokenizer config (lower-casing, special
    tokens...). Do not build ``BertTokenizer(vocab_file=...)`` directly: in
    transformers 5 that silently maps every word to [UNK].
    """
    from transformers import AutoTokenizer

    from ...utils.pretrained import resolve_pretrained
    return AutoTokenizer.from_pretrained(resolve_pretrained(name_or_dir))


@TRANSFORMS.register_module()
class TokenizeText(BaseTransform):
    """Tokenise ``text`` with the official MagNet/LAVT rule.

    The sentence is encoded *with* special tokens (``[CLS] ... [SEP]``),
    **then** truncated to ``max_length`` ids (a long sentence loses its
    ``[SEP]``), then right-padded with ``pad_id``; ``attention_mask`` is 1 for
    the kept ids.

    Required keys: ``text``.
    Added keys: ``input_ids``, ``attention_mask`` (np.int64, (max_length,)).

    Args:
        tokenizer (str): hub name, local folder or ``pkg://<package>/<dir>``
            for ``transformers.AutoTokenizer.from_pretrained``. Defaults to
            ``'bert-base-uncased'``.
        max_length (int): number of ids kept. Defaults to 20.
        pad_id (int): padding id (the official code pads with 0 = [PAD]).
        allow_empty (bool): accept empty / whitespace-only text (encoded as
            ``[CLS] [SEP]``). Defaults to False: raise a ValueError.
        warn_truncation (bool): emit a :class:`TextTruncationWarning` (with
            the number of dropped tokens) when the sentence has more than
            ``max_length`` ids. Defaults to False (datasets such as RefCOCO
            truncate routinely); the inference API turns it on. The ids are
            the same either way.
    """

    def __init__(self,
                 tokenizer: str = 'bert-base-uncased',
                 max_length: int = 20,
                 pad_id: int = 0,
                 allow_empty: bool = False,
                 warn_truncation: bool = False) -> None:
        if max_length < 1:
            raise ValueError(f'max_length must be >= 1, got {max_length}')
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_id = pad_id
        self.allow_empty = allow_empty
        self.warn_truncation = warn_truncation

    def transform(self, results: dict) -> dict:
        text = results.get('text')
        if not isinstance(text, str):
            raise ValueError(
                f'ref_id={results.get("ref_id")} sent_id='
                f'{results.get("sent_id")}: "text" must be a str, got '
                f'{type(text).__name__}; add SampleSentence before '
                'TokenizeText for training items')
        if not text.strip() and not self.allow_empty:
            raise ValueError(
                f'ref_id={results.get("ref_id")} sent_id='
                f'{results.get("sent_id")}: "text" is empty or whitespace '
                'only (set allow_empty=True to encode it as [CLS] [SEP])')
        ids = get_tokenizer(self.tokenizer).encode(
            text, add_special_tokens=True)
        if len(ids) > self.max_length and self.warn_truncation:
            short = text if len(text) <= 60 else text[:57] + '...'
            warnings.warn(
                f'expression {short!r} has {len(ids)} tokens (with [CLS] '
                f'and [SEP]) but the token budget is {self.max_length}: '
                f'{len(ids) - self.max_length} tokens dropped from the end',
                TextTruncationWarning, stacklevel=2)
        ids = ids[:self.max_length]
        input_ids = np.full(self.max_length, self.pad_id, dtype=np.int64)
        input_ids[:len(ids)] = ids
        attention_mask = np.zeros(self.max_length, dtype=np.int64)
        attention_mask[:len(ids)] = 1
        results['input_ids'] = input_ids
        results['attention_mask'] = attention_mask
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(tokenizer={self.tokenizer!r}, '
                f'max_length={self.max_length}, pad_id={self.pad_id}, '
                f'allow_empty={self.allow_empty}, '
                f'warn_truncation={self.warn_truncation})')
