"""The shared prologue of losses with integer class labels over ``axis`` (one value per row).

Used by the categorical (``nll_loss``, ``sparse_categorical_cross_entropy``,
``generalized_cross_entropy``) and margin (``multi_margin_loss``,
``multiclass_perceptron_loss``) losses: checks and casts the predictions,
requires ``labels.shape == predictions.shape`` without ``axis``, applies
``ignore_index`` and ``where``, flags labels outside ``[0, C)`` (NaN in their
row, a checkify error inside :func:`jaxloss.runtime_checks`), replaces them by
0 so that no gather reads out of bounds, and turns ``class_weights`` into the
per-row extra weights of :func:`jaxloss._base.reduce_loss`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxloss import _base


@dataclasses.dataclass(frozen=True)
class Rows:
  """Checked inputs of a row-wise loss with integer labels."""

  x: jax.Array  # predictions in the computation dtype, masked rows sanitized
  dtype: np.dtype
  axis: int
  mask: jax.Array | None  # unreduced-loss shaped (where & not ignored), or None
  labels: jax.Array  # in [0, C): invalid and masked labels replaced by 0
  bad: jax.Array  # unreduced-loss shaped: label out of range (or negative class weight)
  extra: jax.Array | None  # class weight of each row's label, or None

  @property
  def num_classes(self) -> int:
    return self.x.shape[self.axis]

  def onehot(self) -> jax.Array:
    """``[j = y]`` along ``axis`` (a compare, fused into its consumer)."""
    return lax.broadcasted_iota(self.labels.dtype, self.x.shape, self.axis) == jnp.expand_dims(self.labels, self.axis)

  def picked(self, x: jax.Array | None = None) -> jax.Array:
    """``x[..., y, ...]`` per row (``x`` defaults to the predictions)."""
    x = self.x if x is None else x
    idx = jnp.expand_dims(self.labels, self.axis)
    return jnp.squeeze(jnp.take_along_axis(x, idx, axis=self.axis, mode="promise_in_bounds"), self.axis)

  def reduce(self, loss: jax.Array, weights: Any, reduction: str) -> jax.Array:
    return _base.reduce_loss(_base.nan_where(self.bad, loss), weights=weights, where=self.mask, reduction=reduction,
                             extra_weights=self.extra)


def check_ignore_index(ignore_index: Any) -> None:
  if ignore_index is not None and not isinstance(ignore_index, (int, np.integer)):
    raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}.")


def integer_label_rows(name: str, predictions: Any, labels: Any, *, axis: int, where: Any,
                       class_weights: Any = None, ignore_index: int | None = None, fill: float = 0.0) -> Rows:
  """The checked, sanitized inputs of a row-wise loss with integer labels (see module docstring).

  Args:
    name: the predictions' argument name, for error messages.
    predictions: floating array, classes along ``axis``.
    labels: integer array, ``predictions.shape`` without ``axis``.
    axis: the class axis.
    where: optional boolean mask of the rows.
    class_weights: optional ``[C]`` non-negative weights (PyTorch's ``weight``).
    ignore_index: optional label value whose rows are excluded.
    fill: the value masked rows of the predictions are replaced by.
  """
  x, dtype = _base.as_predictions(name, predictions)
  axis = _base.normalize_axis(axis, x.ndim)
  row_shape = tuple(d for i, d in enumerate(x.shape) if i != axis)
  mask = _base.prepare_where(where, row_shape)
  labels = _base.as_integer_labels("labels", labels)
  if tuple(labels.shape) != row_shape:
    raise ValueError(
        f"labels must have the {name}' shape without axis {axis}, i.e. {row_shape}; got "
        f"labels.shape={tuple(labels.shape)} for {name}.shape={tuple(x.shape)}.")
  c = x.shape[axis]
  check_ignore_index(ignore_index)
  if ignore_index is not None:
    keep = labels != ignore_index
    mask = keep if mask is None else mask & keep
  in_range = (labels >= 0) & (labels < c)
  bad = ~in_range if mask is None else mask & ~in_range
  ignored = "" if ignore_index is None else f" or ignore_index={ignore_index}"
  _base.runtime_check(~bad, f"labels must be class indices in [0, {c}){ignored}; got {{v}}.",
                      v=_base.first_flagged(labels, bad))
  safe = jnp.where(in_range, labels, jnp.zeros((), labels.dtype))
  if mask is not None:
    safe = jnp.where(mask, safe, jnp.zeros((), labels.dtype))
  x = _base.sanitize(x, mask, fill=fill, axis=axis)
  extra = None
  if class_weights is not None:
    cw = jnp.asarray(class_weights)
    if not (jnp.issubdtype(cw.dtype, jnp.floating) or jnp.issubdtype(cw.dtype, jnp.integer)):
      raise TypeError(f"class_weights must be numeric, got dtype {cw.dtype}.")
    if cw.shape != (c,):
      raise ValueError(f"class_weights must have shape ({c},) (one per class), got class_weights.shape={cw.shape}.")
    cw = cw.astype(dtype)
    _base.runtime_check(cw >= 0, "class_weights must be non-negative; got min {m}.", m=_base.value_min(cw))
    extra = cw[safe]
    bad = bad | ~(extra >= 0)
  return Rows(x=x, dtype=dtype, axis=axis, mask=mask, labels=safe, bad=bad, extra=extra)


# --------------------------------------------------------------------------
# helpers of the closed forms and references (specs and tests)
# --------------------------------------------------------------------------
def row_factor(labels: Any, class_weights: Any, ignore_index: int | None, dtype: Any) -> jax.Array:
  """The closed forms' per-row factor: the label's class weight, 0 on ignored rows."""
  labels = jnp.asarray(labels)
  w = jnp.ones(labels.shape, dtype)
  if class_weights is not None:
    w = jnp.asarray(class_weights, dtype)[jnp.clip(labels, 0, None)]
  if ignore_index is not None:
    w = jnp.where(labels == ignore_index, jnp.zeros((), dtype), w)
  return w


def np_row_factor(labels: Any, class_weights: Any, ignore_index: int | None, c: int) -> tuple[np.ndarray, np.ndarray]:
  """NumPy: ``(factor, ok)`` per row (``ok``: the label is valid or ignored)."""
  labels = np.asarray(labels)
  safe = np.clip(labels, 0, c - 1)
  w = np.ones(labels.shape) if class_weights is None else np.asarray(class_weights, np.float64)[safe]
  ok = (labels >= 0) & (labels < c)
  if ignore_index is not None:
    w = np.where(labels == ignore_index, 0.0, w)
    ok = ok | (labels == ignore_index)
  return w, ok
