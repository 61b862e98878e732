r"""Segmentation losses: soft Dice, Tversky and the generalized Dice of Sudre et al.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
errors) are documented once in :mod:`jaxloss._base`.

**Per sample.** Each loss is computed per sample: sums run over ``axis``,
by default every axis but the first (the batch axis), so the unreduced loss
has one value per sample and ``"mean"`` averages the per-sample losses. Keras's
``dice`` / ``tversky`` default to ``axis=None``, one ratio over the whole batch
(keras-team/keras#19637), so a large image hides a small one's errors; pass
``axis=None`` to ``jaxloss.compat.keras.dice`` for that.

**Inputs** are probabilities (after a sigmoid or softmax) and targets in
:math:`[0, 1]` (hard or soft masks) of the same shape. A value outside
:math:`[0, 1]` (or NaN) makes its sample NaN (and raises inside
:func:`jaxloss.runtime_checks` under ``checkify``).

**Smoothing.** Each loss states where its ``smooth`` goes. With
:math:`I = \sum p t`, :math:`P = \sum p`, :math:`T = \sum t`:

* :func:`dice_loss`: :math:`1 - (2I + s)/(P + T + s)`, ``smooth=1`` by
  default (an empty prediction of an empty target scores 0, gradient
  :math:`1/s` per pixel);
* :func:`tversky_loss`: :math:`1 - (I + s)/(I + \alpha\,FP + \beta\,FN + s)`,
  ``smooth=1``; with :math:`\alpha = \beta = 1/2` it equals ``dice_loss`` with
  ``smooth = 2s``;
* :func:`multiclass_generalized_dice_loss`: ``smooth=0`` by default (its
  weights :math:`1/T_c^2` make any fixed pseudo-count scale-dependent); a sample
  whose every probability and target is 0 scores 0 with gradient 0.

optax's ``dice_loss(smooth=s)`` is :math:`1 - (I + s)/(I + \alpha FP + \beta FN + s)`
(Tversky's form), i.e. ``dice_loss(smooth=2s)`` here; Keras adds
:math:`\epsilon = 10^{-7}` to the denominator only.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base
from jaxloss._spec import EdgeCase, LossSpec

__all__ = ["dice_loss", "tversky_loss", "multiclass_generalized_dice_loss"]

ArrayLike = jax.typing.ArrayLike


# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------
def _axes(axis: int | Sequence[int] | None, ndim: int, exclude: Sequence[int] = ()) -> tuple[int, ...]:
  """The summed axes: ``axis`` normalized, or every axis but 0 (and ``exclude``) for ``None``."""
  if axis is None:
    if ndim < 2:
      raise ValueError(f"axis=None sums over every axis but the batch axis 0: needs >= 2-D inputs, got {ndim}-D.")
    return tuple(a for a in range(1, ndim) if a not in exclude)
  axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
  out = tuple(_base.normalize_axis(a, ndim) for a in axes)
  if len(set(out)) != len(out) or set(out) & set(exclude):
    raise ValueError(f"axis={axis} repeats an axis (or includes the class axis).")
  return out


def _inputs(probs, targets, axis, where, exclude=()):
  """Cast, check shapes, prepare ``where`` (the shape without the summed axes) and flag invalid samples."""
  p, dtype = _base.as_predictions("probs", probs)
  t = _base.as_targets("targets", targets, dtype)
  _base.check_same_shape("probs", p, "targets", t)
  axes = _axes(axis, p.ndim, exclude)
  loss_shape = tuple(d for k, d in enumerate(p.shape) if k not in axes)
  mask = _base.prepare_where(where, loss_shape)
  if mask is not None:
    m = jnp.expand_dims(mask, axes)
    p = jnp.where(m, p, jnp.zeros((), dtype))
    t = jnp.where(m, t, jnp.zeros((), dtype))
  bad = jnp.any(_base.check_probabilities("probs", p) | _base.check_probabilities("targets", t), axis=axes)
  return p, t, axes, mask, bad


def _option(value, dtype):
  return jnp.asarray(value).astype(dtype)


def _ratio(num, den):
  """``num / den`` with the rule 0 / 0 = 1 (loss 0) and a gradient of 0 there."""
  ok = den > 0
  return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)), jnp.ones_like(den))


def _keep(x, axes):
  return jnp.expand_dims(x, axes)


def _f64(*xs):
  return tuple(np.asarray(x, np.float64) for x in xs)


def _ref_axes(axis, ndim, exclude=()):
  if axis is None:
    return tuple(a for a in range(1, ndim) if a not in exclude)
  return tuple(np.atleast_1d(np.asarray(axis)) % ndim)


def _ref_flag(p, t, axes):
  return np.any((p < 0) | (p > 1) | (t < 0) | (t > 1) | np.isnan(p) | np.isnan(t), axis=axes)


def _sample_masks(key, dtype, shape=(3, 4, 5)):
  """Soft predictions and hard 0/1 masks (each sample with foreground and background)."""
  k1, k2 = jax.random.split(key)
  p = jax.random.uniform(k1, shape, jnp.float32).astype(dtype)
  t = jax.random.bernoulli(k2, 0.4, shape).astype(dtype)
  return p, t


# --------------------------------------------------------------------------
# Dice
# --------------------------------------------------------------------------
def dice_loss(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int | Sequence[int] | None = None,
    smooth: float = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Soft Dice loss per sample, :math:`1 - \frac{2\sum p t + s}{\sum p + \sum t + s}`.

  Sums run over ``axis`` (default: every axis but the batch axis 0; see
  :mod:`jaxloss._segmentation`). For per-class Dice on ``[B, H, W, C]`` pass
  ``axis=(1, 2)`` (one value per sample and class).

  Derivatives (by hand), with :math:`N = 2I + s`, :math:`D = P + T + s`:

  .. math::
     \frac{\partial \ell}{\partial p_k} = \frac{N - 2 t_k D}{D^2}, \qquad
     \frac{\partial \ell}{\partial t_k} = \frac{N - 2 p_k D}{D^2}.

  With ``smooth=0`` a sample of all-zero probabilities and targets has
  :math:`0/0`: its loss is 0 and its gradient 0 (the rule of this module).

  Args:
    probs: floating probabilities in ``[0, 1]``.
    targets: masks in ``[0, 1]`` (hard or soft), the same shape.
    axis: the summed axes (int or tuple); ``None``: all but axis 0.
    smooth: :math:`s \ge 0`, added to numerator and denominator.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per
      sample, i.e. per index of the axes not summed).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per sample.

  References:
    Dice, `Measures of the Amount of Ecologic Association Between Species
    <https://doi.org/10.2307/1932409>`_, Ecology, 1945; Milletari, Navab and
    Ahmadi, `V-Net <https://arxiv.org/abs/1606.04797>`_, 3DV 2016.
  """
  bad_s = _base.check_scalar_in("smooth", smooth, 0.0, float("inf"))
  p, t, axes, mask, bad = _inputs(probs, targets, axis, where)
  s = _option(smooth, p.dtype)
  num = 2.0 * jnp.sum(p * t, axis=axes) + s
  den = jnp.sum(p, axis=axes) + jnp.sum(t, axis=axes) + s
  loss = _base.nan_if(bad_s, _base.nan_where(bad, 1.0 - _ratio(num, den)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _dice_parts(p, t, axis, smooth):
  axes = _axes(axis, p.ndim)
  num = _keep(2.0 * jnp.sum(p * t, axis=axes) + smooth, axes)
  den = _keep(jnp.sum(p, axis=axes) + jnp.sum(t, axis=axes) + smooth, axes)
  return num, den


def _dice_dp(p, t, axis=None, smooth=1.0):
  num, den = _dice_parts(p, t, axis, smooth)
  return jnp.where(den > 0, (num - 2.0 * t * den) / jnp.square(jnp.where(den > 0, den, 1.0)), 0.0)


def _dice_dt(p, t, axis=None, smooth=1.0):
  return _dice_dp(t, p, axis, smooth)


def _dice_reference(p, t, axis=None, smooth=1.0):
  p, t = _f64(p, t)
  axes = _ref_axes(axis, p.ndim)
  num = 2 * np.sum(p * t, axis=axes) + smooth
  den = np.sum(p, axis=axes) + np.sum(t, axis=axes) + smooth
  with np.errstate(invalid="ignore"):
    out = 1.0 - np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
  return np.where(_ref_flag(p, t, axes), np.nan, out)


_SEG_EDGES = (
    EdgeCase((np.zeros((2, 3)), np.zeros((2, 3))), "empty prediction of an empty target: loss 0"),
    EdgeCase((np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]), np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])),
             "perfect sample, and an empty prediction of a non-empty target"),
    EdgeCase((np.array([[0.5, 1.5, 0.2]]), np.array([[1.0, 0.0, 0.0]])), "probability 1.5: NaN",
             in_domain=False),
)


