r"""Keras 3 loss functions, reproduced exactly (values and their autodiff gradients).

These are the ``keras.losses.*`` *functions* (not the ``Loss`` classes),
with Keras 3's conventions, which differ from jaxloss' native ones (see
``docs/conventions.md``):

* **Argument order** ``(y_true, y_pred)`` (jaxloss: ``(predictions, targets)``).
* **Per-sample values.** Each function returns one value per sample: the mean
  over the last axis for elementwise losses (BCE, MSE, MAE), the sum over
  ``axis`` for categorical cross-entropy and KL. ``reduction`` reduces that
  per-sample array over the batch like a Keras ``Loss`` object without
  ``sample_weight``: ``"none"`` (default, the function form) or ``None``,
  ``"sum"``, and ``"sum_over_batch_size"`` / ``"mean"`` (sum divided by the
  number of per-sample values).
* **Epsilon clipping** with ``epsilon = 1e-7`` (``keras.config.epsilon()``),
  applied *in the input dtype*:

  - ``binary_crossentropy`` clips ``y_pred`` to ``[eps, 1 - eps]``, silently:
    a prediction of 8 (or 1) becomes ``1 - 1e-7`` rounded to the dtype, so with
    ``y_true = 0`` the loss caps at :math:`-\log(1 - \mathrm{fl}(1 - 10^{-7}))`
    = 16.118 in float64 and 15.942 in float32 (where ``fl(1 - 1e-7) = 1 - 2^{-23}``),
    and its gradient with respect to the clipped prediction is 0.
    Native :func:`jaxloss.binary_cross_entropy` returns NaN (and raises under
    checkify) for a probability outside [0, 1] instead. Keras also takes
    :math:`\log(1 - \hat p)` of the *rounded* :math:`1 - \hat p` (not
    ``log1p``), and so does this function, to give Keras' numbers: with
    ``y_true = 0`` and ``y_pred = 1e-6`` in float32 both give 1.0132795e-06
    (true value 1.0000005e-06, which :func:`jaxloss.binary_cross_entropy`
    returns).
  - ``categorical_crossentropy`` and ``sparse_categorical_crossentropy``
    first *normalize* ``y_pred`` to sum to 1 over ``axis`` (so ``[0.2, 0.8]``
    and ``[2, 8]`` give the same loss), then clip to ``[eps, 1 - eps]``.
  - ``kl_divergence`` clips both ``y_true`` and ``y_pred`` to ``[eps, 1]``.
  - ``mean_squared_logarithmic_error`` floors both at ``eps`` (a negative
    prediction scores as ``eps``, gradient 0); ``mean_absolute_percentage_error``
    (in percent, x100) divides by ``max(|y_true|, eps)``; ``poisson`` takes the
    *rate* and adds ``eps`` inside the log.

* ``label_smoothing`` (BCE): ``y_true * (1 - ls) + 0.5 * ls``; (categorical):
  ``y_true * (1 - ls) + ls / C`` with ``C = y_true.shape[-1]``.
* ``from_logits=True`` uses ``log_sigmoid`` / ``log_softmax``: no clipping.

Dtypes: ``y_true`` is cast to ``y_pred``'s dtype, as Keras does; float32 and
float64 are computed in their own dtype. bfloat16/float16 predictions are
computed in float32 (Keras would compute, and clip, in the half dtype, where
``1 - 1e-7`` rounds to 1 and the clipped BCE is ``inf``).

Out-of-range integer labels in ``sparse_categorical_crossentropy`` give a loss
of 0 (``jax.nn.one_hot`` of an out-of-range index is all zeros), as in Keras'
JAX backend.

References:
  Keras 3 source: ``keras/src/losses/losses.py`` and
  ``keras/src/backend/jax/nn.py`` (``binary_crossentropy``,
  ``categorical_crossentropy``, ``sparse_categorical_crossentropy``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxloss import _base

__all__ = [
    "EPSILON",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "kl_divergence",
    "mean_squared_logarithmic_error",
    "mean_absolute_percentage_error",
    "poisson",
    "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy",
]

EPSILON = 1e-7
"""``keras.config.epsilon()``'s default."""

