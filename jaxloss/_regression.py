"""Regression losses.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
errors) are documented once in :mod:`jaxloss._base`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxloss import _base
from jaxloss._spec import EdgeCase, LossSpec, optax_loss

__all__ = [
    "squared_error",
    "absolute_error",
    "huber_loss",
    "smooth_l1_loss",
    "log_cosh",
    "quantile_loss",
    "poisson_nll",
    "gaussian_nll",
    "mean_squared_logarithmic_error",
    "mean_absolute_percentage_error",
    "l2_loss",
]


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
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
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


# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------
def _option(value, dtype):
  """A scalar option (Python number or traced array) in the computation dtype."""
  return jnp.asarray(value).astype(dtype)


def _check_positive_option(name, value, *, allow_zero=False):
  """An option that must be > 0 (or >= 0): see :func:`jaxloss._base.check_scalar_in`."""
  return _base.check_scalar_in(name, value, 0.0, float("inf"), closed_low=allow_zero)


@jax.custom_jvp
def _abs(r):
  # |r| with derivative sign(r), which is 0 at r = 0 (the minimum-norm
  # subgradient); jnp.abs would give 1 there. Not r * sign(r): XLA:CPU cannot
  # fuse sign into a reduction, so that form materializes sign(r) in a training
  # step (one more input-sized buffer); here sign is only in the derivative.
  return jnp.abs(r)


@_abs.defjvp
def _abs_jvp(primals, tangents):
  (r,), (t,) = primals, tangents
  return jnp.abs(r), jnp.sign(r) * t


def _identity_hessian(diag):
  """Full Hessian (``x.shape + x.shape``) of an elementwise loss from its diagonal."""
  n = diag.size
  return (jnp.eye(n, dtype=diag.dtype) * diag.reshape(-1)).reshape(diag.shape + diag.shape)


def _f64(*xs):
  return tuple(np.asarray(x, np.float64) for x in xs)


# --------------------------------------------------------------------------
# absolute error
# --------------------------------------------------------------------------
def absolute_error(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Absolute error, elementwise :math:`\ell(p, y) = |p - y|`.

  Derivatives (by hand), with :math:`r = p - y`:

  .. math::
     \partial_p \ell = \operatorname{sign}(r), \qquad
     \partial_y \ell = -\operatorname{sign}(r).

  At the kink :math:`r = 0` the loss is not differentiable; jaxloss returns the
  minimum-norm subgradient 0 there (``jnp.abs`` under autodiff would give 1).

  Args:
    predictions: floating array.
    targets: array of the same shape.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Laplace, *Mémoire sur la probabilité des causes par les événements*, 1774
    (least absolute deviations).
  """
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask)
  loss = _abs(p - t)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _absolute_error_dp(p, y):
  return jnp.sign(p - y)


def _absolute_error_dy(p, y):
  return -jnp.sign(p - y)


ABSOLUTE_ERROR = LossSpec(
    name="absolute_error",
    family="regression",
    fn=absolute_error,
    arg_names=("predictions", "targets"),
    grads={0: _absolute_error_dp, 1: _absolute_error_dy},
    sample=_sample_regression,
    reference=lambda p, y: np.abs(np.subtract(*_f64(p, y))),
    edge_cases=(
        EdgeCase((np.array([0.0, 2.5, -1e-30]), np.array([0.0, 2.5, 1e-30])), "zero residual: subgradient 0"),
        EdgeCase((np.array([1e15, -3.0]), np.array([-1e15, 4.0])), "large residuals"),
    ),
    formula=r"|p - y|",
    domain="p, y real",
    float_argnums=(0, 1),
    naive=lambda p, y: jnp.abs(p - y),
)


# --------------------------------------------------------------------------
# Huber
# --------------------------------------------------------------------------
def huber_loss(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    delta: float = 1.0,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Huber loss (optax convention), elementwise with :math:`r = p - y`:

  .. math::
     \ell_\delta(r) = \begin{cases}
       \tfrac12 r^2 & |r| \le \delta \\
       \delta\,(|r| - \tfrac12 \delta) & |r| > \delta.
     \end{cases}

  Derivation: both pieces and their first derivatives agree at
  :math:`|r| = \delta` (value :math:`\delta^2/2`, slope :math:`\pm\delta`), so

  .. math::
     \partial_p \ell = \operatorname{clip}(r, -\delta, \delta), \qquad
     \partial_y \ell = -\operatorname{clip}(r, -\delta, \delta), \qquad
     \partial_p^2 \ell = \mathbf 1[|r| \le \delta]

  (the second derivative jumps at :math:`|r| = \delta`; the quadratic side's
  value 1 is used there). PyTorch's ``HuberLoss`` uses the same convention;
  :func:`smooth_l1_loss` is this loss divided by :math:`\delta`.

  Args:
    predictions: floating array.
    targets: array of the same shape.
    delta: the transition point, ``> 0``.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Huber, `Robust Estimation of a Location Parameter
    <https://doi.org/10.1214/aoms/1177703732>`_, Ann. Math. Statist., 1964.
  """
  bad_option = _check_positive_option("delta", delta)
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask)
  d = _option(delta, p.dtype)
  r = p - t
  abs_r = _abs(r)
  # (0.5 r) r, not 0.5 r^2: r^2 overflows for |r| in (1.8e19, 2.6e19) in float32 where the loss is finite.
  loss = _base.nan_if(bad_option, jnp.where(abs_r <= d, (0.5 * r) * r, d * (abs_r - 0.5 * d)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _huber_dp(p, y, delta=1.0):
  d = _option(delta, p.dtype)
  return jnp.clip(p - y, -d, d)


def _huber_dy(p, y, delta=1.0):
  return -_huber_dp(p, y, delta=delta)


def _huber_hessian(p, y, delta=1.0):
  d = _option(delta, p.dtype)
  return _identity_hessian(jnp.where(jnp.abs(p - y) <= d, 1.0, 0.0).astype(p.dtype))


def _huber_reference(p, y, delta=1.0):
  r = np.subtract(*_f64(p, y))
  a = np.abs(r)
  return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


HUBER_LOSS = LossSpec(
    name="huber_loss",
    family="regression",
    fn=huber_loss,
    arg_names=("predictions", "targets"),
    grads={0: _huber_dp, 1: _huber_dy},
    hessian=_huber_hessian,
    sample=_sample_regression,
    reference=_huber_reference,
    edge_cases=(
        EdgeCase((np.array([1.5, -0.5, 0.0]), np.array([0.5, 0.5, 0.0])), "|r| = delta exactly, and r = 0"),
        EdgeCase((np.array([1e6, -1e6]), np.array([0.0, 0.0])), "far in the linear part"),
        EdgeCase((np.array([0.75, 0.0]), np.array([0.25, 0.5])), "|r| = delta = 0.5", config={"delta": 0.5}),
    ),
    configs=({}, {"delta": 0.5}, {"delta": 2.0}),
    formula=r"\tfrac12 r^2 \ (|r| \le \delta), \ \delta(|r| - \tfrac12\delta) \ \text{else}; \ r = p - y",
    domain="p, y real; delta > 0",
    float_argnums=(0, 1),
    optax_peer=optax_loss("huber_loss"),
    naive=lambda p, y, delta=1.0: jnp.where(
        jnp.abs(p - y) <= delta, 0.5 * (p - y) ** 2, delta * (jnp.abs(p - y) - 0.5 * delta)),
)


# --------------------------------------------------------------------------
# smooth L1
# --------------------------------------------------------------------------
def smooth_l1_loss(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    beta: float = 1.0,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Smooth L1 loss (PyTorch convention), elementwise with :math:`r = p - y`:

  .. math::
     \ell_\beta(r) = \begin{cases}
       \tfrac{1}{2\beta} r^2 & |r| < \beta \\
       |r| - \tfrac12 \beta & |r| \ge \beta,
     \end{cases}

  i.e. :func:`huber_loss` with :math:`\delta = \beta`, divided by
  :math:`\beta`. With ``beta=0`` it is exactly the absolute error :math:`|r|`.

  Derivatives (by hand):

  .. math::
     \partial_p \ell = \begin{cases} r / \beta & |r| < \beta \\
       \operatorname{sign}(r) & |r| \ge \beta \end{cases}
     = \operatorname{clip}(r / \beta, -1, 1), \qquad
     \partial_y \ell = -\partial_p \ell,

  with the minimum-norm subgradient 0 at :math:`r = 0` when ``beta=0``.

  Args:
    predictions: floating array.
    targets: array of the same shape.
    beta: the transition point, ``>= 0``.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Girshick, `Fast R-CNN <https://arxiv.org/abs/1504.08083>`_, ICCV 2015;
    ``torch.nn.SmoothL1Loss``.
  """
  bad_option = _check_positive_option("beta", beta, allow_zero=True)
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask)
  b = _option(beta, p.dtype)
  r = p - t
  abs_r = _abs(r)
  quadratic = abs_r < b
  # beta = 0 never takes the quadratic branch; a safe divisor keeps 1/0 out of
  # the (unselected) branch's derivative.
  safe_b = jnp.where(b > 0, b, jnp.ones_like(b))
  # r (r / beta) / 2, not r^2 / (2 beta): |r / beta| < 1 in the quadratic branch, so nothing overflows
  # where the loss is finite (r^2 does for |r| > 1.8e19 in float32); r is zeroed outside that branch so
  # that its unselected value cannot overflow either.
  rq = jnp.where(quadratic, r, jnp.zeros_like(r))
  loss = _base.nan_if(bad_option, jnp.where(quadratic, (0.5 * rq) * (rq / safe_b), abs_r - 0.5 * b))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _smooth_l1_dp(p, y, beta=1.0):
  r = p - y
  if float(beta) == 0.0:
    return jnp.sign(r)
  return jnp.clip(r / _option(beta, p.dtype), -1.0, 1.0)


