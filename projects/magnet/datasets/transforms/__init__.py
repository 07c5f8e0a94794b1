"""Transforms for referring image segmentation (registered in mmseg)."""
from .category_map import LoadCategoryMap
from .gref_mask_loading import LoadGRefMask, decode_gref_mask
from .image_arrays import DEFAULT_MAX_SIZE, bounded_size
from .image_checks import ImageFileError, ImageNotFoundError, ImageTypeError
from .image_loading import (LoadImageFromArray, LoadInferenceImage,
                            LoadReferImageFromFile, decode_image_bytes,
                            to_three_channels)
from .mask_loading import (LoadReferringMask, SegmentationError,
                           decode_refer_mask)
from .text import (SampleSentence, TextTruncationWarning, TokenizeText,
                   get_tokenizer)

__all__ = [
    'LoadCategoryMap', 'LoadGRefMask', 'decode_gref_mask',
    'LoadReferringMask', 'LoadImageFromArray',
    'LoadReferImageFromFile',
    'LoadInferenceImage', 'decode_image_bytes', 'decode_refer_mask',
    'to_three_channels', 'DEFAULT_MAX_SIZE', 'bounded_size',
    'ImageFileError', 'ImageNotFoundError', 'ImageTypeError',
    'SegmentationError', 'SampleSentence', 'TokenizeText',
    'TextTruncationWarning', 'get_tokenizer'
]
