"""Transforms for referring image segmentation (registered in mmseg)."""
from .loading import LoadReferringMask, decode_refer_mask
from .text import SampleSentence, TokenizeText, get_tokenizer

__all__ = [
    'LoadReferringMask', 'decode_refer_mask', 'SampleSentence',
    'TokenizeText', 'get_tokenizer'
]
