r"""Sparsemax losses (Fenchel-Young losses of the Gini negentropy): binary and multiclass.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
values) are documented once in :mod:`jaxloss._base`.

**Sparsemax** (Martins and Astudillo, 2016) is the Euclidean projection of the
scores onto the probability simplex, :math:`\pi(z) = \arg\min_{p \in \Delta}
\|p - z\|^2 = (z - \tau)_+`, with the threshold computed from the scores
sorted in decreasing order, :math:`z_{(1)} \ge \dots \ge z_{(C)}`:

.. math::
   k(z) = \max\Bigl\{k : 1 + k z_{(k)} > \sum_{j \le k} z_{(j)}\Bigr\}, \qquad
   \tau(z) = \frac{\sum_{j \le k(z)} z_{(j)} - 1}{k(z)}.

jaxloss finds the support :math:`S = \{j : z_j > \tau\}` with Michelot's
fixed point (a few passes over the scores; the sort above is the fallback for
rows that do not settle) and computes :math:`\tau = (\sum_{j \in S} z_j - 1) / |S|`
from it: at the large benchmark size (1024 x 1024) that is many times faster
than sorting every row, as optax does. (Under ``vmap`` the fallback's
``lax.cond`` becomes a select and the sort always runs.)

(Keras 3's ``keras.activations.sparsemax`` had this threshold wrong, see
keras-team/keras#23425; jaxloss's tests compare with an independent
transcription of the definition above.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxloss import _base, _labels
from jaxloss._classification import (
  _cast_like_logits,
  _diag_hessian,
  _label_dtype,
  _rowwise_hessian,
  _sample_focal,
  _sample_int_labels,
)
from jaxloss._spec import EdgeCase, LossSpec, optax_loss

__all__ = [
    "sparsemax_loss",
    "multiclass_sparsemax_loss",
]

ArrayLike = jax.typing.ArrayLike
_NEG = -np.inf


# --------------------------------------------------------------------------
# binary sparsemax loss
# --------------------------------------------------------------------------
def sparsemax_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Binary sparsemax loss, elementwise; the same value as ``optax.losses.sparsemax_loss`` on 0/1 labels.

  The Fenchel-Young loss of the binary Gini negentropy :math:`\Omega(y) =
  -y(1 - y)`, whose prediction map is the sparse sigmoid
  :math:`\operatorname{clip}((z + 1) / 2, 0, 1)`:

  .. math::
     \ell(z, y) = \operatorname{sparseplus}(z) - y z - y (1 - y) =
     \begin{cases}
       y\,(y - 1 - z) & z \le -1 \\
       \tfrac14 (z + 1 - 2y)^2 & |z| < 1 \\
       (1 - y)(z - y) & z \ge 1
     \end{cases}

  computed in the second (cancellation-free) form, written once for the three
  pieces as :math:`g\,(g + z - \operatorname{clip}(z, -1, 1))` with
  :math:`g = \partial_z \ell` below (a ``jax.custom_jvp`` carries the
  derivatives). For :math:`y \in \{0, 1\}`
  this is ``sparse_plus(z)`` resp. ``sparse_plus(-z)``; soft labels
  :math:`y \in [0, 1]` are accepted (the loss is 0 exactly at
  :math:`z = 2y - 1`, the sparse-sigmoid preimage of :math:`y`).

  Derivatives (by hand):

  .. math::
     \partial_z \ell = \operatorname{clip}\Bigl(\frac{z + 1}{2}, 0, 1\Bigr) - y, \qquad
     \partial_z^2 \ell = \tfrac12 [|z| < 1], \qquad
     \partial_y \ell = 2y - 1 - z.

  Labels outside [0, 1] (or NaN) make their element NaN. At infinite logits
  the loss is 0 on the right side (``0 * inf = 0``, label derivative 0 there)
  and :math:`+\infty` on the wrong one.

  Args:
    logits: floating array.
    labels: labels in [0, 1] (0/1 or soft), same shape.
    weights, where, reduction: see :mod:`jaxloss._base`.

  References:
    Blondel, Martins and Niculae, *Learning with Fenchel-Young Losses*, JMLR 21,
    2020, section 4.4.
  """
  z, y, mask, _ = _base.elementwise_inputs("logits", logits, "labels", labels, where)
  z = _base.sanitize(z, mask)
  y = _base.sanitize(y, mask)
  bad = _base.check_probabilities("labels", y)
  loss = _base.nan_where(bad, _binary_sparsemax(z, y))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _bsm_slope(z, y):
  r"""``(g, d)``: the slope :math:`g = \operatorname{clip}((z + 1)/2, 0, 1) - y`, and :math:`d = z - c`.

  :math:`c = \operatorname{clip}(z, -1, 1)`.
  """
  c = jnp.clip(z, -1, 1)
  return (c + 1) * 0.5 - y, z - c


