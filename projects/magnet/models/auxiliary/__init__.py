from .mask_grounding import MaskGroundingHead

__all__ = ['MaskGroundingHead']