def _smooth_l1_dy(p, y, beta=1.0):
  return -_smooth_l1_dp(p, y, beta=beta)


def _smooth_l1_reference(p, y, beta=1.0):
  r = np.subtract(*_f64(p, y))
  a = np.abs(r)
  if beta == 0:
    return a
  return np.where(a < beta, 0.5 * r * r / beta, a - 0.5 * beta)


def _smooth_l1_optax(p, y, beta=1.0):
  import optax  # pylint: disable=g-import-not-at-top

  if float(beta) == 0.0:  # optax has no L1 loss; beta = 0 is |p - y|
    return jnp.abs(p - y)
  return optax.losses.huber_loss(p, y, delta=beta) / beta


_smooth_l1_optax.__name__ = "optax.losses.huber_loss / beta"

SMOOTH_L1_LOSS = LossSpec(
    name="smooth_l1_loss",
    family="regression",
    fn=smooth_l1_loss,
    arg_names=("predictions", "targets"),
    grads={0: _smooth_l1_dp, 1: _smooth_l1_dy},
    sample=_sample_regression,
    reference=_smooth_l1_reference,
    edge_cases=(
        EdgeCase((np.array([1.5, -0.5, 0.0]), np.array([0.5, 0.5, 0.0])), "|r| = beta exactly, and r = 0"),
        EdgeCase((np.array([0.0, 2.0, -3.0]), np.array([0.0, 1.0, 1.0])), "beta = 0 is L1", config={"beta": 0.0}),
    ),
    configs=({}, {"beta": 0.5}, {"beta": 0.0}),
    formula=r"\tfrac{r^2}{2\beta} \ (|r| < \beta), \ |r| - \tfrac12\beta \ \text{else}; \ r = p - y",
    domain="p, y real; beta >= 0",
    float_argnums=(0, 1),
    optax_peer=_smooth_l1_optax,
    naive=lambda p, y, beta=1.0: jnp.where(
        jnp.abs(p - y) < beta, 0.5 * (p - y) ** 2 / beta, jnp.abs(p - y) - 0.5 * beta),
)


# --------------------------------------------------------------------------
# log-cosh
# --------------------------------------------------------------------------
_INV_2E = float(0.5 / np.e)


@jax.custom_jvp
def _log_cosh(x):
  """``log cosh x``, accurate near 0 and free of overflow for large ``|x|``."""
  # One formula for all x, with a = |x| clamped to b = min(a, 1) and d = a - b:
  #   log cosh a = d + log1p(cosh b - 1 + expm1(-2d) / (2e)).
  # For a < 1, d = 0 and the second term is exactly 0, leaving log1p(cosh a - 1)
  # with cosh a - 1 = m^2 / (2(1 + m)), m = e^{-a} - 1 (expm1): products only,
  # no cancellation, relative accuracy down to a ~ 1e-19 in float32. For a >= 1,
  # b = 1 and the argument is e/2 - 1 + e^{-2a}/2 in [0.36, 0.55] (the identity
  # gives a - log 2 + log1p(e^{-2a})): a sum of d >= 0 and a log1p of a
  # well-conditioned value, never overflowing. Measured against a 200-bit
  # reference on 6,900 points in +-[1e-30, 1e4] (float32) / [1e-150, 1e4]
  # (float64): at most 7.9 ulp in float32 and 7 ulp in float64. No select and
  # no comparison: XLA:CPU fuses this formula into the reduction of a training
  # step (a where-selected two-branch formula materializes its branches there:
  # one more input-sized buffer than optax's form).
  a = jnp.abs(x)
  b = jnp.minimum(a, 1.0)
  d = a - b
  m = jnp.expm1(-b)
  return jnp.log1p(jnp.square(m) / (2.0 * (1.0 + m)) + _INV_2E * jnp.expm1(-2.0 * d)) + d


@_log_cosh.defjvp
def _log_cosh_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return _log_cosh(x), _tanh(x) * t


@jax.custom_jvp
def _tanh(x):
  """``tanh`` whose derivative is sech^2 without the cancellation of 1 - tanh^2."""
  return jnp.tanh(x)


@_tanh.defjvp
def _tanh_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  # sech^2 x = 4 e^{-2|x|} / (1 + e^{-2|x|})^2: relatively accurate for all x
  # (1 - tanh^2 x is 0 in float32 for |x| > 9), and no overflow.
  e = jnp.exp(-2.0 * jnp.abs(x))
  return jnp.tanh(x), 4.0 * e / jnp.square(1.0 + e) * t


