r"""Margin and perceptron losses: binary and multiclass perceptron, Weston-Watkins multi-margin, multi-label margin.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
values) are documented once in :mod:`jaxloss._base`. Notation: :math:`s` are
scores (classes along ``axis`` for the row-wise losses), :math:`[\cdot]` the
Iverson bracket, :math:`(x)_+ = \max(0, x)`.

Every loss here is piecewise linear (or quadratic): the derivatives below are
subgradients, and at a kink (a margin exactly met) the closed forms take the
derivative of :math:`(x)_+` at 0 as 0, as ``jax.nn.relu`` does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base, _classification, _labels
from jaxloss._classification import _cast_like_logits, _diag_hessian, _pm1_labels, _row_prologue, _rowwise_hessian
from jaxloss._spec import EdgeCase, LossSpec, optax_loss

__all__ = [
    "perceptron_loss",
    "multiclass_perceptron_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
]

ArrayLike = jax.typing.ArrayLike
_NEG = -np.inf


# --------------------------------------------------------------------------
# binary perceptron
# --------------------------------------------------------------------------
def perceptron_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Binary perceptron loss, elementwise, labels in :math:`\{-1, +1\}`; same value as optax's.

  .. math::
     \ell(s, y) = \max(0, -y s), \qquad
     \partial_s \ell = -y\,[-y s > 0], \qquad \partial_s^2 \ell = 0

  (a subgradient: 0 at the kink :math:`s = 0`). The hinge loss without its
  margin. Labels other than -1 and +1 (0/1 labels, NaN) make their element
  NaN.

  Args:
    scores: floating decision values.
    labels: -1 / +1 labels (any numeric dtype), same shape.
    weights, where, reduction: see :mod:`jaxloss._base`.

  References:
    Rosenblatt, *The Perceptron: a probabilistic model for information storage
    and organization in the brain*, Psychological Review 65, 1958.
  """
  s, dtype = _base.as_predictions("scores", scores)
  mask = _base.prepare_where(where, s.shape)
  s = _base.sanitize(s, mask)
  y, bad = _pm1_labels(s, labels, mask, dtype)
  loss = _base.nan_where(bad, jax.nn.relu(-y * s))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _perceptron_ds(s, y):
  s, y = _cast_like_logits(s, y)
  return jnp.where(-y * s > 0, -y, jnp.zeros((), s.dtype))


def _ref_perceptron(s, y):
  s = np.asarray(s, np.float64)
  y = np.asarray(y, np.float64)
  return np.where(np.abs(y) == 1, np.maximum(0.0, -y * s), np.nan)


def _sample_perceptron(key, dtype, shape=(4, 5)):
  ky, km, ks = jax.random.split(key, 3)
  y = jnp.where(jax.random.bernoulli(ky, 0.5, shape), 1, -1).astype(jnp.int32)
  # |s| >= 0.1: away from the kink at 0
  s = jax.random.uniform(km, shape, jnp.float32, 0.1, 2.0) * jnp.where(jax.random.bernoulli(ks, 0.5, shape), 1.0, -1.0)
  return s.astype(dtype), y


