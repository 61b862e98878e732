r"""Classification losses.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
errors) are documented once in :mod:`jaxloss._base`. Notation: :math:`z` are
logits, :math:`\sigma(z) = 1 / (1 + e^{-z})`, :math:`\operatorname{sp}(z) =
\log(1 + e^z)` (softplus), :math:`p = \operatorname{softmax}(z)` for losses
over ``axis``.

Numerics shared by the sigmoid losses: :math:`\sigma` and softplus carry
custom JVPs, :math:`\sigma'(z) = \sigma(z)\sigma(-z)` (never
:math:`\sigma(1 - \sigma)`, which is 0 in float32 for :math:`|z| \gtrsim 17`)
and :math:`\operatorname{sp}'(z) = \sigma(z)`, so first, second and higher
derivatives stay accurate for saturated logits. Products ``0 * inf`` that
arise at infinite logits or probabilities in {0, 1} are taken as 0 (the limit
convention of :func:`jaxloss._base.xlogy`), in value and derivative.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxloss import _base, _labels
from jaxloss._spec import EdgeCase, LossSpec, optax_loss

__all__ = [
    "sigmoid_binary_cross_entropy",
    "binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "categorical_cross_entropy",
    "sigmoid_focal_loss",
    "hinge_loss",
    "squared_hinge_loss",
    "multiclass_hinge_loss",
]

ArrayLike = jax.typing.ArrayLike


# --------------------------------------------------------------------------
# numerically careful primitives
# --------------------------------------------------------------------------
@jax.custom_jvp
def _sigmoid(x):
  return jax.nn.sigmoid(x)


@_sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  # sigma'(x) = sigma(x) sigma(-x): both factors are accurate for any x, unlike 1 - sigma(x).
  return _sigmoid(x), t * (_sigmoid(x) * _sigmoid(-x))


@jax.custom_jvp
def _softplus(x):
  return jnp.logaddexp(x, jnp.zeros((), x.dtype))


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return _softplus(x), t * _sigmoid(x)


@jax.custom_jvp
def _expm1(x):
  return jnp.expm1(x)


@_expm1.defjvp
def _expm1_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  # exp(x), not expm1(x) + 1: the latter cancels for x << 0 (p_y = exp(-loss) small).
  return _expm1(x), t * jnp.exp(x)


def _mul_limit(a, b):
  """``a * b`` with ``0 * (+-inf) = 0`` (value and derivatives, as ``_base.xlogy``)."""
  safe_b = jnp.where((a == 0) & jnp.isinf(b), jnp.zeros((), b.dtype), b)
  return a * safe_b


def _row_shape(shape, axis):
  return tuple(d for i, d in enumerate(shape) if i != axis)


def _check_broadcast_option(name, value, shape, dtype):
  """Casts an array option (pos_weight, alpha) that must broadcast to ``shape``."""
  arr = jnp.asarray(value)
  if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
    raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
  try:
    out = jnp.broadcast_shapes(arr.shape, tuple(shape))
  except ValueError:
    out = None
  if out != tuple(shape):
    raise ValueError(f"{name} must broadcast to the logits' shape {tuple(shape)}, got "
                     f"{name}.shape={arr.shape}.")
  return arr.astype(dtype)


def _check_label_smoothing(label_smoothing):
  """Trace-time check, or (traced) a run-time flag for :func:`_base.nan_if`."""
  return _base.check_scalar_in("label_smoothing", label_smoothing, 0.0, 1.0)


def _is_zero(x) -> bool:
  return isinstance(x, (int, float)) and float(x) == 0.0


# --------------------------------------------------------------------------
# sigmoid binary cross-entropy
# --------------------------------------------------------------------------
def _sigmoid_bce_unreduced(z, y, pw):
  """``pw * y * sp(-z) + (1 - y) * sp(z)`` with 0 * inf = 0; ``pw`` may be None."""
  pos = y if pw is None else y * pw
  return _mul_limit(pos, _softplus(-z)) + _mul_limit(1 - y, _softplus(z))


def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    pos_weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Sigmoid (logistic) binary cross-entropy on logits, elementwise.

  With smoothed labels :math:`y' = y (1 - \varepsilon) + \varepsilon / 2` and
  positive-class weight :math:`w_+` (``pos_weight``, 1 by default, as
  ``pos_weight`` of PyTorch's ``BCEWithLogitsLoss``):

  .. math::
     \ell(z, y) = w_+ \, y' \operatorname{sp}(-z) + (1 - y') \operatorname{sp}(z)
     = -w_+ y' \log \sigma(z) - (1 - y') \log \sigma(-z).

  Derivatives (by hand, from :math:`\operatorname{sp}'(z) = \sigma(z)` and
  :math:`\sigma'(z) = \sigma(z)\sigma(-z)`):

  .. math::
     \partial_z \ell = (1 - y') \sigma(z) - w_+ y' \sigma(-z),
     \qquad
     \partial_z^2 \ell = \bigl(1 + y'(w_+ - 1)\bigr) \sigma(z) \sigma(-z),

  .. math::
     \partial_y \ell = (1 - \varepsilon)\bigl(w_+ \operatorname{sp}(-z) - \operatorname{sp}(z)\bigr).

  The gradient is written with :math:`\sigma(-z)` (not :math:`\sigma(z) - 1`)
  and the curvature as :math:`\sigma(z)\sigma(-z)`, so both stay accurate in
  float32 for saturated logits. At infinite logits a term ``0 * inf`` is 0: the
  loss is 0 at :math:`z = +\infty, y = 1`, :math:`+\infty` where the label
  cannot be met, and the gradient is finite (:math:`0` or :math:`\mp w_+ y'`,
  ...) everywhere.

  Args:
    logits: floating array.
    labels: targets in [0, 1] (hard or soft), same shape as ``logits``; a
      label outside [0, 1] or NaN makes its element NaN (and raises under
      checkify), since the loss is unbounded below there.
    pos_weight: optional weight of the positive term, broadcastable to
      ``logits`` (e.g. one per class).
    label_smoothing: :math:`\varepsilon \in [0, 1]`.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Goodfellow, Bengio and Courville, *Deep Learning*, 2016, section 6.2.2.2.
    Szegedy et al., *Rethinking the Inception Architecture*, 2016 (label smoothing).
  """
  bad_option = _check_label_smoothing(label_smoothing)
  z, y, mask, dtype = _base.elementwise_inputs("logits", logits, "labels", labels, where)
  pw = None if pos_weight is None else _check_broadcast_option("pos_weight", pos_weight, z.shape, dtype)
  z = _base.sanitize(z, mask)
  y = _base.sanitize(y, mask)
  bad_labels = _base.check_probabilities("labels", y)  # soft labels outside [0, 1] (or NaN): NaN
  if not _is_zero(label_smoothing):
    eps = jnp.asarray(label_smoothing, dtype)
    y = y * (1 - eps) + eps / 2
  loss = _base.nan_where(bad_labels, _sigmoid_bce_unreduced(z, y, pw))
  loss = _base.nan_if(bad_option, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _cast_like_logits(z: Any, *others: Any) -> tuple[Any, ...]:
  dtype = _base.computation_dtype(jnp.asarray(z).dtype)
  return (jnp.asarray(z).astype(dtype),) + tuple(
      None if o is None else jnp.asarray(o).astype(dtype) for o in others)


def _smooth_binary(y, label_smoothing):
  return y * (1 - label_smoothing) + label_smoothing / 2


def _sbce_dz(z, y, *, pos_weight=None, label_smoothing=0.0):
  z, y, pw = _cast_like_logits(z, y, pos_weight)
  y = _smooth_binary(y, label_smoothing)
  pw = 1.0 if pw is None else pw
  return (1 - y) * jax.nn.sigmoid(z) - pw * y * jax.nn.sigmoid(-z)


def _sbce_dy(z, y, *, pos_weight=None, label_smoothing=0.0):
  z, y, pw = _cast_like_logits(z, y, pos_weight)
  y = _smooth_binary(y, label_smoothing)
  pw = 1.0 if pw is None else pw
  a = jnp.logaddexp(0.0, -z)
  b = jnp.logaddexp(0.0, z)
  # 0 * inf = 0 convention: a term whose coefficient is 0 contributes 0.
  a = _zero_if((pw * y == 0) & jnp.isinf(a), pw * a)
  b = _zero_if((1 - y == 0) & jnp.isinf(b), b)
  return (1 - label_smoothing) * (a - b)


def _diag_hessian(h):
  n = h.size
  return (jnp.eye(n, dtype=h.dtype) * h.reshape(-1)).reshape(h.shape + h.shape)


def _sbce_hessian(z, y, *, pos_weight=None, label_smoothing=0.0):
  z, y, pw = _cast_like_logits(z, y, pos_weight)
  y = _smooth_binary(y, label_smoothing)
  pw = 1.0 if pw is None else pw
  h = (1 + y * (pw - 1)) * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)
  return _diag_hessian(jnp.broadcast_to(h, z.shape))


def _ref_sbce(z, y, *, pos_weight=None, label_smoothing=0.0):
  z = np.asarray(z, np.float64)
  y = np.asarray(y, np.float64) * (1 - label_smoothing) + label_smoothing / 2
  pw = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
  with np.errstate(invalid="ignore"):
    a = pw * y * np.logaddexp(0.0, -z)
    b = (1 - y) * np.logaddexp(0.0, z)
  a = np.where(pw * y == 0, 0.0, a)
  b = np.where(1 - y == 0, 0.0, b)
  return a + b


def _label_dtype(dtype):
  return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def _sample_sigmoid(key, dtype, shape=(4, 5)):
  kz, ky = jax.random.split(key)
  z = (3.0 * jax.random.normal(kz, shape, jnp.float32)).astype(dtype)
  y = jax.random.uniform(ky, shape, jnp.float32).astype(_label_dtype(dtype))
  return z, y


_BIG = np.array([-np.inf, -1e4, -30.0, -15.0, 0.0, 15.0, 30.0, 1e4, np.inf])
_SAT_Z = np.concatenate([_BIG, _BIG])
_SAT_Y = np.concatenate([np.zeros_like(_BIG), np.ones_like(_BIG)])