def _dice_naive(p, t, axis=None, smooth=1.0):
  axes = tuple(range(1, p.ndim)) if axis is None else axis
  return 1.0 - (2.0 * jnp.sum(p * t, axes) + smooth) / (jnp.sum(p, axes) + jnp.sum(t, axes) + smooth)


# No optax peer: optax.losses.dice_loss on probabilities (apply_softmax=False) checks the row sums with a Python
# `if` and cannot be jitted; on logits it is another function of the inputs.
DICE_LOSS = LossSpec(
    name="dice_loss",
    family="segmentation",
    fn=dice_loss,
    arg_names=("probs", "targets"),
    grads={0: _dice_dp, 1: _dice_dt},
    sample=_sample_masks,
    reference=_dice_reference,
    edge_cases=_SEG_EDGES + (
        EdgeCase((np.zeros((2, 3)), np.zeros((2, 3))), "smooth = 0, all zero: 0/0 -> loss 0, gradient 0",
                 config={"smooth": 0.0}),
    ),
    configs=({}, {"smooth": 0.0}, {"axis": 2}, {"axis": (1, 2), "smooth": 0.5}),
    rowwise=True,
    formula=r"1 - \frac{2\sum p t + s}{\sum p + \sum t + s}",
    domain="p, t in [0, 1]; smooth >= 0",
    float_argnums=(0, 1),
    naive=_dice_naive,
)


