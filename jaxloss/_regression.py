"""Regression losses.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
errors) are documented once in :mod:`jaxloss._base`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base
from jaxloss._spec import EdgeCase, LossSpec, optax_loss

__all__ = ["squared_error"]


def _elementwise_prologue(name_p, predictions, name_t, targets, where):
  """Checks and casts (predictions, targets) of an elementwise loss."""
  p, dtype = _base.as_predictions(name_p, predictions)
  t = _base.as_targets(name_t, targets, dtype)
  _base.check_same_shape(name_p, p, name_t, t)
  mask = _base.prepare_where(where, p.shape)
  return p, t, mask


# --------------------------------------------------------------------------
# squared error
# --------------------------------------------------------------------------
def squared_error(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Squared error, elementwise :math:`\ell(p, y) = (p - y)^2` (no factor 1/2).

  Derivatives (by hand):

  .. math::
     \partial_p \ell = 2 (p - y), \qquad \partial_y \ell = -2 (p - y),
     \qquad \partial_p^2 \ell = 2.

  Args:
    predictions: floating array.
    targets: array of the same shape.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss (a scalar) or, with ``reduction="none"``, one value per
    element.

  References:
    Gauss, *Theoria motus corporum coelestium*, 1809 (least squares).
  """
  p, t, mask = _elementwise_prologue("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask)
  loss = jnp.square(p - t)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _squared_error_dp(p, y):
  return 2.0 * (p - y)


def _squared_error_dy(p, y):
  return -2.0 * (p - y)


def _squared_error_hessian(p, y):
  del y
  n = p.size
  return (2.0 * jnp.eye(n, dtype=p.dtype)).reshape(p.shape + p.shape)


def _sample_regression(key, dtype, shape=(4, 3)):
  kp, ky = jax.random.split(key)
  p = jax.random.normal(kp, shape, jnp.float32).astype(dtype)
  y = jax.random.normal(ky, shape, jnp.float32).astype(dtype)
  return p, y


SQUARED_ERROR = LossSpec(
    name="squared_error",
    family="regression",
    fn=squared_error,
    arg_names=("predictions", "targets"),
    grads={0: _squared_error_dp, 1: _squared_error_dy},
    hessian=_squared_error_hessian,
    sample=_sample_regression,
    reference=lambda p, y: (np.asarray(p, np.float64) - np.asarray(y, np.float64)) ** 2,
    edge_cases=(
        EdgeCase((np.array([0.0, 1e15, -1e-30]), np.array([0.0, -1e15, 1e-30])), "zero and extreme residuals"),
    ),
    formula=r"(p - y)^2",
    domain="p, y real",
    float_argnums=(0, 1),
    optax_peer=optax_loss("squared_error"),
    naive=lambda p, y: (p - y) ** 2,
)

SPECS = (SQUARED_ERROR,)