SIGMOID_BINARY_CROSS_ENTROPY = LossSpec(
    name="sigmoid_binary_cross_entropy",
    family="classification",
    fn=sigmoid_binary_cross_entropy,
    arg_names=("logits", "labels"),
    grads={0: _sbce_dz, 1: _sbce_dy},
    hessian=_sbce_hessian,
    sample=_sample_sigmoid,
    reference=_ref_sbce,
    edge_cases=(
        EdgeCase((_SAT_Z, _SAT_Y), "saturated and infinite logits, hard labels (+inf where unmet)"),
        EdgeCase((_BIG, np.full_like(_BIG, 0.3)), "saturated logits, soft label"),
        EdgeCase((np.array([0.0]), np.array([0.5])), "GAN discriminator at D = 0.5: ln 2"),
        EdgeCase((_SAT_Z, _SAT_Y), "saturated logits with pos_weight and smoothing",
                 {"pos_weight": 3.0, "label_smoothing": 0.1}),
    ),
    configs=({}, {"label_smoothing": 0.1}, {"pos_weight": 2.5},
             {"pos_weight": (0.5, 1.0, 2.0, 3.0, 0.25), "label_smoothing": 0.2}),
    formula=r"w_+ y' \operatorname{sp}(-z) + (1 - y') \operatorname{sp}(z),\ y' = y(1-\varepsilon) + \varepsilon/2",
    domain="z in [-inf, inf], y in [0, 1]",
    optax_peer=optax_loss("sigmoid_binary_cross_entropy"),
    naive=lambda z, y: -y * jax.nn.log_sigmoid(z) - (1 - y) * jax.nn.log_sigmoid(-z),
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# binary cross-entropy on probabilities
# --------------------------------------------------------------------------
def binary_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Binary cross-entropy on probabilities, elementwise.

  .. math::
     \ell(p, y) = -y \log p - (1 - y) \log(1 - p),
     \qquad 0 \log 0 = 0.

  The second term is evaluated as :math:`(1 - y)\operatorname{log1p}(-p)`,
  accurate for small :math:`p` (where the rounded :math:`1 - p` is not).
  Exact at :math:`p \in \{0, 1\}`: 0 where the label is met, :math:`+\infty`
  where it cannot be (:math:`p = 0, y > 0`). There is **no epsilon clipping**;
  prefer :func:`sigmoid_binary_cross_entropy` on logits when you have them.

  Derivatives (by hand):

  .. math::
     \partial_p \ell = -\frac{y}{p} + \frac{1 - y}{1 - p},
     \qquad
     \partial_y \ell = \log\frac{1 - p}{p},

  with each term taken as 0 where its own coefficient and probability are both
  0 (so the derivative with respect to a zero target at :math:`p = 0` is 0,
  and :math:`\partial_p \ell = 1` at :math:`p = 0, y = 0`).

  Probabilities outside [0, 1] (or NaN) give NaN in that element and raise
  under ``checkify.checkify(fn, errors=checkify.user_checks)``.

  Args:
    probs: probabilities, floating array.
    labels: targets in [0, 1], same shape.
    weights, where, reduction: see :mod:`jaxloss._base`.

  References:
    Cover and Thomas, *Elements of Information Theory*, 2nd ed., 2006, ch. 2.
  """
  p, y, mask, dtype = _base.elementwise_inputs("probs", probs, "labels", labels, where)
  p = _base.sanitize(p, mask, fill=0.5)
  y = _base.sanitize(y, mask)
  bad = _base.check_probabilities("probs", p) | _base.check_probabilities("labels", y)
  # log1p(-p), not log(1 - p): 1 - p rounds for small p (p = 1e-7, y = 0 in float32: 1.19e-7, not 1.0e-7).
  loss = -(_base.xlogy(y, p) + _base.xlog1my(y, p))
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _zero_if(cond, x):
  return jnp.where(cond, jnp.zeros((), x.dtype), x)


def _bce_dp(p, y):
  p, y = _cast_like_logits(p, y)
  a = _zero_if((y == 0) & (p == 0), -y / p)
  b = _zero_if((y == 1) & (p == 1), (1 - y) / (1 - p))
  return a + b


def _bce_dy(p, y):
  p, y = _cast_like_logits(p, y)
  a = _zero_if((y == 0) & (p == 0), -jnp.log(p))
  b = _zero_if((y == 1) & (p == 1), jnp.log1p(-p))
  return a + b


def _ref_bce(p, y):
  p = np.asarray(p, np.float64)
  y = np.asarray(y, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    a = np.where(y == 0, 0.0, y * np.log(p))
    b = np.where(1 - y == 0, 0.0, (1 - y) * np.log1p(-p))
  out = -(a + b)
  return np.where((p >= 0) & (p <= 1), out, np.nan)


def _sample_probs(key, dtype, shape=(4, 5)):
  kp, ky = jax.random.split(key)
  p = jax.random.uniform(kp, shape, jnp.float32, 0.05, 0.95).astype(dtype)
  y = jax.random.uniform(ky, shape, jnp.float32).astype(_label_dtype(dtype))
  return p, y


BINARY_CROSS_ENTROPY = LossSpec(
    name="binary_cross_entropy",
    family="classification",
    fn=binary_cross_entropy,
    arg_names=("probs", "labels"),
    grads={0: _bce_dp, 1: _bce_dy},
    sample=_sample_probs,
    reference=_ref_bce,
    edge_cases=(
        EdgeCase((np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0])),
                 "p in {0, 1}: 0 where met, +inf where unmet"),
        EdgeCase((np.array([0.0, 0.5, 1e-300]), np.array([0.0, 0.0, 0.0])), "zero targets, p = 0"),
        EdgeCase((np.array([0.8, 0.5]), np.array([0.8, 0.5])), "p = y: minimum, zero gradient"),
        EdgeCase((np.array([1.5, -0.2]), np.array([1.0, 0.0])), "probabilities outside [0, 1]",
                 in_domain=False),
    ),
    formula=r"-y \log p - (1 - y) \log(1 - p)",
    domain="p in [0, 1], y in [0, 1]",
    naive=lambda p, y: -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p)),
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# softmax cross-entropy with distribution labels
# --------------------------------------------------------------------------
def _row_prologue(name_p, predictions, axis, where):
  z, dtype = _base.as_predictions(name_p, predictions)
  axis = _base.normalize_axis(axis, z.ndim)
  row_shape = _row_shape(z.shape, axis)
  mask = _base.prepare_where(where, row_shape)
  return z, dtype, axis, row_shape, mask


def _softmax_stats(z, axis):
  r"""Returns ``(d, e, s, log_norm)`` for the rows of ``z`` (all keep ``axis``).

  With :math:`m = \max_j z_j` (under ``stop_gradient``; every output below
  is shift invariant or used only inside a custom JVP):

  * :math:`d_j = m - z_j \ge 0`, so :math:`-\log p_j = d_j + \log Z` with
    :math:`\log Z = \operatorname{lse}(z) - m \ge 0`: a sum of two
    non-negative terms, no cancellation for confident rows;
  * :math:`e_j = e^{-d_j} \in [0, 1]` and :math:`s = \sum_j e_j`, so
    :math:`p = e / s` (a smooth function of ``z``: its autodiff is exact to any
    order, also at tied maxima);
  * :math:`\log Z = \operatorname{log1p}(\mathrm{rest})`, with
    :math:`\mathrm{rest} = s - 1` computed without the cancellation of
    :math:`s - 1`: :math:`r = \sum_j (e_j - \lfloor e_j \rfloor)` sums every
    :math:`e_j < 1` (:math:`\lfloor e_j \rfloor = [e_j = 1]` as
    :math:`0 \le e_j \le 1`), the number of :math:`e_j = 1` (the maximum and
    any tie) is the integer :math:`k = \operatorname{round}(s - r)`, and
    :math:`\mathrm{rest} = r + (k - 1)`, exact to rounding when it is tiny.

  Two plain sums, one ``exp``, and no compare, select, argmax or gather on the
  ``[..., C]`` arrays: XLA fuses all of it into the passes over ``z`` (on CPU a
  select or an argmax costs a materialized array each). ``k`` is exact while the
  rounding error of ``s`` stays below 1/2 (the computation dtype is float32 or
  float64; bf16/f16 inputs are upcast first). In float32 that fails only when
  millions of classes tie at the maximum; then rest is itself in the millions
  and an error of 1 in ``k`` moves :math:`\log Z` by less than 1e-6 relative.
  ``rest`` is not clamped: :math:`r \ge 0` and :math:`k \ge 1` (a clamp would
  halve its derivative where it is exactly 0, e.g. ``[1000, 0]`` in float32).

  Also returned: ``rest``, for :func:`_softmax_coef`.
  """
  m = lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
  d = m - z
  e = jnp.exp(-d)
  s = jnp.sum(e, axis=axis, keepdims=True)
  f = lax.stop_gradient(jnp.floor(e))
  r = jnp.sum(e - f, axis=axis, keepdims=True)
  k = lax.stop_gradient(jnp.round(s - r))
  rest = r + (k - 1)
  return d, e, s, jnp.log1p(rest), rest


def _softmax_coef(e, s, rest, big_s, y):
  r"""The logit gradient :math:`S p_j - y_j` without the cancellation of :math:`S p_j - y_j` at :math:`p_j \approx 1`.

  With the statistics of :func:`_softmax_stats` (:math:`p_j = e_j / s`,
  :math:`s = 1 + \mathrm{rest}` at a unique maximum): off the maximum it is
  :math:`(S / s)\, e_j - y_j`; at a maximum (:math:`e_j = 1`) :math:`S p_j = S -
  S\,\mathrm{rest} / s`, so

  .. math::
     S p_j - y_j = (S - y_j) + \frac{S}{s}\bigl((e_j - 1) - \mathrm{rest}\bigr),

  where :math:`S - y_j` is exact for a one-hot row and the second term is
  :math:`-S (1 - p_j)` from the rest-sum: ``[17, 0]`` with labels ``[1, 0]``
  gives :math:`-e^{-17}/(1 + e^{-17})`, not 0. The term :math:`e_j - 1`
  (exactly 0) is there for the derivative (forward over reverse): along
  :math:`dz = e_j`, :math:`d(e_j - 1) = dz_j` cancels the :math:`dz_j` in
  :math:`d\,\mathrm{rest} = \sum_i e_i dz_i` exactly, leaving :math:`H_{jj} =
  S\,\mathrm{rest}/s^2 = S p_j (1 - p_j)`. With ties every tied maximum takes
  the first branch (:math:`s - \mathrm{rest} = 1`, so it is :math:`S/s -
  y_j`). ``y = 0, S = 1`` gives :math:`p` itself (the derivative of lse).

  A select on ``e == 1``: on CPU it fuses into the backward pass that reads
  ``e`` (a ``floor(e)`` shared with the forward rest-sum made XLA materialize
  one more ``[..., C]`` array, ~20% slower).
  """
  a = big_s / s
  return jnp.where(e == 1, (big_s - y) + a * ((e - 1) - rest), a * e - y)


def _gap_sum_select(y, d, axis):
  r""":math:`\sum_j y_j d_j` per row with :math:`0 \cdot \infty = 0` (a select per element)."""
  return jnp.sum(jnp.where(y == 0, jnp.zeros((), d.dtype), y * d), axis=axis)


def _gap_sum_screened(y, d, axis):
  """:func:`_gap_sum_select`, computed without the select unless a row needs it (CPU)."""
  plain = jnp.sum(y * d, axis=axis)
  return lax.cond(jnp.any(jnp.isnan(plain)), functools.partial(_gap_sum_select, axis=axis),
                  lambda y, d: plain, y, d)


def _gap_sum(y, d, axis):
  r""":math:`\sum_j y_j d_j` per row, with :math:`0 \cdot \infty = 0`.

  :math:`d_j = +\infty` where :math:`z_j = -\infty` (a masked class): the
  term is 0 for :math:`y_j = 0` and :math:`+\infty` for :math:`y_j > 0` (the
  target cannot be met). Written with a select, that costs a materialized
  ``[..., C]`` array on CPU (it fuses for free on GPU/TPU). So on CPU the plain
  sum runs first; it equals the exact one unless some :math:`0 \cdot \infty`
  made a row NaN, and only then (a ``lax.cond``) does the select version run.
  Same values on every backend, to the rounding of the sum's order (tests
  compare the two on CPU).
  """
  return _base.platform_dependent(y, d, cpu=functools.partial(_gap_sum_screened, axis=axis),
                                  default=functools.partial(_gap_sum_select, axis=axis))


def _soft_ce_value(y, d, log_norm, axis):
  r""":math:`-\sum_j y_j \log p_j = \sum_j y_j d_j + (\sum_j y_j) \log Z`: non-negative terms, no cancellation."""
  return _gap_sum(y, d, axis) + jnp.squeeze(jnp.sum(y, axis=axis, keepdims=True) * log_norm, axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _soft_ce(z, y, axis):
  r""":math:`-\sum_j y_j \log \operatorname{softmax}(z)_j` per row, ``y`` used as given."""
  d, _, _, log_norm, _ = _softmax_stats(z, axis)
  return _soft_ce_value(y, d, log_norm, axis)


def _soft_ce_jvp(axis, primals, tangents):
  r""":math:`d\ell = \sum_j (S p_j - y_j)\, dz_j + \sum_j (d_j + \log Z)\, dy_j`.

  The second term is 0 where :math:`y_j = 0` and :math:`d_j = \infty` (the
  :math:`0 \cdot \infty` convention, as in the value). The first term's
  coefficient is :func:`_softmax_coef` (no cancellation where :math:`p_j
  \approx 1`, in the gradient and, differentiated, the Hessian). Symbolic-zero tangents
  skip their term, so ``grad`` with respect to the logits alone never
  evaluates the label derivative. Every quantity here is a smooth function of
  the primals, so differentiating this rule gives the exact Hessian.
  """
  (z, y), (dz, dy) = primals, tangents
  d, e, s, log_norm, rest = _softmax_stats(z, axis)
  # The custom-JVP function itself, not _soft_ce_value: differentiating this rule (forward over
  # reverse, Hessians) then differentiates the value through this rule again (XLA merges the two).
  out = _soft_ce(z, y, axis)
  tangent = jnp.zeros_like(out)
  if not isinstance(dz, SymbolicZero):
    big_s = jnp.sum(y, axis=axis, keepdims=True)
    tangent = tangent + jnp.sum(_softmax_coef(e, s, rest, big_s, y) * dz, axis=axis)
  if not isinstance(dy, SymbolicZero):
    minus_logp = jnp.where((y == 0) & (d == jnp.inf), jnp.zeros((), d.dtype), d + log_norm)
    tangent = tangent + jnp.sum(minus_logp * dy, axis=axis)
  return out, tangent


_soft_ce.defjvp(_soft_ce_jvp, symbolic_zeros=True)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _lse(z, axis):
  r""":math:`\operatorname{lse}(z) = m + \log(1 + \mathrm{rest})` per row (``axis`` removed), for ``z_loss``."""
  m = lax.stop_gradient(jnp.max(z, axis=axis))
  return m + jnp.squeeze(_softmax_stats(z, axis)[3], axis)


@_lse.defjvp
def _lse_jvp(axis, primals, tangents):
  r""":math:`d\,\operatorname{lse} = \sum_j p_j\, dz_j`, :math:`p` from :func:`_softmax_coef` (accurate Hessian at :math:`p_j \approx 1`)."""
  (z,), (dz,) = primals, tangents
  _, e, s, _, rest = _softmax_stats(z, axis)
  p = _softmax_coef(e, s, rest, jnp.ones((), e.dtype), jnp.zeros((), e.dtype))
  return _lse(z, axis), jnp.sum(p * dz, axis=axis)


def _add_z_loss(loss, z, z_loss, axis, dtype):
  r"""``loss + z_loss * lse(z)^2`` (nothing traced when ``z_loss`` is the Python number 0)."""
  if _is_zero(z_loss):
    return loss
  return loss + jnp.asarray(z_loss, dtype) * jnp.square(_lse(z, axis))


def _check_z_loss(z_loss):
  return _base.check_scalar_in("z_loss", z_loss, 0.0, float("inf"))


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Softmax cross-entropy against a target distribution, one value per row.

  With :math:`C` classes along ``axis`` and smoothed targets
  :math:`y' = (1 - \varepsilon) y + \varepsilon / C`:

  .. math::
     \ell(z, y) = -\sum_j y'_j \log p_j, \qquad
     -\log p_j = (m - z_j) + \log\Bigl(1 + \sum_{i \ne \arg\max} e^{z_i - m}\Bigr),
     \quad m = \max_i z_i,

  so :math:`\ell = \sum_j y'_j (m - z_j) + S \log(1 + \mathrm{rest})` with :math:`S = \sum_j y'_j`, a sum of
  non-negative terms: no cancellation in :math:`\operatorname{lse}(z) - z_j`
  on confident rows. There the loss is as accurate as :math:`m - z_j` is: a
  few ulp when that difference is exact (``[1000, 990]``: optax's
  ``softmax_cross_entropy`` is about 400 ulp off), about :math:`(m - z_j)
  \epsilon` relative otherwise, as for any softmax in that dtype. The loss
  carries a ``jax.custom_jvp`` (the derivatives below), exact to second order
  also at tied maxima. Terms with :math:`y'_j = 0` are 0, so classes masked
  with :math:`z_j = -\infty` give a finite loss and gradient when their target
  is 0 (and :math:`+\infty` when it is positive: that target cannot be met;
  label smoothing makes every target positive, so with smoothing a masked
  class makes its row :math:`+\infty`: exclude such rows with ``where``).
  Negative or NaN labels (checked before smoothing) make their row NaN. The
  implementation avoids every compare, select and argmax on the ``[..., C]``
  arrays (see ``_softmax_stats``): on CPU, at 1024 x 1024, its
  ``value_and_grad`` took 1.03-1.08x the time of optax's
  ``softmax_cross_entropy`` across our runs (``benchmarks/RESULTS.md``; small
  arrays pay a fixed dispatch cost, see :mod:`jaxloss._base`).

  Derivatives (by hand), with :math:`S = \sum_j y'_j`:

  .. math::
     \partial_{z_j} \ell = S\, p_j - y'_j,
     \qquad
     \partial_{z_j} \partial_{z_k} \ell = S\,(\delta_{jk} p_j - p_j p_k),
     \qquad
     \partial_{y_j} \ell = -(1 - \varepsilon) \log p_j

  (0 where :math:`y'_j = 0` and :math:`p_j = 0`). The labels are used as given
  (not renormalized), which is why :math:`S` appears. On confident rows the
  derivative is tiny at the top class :math:`k` and a subtraction
  :math:`S p_k - y'_k` or :math:`p_k - p_k^2` would cancel (``[17, 0]``
  against ``[1, 0]``: 0 in float32 instead of :math:`-4.1 \cdot 10^{-8}`); the
  implementation and the closed forms compute
  :math:`S p_k - y'_k = \sum_{j \ne k} y'_j - S (1 - p_k)` and
  :math:`p_k (1 - p_k)` with :math:`1 - p_k = \sum_{j \ne k} p_j`, from the
  row's rest-sum.

  **z-loss** (``z_loss`` :math:`= \lambda`, PaLM; as in
  :func:`jaxloss.fused.linear_softmax_cross_entropy`): adds
  :math:`\lambda \operatorname{lse}(z)^2` to each row, with
  :math:`\partial_{z_j} = 2 \lambda \operatorname{lse}(z)\, p_j` and Hessian
  :math:`2 \lambda \bigl(p p^\top + \operatorname{lse}(z) (\operatorname{diag} p
  - p p^\top)\bigr)`. It does not depend on the labels. At the default
  ``0.0`` nothing is computed.

  Args:
    logits: floating array, classes along ``axis``.
    labels: floating target distribution, same shape as ``logits``.
    axis: the class axis.
    label_smoothing: :math:`\varepsilon \in [0, 1]`.
    z_loss: :math:`\lambda \ge 0`, coefficient of :math:`\operatorname{lse}(z)^2`.
    weights, where, reduction: see :mod:`jaxloss._base`; they have the shape
      of one loss per row (``logits.shape`` without ``axis``).

  References:
    Bishop, *Pattern Recognition and Machine Learning*, 2006, section 4.3.4.
    Szegedy et al., *Rethinking the Inception Architecture*, 2016 (label smoothing).
  """
  bad_option = _check_label_smoothing(label_smoothing)
  bad_z_loss = _check_z_loss(z_loss)
  z, dtype, axis, row_shape, mask = _row_prologue("logits", logits, axis, where)
  y = _base.as_distribution_targets("labels", labels, dtype)
  _base.check_same_shape("logits", z, "labels", y)
  z = _base.sanitize(z, mask, axis=axis)
  y = _base.sanitize(y, mask, axis=axis)
  # The labels as given are checked (smoothing could lift a negative label above 0): the checkify
  # check, then the NaN flags as one min per row (no [..., C] select).
  _base.check_nonnegative("labels", y)
  bad = ~(jnp.min(y, axis=axis) >= 0)
  if not _is_zero(label_smoothing):
    eps = jnp.asarray(label_smoothing, dtype)
    y = (1 - eps) * y + eps / z.shape[axis]
  loss = _add_z_loss(_soft_ce(z, y, axis), z, z_loss, axis, dtype)
  loss = _base.nan_if(bad_z_loss, _base.nan_if(bad_option, _base.nan_where(bad, loss)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _smooth_dist(y, label_smoothing, axis):
  return (1 - label_smoothing) * y + label_smoothing / y.shape[axis]


def _softmax_with_complement(z, axis):
  r"""``(p, 1 - p, top)``: :math:`p = \operatorname{softmax}(z)`, :math:`1 - p_j` and the one-hot of the first argmax.

  :math:`1 - p_k` at the argmax :math:`k` is :math:`\sum_{j \ne k} p_j` (tiny on
  a confident row, where :math:`1 - p_k` by subtraction is 0 or a rounding
  error); elsewhere :math:`p_j \le 1/2` and :math:`1 - p_j` is exact to rounding.
  """
  p = jax.nn.softmax(z, axis=axis)
  top = jax.nn.one_hot(jnp.argmax(z, axis=axis), z.shape[axis], axis=axis, dtype=jnp.bool_)
  comp = jnp.where(top, _sum_off(p, top, axis), 1 - p)
  return p, comp, top


def _sum_off(x, top, axis):
  r""":math:`\sum_{j \ne k} x_j` per row (``k`` the argmax marked by ``top``), keeping ``axis``."""
  return jnp.sum(jnp.where(top, jnp.zeros((), x.dtype), x), axis=axis, keepdims=True)


def _dist_grad(p, comp, top, y, big_s, axis):
  r""":math:`S p_j - y_j`; at the argmax :math:`k`: :math:`\sum_{j \ne k} y_j - S (1 - p_k)` (no cancellation)."""
  return jnp.where(top, _sum_off(y, top, axis) - big_s * comp, big_s * p - y)


def _z_loss_grad(z, p, z_loss, axis):
  r""":math:`2 \lambda \operatorname{lse}(z) p` (the z-loss term's gradient)."""
  return 2 * z_loss * jax.nn.logsumexp(z, axis=axis, keepdims=True) * p


def _sce_dz(z, y, *, axis=-1, label_smoothing=0.0, z_loss=0.0):
  z, y = _cast_like_logits(z, y)
  y = _smooth_dist(y, label_smoothing, axis)
  p, comp, top = _softmax_with_complement(z, axis)
  g = _dist_grad(p, comp, top, y, jnp.sum(y, axis=axis, keepdims=True), axis)
  return g + _z_loss_grad(z, p, z_loss, axis) if z_loss else g


def _sce_dy(z, y, *, axis=-1, label_smoothing=0.0, z_loss=0.0):
  del z_loss  # lse(z)^2 does not depend on the labels
  z, y = _cast_like_logits(z, y)
  # -log p_j = (m - z_j) + log(1 + sum_{i != k} e^{z_i - m}) (k the argmax): log_softmax's
  # log(sum_i e^{z_i - m}) rounds to 0 on a confident row, and -log p_k is that rest alone.
  m = jnp.max(z, axis=axis, keepdims=True)
  e = jnp.exp(z - m)
  top = jax.nn.one_hot(jnp.argmax(z, axis=axis), z.shape[axis], axis=axis, dtype=jnp.bool_)
  minus_logp = (m - z) + jnp.log1p(_sum_off(e, top, axis))
  ys = _smooth_dist(y, label_smoothing, axis)
  return (1 - label_smoothing) * _zero_if((ys == 0) & jnp.isposinf(minus_logp), minus_logp)


def _rowwise_hessian(blocks, shape, axis):
  """Assembles per-row ``[C, C]`` blocks (batch dims first) into ``shape + shape``."""
  n = len(shape)
  axis = axis % n
  c = blocks.shape[-1]
  batch = blocks.shape[:-2]
  nb = int(np.prod(batch, dtype=np.int64))
  b = blocks.reshape(nb, c, c)
  full = jnp.einsum("ij,ikl->ikjl", jnp.eye(nb, dtype=b.dtype), b)
  moved = tuple(batch) + (c,)
  full = full.reshape(moved + moved)
  perm = [a for a in range(n) if a != axis] + [axis]
  inv = [int(i) for i in np.argsort(perm)]
  return jnp.transpose(full, inv + [n + i for i in inv])


def _softmax_hessian_blocks(z, scale, axis, z_loss=0.0):
  r"""``scale * (diag p - p p^T)`` per row, rows first and classes last (plus the z-loss term).

  The diagonal is :math:`p_j (1 - p_j)` with :math:`1 - p_j` from
  :func:`_softmax_with_complement` (not :math:`p_j - p_j^2`, which cancels on
  confident rows). With ``z_loss`` :math:`\lambda`: plus
  :math:`2 \lambda (p p^\top + \operatorname{lse}(z) (\operatorname{diag} p - p p^\top))`.
  """
  zm = jnp.moveaxis(z, axis, -1)
  p, comp, _ = _softmax_with_complement(zm, -1)
  outer = p[..., :, None] * p[..., None, :]
  eye = jnp.eye(p.shape[-1], dtype=jnp.bool_)
  blocks = jnp.where(eye, (p * comp)[..., :, None], -outer)
  if not z_loss:
    return scale[..., None, None] * blocks
  lse = jax.nn.logsumexp(zm, axis=-1)
  return (scale + 2 * z_loss * lse)[..., None, None] * blocks + 2 * z_loss * outer


def _sce_hessian(z, y, *, axis=-1, label_smoothing=0.0, z_loss=0.0):
  z, y = _cast_like_logits(z, y)
  s = jnp.sum(_smooth_dist(y, label_smoothing, axis), axis=axis)
  return _rowwise_hessian(_softmax_hessian_blocks(z, s, axis, z_loss), z.shape, axis)


def _np_log_softmax(z, axis):
  z = np.asarray(z, np.float64)
  m = np.max(z, axis=axis, keepdims=True)
  with np.errstate(invalid="ignore"):
    return z - m - np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))