_REDUCTIONS = (None, "none", "sum", "sum_over_batch_size", "mean")
ArrayLike = jax.typing.ArrayLike


def _pred(y_pred):
  return _base.as_predictions("y_pred", y_pred)


def _true(y_true, dtype):
  return _base.as_targets("y_true", y_true, dtype)


def _reduce(values: jax.Array, reduction) -> jax.Array:
  if reduction not in _REDUCTIONS:
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}.")
  if reduction in (None, "none") or values.ndim == 0:
    return values
  total = jnp.sum(values)
  if reduction == "sum":
    return total
  return total / jnp.asarray(max(values.size, 1), values.dtype)


def _check_same_shape(y_true, y_pred):
  _base.check_same_shape("y_true", y_true, "y_pred", y_pred)


def _clip(x, lo, hi):
  """Keras' ``ops.clip`` with bounds rounded to ``x``'s dtype."""
  return jnp.clip(x, jnp.asarray(lo, x.dtype), jnp.asarray(hi, x.dtype))


def binary_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    reduction=None,
) -> jax.Array:
  r"""``keras.losses.binary_crossentropy``: mean over ``axis`` of the elementwise BCE.

  .. math::
     \tilde y = y (1 - s) + s/2, \quad
     \hat p = \operatorname{clip}(p, \epsilon, 1 - \epsilon), \quad
     \ell = -\operatorname{mean}_{\text{axis}}\big[\tilde y \log \hat p
     + (1 - \tilde y) \log(1 - \hat p)\big]

  (with ``from_logits``: :math:`-[\tilde y \log\sigma(z) + (1 - \tilde y)\log\sigma(-z)]`,
  no clipping). Predictions outside :math:`[\epsilon, 1 - \epsilon]` are
  clipped silently and get a zero gradient; see the module docstring for the
  resulting cap (16.118 in float64, 15.942 in float32).
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  _base.check_scalar_in("label_smoothing", label_smoothing, 0.0, 1.0)
  axis = _base.normalize_axis(axis, p.ndim)
  if label_smoothing:
    y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
  if from_logits:
    bce = -y * jax.nn.log_sigmoid(p) - (1.0 - y) * jax.nn.log_sigmoid(-p)
  else:
    p = _clip(p, EPSILON, 1.0 - EPSILON)
    bce = -(y * jnp.log(p) + (1.0 - y) * jnp.log(1.0 - p))
  return _reduce(jnp.mean(bce, axis=axis), reduction)


def _categorical_log_prob(p, axis, from_logits):
  if from_logits:
    return jax.nn.log_softmax(p, axis=axis)
  p = p / jnp.sum(p, axis=axis, keepdims=True)
  return jnp.log(_clip(p, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    reduction=None,
) -> jax.Array:
  r"""``keras.losses.categorical_crossentropy``: sum over ``axis``.

  .. math::
     \tilde y = y (1 - s) + s / C, \quad
     \hat p = \operatorname{clip}\Big(\frac{p}{\sum_{\text{axis}} p}, \epsilon, 1 - \epsilon\Big), \quad
     \ell = -\sum_{\text{axis}} \tilde y \log \hat p

  (``from_logits``: :math:`\log \hat p = \operatorname{log\_softmax}(z)`).
  The normalization makes ``[0.2, 0.8]`` and ``[2, 8]`` score the same; ``C``
  is ``y_true.shape[-1]`` whatever ``axis`` is (as in Keras).
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  _base.check_scalar_in("label_smoothing", label_smoothing, 0.0, 1.0)
  axis = _base.normalize_axis(axis, p.ndim)
  if label_smoothing:
    y = y * (1.0 - label_smoothing) + label_smoothing / y.shape[-1]
  log_p = _categorical_log_prob(p, axis, from_logits)
  return _reduce(-jnp.sum(y * log_p, axis=axis), reduction)


