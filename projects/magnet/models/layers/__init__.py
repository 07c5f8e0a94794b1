from .mask_decoder import MaskedAttentionDecoder, MaskedAttentionDecoderLayer
from .mask_encoder import MaskEncoder
from .ms_deform_attn import MSDeformAttn, ProjectedValue
from .ms_deform_attn_core import (multi_scale_deformable_attn,
                                  multi_scale_deformable_attn_fast,
                                  select_core)
from .pixel_decoder import (MSDeformAttnEncoder, MSDeformAttnEncoderLayer,
                            MSDeformAttnPixelDecoder)
from .positional_encoding import SinePositionalEncoding
from .token_masking import TokenMasker

__all__ = [
    'MSDeformAttn', 'ProjectedValue', 'multi_scale_deformable_attn',
    'multi_scale_deformable_attn_fast', 'select_core',
    'SinePositionalEncoding', 'MSDeformAttnEncoderLayer',
    'MSDeformAttnEncoder', 'MSDeformAttnPixelDecoder',
    'MaskedAttentionDecoderLayer', 'MaskedAttentionDecoder', 'MaskEncoder',
    'TokenMasker'
]