def _np_lse(z, axis):
  z = np.asarray(z, np.float64)
  m = np.max(z, axis=axis, keepdims=True)
  with np.errstate(invalid="ignore"):
    return np.squeeze(m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True)), axis)


def _ref_sce(z, y, *, axis=-1, label_smoothing=0.0, z_loss=0.0):
  y = np.asarray(y, np.float64)
  y = (1 - label_smoothing) * y + label_smoothing / y.shape[axis]
  logp = _np_log_softmax(z, axis)
  with np.errstate(invalid="ignore"):
    t = np.where(y == 0, 0.0, y * logp)
  return -np.sum(t, axis=axis) + z_loss * _np_lse(z, axis) ** 2


def _mp_rows(fn, z, others, axis):
  """Applies ``fn(row_of_z, *rows_of_others)`` (mpmath) to every row along ``axis``; an object array."""
  zm = np.moveaxis(np.asarray(z, dtype=object), axis, -1)
  om = [np.moveaxis(np.asarray(o, dtype=object), axis, -1) if np.ndim(o) == np.ndim(z) else np.asarray(o)
        for o in others]
  out = np.empty(zm.shape[:-1], dtype=object)
  for idx in np.ndindex(out.shape):
    out[idx] = fn(list(zm[idx]), *[o[idx] for o in om])
  return out


