"""The REFER format: finding and reading the files (:mod:`.files`), the
one set of rules for refs and instances (:mod:`.schema`), building the
items of a split (:mod:`.index`) and checking a whole layout
(:mod:`.check`, used by ``tools/misc/check_refer_data.py``)."""
from .files import (REFS_FORMATS, default_refs_file, load_refs_file,
                    refs_file_name)
from .index import REFER_SPLITS, select_refer_split, split_counts
from .schema import Problem, Problems, ReferFormatError

__all__ = [
    'REFS_FORMATS', 'REFER_SPLITS', 'Problem', 'Problems',
    'ReferFormatError', 'default_refs_file', 'load_refs_file',
    'refs_file_name', 'select_refer_split', 'split_counts'
]
