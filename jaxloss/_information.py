"""Information-theoretic losses: entropies, cross-entropy, divergences, and the continuous Bernoulli.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
errors) are documented once in :mod:`jaxloss._base`.

**0 log 0 = 0.** Every :math:`x \\log x` and :math:`x \\log y` term uses
:func:`jaxloss._base.xlogx` / :func:`jaxloss._base.xlogy`: at :math:`x = 0`
(and :math:`y = 0` for ``xlogy``) the term is 0 *and its derivatives are
taken as 0*, so a zero target contributes neither a value nor a NaN to the
gradient. The closed-form derivatives below state this convention explicitly
with indicator functions :math:`\\mathbf 1[\\cdot]`; away from those boundary
points they are the ordinary derivatives.

**Validity.** Probabilities must lie in :math:`[0, 1]` and log-probabilities
must be :math:`\\le 0`; offending elements make their loss element (or row) NaN
and raise under ``checkify.checkify(f, errors=checkify.user_checks)`` (inside
:func:`jaxloss.runtime_checks`). Rows of a distribution argument must also be
distributions: a row of probabilities must sum to 1 and a row of
log-probabilities must have :math:`\\sum_i e^{\\ell_i} = 1`, within
:func:`jaxloss._base.distribution_tolerance` (:math:`2u + n u_c` for
probabilities, :math:`\\operatorname{expm1}(2u(1 + \\log n)) + n u_c` for
log-probabilities, with :math:`u` the unit roundoff of the argument's own dtype
(as passed, before the cast to float32), :math:`u_c` that of the computation
dtype and :math:`n` the row length: a correctly rounded bfloat16 or float16
softmax / log-softmax row always passes; a float32 row of 10 probabilities
must be within 7.2e-7 of 1). Any other row is NaN (the formulas would return a
plausible but meaningless number, e.g. a negative KL). Rows are never
renormalized. For unnormalized measures use :func:`generalized_kl_divergence`.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxloss import _base
from jaxloss._spec import EdgeCase, LossSpec, optax_loss

__all__ = [
    "entropy",
    "binary_entropy",
    "cross_entropy",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "generalized_kl_divergence",
    "js_divergence",
    "binary_kl_divergence",
    "continuous_bernoulli_nll",
]


# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------
def _rowwise_setup(x, axis, where):
  """Normalizes ``axis`` and prepares ``where`` for a loss over ``axis`` of ``x``."""
  ax = _base.normalize_axis(axis, x.ndim)
  loss_shape = x.shape[:ax] + x.shape[ax + 1:]
  return ax, _base.prepare_where(where, loss_shape)


def _rowwise_pair_inputs(name_p, predictions, name_t, targets, axis, where):
  """The shared prologue of the two-argument losses over ``axis``: cast (targets straight to the
  predictions' computation dtype), same-shape check, ``axis``/``where`` preparation, sanitizing.

  Returns ``(predictions, targets, axis, mask, input_dtypes)``, the last the two arguments' dtypes as
  passed (for the tolerance of :func:`_rows_not_distributions`).
  """
  dtypes = (_base._dtype_of(predictions), _base._dtype_of(targets))  # pylint: disable=protected-access
  x, dtype = _base.as_predictions(name_p, predictions)
  t = _base.as_distribution_targets(name_t, targets, dtype)
  _base.check_same_shape(name_p, x, name_t, t)
  ax, mask = _rowwise_setup(x, axis, where)
  return _base.sanitize(x, mask, axis=ax), _base.sanitize(t, mask, axis=ax), ax, mask, dtypes


def _rows_not_distributions(ax, mask, *named):
  """Row flags: any of ``named = (name, x, input_dtype, log_space), ...`` is not a distribution along ``ax``.

  See :func:`jaxloss._base.check_distribution` (the tolerance and the opt-in error naming the argument).
  """
  bad = None
  for name, x, input_dtype, log_space in named:
    b = _base.check_distribution(name, x, axis=ax, input_dtype=input_dtype, mask=mask, log_space=log_space)
    bad = b if bad is None else bad | b
  return bad


def _check_log_probabilities(name, logp):
  """Flags log-probabilities that are > 0 or NaN (NaN + checkify, as in _base)."""
  bad = ~(logp <= 0)
  _base.runtime_check(~bad, f"{name} must be log-probabilities (<= 0); got max {{hi}}.", hi=_base.value_max(logp))
  return bad


def _row_loss(terms, bad, ax):
  return jnp.sum(_base.nan_where(bad, terms), axis=ax)


def _f64(*xs):
  return tuple(np.asarray(x, np.float64) for x in xs)


def _rows_of(key, dtype, shape, log=False):
  """A table of (log-)distributions along the last axis, normalized in float64 when ``dtype`` is float64
  (else in float32) and then rounded to ``dtype``: correctly rounded rows, which pass the distribution check."""
  wide = jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32
  x = jax.random.normal(key, shape, jnp.float32).astype(wide)
  return (jax.nn.log_softmax(x, axis=-1) if log else jax.nn.softmax(x, axis=-1)).astype(dtype)


def _sample_rows(key, dtype, shape=(4, 5)):
  """Two probability tables, rows along the last axis."""
  k1, k2 = jax.random.split(key)
  return _rows_of(k1, dtype, shape), _rows_of(k2, dtype, shape)


def _sample_log_rows(key, dtype, shape=(4, 5)):
  k1, k2 = jax.random.split(key)
  return _rows_of(k1, dtype, shape, log=True), _rows_of(k2, dtype, shape, log=True)


def _sample_log_pred_and_probs(key, dtype, shape=(4, 5)):
  k1, k2 = jax.random.split(key)
  return _rows_of(k1, dtype, shape, log=True), _rows_of(k2, dtype, shape)


# Columns that are distributions (for the axis=0 edge cases of the row-wise losses).
_COLS_P = np.array([[0.5, 0.0, 0.25], [0.3, 0.1, 0.25], [0.2, 0.9, 0.5]])
_COLS_T = np.array([[0.2, 0.0, 0.6], [0.7, 0.5, 0.15], [0.1, 0.5, 0.25]])
with np.errstate(divide="ignore"):
  _LOG_COLS_P, _LOG_COLS_T = np.log(_COLS_P), np.log(_COLS_T)


def _sample_binary(key, dtype, shape=(4, 3)):
  k1, k2 = jax.random.split(key)
  p = jax.random.uniform(k1, shape, jnp.float32, 0.05, 0.95).astype(dtype)
  y = jax.random.uniform(k2, shape, jnp.float32, 0.0, 1.0).astype(dtype)
  return p, y


_xlog1my = _base.xlog1my  # (1 - x) log1p(-y), 0 at x = y = 1


def _dxlogx(x):
  """d/dx xlogx(x) with the package convention (0 at x = 0)."""
  return jnp.where(x == 0, jnp.zeros_like(x), jnp.log(x) + 1.0)


def _both_zero(x, y):
  return (x == 0) & (y == 0)


def _nan_unless_distributions(out, axis, *rows):
  """Reference-side domain: NaN where a row of ``rows`` (float64 probabilities) does not sum to 1 (1e-9)."""
  ok = np.ones(np.shape(out), bool)
  for r in rows:
    ok &= np.abs(np.sum(r, axis=axis) - 1.0) <= 1e-9
  return np.where(ok, out, np.nan)


def _scipy_special():
  import scipy.special  # pylint: disable=g-import-not-at-top

  return scipy.special


# --------------------------------------------------------------------------
# entropy
# --------------------------------------------------------------------------
def entropy(
    probs: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Shannon entropy (nats) of each row, :math:`H(p) = -\sum_i p_i \log p_i`.

  Derivative (by hand): :math:`\partial H / \partial p_i = -(1 + \log p_i)`
  for :math:`p_i > 0`, and 0 at :math:`p_i = 0` (the 0 log 0 convention of this
  module; the one-sided derivative there is :math:`+\infty`).

  Args:
    probs: floating array of probabilities in ``[0, 1]``, rows along ``axis``.
    axis: the axis holding the distribution.
      Each row must be a distribution (log-probabilities: ``exp`` of the row sums
      to 1) within the tolerance stated in :mod:`jaxloss._information`; any
      other row is NaN (opt-in error naming the argument).
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Shannon, `A Mathematical Theory of Communication
    <https://doi.org/10.1002/j.1538-7305.1948.tb01338.x>`_, 1948.
  """
  input_dtype = _base._dtype_of(probs)  # pylint: disable=protected-access
  p, _ = _base.as_predictions("probs", probs)
  ax, mask = _rowwise_setup(p, axis, where)
  p = _base.sanitize(p, mask, axis=ax)
  bad = _base.check_probabilities("probs", p)
  loss = jnp.sum(_neg_xlogx_or_nan(p, bad), axis=ax)
  loss = _base.nan_if(_rows_not_distributions(ax, mask, ("probs", p, input_dtype, False)), loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


@jax.custom_jvp
def _neg_xlogx_or_nan(p, bad):
  """``-p log p`` (0 at ``p = 0``), NaN where ``bad``; derivative ``-_dxlogx(p)``, NaN where ``bad``."""
  # A custom JVP for the memory of a jitted training step on XLA:CPU, which
  # materializes every select feeding a reduction or the softmax backward's
  # fusion: the value and the derivative are one fused loop each, and the
  # cotangent carries no select of the NaN flag (autodiff through xlogx and
  # nan_where gave 473 MiB of temporaries against the naive -sum(p log p)'s
  # 346; this gives 294).
  return jnp.where(bad, jnp.asarray(jnp.nan, p.dtype), -_base.xlogx(p))


@_neg_xlogx_or_nan.defjvp
def _neg_xlogx_or_nan_jvp(primals, tangents):
  (p, bad), (dp, _) = primals, tangents
  slope = jnp.where(bad, jnp.asarray(jnp.nan, p.dtype), -_dxlogx(p))
  return _neg_xlogx_or_nan(p, bad), slope * dp


def _entropy_dp(p, axis=-1):
  del axis
  return -_dxlogx(p)


def _entropy_reference(p, axis=-1):
  (p,) = _f64(p)
  return _nan_unless_distributions(np.sum(_scipy_special().entr(p), axis=axis), axis, p)


ENTROPY = LossSpec(
    name="entropy",
    family="information",
    fn=entropy,
    arg_names=("probs",),
    grads={0: _entropy_dp},
    sample=lambda key, dtype: _sample_rows(key, dtype)[:1],
    reference=_entropy_reference,
    edge_cases=(
        EdgeCase((np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]),),
                 "one-hot, zeros in the row, uniform"),
        EdgeCase((_COLS_P,), "distributions along axis 0, a zero", config={"axis": 0}),
        EdgeCase((np.array([[0.5, 0.25, 0.0], [0.5, 0.5, 0.5]]),), "rows summing to 0.75 and 1.5", in_domain=False),
    ),
    configs=({},),  # axis=0: the edge cases above (a sample's columns are not distributions)
    rowwise=True,
    formula=r"-\sum_i p_i \log p_i",
    domain="p in [0, 1]",
    naive=lambda p, axis=-1: -jnp.sum(p * jnp.log(p), axis=axis),
)


