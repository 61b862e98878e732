r"""Pairwise learning-to-rank losses (family "metric"), one value per list.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
errors) are documented once in :mod:`jaxloss._base`.

A list is a vector of item ``scores`` along ``axis`` with relevance
``labels`` of the same shape. Its pairs are the ordered pairs :math:`(i, j)`
with :math:`y_i > y_j` (ties and an item with itself form no pair), and with
:math:`\Delta_{ij} = s_i - s_j` the loss of a list is the **mean over its pairs**
of a pair loss :math:`f(\Delta_{ij})`:

.. math::
   \ell = \frac{1}{|\mathcal P|}\sum_{(i, j)\in\mathcal P} f(s_i - s_j), \qquad
   \frac{\partial \ell}{\partial s_k} = \frac{1}{|\mathcal P|}\Bigl(\sum_{j: (k, j)\in\mathcal P} f'(\Delta_{kj})
     - \sum_{i: (i, k)\in\mathcal P} f'(\Delta_{ik})\Bigr).

A list without pairs (all labels equal) has no loss: its value is 0 and it is
left out of ``"mean"``, as if masked. NaN labels make their list NaN.

These are the pair losses of Rax (``rax.pairwise_logistic_loss``,
``rax.pairwise_hinge_loss``) and TF-Ranking; optax 0.2.8 has neither (its
``optax.losses`` has only ``ranking_softmax_loss``). Rax's default
``reduce_fn=jnp.mean`` averages over all pairs of the batch, so lists with more
pairs weigh more; here every list counts once. They agree when all lists have
the same number of pairs; Rax's number is ``loss(s, y, weights=n_pairs)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base
from jaxloss._spec import EdgeCase, LossSpec

__all__ = ["pairwise_logistic_loss", "pairwise_hinge_loss"]

ArrayLike = jax.typing.ArrayLike


def _pairs(scores, labels, axis, where):
  """Moves the list axis last; returns ``(delta [..., n, n], valid pairs, n_pairs, bad, mask)``."""
  s, dtype = _base.as_predictions("scores", scores)
  ax = _base.normalize_axis(axis, s.ndim)
  y = _base.as_targets("labels", labels, dtype)
  _base.check_same_shape("scores", s, "labels", y)
  mask = _base.prepare_where(where, s.shape[:ax] + s.shape[ax + 1:])
  s, y = _base.sanitize(s, mask, axis=ax), _base.sanitize(y, mask, axis=ax)
  s, y = jnp.moveaxis(s, ax, -1), jnp.moveaxis(y, ax, -1)
  bad = jnp.any(jnp.isnan(y), axis=-1)
  _base.runtime_check(~bad, "labels must not be NaN.")
  valid = y[..., :, None] > y[..., None, :]
  delta = s[..., :, None] - s[..., None, :]
  n_pairs = jnp.sum(valid, axis=(-2, -1)).astype(dtype)
  return delta, valid, n_pairs, bad, mask


def _pairwise(pair_fn, scores, labels, axis, weights, where, reduction):
  delta, valid, n_pairs, bad, mask = _pairs(scores, labels, axis, where)
  total = jnp.sum(jnp.where(valid, pair_fn(delta), jnp.zeros_like(delta)), axis=(-2, -1))
  has = n_pairs > 0
  loss = _base.nan_where(bad, total / jnp.where(has, n_pairs, jnp.ones_like(n_pairs)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction, extra_weights=has)


def pairwise_logistic_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Pairwise logistic (RankNet) loss, one value per list (see :mod:`jaxloss._ranking`).

  .. math::
     f(\Delta) = \log(1 + e^{-\Delta}) = \operatorname{softplus}(-\Delta), \qquad
     f'(\Delta) = -\sigma(-\Delta),

  so (by hand) :math:`\partial\ell/\partial s_k = \frac{1}{|\mathcal P|}\bigl(
  -\sum_{j:(k,j)\in\mathcal P}\sigma(s_j - s_k) + \sum_{i:(i,k)\in\mathcal P}\sigma(s_k - s_i)\bigr)`.

  Args:
    scores: floating array, lists along ``axis``.
    labels: relevance labels (any real dtype), the same shape; only their order matters.
    axis: the list axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per list).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per list.

  References:
    Burges et al., `Learning to Rank using Gradient Descent
    <https://doi.org/10.1145/1102351.1102363>`_, ICML 2005;
    ``rax.pairwise_logistic_loss``.
  """
  return _pairwise(lambda d: jax.nn.softplus(-d), scores, labels, axis, weights, where, reduction)


