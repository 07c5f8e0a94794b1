from .alignment_loss import CrossModalAlignmentLoss

__all__ = ['CrossModalAlignmentLoss']