# --------------------------------------------------------------------------
# binary entropy
# --------------------------------------------------------------------------
def binary_entropy(
    probs: jax.typing.ArrayLike,
    *,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Binary entropy (nats), elementwise :math:`H_b(p) = -p\log p - (1-p)\log(1-p)`.

  Derivative (by hand), in the interior :math:`0 < p < 1`:

  .. math::
     H_b'(p) = -(1 + \log p) + (1 + \log(1 - p)) = \log\frac{1 - p}{p};

  with the 0 log 0 convention each term's derivative is 0 at its own zero, so
  :math:`H_b'(0) = 1` and :math:`H_b'(1) = -1` (the true one-sided limits are
  :math:`\pm\infty`). Example: :math:`H_b(0.8) = 0.5004024235` nats, the
  minimum of BCE against the soft label 0.8.

  Args:
    probs: floating array of probabilities in ``[0, 1]``.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Cover and Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.1.
  """
  p, _ = _base.as_predictions("probs", probs)
  mask = _base.prepare_where(where, p.shape)
  p = _base.sanitize(p, mask)
  bad = _base.check_probabilities("probs", p)
  loss = _base.nan_where(bad, -_base.xlogx(p) - _xlog1my(p, p))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _binary_entropy_dp(p):
  # -(1 + log p) + (1 + log(1 - p)), each term 0 at its own zero
  return -_dxlogx(p) + jnp.where(p == 1, jnp.zeros_like(p), jnp.log1p(-p) + 1.0)


def _binary_entropy_reference(p):
  (p,) = _f64(p)
  with np.errstate(invalid="ignore"):  # -(1 - p) log1p(-p): the rounded 1 - p is not used (issue 13)
    rest = np.where(p == 1, 0.0, -(1.0 - p) * np.log1p(-np.where(p == 1, 0.0, p)))
  return _scipy_special().entr(p) + rest


BINARY_ENTROPY = LossSpec(
    name="binary_entropy",
    family="information",
    fn=binary_entropy,
    arg_names=("probs",),
    grads={0: _binary_entropy_dp},
    sample=lambda key, dtype: _sample_binary(key, dtype)[:1],
    reference=_binary_entropy_reference,
    edge_cases=(EdgeCase((np.array([0.0, 1.0, 0.5, 0.8, 1e-6]),), "endpoints, maximum, the 0.8 seed fact"),),
    formula=r"-p\log p - (1 - p)\log(1 - p)",
    domain="p in [0, 1]",
    naive=lambda p: -p * jnp.log(p) - (1.0 - p) * jnp.log(1.0 - p),
)


# --------------------------------------------------------------------------
# cross-entropy on probabilities
# --------------------------------------------------------------------------
def cross_entropy(
    probs: jax.typing.ArrayLike,
    target_probs: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Cross-entropy of each row between distributions, :math:`H(t, p) = -\sum_i t_i \log p_i`.

  ``probs`` is the model's distribution :math:`p` (probabilities, not logits;
  for logits use :func:`jaxloss.softmax_cross_entropy`), ``target_probs`` the
  target distribution :math:`t`.

  Derivatives (by hand):

  .. math::
     \frac{\partial H}{\partial p_i} = -\frac{t_i}{p_i}, \qquad
     \frac{\partial H}{\partial t_i} = -\log p_i,

  both taken as 0 where :math:`t_i = p_i = 0` (0 log 0 convention). Where
  :math:`t_i > 0 = p_i` the loss is :math:`+\infty` (no hidden clipping).

  Args:
    probs: floating array of probabilities in ``[0, 1]``, rows along ``axis``.
    target_probs: floating array of the same shape, in ``[0, 1]``.
    axis: the axis holding the distributions.
      Each row must be a distribution (log-probabilities: ``exp`` of the row sums
      to 1) within the tolerance stated in :mod:`jaxloss._information`; any
      other row is NaN (opt-in error naming the argument).
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Cover and Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.3.
  """
  p, t, ax, mask, dts = _rowwise_pair_inputs("probs", probs, "target_probs", target_probs, axis, where)
  bad = _base.check_probabilities("probs", p) | _base.check_probabilities("target_probs", t)
  loss = _row_loss(-_base.xlogy(t, p), bad, ax)
  loss = _base.nan_if(
      _rows_not_distributions(ax, mask, ("probs", p, dts[0], False), ("target_probs", t, dts[1], False)), loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _cross_entropy_dp(p, t, axis=-1):
  del axis
  return jnp.where(_both_zero(t, p), jnp.zeros_like(p), -t / p)


def _cross_entropy_dt(p, t, axis=-1):
  del axis
  return jnp.where(_both_zero(t, p), jnp.zeros_like(p), -jnp.log(p))


def _cross_entropy_reference(p, t, axis=-1):
  p, t = _f64(p, t)
  return _nan_unless_distributions(-np.sum(_scipy_special().xlogy(t, p), axis=axis), axis, p, t)


CROSS_ENTROPY = LossSpec(
    name="cross_entropy",
    family="information",
    fn=cross_entropy,
    arg_names=("probs", "target_probs"),
    grads={0: _cross_entropy_dp, 1: _cross_entropy_dt},
    sample=_sample_rows,
    reference=_cross_entropy_reference,
    edge_cases=(
        EdgeCase((np.array([[0.7, 0.3, 0.0], [0.2, 0.0, 0.8]]), np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]])),
                 "zero targets on zero probabilities (0 log 0)"),
        EdgeCase((_COLS_P, _COLS_T), "distributions along axis 0, 0 log 0", config={"axis": 0}),
        EdgeCase((np.array([[0.2, 0.3, 0.5], [0.2, 0.2, 0.2]]), np.array([[0.5, 0.0, 0.0], [0.2, 0.3, 0.5]])),
                 "a row of either argument not summing to 1", in_domain=False),
    ),
    configs=({},),  # axis=0: the edge cases above (a sample's columns are not distributions)
    rowwise=True,
    formula=r"-\sum_i t_i \log p_i",
    domain="p, t in [0, 1]",
    float_argnums=(0, 1),
    naive=lambda p, t, axis=-1: -jnp.sum(t * jnp.log(p), axis=axis),
)