@jax.custom_jvp
def _binary_sparsemax(z, y):
  r""":math:`g\,(g + d)`: the three pieces at once (:math:`d = 0` inside, :math:`g \in \{-y, 1 - y\}` outside).

  A zero slope :math:`g` gives 0 also where :math:`d = \pm\infty` (the right side of an infinite logit).
  """
  g, d = _bsm_slope(z, y)
  return jnp.where(g == 0, jnp.zeros((), z.dtype), g * (g + d))


@_binary_sparsemax.defjvp
def _binary_sparsemax_jvp(primals, tangents):
  (z, y), (dz, dy) = primals, tangents
  g, _ = _bsm_slope(z, y)
  out = _binary_sparsemax(z, y)
  # d ell / dy = 2y - 1 - z, taken as 0 on the right side of an infinite logit (0 * inf = 0, as in the value)
  dy_coef = jnp.where((g == 0) & jnp.isinf(z), jnp.zeros((), z.dtype), 2 * y - 1 - z)
  return out, g * dz + dy_coef * dy


def _bsm_dz(z, y):
  z, y = _cast_like_logits(z, y)
  return jnp.clip((z + 1) / 2, 0, 1) - y


def _bsm_dy(z, y):
  z, y = _cast_like_logits(z, y)
  # 0 * inf = 0: at an infinite logit on the right side the loss term's coefficient is 0
  right = ((z == jnp.inf) & (y == 1)) | ((z == -jnp.inf) & (y == 0))
  return jnp.where(right, 0.0, 2 * y - 1 - z)


def _bsm_hessian(z, y):
  z, y = _cast_like_logits(z, y)
  return _diag_hessian(jnp.broadcast_to(jnp.where(jnp.abs(z) < 1, 0.5, 0.0).astype(z.dtype), z.shape))


def _ref_bsm(z, y):
  z = np.asarray(z, np.float64)
  y = np.asarray(y, np.float64)
  # the Fenchel-Young definition: Omega*(z) - y z + Omega(y), Omega*(z) = max_{0<=p<=1} p z + p (1 - p)
  p = np.clip((z + 1) / 2, 0, 1)
  with np.errstate(invalid="ignore"):
    conj = np.where(p == 0, 0.0, p * z) + p * (1 - p)
    out = conj - np.where(y == 0, 0.0, y * z) - y * (1 - y)
  out = np.where(np.isinf(z) & (((z > 0) & (y == 1)) | ((z < 0) & (y == 0))), 0.0, out)
  return np.where((y >= 0) & (y <= 1), out, np.nan)


def _sample_bsm(key, dtype, shape=(4, 5)):
  """The sigmoid focal loss's sample (hard and soft labels), logits moved away from the kinks at +-1."""
  z, y = _sample_focal(key, jnp.float32, shape)
  z = jnp.where(jnp.abs(jnp.abs(z) - 1) < 0.05, z + 0.2, z).astype(dtype)
  return z, y.astype(_label_dtype(dtype))


SPARSEMAX_LOSS = LossSpec(
    name="sparsemax_loss",
    family="classification",
    fn=sparsemax_loss,
    arg_names=("logits", "labels"),
    grads={0: _bsm_dz, 1: _bsm_dy},
    hessian=_bsm_hessian,
    sample=_sample_bsm,
    reference=_ref_bsm,
    edge_cases=(
        EdgeCase((np.array([-1e4, -1.0, 1.0, 1e4, -1e4, -1.0, 1.0, 1e4, np.inf, -np.inf]),
                  np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])),
                 "saturated and infinite logits, exactly at the kinks z = +-1, hard labels"),
        EdgeCase((np.array([-0.4, 0.6, 3.0, -3.0]), np.array([0.3, 0.8, 0.5, 0.5])), "soft labels, one at its zero"),
        EdgeCase((np.array([np.inf, -np.inf]), np.array([0.0, 1.0])), "infinite logits on the wrong side: +inf"),
        EdgeCase((np.array([0.5, 0.5]), np.array([1.5, -0.5])), "labels outside [0, 1]", in_domain=False),
    ),
    formula=r"\operatorname{sparseplus}(z) - y z - y (1 - y)",
    domain="z in [-inf, inf], y in [0, 1]",
    optax_peer=optax_loss("sparsemax_loss"),
    naive=lambda z, y: jax.nn.sparse_plus(jnp.where(y > 0.5, -z, z)),
    float_argnums=(0,),
)


