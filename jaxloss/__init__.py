"""jaxloss: pure, jit-compiled JAX losses whose derivatives are verified against closed-form math.

Every loss is a pure function ``loss(predictions, targets, *, ..., weights=None,
where=None, reduction="mean")``; the shared conventions (reduction, masking,
weights, dtypes, run-time values: NaN by default, errors opt-in with
:func:`jaxloss.runtime_checks`) are documented once in
:mod:`jaxloss._base`. ``jaxloss.REGISTRY`` maps each loss name to its
:class:`~jaxloss.LossSpec`: the function, its hand-derived derivatives, its
input sampler, edge cases and a float64 reference.
"""

from jaxloss._base import reduce_loss, runtime_checks, runtime_checks_enabled
from jaxloss._categorical import *  # noqa: F401,F403
from jaxloss._classification import *  # noqa: F401,F403
from jaxloss._ctc import *  # noqa: F401,F403
from jaxloss._information import *  # noqa: F401,F403
from jaxloss._margin import *  # noqa: F401,F403
from jaxloss._ranking import *  # noqa: F401,F403
from jaxloss._regression import *  # noqa: F401,F403
from jaxloss._segmentation import *  # noqa: F401,F403
from jaxloss._similarity import *  # noqa: F401,F403
from jaxloss._registry import REGISTRY
from jaxloss._sparsemax import *  # noqa: F401,F403
from jaxloss._spec import EdgeCase, LossSpec
from jaxloss import compat, fused, gan  # noqa: F401

__version__ = "0.1.0"
