"""Training-loop pieces: a loop sized by wall time, a learning-curve hook."""
from .learning_curve_hook import LearningCurveHook, plot_learning_curve
from .time_budget_loop import TimeBudgetTrainLoop, rescale_schedulers

__all__ = [
    'LearningCurveHook', 'TimeBudgetTrainLoop', 'plot_learning_curve',
    'rescale_schedulers'
]
