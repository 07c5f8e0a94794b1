from .mask_encoder import MaskEncoder
from .mask_decoder import MaskedAttentionDecoder, MaskedAttentionDecoderLayer
from .ms_deform_attn import (
    MSDeformAttn,
    multi_scale_deformable_attn,
    multi_scale_deformable_attn_fast,
)
from .pixel_decoder import (
    MSDeformAttnEncoder,
    MSDeformAttnEncoderLayer,
    MSDeformAttnPixelDecoder,
    SinePositionalEncoding,
)
from .token_masking import TokenMasker

__all__ = [
    'MSDeformAttn', 'multi_scale_deformable_attn',
    'multi_scale_deformable_attn_fast', 'SinePositionalEncoding',
    'MSDeformAttnEncoderLayer', 'MSDeformAttnEncoder',
    'MSDeformAttnPixelDecoder', 'MaskedAttentionDecoderLayer',
    'MaskedAttentionDecoder', 'MaskEncoder', 'TokenMasker'
]