PERCEPTRON_LOSS = LossSpec(
    name="perceptron_loss",
    family="classification",
    fn=perceptron_loss,
    arg_names=("scores", "labels"),
    grads={0: _perceptron_ds},
    hessian=lambda s, y: _diag_hessian(jnp.zeros_like(_cast_like_logits(s)[0])),
    sample=_sample_perceptron,
    reference=_ref_perceptron,
    edge_cases=(
        EdgeCase((np.array([1e4, -1e4, 3.0, -0.5, 0.0, 0.0]), np.array([1, 1, -1, -1, 1, -1])),
                 "large scores, both labels, exactly at the kink"),
        EdgeCase((np.array([0.5, 0.5]), np.array([0, 2])), "labels not in {-1, +1}", in_domain=False),
    ),
    formula=r"\max(0, -y s)",
    domain="s real, y in {-1, +1}",
    optax_peer=optax_loss("perceptron_loss"),
    naive=lambda s, y: jnp.maximum(0.0, -s * y),
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# multiclass perceptron
# --------------------------------------------------------------------------
def multiclass_perceptron_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Multiclass perceptron loss with integer labels, one value per row; same value as optax's.

  .. math::
     \ell(s, y) = \max_k s_k - s_y, \qquad
     \partial_{s_j} \ell = [j = k^\star] - [j = y], \quad k^\star = \arg\max_k s_k

  (a subgradient; at tied maxima :math:`[j = k^\star]` is replaced by
  :math:`[s_j = \max_k s_k] / \#\{k : s_k = \max\}`, the derivative split
  evenly among the maximizers, as ``jax.grad`` of ``max`` does). The loss is 0
  when the label has the largest score (tied or not). Labels outside
  :math:`[0, C)` make their row NaN.

  Args:
    scores: floating array, classes along ``axis``; ``-inf`` masks a class.
    labels: integer array, ``scores.shape`` without ``axis``.
    axis: the class axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Collins, *Discriminative Training Methods for Hidden Markov Models: Theory
    and Experiments with Perceptron Algorithms*, EMNLP 2002.
  """
  rows = _labels.integer_label_rows("scores", scores, labels, axis=axis, where=where)
  loss = jnp.max(rows.x, axis=rows.axis) - rows.picked()
  return rows.reduce(loss, weights, reduction)


def _mc_perceptron_ds(s, labels, *, axis=-1):
  (s,) = _cast_like_logits(s)
  c = s.shape[axis]
  top = (s == jnp.max(s, axis=axis, keepdims=True)).astype(s.dtype)
  return top / jnp.sum(top, axis=axis, keepdims=True) - jax.nn.one_hot(labels, c, dtype=s.dtype, axis=axis)


def _ref_mc_perceptron(s, labels, *, axis=-1):
  s = np.moveaxis(np.asarray(s, np.float64), axis, -1)
  labels = np.asarray(labels)
  c = s.shape[-1]
  out = np.full(labels.shape, np.nan)
  for idx in np.ndindex(labels.shape):
    if 0 <= labels[idx] < c:
      row = s[idx]
      out[idx] = max(row) - row[labels[idx]] if np.isfinite(row[labels[idx]]) else np.inf
  return out


# Scores on a 0.7-spaced grid (+ noise under 0.05): pairwise differences stay >= 0.2 from 0, +-0.5 and +-1.
_sample_grid_scores = _classification._sample_mc_hinge  # pylint: disable=protected-access


MULTICLASS_PERCEPTRON_LOSS = LossSpec(
    name="multiclass_perceptron_loss",
    family="classification",
    fn=multiclass_perceptron_loss,
    arg_names=("scores", "labels"),
    grads={0: _mc_perceptron_ds},
    sample=_sample_grid_scores,
    reference=_ref_mc_perceptron,
    edge_cases=(
        EdgeCase((np.array([[5.0, 1.0, 0.0], [0.0, 2.5, -1.0], [1e4, 0.0, -1e4]]), np.array([0, 0, 2])),
                 "zero loss, violated, huge scores"),
        EdgeCase((np.array([[3.0, 3.0, -2.0], [0.0, 0.0, 0.0]]), np.array([1, 2])), "tied maxima"),
        EdgeCase((np.array([[0.5, _NEG, 2.0], [_NEG, -1.0, 3.0]]), np.array([0, 2])), "-inf scores off the label"),
        EdgeCase((np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]]), np.array([0, 2])), "labels at the range ends"),
        EdgeCase((np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([2, -1])), "labels out of range", in_domain=False),
    ),
    rowwise=True,
    formula=r"\max_k s_k - s_y",
    domain="s in [-inf, inf) per class, finite at the label; labels in [0, C)",
    optax_peer=optax_loss("multiclass_perceptron_loss"),
    naive=lambda s, y: jnp.max(s, axis=-1) - jnp.take_along_axis(s, y[..., None], axis=-1)[..., 0],
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# multi-margin (Weston-Watkins)
# --------------------------------------------------------------------------
def _check_power(p):
  if isinstance(p, bool) or p not in (1, 2):
    raise ValueError(f"p must be 1 or 2, got {p!r}.")
  return int(p)


def multi_margin_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    p: int = 1,
    margin: float = 1.0,
    class_weights: ArrayLike | None = None,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Multiclass margin loss (Weston-Watkins) with integer labels, one value per row.

  With margin :math:`m` and power :math:`p \in \{1, 2\}`:

  .. math::
     \ell(s, y) = \sum_{i \ne y} \bigl(m - s_y + s_i\bigr)_+^{\,p},

  PyTorch's ``MultiMarginLoss`` up to two conventions: PyTorch divides each
  row by the number of classes :math:`C`, and its class weight :math:`w_y`
  enters a ``"mean"`` as a plain factor (divided by the number of rows), while
  here ``class_weights`` follow :mod:`jaxloss._base` (``"none"`` gives
  :math:`w_y \ell`, the mean divides by :math:`\sum w_y`). For PyTorch's
  numbers use ``jaxloss.compat.torch.multi_margin_loss``.

  Derivatives (by hand), with :math:`h_i = m - s_y + s_i` and
  :math:`a_i = [i \ne y]\,[h_i > 0]`:

  .. math::
     \partial_{s_i} \ell = g_i - [i = y] \sum_k g_k, \qquad
     g_i = a_i \ (p = 1), \quad g_i = 2 a_i h_i \ (p = 2),

  and for :math:`p = 2` the Hessian
  :math:`2 \sum_k a_k (e_k - e_y)(e_k - e_y)^\top` (0 for :math:`p = 1`).
  Labels outside :math:`[0, C)` make their row NaN; ``-inf`` scores off the
  label contribute 0.

  Args:
    scores: floating array, classes along ``axis``.
    labels: integer array, ``scores.shape`` without ``axis``.
    p: 1 (hinge) or 2 (squared hinge).
    margin: the margin :math:`m` (any real number; PyTorch's default 1).
    class_weights: optional ``[C]`` non-negative weights of the label's class.
    axis: the class axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Weston and Watkins, *Support Vector Machines for Multi-Class Pattern
    Recognition*, ESANN 1999. PyTorch ``torch.nn.MultiMarginLoss``.
  """
  p = _check_power(p)
  rows = _labels.integer_label_rows("scores", scores, labels, axis=axis, where=where, class_weights=class_weights)
  s = rows.x
  h = jnp.asarray(margin, rows.dtype) + (s - jnp.expand_dims(rows.picked(), rows.axis))
  t = jax.nn.relu(h)
  if p == 2:
    t = t * t
  loss = jnp.sum(jnp.where(rows.onehot(), jnp.zeros((), t.dtype), t), axis=rows.axis)
  return rows.reduce(loss, weights, reduction)


def _mm_active(s, labels, p, margin, axis):
  c = s.shape[axis]
  onehot = jax.nn.one_hot(labels, c, dtype=s.dtype, axis=axis)
  sy = jnp.sum(jnp.where(onehot > 0, s, 0.0), axis=axis, keepdims=True)
  h = margin - sy + s
  a = jnp.where((onehot == 0) & (h > 0), 1.0, 0.0).astype(s.dtype)
  return onehot, a, (a if p == 1 else jnp.where(a > 0, 2 * h, 0.0))


def _mm_ds(s, labels, *, p=1, margin=1.0, class_weights=None, axis=-1):
  (s,) = _cast_like_logits(s)
  onehot, _, g = _mm_active(s, labels, p, margin, axis)
  w = jnp.expand_dims(_labels.row_factor(labels, class_weights, None, s.dtype), axis)
  return w * (g - onehot * jnp.sum(g, axis=axis, keepdims=True))


def _mm_hessian(s, labels, *, p=1, margin=1.0, class_weights=None, axis=-1):
  (s,) = _cast_like_logits(s)
  if p == 1:
    return jnp.zeros(s.shape + s.shape, s.dtype)
  sl = jnp.moveaxis(s, axis, -1)
  onehot, a, _ = _mm_active(sl, labels, p, margin, -1)
  eye = jnp.eye(sl.shape[-1], dtype=s.dtype)
  blocks = (jnp.einsum("...j,jk->...jk", a, eye) - a[..., :, None] * onehot[..., None, :]
            - onehot[..., :, None] * a[..., None, :]
            + jnp.sum(a, -1)[..., None, None] * onehot[..., :, None] * onehot[..., None, :])
  w = _labels.row_factor(labels, class_weights, None, s.dtype)
  return _rowwise_hessian(2 * w[..., None, None] * blocks, s.shape, axis)


def _ref_mm(s, labels, *, p=1, margin=1.0, class_weights=None, axis=-1):
  s = np.moveaxis(np.asarray(s, np.float64), axis, -1)
  labels = np.asarray(labels)
  c = s.shape[-1]
  out = np.full(labels.shape, np.nan)
  for idx in np.ndindex(labels.shape):
    y = labels[idx]
    if 0 <= y < c:
      row = s[idx]
      with np.errstate(invalid="ignore"):
        out[idx] = sum(max(0.0, margin - row[y] + row[i]) ** p for i in range(c) if i != y)
      if class_weights is not None:
        out[idx] *= class_weights[y]
  return out


MULTI_MARGIN_LOSS = LossSpec(
    name="multi_margin_loss",
    family="classification",
    fn=multi_margin_loss,
    arg_names=("scores", "labels"),
    grads={0: _mm_ds},
    hessian=_mm_hessian,
    sample=_sample_grid_scores,
    reference=_ref_mm,
    edge_cases=(
        EdgeCase((np.array([[5.0, 1.0, 0.0], [0.0, 2.5, -1.0], [1e4, 0.0, -1e4]]), np.array([0, 0, 2])),
                 "zero loss, violated, huge scores"),
        EdgeCase((np.array([[2.0, 1.0, 0.5], [0.0, 1.0, 3.0]]), np.array([0, 1])), "margins exactly at the hinge"),
        EdgeCase((np.array([[2.0, 1.0, 0.5], [0.0, 1.0, 3.0]]), np.array([0, 1])), "at the hinge, p=2",
                 {"p": 2}),
        EdgeCase((np.array([[0.5, _NEG, 2.0], [_NEG, -1.0, 3.0]]), np.array([0, 2])), "-inf scores off the label",
                 {"p": 2}),
        EdgeCase((np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]]), np.array([0, 2])), "labels at the range ends"),
        EdgeCase((np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([2, -1])), "labels out of range", in_domain=False),
    ),
    configs=({}, {"p": 2}, {"margin": 0.5}, {"p": 2, "margin": 2.0, "class_weights": (0.5, 1.0, 2.0, 1.5, 0.25)}),
    rowwise=True,
    formula=r"\sum_{i \ne y} (m - s_y + s_i)_+^{\,p}",
    domain="s in [-inf, inf) per class, finite at the label; labels in [0, C)",
    naive=lambda s, y: jnp.sum(jax.nn.relu(1.0 - jnp.take_along_axis(s, y[..., None], axis=-1) + s), axis=-1) - 1.0,
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# multi-label margin
# --------------------------------------------------------------------------
def _check_multi_hot(t, mask, axis):
  bad = ~((t == 0) | (t == 1))
  if mask is not None:
    bad = bad & jnp.expand_dims(mask, axis)
  _base.runtime_check(~bad, "labels must be 0 or 1 (multi-hot); got {v}.", v=_base.first_flagged(t, bad))
  return jnp.any(bad, axis=axis)