def log_cosh(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Log-cosh loss, elementwise :math:`\ell(p, y) = \log\cosh(p - y)`.

  Derivation, with :math:`r = p - y`:

  .. math::
     \partial_p \ell = \frac{\sinh r}{\cosh r} = \tanh r, \qquad
     \partial_y \ell = -\tanh r, \qquad
     \partial_p^2 \ell = 1 - \tanh^2 r = \operatorname{sech}^2 r.

  Numerics: with :math:`b = \min(|r|, 1)`, :math:`d = |r| - b` and
  :math:`m = e^{-b} - 1` (``expm1``), the value is
  :math:`d + \operatorname{log1p}\big(m^2 / (2(1 + m)) + \operatorname{expm1}(-2d) / (2e)\big)`.
  For :math:`|r| < 1` this is :math:`\operatorname{log1p}(\cosh r - 1)` with
  :math:`\cosh r - 1 = m^2 / (2(1 + m))`, which has no cancellation, so the
  loss is :math:`\approx r^2/2` even at :math:`|r| = 10^{-3}` in bfloat16
  inputs (computed in float32). For :math:`|r| \ge 1` it equals
  :math:`|r| - \log 2 + \operatorname{log1p}(e^{-2|r|})`, computed as
  :math:`d \ge 0` plus the ``log1p`` of a value in :math:`[0.36, 0.55]`: no
  cancellation, and no overflow (``cosh`` overflows float32 beyond
  :math:`|r| \approx 89`). One formula without branches (``minimum``, no
  ``where``), which XLA fuses into the reduction: inside a jitted training step
  it holds no more temporaries than optax's less accurate
  :math:`\operatorname{logaddexp}(r, -r) - \log 2`. The
  derivative is supplied by a ``jax.custom_jvp`` as exactly
  :math:`\tanh(r)\,\dot r`, so it is :math:`\tanh r` (not 0, not NaN) for all
  :math:`r`; the second derivative is
  :math:`\operatorname{sech}^2 r = 4e^{-2|r|}/(1 + e^{-2|r|})^2`, relatively
  accurate even where :math:`1 - \tanh^2 r` would round to 0.

  Args:
    predictions: floating array.
    targets: array of the same shape.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Chen et al., `Log Hyperbolic Cosine Loss Improves Variational Auto-Encoder
    <https://openreview.net/forum?id=rkglvsC9Ym>`_, 2019.
  """
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask)
  loss = _log_cosh(p - t)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _log_cosh_dp(p, y):
  return jnp.tanh(p - y)


def _log_cosh_dy(p, y):
  return -jnp.tanh(p - y)


def _log_cosh_hessian(p, y):
  # sech^2 r = (1 / cosh r)^2; where cosh overflows, the true value underflows.
  return _identity_hessian(jnp.square(1.0 / jnp.cosh(p - y)))


def _log_cosh_reference(p, y):
  r = np.subtract(*_f64(p, y))
  # Taylor series log cosh r = r^2/2 - r^4/12 + r^6/45 - 17 r^8/2520 near 0,
  # log((e^r + e^-r)/2) elsewhere.
  r2 = r * r
  series = r2 / 2 - r2**2 / 12 + r2**3 / 45 - 17 * r2**4 / 2520
  with np.errstate(over="ignore"):
    direct = np.logaddexp(r, -r) - np.log(2.0)
  return np.where(np.abs(r) < 1e-2, series, direct)


LOG_COSH = LossSpec(
    name="log_cosh",
    family="regression",
    fn=log_cosh,
    arg_names=("predictions", "targets"),
    grads={0: _log_cosh_dp, 1: _log_cosh_dy},
    hessian=_log_cosh_hessian,
    sample=_sample_regression,
    reference=_log_cosh_reference,
    edge_cases=(
        EdgeCase((np.array([0.0, 1e-3, -1e-3, 1e-20]), np.zeros(4)), "near zero: value r^2/2, gradient tanh r"),
        EdgeCase((np.array([0.999, 1.0, 1.001, -1.0]), np.zeros(4)), "around the branch switch |r| = 1"),
        EdgeCase((np.array([50.0, 100.0, -100.0, 1e4]), np.zeros(4)), "no overflow for |r| > 89"),
    ),
    formula=r"\log\cosh(p - y)",
    domain="p, y real",
    float_argnums=(0, 1),
    optax_peer=optax_loss("log_cosh"),
    naive=lambda p, y: jnp.log(jnp.cosh(p - y)),
)


# --------------------------------------------------------------------------
# quantile (pinball)
# --------------------------------------------------------------------------
def quantile_loss(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    tau: float = 0.5,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Quantile (pinball) loss, elementwise with :math:`u = y - p`:

  .. math::
     \rho_\tau(u) = \max(\tau u, (\tau - 1) u)
       = u\,(\tau - \mathbf 1[u < 0]).

  Its expectation over :math:`y` is minimized when :math:`p` is the
  :math:`\tau`-quantile of :math:`y`; ``tau=0.5`` gives half the absolute error.

  Derivatives (by hand):

  .. math::
     \partial_p \ell = \begin{cases} -\tau & p < y \\ 1 - \tau & p > y \\
       0 & p = y \end{cases}, \qquad \partial_y \ell = -\partial_p \ell.

  At the kink :math:`p = y` the subdifferential is :math:`[-\tau, 1 - \tau]`;
  jaxloss returns its minimum-norm element 0.

  Args:
    predictions: floating array.
    targets: array of the same shape.
    tau: the quantile level, in ``[0, 1]``.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Koenker and Bassett, `Regression Quantiles
    <https://doi.org/10.2307/1913643>`_, Econometrica, 1978.
  """
  bad_option = _base.check_scalar_in("tau", tau, 0.0, 1.0)
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask)
  q = _option(tau, p.dtype)
  loss = _base.nan_if(bad_option, _pinball(p - t, q))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


@jax.custom_jvp
def _pinball(r, q):
  """``rho_q(u)`` at ``u = -r`` (``r = p - y``): ``(1 - q) r`` for ``r > 0``, ``-q r`` else."""
  # Written for the memory of a jitted training step on XLA:CPU: with a where
  # at the root the loss is computed in one fused loop and then reduced (a
  # slope * u or max form is pulled into the reduction's fusion with its
  # operands materialized: one more input-sized buffer than max(q u, (q - 1) u)),
  # and in r = p - y the derivative needs no negation (with one, XLA
  # materialized the gradient twice).
  return jnp.where(r > 0, (1.0 - q) * r, -q * r)


@_pinball.defjvp
def _pinball_jvp(primals, tangents):
  (r, q), (dr, dq) = primals, tangents
  # d/dr: 1 - q above, -q below, 0 exactly at the kink (the minimum-norm
  # subgradient); d/dq = -r on both sides (and 0 = -r at the kink).
  slope = jnp.where(r > 0, 1.0 - q, jnp.where(r < 0, -q, jnp.zeros_like(q)))
  return _pinball(r, q), slope * dr - r * dq


def _quantile_dp(p, y, tau=0.5):
  q = _option(tau, p.dtype)
  return jnp.where(p < y, -q, jnp.where(p > y, 1.0 - q, jnp.zeros_like(q)))