# --------------------------------------------------------------------------
# Tversky
# --------------------------------------------------------------------------
def tversky_loss(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    axis: int | Sequence[int] | None = None,
    smooth: float = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Tversky loss per sample; ``alpha`` weighs false positives, ``beta`` false negatives.

  With :math:`I = \sum p t`, :math:`FP = \sum p (1 - t) = P - I`,
  :math:`FN = \sum (1 - p) t = T - I`, as in Salehi et al. (2017):

  .. math::
     \ell = 1 - \frac{I + s}{I + \alpha\,FP + \beta\,FN + s}.

  :math:`\alpha = \beta = 1/2` is :func:`dice_loss` with ``smooth = 2s``;
  :math:`\alpha = \beta = 1` is the Jaccard (IoU) loss. Keras 3.15's
  ``tversky`` applies ``alpha`` to false *negatives* and ``beta`` to false
  positives (keras-team/keras#23333) and sums over the whole batch; its exact
  numbers are ``jaxloss.compat.keras.tversky``.

  Derivatives (by hand), with :math:`N = I + s`,
  :math:`D = (1 - \alpha - \beta) I + \alpha P + \beta T + s`:

  .. math::
     \frac{\partial\ell}{\partial p_k} = \frac{N\,((1 - \alpha - \beta) t_k + \alpha) - t_k D}{D^2}, \qquad
     \frac{\partial\ell}{\partial t_k} = \frac{N\,((1 - \alpha - \beta) p_k + \beta) - p_k D}{D^2}.

  Args:
    probs: floating probabilities in ``[0, 1]``.
    targets: masks in ``[0, 1]``, the same shape.
    alpha: weight of false positives, ``>= 0``.
    beta: weight of false negatives, ``>= 0``.
    axis: the summed axes; ``None``: all but axis 0.
    smooth: :math:`s \ge 0`.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per sample).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per sample.

  References:
    Tversky, `Features of Similarity <https://doi.org/10.1037/0033-295X.84.4.327>`_,
    Psychological Review, 1977; Salehi, Erdogmus and Gholipour, `Tversky loss
    function for image segmentation using 3D fully convolutional deep networks
    <https://arxiv.org/abs/1706.05721>`_, MLMI 2017.
  """
  bad_a = _base.check_scalar_in("alpha", alpha, 0.0, float("inf"))
  bad_b = _base.check_scalar_in("beta", beta, 0.0, float("inf"))
  bad_s = _base.check_scalar_in("smooth", smooth, 0.0, float("inf"))
  p, t, axes, mask, bad = _inputs(probs, targets, axis, where)
  a, b, s = (_option(v, p.dtype) for v in (alpha, beta, smooth))
  inter = jnp.sum(p * t, axis=axes)
  den = inter + a * (jnp.sum(p, axis=axes) - inter) + b * (jnp.sum(t, axis=axes) - inter) + s
  loss = _base.nan_where(bad, 1.0 - _ratio(inter + s, den))
  for flag in (bad_a, bad_b, bad_s):
    loss = _base.nan_if(flag, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _tversky_grad(p, t, a, b, axis, smooth):
  axes = _axes(axis, p.ndim)
  inter = jnp.sum(p * t, axis=axes)
  num = _keep(inter + smooth, axes)
  den = _keep((1.0 - a - b) * inter + a * jnp.sum(p, axis=axes) + b * jnp.sum(t, axis=axes) + smooth, axes)
  ok = den > 0
  return jnp.where(ok, (num * ((1.0 - a - b) * t + a) - t * den) / jnp.square(jnp.where(ok, den, 1.0)), 0.0)


def _tversky_dp(p, t, alpha=0.5, beta=0.5, axis=None, smooth=1.0):
  return _tversky_grad(p, t, alpha, beta, axis, smooth)


def _tversky_dt(p, t, alpha=0.5, beta=0.5, axis=None, smooth=1.0):
  return _tversky_grad(t, p, beta, alpha, axis, smooth)


def _tversky_reference(p, t, alpha=0.5, beta=0.5, axis=None, smooth=1.0):
  p, t = _f64(p, t)
  axes = _ref_axes(axis, p.ndim)
  tp = np.sum(p * t, axis=axes)
  fp = np.sum(p * (1 - t), axis=axes)
  fn = np.sum((1 - p) * t, axis=axes)
  den = tp + alpha * fp + beta * fn + smooth
  with np.errstate(invalid="ignore"):
    out = 1.0 - np.where(den > 0, (tp + smooth) / np.where(den > 0, den, 1.0), 1.0)
  return np.where(_ref_flag(p, t, axes), np.nan, out)


def _tversky_naive(p, t, alpha=0.5, beta=0.5, axis=None, smooth=1.0):
  axes = tuple(range(1, p.ndim)) if axis is None else axis
  tp = jnp.sum(p * t, axes)
  return 1.0 - (tp + smooth) / (tp + alpha * jnp.sum(p * (1 - t), axes) + beta * jnp.sum((1 - p) * t, axes) + smooth)


TVERSKY_LOSS = LossSpec(
    name="tversky_loss",
    family="segmentation",
    fn=tversky_loss,
    arg_names=("probs", "targets"),
    grads={0: _tversky_dp, 1: _tversky_dt},
    sample=_sample_masks,
    reference=_tversky_reference,
    edge_cases=_SEG_EDGES + (
        EdgeCase((np.array([[1.0, 0.0, 0.3]]), np.array([[0.0, 0.0, 1.0]])), "only false positives weigh (beta = 0)",
                 config={"alpha": 1.0, "beta": 0.0, "smooth": 0.0}),
        EdgeCase((np.zeros((2, 3)), np.zeros((2, 3))), "smooth = 0, all zero: 0/0 -> loss 0",
                 config={"alpha": 1.0, "beta": 0.0, "smooth": 0.0}),
    ),
    configs=({}, {"alpha": 0.3, "beta": 0.7}, {"alpha": 1.0, "beta": 0.0, "smooth": 0.0}, {"alpha": 1.0, "beta": 1.0}),
    rowwise=True,
    formula=r"1 - \frac{I + s}{I + \alpha FP + \beta FN + s}",
    domain="p, t in [0, 1]; alpha, beta, smooth >= 0",
    float_argnums=(0, 1),
    naive=_tversky_naive,
)


# --------------------------------------------------------------------------
# generalized Dice (Sudre et al. 2017)
# --------------------------------------------------------------------------
def _gdl_weights(t_sum):
  r"""Sudre's :math:`w_c = 1/T_c^2`; an absent class (:math:`T_c = 0`) takes the sample's largest present weight.

  ``t_sum`` is ``[B, C]``; a sample with no class present gets all weights 1.
  """
  present = t_sum > 0
  w = jnp.where(present, 1.0 / jnp.square(jnp.where(present, t_sum, jnp.ones_like(t_sum))), 0.0)
  w_max = jnp.max(w, axis=-1, keepdims=True, initial=0.0)
  w_max = jnp.where(w_max > 0, w_max, jnp.ones_like(w_max))
  return jnp.where(present, w, w_max)


def multiclass_generalized_dice_loss(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    smooth: float = 0.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Generalized Dice loss of Sudre et al. (2017), one value per sample.

  ``probs`` and ``targets`` are ``[B, ..., C]`` with the classes along
  ``axis``; with :math:`I_c, P_c, T_c` the sums of :math:`p t`, :math:`p`,
  :math:`t` of class :math:`c` over every axis but 0 and ``axis``:

  .. math::
     \ell = 1 - \frac{2\sum_c w_c I_c + s}{\sum_c w_c (P_c + T_c) + s}, \qquad
     w_c = \frac{1}{T_c^2}.

  **Absent classes.** A class absent from the sample (:math:`T_c = 0`) would
  have an infinite weight; it takes the largest weight of the sample's present
  classes instead (so a false positive of an absent class still costs as much as
  one of the rarest present class; MONAI's rule). A sample with no class present
  weighs every class 1. The weights depend on the targets only and are constants
  for the gradient with respect to ``probs`` (``targets`` are not
  differentiated). A sample whose denominator is 0 (all probabilities and
  targets 0, ``smooth=0``) scores 0 with gradient 0.

  Derivative (by hand), with :math:`N` and :math:`D` the numerator and denominator:

  .. math::
     \frac{\partial \ell}{\partial p_{kc}} = w_c\,\frac{N - 2 t_{kc} D}{D^2}.

  optax's ``multiclass_generalized_dice_loss`` is a different loss: weights from
  the class frequencies of the whole batch, normalized, times per-class Dice
  losses averaged over classes (not Sudre's ratio of sums).

  Args:
    probs: floating probabilities in ``[0, 1]``, ``[B, ..., C]``.
    targets: one-hot (or soft) targets in ``[0, 1]``, the same shape.
    axis: the class axis (not 0).
    smooth: :math:`s \ge 0`.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per sample).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per sample.

  References:
    Sudre et al., `Generalised Dice overlap as a deep learning loss function for
    highly unbalanced segmentations <https://arxiv.org/abs/1707.03237>`_, DLMIA 2017;
    Crum, Camara and Hill, Generalized overlap measures, IEEE TMI 2006.
  """
  bad_s = _base.check_scalar_in("smooth", smooth, 0.0, float("inf"))
  p0, _ = _base.as_predictions("probs", probs)
  cax = _base.normalize_axis(axis, p0.ndim)
  if cax == 0:
    raise ValueError("axis (the class axis) must not be the batch axis 0.")
  p, t, _, mask, bad = _inputs(p0, targets, None, where)
  p, t = jnp.moveaxis(p, cax, -1), jnp.moveaxis(t, cax, -1)
  sum_axes = tuple(range(1, p.ndim - 1))
  t_sum = jnp.sum(t, axis=sum_axes)
  w = _gdl_weights(t_sum)
  s = _option(smooth, p.dtype)
  num = 2.0 * jnp.sum(w * jnp.sum(p * t, axis=sum_axes), axis=-1) + s
  den = jnp.sum(w * (jnp.sum(p, axis=sum_axes) + t_sum), axis=-1) + s
  loss = _base.nan_if(bad_s, _base.nan_where(bad, 1.0 - _ratio(num, den)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _gdl_dp(p, t, axis=-1, smooth=0.0):
  t = jnp.asarray(t).astype(p.dtype)  # targets are not a float argument: they keep their own dtype
  cax = axis % p.ndim
  p, t = jnp.moveaxis(p, cax, -1), jnp.moveaxis(t, cax, -1)
  sum_axes = tuple(range(1, p.ndim - 1))
  t_sum = jnp.sum(t, axis=sum_axes)
  w = _gdl_weights(t_sum)
  num = 2.0 * jnp.sum(w * jnp.sum(p * t, axis=sum_axes), axis=-1) + smooth
  den = jnp.sum(w * (jnp.sum(p, axis=sum_axes) + t_sum), axis=-1) + smooth
  shape = (-1,) + (1,) * (p.ndim - 1)
  num, den = num.reshape(shape), den.reshape(shape)
  wk = jnp.expand_dims(w, sum_axes)
  g = jnp.where(den > 0, wk * (num - 2.0 * t * den) / jnp.square(jnp.where(den > 0, den, 1.0)), 0.0)
  return jnp.moveaxis(g, -1, cax)


def _gdl_reference(p, t, axis=-1, smooth=0.0):
  p, t = _f64(p, t)
  p, t = np.moveaxis(p, axis, -1), np.moveaxis(t, axis, -1)
  flag = _ref_flag(p, t, tuple(range(1, p.ndim)))
  out = np.zeros(p.shape[0])
  for b in range(p.shape[0]):
    pb, tb = p[b].reshape(-1, p.shape[-1]), t[b].reshape(-1, p.shape[-1])
    tc = tb.sum(0)
    w = np.array([1.0 / x**2 if x > 0 else np.nan for x in tc])
    present = ~np.isnan(w)
    w[~present] = w[present].max() if present.any() else 1.0
    if not present.any():
      w[:] = 1.0
    num = 2 * np.sum(w * (pb * tb).sum(0)) + smooth
    den = np.sum(w * (pb.sum(0) + tc)) + smooth
    out[b] = 1.0 - num / den if den > 0 else 0.0
  return np.where(flag, np.nan, out)


def _sample_gdl(key, dtype, shape=(2, 6, 3)):
  """Softmax probabilities and integer one-hot targets ``[B, pixels, C]``; class 0 frequent, class C-1 rare."""
  k1, k2 = jax.random.split(key)
  logits = jax.random.normal(k1, shape, jnp.float32)
  c = shape[-1]
  prior = jnp.log(jnp.linspace(1.0, 0.2, c))
  labels = jax.random.categorical(k2, jnp.broadcast_to(prior, shape))
  # integer one-hot targets: not a float argument (their gradient is not claimed), so nothing perturbs them
  return jax.nn.softmax(logits, axis=-1).astype(dtype), jax.nn.one_hot(labels, c, dtype=jnp.int32)


_GDL_P = np.array([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]],
                   [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]])
_GDL_T = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
                   [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]])