def _mp_lse(row):
  import mpmath  # pylint: disable=g-import-not-at-top

  return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row))


def _mp_sce(z, y, *, axis=-1, label_smoothing=0.0, z_loss=0.0):
  """mpmath reference (``LossSpec.reference_mp``): lse(z) - z_j at the working precision, 0 * inf = 0."""
  import mpmath  # pylint: disable=g-import-not-at-top

  eps = mpmath.mpf(label_smoothing)

  def row(zr, yr):
    c = len(zr)
    lse = _mp_lse(zr)
    ys = [(1 - eps) * mpmath.mpf(v) + eps / c for v in yr]
    return mpmath.fsum(yj * (lse - zj) for yj, zj in zip(ys, zr) if yj != 0) + mpmath.mpf(z_loss) * lse**2

  return _mp_rows(row, z, [y], axis)


def _sample_softmax(key, dtype, shape=(4, 5)):
  kz, ky = jax.random.split(key)
  z = (2.0 * jax.random.normal(kz, shape, jnp.float32)).astype(dtype)
  ldt = _label_dtype(dtype)
  y = jax.nn.softmax(jax.random.normal(ky, shape, ldt), axis=-1)
  return z, y


_NEG = -np.inf
# confident rows shaped like the sampler's (4, 5), so that they share its compiled program in the verifier
_CONFIDENT5 = np.array([[17.0, 0.0, -1.0, -2.0, -3.0], [0.5, 8.0, 0.0, -1.0, 1.0],
                        [40.0, 0.0, -5.0, 1.0, 2.0], [-30.0, 0.0, 30.0, -30.0, 0.0]])
_CONFIDENT5_LABELS = np.argmax(_CONFIDENT5, axis=-1)
_CONFIDENT5_SOFT = np.eye(5)[_CONFIDENT5_LABELS] * np.array([[1.0], [0.97], [1.0], [1.0]])
_CONFIDENT5_SOFT[1, 0] = 0.03
_SCE_SMOOTH_ZLOSS = {"label_smoothing": 0.1, "z_loss": 0.2}
SOFTMAX_CROSS_ENTROPY = LossSpec(
    name="softmax_cross_entropy",
    family="classification",
    fn=softmax_cross_entropy,
    arg_names=("logits", "labels"),
    grads={0: _sce_dz, 1: _sce_dy},
    hessian=_sce_hessian,
    sample=_sample_softmax,
    reference=_ref_sce,
    edge_cases=(
        EdgeCase((np.array([[0.5, _NEG, 2.0, _NEG], [1.0, -1.0, _NEG, 3.0]]),
                  np.array([[0.3, 0.0, 0.7, 0.0], [0.0, 0.5, 0.0, 0.5]])),
                 "-inf logits on classes with zero target"),
        EdgeCase((np.array([[1000.0, 990.0], [990.0, 1000.0], [100.0, 95.0]]),
                  np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])), "confident rows"),
        EdgeCase((np.array([[3.0, 3.0, -2.0], [0.0, 0.0, 0.0]]), np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]])),
                 "tied maxima"),
        EdgeCase((np.array([[30.0, -30.0, 0.0]]), np.array([[0.1, 0.6, 0.3]])), "unnormalized row: smoothing",
                 _SCE_SMOOTH_ZLOSS),
        # 1 - p_k below the epsilon of every dtype: p_k - y_k and p_k (1 - p_k) cancel if subtracted
        EdgeCase((np.array([[17.0, 0.0], [0.0, 8.0], [40.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])),
                 "confident rows, one-hot labels (f32, bf16/f16, f64)"),
        EdgeCase((np.array([[30.0, -30.0, 0.0], [-5.0, 20.0, 1.0]]), np.array([[1.0, 0.0, 0.0], [0.0, 0.9, 0.1]])),
                 "confident rows, 3 classes (float64 cancels in p_k - 1)"),
        EdgeCase((_CONFIDENT5, _CONFIDENT5_SOFT), "confident rows, smoothing and z-loss", _SCE_SMOOTH_ZLOSS),
        EdgeCase((_CONFIDENT5, _CONFIDENT5_SOFT), "confident rows"),
    ),
    # each distinct config is one more program per dtype in the verifier: z-loss rides with smoothing
    configs=({}, _SCE_SMOOTH_ZLOSS, {"axis": 0}),
    rowwise=True,
    formula=r"-\sum_j y'_j \log \operatorname{softmax}(z)_j,\ y' = (1-\varepsilon) y + \varepsilon / C",
    domain="z in [-inf, inf) per class (finite where y' > 0), y >= 0",
    optax_peer=optax_loss("softmax_cross_entropy"),
    naive=lambda z, y: -jnp.sum(y * jax.nn.log_softmax(z, axis=-1), axis=-1),
    float_argnums=(0,),
    reference_mp=_mp_sce,
)