def sparse_categorical_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
    reduction=None,
) -> jax.Array:
  r"""``keras.losses.sparse_categorical_crossentropy`` with integer ``y_true``.

  :math:`\ell = -\log \hat p_{y}` with :math:`\hat p` as in
  :func:`categorical_crossentropy` (normalized and clipped, or log-softmax with
  ``from_logits``). A trailing size-1 axis of ``y_true`` is squeezed. Rows whose
  label equals ``ignore_class`` get loss 0 (and, like Keras, still count in a
  ``"sum_over_batch_size"`` reduction: Keras excludes them only through its
  mask machinery, which a function call does not use).
  """
  p, _ = _pred(y_pred)
  labels = jnp.asarray(y_true)
  if not (jnp.issubdtype(labels.dtype, jnp.integer) or jnp.issubdtype(labels.dtype, jnp.floating)):
    raise TypeError(f"y_true must hold class indices, got dtype {labels.dtype}.")
  if labels.ndim == p.ndim and labels.shape[-1] == 1:
    labels = jnp.squeeze(labels, axis=-1)
  if p.ndim < 1 or labels.shape != p.shape[:-1]:
    raise ValueError(
        "y_true must have y_pred's shape without its last axis, got "
        f"y_true.shape={jnp.shape(y_true)} and y_pred.shape={p.shape}.")
  axis = _base.normalize_axis(axis, p.ndim)
  labels = labels.astype(jnp.int32)
  valid = None
  if ignore_class is not None:
    valid = labels != ignore_class
    labels = jnp.where(valid, labels, 0)
    # Keras zeroes ignored rows (0/0 in the normalization, masked afterwards);
    # ones give the same (masked) value and keep NaN out of the gradient.
    p = jnp.where(jnp.expand_dims(valid, -1), p, jnp.ones((), p.dtype))
  log_p = _categorical_log_prob(p, axis, from_logits)
  one_hot = jax.nn.one_hot(labels, p.shape[axis], axis=axis, dtype=p.dtype)
  loss = -jnp.sum(one_hot * log_p, axis=axis)
  if valid is not None:
    loss = jnp.where(valid, loss, jnp.zeros((), loss.dtype))
  return _reduce(loss, reduction)


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike, *, reduction=None) -> jax.Array:
  r"""``keras.losses.mean_squared_error``: :math:`\operatorname{mean}_{-1} (y - p)^2`."""
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  return _reduce(jnp.mean(jnp.square(y - p), axis=-1), reduction)


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike, *, reduction=None) -> jax.Array:
  r"""``keras.losses.mean_absolute_error``: :math:`\operatorname{mean}_{-1} |y - p|`."""
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  return _reduce(jnp.mean(jnp.abs(y - p), axis=-1), reduction)


def kl_divergence(y_true: ArrayLike, y_pred: ArrayLike, *, reduction=None) -> jax.Array:
  r"""``keras.losses.kl_divergence``: both arguments clipped to :math:`[\epsilon, 1]`.

  .. math::
     \ell = \sum_{-1} \hat y \log(\hat y / \hat p), \quad
     \hat y = \operatorname{clip}(y, \epsilon, 1), \ \hat p = \operatorname{clip}(p, \epsilon, 1).

  A zero target therefore contributes :math:`\epsilon \log(\epsilon / \hat p)`,
  not 0 (native :func:`jaxloss.kl_divergence` uses :math:`0 \log 0 = 0` and
  takes log-predictions).
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  y = _clip(y, EPSILON, 1.0)
  p = _clip(p, EPSILON, 1.0)
  return _reduce(jnp.sum(y * jnp.log(y / p), axis=-1), reduction)



def mean_squared_logarithmic_error(y_true: ArrayLike, y_pred: ArrayLike, *, reduction=None) -> jax.Array:
  r"""``keras.losses.mean_squared_logarithmic_error``: values floored at :math:`\epsilon` first.

  .. math::
     \ell = \operatorname{mean}_{-1}\big(\log(\max(p, \epsilon) + 1) - \log(\max(y, \epsilon) + 1)\big)^2.

  A prediction below ``1e-7`` (a negative one too) scores as ``1e-7`` and gets
  a zero gradient; native :func:`jaxloss.mean_squared_logarithmic_error` has
  no floor (defined for values above -1, NaN at or below).
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  eps = jnp.asarray(EPSILON, dtype)
  d = jnp.log(jnp.maximum(p, eps) + 1.0) - jnp.log(jnp.maximum(y, eps) + 1.0)
  return _reduce(jnp.mean(jnp.square(d), axis=-1), reduction)


