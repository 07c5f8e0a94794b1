from .backbones import *  # noqa: F401,F403
from .decode_heads import *  # noqa: F401,F403
from .language import *  # noqa: F401,F403
from .objectives import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
