"""Referring segmentation metrics (registered in mmseg)."""
from .gref_metric import GRefSegMetric
from .gref_scores import gres_scores
from .refseg_metric import RefSegMetric, refseg_scores

__all__ = ['RefSegMetric', 'refseg_scores', 'GRefSegMetric', 'gres_scores']
