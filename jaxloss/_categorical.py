r"""Categorical losses beyond plain softmax cross-entropy: focal, poly, generalized CE, NLL, CE on probabilities.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
values) are documented once in :mod:`jaxloss._base`. Notation: :math:`z` are
logits with classes along ``axis``, :math:`p = \operatorname{softmax}(z)`,
:math:`L_j = -\log p_j = \operatorname{lse}(z) - z_j`, :math:`e_y` the one-hot
vector of label :math:`y`.

Numerics: :math:`L_j` is computed as :math:`(m - z_j) + \log Z` (``m`` the row
maximum, :math:`\log Z = \operatorname{log1p}(\text{rest})`), a sum of two
non-negative terms, and :math:`1 - p_j` as :math:`-\operatorname{expm1}(-L_j)`:
both keep their relative accuracy on confident rows, where :math:`1 - p_j`
computed from :math:`p_j` would be 0.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxloss import _base, _labels
from jaxloss._classification import (
  _cast_like_logits,
  _check_broadcast_option,
  _gap_sum,
  _int_ce,
  _row_prologue,
  _rowwise_hessian,
  _sample_int_labels,
  _sample_softmax,
  _softmax_hessian_blocks,
  _softmax_stats,
)
from jaxloss._spec import EdgeCase, LossSpec, optax_loss

__all__ = [
    "softmax_focal_loss",
    "poly_loss_cross_entropy",
    "generalized_cross_entropy",
    "nll_loss",
    "sparse_categorical_cross_entropy",
]

ArrayLike = jax.typing.ArrayLike
_NEG = -np.inf


def _zero_where(cond, x):
  return jnp.where(cond, jnp.zeros((), x.dtype), x)


def _log_softmax_accurate(z, axis):
  r"""For closed forms: :math:`\log p = z - m - \operatorname{log1p}(\sum_{j \ne j^\star} e^{z_j - m})`."""
  m = jnp.max(z, axis=axis, keepdims=True)
  e = jnp.exp(z - m)
  first = jax.nn.one_hot(jnp.argmax(z, axis=axis), z.shape[axis], dtype=bool, axis=axis)
  return z - m - jnp.log1p(jnp.sum(jnp.where(first, 0.0, e), axis=axis, keepdims=True))


def _np_log_softmax_accurate(z, axis):
  z = np.asarray(z, np.float64)
  m = np.max(z, axis=axis, keepdims=True)
  with np.errstate(invalid="ignore"):
    e = np.exp(z - m)
  first = np.expand_dims(np.argmax(z, axis=axis), axis) == np.arange(z.shape[axis]).reshape(
      [-1 if i == axis % z.ndim else 1 for i in range(z.ndim)])
  with np.errstate(invalid="ignore"):
    return z - m - np.log1p(np.sum(np.where(first, 0.0, e), axis=axis, keepdims=True))


def _minus_log_softmax(z, axis):
  """``(L, p)``: :math:`L_j = -\\log p_j` without cancellation, and :math:`p`."""
  d, e, s, log_norm, _ = _softmax_stats(z, axis)
  return d + log_norm, e / s


# --------------------------------------------------------------------------
# softmax focal loss
# --------------------------------------------------------------------------
def _focal_terms(z, gamma, axis):
  """Per class: ``L``, ``q = 1 - p``, ``p``, ``q^gamma`` (limit values at ``q = 0``)."""
  big_l, p = _minus_log_softmax(z, axis)
  q = -jnp.expm1(-big_l)
  return big_l, q, p, jnp.power(q, gamma)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _focal_rows(z, w, gamma, axis):
  r""":math:`\sum_j w_j q_j^\gamma L_j` per row (``w = alpha * y``; a term with :math:`w_j = 0` is 0)."""
  big_l, _, _, qg = _focal_terms(z, gamma, axis)
  return jnp.sum(_zero_where(w == 0, w * qg * big_l), axis=axis)


def _focal_rows_jvp(axis, primals, tangents):
  r""":math:`d\ell = \sum_k (p_k U - u_k)\,dz_k + \sum_j q_j^\gamma L_j\,dw_j
  + \sum_j w_j q_j^\gamma \log q_j L_j\,d\gamma`.

  :math:`u_j = w_j q_j^\gamma (1 + \gamma p_j L_j / q_j)`, :math:`U = \sum_j u_j`;
  :math:`L_j / q_j \to 1` as :math:`q_j \to 0`.
  """
  (z, w, gamma), (dz, dw, dgamma) = primals, tangents
  big_l, q, p, qg = _focal_terms(z, gamma, axis)
  out = _focal_rows(z, w, gamma, axis)
  tangent = jnp.zeros_like(out)
  zero_w = w == 0
  if not isinstance(dz, SymbolicZero):
    ratio = big_l / jnp.where(q > 0, q, jnp.ones((), q.dtype))
    ratio = jnp.where(q > 0, ratio, jnp.ones((), q.dtype))
    u = _zero_where(zero_w, w * qg * (1 + gamma * p * ratio))
    big_u = jnp.sum(u, axis=axis, keepdims=True)
    # p_k U - u_k as p_k (U - u_k) - q_k u_k: no cancellation at p_k ~ 1 (U - u_k is exact where u is one-hot)
    tangent = tangent + jnp.sum((p * (big_u - u) - q * u) * dz, axis=axis)
  if not isinstance(dw, SymbolicZero):
    tangent = tangent + jnp.sum(_zero_where(zero_w & jnp.isinf(big_l), qg * big_l) * dw, axis=axis)
  if not isinstance(dgamma, SymbolicZero):
    log_q = jnp.log(jnp.where(q > 0, q, jnp.ones((), q.dtype)))
    term = _zero_where(zero_w | (q == 0), w * qg * log_q * big_l)
    tangent = tangent + jnp.sum(term, axis=axis) * dgamma
  return out, tangent


_focal_rows.defjvp(_focal_rows_jvp, symbolic_zeros=True)


def softmax_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    alpha: ArrayLike | None = None,
    gamma: float = 2.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Categorical (softmax) focal loss against a target distribution, one value per row.

  With :math:`p = \operatorname{softmax}(z)`, :math:`L_j = -\log p_j`,
  :math:`q_j = 1 - p_j` and class weights :math:`\alpha_j` (1 when
  ``alpha=None``):

  .. math::
     \ell(z, y) = \sum_j \alpha_j\, y_j\, q_j^\gamma\, L_j,

  the multi-class form of Lin et al. (2017) that Keras'
  ``categorical_focal_crossentropy`` computes; :math:`\gamma = 0` is the
  (class-weighted) softmax cross-entropy. Keras' default ``alpha=0.25``
  scales the whole loss by 1/4; here the default is no scaling (pass
  ``alpha=0.25`` for Keras' numbers, and see ``jaxloss.compat.keras`` for its
  normalization and clipping).

  Derivative (by hand; :math:`w_j = \alpha_j y_j`), from
  :math:`\partial_{z_k} L_j = p_k - [j = k]` and
  :math:`\partial_{z_k} q_j = -p_j (\,[j = k] - p_k)`:

  .. math::
     \partial_{z_k} \ell = p_k U - u_k, \qquad
     u_j = w_j\, q_j^{\gamma} \Bigl(1 + \gamma\, p_j \frac{L_j}{q_j}\Bigr), \quad U = \sum_j u_j,

  with :math:`L_j / q_j \to 1` where :math:`q_j = 0` (so the gradient is finite
  for every :math:`\gamma \ge 0`). :math:`q_j` is computed as
  :math:`-\operatorname{expm1}(-L_j)` and the gradient as
  :math:`p_k (U - u_k) - q_k u_k`, both accurate on confident rows (where
  :math:`p_k U - u_k` cancels). Terms with
  :math:`w_j = 0` are 0, so classes masked with :math:`z_j = -\infty` under a
  zero target give a finite loss and gradient; a positive target on such a
  class gives :math:`+\infty`. Negative or NaN labels make the row NaN (and
  raise inside :func:`jaxloss.runtime_checks` under checkify).

  Args:
    logits: floating array, classes along ``axis``.
    labels: floating target distribution (e.g. one-hot), same shape.
    axis: the class axis.
    alpha: optional non-negative class weights: a scalar or an array
      broadcastable to ``logits`` (e.g. ``[C]`` for the last axis).
    gamma: focusing exponent :math:`\gamma \ge 0`.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  Raises:
    TypeError: non-floating logits or labels.
    ValueError: shapes differ, ``gamma < 0`` or a negative concrete ``alpha``.

  References:
    Lin, Goyal, Girshick, He and Dollar, *Focal Loss for Dense Object
    Detection*, ICCV 2017 (section 3.2, and its multi-class extension).
    Keras ``keras.losses.categorical_focal_crossentropy``.
  """
  bad_gamma = _base.check_scalar_in("gamma", gamma, 0.0, float("inf"))
  bad_alpha = None if alpha is None else _base.check_scalar_in("alpha", alpha, 0.0, float("inf"))
  z, dtype, axis, _, mask = _row_prologue("logits", logits, axis, where)
  y = _base.as_distribution_targets("labels", labels, dtype)
  _base.check_same_shape("logits", z, "labels", y)
  z = _base.sanitize(z, mask, axis=axis)
  y = _base.sanitize(y, mask, axis=axis)
  _base.check_nonnegative("labels", y)
  bad = ~(jnp.min(y, axis=axis) >= 0)
  w = y
  if alpha is not None:
    w = _check_broadcast_option("alpha", alpha, z.shape, dtype) * y
    if bad_alpha is not None:
      bad_alpha = jnp.any(jnp.broadcast_to(bad_alpha, z.shape), axis=axis)
  loss = _focal_rows(z, w, jnp.asarray(gamma, dtype), axis)
  loss = _base.nan_if(bad_alpha, _base.nan_if(bad_gamma, _base.nan_where(bad, loss)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _ref_focal(z, y, *, axis=-1, alpha=None, gamma=2.0):
  logp = _np_log_softmax_accurate(z, axis)
  y = np.asarray(y, np.float64)
  a = 1.0 if alpha is None else np.asarray(alpha, np.float64)
  with np.errstate(invalid="ignore"):
    t = a * y * (-np.expm1(logp)) ** gamma * (-logp)
  return np.sum(np.where(y == 0, 0.0, t), axis=axis)


def _focal_dz(z, y, *, axis=-1, alpha=None, gamma=2.0):
  z, y = _cast_like_logits(z, y)
  logp = _log_softmax_accurate(z, axis)
  p = jnp.exp(logp)
  q = -jnp.expm1(logp)
  w = y if alpha is None else jnp.asarray(alpha, z.dtype) * y
  ratio = jnp.where(q > 0, -logp / jnp.where(q > 0, q, 1.0), 1.0)
  u = jnp.where(w == 0, 0.0, w * q**gamma * (1 + gamma * p * ratio))
  return p * (jnp.sum(u, axis=axis, keepdims=True) - u) - q * u


def _sample_focal(key, dtype, shape=(4, 5)):
  z, y = _sample_softmax(key, dtype, shape)
  # half of the rows one-hot (the usual use), half soft
  hard = jax.nn.one_hot(jnp.argmax(y, axis=-1), shape[-1], dtype=y.dtype)
  rows = (jnp.arange(shape[0]) % 2 == 0).reshape((-1,) + (1,) * (len(shape) - 1))
  return z, jnp.where(rows, hard, y)


_ONEHOT3 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
SOFTMAX_FOCAL_LOSS = LossSpec(
    name="softmax_focal_loss",
    family="classification",
    fn=softmax_focal_loss,
    arg_names=("logits", "labels"),
    grads={0: _focal_dz},
    sample=_sample_focal,
    reference=_ref_focal,
    edge_cases=(
        EdgeCase((np.array([[30.0, 0.0, -30.0], [0.0, 1e4, 0.0], [-1e4, 0.0, 1e4], [20.0, 0.0, 0.0]]), _ONEHOT3),
                 "saturated logits, right and wrong class"),
        EdgeCase((np.array([[0.5, _NEG, 2.0, _NEG], [_NEG, -1.0, _NEG, 3.0]]),
                  np.array([[0.3, 0.0, 0.7, 0.0], [0.0, 1.0, 0.0, 0.0]])), "-inf logits under zero targets"),
        EdgeCase((np.array([[3.0, 3.0, -2.0], [0.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])),
                 "tied maxima"),
        *(EdgeCase((np.array([[120.0, 0.0, -1.0], [30.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])),
                   f"confidently right (q underflows), gamma={g}", {"gamma": g}) for g in (0.0, 0.5)),
    ),
    configs=({}, {"gamma": 0.0}, {"gamma": 0.5, "alpha": 0.25}, {"alpha": (0.5, 1.0, 2.0, 1.5, 0.25)},
             {"axis": 0}),
    rowwise=True,
    formula=r"\sum_j \alpha_j y_j (1 - p_j)^\gamma (-\log p_j)",
    domain="z in [-inf, inf) per class (finite where y > 0), y >= 0",
    naive=lambda z, y: -jnp.sum(y * (1 - jax.nn.softmax(z)) ** 2 * jax.nn.log_softmax(z), axis=-1),
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# poly-1 loss
# --------------------------------------------------------------------------
def _poly_parts(z, y, axis):
  d, e, s, log_norm, _ = _softmax_stats(z, axis)
  ce = _gap_sum(y, d, axis) + jnp.squeeze(jnp.sum(y, axis=axis, keepdims=True) * log_norm, axis)
  one_minus_pt = jnp.sum(y * -jnp.expm1(-(d + log_norm)), axis=axis)
  return ce, one_minus_pt, d, e, s, log_norm


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _poly(z, y, eps, axis):
  ce, one_minus_pt, *_ = _poly_parts(z, y, axis)
  return ce + eps * one_minus_pt


def _poly_jvp(axis, primals, tangents):
  r""":math:`d\ell = \sum_k (S p_k - y_k + \varepsilon p_k (P - y_k))\,dz_k + \sum_j (L_j + \varepsilon q_j)\,dy_j
  + (\sum_j y_j q_j)\,d\varepsilon`."""
  (z, y, eps), (dz, dy, deps) = primals, tangents
  _, one_minus_pt, d, e, s, log_norm = _poly_parts(z, y, axis)
  out = _poly(z, y, eps, axis)
  tangent = jnp.zeros_like(out)
  if not isinstance(dz, SymbolicZero):
    p = e / s
    big_s = jnp.sum(y, axis=axis, keepdims=True)
    big_p = jnp.sum(y * p, axis=axis, keepdims=True)
    tangent = tangent + jnp.sum((big_s * p - y + eps * p * (big_p - y)) * dz, axis=axis)
  if not isinstance(dy, SymbolicZero):
    big_l = d + log_norm
    minus_logp = _zero_where((y == 0) & jnp.isinf(big_l), big_l)
    tangent = tangent + jnp.sum((minus_logp - eps * jnp.expm1(-big_l)) * dy, axis=axis)
  if not isinstance(deps, SymbolicZero):
    tangent = tangent + one_minus_pt * deps
  return out, tangent


_poly.defjvp(_poly_jvp, symbolic_zeros=True)


def poly_loss_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: float = 2.0,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Poly-1 loss (Leng et al., 2022): softmax cross-entropy plus :math:`\varepsilon (1 - p_t)`, one value per row.

  With target distribution :math:`y`, :math:`p = \operatorname{softmax}(z)`:

  .. math::
     \ell(z, y) = -\sum_j y_j \log p_j + \varepsilon \sum_j y_j (1 - p_j),

  the same value as ``optax.losses.poly_loss_cross_entropy`` (labels used as
  given, not renormalized). :math:`\varepsilon` may be any real number (the
  paper recommends 2 for ImageNet classification and -1 for detection).

  Derivatives (by hand), with :math:`S = \sum_j y_j`,
  :math:`P = \sum_j y_j p_j` and :math:`A = \operatorname{diag}(p) - p p^\top`
  (from :math:`\partial_{z_k} p_j = p_j([j = k] - p_k)`):

  .. math::
     \partial_{z_k} \ell = S p_k - y_k + \varepsilon\, p_k (P - y_k),

  .. math::
     \partial_{z_k}\partial_{z_l} \ell = S A_{kl}
       + \varepsilon\bigl([k = l]\, p_k (P - y_k) + p_k p_l (y_k + y_l - 2P)\bigr),

  .. math::
     \partial_{y_j} \ell = -\log p_j + \varepsilon (1 - p_j), \qquad
     \partial_\varepsilon \ell = \sum_j y_j (1 - p_j).

  Numerics: :math:`-\log p_j` as in :func:`jaxloss.softmax_cross_entropy` (no
  cancellation on confident rows) and :math:`1 - p_j =
  -\operatorname{expm1}(\log p_j)` (optax computes ``1 - p``, which is 0 in
  float32 once :math:`1 - p_t < 6 \cdot 10^{-8}`). Terms with :math:`y_j = 0`
  are 0, so ``-inf`` logits mask classes with a zero target. Negative or NaN
  labels make the row NaN.

  Args:
    logits: floating array, classes along ``axis``.
    labels: floating target distribution, same shape.
    epsilon: the coefficient :math:`\varepsilon` of the first polynomial term.
    axis: the class axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Raises:
    TypeError: non-floating logits or labels. ValueError: shapes differ.

  References:
    Leng, Tan, Liu, Cubuk, Shi, Cheng and Anguelov, *PolyLoss: A Polynomial
    Expansion Perspective of Classification Loss Functions*, ICLR 2022.
  """
  z, dtype, axis, _, mask = _row_prologue("logits", logits, axis, where)
  y = _base.as_distribution_targets("labels", labels, dtype)
  _base.check_same_shape("logits", z, "labels", y)
  z = _base.sanitize(z, mask, axis=axis)
  y = _base.sanitize(y, mask, axis=axis)
  _base.check_nonnegative("labels", y)
  bad = ~(jnp.min(y, axis=axis) >= 0)
  loss = _base.nan_where(bad, _poly(z, y, jnp.asarray(epsilon, dtype), axis))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _poly_dz(z, y, *, epsilon=2.0, axis=-1):
  z, y = _cast_like_logits(z, y)
  p = jax.nn.softmax(z, axis=axis)
  big_s = jnp.sum(y, axis=axis, keepdims=True)
  big_p = jnp.sum(y * p, axis=axis, keepdims=True)
  return big_s * p - y + epsilon * p * (big_p - y)


def _poly_dy(z, y, *, epsilon=2.0, axis=-1):
  z, y = _cast_like_logits(z, y)
  logp = _log_softmax_accurate(z, axis)
  return -_zero_where((y == 0) & jnp.isneginf(logp), logp) - epsilon * jnp.expm1(logp)


def _poly_hessian(z, y, *, epsilon=2.0, axis=-1):
  z, y = _cast_like_logits(z, y)
  zl, yl = jnp.moveaxis(z, axis, -1), jnp.moveaxis(y, axis, -1)
  p = jax.nn.softmax(zl, axis=-1)
  big_s = jnp.sum(yl, axis=-1)
  big_p = jnp.sum(yl * p, axis=-1, keepdims=True)
  ce = _softmax_hessian_blocks(zl, big_s, -1)
  diag = jnp.einsum("...j,jk->...jk", p * (big_p - yl), jnp.eye(p.shape[-1], dtype=p.dtype))
  outer = p[..., :, None] * p[..., None, :] * (yl[..., :, None] + yl[..., None, :] - 2 * big_p[..., None])
  return _rowwise_hessian(ce + epsilon * (diag + outer), z.shape, axis)


def _ref_poly(z, y, *, epsilon=2.0, axis=-1):
  logp = _np_log_softmax_accurate(z, axis)
  y = np.asarray(y, np.float64)
  with np.errstate(invalid="ignore"):
    ce = -np.sum(np.where(y == 0, 0.0, y * logp), axis=axis)
  return ce + epsilon * np.sum(y * -np.expm1(logp), axis=axis)


POLY_LOSS_CROSS_ENTROPY = LossSpec(
    name="poly_loss_cross_entropy",
    family="classification",
    fn=poly_loss_cross_entropy,
    arg_names=("logits", "labels"),
    grads={0: _poly_dz, 1: _poly_dy},
    hessian=_poly_hessian,
    sample=_sample_softmax,
    reference=_ref_poly,
    edge_cases=(
        EdgeCase((np.array([[1000.0, 990.0], [100.0, 95.0], [20.0, 0.0]]),
                  np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])), "confident rows"),
        EdgeCase((np.array([[0.5, _NEG, 2.0, _NEG], [1.0, -1.0, _NEG, 3.0]]),
                  np.array([[0.3, 0.0, 0.7, 0.0], [0.0, 0.5, 0.0, 0.5]])), "-inf logits under zero targets"),
        EdgeCase((np.array([[3.0, 3.0, -2.0], [0.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])),
                 "tied maxima", {"epsilon": -1.0}),
    ),
    configs=({}, {"epsilon": -1.0}, {"epsilon": 0.0}, {"axis": 0, "epsilon": 1.0}),
    rowwise=True,
    formula=r"-\sum_j y_j \log p_j + \varepsilon \sum_j y_j (1 - p_j)",
    domain="z in [-inf, inf) per class (finite where y > 0), y >= 0, epsilon real",
    optax_peer=optax_loss("poly_loss_cross_entropy"),
    naive=lambda z, y: -jnp.sum(y * jax.nn.log_softmax(z), axis=-1) + 2.0 * jnp.sum(y * (1 - jax.nn.softmax(z)),
                                                                                     axis=-1),
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# generalized cross-entropy
# --------------------------------------------------------------------------
def generalized_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    q: float = 0.7,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Generalized cross-entropy :math:`L_q` (Zhang and Sabuncu, 2018) on logits with integer labels, per row.

  .. math::
     \ell(z, y) = \frac{1 - p_y^{\,q}}{q}
     = -\frac{\operatorname{expm1}(-q L_y)}{q}, \qquad
     L_y = -\log p_y = \operatorname{lse}(z) - z_y, \quad q \in (0, 1],

  which tends to the cross-entropy :math:`L_y` as :math:`q \to 0` and is the
  mean absolute error :math:`1 - p_y` at :math:`q = 1`; robust to noisy
  labels for :math:`q` near 1 (the paper uses :math:`q = 0.7`). The second
  form is how it is computed: no cancellation in :math:`1 - p_y^q` on
  confident rows.

  Derivatives (by hand), from :math:`\partial_{z_k} L_y = p_k - [k = y]`:

  .. math::
     \partial_{z_k} \ell = p_y^{\,q}\,(p_k - [k = y]),

  .. math::
     \partial_{z_k}\partial_{z_l} \ell = p_y^{\,q}\bigl([k = l] p_k - p_k p_l
       - q\,(p_k - [k = y])(p_l - [l = y])\bigr).

  Keras' ``categorical_generalized_cross_entropy`` takes probabilities, not
  logits (``jaxloss.compat.keras`` has that form). Labels outside
  :math:`[0, C)` make their row NaN; a ``q`` outside :math:`(0, 1]` raises
  ``ValueError`` (NaN when traced).

  Args:
    logits: floating array, classes along ``axis``; ``-inf`` masks a class.
    labels: integer array, ``logits.shape`` without ``axis``.
    q: the exponent :math:`q \in (0, 1]`.
    axis: the class axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Zhang and Sabuncu, *Generalized Cross Entropy Loss for Training Deep
    Neural Networks with Noisy Labels*, NeurIPS 2018.
  """
  bad_q = _base.check_scalar_in("q", q, 0.0, 1.0, closed_low=False)
  rows = _labels.integer_label_rows("logits", logits, labels, axis=axis, where=where)
  qq = jnp.asarray(q, rows.dtype)
  loss = -jnp.expm1(-qq * _int_ce(rows.x, rows.labels, rows.axis)) / qq
  return rows.reduce(_base.nan_if(bad_q, loss), weights, reduction)


def _gce_dz(z, labels, *, q=0.7, axis=-1):
  (z,) = _cast_like_logits(z)
  logp = _log_softmax_accurate(z, axis)
  onehot = jax.nn.one_hot(labels, z.shape[axis], dtype=z.dtype, axis=axis)
  logpy = jnp.sum(onehot * jnp.where(onehot > 0, logp, 0.0), axis=axis, keepdims=True)
  return jnp.exp(q * logpy) * (jnp.exp(logp) - onehot)


def _gce_hessian(z, labels, *, q=0.7, axis=-1):
  (z,) = _cast_like_logits(z)
  zl = jnp.moveaxis(z, axis, -1)
  p = jax.nn.softmax(zl, axis=-1)
  onehot = jax.nn.one_hot(labels, zl.shape[-1], dtype=z.dtype)
  scale = jnp.sum(onehot * p, axis=-1) ** q
  g = p - onehot
  blocks = _softmax_hessian_blocks(zl, jnp.ones_like(scale), -1) - q * g[..., :, None] * g[..., None, :]
  return _rowwise_hessian(scale[..., None, None] * blocks, z.shape, axis)


def _ref_gce(z, labels, *, q=0.7, axis=-1):
  logp = _np_log_softmax_accurate(z, axis)
  labels = np.asarray(labels)
  c = logp.shape[axis]
  safe = np.clip(labels, 0, c - 1)
  lpy = np.squeeze(np.take_along_axis(logp, np.expand_dims(safe, axis), axis), axis)
  return np.where((labels >= 0) & (labels < c), -np.expm1(q * lpy) / q, np.nan)


def _sample_gce(key, dtype, shape=(4, 5)):
  return _sample_int_labels(key, dtype, shape)


_CONF = np.array([[1000.0, 990.0, 0.0], [100.0, 95.0, 0.0], [20.0, 0.0, 0.0], [0.0, 30.0, 0.0]])
GENERALIZED_CROSS_ENTROPY = LossSpec(
    name="generalized_cross_entropy",
    family="classification",
    fn=generalized_cross_entropy,
    arg_names=("logits", "labels"),
    grads={0: _gce_dz},
    hessian=_gce_hessian,
    sample=_sample_gce,
    reference=_ref_gce,
    edge_cases=(
        EdgeCase((_CONF, np.array([0, 0, 0, 0])), "confident rows, right and wrong"),
        EdgeCase((np.array([[0.5, _NEG, 2.0, _NEG], [_NEG, -1.0, _NEG, 3.0]]), np.array([2, 1])),
                 "-inf logits on classes other than the label"),
        EdgeCase((np.array([[3.0, 3.0, -2.0], [0.0, 0.0, 0.0]]), np.array([1, 2])), "tied maxima", {"q": 1.0}),
        EdgeCase((np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]]), np.array([0, 2])), "labels at the range ends"),
        EdgeCase((np.array([[1.0, 2.0, 3.0], [4.0, -1.0, 0.0]]), np.array([-1, 3])), "labels out of range",
                 in_domain=False),
    ),
    configs=({}, {"q": 1.0}, {"q": 0.1}),
    rowwise=True,
    formula=r"\bigl(1 - p_y^{\,q}\bigr) / q",
    domain="z in [-inf, inf) per class, finite at the label; labels in [0, C); q in (0, 1]",
    naive=lambda z, y: (1 - jnp.take_along_axis(jax.nn.softmax(z), y[..., None], axis=-1)[..., 0] ** 0.7) / 0.7,
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# NLL on log-probabilities, CE on probabilities (integer labels)
# --------------------------------------------------------------------------
def nll_loss(
    log_probs: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Negative log-likelihood of integer labels under log-probabilities, one value per row.

  .. math::
     \ell(x, y) = -x_y, \qquad \partial_{x_j} \ell = -[j = y], \qquad
     \partial^2 \ell = 0,

  with ``class_weights`` and ``ignore_index`` as PyTorch's ``NLLLoss``:
  ``reduction="none"`` gives :math:`-w_{y} x_{y}`, the mean divides by the
  summed class weights of the rows kept, ignored rows are 0 and not counted.
  Unlike PyTorch, the class axis is ``axis`` (default last, PyTorch's is 1),
  an all-ignored batch gives 0 (PyTorch: NaN) and the label entry is checked:
  a log-probability above 0 (or NaN) at the label makes its row NaN, which
  catches logits passed by mistake (``jaxloss.compat.torch.nll_loss`` has
  PyTorch's exact behaviour). Only the label entry is read; the other entries
  may be anything, ``-inf`` included. Labels outside :math:`[0, C)` (other
  than ``ignore_index``) and negative class weights make the row NaN.

  Args:
    log_probs: floating log-probabilities, classes along ``axis``.
    labels: integer array, ``log_probs.shape`` without ``axis``.
    axis: the class axis.
    class_weights: optional ``[C]`` non-negative weights.
    ignore_index: optional label value whose rows are ignored (e.g. ``-100``).
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Bishop, *Pattern Recognition and Machine Learning*, 2006, section 4.3.4.
    PyTorch ``torch.nn.NLLLoss``.
  """
  rows = _labels.integer_label_rows("log_probs", log_probs, labels, axis=axis, where=where,
                                    class_weights=class_weights, ignore_index=ignore_index, fill=-1.0)
  picked = rows.picked()
  # masked and ignored rows read the fill value -1
  _base.runtime_check(picked <= 0, "log_probs must be <= 0 at the labels; got {v}.", v=_base.value_max(picked))
  loss = _base.nan_where(~(picked <= 0), -picked)
  return rows.reduce(loss, weights, reduction)


def _nll_dx(x, labels, *, axis=-1, class_weights=None, ignore_index=None):
  (x,) = _cast_like_logits(x)
  w = _labels.row_factor(labels, class_weights, ignore_index, x.dtype)
  return -jnp.expand_dims(w, axis) * jax.nn.one_hot(labels, x.shape[axis], dtype=x.dtype, axis=axis)


def _nll_hessian(x, labels, **_):
  (x,) = _cast_like_logits(x)
  return jnp.zeros(x.shape + x.shape, x.dtype)


def _ref_nll(x, labels, *, axis=-1, class_weights=None, ignore_index=None):
  x = np.asarray(x, np.float64)
  labels = np.asarray(labels)
  c = x.shape[axis]
  w, ok = _labels.np_row_factor(labels, class_weights, ignore_index, c)
  xy = np.squeeze(np.take_along_axis(x, np.expand_dims(np.clip(labels, 0, c - 1), axis), axis), axis)
  out = np.where(w == 0, 0.0, -w * xy)
  valid = ok & ((xy <= 0) | ((ignore_index is not None) & (labels == ignore_index)))
  return np.where(valid, out, np.nan)


def _sample_nll(key, dtype, shape=(4, 5)):
  z, labels = _sample_int_labels(key, dtype, shape)
  return jax.nn.log_softmax(z.astype(jnp.float32), axis=-1).astype(dtype), labels


NLL_LOSS = LossSpec(
    name="nll_loss",
    family="classification",
    fn=nll_loss,
    arg_names=("log_probs", "labels"),
    grads={0: _nll_dx},
    hessian=_nll_hessian,
    sample=_sample_nll,
    reference=_ref_nll,
    edge_cases=(
        EdgeCase((np.array([[0.0, _NEG, -1e4], [_NEG, -3.0, 0.0]]), np.array([0, 1])),
                 "log-probability 0 at the label, -inf elsewhere"),
        EdgeCase((np.array([[_NEG, 0.0]]), np.array([0])), "log-probability -inf at the label: +inf"),
        EdgeCase((np.array([[-1.0, -2.0, -3.0], [-0.5, -1.0, -2.0], [-1.0, -1.0, -1.0]]), np.array([2, -100, 0])),
                 "ignore_index row, labels at the range ends", {"ignore_index": -100}),
        EdgeCase((np.array([[-1.0, -2.0, -3.0], [-0.5, -1.0, -2.0]]), np.array([3, -1])), "labels out of range",
                 in_domain=False),
        EdgeCase((np.array([[2.0, -1.0], [-0.5, 1.0]]), np.array([0, 0])), "a positive log-probability",
                 in_domain=False),
    ),
    configs=({}, {"class_weights": (0.5, 1.0, 2.0, 1.5, 0.25)}, {"ignore_index": 2}),
    rowwise=True,
    formula=r"-x_y",
    domain="x <= 0 at the label (log-probabilities); labels in [0, C) or ignore_index",
    naive=lambda x, y: -jnp.take_along_axis(x, y[..., None], axis=-1)[..., 0],
    float_argnums=(0,),
)


def sparse_categorical_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Cross-entropy of integer labels under probabilities, one value per row.

  .. math::
     \ell(p, y) = -\log p_y, \qquad
     \partial_{p_j} \ell = -\frac{[j = y]}{p_y}, \qquad
     \partial_{p_j}\partial_{p_k} \ell = \frac{[j = k = y]}{p_y^2}

  (no Hessian in the registry: at :math:`p_y = 0` autodiff's is NaN off the
  diagonal, :math:`0 \cdot \infty`).

  The integer-label twin of :func:`jaxloss.categorical_cross_entropy`:
  probabilities are used **as given**, neither renormalized nor clipped
  (Keras' ``sparse_categorical_crossentropy`` does both, see
  ``docs/conventions.md``): :math:`p_y = 0` gives :math:`+\infty` with
  gradient :math:`-\infty`. Probabilities outside [0, 1] (or NaN) anywhere in
  a row make the row NaN. ``class_weights`` and ``ignore_index`` as in
  :func:`nll_loss`. Prefer :func:`jaxloss.softmax_cross_entropy_with_integer_labels`
  on logits when you have them.

  Args:
    probs: probabilities, classes along ``axis``.
    labels: integer array, ``probs.shape`` without ``axis``.
    axis: the class axis.
    class_weights: optional ``[C]`` non-negative weights.
    ignore_index: optional label value whose rows are ignored.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Cover and Thomas, *Elements of Information Theory*, 2nd ed., 2006, ch. 2.
    Keras ``keras.losses.sparse_categorical_crossentropy``.
  """
  rows = _labels.integer_label_rows("probs", probs, labels, axis=axis, where=where,
                                    class_weights=class_weights, ignore_index=ignore_index, fill=0.5)
  bad_p = jnp.any(_base.check_probabilities("probs", rows.x), axis=rows.axis)
  loss = _base.nan_where(bad_p, -jnp.log(rows.picked()))
  return rows.reduce(loss, weights, reduction)


def _scce_dp(p, labels, *, axis=-1, class_weights=None, ignore_index=None):
  (p,) = _cast_like_logits(p)
  w = _labels.row_factor(labels, class_weights, ignore_index, p.dtype)
  onehot = jax.nn.one_hot(labels, p.shape[axis], dtype=p.dtype, axis=axis)
  return jnp.where(onehot > 0, -jnp.expand_dims(w, axis) / p, 0.0)


def _ref_scce(p, labels, *, axis=-1, class_weights=None, ignore_index=None):
  p = np.asarray(p, np.float64)
  labels = np.asarray(labels)
  c = p.shape[axis]
  w, ok = _labels.np_row_factor(labels, class_weights, ignore_index, c)
  py = np.squeeze(np.take_along_axis(p, np.expand_dims(np.clip(labels, 0, c - 1), axis), axis), axis)
  with np.errstate(divide="ignore"):
    out = np.where(w == 0, 0.0, -w * np.log(py))
  in_01 = np.all((p >= 0) & (p <= 1), axis=axis) | ((ignore_index is not None) & (labels == ignore_index))
  return np.where(ok & in_01, out, np.nan)


def _sample_scce(key, dtype, shape=(4, 5)):
  kp, ky = jax.random.split(key)
  p = jax.nn.softmax(jax.random.normal(kp, shape, jnp.float32), axis=-1).astype(dtype)
  labels = jax.random.randint(ky, shape[:-1], 0, shape[-1], jnp.int32)
  return p, labels


SPARSE_CATEGORICAL_CROSS_ENTROPY = LossSpec(
    name="sparse_categorical_cross_entropy",
    family="classification",
    fn=sparse_categorical_cross_entropy,
    arg_names=("probs", "labels"),
    grads={0: _scce_dp},
    sample=_sample_scce,
    reference=_ref_scce,
    edge_cases=(
        EdgeCase((np.array([[1.0, 0.0, 0.0], [0.0, 0.25, 0.75]]), np.array([0, 2])), "p_y = 1, zeros elsewhere"),
        EdgeCase((np.array([[0.0, 1.0]]), np.array([0])), "p_y = 0: +inf"),
        EdgeCase((np.array([[1e-30, 1.0 - 1e-30], [0.5, 0.5]]), np.array([0, 1])), "tiny p_y, labels at the ends"),
        EdgeCase((np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]), np.array([2, -100, 0])),
                 "ignore_index row", {"ignore_index": -100}),
        EdgeCase((np.array([[1.2, -0.2], [0.5, 0.5]]), np.array([0, 2])), "p outside [0, 1], label out of range",
                 in_domain=False),
    ),
    configs=({}, {"class_weights": (0.5, 1.0, 2.0, 1.5, 0.25)}, {"ignore_index": 1}),
    rowwise=True,
    formula=r"-\log p_y",
    domain="p in [0, 1] (not renormalized), labels in [0, C) or ignore_index",
    naive=lambda p, y: -jnp.log(jnp.take_along_axis(p, y[..., None], axis=-1)[..., 0]),
    float_argnums=(0,),
)


SPECS = (
    SOFTMAX_FOCAL_LOSS,
    POLY_LOSS_CROSS_ENTROPY,
    GENERALIZED_CROSS_ENTROPY,
    NLL_LOSS,
    SPARSE_CATEGORICAL_CROSS_ENTROPY,
)