def pairwise_hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Pairwise hinge (RankSVM) loss, one value per list (see :mod:`jaxloss._ranking`).

  .. math::
     f(\Delta) = \max(0, 1 - \Delta), \qquad f'(\Delta) = -[1 - \Delta > 0]

  (by hand; subgradient 0 exactly at :math:`\Delta = 1`, as ``jax.nn.relu``).

  Args:
    scores: floating array, lists along ``axis``.
    labels: relevance labels (any real dtype), the same shape; only their order matters.
    axis: the list axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per list).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per list.

  References:
    Joachims, `Optimizing Search Engines using Clickthrough Data
    <https://doi.org/10.1145/775047.775067>`_, KDD 2002; ``rax.pairwise_hinge_loss``.
  """
  return _pairwise(lambda d: jax.nn.relu(1.0 - d), scores, labels, axis, weights, where, reduction)


def _pair_grad(dpair, s, y, axis):
  """Closed-form gradient from the pair derivative ``dpair(delta)`` (module docstring)."""
  s = jnp.moveaxis(s, axis, -1)
  y = jnp.moveaxis(jnp.asarray(y).astype(s.dtype), axis, -1)
  valid = y[..., :, None] > y[..., None, :]
  n = jnp.sum(valid, axis=(-2, -1)).astype(s.dtype)[..., None, None]
  g = jnp.where(valid, dpair(s[..., :, None] - s[..., None, :]), 0.0) / jnp.where(n > 0, n, 1.0)
  return jnp.moveaxis(jnp.sum(g, axis=-1) - jnp.sum(g, axis=-2), -1, axis)


def _logistic_ds(s, y, axis=-1):
  return _pair_grad(lambda d: -jax.nn.sigmoid(-d), s, y, axis)


def _hinge_ds(s, y, axis=-1):
  return _pair_grad(lambda d: -(1.0 - d > 0).astype(d.dtype), s, y, axis)


def _reference(pair_fn, s, y, axis):
  s = np.moveaxis(np.asarray(s, np.float64), axis, -1)
  y = np.moveaxis(np.asarray(y, np.float64), axis, -1)
  out = np.zeros(s.shape[:-1])
  for idx in np.ndindex(*s.shape[:-1]):
    vals = [pair_fn(s[idx][i] - s[idx][j]) for i in range(s.shape[-1]) for j in range(s.shape[-1])
            if y[idx][i] > y[idx][j]]
    out[idx] = np.nan if np.isnan(y[idx]).any() else (np.mean(vals) if vals else 0.0)
  return out


def _sample_ranking(key, dtype, shape=(3, 5)):
  """Scores and graded relevance 0..3 (ties included); every list has at least one pair."""
  k1, k2 = jax.random.split(key)
  s = jax.random.normal(k1, shape, jnp.float32).astype(dtype)
  y = jax.random.randint(k2, shape, 0, 4).astype(jnp.int32)
  y = y.at[..., 0].set(3).at[..., 1].set(0)
  return s, y


def _naive(pair_fn, s, y):
  valid = y[..., :, None] > y[..., None, :]
  return jnp.sum(jnp.where(valid, pair_fn(s[..., :, None] - s[..., None, :]), 0.0), (-2, -1)) / jnp.sum(valid, (-2, -1))


def _bench_ranking(key, dtype, elems):
  """Lists of 16 items, at most 8192 of them (the pair tensor is [lists, 16, 16])."""
  return _sample_ranking(key, dtype, shape=(int(min(8192, max(1, elems // 16))), 16))


_EDGES = (
    EdgeCase((np.array([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]]), np.array([[2, 1, 0], [1, 1, 1]])),
             "a list of equal labels: no pairs, excluded"),
    EdgeCase((np.array([[2.0, 1.0, 0.0, 0.0], [3.0, 3.0, -1.0, 2.0]]),
              np.array([[3.0, 2.0, 0.0, 0.0], [1.0, 0.0, 2.0, 2.0]])),
             "score ties, label ties, margins exactly 1 (hinge kink)"),
    EdgeCase((np.array([[30.0, -30.0], [-30.0, 30.0]]), np.array([[1, 0], [1, 0]])), "saturated pairs"),
    EdgeCase((np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, np.nan], [1.0, 0.0]])), "NaN label: NaN list",
             in_domain=False),
)


PAIRWISE_LOGISTIC_LOSS = LossSpec(
    name="pairwise_logistic_loss",
    family="metric",
    fn=pairwise_logistic_loss,
    arg_names=("scores", "labels"),
    grads={0: _logistic_ds},
    sample=_sample_ranking,
    reference=lambda s, y, axis=-1: _reference(lambda d: np.logaddexp(0.0, -d), s, y, axis),
    edge_cases=_EDGES,
    configs=({}, {"axis": 0}),
    rowwise=True,
    formula=r"\operatorname{mean}_{y_i > y_j} \log(1 + e^{-(s_i - s_j)})",
    domain="scores real; labels real (ordered)",
    naive=lambda s, y: _naive(lambda d: jax.nn.softplus(-d), s, y),
    bench_sample=_bench_ranking,
)

PAIRWISE_HINGE_LOSS = LossSpec(
    name="pairwise_hinge_loss",
    family="metric",
    fn=pairwise_hinge_loss,
    arg_names=("scores", "labels"),
    grads={0: _hinge_ds},
    sample=_sample_ranking,
    reference=lambda s, y, axis=-1: _reference(lambda d: max(0.0, 1.0 - d), s, y, axis),
    edge_cases=_EDGES,
    configs=({}, {"axis": 0}),
    rowwise=True,
    formula=r"\operatorname{mean}_{y_i > y_j} \max(0, 1 - (s_i - s_j))",
    domain="scores real; labels real (ordered)",
    naive=lambda s, y: _naive(lambda d: jax.nn.relu(1.0 - d), s, y),
    bench_sample=_bench_ranking,
)

SPECS = (PAIRWISE_LOGISTIC_LOSS, PAIRWISE_HINGE_LOSS)
