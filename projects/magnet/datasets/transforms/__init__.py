"""Transforms for referring image segmentation (registered in mmseg)."""
from .category_map import LoadCategoryMap
from .image_loading import (LoadImageFromArray, LoadInferenceImage,
                            LoadReferImageFromFile, decode_image_bytes,
                            to_three_channels)
from .loading import LoadReferringMask, decode_refer_mask
from .text import (SampleSentence, TextTruncationWarning, TokenizeText,
                   get_tokenizer)

__all__ = [
    'LoadCategoryMap', 'LoadReferringMask', 'LoadImageFromArray',
    'LoadReferImageFromFile',
    'LoadInferenceImage', 'decode_image_bytes', 'decode_refer_mask',
    'to_three_channels', 'SampleSentence', 'TokenizeText',
    'TextTruncationWarning', 'get_tokenizer'
]