def mean_absolute_percentage_error(y_true: ArrayLike, y_pred: ArrayLike, *, reduction=None) -> jax.Array:
  r"""``keras.losses.mean_absolute_percentage_error``: in percent, denominator floored at :math:`\epsilon`.

  .. math::
     \ell = 100 \operatorname{mean}_{-1} \frac{|y - p|}{\max(|y|, \epsilon)}

  A zero target divides by ``1e-7``: the loss is ``1e9 |p|`` there. Native
  :func:`jaxloss.mean_absolute_percentage_error` uses the same factor 100 and
  takes the floor as an explicit ``epsilon=`` option (default 0: a zero target
  is NaN).
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  diff = jnp.abs((y - p) / jnp.maximum(jnp.abs(y), jnp.asarray(EPSILON, dtype)))
  return _reduce(100.0 * jnp.mean(diff, axis=-1), reduction)


def poisson(y_true: ArrayLike, y_pred: ArrayLike, *, reduction=None) -> jax.Array:
  r"""``keras.losses.poisson``: on the *rate*, with :math:`\epsilon` inside the log.

  .. math::
     \ell = \operatorname{mean}_{-1}\big(\lambda - y \log(\lambda + \epsilon)\big)

  (``y_pred`` = :math:`\lambda`). Native
  :func:`jaxloss.poisson_nll` takes the log-rate by default; for a rate pass
  ``log_input=False`` (then no epsilon: :math:`\lambda = 0 < y` is ``+inf``).
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  return _reduce(jnp.mean(p - y * jnp.log(p + jnp.asarray(EPSILON, dtype)), axis=-1), reduction)


