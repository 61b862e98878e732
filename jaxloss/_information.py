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
and raise under ``checkify.checkify(f, errors=checkify.user_checks)``. Rows
are not checked to sum to 1 (the formulas are used as written).
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

  Returns ``(predictions, targets, axis, mask)``.
  """
  x, dtype = _base.as_predictions(name_p, predictions)
  t = _base.as_distribution_targets(name_t, targets, dtype)
  _base.check_same_shape(name_p, x, name_t, t)
  ax, mask = _rowwise_setup(x, axis, where)
  return _base.sanitize(x, mask, axis=ax), _base.sanitize(t, mask, axis=ax), ax, mask


def _check_log_probabilities(name, logp):
  """Flags log-probabilities that are > 0 or NaN (NaN + checkify, as in _base)."""
  bad = ~(logp <= 0)
  _base.runtime_check(~bad, f"{name} must be log-probabilities (<= 0); got max {{hi}}.", hi=_base.value_max(logp))
  return bad


def _row_loss(terms, bad, ax):
  return jnp.sum(_base.nan_where(bad, terms), axis=ax)


def _f64(*xs):
  return tuple(np.asarray(x, np.float64) for x in xs)


def _sample_rows(key, dtype, shape=(4, 5)):
  """Two probability tables, rows along the last axis."""
  k1, k2 = jax.random.split(key)
  p = jax.nn.softmax(jax.random.normal(k1, shape, jnp.float32), axis=-1).astype(dtype)
  t = jax.nn.softmax(jax.random.normal(k2, shape, jnp.float32), axis=-1).astype(dtype)
  return p, t


def _sample_log_rows(key, dtype, shape=(4, 5)):
  k1, k2 = jax.random.split(key)
  lp = jax.nn.log_softmax(jax.random.normal(k1, shape, jnp.float32), axis=-1).astype(dtype)
  lt = jax.nn.log_softmax(jax.random.normal(k2, shape, jnp.float32), axis=-1).astype(dtype)
  return lp, lt


def _sample_log_pred_and_probs(key, dtype, shape=(4, 5)):
  lp, lt = _sample_log_rows(key, jnp.float32, shape)
  return lp.astype(dtype), jnp.exp(lt).astype(dtype)


def _sample_binary(key, dtype, shape=(4, 3)):
  k1, k2 = jax.random.split(key)
  p = jax.random.uniform(k1, shape, jnp.float32, 0.05, 0.95).astype(dtype)
  y = jax.random.uniform(k2, shape, jnp.float32, 0.0, 1.0).astype(dtype)
  return p, y


def _xlog1my(x, y):
  """``(1 - x) log(1 - y)`` as ``(1 - x) log1p(-y)`` (accurate for small ``x, y``).

  The 0 log 0 convention of :func:`jaxloss._base.xlogy` applied to ``1 - x``
  and ``1 - y``: at ``x = y = 1`` the value and both derivatives are 0.
  """
  both_one = (x == 1) & (y == 1)
  safe_y = jnp.where(both_one, jnp.zeros_like(y), y)
  return (1.0 - x) * jnp.log1p(-safe_y)


def _dxlogx(x):
  """d/dx xlogx(x) with the package convention (0 at x = 0)."""
  return jnp.where(x == 0, jnp.zeros_like(x), jnp.log(x) + 1.0)


def _both_zero(x, y):
  return (x == 0) & (y == 0)


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
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Shannon, `A Mathematical Theory of Communication
    <https://doi.org/10.1002/j.1538-7305.1948.tb01338.x>`_, 1948.
  """
  p, _ = _base.as_predictions("probs", probs)
  ax, mask = _rowwise_setup(p, axis, where)
  p = _base.sanitize(p, mask, axis=ax)
  bad = _base.check_probabilities("probs", p)
  loss = jnp.sum(_neg_xlogx_or_nan(p, bad), axis=ax)
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
  return np.sum(_scipy_special().entr(_f64(p)[0]), axis=axis)


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
    ),
    configs=({}, {"axis": 0}),
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
  sp = _scipy_special()
  return sp.entr(p) + sp.entr(1.0 - p)


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
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Cover and Thomas, *Elements of Information Theory*, 2nd ed., 2006, §2.3.
  """
  p, t, ax, mask = _rowwise_pair_inputs("probs", probs, "target_probs", target_probs, axis, where)
  bad = _base.check_probabilities("probs", p) | _base.check_probabilities("target_probs", t)
  loss = _row_loss(-_base.xlogy(t, p), bad, ax)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _cross_entropy_dp(p, t, axis=-1):
  del axis
  return jnp.where(_both_zero(t, p), jnp.zeros_like(p), -t / p)


def _cross_entropy_dt(p, t, axis=-1):
  del axis
  return jnp.where(_both_zero(t, p), jnp.zeros_like(p), -jnp.log(p))


def _cross_entropy_reference(p, t, axis=-1):
  p, t = _f64(p, t)
  return -np.sum(_scipy_special().xlogy(t, p), axis=axis)


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
    ),
    configs=({}, {"axis": 0}),
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

  Args:
    log_predictions: floating array of log-probabilities (``<= 0``).
    targets: floating array of the same shape, probabilities in ``[0, 1]``.
    axis: the axis holding the distributions.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Kullback and Leibler, `On Information and Sufficiency
    <https://doi.org/10.1214/aoms/1177729694>`_, Ann. Math. Statist., 1951.
  """
  lp, t, ax, mask = _rowwise_pair_inputs("log_predictions", log_predictions, "targets", targets, axis, where)
  _check_log_probabilities("log_predictions", lp)
  _base.check_probabilities("targets", t)
  loss = _kl(lp, t, ax)
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
  return np.sum(_scipy_special().rel_entr(t, np.exp(lp)), axis=axis)


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
    ),
    configs=({}, {"axis": 0}),
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

  Args:
    log_predictions: floating array of log-probabilities (``<= 0``).
    log_targets: floating array of the same shape, log-probabilities.
    axis: the axis holding the distributions.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Kullback and Leibler, `On Information and Sufficiency
    <https://doi.org/10.1214/aoms/1177729694>`_, Ann. Math. Statist., 1951.
  """
  lp, lt, ax, mask = _rowwise_pair_inputs("log_predictions", log_predictions, "log_targets", log_targets, axis, where)
  # The checkify checks name each argument; the NaN flags are computed in the value pass.
  _check_log_probabilities("log_predictions", lp)
  _check_log_probabilities("log_targets", lt)
  loss = _kl_log(lp, lt, ax)
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
  return np.sum(_scipy_special().rel_entr(np.exp(lt), np.exp(lp)), axis=axis)


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
    ),
    configs=({}, {"axis": 0}),
    rowwise=True,
    formula=r"\sum_i e^{s_i} (s_i - \ell_i)",
    domain="log p <= 0; log t <= 0",
    float_argnums=(0, 1),
    optax_peer=optax_loss("kl_divergence_with_log_targets"),
    naive=lambda lp, lt, axis=-1: jnp.sum(jnp.exp(lt) * (lt - lp), axis=axis),
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
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    Lin, `Divergence measures based on the Shannon entropy
    <https://doi.org/10.1109/18.61115>`_, IEEE Trans. Inf. Theory, 1991.
  """
  p, t, ax, mask = _rowwise_pair_inputs("probs", probs, "target_probs", target_probs, axis, where)
  bad = _base.check_probabilities("probs", p) | _base.check_probabilities("target_probs", t)
  m = 0.5 * (p + t)
  terms = 0.5 * _base.xlogx(p) + 0.5 * _base.xlogx(t) - _base.xlogx(m)
  loss = _row_loss(terms, bad, ax)
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
  return np.sum(0.5 * rel(p, m) + 0.5 * rel(t, m), axis=axis)


JS_DIVERGENCE = LossSpec(
    name="js_divergence",
    family="information",
    fn=js_divergence,
    arg_names=("probs", "target_probs"),
    grads={0: _js_dp, 1: _js_dt},
    sample=_sample_rows,
    reference=_js_reference,
    edge_cases=(
        EdgeCase((np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]]), np.array([[0.0, 1.0], [0.5, 0.5], [0.0, 1.0]])),
                 "disjoint supports (log 2), equal rows (0), zeros"),
    ),
    configs=({}, {"axis": 0}),
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
  rel = _scipy_special().rel_entr
  return rel(y, p) + rel(1.0 - y, 1.0 - p)


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
  b = [Fraction(1)]
  for m in range(1, n + 1):
    b.append(-sum(math.comb(m + 1, k) * b[k] for k in range(m)) / (m + 1))
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
    JS_DIVERGENCE,
    BINARY_KL_DIVERGENCE,
    CONTINUOUS_BERNOULLI_NLL,
)
