"""MagNet's training objectives beside the mask loss: Mask Grounding and
the cross-modal alignment loss. Both run only in training; inference never
builds them (``MagNet.TRAINING_ONLY_MODULES``)."""
from .alignment_loss import CrossModalAlignmentLoss
from .mask_grounding import MaskGroundingHead

__all__ = ['CrossModalAlignmentLoss', 'MaskGroundingHead']
