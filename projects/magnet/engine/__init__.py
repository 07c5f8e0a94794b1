"""Runner pieces: a loop sized by wall time, a learning-curve hook, the
checkpoint trust hook."""
from .checkpoint_trust_hook import CheckpointTrustHook
from .learning_curve_hook import LearningCurveHook, plot_learning_curve
from .time_budget_loop import TimeBudgetTrainLoop, rescale_schedulers

__all__ = [
    'CheckpointTrustHook', 'LearningCurveHook', 'TimeBudgetTrainLoop',
    'plot_learning_curve', 'rescale_schedulers'
]