# --------------------------------------------------------------------------
# KL divergence (optax semantics)
# --------------------------------------------------------------------------
def kl_divergence(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""KL divergence of each row, :math:`\mathrm{KL}(t \,\|\, p) = \sum_i t_i (\log t_i - \log p_i)`.

  Same semantics as ``optax.losses.kl_divergence``: the model's distribution
  enters as log-probabilities :math:`\ell_i = \log p_i` (e.g. from
  ``jax.nn.log_softmax``), the targets as probabilities :math:`t_i`.

  Derivatives (by hand):

  .. math::
     \frac{\partial\,\mathrm{KL}}{\partial \ell_i} = -t_i, \qquad
     \frac{\partial\,\mathrm{KL}}{\partial t_i}
       = \mathbf 1[t_i > 0]\,(1 + \log t_i) - \ell_i,

  where the :math:`-\ell_i` term is taken as 0 when :math:`t_i = 0` and
  :math:`\ell_i = -\infty` (0 log 0 convention). A zero target contributes 0
  to the value even where :math:`\ell_i = -\infty` (optax gives NaN there).
  Unlike optax, a row that is not a distribution is NaN (optax returns a
  number, e.g. -0.194 for targets summing to 0.30); for unnormalized measures
  use :func:`generalized_kl_divergence`.

  Args:
    log_predictions: floating array of log-probabilities (``<= 0``).
    targets: floating array of the same shape, probabilities in ``[0, 1]``.
    axis: the axis holding the distributions.
      Each row must be a distribution (log-probabilities: ``exp`` of the row sums
      to 1) within the tolerance stated in :mod:`jaxloss._information`; any
      other row is NaN (opt-in error naming the argument).
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Kullback and Leibler, `On Information and Sufficiency
    <https://doi.org/10.1214/aoms/1177729694>`_, Ann. Math. Statist., 1951.
  """
  lp, t, ax, mask, dts = _rowwise_pair_inputs("log_predictions", log_predictions, "targets", targets, axis, where)
  _check_log_probabilities("log_predictions", lp)
  _base.check_probabilities("targets", t)
  loss = _kl(lp, t, ax)
  loss = _base.nan_if(
      _rows_not_distributions(ax, mask, ("log_predictions", lp, dts[0], True), ("targets", t, dts[1], False)), loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _with_closed_form_prediction_slope(rows, target_weight):
  r"""``rows(l, target, axis)`` as a ``jax.custom_jvp`` whose prediction derivative is the closed form.

  Both KL forms are linear in the log-predictions :math:`l`:
  :math:`\partial \mathrm{KL} / \partial l_i = -w_i` with ``w = target_weight(target)``
  (``t`` or ``e^s``). That term is one product with no select, so the backward
  pass of ``grad`` with respect to the predictions reads only the targets. The
  target derivative is autodiff of ``rows`` (its zero-target selects included).
  Symbolic-zero tangents skip their term. The rule's value is the custom-JVP
  function itself, so differentiating the rule (Hessians) differentiates the
  value through this rule again.
  """
  @functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
  def kl(lp, target, axis):
    return rows(lp, target, axis)

  def kl_jvp(axis, primals, tangents):
    (lp, target), (dlp, dtarget) = primals, tangents
    out = kl(lp, target, axis)
    tangent = jnp.zeros_like(out)
    if not isinstance(dlp, SymbolicZero):
      tangent = tangent - jnp.sum(target_weight(target) * dlp, axis=axis)
    if not isinstance(dtarget, SymbolicZero):
      tangent = tangent + jax.jvp(lambda x: rows(lp, x, axis), (target,), (dtarget,))[1]
    return out, tangent

  kl.defjvp(kl_jvp, symbolic_zeros=True)
  return kl


def _kl_rows(lp, t, axis):
  """``sum_i t_i log t_i - t_i l_i`` with ``0 log 0 = 0`` and ``0 * (-inf) = 0``; invalid entries NaN."""
  bad = ~(lp <= 0) | ~((t >= 0) & (t <= 1))
  safe_lp = jnp.where((t == 0) & (lp == -jnp.inf), jnp.zeros_like(lp), lp)
  return _row_loss(_base.xlogx(t) - t * safe_lp, bad, axis)


# d KL / d l_i = -t_i in closed form (the target derivative, 1 + log t_i - l_i, by autodiff of the rows)
_kl = _with_closed_form_prediction_slope(_kl_rows, lambda t: t)


def _kl_dlp(lp, t, axis=-1):
  del axis, lp
  return -t


def _kl_dt(lp, t, axis=-1):
  del axis
  return _dxlogx(t) - jnp.where((t == 0) & (lp == -jnp.inf), jnp.zeros_like(lp), lp)


def _kl_reference(lp, t, axis=-1):
  lp, t = _f64(lp, t)
  return _nan_unless_distributions(np.sum(_scipy_special().rel_entr(t, np.exp(lp)), axis=axis), axis, np.exp(lp), t)


KL_DIVERGENCE = LossSpec(
    name="kl_divergence",
    family="information",
    fn=kl_divergence,
    arg_names=("log_predictions", "targets"),
    grads={0: _kl_dlp, 1: _kl_dt},
    sample=_sample_log_pred_and_probs,
    reference=_kl_reference,
    edge_cases=(
        EdgeCase((np.array([[-np.inf, np.log(0.25), np.log(0.75)], [np.log(0.5), np.log(0.25), np.log(0.25)]]),
                  np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])),
                 "zero targets, with -inf log-predictions on them"),
        EdgeCase((_LOG_COLS_P, _COLS_T), "distributions along axis 0, a zero target on -inf", config={"axis": 0}),
        EdgeCase((np.log(np.array([[0.1132, 0.5477, 0.3390]])), np.array([[0.1541, 0.0511, 0.0947]])),
                 "targets summing to 0.30 (issue 13: was -0.194)", in_domain=False),
    ),
    configs=({},),  # axis=0: the edge cases above (a sample's columns are not distributions)
    rowwise=True,
    formula=r"\sum_i t_i (\log t_i - \log p_i)",
    domain="log p <= 0; t in [0, 1]",
    float_argnums=(0, 1),
    optax_peer=optax_loss("kl_divergence"),
    naive=lambda lp, t, axis=-1: jnp.sum(t * (jnp.log(t) - lp), axis=axis),
)


# --------------------------------------------------------------------------
# KL divergence with log targets
# --------------------------------------------------------------------------
def kl_divergence_with_log_targets(
    log_predictions: jax.typing.ArrayLike,
    log_targets: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""KL divergence of each row with both distributions in log space.

  With :math:`\ell_i = \log p_i` and :math:`s_i = \log t_i`:

  .. math::
     \mathrm{KL}(t \,\|\, p) = \sum_i e^{s_i} (s_i - \ell_i).

  Derivatives (by hand):

  .. math::
     \frac{\partial\,\mathrm{KL}}{\partial \ell_i} = -e^{s_i}, \qquad
     \frac{\partial\,\mathrm{KL}}{\partial s_i} = e^{s_i}(1 + s_i - \ell_i).

  A target with :math:`s_i = -\infty` (probability 0) contributes 0 to the
  value and its derivative is 0 (the limit of :math:`e^s(1 + s - \ell)`),
  even where :math:`\ell_i = -\infty` too (optax gives NaN there).
  Unlike optax, a row whose ``exp`` does not sum to 1 is NaN (see the module
  docstring for the tolerance).

  Args:
    log_predictions: floating array of log-probabilities (``<= 0``).
    log_targets: floating array of the same shape, log-probabilities.
    axis: the axis holding the distributions.
      Each row must be a distribution (log-probabilities: ``exp`` of the row sums
      to 1) within the tolerance stated in :mod:`jaxloss._information`; any
      other row is NaN (opt-in error naming the argument).
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Kullback and Leibler, `On Information and Sufficiency
    <https://doi.org/10.1214/aoms/1177729694>`_, Ann. Math. Statist., 1951.
  """
  lp, lt, ax, mask, dts = _rowwise_pair_inputs("log_predictions", log_predictions, "log_targets", log_targets, axis,
                                               where)
  # The checkify checks name each argument; the NaN flags are computed in the value pass.
  _check_log_probabilities("log_predictions", lp)
  _check_log_probabilities("log_targets", lt)
  loss = _kl_log(lp, lt, ax)
  loss = _base.nan_if(
      _rows_not_distributions(ax, mask, ("log_predictions", lp, dts[0], True), ("log_targets", lt, dts[1], True)),
      loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _kl_log_rows(lp, lt, axis):
  """``sum_i e^{s_i} (s_i - l_i)``; a zero target (``s_i = -inf``) adds 0, even where ``l_i = -inf``;
  an entry > 0 or NaN in either argument makes its term NaN (``jnp.maximum`` propagates NaN)."""
  bad = ~(jnp.maximum(lp, lt) <= 0)
  diff = jnp.where(lt == -jnp.inf, jnp.zeros_like(lt), lt - lp)
  return jnp.sum(_base.nan_where(bad, jnp.exp(lt) * diff), axis=axis)


# d KL / d l_i = -e^{s_i} in closed form (the target derivative, e^{s_i} (1 + s_i - l_i), by autodiff)
_kl_log = _with_closed_form_prediction_slope(_kl_log_rows, jnp.exp)


def _kl_log_dlp(lp, lt, axis=-1):
  del axis, lp
  return -jnp.exp(lt)


def _kl_log_dlt(lp, lt, axis=-1):
  del axis
  return jnp.where(lt == -jnp.inf, jnp.zeros_like(lt), jnp.exp(lt) * (1.0 + lt - lp))


def _kl_log_reference(lp, lt, axis=-1):
  lp, lt = _f64(lp, lt)
  p, t = np.exp(lp), np.exp(lt)
  return _nan_unless_distributions(np.sum(_scipy_special().rel_entr(t, p), axis=axis), axis, p, t)


KL_DIVERGENCE_WITH_LOG_TARGETS = LossSpec(
    name="kl_divergence_with_log_targets",
    family="information",
    fn=kl_divergence_with_log_targets,
    arg_names=("log_predictions", "log_targets"),
    grads={0: _kl_log_dlp, 1: _kl_log_dlt},
    sample=_sample_log_rows,
    reference=_kl_log_reference,
    edge_cases=(
        EdgeCase((np.array([[-np.inf, np.log(0.25), np.log(0.75)], [np.log(0.5), np.log(0.25), np.log(0.25)]]),
                  np.array([[-np.inf, np.log(0.5), np.log(0.5)], [-np.inf, -np.inf, 0.0]])),
                 "zero targets (-inf log targets), also on -inf log-predictions"),
        EdgeCase((_LOG_COLS_P, _LOG_COLS_T), "distributions along axis 0, -inf on -inf", config={"axis": 0}),
        EdgeCase((np.log(np.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.5]])), np.log(np.array([[0.1, 0.1, 0.1], [0.2, 0.3, 0.5]]))),
                 "log targets / log-predictions whose exp does not sum to 1", in_domain=False),
    ),
    configs=({},),  # axis=0: the edge cases above (a sample's columns are not distributions)
    rowwise=True,
    formula=r"\sum_i e^{s_i} (s_i - \ell_i)",
    domain="log p <= 0; log t <= 0",
    float_argnums=(0, 1),
    optax_peer=optax_loss("kl_divergence_with_log_targets"),
    naive=lambda lp, lt, axis=-1: jnp.sum(jnp.exp(lt) * (lt - lp), axis=axis),
)