# --------------------------------------------------------------------------
# softmax cross-entropy with integer labels
# --------------------------------------------------------------------------
def _label_index(labels, axis):
  """Scatter/gather index tuple that addresses ``z[..., labels, ...]`` (``labels`` at ``axis``)."""
  idx = [lax.broadcasted_iota(jnp.int32, labels.shape, i) for i in range(labels.ndim)]
  return tuple(idx[:axis]) + (labels.astype(jnp.int32),) + tuple(idx[axis:])


def _onehot(labels, shape, axis):
  return lax.broadcasted_iota(labels.dtype, shape, axis) == jnp.expand_dims(labels, axis)


def _minus_onehot_fused(e, labels, axis):
  """``e - onehot(labels)`` as a compare; on GPU/TPU it fuses into the reduction that reads it."""
  return e - _onehot(labels, e.shape, axis).astype(e.dtype)


def _minus_onehot_scatter(e, labels, axis):
  """``e - onehot(labels)`` as an in-place update of the label entries (CPU: no one-hot pass).

  ``labels`` must lie in ``[0, C)`` (the caller sanitizes them): out-of-range
  indices are undefined behaviour under ``promise_in_bounds``.
  """
  return e.at[_label_index(labels, axis)].add(-1.0, mode="promise_in_bounds")


def _int_ce_stats(z, labels, axis):
  r"""``(loss, d, s)`` with ``d = exp(z - m) - onehot(y)`` and ``s = sum_j d_j`` (keeps ``axis``).

  ``d_j = e_j - [j = y]`` is exact where :math:`e_y = 1` (``y`` a maximum),
  so ``s = sum_{j != y} e_j + (e_y - 1)`` needs neither the argmax nor a tie
  count: two reductions (max, sum), one ``exp``. ``1 + s = sum_j e_j``, the
  loss is ``(m - z_y) + log1p(s)`` and ``softmax - onehot = (d - [j = y] s) /
  (1 + s)``. Where ``y`` is a maximum, ``s`` is the exact rest-sum, so
  confident rows are accurate; elsewhere :math:`p_y \le 1/2`, the loss is at
  least :math:`\log 2` and the absolute rounding of ``s`` is harmless.
  ``labels`` must lie in ``[0, C)``.
  """
  # Not stop_gradient: only the Hessian path differentiates these stats (first order uses the custom
  # JVP below), and with d m = d z_k at a unique maximum k, d e_k = 0 exactly, so the derivative of
  # p_k = e_k / (1 + s) comes from the rest-sum alone: p_k (1 - p_k) without cancellation.
  m = jnp.max(z, axis=axis, keepdims=True)
  e = jnp.exp(z - m)
  d = _base.platform_dependent(e, labels, cpu=functools.partial(_minus_onehot_scatter, axis=axis),
                               default=functools.partial(_minus_onehot_fused, axis=axis))
  s = jnp.sum(d, axis=axis, keepdims=True)
  zy = jnp.take_along_axis(z, jnp.expand_dims(labels, axis), axis=axis, mode="promise_in_bounds")
  return jnp.squeeze((m - zy) + jnp.log1p(s), axis), d, s


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _int_ce(z, labels, axis):
  r"""``lse(z) - z_y`` per row, accurate on confident rows (see the public docstring).

  ``labels`` must lie in ``[0, C)``: the public function sanitizes invalid and
  ignored labels to 0 before calling this.
  """
  return _int_ce_stats(z, labels, axis)[0]


@_int_ce.defjvp
def _int_ce_jvp(axis, primals, tangents):
  z, labels = primals
  dz, _ = tangents
  _, d, s = _int_ce_stats(z, labels, axis)
  # The custom-JVP loss itself (XLA merges it with the stats above): its derivative is this rule's
  # tangent, so the Hessian of the label entry below is p_y (p - onehot) without cancellation.
  loss = _int_ce(z, labels, axis)
  # d loss = sum_j (p_j - [j = y]) dz_j: p_j = d_j / (1 + s) off the label, and p_y - 1 =
  # expm1(-loss) at it (no cancellation of p_y - 1 on confident rows, in value and derivative).
  # d * (1 / (1 + s)): one division per row, not per element (at most 1 ulp more).
  g = jnp.where(_onehot(labels, z.shape, axis), _expm1(-jnp.expand_dims(loss, axis)), d * (1 / (1 + s)))
  return loss, jnp.sum(g * dz, axis=axis)