# --------------------------------------------------------------------------
# multiclass sparsemax loss
# --------------------------------------------------------------------------
def _threshold_by_sorting(z: jax.Array, axis: int) -> jax.Array:
  r""":math:`\tau` from the sorted scores (the module docstring's definition)."""
  zs = jnp.flip(jnp.sort(z, axis=axis), axis=axis)
  cs = jnp.cumsum(zs, axis=axis)
  k = lax.broadcasted_iota(jnp.int32, zs.shape, axis) + 1
  support = 1 + k.astype(z.dtype) * zs > cs
  size = jnp.maximum(jnp.sum(support, axis=axis, keepdims=True, dtype=jnp.int32), 1)
  top = jnp.take_along_axis(cs, size - 1, axis=axis, mode="promise_in_bounds")
  return (top - 1) / size.astype(z.dtype)


def _support_threshold(z: jax.Array, support: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
  r"""``(tau, |S|)`` of a candidate support: :math:`(\sum_S z_j - 1) / |S|` (``|S|`` at least 1)."""
  size = jnp.maximum(jnp.sum(support, axis=axis, keepdims=True, dtype=jnp.int32), 1)
  total = jnp.sum(jnp.where(support, z, jnp.zeros((), z.dtype)), axis=axis, keepdims=True)
  return (total - 1) / size.astype(z.dtype), size


_FIXED_POINT_STEPS = 24


def _threshold_by_fixed_point(z: jax.Array, axis: int) -> jax.Array:
  r"""Michelot's fixed point :math:`S \leftarrow \{j : z_j > \tau(S)\}`, from :math:`S_0 = \{z_j > \max z - 1\}`.

  :math:`S_0` contains the support (:math:`\tau \ge \max z - 1`), the
  thresholds of the shrinking sets increase to :math:`\tau` and the support
  stops changing after a few passes over the scores (1 to 4 for the usual
  logits, against a sort). Rows that have not settled after
  ``_FIXED_POINT_STEPS`` passes (adversarial inputs, or rounding that
  oscillates) fall back to the sort, so the result is always the exact
  threshold of its support.
  """
  m = jnp.max(z, axis=axis, keepdims=True)
  tau, size = _support_threshold(z, z > m - 1, axis)

  def step(state):
    i, tau, size, _ = state
    new_tau, new_size = _support_threshold(z, z > tau, axis)
    return i + 1, new_tau, new_size, jnp.any(new_size != size)

  def running(state):
    i, _, _, changed = state
    return changed & (i < _FIXED_POINT_STEPS)

  _, tau, _, changed = lax.while_loop(running, step, (0, tau, size, jnp.asarray(True)))
  return lax.cond(changed, lambda: _threshold_by_sorting(z, axis), lambda: tau)


def sparsemax_threshold(z: jax.Array, axis: int) -> jax.Array:
  r"""The sparsemax threshold :math:`\tau(z)` of each row (keeps ``axis``); see the module docstring.

  The support :math:`S = \{j : z_j > \tau\}` is found without derivatives
  (a fixed-point iteration, with the sort as fallback), then
  :math:`\tau = (\sum_{j \in S} z_j - 1) / |S|` is computed from it, so that
  :math:`\partial \tau / \partial z_j = [j \in S] / |S|`. ``-inf`` scores are
  never in the support.
  """
  axis = axis % z.ndim
  zs = lax.stop_gradient(z)
  support = zs > _threshold_by_fixed_point(zs, axis)
  return _support_threshold(z, support, axis)[0]


def sparsemax(z: jax.Array, axis: int = -1) -> jax.Array:
  r"""Sparsemax, :math:`(z - \tau(z))_+` along ``axis`` (Martins and Astudillo, 2016)."""
  return jax.nn.relu(z - sparsemax_threshold(z, axis))


def _msm_parts(z, labels, axis):
  tau = sparsemax_threshold(z, axis)
  pi = jax.nn.relu(z - tau)
  onehot = lax.broadcasted_iota(labels.dtype, z.shape, axis) == jnp.expand_dims(labels, axis)
  off = jnp.where(onehot, jnp.zeros((), z.dtype), pi)
  r = jnp.sum(off, axis=axis)
  zy = jnp.take_along_axis(z, jnp.expand_dims(labels, axis), axis=axis, mode="promise_in_bounds")
  # (tau - z_y)_+ with slope 1 at 0: a label exactly at the threshold is outside the support, for the sort (strict
  # >), for relu(z - tau) (slope 0 at 0) and here, so that autodiff of this value (the Hessian path) is consistent.
  gap = tau - zy
  loss = 0.5 * (r * r + jnp.sum(off * off, axis=axis)) + jnp.squeeze(jnp.where(gap >= 0, gap, 0), axis)
  return loss, pi, onehot


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _msm(z, labels, axis):
  r""":math:`\tfrac12\|\pi - e_y\|^2 + (\tau - z_y)_+` per row; ``labels`` in ``[0, C)``."""
  return _msm_parts(z, labels, axis)[0]


@_msm.defjvp
def _msm_jvp(axis, primals, tangents):
  z, labels = primals
  dz, _ = tangents
  loss, pi, onehot = _msm_parts(z, labels, axis)
  return loss, jnp.sum((pi - onehot.astype(z.dtype)) * dz, axis=axis)


def multiclass_sparsemax_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Multiclass sparsemax loss with integer labels, one value per row; the same value as optax's.

  The Fenchel-Young loss of the Gini negentropy :math:`\Omega(p) =
  \tfrac12(\|p\|^2 - 1)` on the simplex, with :math:`\pi = \operatorname{sparsemax}(z)`:

  .. math::
     \ell(z, y) = \Omega^*(z) - z_y + \Omega(e_y)
     = \langle \pi, z - z_y \rangle + \tfrac12\bigl(1 - \|\pi\|^2\bigr)
     = \tfrac12 \|\pi - e_y\|^2 + (\tau - z_y)_+ .

  The last form (from :math:`z - \pi = \min(z, \tau)` elementwise and
  :math:`\sum_j \pi_j = 1`) is a sum of non-negative terms and is how the loss
  is computed, with :math:`\|\pi - e_y\|^2 = (\sum_{j \ne y} \pi_j)^2 +
  \sum_{j \ne y} \pi_j^2`: the second form (optax's) cancels when :math:`\pi`
  is nearly :math:`e_y` (e.g. scores ``[1, 0.001]``: a loss of 2.5e-7 from
  terms of size 5e-4). The loss is 0 iff :math:`\pi = e_y`, i.e.
  :math:`z_y \ge z_j + 1` for all :math:`j \ne y`.

  Derivatives (by hand; Danskin's theorem for :math:`\Omega^*`, and the
  Jacobian of the projection on its support :math:`S = \{j : z_j > \tau\}`):

  .. math::
     \partial_z \ell = \pi - e_y, \qquad
     \partial_z^2 \ell = \operatorname{diag}(s) - \frac{s s^\top}{|S|}, \quad s_j = [j \in S],

  continuous in :math:`z` (the Hessian jumps where a score crosses
  :math:`\tau`). The first derivative is a ``jax.custom_jvp``, so ``grad``
  never differentiates through the threshold's search. Labels outside :math:`[0, C)` make
  their row NaN; ``-inf`` scores off the label are never in the support.

  Args:
    scores: floating array, classes along ``axis``.
    labels: integer array, ``scores.shape`` without ``axis``.
    axis: the class axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  References:
    Martins and Astudillo, *From Softmax to Sparsemax: A Sparse Model of
    Attention and Multi-Label Classification*, ICML 2016.
    Blondel, Martins and Niculae, *Learning with Fenchel-Young Losses*, JMLR 21, 2020.
    Michelot, *A Finite Algorithm for Finding the Projection of a Point onto
    the Canonical Simplex of R^n*, JOTA 50, 1986 (the threshold's search).
  """
  rows = _labels.integer_label_rows("scores", scores, labels, axis=axis, where=where)
  return rows.reduce(_msm(rows.x, rows.labels, rows.axis), weights, reduction)


def _np_sparsemax_bisect(z):
  """Float64 sparsemax of one row by bisection on tau (sum (z - tau)_+ = 1), then the exact tau of its support."""
  z = np.asarray(z, np.float64)
  hi = np.max(z)
  lo = hi - 1.0
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if np.sum(np.maximum(z - mid, 0.0)) > 1.0:
      lo = mid
    else:
      hi = mid
  support = z > lo
  tau = (np.sum(z[support]) - 1.0) / np.sum(support)
  return np.maximum(z - tau, 0.0)


def _ref_msm(z, labels, *, axis=-1):
  z = np.moveaxis(np.asarray(z, np.float64), axis, -1)
  labels = np.asarray(labels)
  c = z.shape[-1]
  out = np.full(labels.shape, np.nan)
  for idx in np.ndindex(labels.shape):
    y = labels[idx]
    if not 0 <= y < c:
      continue
    row = z[idx]
    if not np.isfinite(row[y]):
      out[idx] = np.inf
      continue
    pi = _np_sparsemax_bisect(row)
    # <pi, z - z_y> + (1 - |pi|^2) / 2, the definition
    gap = np.where(pi > 0, row - row[y], 0.0)
    out[idx] = np.dot(pi, gap) + 0.5 * (1.0 - np.dot(pi, pi))
  return out


def _msm_dz(z, labels, *, axis=-1):
  (z,) = _cast_like_logits(z)
  return sparsemax(z, axis) - jax.nn.one_hot(labels, z.shape[axis], dtype=z.dtype, axis=axis)


def _msm_hessian(z, labels, *, axis=-1):
  (z,) = _cast_like_logits(z)
  zl = jnp.moveaxis(z, axis, -1)
  s = (zl > sparsemax_threshold(zl, -1)).astype(z.dtype)
  blocks = jnp.einsum("...j,jk->...jk", s, jnp.eye(s.shape[-1], dtype=s.dtype))
  blocks = blocks - s[..., :, None] * s[..., None, :] / jnp.sum(s, axis=-1)[..., None, None]
  return _rowwise_hessian(blocks, z.shape, axis)


MULTICLASS_SPARSEMAX_LOSS = LossSpec(
    name="multiclass_sparsemax_loss",
    family="classification",
    fn=multiclass_sparsemax_loss,
    arg_names=("scores", "labels"),
    grads={0: _msm_dz},
    hessian=_msm_hessian,
    sample=_sample_int_labels,
    reference=_ref_msm,
    edge_cases=(
        EdgeCase((np.array([[5.0, 1.0, 0.0], [0.0, 2.5, -1.0], [1e4, 0.0, -1e4], [0.3, 0.2, 0.1]]),
                  np.array([0, 0, 2, 1])), "zero loss, label off the support, huge scores, all in the support"),
        EdgeCase((np.array([[3.0, 3.0, -2.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]), np.array([1, 2, 0])),
                 "tied maxima"),
        EdgeCase((np.array([[1.0, 0.0, -5.0], [2.0, 1.0, 1.0]]), np.array([0, 1])),
                 "a score exactly at the threshold (on the support's boundary)"),
        EdgeCase((np.array([[0.5, _NEG, 2.0, _NEG], [_NEG, -1.0, _NEG, 3.0]]), np.array([2, 1])),
                 "-inf scores off the label"),
        EdgeCase((np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]]), np.array([0, 2])), "labels at the range ends"),
        EdgeCase((np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([2, -1])), "labels out of range", in_domain=False),
    ),
    rowwise=True,
    formula=r"\tfrac12 \|\operatorname{sparsemax}(z) - e_y\|^2 + (\tau(z) - z_y)_+",
    domain="z in [-inf, inf) per class, finite at the label; labels in [0, C)",
    optax_peer=optax_loss("multiclass_sparsemax_loss"),
    float_argnums=(0,),
)


SPECS = (
    SPARSEMAX_LOSS,
    MULTICLASS_SPARSEMAX_LOSS,
)
