"""Transforms for referring image segmentation (registered in mmseg)."""
from .loading import (LoadImageFromArray, LoadReferringMask,
                      decode_refer_mask, to_three_channels)
from .text import (SampleSentence, TextTruncationWarning, TokenizeText,
                   get_tokenizer)

__all__ = [
    'LoadReferringMask', 'LoadImageFromArray', 'decode_refer_mask',
    'to_three_channels', 'SampleSentence', 'TokenizeText',
    'TextTruncationWarning', 'get_tokenizer'
]
