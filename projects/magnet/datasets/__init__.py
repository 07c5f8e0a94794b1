"""REFER-format datasets and transforms (registered in mmseg)."""
from .grefcoco import GRefCOCODataset
from .json_stream import JsonStreamError
from .refcoco import (RefCOCODataset, ReferFormatError, load_refs_file,
                      select_refer_split)
from .refer_categories import ReferCategorySegDataset
from .refer_pickle import UnsafeReferPickleError, load_refer_pickle
from .transforms import *  # noqa: F401,F403

__all__ = [
    'GRefCOCODataset', 'RefCOCODataset', 'ReferCategorySegDataset',
    'ReferFormatError',
    'select_refer_split',
    'UnsafeReferPickleError', 'load_refer_pickle', 'load_refs_file',
    'JsonStreamError'
]
