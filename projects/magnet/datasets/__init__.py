"""REFER-format datasets and transforms (registered in mmseg)."""
from .refcoco import RefCOCODataset, ReferFormatError, select_refer_split
from .refer_pickle import UnsafeReferPickleError, load_refer_pickle
from .transforms import *  # noqa: F401,F403

__all__ = [
    'RefCOCODataset', 'ReferFormatError', 'select_refer_split',
    'UnsafeReferPickleError', 'load_refer_pickle'
]