def _quantile_dy(p, y, tau=0.5):
  return -_quantile_dp(p, y, tau=tau)


def _quantile_reference(p, y, tau=0.5):
  u = np.subtract(*_f64(y, p))
  return np.maximum(tau * u, (tau - 1.0) * u)


QUANTILE_LOSS = LossSpec(
    name="quantile_loss",
    family="regression",
    fn=quantile_loss,
    arg_names=("predictions", "targets"),
    grads={0: _quantile_dp, 1: _quantile_dy},
    sample=_sample_regression,
    reference=_quantile_reference,
    edge_cases=(
        EdgeCase((np.array([0.0, 1.0, -2.0]), np.array([0.0, 1.0, 3.0])), "zero residual: subgradient 0"),
        EdgeCase((np.array([1.0, -1.0]), np.array([-1.0, 1.0])), "tau = 1", config={"tau": 1.0}),
    ),
    configs=({}, {"tau": 0.1}, {"tau": 0.9}),
    formula=r"\max(\tau (y - p), (\tau - 1)(y - p))",
    domain="p, y real; 0 <= tau <= 1",
    float_argnums=(0, 1),
    naive=lambda p, y, tau=0.5: jnp.maximum(tau * (y - p), (tau - 1.0) * (y - p)),
)


# --------------------------------------------------------------------------
# Poisson NLL
# --------------------------------------------------------------------------
def poisson_nll(
    log_rate: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    full: bool = False,
    log_input: bool = True,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Poisson negative log-likelihood on the log-rate (or, with ``log_input=False``, the rate), elementwise.

  With rate :math:`\lambda = e^r` and count :math:`y \ge 0`,
  :math:`-\log P(y \mid \lambda) = \lambda - y \log\lambda + \log y!`, so

  .. math::
     \ell(r, y) = e^r - y\,r \;\;[+\, \log\Gamma(y + 1) \text{ if } \texttt{full}].

  The constant :math:`\log y! = \log\Gamma(y+1)` is exact here (not Stirling's
  approximation as in PyTorch's ``full=True``); it does not depend on
  :math:`r` and is omitted by default, as in PyTorch
  (``PoissonNLLLoss(log_input=True, full=False)``) and TensorFlow.

  Derivatives (by hand):

  .. math::
     \partial_r \ell = e^r - y, \qquad \partial_r^2 \ell = e^r, \qquad
     \partial_y \ell = -r \;\;[+\, \psi(y + 1) \text{ if } \texttt{full}],

  with :math:`\psi` the digamma function. A zero rate (:math:`r = -\infty`)
  gives 0 for a zero count (the certain outcome; :math:`y r` is taken as 0
  there, value and :math:`\partial_y`, as in the 0 log 0 convention) and
  :math:`+\infty` for a positive one.

  **Rate input** (``log_input=False``, as PyTorch's ``PoissonNLLLoss``): the
  first argument is the rate :math:`\lambda \ge 0` itself (e.g. the output of
  a softplus head, or what Keras's ``poisson(y_true, y_pred)`` takes), and

  .. math::
     \ell(\lambda, y) = \lambda - y \log\lambda \;\;[+\, \log\Gamma(y + 1)], \qquad
     \partial_\lambda \ell = 1 - \frac{y}{\lambda}, \qquad
     \partial_\lambda^2 \ell = \frac{y}{\lambda^2}, \qquad
     \partial_y \ell = -\log\lambda \;\;[+\, \psi(y + 1)],

  with :math:`0 \log 0 = 0` at :math:`\lambda = y = 0` (value 0, gradient
  :math:`\partial_\lambda \ell = 1`, :math:`\partial_y \ell = 0`) and
  :math:`+\infty` where :math:`\lambda = 0 < y`. No epsilon is added (Keras
  adds ``1e-7`` inside the log, PyTorch ``eps=1e-8``: see
  :func:`jaxloss.compat.keras.poisson`); a negative rate gives NaN (and raises
  under checkify). Passing a rate with the default ``log_input=True`` is a
  silent error (it is read as :math:`\log\lambda`): name the option.

  Targets may be non-integer (a relaxed count) but must be :math:`\ge 0`;
  negative targets give NaN in their elements (and raise under checkify).

  Args:
    log_rate: floating array :math:`r = \log\lambda`; with
      ``log_input=False``, the rate :math:`\lambda \ge 0`.
    targets: non-negative counts, same shape.
    full: add :math:`\log\Gamma(y + 1)`.
    log_input: ``True`` (default): the first argument is the log-rate;
      ``False``: it is the rate.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    McCullagh and Nelder, *Generalized Linear Models*, 2nd ed., 1989, ch. 6.
  """
  r, t, mask, _ = _base.elementwise_inputs("log_rate" if log_input else "rate", log_rate, "targets", targets, where)
  r = _base.sanitize(r, mask)
  t = _base.sanitize(t, mask)
  bad = ~(t >= 0)
  _base.runtime_check(~bad, "poisson_nll: targets must be non-negative counts; got min {m}.", m=_base.value_min(t))
  if log_input:
    # A zero count at a zero rate (r = -inf) is certain: 0, not 0 * (-inf) = NaN (the 0 log 0 convention).
    loss = jnp.exp(r) - t * jnp.where((t == 0) & (r == -jnp.inf), jnp.zeros_like(r), r)
  else:
    loss, bad_rate = _poisson_rate_nll(r, t)
    bad = bad | bad_rate
  if full:
    safe_t = jnp.where(bad, jnp.zeros_like(t), t)
    loss = loss + jax.scipy.special.gammaln(safe_t + 1.0)
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _poisson_rate_nll(rate, t):
  """``rate - t log rate`` (0 log 0 = 0) and the flag of negative (or NaN) rates."""
  bad = ~(rate >= 0)
  _base.runtime_check(~bad, "poisson_nll: rate must be non-negative (log_input=False); got min {m}.",
                      m=_base.value_min(rate))
  safe = jnp.where(bad | ((t == 0) & (rate == 0)), jnp.ones_like(rate), rate)
  # At t = 0 the term t log(rate) is 0 for every rate; its rate-derivatives are
  # cut there (stop_gradient), since autodiff's second derivative -t / rate^2
  # is 0 * inf = NaN where rate^2 underflows (rate < 1e-19 in float32). Its
  # t-derivative, log(rate), is kept.
  log_arg = jnp.where(t == 0, jax.lax.stop_gradient(safe), safe)
  return jnp.where(bad, jnp.ones_like(rate), rate) - t * jnp.log(log_arg), bad


def _poisson_dr(r, y, full=False, log_input=True):
  del full
  if log_input:
    return jnp.exp(r) - y
  # 1 - y / lambda, with 0 log 0 = 0 (slope 1) at lambda = y = 0
  return jnp.where(y == 0, jnp.ones_like(r), 1.0 - y / r)


def _poisson_dy(r, y, full=False, log_input=True):
  if log_input:
    d = -jnp.where((y == 0) & (r == -jnp.inf), jnp.zeros_like(r), r)  # 0 log 0 convention at r = -inf
  else:
    d = -jnp.log(jnp.where((y == 0) & (r == 0), jnp.ones_like(r), r))
  if full:
    return d + jax.scipy.special.digamma(y + 1.0)
  return d


def _poisson_hessian(r, y, full=False, log_input=True):
  del full
  if log_input:
    return _identity_hessian(jnp.exp(r))
  return _identity_hessian(jnp.where(y == 0, jnp.zeros_like(r), y / jnp.square(r)))


def _poisson_reference(r, y, full=False, log_input=True):
  import scipy.special  # pylint: disable=g-import-not-at-top
  import scipy.stats  # pylint: disable=g-import-not-at-top

  r, y = _f64(r, y)
  if not log_input:  # -log P(y | lambda) from scipy's pmf, plus back the dropped constant
    with np.errstate(divide="ignore", invalid="ignore"):
      out = -scipy.stats.poisson.logpmf(y, r) if np.all(y == np.round(y)) else r - scipy.special.xlogy(y, r) + (
          scipy.special.gammaln(y + 1.0))
    out = np.where(r < 0, np.nan, out)
    return out if full else out - scipy.special.gammaln(y + 1.0)
  out = np.exp(r) - np.where((y == 0) & (r == -np.inf), 0.0, y * r)
  if full:
    out = out + scipy.special.gammaln(y + 1.0)
  return out


def _sample_poisson(key, dtype, shape=(4, 3)):
  kr, ky = jax.random.split(key)
  r = (0.5 * jax.random.normal(kr, shape, jnp.float32)).astype(dtype)
  y = jax.random.poisson(ky, 2.0, shape).astype(dtype)
  return r, y


POISSON_NLL = LossSpec(
    name="poisson_nll",
    family="regression",
    fn=poisson_nll,
    arg_names=("log_rate", "targets"),
    grads={0: _poisson_dr, 1: _poisson_dy},
    hessian=_poisson_hessian,
    sample=_sample_poisson,
    reference=_poisson_reference,
    edge_cases=(
        EdgeCase((np.array([-30.0, 0.0, 20.0]), np.array([0.0, 0.0, 0.0])), "zero counts"),
        EdgeCase((np.array([-np.inf, -np.inf, 1.0]), np.array([0.0, 2.0, 0.0])),
                 "zero rate: 0 for a zero count (was 0 * inf = NaN), +inf otherwise"),
        EdgeCase((np.array([-5.0, 3.0, 0.5]), np.array([40.0, 7.0, 0.5])), "large and fractional counts"),
        EdgeCase((np.array([-5.0, 3.0, 0.5]), np.array([0.0, 7.0, 0.5])), "with log y!", config={"full": True}),
        EdgeCase((np.array([0.5, 2.0, 1e-3, 40.0, 3.0]), np.array([0.0, 1.0, 2.0, 35.0, 3.0])),
                 "rate input (Keras's poisson, torch log_input=False)", config={"log_input": False}),
        EdgeCase((np.array([0.0, 1e-30, 7.0]), np.array([0.0, 0.0, 7.0])),
                 "rate input: zero rate, zero count (0 log 0 = 0)", config={"log_input": False}),
        EdgeCase((np.array([0.25, 4.0]), np.array([3.0, 0.5])), "rate input with log y!",
                 config={"log_input": False, "full": True}),
    ),
    configs=({}, {"full": True}),
    formula=r"e^r - y r \ (\lambda - y \log\lambda \text{ for a rate}) \ [+ \log\Gamma(y+1)]",
    domain="r real (log-rate), or rate >= 0 with log_input=False; y >= 0",
    float_argnums=(0, 1),
    naive=lambda r, y, full=False, log_input=True: (jnp.exp(r) - y * r if log_input else r - y * jnp.log(r)) + (
        jax.scipy.special.gammaln(y + 1.0) if full else 0.0),
)


# --------------------------------------------------------------------------
# Gaussian NLL
# --------------------------------------------------------------------------
_HALF_LOG_2PI = float(0.5 * np.log(2.0 * np.pi))


def _exp_neg_quarter(s, r):
  """``e^{-s/4}``, and 1 where ``r == 0``.

  ``r^2 e^{-s}`` is evaluated as ``((r e) e)^2`` and ``r e^{-s}`` as ``(((r e) e) e) e`` with
  ``e = e^{-s/4}``: every partial product lies between ``r`` and the result, so nothing overflows
  or underflows unless the result does (``e^{-s}`` alone overflows for ``s < -88.7`` in float32
  and would meet an underflowed ``r^2`` as ``0 * inf``). ``e`` itself overflows only for
  ``s < -355`` (float32), where the result overflows for any nonzero ``r``; at ``r = 0`` ``e`` is
  replaced by 1, so the product is exactly 0 (and its derivatives finite).
  """
  return jnp.where(r == 0, jnp.ones_like(s), jnp.exp(-0.25 * s))


@jax.custom_jvp
def _gaussian_var_core(r, v):
  r"""``(log v + r^2 / v) / 2`` with the closed-form derivatives ``-r / v`` (mean) and
  ``(1 / v - (r / v)^2) / 2`` (variance).

  Autodiff of ``r^2 / v`` forms ``-r^2 v^{-2}``, where ``v^{-2}`` overflows for ``v < 1e-19``
  (float32) and meets ``r = 0`` as ``0 * inf = NaN`` (true value ``1 / (2v)``). The value is
  ``(r / sqrt(v))^2``, which overflows only where the loss does.
  """
  return 0.5 * (jnp.log(v) + jnp.square(r / jnp.sqrt(v)))


def _gaussian_var_core_jvp(primals, tangents):
  (r, v), (dr, dv) = primals, tangents
  out = _gaussian_var_core(r, v)
  w = r / v
  return out, _tangent_sum(out, (w, dr), (lambda: 0.5 * (1.0 / v - jnp.square(w)), dv))


def _tangent_sum(out, *terms):
  """``sum(coefficient * tangent)`` over ``(coefficient, tangent)`` pairs, skipping symbolic-zero tangents.

  A coefficient may be a thunk (computed only when needed). Skipping matters beyond speed: a derivative
  that overflows (``-inf`` in one argument) must not turn ``grad`` with respect to another argument into
  NaN through ``inf * 0``.
  """
  total = jnp.zeros_like(out)
  for coef, tangent in terms:
    if isinstance(tangent, SymbolicZero):
      continue
    total = total + (coef() if callable(coef) else coef) * tangent
  return total


_gaussian_var_core.defjvp(_gaussian_var_core_jvp, symbolic_zeros=True)


@jax.custom_jvp
def _gaussian_log_var_core(r, s):
  r"""``(s + r^2 e^{-s}) / 2`` with the closed-form derivatives ``r e^{-s}`` (in r) and
  ``(1 - r^2 e^{-s}) / 2`` (in s), products in quarter steps (:func:`_exp_neg_quarter`)."""
  e = _exp_neg_quarter(s, r)
  return 0.5 * (s + jnp.square((r * e) * e))


def _gaussian_log_var_core_jvp(primals, tangents):
  (r, s), (dr, ds) = primals, tangents
  out = _gaussian_log_var_core(r, s)
  e = _exp_neg_quarter(s, r)
  q = (r * e) * e  # r e^{-s/2}
  return out, _tangent_sum(out, (lambda: (q * e) * e, dr), (lambda: 0.5 * (1.0 - jnp.square(q)), ds))


_gaussian_log_var_core.defjvp(_gaussian_log_var_core_jvp, symbolic_zeros=True)


def gaussian_nll(
    mean: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    variance: jax.typing.ArrayLike,
    *,
    log_variance: bool = False,
    full: bool = False,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Gaussian negative log-likelihood with predicted mean and variance, elementwise.

  With :math:`\mu` = ``mean``, :math:`y` = ``targets``, :math:`v` = variance
  and :math:`r = y - \mu`,

  .. math::
     \ell = \tfrac12\Bigl(\log v + \frac{r^2}{v}\Bigr)
       \;\;[+\, \tfrac12\log 2\pi \text{ if } \texttt{full}],

  which is :math:`-\log \mathcal N(y; \mu, v)` (up to the constant). With
  ``log_variance=True`` the third argument is :math:`s = \log v` and
  :math:`\ell = \tfrac12(s + r^2 e^{-s})`.

  Derivatives (by hand):

  .. math::
     \partial_\mu \ell = \frac{\mu - y}{v}, \qquad
     \partial_y \ell = \frac{y - \mu}{v}, \qquad
     \partial_v \ell = \frac12\Bigl(\frac1v - \frac{r^2}{v^2}\Bigr), \qquad
     \partial_s \ell = \frac12\bigl(1 - r^2 e^{-s}\bigr).

  Numerics: the loss and these derivatives are evaluated as written above,
  never through :math:`r^2/v^2` or :math:`r^2` times :math:`e^{-s}`, whose
  factors underflow to 0 and overflow while the result is finite (autodiff of
  :math:`r^2 / v` forms :math:`r^2 v^{-2}`: ``0 * inf = NaN`` at :math:`r = 0`
  for any :math:`v < 10^{-19}` in float32, where the true
  :math:`\partial_v \ell = 1/(2v)`). With the variance: :math:`(r/\sqrt v)^2`,
  :math:`r/v` and :math:`\tfrac12(1/v - (r/v)^2)`. With the log-variance:
  :math:`r e^{-s} = (((r e) e) e) e` and :math:`r^2 e^{-s} = ((r e) e)^2` with
  :math:`e = e^{-s/4}` (taken as 1 at :math:`r = 0`), whose partial products
  lie between :math:`r` and the result; so a value or derivative overflows
  only where it is truly beyond the dtype's range (for a variance below the
  smallest normal number, 1.2e-38 in float32, :math:`1/v` itself is past it).

  ``variance`` must have the same shape as ``mean`` (no broadcasting) and must
  be :math:`> 0`: elements with :math:`v \le 0` (or NaN) are NaN and raise under
  checkify. There is no hidden clamp (PyTorch's ``GaussianNLLLoss`` clamps
  :math:`v` at ``eps``); use ``log_variance=True`` for an unconstrained
  parametrization.

  Args:
    mean: floating array :math:`\mu`.
    targets: array of the same shape.
    variance: floating array of the same shape: :math:`v`, or :math:`\log v`
      with ``log_variance=True``.
    log_variance: whether the third argument is the log-variance.
    full: add the constant :math:`\tfrac12\log 2\pi`.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Nix and Weigend, `Estimating the mean and variance of the target probability
    distribution <https://doi.org/10.1109/ICNN.1994.374138>`_, ICNN 1994;
    ``torch.nn.GaussianNLLLoss``.
  """
  mu, t, mask, _ = _base.elementwise_inputs("mean", mean, "targets", targets, where)
  var_name = "log_variance" if log_variance else "variance"
  var_dtype = _base._dtype_of(variance)  # pylint: disable=protected-access
  if not jnp.issubdtype(var_dtype, jnp.floating):
    raise TypeError(f"{var_name} (third argument) must be a floating-point array, got dtype {var_dtype}.")
  v = jnp.asarray(variance).astype(mu.dtype)
  _base.check_same_shape("mean", mu, var_name, v)
  mu = _base.sanitize(mu, mask)
  t = _base.sanitize(t, mask)
  r = t - mu
  if log_variance:
    s = _base.sanitize(v, mask)
    loss = _gaussian_log_var_core(r, s)
  else:
    v = _base.sanitize(v, mask, fill=1.0)
    bad = ~(v > 0)
    _base.runtime_check(~bad, "gaussian_nll: variance must be > 0; got min {m}.", m=_base.value_min(v))
    safe_v = jnp.where(bad, jnp.ones_like(v), v)
    loss = _base.nan_where(bad, _gaussian_var_core(r, safe_v))
  if full:
    loss = loss + _HALF_LOG_2PI
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _gaussian_dmu(mu, y, v, log_variance=False, full=False):
  del full
  if log_variance:  # (mu - y) e^{-s} in quarter steps (see _exp_neg_quarter)
    r = mu - y
    e = _exp_neg_quarter(v, r)
    return (((r * e) * e) * e) * e
  return (mu - y) / v


def _gaussian_dy(mu, y, v, log_variance=False, full=False):
  return -_gaussian_dmu(mu, y, v, log_variance=log_variance, full=full)


def _gaussian_dv(mu, y, v, log_variance=False, full=False):
  del full
  r = y - mu
  if log_variance:  # (1 - (r e^{-s/2})^2) / 2
    e = _exp_neg_quarter(v, r)
    return 0.5 * (1.0 - jnp.square((r * e) * e))
  return 0.5 * (1.0 / v - jnp.square(r / v))  # (r / v)^2, not r^2 / v^2 (v^2 underflows: 0 / 0)


def _gaussian_reference(mu, y, v, log_variance=False, full=False):
  import scipy.stats  # pylint: disable=g-import-not-at-top

  mu, y, v = _f64(mu, y, v)
  if log_variance:  # r^2 e^{-s} as exp(2 log|r| - s) (0 at r = 0): no 0 * inf where e^{-s} overflows
    with np.errstate(divide="ignore"):
      scaled = np.where(y == mu, 0.0, np.exp(2.0 * np.log(np.abs(y - mu)) - v))
    out = 0.5 * (v + scaled) + 0.5 * np.log(2.0 * np.pi)
  else:
    out = -scipy.stats.norm.logpdf(y, loc=mu, scale=np.sqrt(v))
  if not full:
    out = out - 0.5 * np.log(2.0 * np.pi)
  return out


def _sample_gaussian(key, dtype, shape=(4, 3)):
  km, ky, kv = jax.random.split(key, 3)
  mu = jax.random.normal(km, shape, jnp.float32).astype(dtype)
  y = jax.random.normal(ky, shape, jnp.float32).astype(dtype)
  v = jax.random.uniform(kv, shape, jnp.float32, 0.5, 2.0).astype(dtype)
  return mu, y, v


def _gaussian_naive(mu, y, v, log_variance=False, full=False):
  var = jnp.exp(v) if log_variance else v
  out = 0.5 * (jnp.log(var) + (y - mu) ** 2 / var)
  return out + _HALF_LOG_2PI if full else out


GAUSSIAN_NLL = LossSpec(
    name="gaussian_nll",
    family="regression",
    fn=gaussian_nll,
    arg_names=("mean", "targets", "variance"),
    grads={0: _gaussian_dmu, 1: _gaussian_dy, 2: _gaussian_dv},
    sample=_sample_gaussian,
    reference=_gaussian_reference,
    edge_cases=(
        EdgeCase((np.array([0.0, 1.0, -2.0]), np.array([0.0, 1.001, 5.0]), np.array([1e-6, 1e-6, 1e3])),
                 "tiny and large variances"),
        EdgeCase((np.array([0.0, 1.0, -2.0]), np.array([0.0, 4.0, 5.0]), np.array([-20.0, 0.0, 20.0])),
                 "extreme log-variances", config={"log_variance": True}),
        # issue 13: r^2 e^{-s} as 0 * inf (e^{800} overflows in every dtype), and r^2 (3e-27) against
        # e^{-s} overflowing (e^{100} in float32) while r^2 e^{-s} = 9e16 and r e^{-s} = 1.5e30 are finite
        # (r = 2^-44 is 0 in float16).
        EdgeCase((np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 2.0**-44]), np.array([-800.0, -100.0, -100.0])),
                 "zero / tiny residuals at huge precisions (0 * inf)", config={"log_variance": True}),
    ),
    configs=({}, {"log_variance": True}, {"full": True}, {"log_variance": True, "full": True}),
    formula=r"\tfrac12\bigl(\log v + (y - \mu)^2 / v\bigr) \ [+ \tfrac12\log 2\pi]",
    domain="mu, y real; v > 0 (or log v real)",
    float_argnums=(0, 1, 2),
    naive=_gaussian_naive,
)

# --------------------------------------------------------------------------
# mean squared logarithmic error
# --------------------------------------------------------------------------
def mean_squared_logarithmic_error(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Squared logarithmic error, elementwise (its mean is the MSLE):

  .. math::
     \ell(p, y) = \bigl(\log(1 + p) - \log(1 + y)\bigr)^2 = d^2,
     \qquad d = \operatorname{log1p}(p) - \operatorname{log1p}(y).

  Defined for :math:`p, y > -1`. At :math:`-1` the log is :math:`-\infty` and
  the loss :math:`+\infty` (its limit); below :math:`-1` the element is NaN (the
  NaN of ``log1p`` itself: no select is added, which on CPU would make the loss
  about 4x slower) and raises under checkify. ``log1p`` keeps full accuracy for
  small values. There is no clamp: Keras's
  ``mean_squared_logarithmic_error`` replaces values below ``1e-7`` by ``1e-7``
  (so a negative prediction scores like 0 and gets a zero gradient) and takes
  the mean over the last axis; :func:`jaxloss.compat.keras.mean_squared_logarithmic_error`
  reproduces that.

  Derivatives (by hand), from :math:`\partial_p \log(1 + p) = 1 / (1 + p)`:

  .. math::
     \partial_p \ell = \frac{2 d}{1 + p}, \qquad
     \partial_y \ell = -\frac{2 d}{1 + y}, \qquad
     \partial_p^2 \ell = \frac{2 (1 - d)}{(1 + p)^2}.

  Args:
    predictions: floating array, values :math:`> -1` (typically :math:`\ge 0`).
    targets: array of the same shape, values :math:`> -1`.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    ``keras.losses.mean_squared_logarithmic_error``;
    ``sklearn.metrics.mean_squared_log_error``.
  """
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask)
  _base.runtime_check((p >= -1.0) & (t >= -1.0),
                      "mean_squared_logarithmic_error: predictions and targets must be >= -1; got min {m}.",
                      m=_base.value_min(jnp.minimum(p, t)))
  loss = jnp.square(jnp.log1p(p) - jnp.log1p(t))  # NaN below -1 (log1p's own), +inf at -1
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _msle_dp(p, y):
  return 2.0 * (jnp.log1p(p) - jnp.log1p(y)) / (1.0 + p)


def _msle_dy(p, y):
  return -2.0 * (jnp.log1p(p) - jnp.log1p(y)) / (1.0 + y)


def _msle_hessian(p, y):
  d = jnp.log1p(p) - jnp.log1p(y)
  diag = (2.0 * (1.0 - d) / jnp.square(1.0 + p)).reshape(-1)
  # off-diagonal exactly 0 even where the diagonal is inf (p = -1), not 0 * inf
  full = jnp.where(jnp.eye(diag.size, dtype=bool), diag, jnp.zeros((), diag.dtype))
  return full.reshape(p.shape + p.shape)


def _msle_reference(p, y):
  p, y = _f64(p, y)
  with np.errstate(invalid="ignore", divide="ignore"):
    d = np.log1p(p) - np.log1p(y)
  return np.where((p >= -1) & (y >= -1), d * d, np.nan)


def _sample_msle(key, dtype, shape=(4, 3)):
  kp, ky = jax.random.split(key)
  p = jax.random.uniform(kp, shape, jnp.float32, 0.0, 5.0).astype(dtype)
  y = jax.random.uniform(ky, shape, jnp.float32, 0.0, 5.0).astype(dtype)
  return p, y


MEAN_SQUARED_LOGARITHMIC_ERROR = LossSpec(
    name="mean_squared_logarithmic_error",
    family="regression",
    fn=mean_squared_logarithmic_error,
    arg_names=("predictions", "targets"),
    grads={0: _msle_dp, 1: _msle_dy},
    hessian=_msle_hessian,
    sample=_sample_msle,
    reference=_msle_reference,
    edge_cases=(
        EdgeCase((np.array([0.0, 1e-8, 3.0, -0.5]), np.array([0.0, 0.0, 3.0, 0.25])), "zero, tiny and equal values"),
        EdgeCase((np.array([1e6, 0.0, -0.9]), np.array([0.0, 1e6, 0.0])), "orders of magnitude apart, near -1"),
        EdgeCase((np.array([-1.5, -2.0, 1.0]), np.array([0.0, 1.0, -1.5])), "below -1: NaN", in_domain=False),
    ),
    formula=r"\bigl(\log(1 + p) - \log(1 + y)\bigr)^2",
    domain="p, y > -1 (+inf at -1, NaN below)",
    float_argnums=(0, 1),
    naive=lambda p, y: (jnp.log(1.0 + p) - jnp.log(1.0 + y)) ** 2,
)


# --------------------------------------------------------------------------
# mean absolute percentage error
# --------------------------------------------------------------------------
def mean_absolute_percentage_error(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    epsilon: float = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Absolute percentage error, elementwise (its mean is the MAPE), in percent:

  .. math::
     \ell(p, y) = 100\,\frac{|p - y|}{D}, \qquad D = \max(|y|, \epsilon).

  **Conventions.** The factor 100 is part of the definition (a percentage, as
  in Keras; scikit-learn and torchmetrics return the fraction, 1/100 of this).
  ``epsilon`` (default ``0``: no clamp) is an explicit floor on the
  denominator; Keras always uses ``epsilon = 1e-7`` (``keras.config.epsilon()``)
  and takes the mean over the last axis, which is
  ``mean_absolute_percentage_error(p, y, epsilon=1e-7, reduction="none").mean(-1)``
  (:func:`jaxloss.compat.keras.mean_absolute_percentage_error` is that, in
  the input dtype). With ``epsilon=0`` a zero target has no percentage error:
  its element is NaN (and raises under checkify), never a silent ``1e7 |p|``.

  Derivatives (by hand), with :math:`s = \operatorname{sign}(p - y)` and
  :math:`\partial_y D = \operatorname{sign}(y)\,\mathbf 1[|y| \ge \epsilon]`:

  .. math::
     \partial_p \ell = \frac{100\, s}{D}, \qquad
     \partial_y \ell = -\frac{100\, s}{D}
       - \frac{100\,|p - y|}{D^2}\,\operatorname{sign}(y)\,\mathbf 1[|y| \ge \epsilon].

  At the kink :math:`p = y` the minimum-norm subgradient :math:`s = 0` is used;
  at :math:`|y| = \epsilon` the :math:`|y|` side is taken.

  Args:
    predictions: floating array.
    targets: array of the same shape; nonzero unless ``epsilon > 0``.
    epsilon: floor of the denominator, ``>= 0``.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    ``keras.losses.mean_absolute_percentage_error``; de Myttenaere et al.,
    `Mean Absolute Percentage Error for regression models
    <https://arxiv.org/abs/1605.02541>`_, Neurocomputing 2016.
  """
  bad_option = _check_positive_option("epsilon", epsilon, allow_zero=True)
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask, fill=1.0)
  e = _option(epsilon, p.dtype)
  abs_t = _abs(t)
  denom = jnp.where(abs_t >= e, abs_t, e)
  bad = ~(denom > 0)
  _base.runtime_check(~bad, "mean_absolute_percentage_error: targets must be nonzero (or pass epsilon > 0); "
                      "got min |targets| {m}.", m=_base.value_min(abs_t))
  loss = 100.0 * _abs(p - t) / jnp.where(bad, jnp.ones_like(denom), denom)
  loss = _base.nan_if(bad_option, _base.nan_where(bad, loss))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _mape_denominator(y, epsilon):
  e = _option(epsilon, y.dtype)
  return jnp.where(jnp.abs(y) >= e, jnp.abs(y), e), jnp.where(jnp.abs(y) >= e, jnp.sign(y), jnp.zeros_like(y))


def _mape_dp(p, y, epsilon=0.0):
  d, _ = _mape_denominator(y, epsilon)
  return 100.0 * jnp.sign(p - y) / d


def _mape_dy(p, y, epsilon=0.0):
  d, dd = _mape_denominator(y, epsilon)
  return -100.0 * jnp.sign(p - y) / d - 100.0 * jnp.abs(p - y) * dd / jnp.square(d)


def _mape_reference(p, y, epsilon=0.0):
  p, y = _f64(p, y)
  d = np.maximum(np.abs(y), epsilon)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(d > 0, 100.0 * np.abs(p - y) / d, np.nan)


def _sample_mape(key, dtype, shape=(4, 3)):
  kp, ky, ks = jax.random.split(key, 3)
  y = jax.random.uniform(ky, shape, jnp.float32, 0.5, 3.0) * jnp.where(jax.random.bernoulli(ks, 0.5, shape), 1.0, -1.0)
  p = y + jax.random.normal(kp, shape, jnp.float32)
  return p.astype(dtype), y.astype(dtype)


MEAN_ABSOLUTE_PERCENTAGE_ERROR = LossSpec(
    name="mean_absolute_percentage_error",
    family="regression",
    fn=mean_absolute_percentage_error,
    arg_names=("predictions", "targets"),
    grads={0: _mape_dp, 1: _mape_dy},
    sample=_sample_mape,
    reference=_mape_reference,
    edge_cases=(
        EdgeCase((np.array([2.0, -3.0, 0.0, 1e-3]), np.array([2.0, -1.5, 1e4, 1e-4])),
                 "exact, negative, large and tiny targets"),
        EdgeCase((np.array([0.5, -0.25, 3.0, 1e-4]), np.array([0.0, 1e-5, -1e-4, 2e-3])),
                 "targets below epsilon = 1e-3 (Keras-style floor)", config={"epsilon": 1e-3}),
        EdgeCase((np.array([1.0, 0.0]), np.array([0.0, 0.0])), "zero target without epsilon: NaN", in_domain=False),
    ),
    configs=({}, {"epsilon": 1e-3}),
    formula=r"100\,|p - y| / \max(|y|, \epsilon)",
    domain="p real; y != 0, or epsilon > 0",
    float_argnums=(0, 1),
    naive=lambda p, y, epsilon=0.0: 100.0 * jnp.abs(p - y) / jnp.maximum(jnp.abs(y), epsilon),
)


# --------------------------------------------------------------------------
# L2 loss (optax's 1/2 convention)
# --------------------------------------------------------------------------
def l2_loss(
    predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike | None = None,
    *,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Half squared error, elementwise :math:`\ell(p, y) = \tfrac12 (p - y)^2` (optax's ``l2_loss``).

  :func:`squared_error` without the factor 1/2 is ``2 * l2_loss``; the 1/2
  makes the gradient the plain residual. ``targets=None`` means zeros (as in
  optax), so ``l2_loss(params, reduction="sum")`` is the weight-decay penalty
  :math:`\tfrac12\|w\|^2`.

  Derivatives (by hand):

  .. math::
     \partial_p \ell = p - y, \qquad \partial_y \ell = -(p - y), \qquad \partial_p^2 \ell = 1.

  Args:
    predictions: floating array.
    targets: array of the same shape, or ``None`` for zeros.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Bishop, *Pattern Recognition and Machine Learning*, 2006, eq. (1.2);
    ``optax.losses.l2_loss``.
  """
  if targets is None:
    targets = jnp.zeros(jnp.shape(predictions), jnp.float32)
  p, t, mask, _ = _base.elementwise_inputs("predictions", predictions, "targets", targets, where)
  p = _base.sanitize(p, mask)
  t = _base.sanitize(t, mask)
  loss = 0.5 * jnp.square(p - t)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _l2_dp(p, y):
  return p - y


def _l2_dy(p, y):
  return y - p


def _l2_hessian(p, y):
  return _identity_hessian(jnp.ones_like(p))


L2_LOSS = LossSpec(
    name="l2_loss",
    family="regression",
    fn=l2_loss,
    arg_names=("predictions", "targets"),
    grads={0: _l2_dp, 1: _l2_dy},
    hessian=_l2_hessian,
    sample=_sample_regression,
    reference=lambda p, y: 0.5 * np.square(np.subtract(*_f64(p, y))),
    edge_cases=(
        EdgeCase((np.array([0.0, 1e15, -1e-30]), np.array([0.0, -1e15, 1e-30])), "zero and extreme residuals"),
    ),
    formula=r"\tfrac12 (p - y)^2",
    domain="p, y real",
    float_argnums=(0, 1),
    optax_peer=optax_loss("l2_loss"),
    naive=lambda p, y: 0.5 * (p - y) ** 2,
)

SPECS = (
    SQUARED_ERROR,
    ABSOLUTE_ERROR,
    HUBER_LOSS,
    SMOOTH_L1_LOSS,
    LOG_COSH,
    QUANTILE_LOSS,
    POISSON_NLL,
    GAUSSIAN_NLL,
    MEAN_SQUARED_LOGARITHMIC_ERROR,
    MEAN_ABSOLUTE_PERCENTAGE_ERROR,
    L2_LOSS,
)