def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Softmax cross-entropy with integer class labels, one value per row.

  With :math:`C` classes, label :math:`y` and smoothing :math:`\varepsilon`
  (target :math:`q = (1 - \varepsilon) e_y + \varepsilon / C`, i.e.
  :math:`\varepsilon / C` on every class):

  .. math::
     \ell(z, y) = -\sum_j q_j \log p_j
     = \ell_0 + \varepsilon \Bigl(z_y - \frac1C \sum_j z_j\Bigr),
     \qquad
     \ell_0 = \operatorname{lse}(z) - z_y
     = (m - z_y) + \log\Bigl(1 + \sum_{j \ne \arg\max} e^{z_j - m}\Bigr),

  with :math:`m = \max_j z_j`. The last form has no cancellation: on
  confident rows (logits ``[1000, 990]`` in float32, ``[100, 95]`` in
  bfloat16) the loss agrees with float64 to a few ulp.

  Derivatives (by hand):

  .. math::
     \partial_{z_j} \ell = p_j - q_j = p_j - (1 - \varepsilon)[j = y] - \frac{\varepsilon}{C},
     \qquad
     \partial_{z_j} \partial_{z_k} \ell = \delta_{jk} p_j - p_j p_k.

  The implementation carries a ``jax.custom_jvp`` for :math:`\ell_0` whose
  tangent uses :math:`p` with :math:`p_y - 1` replaced by
  :math:`\operatorname{expm1}(-\ell_0)` (the same number, without
  cancellation); forward mode, reverse mode and Hessians all go through it.
  The row statistics take one max and one sum per row: with
  :math:`d_j = e^{z_j - m} - [j = y]` (exact where :math:`z_y = m`),
  :math:`\sum_j d_j = \sum_{j \ne \arg\max} e^{z_j - m}` when :math:`y` is a
  maximum, so no argmax or tie count is needed (on CPU ``d`` is an in-place
  scatter at the labels, elsewhere a fused one-hot compare).

  The closed-form gradient and Hessian compute :math:`p_y - q_y` and
  :math:`p_k (1 - p_k)` at the top class :math:`k` with :math:`1 - p_k =
  \sum_{j \ne k} p_j` (no cancellation on confident rows).

  **z-loss** (``z_loss`` :math:`= \lambda`, PaLM; as in
  :func:`jaxloss.fused.linear_softmax_cross_entropy`): adds
  :math:`\lambda \operatorname{lse}(z)^2` to :math:`\ell` (before the class
  weight), with :math:`\partial_{z_j} = 2 \lambda \operatorname{lse}(z)\, p_j`
  and Hessian :math:`2 \lambda \bigl(p p^\top + \operatorname{lse}(z)
  (\operatorname{diag} p - p p^\top)\bigr)`. At the default ``0.0`` nothing
  is computed.

  **Class weights**: row :math:`i` gets the extra weight
  :math:`w_{y_i}` (its label's weight) on its whole loss, smoothing term
  included; ``reduction="none"`` returns :math:`w_{y_i} \ell_i`, and the
  mean is :math:`\sum_i w_{y_i} \ell_i / \sum_i w_{y_i}` over the rows kept.
  Without label smoothing this is PyTorch's ``CrossEntropyLoss(weight=w)``.
  With :math:`\varepsilon > 0` it is not: here the row is

  .. math::
     w_{y}\Bigl[(1 - \varepsilon)(-\log p_y) + \frac{\varepsilon}{C}
     \sum_j (-\log p_j)\Bigr],

  while PyTorch weights each class's smoothing term by its own weight,
  :math:`(1 - \varepsilon)\, w_y (-\log p_y) + \frac{\varepsilon}{C} \sum_j
  w_j (-\log p_j)` (both divided by :math:`\sum_i w_{y_i}` in the mean). For
  PyTorch's numbers use :func:`jaxloss.compat.torch.cross_entropy`.
  **ignore_index**: rows whose label equals it are excluded (0 in
  ``"none"``, not counted in the mean, zero gradient).

  Labels outside :math:`[0, C)` that are not ``ignore_index`` give NaN in that
  row and raise under ``checkify.checkify(fn, errors=checkify.user_checks)``;
  so do negative class weights.

  Args:
    logits: floating array, classes along ``axis``. ``-inf`` masks a class.
    labels: integer array of shape ``logits.shape`` without ``axis``.
    axis: the class axis.
    label_smoothing: :math:`\varepsilon \in [0, 1]`.
    z_loss: :math:`\lambda \ge 0`, coefficient of :math:`\operatorname{lse}(z)^2`.
    class_weights: optional ``[C]`` non-negative weights.
    ignore_index: optional label value whose rows are ignored (e.g. ``-100``).
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Bishop, *Pattern Recognition and Machine Learning*, 2006, section 4.3.4.
    Szegedy et al., *Rethinking the Inception Architecture*, 2016 (label smoothing).
    PyTorch ``torch.nn.CrossEntropyLoss`` (class weights, ``ignore_index``).
    Chowdhery et al., *PaLM*, 2022, section 5 (z-loss).
  """
  bad_option = _check_label_smoothing(label_smoothing)
  bad_z_loss = _check_z_loss(z_loss)
  rows = _labels.integer_label_rows("logits", logits, labels, axis=axis, where=where,
                                   class_weights=class_weights, ignore_index=ignore_index)
  z, dtype, axis, safe = rows.x, rows.dtype, rows.axis, rows.labels
  loss = _int_ce(z, safe, axis)
  if not _is_zero(label_smoothing):
    eps = jnp.asarray(label_smoothing, dtype)
    zy = jnp.squeeze(jnp.take_along_axis(z, jnp.expand_dims(safe, axis), axis=axis), axis)
    loss = loss + eps * (zy - jnp.mean(z, axis=axis))
  loss = _add_z_loss(loss, z, z_loss, axis, dtype)
  return rows.reduce(_base.nan_if(bad_z_loss, _base.nan_if(bad_option, loss)), weights, reduction)


def _int_row_factor(labels, class_weights, ignore_index, dtype):
  w = jnp.ones(labels.shape, dtype)
  if class_weights is not None:
    w = jnp.asarray(class_weights, dtype)[jnp.clip(labels, 0, None)]
  if ignore_index is not None:
    w = jnp.where(labels == ignore_index, jnp.zeros((), dtype), w)
  return w


def _ice_dz(z, labels, *, axis=-1, label_smoothing=0.0, z_loss=0.0, class_weights=None, ignore_index=None):
  (z,) = _cast_like_logits(z)
  c = z.shape[axis]
  onehot = jax.nn.one_hot(labels, c, dtype=z.dtype, axis=axis)
  q = (1 - label_smoothing) * onehot + label_smoothing / c
  w = _int_row_factor(labels, class_weights, ignore_index, z.dtype)
  p, comp, top = _softmax_with_complement(z, axis)
  g = _dist_grad(p, comp, top, q, jnp.ones((), z.dtype), axis)  # sum_j q_j = 1
  if z_loss:
    g = g + _z_loss_grad(z, p, z_loss, axis)
  return jnp.expand_dims(w, axis) * g


def _ice_hessian(z, labels, *, axis=-1, label_smoothing=0.0, z_loss=0.0, class_weights=None, ignore_index=None):
  del label_smoothing  # linear in z
  (z,) = _cast_like_logits(z)
  w = _int_row_factor(labels, class_weights, ignore_index, z.dtype)
  if z_loss:  # the class weight multiplies the z-loss term too: w (H_ce + H_z)
    blocks = _softmax_hessian_blocks(z, jnp.ones_like(w), axis, z_loss) * w[..., None, None]
  else:
    blocks = _softmax_hessian_blocks(z, w, axis)
  return _rowwise_hessian(blocks, z.shape, axis)


def _mp_ice(z, labels, *, axis=-1, label_smoothing=0.0, z_loss=0.0, class_weights=None, ignore_index=None):
  """mpmath reference (``LossSpec.reference_mp``) of the unreduced integer-label loss."""
  import mpmath  # pylint: disable=g-import-not-at-top

  eps = mpmath.mpf(label_smoothing)

  def row(zr, label):
    label = int(label)
    c = len(zr)
    if ignore_index is not None and label == ignore_index:
      return mpmath.mpf(0)
    lse = _mp_lse(zr)
    loss = (1 - eps) * (lse - zr[label]) + eps / c * mpmath.fsum(lse - v for v in zr)
    loss = loss + mpmath.mpf(z_loss) * lse**2
    return loss * (1 if class_weights is None else mpmath.mpf(float(class_weights[label])))

  return _mp_rows(row, z, [labels], axis)


def _ref_ice(z, labels, *, axis=-1, label_smoothing=0.0, z_loss=0.0, class_weights=None, ignore_index=None):
  z = np.asarray(z, np.float64)
  labels = np.asarray(labels)
  c = z.shape[axis]
  logp = _np_log_softmax(z, axis)
  safe = np.clip(labels, 0, c - 1)
  nll = -np.squeeze(np.take_along_axis(logp, np.expand_dims(safe, axis), axis), axis)
  loss = nll
  if label_smoothing:
    loss = (1 - label_smoothing) * nll - label_smoothing * np.mean(logp, axis=axis)
  if z_loss:
    loss = loss + z_loss * _np_lse(z, axis) ** 2
  if class_weights is not None:
    loss = loss * np.asarray(class_weights, np.float64)[safe]
  if ignore_index is not None:
    loss = np.where(labels == ignore_index, 0.0, loss)
  ok = ((labels >= 0) & (labels < c)) | (labels == ignore_index if ignore_index is not None else False)
  return np.where(ok, loss, np.nan)


def _sample_int_labels(key, dtype, shape=(4, 5)):
  kz, ky = jax.random.split(key)
  z = (2.0 * jax.random.normal(kz, shape, jnp.float32)).astype(dtype)
  labels = jax.random.randint(ky, shape[:-1], 0, shape[-1], jnp.int32)
  return z, labels


def _naive_ice(z, labels):
  zy = jnp.take_along_axis(z, labels[..., None], axis=-1)[..., 0]
  return jax.nn.logsumexp(z, axis=-1) - zy


_ICE_ZLOSS_CONFIG = {"label_smoothing": 0.2, "z_loss": 0.1, "class_weights": (1.0, 0.0, 2.0, 1.0, 3.0)}
SOFTMAX_CROSS_ENTROPY_WITH_INTEGER_LABELS = LossSpec(
    name="softmax_cross_entropy_with_integer_labels",
    family="classification",
    fn=softmax_cross_entropy_with_integer_labels,
    arg_names=("logits", "labels"),
    grads={0: _ice_dz},
    hessian=_ice_hessian,
    sample=_sample_int_labels,
    reference=_ref_ice,
    edge_cases=(
        EdgeCase((np.array([[1000.0, 990.0], [1000.0, 990.0]]), np.array([0, 1])), "confident rows (f32)"),
        EdgeCase((np.array([[100.0, 95.0], [100.0, 95.0]]), np.array([0, 1])), "confident rows (bf16)"),
        EdgeCase((np.array([[0.5, _NEG, 2.0, _NEG], [_NEG, -1.0, _NEG, 3.0]]), np.array([2, 1])),
                 "-inf logits on classes other than the label"),
        EdgeCase((np.array([[3.0, 3.0, -2.0], [0.0, 0.0, 0.0]]), np.array([1, 2])), "tied maxima"),
        EdgeCase((np.array([[1.0, 2.0, 3.0], [4.0, -1.0, 0.0], [0.0, 1.0, 0.0]]), np.array([2, -100, 0])),
                 "ignore_index row", {"ignore_index": -100}),
        EdgeCase((np.array([[1.0, 2.0, 3.0], [4.0, -1.0, 0.0]]), np.array([2, 3])), "label out of range",
                 in_domain=False),
        # 1 - p_k below the epsilon of every dtype (the closed-form Hessian's p_k (1 - p_k) cancels if subtracted)
        EdgeCase((_CONFIDENT5, _CONFIDENT5_LABELS), "confident rows"),
        EdgeCase((_CONFIDENT5, _CONFIDENT5_LABELS), "confident rows, smoothing", {"label_smoothing": 0.1}),
        EdgeCase((_CONFIDENT5, _CONFIDENT5_LABELS), "confident rows, z-loss, smoothing, class weights",
                 _ICE_ZLOSS_CONFIG),
        EdgeCase((np.array([[30.0, -30.0, 0.0], [-5.0, 20.0, 1.0]]), np.array([0, 2])),
                 "confident rows, 3 classes (float64 cancels in p_k - 1)"),
    ),
    configs=({}, {"label_smoothing": 0.1}, {"class_weights": (0.5, 1.0, 2.0, 1.5, 0.25)},
             {"ignore_index": 2}, _ICE_ZLOSS_CONFIG),
    rowwise=True,
    formula=r"\operatorname{lse}(z) - (1 - \varepsilon) z_y - \frac{\varepsilon}{C} \sum_j z_j",
    domain="z in [-inf, inf) per class, finite at the label; labels in [0, C) or ignore_index",
    optax_peer=optax_loss("softmax_cross_entropy_with_integer_labels"),
    naive=_naive_ice,
    float_argnums=(0,),
    reference_mp=_mp_ice,
)


# --------------------------------------------------------------------------
# categorical cross-entropy on probabilities
# --------------------------------------------------------------------------
def categorical_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Categorical cross-entropy on probabilities, one value per row.

  .. math::
     \ell(p, y) = -\sum_j y_j \log p_j, \qquad 0 \log 0 = 0.

  The probabilities are used **as given**: unlike Keras'
  ``categorical_crossentropy`` they are neither renormalized to sum to 1 nor
  clipped away from 0 (a zero probability under a positive target gives
  :math:`+\infty`). Probabilities outside [0, 1] or negative labels give NaN
  in that row, and so does a row of ``probs`` or of ``labels`` that does not
  sum to 1 within :func:`jaxloss._base.distribution_tolerance` (:math:`2u +
  n u_c`: :math:`u` the unit roundoff of that argument's own dtype, :math:`u_c`
  of the computation dtype, :math:`n` the number of classes; a correctly
  rounded bfloat16 or float16 softmax row always passes); each raises under
  ``checkify`` inside :func:`jaxloss.runtime_checks`.

  Derivatives (by hand), each 0 where :math:`y_j = p_j = 0`:

  .. math::
     \partial_{p_j} \ell = -\frac{y_j}{p_j}, \qquad
     \partial_{y_j} \ell = -\log p_j.

  Args:
    probs: probabilities, classes along ``axis``.
    labels: floating target distribution, same shape.
    axis: the class axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Cover and Thomas, *Elements of Information Theory*, 2nd ed., 2006, ch. 2.
  """
  dt_p, dt_y = _base._dtype_of(probs), _base._dtype_of(labels)  # pylint: disable=protected-access
  p, dtype, axis, row_shape, mask = _row_prologue("probs", probs, axis, where)
  y = _base.as_distribution_targets("labels", labels, dtype)
  _base.check_same_shape("probs", p, "labels", y)
  p = _base.sanitize(p, mask, fill=0.5, axis=axis)
  y = _base.sanitize(y, mask, axis=axis)
  bad = jnp.any(_base.check_probabilities("probs", p) | _base.check_nonnegative("labels", y), axis=axis)
  for name, x, dt in (("probs", p, dt_p), ("labels", y, dt_y)):
    bad = bad | _base.check_distribution(name, x, axis=axis, input_dtype=dt, mask=mask)
  loss = -jnp.sum(_base.xlogy(y, p), axis=axis)
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _cce_dp(p, y, *, axis=-1):
  del axis
  p, y = _cast_like_logits(p, y)
  return _zero_if((y == 0) & (p == 0), -y / p)


def _cce_dy(p, y, *, axis=-1):
  del axis
  p, y = _cast_like_logits(p, y)
  return _zero_if((y == 0) & (p == 0), -jnp.log(p))


def _ref_cce(p, y, *, axis=-1):
  p = np.asarray(p, np.float64)
  y = np.asarray(y, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    t = np.where(y == 0, 0.0, y * np.log(p))
  out = -np.sum(t, axis=axis)
  ok = np.all((p >= 0) & (p <= 1), axis=axis)
  ok &= (np.abs(np.sum(p, axis=axis) - 1) <= 1e-9) & (np.abs(np.sum(y, axis=axis) - 1) <= 1e-9)  # distributions
  return np.where(ok, out, np.nan)


def _sample_cce(key, dtype, shape=(4, 5)):
  kp, ky = jax.random.split(key)
  # normalized in float64 for float64 (else float32), then rounded: rows that pass the sum-to-1 check
  p = jax.nn.softmax(jax.random.normal(kp, shape, jnp.float32).astype(_label_dtype(dtype)), axis=-1).astype(dtype)
  y = jax.nn.softmax(jax.random.normal(ky, shape, _label_dtype(dtype)), axis=-1)
  return p, y


CATEGORICAL_CROSS_ENTROPY = LossSpec(
    name="categorical_cross_entropy",
    family="classification",
    fn=categorical_cross_entropy,
    arg_names=("probs", "labels"),
    grads={0: _cce_dp, 1: _cce_dy},
    sample=_sample_cce,
    reference=_ref_cce,
    edge_cases=(
        EdgeCase((np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]), np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])),
                 "zero probabilities under zero targets"),
        EdgeCase((np.array([[0.0, 1.0]]), np.array([[0.5, 0.5]])), "zero probability under a positive target: +inf"),
        EdgeCase((np.array([[1.2, -0.2]]), np.array([[1.0, 0.0]])), "probabilities outside [0, 1]",
                 in_domain=False),
        EdgeCase((np.array([[0.5, 0.0, 0.25], [0.3, 0.1, 0.25], [0.2, 0.9, 0.5]]),
                  np.array([[0.2, 0.0, 0.6], [0.7, 0.5, 0.15], [0.1, 0.5, 0.25]])),
                 "distributions along axis 0", config={"axis": 0}),
        EdgeCase((np.array([[0.1132, 0.5477, 0.3391]]), np.array([[0.1541, 0.0511, 0.0947]])),
                 "labels that are not a distribution (sum 0.30)", in_domain=False),
    ),
    configs=({},),  # axis=0: the edge case above (a sample's columns are not distributions)
    rowwise=True,
    formula=r"-\sum_j y_j \log p_j",
    domain="rows of p and y are distributions (sum to 1; not renormalized)",
    naive=lambda p, y: -jnp.sum(y * jnp.log(p), axis=-1),
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# sigmoid focal loss
# --------------------------------------------------------------------------
def sigmoid_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike | None = None,
    gamma: float = 2.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Sigmoid focal loss (Lin et al., 2017), elementwise; same value as optax's.

  With :math:`s = \sigma(z)`, :math:`\bar s = \sigma(-z) = 1 - s`, the binary
  cross-entropy :math:`c = y \operatorname{sp}(-z) + (1 - y)
  \operatorname{sp}(z)`, the probability of the wrong class :math:`q = 1 - p_t =
  (1 - y) s + y \bar s` and :math:`\alpha_t = \alpha y + (1 - \alpha)(1 - y)`
  (1 when ``alpha=None``):

  .. math::
     \ell(z, y) = \alpha_t \, q^\gamma \, c .

  Derivative (by hand), from :math:`c' = s - y`, :math:`q' = (1 - 2y) s \bar s`:

  .. math::
     \partial_z \ell = \alpha_t \Bigl[(s - y)\, q^\gamma
        + \gamma\, c\, (1 - 2y)\, s \bar s\, q^{\gamma - 1}\Bigr].

  Labels may be soft (in [0, 1]). At infinite logits on the wrong side the loss
  is :math:`+\infty` and its gradient NaN (``inf * 0``); on the right side both
  are 0, for every :math:`\gamma \ge 0` (where :math:`q` underflows to 0,
  :math:`q^\gamma` takes its limit, 0 or 1 for :math:`\gamma = 0`, and the
  second term its limit 0).

  Args:
    logits: floating array.
    labels: targets in [0, 1], same shape (outside [0, 1] or NaN: NaN, and
      an error under checkify).
    alpha: optional weight of the positive class in [0, 1] (scalar or
      broadcastable to ``logits``).
    gamma: focusing exponent :math:`\gamma \ge 0`.
    weights, where, reduction: see :mod:`jaxloss._base`.

  References:
    Lin, Goyal, Girshick, He and Dollar, *Focal Loss for Dense Object
    Detection*, ICCV 2017.
  """
  bad_gamma = _base.check_scalar_in("gamma", gamma, 0.0, float("inf"))
  bad_alpha = None if alpha is None else _base.check_scalar_in("alpha", alpha, 0.0, 1.0)
  z, y, mask, dtype = _base.elementwise_inputs("logits", logits, "labels", labels, where)
  z = _base.sanitize(z, mask)
  y = _base.sanitize(y, mask)
  bad_labels = _base.check_probabilities("labels", y)
  ce = _sigmoid_bce_unreduced(z, y, None)
  q = (1 - y) * _sigmoid(z) + y * _sigmoid(-z)
  g = gamma if isinstance(gamma, (int, float)) else jnp.asarray(gamma, dtype)
  # q^gamma with the limit value at q = 0 (sigma(-|z|) underflows for |z| >~ 104 in
  # float32): the double where keeps q^(gamma - 1) = inf out of the derivative for gamma < 1.
  positive = q > 0
  q_safe = jnp.where(positive, q, jnp.ones_like(q))
  at_zero = jnp.where(jnp.asarray(g) > 0, jnp.zeros((), dtype), jnp.ones((), dtype))
  loss = ce * jnp.where(positive, jnp.power(q_safe, g), at_zero)
  if alpha is not None:
    a = _check_broadcast_option("alpha", alpha, z.shape, dtype)
    loss = (a * y + (1 - a) * (1 - y)) * loss
  loss = _base.nan_if(bad_alpha, _base.nan_if(bad_gamma, _base.nan_where(bad_labels, loss)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _focal_dz(z, y, *, alpha=None, gamma=2.0):
  z, y = _cast_like_logits(z, y)
  s, sb = jax.nn.sigmoid(z), jax.nn.sigmoid(-z)
  c = _zero_if(y == 0, y * jnp.logaddexp(0.0, -z)) + _zero_if(y == 1, (1 - y) * jnp.logaddexp(0.0, z))
  q = (1 - y) * s + y * sb
  # At q = 0 (saturated on the right side) the second term's limit is 0: for hard labels
  # s * sb * q^(gamma - 1) = q^gamma * (1 - q) -> 0, even for gamma < 1.
  q_safe = jnp.where(q > 0, q, 1.0)
  second = jnp.where(q > 0, gamma * c * (1 - 2 * y) * s * sb * q_safe ** (gamma - 1), 0.0)
  s_minus_y = (1 - y) * s - y * sb  # = s - y without the cancellation of s - 1 at z >> 0
  d = s_minus_y * q**gamma + second
  if alpha is not None:
    d = (alpha * y + (1 - alpha) * (1 - y)) * d
  return d


def _ref_focal(z, y, *, alpha=None, gamma=2.0):
  z = np.asarray(z, np.float64)
  y = np.asarray(y, np.float64)
  ce = _ref_sbce(z, y)
  with np.errstate(over="ignore"):
    p, p_bar = 1.0 / (1.0 + np.exp(-z)), 1.0 / (1.0 + np.exp(z))
  q = (1 - y) * p + y * p_bar
  out = ce * q**gamma
  if alpha is not None:
    out = (alpha * y + (1 - alpha) * (1 - y)) * out
  return out


def _sample_focal(key, dtype, shape=(4, 5)):
  kz, ky, kb = jax.random.split(key, 3)
  z = (2.0 * jax.random.normal(kz, shape, jnp.float32)).astype(dtype)
  soft = jax.random.uniform(ky, shape, jnp.float32)
  hard = jax.random.bernoulli(kb, 0.5, shape).astype(jnp.float32)
  y = jnp.where(jnp.arange(shape[-1]) % 2 == 0, hard, soft).astype(_label_dtype(dtype))
  return z, y


SIGMOID_FOCAL_LOSS = LossSpec(
    name="sigmoid_focal_loss",
    family="classification",
    fn=sigmoid_focal_loss,
    arg_names=("logits", "labels"),
    grads={0: _focal_dz},
    sample=_sample_focal,
    reference=_ref_focal,
    edge_cases=(
        EdgeCase((np.array([-30.0, -1e4, 30.0, 1e4, np.inf, -np.inf, 0.0]),
                  np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])), "saturated logits, right and wrong side"),
        EdgeCase((np.array([-np.inf, np.inf]), np.array([1.0, 0.0])), "infinite logits on the wrong side",
                 in_domain=False),
        *(EdgeCase((np.array([120.0, -120.0, 1e4, -1e4, np.inf, -np.inf]),
                    np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])),
                   f"confidently right (sigma(-|z|) underflows), gamma={g}", config={"gamma": g})
          for g in (0.0, 0.5, 1.5)),
    ),
    configs=({}, {"alpha": 0.25}, {"gamma": 0.0}, {"alpha": 0.75, "gamma": 1.5}),
    formula=r"\alpha_t (1 - p_t)^\gamma \bigl(-\log p_t\bigr)",
    domain="z real, y in [0, 1]",
    optax_peer=optax_loss("sigmoid_focal_loss"),
    naive=lambda z, y: (-y * jax.nn.log_sigmoid(z) - (1 - y) * jax.nn.log_sigmoid(-z))
    * ((1 - y) * jax.nn.sigmoid(z) + y * jax.nn.sigmoid(-z)) ** 2,
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# hinge losses
# --------------------------------------------------------------------------
def _pm1_labels(s, labels, mask, dtype):
  y = _base.as_targets("labels", labels, dtype)
  _base.check_same_shape("scores", s, "labels", y)
  y = _base.sanitize(y, mask, fill=1.0)
  bad = jnp.abs(y) != 1  # NaN too; one compare, cheaper than (y == 1) | (y == -1) on CPU
  _base.runtime_check(~bad, "labels must be -1 or +1; got {v}.",
                      v=_base.first_flagged(y, bad))
  return y, bad


def hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Binary hinge loss, elementwise, labels in :math:`\{-1, +1\}`.

  .. math::
     \ell(s, y) = \max(0, 1 - y s), \qquad
     \partial_s \ell = -y \,[1 - y s > 0]

  (a subgradient; at the kink :math:`y s = 1` it is 0, as ``jax.nn.relu``).

  Labels must be -1 or +1 (not 0/1): any other value gives NaN in that element
  and raises under ``checkify``.

  Args:
    scores: floating decision values.
    labels: -1 / +1 labels (any numeric dtype), same shape.
    weights, where, reduction: see :mod:`jaxloss._base`.

  References:
    Cortes and Vapnik, *Support-Vector Networks*, Machine Learning 20, 1995.
  """
  s, dtype = _base.as_predictions("scores", scores)
  mask = _base.prepare_where(where, s.shape)
  s = _base.sanitize(s, mask)
  y, bad = _pm1_labels(s, labels, mask, dtype)
  # relu, not maximum(0, .): its subgradient at the kink is 0 (the project's convention, and
  # cheaper on CPU than maximum's tie-averaging JVP).
  loss = _base.nan_where(bad, jax.nn.relu(1 - y * s))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def squared_hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Squared binary hinge loss, elementwise, labels in :math:`\{-1, +1\}`.

  .. math::
     \ell(s, y) = \max(0, 1 - y s)^2, \qquad
     \partial_s \ell = -2 y \max(0, 1 - y s), \qquad
     \partial_s^2 \ell = 2\,[1 - y s > 0].

  Differentiable everywhere (the first derivative is continuous). Labels as in
  :func:`hinge_loss`.

  References:
    Rennie and Srebro, *Loss Functions for Preference Levels*, 2005;
    Fan et al., *LIBLINEAR*, JMLR 9, 2008 (L2-loss SVM).
  """
  s, dtype = _base.as_predictions("scores", scores)
  mask = _base.prepare_where(where, s.shape)
  s = _base.sanitize(s, mask)
  y, bad = _pm1_labels(s, labels, mask, dtype)
  loss = jnp.square(jax.nn.relu(1 - y * s))
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _hinge_ds(s, y):
  s, y = _cast_like_logits(s, y)
  return jnp.where(1 - y * s > 0, -y, jnp.zeros((), s.dtype))


def _sq_hinge_ds(s, y):
  s, y = _cast_like_logits(s, y)
  return -2 * y * jnp.maximum(1 - y * s, 0.0)


def _sq_hinge_hessian(s, y):
  s, y = _cast_like_logits(s, y)
  return _diag_hessian(jnp.where(1 - y * s > 0, 2.0, 0.0).astype(s.dtype))


def _sample_hinge(key, dtype, shape=(4, 5)):
  ky, km, ks = jax.random.split(key, 3)
  y = jnp.where(jax.random.bernoulli(ky, 0.5, shape), 1, -1).astype(jnp.int32)
  # margin 1 - y s kept at least 0.1 away from the kink at 0.
  margin = jax.random.uniform(km, shape, jnp.float32, 0.1, 2.0) * jnp.where(
      jax.random.bernoulli(ks, 0.5, shape), 1.0, -1.0)
  s = (y.astype(jnp.float32) * (1 - margin)).astype(dtype)
  return s, y


def _ref_hinge(s, y):
  s = np.asarray(s, np.float64)
  y = np.asarray(y, np.float64)
  return np.where(np.abs(y) == 1, np.maximum(0.0, 1 - y * s), np.nan)


HINGE_LOSS = LossSpec(
    name="hinge_loss",
    family="classification",
    fn=hinge_loss,
    arg_names=("scores", "labels"),
    grads={0: _hinge_ds},
    sample=_sample_hinge,
    reference=_ref_hinge,
    edge_cases=(
        EdgeCase((np.array([1e4, -1e4, 3.0, -0.5]), np.array([1, 1, -1, -1])), "large scores, both labels"),
        EdgeCase((np.array([0.5, 0.5]), np.array([0, 2])), "labels not in {-1, +1}", in_domain=False),
    ),
    formula=r"\max(0, 1 - y s)",
    domain="s real, y in {-1, +1}",
    optax_peer=optax_loss("hinge_loss"),
    naive=lambda s, y: jnp.maximum(0.0, 1.0 - s * y),
    float_argnums=(0,),
)

SQUARED_HINGE_LOSS = LossSpec(
    name="squared_hinge_loss",
    family="classification",
    fn=squared_hinge_loss,
    arg_names=("scores", "labels"),
    grads={0: _sq_hinge_ds},
    hessian=_sq_hinge_hessian,
    sample=_sample_hinge,
    reference=lambda s, y: _ref_hinge(s, y) ** 2,
    edge_cases=(
        EdgeCase((np.array([1e4, -1e4, 3.0, -0.5]), np.array([1, 1, -1, -1])), "large scores, both labels"),
        EdgeCase((np.array([0.5]), np.array([0])), "label not in {-1, +1}", in_domain=False),
    ),
    formula=r"\max(0, 1 - y s)^2",
    domain="s real, y in {-1, +1}",
    naive=lambda s, y: jnp.maximum(0.0, 1.0 - s * y) ** 2,
    float_argnums=(0,),
)


def multiclass_hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Multiclass (Crammer-Singer) hinge loss with integer labels, one value per row.

  .. math::
     \ell(s, y) = \max_k \bigl(s_k + [k \ne y]\bigr) - s_y,
     \qquad
     \partial_{s_j} \ell = [j = k^\star] - [j = y],
     \quad k^\star = \arg\max_k \bigl(s_k + [k \ne y]\bigr)

  (a subgradient. At ties the closed form takes the first maximizer
  :math:`k^\star`, while autodiff through JAX's ``max`` splits the derivative
  evenly among the maximizers: both are valid subgradients). Same
  value as ``optax.losses.multiclass_hinge_loss``. Labels outside
  :math:`[0, C)` give NaN in that row and raise under ``checkify``. Inside a
  jitted training step on CPU its temporaries match optax's up to one byte per
  row (the labels' in-range flag for that NaN rule, e.g. 2 KiB over 128 MiB
  at 2048 x 8192 scores).

  Args:
    scores: floating array, classes along ``axis``.
    labels: integer array of shape ``scores.shape`` without ``axis``.
    axis: the class axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Crammer and Singer, *On the Algorithmic Implementation of Multiclass
    Kernel-based Vector Machines*, JMLR 2, 2001.
  """
  s, dtype, axis, row_shape, mask = _row_prologue("scores", scores, axis, where)
  labels = _base.as_integer_labels("labels", labels)
  if tuple(labels.shape) != row_shape:
    raise ValueError(
        f"labels must have the scores' shape without axis {axis}, i.e. {row_shape}; got "
        f"labels.shape={tuple(labels.shape)} for scores.shape={tuple(s.shape)}.")
  c = s.shape[axis]
  in_range = (labels >= 0) & (labels < c)
  bad = ~in_range if mask is None else mask & ~in_range
  _base.runtime_check(~bad, f"labels must be class indices in [0, {c}); got {{v}}.",
                      v=_base.first_flagged(labels, bad))
  safe = jnp.where(in_range, labels, jnp.zeros((), labels.dtype))
  s = _base.sanitize(s, mask, axis=axis)
  onehot = lax.broadcasted_iota(safe.dtype, s.shape, axis) == jnp.expand_dims(safe, axis)
  margin = jnp.where(onehot, s, s + 1)
  # s_y as a masked row sum (exact: the other terms are 0), not take_along_axis:
  # the gather's derivative is a scatter, which costs a jitted training step
  # one more scores-sized buffer on XLA:CPU; the where fuses.
  sy = jnp.sum(jnp.where(onehot, s, jnp.zeros((), s.dtype)), axis=axis)
  loss = jnp.max(margin, axis=axis) - sy
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _mc_hinge_ds(s, labels, *, axis=-1):
  (s,) = _cast_like_logits(s)
  c = s.shape[axis]
  onehot = jax.nn.one_hot(labels, c, dtype=s.dtype, axis=axis)
  k = jnp.argmax(s + 1 - onehot, axis=axis)
  return jax.nn.one_hot(k, c, dtype=s.dtype, axis=axis) - onehot