# --------------------------------------------------------------------------
# generalized KL divergence (unnormalized measures; optax semantics)
# --------------------------------------------------------------------------
def generalized_kl_divergence(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Generalized KL divergence of each row, for unnormalized non-negative measures.

  Same semantics as ``optax.losses.generalized_kl_divergence``: with
  :math:`\ell_i = \log p_i` (any real; the row need not sum to 1) and
  targets :math:`t_i \ge 0` (any total mass),

  .. math::
     D(t \,\|\, p) = \sum_i \bigl[t_i (\log t_i - \ell_i) - t_i + e^{\ell_i}\bigr],

  the Bregman divergence of :math:`f(x) = x \log x - x`: each term is
  :math:`\ge 0` and 0 iff :math:`t_i = p_i`; on distributions it equals
  :func:`kl_divergence` (the extra terms sum to 0). Use it where the rows are
  not distributions (:func:`kl_divergence` makes such rows NaN).

  Derivatives (by hand):

  .. math::
     \frac{\partial D}{\partial \ell_i} = e^{\ell_i} - t_i, \qquad
     \frac{\partial D}{\partial t_i} = \mathbf 1[t_i > 0]\,(1 + \log t_i) - \ell_i - 1,

  where the :math:`-\ell_i` term is taken as 0 when :math:`t_i = 0` and
  :math:`\ell_i = -\infty` (0 log 0 convention, as in :func:`kl_divergence`).
  A zero target contributes :math:`e^{\ell_i}` (0 at :math:`\ell_i = -\infty`;
  optax gives NaN there); :math:`t_i > 0 = p_i` gives :math:`+\infty`.

  Args:
    log_predictions: floating array :math:`\ell = \log p` (any real or ``-inf``).
    targets: floating array of the same shape, :math:`t \ge 0` (negative or
      NaN: NaN in that row and a checkify error).
    axis: the axis that is summed over.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Bregman, `The relaxation method of finding the common point of convex sets
    <https://doi.org/10.1016/0041-5553(67)90040-7>`_, 1967; Boyd and
    Vandenberghe, *Convex Optimization*, 2004, p. 90.
  """
  lp, t, ax, mask, _ = _rowwise_pair_inputs("log_predictions", log_predictions, "targets", targets, axis, where)
  bad = _base.check_nonnegative("targets", t) | jnp.isnan(lp)
  safe_lp = jnp.where((t == 0) & (lp == -jnp.inf), jnp.zeros_like(lp), lp)
  terms = _base.xlogx(t) - t * safe_lp - t + jnp.exp(lp)
  loss = _row_loss(terms, bad, ax)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _gkl_dlp(lp, t, axis=-1):
  del axis
  return jnp.exp(lp) - t


def _gkl_dt(lp, t, axis=-1):
  del axis
  return _dxlogx(t) - jnp.where((t == 0) & (lp == -jnp.inf), jnp.zeros_like(lp), lp) - 1.0


def _gkl_reference(lp, t, axis=-1):
  lp, t = _f64(lp, t)
  with np.errstate(invalid="ignore"):
    out = np.sum(_scipy_special().kl_div(t, np.exp(lp)), axis=axis)  # t log(t / p) - t + p
  return np.where(np.all(t >= 0, axis=axis), out, np.nan)


def _sample_measures(key, dtype, shape=(4, 5)):
  """Unnormalized measures: log-predictions ~ N(0, 1), targets ~ exp(N(0, 1)) (total mass ~ 8)."""
  k1, k2 = jax.random.split(key)
  lp = jax.random.normal(k1, shape, jnp.float32).astype(dtype)
  t = jnp.exp(jax.random.normal(k2, shape, jnp.float32)).astype(dtype)
  return lp, t


GENERALIZED_KL_DIVERGENCE = LossSpec(
    name="generalized_kl_divergence",
    family="information",
    fn=generalized_kl_divergence,
    arg_names=("log_predictions", "targets"),
    grads={0: _gkl_dlp, 1: _gkl_dt},
    sample=_sample_measures,
    reference=_gkl_reference,
    edge_cases=(
        EdgeCase((np.array([[-np.inf, np.log(2.0), 1.0], [-2.0, 0.5, np.log(3.0)]]),
                  np.array([[0.0, 2.0, 0.5], [1e-3, 0.0, 3.0]])),
                 "zero targets (one on -inf), t = p (0), rows of any mass"),
        EdgeCase((np.array([[-np.inf, 0.0], [30.0, -30.0]]), np.array([[1.0, 1.0], [1e-20, 50.0]])),
                 "t > 0 = p (+inf), large and tiny measures"),
        EdgeCase((_LOG_COLS_P, 2.0 * _COLS_T), "along axis 0", config={"axis": 0}),
        EdgeCase((np.array([[0.0, 1.0]]), np.array([[-1.0, 1.0]])), "a negative target", in_domain=False),
    ),
    configs=({},),
    rowwise=True,
    formula=r"\sum_i t_i (\log t_i - \ell_i) - t_i + e^{\ell_i}",
    domain="log p real or -inf; t >= 0 (unnormalized)",
    float_argnums=(0, 1),
    optax_peer=optax_loss("generalized_kl_divergence"),
    naive=lambda lp, t, axis=-1: jnp.sum(t * (jnp.log(t) - lp) - t + jnp.exp(lp), axis=axis),
)


# --------------------------------------------------------------------------
# Jensen-Shannon divergence
# --------------------------------------------------------------------------
def js_divergence(
    probs: jax.typing.ArrayLike,
    target_probs: jax.typing.ArrayLike,
    *,
    axis: int = -1,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Jensen-Shannon divergence (nats) of each row.

  With :math:`m = \tfrac12(p + t)`:

  .. math::
     \mathrm{JS}(p, t) = \tfrac12\mathrm{KL}(p\,\|\,m) + \tfrac12\mathrm{KL}(t\,\|\,m)
       = \sum_i \bigl[\tfrac12 p_i\log p_i + \tfrac12 t_i\log t_i - m_i \log m_i\bigr],

  (expand :math:`\mathrm{KL}(p\|m) = \sum p\log p - p \log m` and use
  :math:`\tfrac12(p + t)\log m = m \log m`). It is symmetric, bounded by
  :math:`\log 2` for normalized rows, and 0 iff :math:`p = t`.

  Derivatives (by hand), :math:`\partial m_i/\partial p_i = \tfrac12`:

  .. math::
     \frac{\partial\,\mathrm{JS}}{\partial p_i}
       = \tfrac12(1 + \log p_i) - \tfrac12(1 + \log m_i) = \tfrac12\log\frac{p_i}{m_i},

  and symmetrically for :math:`t_i`. With the 0 log 0 convention the
  :math:`p_i \log p_i` term contributes 0 at :math:`p_i = 0`, so there the
  derivative is :math:`-\tfrac12(1 + \log m_i)` (0 if also :math:`t_i = 0`).

  Args:
    probs: floating array of probabilities in ``[0, 1]``, rows along ``axis``.
    target_probs: floating array of the same shape, in ``[0, 1]``.
    axis: the axis holding the distributions.
      Each row must be a distribution (log-probabilities: ``exp`` of the row sums
      to 1) within the tolerance stated in :mod:`jaxloss._information`; any
      other row is NaN (opt-in error naming the argument).
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Lin, `Divergence measures based on the Shannon entropy
    <https://doi.org/10.1109/18.61115>`_, IEEE Trans. Inf. Theory, 1991.
  """
  p, t, ax, mask, dts = _rowwise_pair_inputs("probs", probs, "target_probs", target_probs, axis, where)
  bad = _base.check_probabilities("probs", p) | _base.check_probabilities("target_probs", t)
  m = 0.5 * (p + t)
  terms = 0.5 * _base.xlogx(p) + 0.5 * _base.xlogx(t) - _base.xlogx(m)
  loss = _row_loss(terms, bad, ax)
  loss = _base.nan_if(
      _rows_not_distributions(ax, mask, ("probs", p, dts[0], False), ("target_probs", t, dts[1], False)), loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _js_dp(p, t, axis=-1):
  del axis
  return 0.5 * _dxlogx(p) - 0.5 * _dxlogx(0.5 * (p + t))


def _js_dt(p, t, axis=-1):
  return _js_dp(t, p, axis=axis)


def _js_reference(p, t, axis=-1):
  p, t = _f64(p, t)
  m = 0.5 * (p + t)
  rel = _scipy_special().rel_entr
  return _nan_unless_distributions(np.sum(0.5 * rel(p, m) + 0.5 * rel(t, m), axis=axis), axis, p, t)


JS_DIVERGENCE = LossSpec(
    name="js_divergence",
    family="information",
    fn=js_divergence,
    arg_names=("probs", "target_probs"),
    grads={0: _js_dp, 1: _js_dt},
    sample=_sample_rows,
    reference=_js_reference,
    edge_cases=(
        EdgeCase((np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]), np.array([[0.0, 1.0], [0.5, 0.5], [0.0, 1.0]])),
                 "disjoint supports (log 2), equal rows (0), zeros on zeros"),
        EdgeCase((_COLS_P, _COLS_T), "distributions along axis 0, zeros", config={"axis": 0}),
        EdgeCase((np.array([[0.2, 0.3, 0.5], [0.2, 0.2, 0.2]]), np.array([[0.5, 0.0, 0.0], [0.2, 0.3, 0.5]])),
                 "a row of either argument not summing to 1", in_domain=False),
    ),
    configs=({},),  # axis=0: the edge cases above (a sample's columns are not distributions)
    rowwise=True,
    formula=r"\tfrac12\mathrm{KL}(p\|m) + \tfrac12\mathrm{KL}(t\|m),\ m = \tfrac12(p + t)",
    domain="p, t in [0, 1]",
    float_argnums=(0, 1),
    naive=lambda p, t, axis=-1: jnp.sum(
        0.5 * p * jnp.log(2 * p / (p + t)) + 0.5 * t * jnp.log(2 * t / (p + t)), axis=axis),
)


