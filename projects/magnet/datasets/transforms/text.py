"""Sentence sampling and BERT tokenisation for referring segmentation."""
from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Mapping

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

from ...utils.errors import InputFileError, InvalidInputError

__all__ = [
    'SampleSentence', 'TokenizeText', 'TextTruncationWarning',
    'get_tokenizer', 'TextInputError', 'known_word_ids'
]


class TextTruncationWarning(UserWarning):
    """An expression has more tokens than the model's token budget."""


class TextInputError(InvalidInputError):
    """A sentence that cannot be tokenised into a usable expression (a
    ``ValueError``); the message names the sample (``ref_id`` /
    ``sent_id``, or the expression)."""


def known_word_ids(tokenizer, ids) -> list:
    """The ids of ``ids`` that are words of the vocabulary: neither special
    (``[CLS]``, ``[SEP]``, ``[MASK]``, ``[PAD]``...) nor ``[UNK]``."""
    special = set(tokenizer.all_special_ids)  # includes unk_token_id
    return [i for i in ids if i not in special]


def _where(results: dict) -> str:
    """``'ref_id=.. sent_id=..: '`` of a dataset item ('' when it has
    neither, e.g. free text of the inference API)."""
    if results.get('ref_id') is None and results.get('sent_id') is None:
        return ''
    return (f'ref_id={results.get("ref_id")} '
            f'sent_id={results.get("sent_id")}: ')


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

    Raises:
        ValueError: the item has no ``text`` and its ``sentences`` is
            missing or empty, is not a list / tuple, or one of its entries
            is not a dict with ``raw`` and ``sent_id`` (the ``ref_id`` and
            the entry's index are named). Every entry is checked, not only
            the drawn one, so a bad item fails on its first use.
    """

    def transform(self, results: dict) -> dict:
        if 'text' in results:
            return results
        ref = f'ref_id={results.get("ref_id")}'
        sentences = results.get('sentences')
        if sentences is None or (isinstance(sentences, (list, tuple))
                                 and not sentences):
            raise TextInputError(
                f'{ref}: "sentences" is missing or empty (and there is no '
                '"text")')
        if not isinstance(sentences, (list, tuple)):
            raise TextInputError(
                f'{ref}: "sentences" must be a list of dicts with "raw" and '
                f'"sent_id", got {type(sentences).__name__}')
        for i, sent in enumerate(sentences):
            if not isinstance(sent, Mapping) or 'raw' not in sent \
                    or 'sent_id' not in sent:
                got = (f'keys {sorted(map(str, sent))}' if isinstance(
                    sent, Mapping) else type(sent).__name__)
                raise TextInputError(
                    f'{ref}: "sentences"[{i}] must be a dict with "raw" and '
                    f'"sent_id", got {got}')
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
    path = resolve_pretrained(name_or_dir)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as err:  # transformers: no such folder / hub name
        raise InputFileError(
            f'tokenizer {name_or_dir!r} cannot be loaded: {err}') from err


@TRANSFORMS.register_module()
class TokenizeText(BaseTransform):
    """Tokenise ``text`` with the official MagNet/LAVT rule.

    The sentence is encoded *with* special tokens (``[CLS] ... [SEP]``),
    **then** truncated to ``max_length`` ids (a long sentence loses its
    ``[SEP]``), then right-padded with ``pad_id``; ``attention_mask`` is 1 for
    the kept ids (a prefix of ones).

    What the uncased BERT WordPiece tokenizer does with unusual text (same
    ids as the official ``tokenizer.encode``): letters are lower-cased and
    their accents stripped (``'Ünïcödé'`` -> ``'unicode'``); CJK characters
    are split one per token; characters absent from the vocabulary (most
    emoji, CJK with the MiniLM vocabulary...) become ``[UNK]``; control and
    format characters (``'\\x00'``, zero-width space, a lone combining
    accent...) are dropped; special tokens typed in the text (``'[MASK]'``,
    ``'[SEP]'``...) are encoded as those special ids.

    Required keys: ``text``.
    Added keys: ``input_ids``, ``attention_mask`` (np.int64, (max_length,)).

    Args:
        tokenizer (str): hub name, local folder or ``pkg://<package>/<dir>``
            for ``transformers.AutoTokenizer.from_pretrained``. Defaults to
            ``'bert-base-uncased'``.
        max_length (int): number of ids kept. Defaults to 20.
        pad_id (int): padding id (the official code pads with 0 = [PAD]).
        allow_empty (bool): accept text without any word piece (empty,
            whitespace only, or only characters the tokenizer drops), encoded
            as ``[CLS] [SEP]``. Defaults to False: raise a ValueError.
        require_known_word (bool): refuse text whose word pieces are all
            ``[UNK]`` or special tokens (``'🐶'``, ``'[MASK]'``, CJK the
            vocabulary lacks): the model would get no word it knows. The
            inference pipeline turns it on; defaults to False, as the
            official tokenisation (datasets check their expressions while
            indexing, see :func:`projects.magnet.utils.wordless_reason`).
        warn_truncation (bool): emit a :class:`TextTruncationWarning` (with
            the number of dropped tokens) for every sentence with more than
            ``max_length`` ids (the inference API turns it on). Defaults to
            False: datasets such as RefCOCO truncate routinely, so only the
            first truncation of the transform (in each dataloader worker) is
            logged, at INFO level, through mmengine's current logger. The ids
            are the same either way.

    Raises:
        TextInputError (a ValueError): ``text`` is missing or not a ``str``
            (bytes included), or has no word piece and ``allow_empty`` is
            False, or (``require_known_word``) no known word; the message
            names ``"text"`` and, for dataset items, the ``ref_id`` and
            ``sent_id``.
    """

    def __init__(self,
                 tokenizer: str = 'bert-base-uncased',
                 max_length: int = 20,
                 pad_id: int = 0,
                 allow_empty: bool = False,
                 warn_truncation: bool = False,
                 require_known_word: bool = False) -> None:
        if max_length < 1:
            raise InvalidInputError(
                f'TokenizeText: max_length must be >= 1, got {max_length}')
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_id = pad_id
        self.allow_empty = allow_empty
        self.warn_truncation = warn_truncation
        self.require_known_word = require_known_word
        #: whether the first (quiet) truncation has been logged
        self._truncation_logged = False

    def transform(self, results: dict) -> dict:
        text = results.get('text')
        where = _where(results)
        if not isinstance(text, str):
            got = ('nothing ("text" is missing)' if 'text' not in results
                   else f'{type(text).__name__} ({text!r:.60})')
            raise TextInputError(
                f'{where}"text" must be a str, got {got}; add SampleSentence '
                'before TokenizeText for training items')
        if not text.strip() and not self.allow_empty:
            raise TextInputError(
                f'{where}"text" is empty or whitespace only ({text!r:.60}; '
                'set allow_empty=True to encode it as [CLS] [SEP])')
        tokenizer = get_tokenizer(self.tokenizer)
        ids = tokenizer.encode(text, add_special_tokens=True)
        if len(ids) <= tokenizer.num_special_tokens_to_add() \
                and not self.allow_empty:
            raise TextInputError(
                f'{where}"text" {text!r:.60} has no tokens: the tokenizer '
                'drops all its characters (control / format characters); '
                'set allow_empty=True to encode it as [CLS] [SEP]')
        if self.require_known_word and not known_word_ids(tokenizer, ids):
            pieces = tokenizer.convert_ids_to_tokens(ids)[1:-1]
            raise TextInputError(
                f'{where}"text" {text!r:.60} has no word the tokenizer '
                f'knows (its tokens are {" ".join(pieces)}): the model '
                'would see no word')
        if len(ids) > self.max_length:
            self._report_truncation(text, len(ids))
        ids = ids[:self.max_length]
        input_ids = np.full(self.max_length, self.pad_id, dtype=np.int64)
        input_ids[:len(ids)] = ids
        attention_mask = np.zeros(self.max_length, dtype=np.int64)
        attention_mask[:len(ids)] = 1
        results['input_ids'] = input_ids
        results['attention_mask'] = attention_mask
        return results

    def _report_truncation(self, text: str, num_ids: int) -> None:
        """Warn (``warn_truncation``) or log the first truncation."""
        short = text if len(text) <= 60 else text[:57] + '...'
        message = (f'expression {short!r} has {num_ids} tokens (with [CLS] '
                   f'and [SEP]) but the token budget is {self.max_length}: '
                   f'{num_ids - self.max_length} tokens dropped from the end')
        if self.warn_truncation:
            warnings.warn(message, TextTruncationWarning, stacklevel=4)
        elif not self._truncation_logged:
            self._truncation_logged = True
            print_log(
                f'TokenizeText: {message} (longer expressions are truncated '
                'as in the official code; further truncations are not '
                'logged)', logger='current', level=logging.INFO)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(tokenizer={self.tokenizer!r}, '
                f'max_length={self.max_length}, pad_id={self.pad_id}, '
                f'allow_empty={self.allow_empty}, '
                f'warn_truncation={self.warn_truncation}, '
                f'require_known_word={self.require_known_word})')
