"""MagNet (Mask Grounding for Referring Image Segmentation) for MMSegmentation.

Importing this package registers every MagNet component in the mmseg
registries (``custom_imports = dict(imports=['projects.magnet'])`` in a config
does it for the stock tools).
"""
from . import compat  # noqa: F401  (must come first: patches mmcv-lite)
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .visualization import *  # noqa: F401,F403