# --------------------------------------------------------------------------
# binary KL divergence
# --------------------------------------------------------------------------
def binary_kl_divergence(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""KL divergence between Bernoulli(y) and Bernoulli(p), elementwise.

  .. math::
     \mathrm{KL}(y\,\|\,p) = y\log\frac{y}{p} + (1 - y)\log\frac{1 - y}{1 - p}
       = \mathrm{BCE}(p, y) - H_b(y),

  i.e. binary cross-entropy on probabilities minus its floor, the label's
  binary entropy: on soft labels it reaches exactly 0 at :math:`p = y` (BCE
  reaches :math:`H_b(y) > 0` there) and has the same gradient in :math:`p` as
  BCE. It is computed as
  :math:`[y \log y - y \log p] + [(1-y)\log(1-y) - (1-y)\log(1-p)]`, whose
  brackets are exactly 0 when :math:`p = y` (the :math:`\log(1 - \cdot)` terms
  via ``log1p``).

  Derivatives (by hand):

  .. math::
     \partial_p \mathrm{KL} = -\frac{y}{p} + \frac{1 - y}{1 - p}
       = \frac{p - y}{p(1 - p)}, \qquad
     \partial_y \mathrm{KL} = \log\frac{y}{p} - \log\frac{1-y}{1-p},

  with the 0 log 0 convention (each derivative of an :math:`x\log x` or
  :math:`x\log y` term is 0 where its arguments vanish): the :math:`y/p` term
  is 0 when :math:`y = p = 0` and the :math:`(1-y)/(1-p)` term is 0 when
  :math:`y = p = 1`; in :math:`\partial_y`,
  :math:`\partial_y[y\log y] = \mathbf 1[y > 0](1 + \log y)` and
  :math:`\partial_y[y\log p] = \log p` except 0 when :math:`y = p = 0`
  (likewise for :math:`1 - y`, :math:`1 - p`). Where :math:`y > 0 = p` (or
  :math:`y < 1 = p`) the loss is :math:`+\infty`, with no hidden clipping.

  Args:
    probs: floating array of probabilities :math:`p` in ``[0, 1]``.
    labels: array of the same shape, soft labels :math:`y` in ``[0, 1]``.
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Cover and Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.3.
  """
  p, dtype = _base.as_predictions("probs", probs)
  y = _base.as_targets("labels", labels, dtype)
  _base.check_same_shape("probs", p, "labels", y)
  mask = _base.prepare_where(where, p.shape)
  p = _base.sanitize(p, mask)
  y = _base.sanitize(y, mask)
  bad = _base.check_probabilities("probs", p) | _base.check_probabilities("labels", y)
  # log(1 - .) via log1p; each bracket is exactly 0 when p == y.
  loss = (_base.xlogx(y) - _base.xlogy(y, p)) + (_xlog1my(y, y) - _xlog1my(y, p))
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _binary_kl_dp(p, y):
  zero = jnp.zeros_like(p)
  return jnp.where(_both_zero(y, p), zero, -y / p) + jnp.where((y == 1) & (p == 1), zero, (1.0 - y) / (1.0 - p))


def _binary_kl_dy(p, y):
  zero = jnp.zeros_like(p)
  d_zlogz = jnp.where(y == 1, zero, 1.0 + jnp.log1p(-y))  # d/dz [z log z] at z = 1 - y
  return (_dxlogx(y) - jnp.where(_both_zero(y, p), zero, jnp.log(p))
          - d_zlogz + jnp.where((y == 1) & (p == 1), zero, jnp.log1p(-p)))


def _binary_kl_reference(p, y):
  p, y = _f64(p, y)
  # (1 - y) log((1 - y) / (1 - p)) with log1p: the rounded 1 - y, 1 - p are not used (issue 13)
  with np.errstate(divide="ignore", invalid="ignore"):
    rest = (1.0 - y) * (np.log1p(-np.minimum(y, 1.0)) - np.log1p(-np.minimum(p, 1.0)))
  rest = np.where(y == 1, 0.0, np.where(p == 1, np.inf, rest))
  return _scipy_special().rel_entr(y, p) + rest


BINARY_KL_DIVERGENCE = LossSpec(
    name="binary_kl_divergence",
    family="information",
    fn=binary_kl_divergence,
    arg_names=("probs", "labels"),
    grads={0: _binary_kl_dp, 1: _binary_kl_dy},
    sample=_sample_binary,
    reference=_binary_kl_reference,
    edge_cases=(
        EdgeCase((np.array([0.8, 0.0, 1.0, 0.3, 0.0, 1.0]), np.array([0.8, 0.0, 1.0, 0.3, 1e-3, 0.5])),
                 "p = y (exactly 0), hard labels at the endpoints"),
        EdgeCase((np.array([0.9, 0.1, 0.5]), np.array([0.0, 1.0, 0.25])), "hard labels inside"),
    ),
    formula=r"y\log\frac{y}{p} + (1-y)\log\frac{1-y}{1-p}",
    domain="p, y in [0, 1]",
    float_argnums=(0, 1),
    naive=lambda p, y: y * jnp.log(y / p) + (1.0 - y) * jnp.log((1.0 - y) / (1.0 - p)),
)


# --------------------------------------------------------------------------
# continuous Bernoulli
# --------------------------------------------------------------------------
def _bernoulli_numbers(n):
  b: list[Fraction] = [Fraction(1)]
  for m in range(1, n + 1):
    b.append(-sum((math.comb(m + 1, k) * b[k] for k in range(m)), Fraction(0)) / (m + 1))
  return b


def _csch_series_coefficients(terms):
  """``a_n`` with ``1/z - 1/sinh z = sum_{n>=1} a_n z^{2n-1}``.

  From the Laurent series :math:`\\operatorname{csch} z = 1/z + \\sum_{n\\ge1}
  2(1 - 2^{2n-1}) B_{2n} z^{2n-1} / (2n)!` (Abramowitz and Stegun 4.5.65).
  """
  b = _bernoulli_numbers(2 * terms)
  return tuple(float(2 * (2 ** (2 * n - 1) - 1) * b[2 * n] / math.factorial(2 * n)) for n in range(1, terms + 1))


# 18 terms: |a_n| ~ 2 pi^{-2n}, so the truncation error at |z| < 1 is < 1e-17.
_CB_TERMS = 18
_CB_A = _csch_series_coefficients(_CB_TERMS)
_CB_SWITCH = 1.0
_LOG2 = float(np.log(2.0))


def _horner(coeffs, x):
  out = jnp.full_like(x, coeffs[-1])
  for c in reversed(coeffs[:-1]):
    out = out * x + c
  return out


def _cb_log_norm(z):
  """``log C(z) = log(z / tanh(z / 2))``, the continuous-Bernoulli log-normalizer."""
  a = jnp.abs(z)
  small = a < _CB_SWITCH
  zs = jnp.where(small, z, jnp.zeros_like(z))
  z2 = zs * zs
  # log C = log 2 + int_0^z (1/s - 1/sinh s) ds = log 2 + sum a_n z^{2n} / (2n).
  near = _LOG2 + z2 * _horner(tuple(c / (2 * n) for n, c in enumerate(_CB_A, 1)), z2)
  af = jnp.where(small, jnp.ones_like(a), a)
  # log C = log|z| - log tanh(|z|/2), tanh(a/2) = (1 - e^{-a}) / (1 + e^{-a}).
  far = jnp.log(af) - jnp.log(-jnp.expm1(-af)) + jnp.log1p(jnp.exp(-af))
  return jnp.where(small, near, far)


def continuous_bernoulli_nll(
    logits: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Continuous Bernoulli negative log-likelihood on logits, elementwise.

  The continuous Bernoulli density on :math:`x \in [0, 1]` with parameter
  :math:`\lambda \in (0, 1)` is :math:`C(\lambda)\,\lambda^x (1-\lambda)^{1-x}`,
  with normalizer

  .. math::
     C(\lambda) = \frac{2\,\operatorname{artanh}(1 - 2\lambda)}{1 - 2\lambda}
     \quad (C(\tfrac12) = 2).

  With :math:`\lambda = \sigma(z)`: :math:`1 - 2\sigma(z) = -\tanh(z/2)`, so
  :math:`\operatorname{artanh}(1 - 2\lambda) = -z/2` and
  :math:`C = z / \tanh(z/2)`. Since :math:`-\log\sigma(z) =
  \operatorname{softplus}(-z)` and :math:`-\log(1-\sigma(z)) =
  \operatorname{softplus}(z)`,

  .. math::
     \ell(z, x) = x\,\operatorname{softplus}(-z) + (1 - x)\operatorname{softplus}(z)
       - \log\frac{z}{\tanh(z/2)}.

  Derivatives (by hand): :math:`\tfrac{d}{dz}\log z = 1/z` and
  :math:`\tfrac{d}{dz}\log\tanh(z/2) = \frac{\operatorname{sech}^2(z/2)}
  {2\tanh(z/2)} = \frac{1}{2\sinh(z/2)\cosh(z/2)} = \frac{1}{\sinh z}`, so

  .. math::
     \partial_z \ell = \sigma(z) - x - \Bigl(\frac1z - \frac{1}{\sinh z}\Bigr),
     \qquad \partial_x \ell = \operatorname{softplus}(-z) - \operatorname{softplus}(z) = -z.

  Numerics: :math:`1/z - 1/\sinh z` and :math:`\log C` cancel catastrophically
  near :math:`z = 0`. For :math:`|z| < 1` jaxloss uses the series
  :math:`1/z - \operatorname{csch} z = \sum_{n \ge 1} a_n z^{2n-1}`,
  :math:`a_n = 2(2^{2n-1} - 1) B_{2n} / (2n)!` (:math:`z/6 - 7z^3/360 +
  31z^5/15120 - \dots`; 18 terms, truncation below :math:`10^{-17}`), and its
  integral :math:`\log C = \log 2 + \sum_n a_n z^{2n}/(2n)` (:math:`= \log 2 +
  z^2/12 - 7z^4/1440 + \dots`, the log of :math:`2(1 + z^2/12 - z^4/720 +
  \dots)`). For :math:`|z| \ge 1`,
  :math:`\log C = \log|z| - \log(1 - e^{-|z|}) + \log(1 + e^{-|z|})`, finite
  for any finite :math:`z` (e.g. :math:`|z| = 700` in float32). The softplus
  terms are evaluated as :math:`\operatorname{softplus}(-|z|) + z(1 - x)` for
  :math:`z > 0` and :math:`\operatorname{softplus}(z) - zx` otherwise (the same
  function), so no large terms cancel at :math:`|z| \gg 1`.

  Args:
    logits: floating array :math:`z`.
    targets: array of the same shape, :math:`x \in [0, 1]` (outside: NaN and a
      checkify error).
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Loaiza-Ganem and Cunningham, `The continuous Bernoulli: fixing a pervasive
    error in variational autoencoders <https://arxiv.org/abs/1907.06845>`_,
    NeurIPS 2019; Abramowitz and Stegun, *Handbook of Mathematical Functions*,
    4.5.65 (the csch series).
  """
  z, dtype = _base.as_predictions("logits", logits)
  x = _base.as_targets("targets", targets, dtype)
  _base.check_same_shape("logits", z, "targets", x)
  mask = _base.prepare_where(where, z.shape)
  z = _base.sanitize(z, mask)
  x = _base.sanitize(x, mask)
  bad = _base.check_probabilities("targets", x)
  # x softplus(-z) + (1 - x) softplus(z) = softplus(-|z|) + z (1 - x) for z > 0,
  # softplus(z) - z x for z <= 0: no large terms cancel for |z| >> 1, and 1 - x
  # is exact for x near 1.
  pos = z > 0
  bce = jax.nn.softplus(jnp.where(pos, -z, z)) + jnp.where(pos, z * (1.0 - x), -z * x)
  loss = bce - _cb_log_norm(z)
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


# sinh z = z + z^3 S(z^2) with S(u) = sum_n u^n / (2n + 3)!: the closed form's own series, built
# from the definition of sinh (independent of the Bernoulli-number series the loss uses).
_SINH_REST = tuple(1.0 / math.factorial(2 * n + 3) for n in range(11))


def _cb_dz(z, x):
  r"""Closed form: :math:`\sigma(z) - x - (1/z - \operatorname{csch} z)`.

  For :math:`|z| < 1`, with :math:`\sinh z = z (1 + z^2 S(z^2))`,
  :math:`1/z - \operatorname{csch} z = z S(z^2) / (1 + z^2 S(z^2))` (no cancellation).
  """
  a = jnp.abs(z)
  small = a < 1.0
  zs = jnp.where(small, z, jnp.zeros_like(z))
  u = zs * zs
  rest = sum(c * u**n for n, c in enumerate(_SINH_REST))
  series = zs * rest / (1.0 + u * rest)
  af = jnp.where(small, jnp.ones_like(a), a)
  # 1/sinh(a) = -2 e^{-a} / expm1(-2a): no overflow.
  direct = jnp.sign(z) * (1.0 / af + 2.0 * jnp.exp(-af) / jnp.expm1(-2.0 * af))
  return jax.nn.sigmoid(z) - x - jnp.where(small, series, direct)


def _cb_dx(z, x):
  del x
  return -z


def _cb_reference(z, x):
  z, x = _f64(z, x)
  with np.errstate(invalid="ignore", divide="ignore"):
    log_c = np.where(z == 0, np.log(2.0), np.log(z / np.tanh(z / 2)))
  return x * np.logaddexp(0.0, -z) + (1.0 - x) * np.logaddexp(0.0, z) - log_c


def _sample_cb(key, dtype, shape=(4, 3)):
  k1, k2 = jax.random.split(key)
  z = (3.0 * jax.random.normal(k1, shape, jnp.float32)).astype(dtype)
  x = jax.random.uniform(k2, shape, jnp.float32).astype(dtype)
  return z, x


def _cb_naive(z, x):
  lam = jax.nn.sigmoid(z)
  log_c = jnp.log(2.0 * jnp.arctanh(1.0 - 2.0 * lam) / (1.0 - 2.0 * lam))
  return -(x * jnp.log(lam) + (1.0 - x) * jnp.log1p(-lam) + log_c)


_CB_Z = np.array([0.0, 1e-8, -1e-3, 0.1, -0.999, 1.0, 1.001, 10.0, -50.0, 700.0])

CONTINUOUS_BERNOULLI_NLL = LossSpec(
    name="continuous_bernoulli_nll",
    family="information",
    fn=continuous_bernoulli_nll,
    arg_names=("logits", "targets"),
    grads={0: _cb_dz, 1: _cb_dx},
    sample=_sample_cb,
    reference=_cb_reference,
    edge_cases=(
        EdgeCase((_CB_Z, np.linspace(0.0, 1.0, _CB_Z.size)), "logits near 0 (series), at the switch, and huge"),
        EdgeCase((-_CB_Z, np.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0])), "mirrored logits, hard targets"),
    ),
    formula=r"x\,\mathrm{softplus}(-z) + (1-x)\,\mathrm{softplus}(z) - \log\frac{z}{\tanh(z/2)}",
    domain="z real; x in [0, 1]",
    float_argnums=(0, 1),
    naive=_cb_naive,
)

SPECS = (
    ENTROPY,
    BINARY_ENTROPY,
    CROSS_ENTROPY,
    KL_DIVERGENCE,
    KL_DIVERGENCE_WITH_LOG_TARGETS,
    GENERALIZED_KL_DIVERGENCE,
    JS_DIVERGENCE,
    BINARY_KL_DIVERGENCE,
    CONTINUOUS_BERNOULLI_NLL,
)
