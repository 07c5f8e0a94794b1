"""Runner pieces: a loop sized by wall time, a learning-curve hook, the
checkpoint trust hook, exact resume of the random state, optimizer wrappers
that stop on NaN / Inf (fp32, CUDA AMP, CPU bf16), a logger hook whose test
metrics file one process writes, gradient health (parameters without
gradient, per-module gradient norms, gate openness)."""
from .batch_identity_hook import BatchIdentityHook, batch_identities
from .checkpoint_trust_hook import CheckpointTrustHook
from .gradient_health import (GateProbe, GradientRecorder, check_gradients,
                              random_training_batch)
from .gradient_health_hook import DeadParametersError, GradientHealthHook
from .learning_curve_hook import LearningCurveHook, plot_learning_curve
from .logger_hook import MainProcessLoggerHook
from .nonfinite_guard import (CPUAmpOptimWrapper, GuardedAmpOptimWrapper,
                              GuardedOptimWrapper, NonFiniteError)
from .random_state_hook import RandomStateHook
from .time_budget_loop import TimeBudgetTrainLoop, rescale_schedulers

__all__ = [
    'BatchIdentityHook', 'CheckpointTrustHook', 'CPUAmpOptimWrapper',
    'DeadParametersError', 'GateProbe', 'GradientHealthHook',
    'GradientRecorder', 'GuardedAmpOptimWrapper', 'GuardedOptimWrapper',
    'LearningCurveHook', 'check_gradients', 'random_training_batch',
    'MainProcessLoggerHook',
    'NonFiniteError', 'RandomStateHook', 'TimeBudgetTrainLoop',
    'batch_identities', 'plot_learning_curve', 'rescale_schedulers'
]
