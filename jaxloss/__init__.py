"""jaxloss: pure, jit-compiled JAX losses whose derivatives are verified against closed-form math.

Every loss is a pure function ``loss(predictions, targets, *, ..., weights=None,
where=None, reduction="mean")``; the shared conventions (reduction, masking,
weights, dtypes, run-time values: NaN by default, errors opt-in with
:func:`jaxloss.runtime_checks`) are documented once in
:mod:`jaxloss._base`. ``jaxloss.REGISTRY`` maps each loss name to its
:class:`~jaxloss.LossSpec`: the function, its hand-derived derivatives, its
input sampler, edge cases and a float64 reference.
"""

from jaxloss import (
                     _categorical,
                     _classification,
                     _ctc,
                     _information,
                     _margin,
                     _ranking,
                     _regression,
                     _segmentation,
                     _similarity,
                     _sparsemax,
                     compat,
                     fused,
                     gan,
)
from jaxloss._base import reduce_loss, runtime_checks, runtime_checks_enabled
from jaxloss._categorical import *  # noqa: F403
from jaxloss._classification import *  # noqa: F403
from jaxloss._ctc import *  # noqa: F403
from jaxloss._information import *  # noqa: F403
from jaxloss._margin import *  # noqa: F403
from jaxloss._ranking import *  # noqa: F403
from jaxloss._registry import REGISTRY
from jaxloss._regression import *  # noqa: F403
from jaxloss._segmentation import *  # noqa: F403
from jaxloss._similarity import *  # noqa: F403
from jaxloss._sparsemax import *  # noqa: F403
from jaxloss._spec import EdgeCase, LossSpec

__all__ = [
    "REGISTRY",
    "EdgeCase",
    "LossSpec",
    "compat",
    "fused",
    "gan",
    "reduce_loss",
    "runtime_checks",
    "runtime_checks_enabled",
    *_categorical.__all__,
    *_classification.__all__,
    *_ctc.__all__,
    *_information.__all__,
    *_margin.__all__,
    *_ranking.__all__,
    *_regression.__all__,
    *_segmentation.__all__,
    *_similarity.__all__,
    *_sparsemax.__all__,
]

__version__ = "0.1.0"
