"""Is an expression made of words at all?

A WordPiece / BPE tokenizer turns an expression of only emoji, symbols or
punctuation into ``[UNK]`` tokens or into nothing; the model then predicts a
confident mask for a sentence without a word. The rule here needs no
tokenizer, so the dataset and the data checker can apply it while indexing:
an expression has a word when it has at least one letter or digit (Unicode
categories ``L*`` and ``N*``). The inference path checks the tokenizer's own
output as well (every token unknown or special).
"""
from __future__ import annotations

import unicodedata
from typing import Optional

__all__ = ['has_word', 'wordless_reason']


def has_word(text: str) -> bool:
    """True when ``text`` has at least one letter or digit."""
    return any(unicodedata.category(ch)[0] in 'LN' for ch in text)


def wordless_reason(text: object) -> Optional[str]:
    """None when ``text`` is a string with a word, else why it is not an
    expression (for error messages: "expression 3 ...: <reason>")."""
    if not isinstance(text, str):
        return f'expected a string, got {type(text).__name__}'
    if not text.strip():
        return 'it is empty'
    if not has_word(text):
        return (f'{text!r} has no word (only symbols, emoji or '
                'punctuation): no token a text encoder knows')
    return None
