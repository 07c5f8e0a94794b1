from .multimodal_swin import MultimodalSwin

__all__ = ['MultimodalSwin']