def multilabel_margin_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Multi-label margin loss with multi-hot labels, one value per row.

  With the target set :math:`T = \{j : t_j = 1\}` and margin :math:`m`:

  .. math::
     \ell(s, t) = \sum_{j \in T} \sum_{i \notin T} \bigl(m - s_j + s_i\bigr)_+ ,

  every target class must beat every non-target class by :math:`m` (0 when
  :math:`T` is empty or every class). PyTorch's ``MultiLabelMarginLoss`` is
  this with :math:`m = 1`, divided by :math:`C`, and with the targets given
  as class indices padded with -1 (``jaxloss.compat.torch.multilabel_margin_loss``
  takes that format; convert with a one-hot sum).

  Derivative (by hand), with :math:`A_{ji} = t_j (1 - t_i) [m - s_j + s_i > 0]`:

  .. math::
     \partial_{s_k} \ell = \sum_j A_{jk} - \sum_i A_{ki},

  (column sum minus row sum of :math:`A`; the Hessian is 0). Labels other
  than 0 and 1 (NaN) make their row NaN. Memory: :math:`C^2` per row.

  Args:
    scores: floating array, classes along ``axis``.
    labels: multi-hot 0/1 labels (bool, integer or floating), same shape.
    margin: the margin :math:`m`.
    axis: the class axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Crammer and Singer, *A Family of Additive Online Algorithms for Category
    Ranking*, JMLR 3, 2003. PyTorch ``torch.nn.MultiLabelMarginLoss``.
  """
  s, dtype, axis, _, mask = _row_prologue("scores", scores, axis, where)
  t = _base.as_targets("labels", labels, dtype)
  _base.check_same_shape("scores", s, "labels", t)
  s = _base.sanitize(s, mask, axis=axis)
  t = _base.sanitize(t, mask, axis=axis)
  bad = _check_multi_hot(t, mask, axis)
  sl, tl = jnp.moveaxis(s, axis, -1), jnp.moveaxis(t, axis, -1)
  # h[..., j, i] = m - s_j + s_i, kept where j is a target and i is not
  h = jnp.asarray(margin, dtype) + (sl[..., None, :] - sl[..., :, None])
  pair = (tl[..., :, None] == 1) & (tl[..., None, :] == 0)
  loss = jnp.sum(jnp.where(pair, jax.nn.relu(h), jnp.zeros((), dtype)), axis=(-2, -1))
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _mlm_ds(s, t, *, margin=1.0, axis=-1):
  (s,) = _cast_like_logits(s)
  sl = jnp.moveaxis(s, axis, -1)
  tl = jnp.moveaxis(jnp.asarray(t), axis, -1).astype(s.dtype)
  active = (margin - sl[..., :, None] + sl[..., None, :] > 0).astype(s.dtype)
  a = tl[..., :, None] * (1 - tl[..., None, :]) * active
  return jnp.moveaxis(jnp.sum(a, axis=-2) - jnp.sum(a, axis=-1), -1, axis)


def _ref_mlm(s, t, *, margin=1.0, axis=-1):
  s = np.moveaxis(np.asarray(s, np.float64), axis, -1)
  t = np.moveaxis(np.asarray(t, np.float64), axis, -1)
  out = np.zeros(s.shape[:-1])
  for idx in np.ndindex(out.shape):
    row, tr = s[idx], t[idx]
    if not np.all((tr == 0) | (tr == 1)):
      out[idx] = np.nan
      continue
    with np.errstate(invalid="ignore"):
      out[idx] = sum(max(0.0, margin - row[j] + row[i]) for j in range(len(row)) for i in range(len(row))
                     if tr[j] == 1 and tr[i] == 0)
  return out


def _sample_mlm(key, dtype, shape=(4, 5)):
  kt, ks = jax.random.split(key)
  s, _ = _sample_grid_scores(ks, dtype, shape)
  t = jax.random.bernoulli(kt, 0.4, shape).astype(jnp.int32)
  return s, t


def _bench_mlm(key, dtype, elems):
  """Rows of 32 classes (the pairwise hinge is a [rows, 32, 32] tensor; at 1024 classes it would not fit)."""
  return _sample_mlm(key, dtype, shape=(max(1, elems // 32), 32))


MULTILABEL_MARGIN_LOSS = LossSpec(
    name="multilabel_margin_loss",
    family="classification",
    fn=multilabel_margin_loss,
    arg_names=("scores", "labels"),
    grads={0: _mlm_ds},
    hessian=lambda s, t, **_: jnp.zeros(jnp.shape(s) * 2, _cast_like_logits(s)[0].dtype),
    sample=_sample_mlm,
    reference=_ref_mlm,
    edge_cases=(
        EdgeCase((np.array([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, 5.0], [1e4, 0.0, -1e4, 1.0]]),
                  np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]])), "zero, empty and full target sets"),
        EdgeCase((np.array([[2.0, 1.0, 0.5, 3.0]]), np.array([[1, 0, 0, 1]])), "margins exactly at the hinge"),
        EdgeCase((np.array([[0.5, _NEG, 2.0, -1.0]]), np.array([[1, 0, 1, 0]])), "-inf score on a non-target"),
        EdgeCase((np.array([[0.5, 1.0, 2.0]]), np.array([[1, 2, 0]])), "labels not 0/1", in_domain=False),
    ),
    configs=({}, {"margin": 0.5}, {"axis": 0}),
    rowwise=True,
    formula=r"\sum_{j \in T} \sum_{i \notin T} (m - s_j + s_i)_+",
    domain="s in [-inf, inf) on non-targets, finite on targets; labels in {0, 1}",
    naive=lambda s, t: jnp.sum(t[..., :, None] * (1 - t[..., None, :]) * jax.nn.relu(
        1.0 - s[..., :, None] + s[..., None, :]), axis=(-2, -1)),
    float_argnums=(0,),
    bench_sample=_bench_mlm,
)


SPECS = (
    PERCEPTRON_LOSS,
    MULTICLASS_PERCEPTRON_LOSS,
    MULTI_MARGIN_LOSS,
    MULTILABEL_MARGIN_LOSS,
)