def _gdl_naive(p, t, axis=-1, smooth=0.0):
  del axis
  t = t.astype(p.dtype)
  ax = tuple(range(1, p.ndim - 1))
  tc = jnp.sum(t, ax)
  w = 1.0 / jnp.square(tc)
  w = jnp.where(jnp.isinf(w), jnp.max(jnp.where(jnp.isinf(w), 0.0, w), -1, keepdims=True), w)
  return 1.0 - (2.0 * jnp.sum(w * jnp.sum(p * t, ax), -1) + smooth) / (jnp.sum(w * (jnp.sum(p, ax) + tc), -1) + smooth)


# optax.losses.multiclass_generalized_dice_loss is a different loss (docstring): no optax peer.
MULTICLASS_GENERALIZED_DICE_LOSS = LossSpec(
    name="multiclass_generalized_dice_loss",
    family="segmentation",
    fn=multiclass_generalized_dice_loss,
    arg_names=("probs", "targets"),
    grads={0: _gdl_dp},
    sample=_sample_gdl,
    reference=_gdl_reference,
    edge_cases=(
        EdgeCase((_GDL_P, _GDL_T), "class 2 absent from both samples: the largest present weight"),
        EdgeCase((np.zeros((2, 3, 2)), np.zeros((2, 3, 2))), "all zero: 0/0 -> loss 0, gradient 0"),
        EdgeCase((_GDL_P[:1], np.zeros((1, 3, 3))), "no class present: weights 1"),
        EdgeCase((np.moveaxis(_GDL_P, -1, 1), np.moveaxis(_GDL_T, -1, 1)), "classes on axis 1, smooth 1",
                 config={"axis": 1, "smooth": 1.0}),
        EdgeCase((np.array([[[1.2, -0.2]]]), np.array([[[1.0, 0.0]]])), "probability outside [0, 1]: NaN",
                 in_domain=False),
    ),
    configs=({}, {"smooth": 1e-3}),
    rowwise=True,
    formula=r"1 - \frac{2\sum_c w_c \sum p t + s}{\sum_c w_c \sum (p + t) + s},\ w_c = 1/(\sum t_c)^2",
    domain="p, t in [0, 1], classes on axis; smooth >= 0",
    naive=_gdl_naive,
)

SPECS = (DICE_LOSS, TVERSKY_LOSS, MULTICLASS_GENERALIZED_DICE_LOSS)