def _ref_mc_hinge(s, labels, *, axis=-1):
  s = np.moveaxis(np.asarray(s, np.float64), axis, -1)
  labels = np.asarray(labels)
  c = s.shape[-1]
  out = np.full(labels.shape, np.nan)
  for idx in np.ndindex(labels.shape):
    yy = labels[idx]
    if 0 <= yy < c:
      row = s[idx]
      out[idx] = max(row[k] + (k != yy) for k in range(c)) - row[yy]
  return out


def _sample_mc_hinge(key, dtype, shape=(4, 5)):
  kp, ky, kn = jax.random.split(key, 3)
  # Scores on a 0.7-spaced grid (+ small noise): s_y - s_k is never within 0.25
  # of 1 and the s_k + 1 are distinct, so the max is away from every kink.
  c = shape[-1]
  ranks = jnp.argsort(jax.random.uniform(kp, shape, jnp.float32), axis=-1).astype(jnp.float32)
  s = 0.7 * (ranks - c / 2) + jax.random.uniform(kn, shape, jnp.float32, -0.05, 0.05)
  labels = jax.random.randint(ky, shape[:-1], 0, c, jnp.int32)
  return s.astype(dtype), labels


MULTICLASS_HINGE_LOSS = LossSpec(
    name="multiclass_hinge_loss",
    family="classification",
    fn=multiclass_hinge_loss,
    arg_names=("scores", "labels"),
    grads={0: _mc_hinge_ds},
    sample=_sample_mc_hinge,
    reference=_ref_mc_hinge,
    edge_cases=(
        EdgeCase((np.array([[5.0, 1.0, 0.0], [0.0, 2.5, -1.0], [1e4, 0.0, -1e4]]), np.array([0, 0, 2])),
                 "zero loss, violated margin, huge scores"),
        EdgeCase((np.array([[0.0, 1.0]]), np.array([2])), "label out of range", in_domain=False),
    ),
    rowwise=True,
    formula=r"\max_k (s_k + [k \ne y]) - s_y",
    domain="s real, labels in [0, C)",
    optax_peer=optax_loss("multiclass_hinge_loss"),
    naive=lambda s, y: jnp.max(s + 1 - jax.nn.one_hot(y, s.shape[-1], dtype=s.dtype), axis=-1)
    - jnp.take_along_axis(s, y[..., None], axis=-1)[..., 0],
    float_argnums=(0,),
)


SPECS = (
    SIGMOID_BINARY_CROSS_ENTROPY,
    BINARY_CROSS_ENTROPY,
    SOFTMAX_CROSS_ENTROPY,
    SOFTMAX_CROSS_ENTROPY_WITH_INTEGER_LABELS,
    CATEGORICAL_CROSS_ENTROPY,
    SIGMOID_FOCAL_LOSS,
    HINGE_LOSS,
    SQUARED_HINGE_LOSS,
    MULTICLASS_HINGE_LOSS,
)
