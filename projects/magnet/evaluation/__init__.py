"""Referring segmentation metrics (registered in mmseg)."""
from .refseg_metric import RefSegMetric, refseg_scores

__all__ = ['RefSegMetric', 'refseg_scores']