def categorical_focal_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    alpha: ArrayLike = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    reduction=None,
) -> jax.Array:
  r"""``keras.losses.categorical_focal_crossentropy``: sum over ``axis``.

  .. math::
     \hat p = \operatorname{clip}\Big(\frac{p}{\sum_{\text{axis}} p}, \epsilon, 1 - \epsilon\Big), \quad
     \ell = -\sum_{\text{axis}} \alpha\, (1 - \hat p)^\gamma\, \tilde y \log \hat p,

  with ``p = softmax(y_pred)`` when ``from_logits`` (then normalized and
  clipped too, as in Keras) and :math:`\tilde y` smoothed as in
  :func:`categorical_crossentropy`. Keras' default ``alpha=0.25`` scales the
  whole loss; native :func:`jaxloss.softmax_focal_loss` defaults to no
  scaling, takes logits, and neither normalizes nor clips.
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  _base.check_scalar_in("label_smoothing", label_smoothing, 0.0, 1.0)
  axis = _base.normalize_axis(axis, p.ndim)
  if label_smoothing:
    y = y * (1.0 - label_smoothing) + label_smoothing / y.shape[-1]
  if from_logits:
    p = jax.nn.softmax(p, axis=axis)
  p = _clip(p / jnp.sum(p, axis=axis, keepdims=True), EPSILON, 1.0 - EPSILON)
  a = jnp.asarray(alpha, dtype)
  focal = a * jnp.power(1.0 - p, jnp.asarray(gamma, dtype)) * (-y * jnp.log(p))
  return _reduce(jnp.sum(focal, axis=axis), reduction)


def categorical_generalized_cross_entropy(y_true: ArrayLike, y_pred: ArrayLike, q: float, *,
                                          reduction=None) -> jax.Array:
  r"""``keras.losses.categorical_generalized_cross_entropy``: :math:`(1 - p_y^q) / q` on probabilities.

  ``y_true`` holds integer class indices (``[N]`` or ``[N, 1]``), ``y_pred``
  probabilities ``[N, C]`` (used as given: no normalization, no clipping; an
  out-of-range index picks nothing, :math:`p_y = 0`, as Keras' one-hot does).
  Native :func:`jaxloss.generalized_cross_entropy` takes logits.
  """
  p, _ = _pred(y_pred)
  labels = jnp.asarray(y_true)
  if labels.ndim == p.ndim and labels.shape[-1] == 1:
    labels = jnp.squeeze(labels, axis=-1)
  if labels.shape != p.shape[:-1]:
    raise ValueError(f"y_true must have y_pred's shape without its last axis, got y_true.shape={labels.shape} "
                     f"and y_pred.shape={p.shape}.")
  one_hot = jax.nn.one_hot(labels.astype(jnp.int32), p.shape[-1], dtype=p.dtype)
  py = jnp.sum(p * one_hot, axis=-1)
  return _reduce((1 - jnp.power(py, q)) / q, reduction)


# --------------------------------------------------------------------------
# segmentation and similarity (issue 15)
# --------------------------------------------------------------------------
__all__ += ["dice", "tversky", "cosine_similarity"]


def dice(y_true: ArrayLike, y_pred: ArrayLike, *, axis=None, reduction=None) -> jax.Array:
  r"""``keras.losses.dice``: :math:`1 - 2\sum y p / (\sum y + \sum p + \epsilon)`, :math:`\epsilon = 10^{-7}`.

  ``axis=None`` (Keras's default) sums over *every* axis, the batch included:
  one Dice ratio for the whole batch (keras-team/keras#19637). Native
  :func:`jaxloss.dice_loss` is per sample, with ``smooth`` in numerator and
  denominator.
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  inter = jnp.sum(y * p, axis=axis)
  return _reduce(1.0 - 2.0 * inter / (jnp.sum(y, axis=axis) + jnp.sum(p, axis=axis) + EPSILON), reduction)


def tversky(y_true: ArrayLike, y_pred: ArrayLike, *, alpha: float = 0.5, beta: float = 0.5, axis=None,
            reduction=None) -> jax.Array:
  r"""``keras.losses.tversky`` (Keras 3.15), ``alpha`` and ``beta`` as Keras applies them.

  .. math::
     \ell = 1 - \frac{\sum y p}{\sum y p + \alpha \sum y (1 - p) + \beta \sum (1 - y) p + \epsilon}

  Keras names :math:`\sum y (1 - p)` "fp", but it counts false *negatives*: its
  ``alpha`` weighs false negatives and ``beta`` false positives, the opposite of
  Salehi et al. and of native :func:`jaxloss.tversky_loss`
  (keras-team/keras#23333). ``tversky(y, p, alpha=a, beta=b)`` equals, up to
  the epsilon and the batch-wide ``axis=None``,
  ``jaxloss.tversky_loss(p, y, alpha=b, beta=a, smooth=0)``.
  """
  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  inter = jnp.sum(y * p, axis=axis)
  fn = jnp.sum((1 - p) * y, axis=axis)
  fp = jnp.sum(p * (1 - y), axis=axis)
  return _reduce(1.0 - inter / (inter + fn * alpha + fp * beta + EPSILON), reduction)


def cosine_similarity(y_true: ArrayLike, y_pred: ArrayLike, *, axis: int = -1, reduction=None) -> jax.Array:
  r"""``keras.losses.cosine_similarity``: the *negated* cosine, :math:`-\hat y \cdot \hat p`.

  Keras normalizes as ``x * minimum(rsqrt(sum(x^2)), 1 / 1e-7)``, i.e.
  :math:`\hat x = x / \max(\lVert x\rVert, 10^{-7})`: a zero vector scores 0.
  Here the gradient there is the finite :math:`-\hat p / 10^{-7}` of that formula
  (Keras's own autodiff on the JAX backend differentiates ``rsqrt`` at 0 and
  gets NaN). Native :func:`jaxloss.cosine_similarity` returns :math:`+\cos`.
  """
  from jaxloss import _similarity  # pylint: disable=g-import-not-at-top

  p, dtype = _pred(y_pred)
  y = _true(y_true, dtype)
  _check_same_shape(y, p)
  return _reduce(-_similarity._cos(y, p, EPSILON, axis), reduction)  # pylint: disable=protected-access
