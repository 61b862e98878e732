r"""Similarity and metric-learning losses: cosine, embedding, triplet, margin-ranking, NT-Xent.

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
errors) are documented once in :mod:`jaxloss._base`. The pairwise ranking
losses of the same family live in :mod:`jaxloss._ranking`.

**The zero-vector rule** (every cosine in this module). The unit vector of
:math:`x` is

.. math::
   \hat x = \frac{x}{\max(\lVert x\rVert_2, \epsilon)}, \qquad \epsilon = 10^{-8}
   \text{ by default},

so :math:`\cos(x, y) = \hat x \cdot \hat y` is 0 when either vector is 0, and
both its value and its gradient are finite everywhere: for
:math:`\lVert x\rVert > \epsilon`,
:math:`\partial_x \cos = (\hat y - \cos\,\hat x)/\lVert x\rVert`, and for
:math:`\lVert x\rVert \le \epsilon` (the zero vector included) the map
:math:`x \mapsto x/\epsilon` is linear, so :math:`\partial_x \cos = \hat y/\epsilon`
(of size :math:`1/\epsilon` when :math:`y \ne 0`: a zero embedding is pushed
hard towards the target's direction). This is PyTorch's
``F.cosine_similarity(eps=1e-8)`` rule (each norm clamped separately). optax's
``cosine_similarity`` clamps the *squared* norms at ``epsilon`` (default 0:
NaN at a zero vector); Keras's ``cosine_similarity`` normalizes with
:math:`\max(\lVert x\rVert^2, 10^{-12})` and returns the *negated* cosine. See
``docs/conventions.md``.

**Labels** of the pair losses (:func:`cosine_embedding_loss`,
:func:`margin_ranking_loss`, :func:`hinge_embedding_loss`) must be -1 or +1;
any other value makes that element NaN (and raises inside
:func:`jaxloss.runtime_checks` under ``checkify``). PyTorch accepts any value
there and computes a mixture.

**Kinks.** Every :math:`\max(0, z)` has the subgradient 0 at :math:`z = 0`
(as ``jax.nn.relu``; the project's convention). PyTorch's ``clamp_min(0)``
passes the full gradient at :math:`z = 0` (measured for the margin-ranking,
hinge-embedding and triplet losses); the parity tests keep random points off
the kink and check the kink itself against that rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base
from jaxloss._spec import EdgeCase, LossSpec, optax_loss

__all__ = [
    "cosine_similarity",
    "cosine_distance",
    "cosine_embedding_loss",
    "triplet_margin_loss",
    "margin_ranking_loss",
    "hinge_embedding_loss",
    "ntxent",
]

ArrayLike = jax.typing.ArrayLike
_EPS = 1e-8


# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------
def _rows(name, x, axis, where):
  """Cast a floating array whose rows lie along ``axis``; returns ``(x, axis, mask, dtype)``."""
  x, dtype = _base.as_predictions(name, x)
  ax = _base.normalize_axis(axis, x.ndim)
  mask = _base.prepare_where(where, x.shape[:ax] + x.shape[ax + 1:])
  return _base.sanitize(x, mask, axis=ax), ax, mask, dtype


def _same_rows(name, x, ref_name, ref, ax, mask, dtype):
  """A second floating array of the same shape as ``ref``, cast to ``dtype`` and sanitized."""
  y = _base.as_targets(name, x, dtype)
  _base.check_same_shape(ref_name, ref, name, y)
  return _base.sanitize(y, mask, axis=ax)


def _check_eps(eps):
  return _base.check_scalar_in("eps", eps, 0.0, float("inf"), closed_low=False)


def _unit(x, eps, axis):
  """``(x / max(|x|, eps), max(|x|, eps), |x| > eps)`` along ``axis`` (kept), NaN-free at 0."""
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  e = jnp.asarray(eps).astype(x.dtype)
  big = sq > jnp.square(e)
  n = jnp.where(big, jnp.sqrt(jnp.where(big, sq, jnp.ones_like(sq))), e)
  return x / n, n, big


def _cos(x, y, eps, axis):
  xu, _, _ = _unit(x, eps, axis)
  yu, _, _ = _unit(y, eps, axis)
  return jnp.sum(xu * yu, axis=axis)


def _dcos(x, y, eps=_EPS, axis=-1):
  """Closed-form ``d cos(x, y) / dx`` under the zero-vector rule (module docstring)."""
  xu, n, big = _unit(x, eps, axis)
  yu, _, _ = _unit(y, eps, axis)
  c = jnp.sum(xu * yu, axis=axis, keepdims=True)
  return jnp.where(big, (yu - c * xu) / n, yu / n)


def _f64(*xs):
  return tuple(np.asarray(x, np.float64) for x in xs)


def _ref_unit(x, eps, axis):
  n = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
  return x / np.maximum(n, eps)


def _ref_cos(x, y, eps=_EPS, axis=-1):
  x, y = _f64(x, y)
  return np.sum(_ref_unit(x, eps, axis) * _ref_unit(y, eps, axis), axis=axis)


def _pm1(name, labels, shape, dtype, mask):
  """-1/+1 labels of the unreduced-loss shape, and the flag of the invalid ones."""
  y = _base.as_targets(name, labels, dtype)
  if y.shape != tuple(shape):
    raise ValueError(f"{name} must have the unreduced loss shape {tuple(shape)}, got {name}.shape={y.shape}.")
  y = _base.sanitize(y, mask, fill=1.0)
  bad = jnp.abs(y) != 1
  _base.runtime_check(~bad, f"{name} must be -1 or +1; got {{v}}.", v=_base.first_flagged(y, bad))
  return y, bad


def _relu(z):
  return jnp.where(z > 0, z, jnp.zeros_like(z))


def _pos(z):
  return (z > 0).astype(z.dtype)


def _sample_pairs(key, dtype, shape=(4, 5)):
  k1, k2 = jax.random.split(key)
  x = jax.random.normal(k1, shape, jnp.float32).astype(dtype)
  y = jax.random.normal(k2, shape, jnp.float32).astype(dtype)
  return x, y


def _pm1_sample(key, shape):
  return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1, -1).astype(jnp.int32)


# --------------------------------------------------------------------------
# cosine similarity and distance
# --------------------------------------------------------------------------
def cosine_similarity(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    eps: float = _EPS,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Cosine similarity of each row (optax's sign: 1 for parallel vectors; not a loss to minimize).

  .. math::
     s(x, y) = \hat x \cdot \hat y, \qquad \hat x = \frac{x}{\max(\lVert x\rVert_2, \epsilon)}

  (the zero-vector rule of :mod:`jaxloss._similarity`: 0 for a zero vector,
  with a finite gradient). To train, minimize :func:`cosine_distance`
  (:math:`1 - s`) or the negated similarity (Keras's ``cosine_similarity``).

  Derivatives (by hand): for :math:`\lVert x\rVert > \epsilon`,
  :math:`x \mapsto \hat x` has Jacobian
  :math:`(I - \hat x\hat x^\top)/\lVert x\rVert`, so

  .. math::
     \partial_x s = \frac{\hat y - s\,\hat x}{\lVert x\rVert}, \qquad
     \partial_y s = \frac{\hat x - s\,\hat y}{\lVert y\rVert},

  and for :math:`\lVert x\rVert \le \epsilon` (where :math:`\hat x = x/\epsilon`
  is linear) :math:`\partial_x s = \hat y / \epsilon`; symmetrically for
  :math:`y`. The derivative jumps at :math:`\lVert x\rVert = \epsilon`.

  Args:
    predictions: floating array, vectors along ``axis``.
    targets: array of the same shape.
    axis: the vector axis.
    eps: the norm floor :math:`\epsilon > 0`.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced similarity, or with ``reduction="none"`` one value per row.

  References:
    Salton and McGill, *Introduction to Modern Information Retrieval*, 1983;
    ``optax.losses.cosine_similarity``, ``torch.nn.functional.cosine_similarity``.
  """
  bad_eps = _check_eps(eps)
  x, ax, mask, dtype = _rows("predictions", predictions, axis, where)
  y = _same_rows("targets", targets, "predictions", x, ax, mask, dtype)
  loss = _base.nan_if(bad_eps, _cos(x, y, eps, ax))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def cosine_distance(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    eps: float = _EPS,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Cosine distance of each row, :math:`1 - \hat x \cdot \hat y` (in :math:`[0, 2]`).

  The zero-vector rule of :mod:`jaxloss._similarity` applies: a zero vector is
  at distance exactly 1 from everything, with the finite gradient
  :math:`-\hat y/\epsilon`.

  Derivatives (by hand): the negated ones of :func:`cosine_similarity`,

  .. math::
     \partial_x d = -\frac{\hat y - (\hat x\cdot\hat y)\,\hat x}{\lVert x\rVert}
     \ (\lVert x\rVert > \epsilon), \qquad
     \partial_x d = -\hat y / \epsilon \ (\lVert x\rVert \le \epsilon),

  and symmetrically for :math:`y`.

  Args:
    predictions: floating array, vectors along ``axis``.
    targets: array of the same shape.
    axis: the vector axis.
    eps: the norm floor :math:`\epsilon > 0`.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    ``optax.losses.cosine_distance``; Keras's ``cosine_similarity`` is
    :math:`d - 1`.
  """
  bad_eps = _check_eps(eps)
  x, ax, mask, dtype = _rows("predictions", predictions, axis, where)
  y = _same_rows("targets", targets, "predictions", x, ax, mask, dtype)
  loss = _base.nan_if(bad_eps, 1.0 - _cos(x, y, eps, ax))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _cos_dx(x, y, axis=-1, eps=_EPS):
  return _dcos(x, y, eps, axis)


def _cos_dy(x, y, axis=-1, eps=_EPS):
  return _dcos(y, x, eps, axis)


_ZERO_VECTORS = (
    np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [0.0, 0.0, 0.0], [3.0, 0.0, 4.0]]),
    np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-3.0, 0.0, -4.0]]),
)
_COS_EDGES = (
    # eps = 0.1: finite differences (steps ~1e-5) resolve the linear region |x| <= eps, which they cannot for
    # the default 1e-8 (tests/test_similarity.py checks the zero vectors at the default eps against PyTorch)
    EdgeCase(_ZERO_VECTORS, "zero vectors: value from the zero-vector rule, gradient y/eps (finite)",
             config={"eps": 0.1}),
    EdgeCase((np.array([[3e-9, -4e-9], [1e15, -1e15]]), np.array([[2.0, 1.0], [1e-20, 3e-20]])),
             "tiny (below eps) and huge norms"),
    EdgeCase((np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]]), np.array([[2.0, 4.0, 6.0], [0.0, 5.0, 0.0]])),
             "parallel and orthogonal"),
    EdgeCase((np.array([[0.05, 0.0], [0.0, 2.0]]), np.array([[1.0, 1.0], [3.0, -1.0]])),
             "a vector below eps = 0.1 (linear regime)", config={"eps": 0.1}),
)


def _neg(f):
  return lambda *a, **k: -f(*a, **k)


COSINE_SIMILARITY = LossSpec(
    name="cosine_similarity",
    family="metric",
    fn=cosine_similarity,
    arg_names=("predictions", "targets"),
    grads={0: _cos_dx, 1: _cos_dy},
    sample=_sample_pairs,
    reference=_ref_cos,
    edge_cases=_COS_EDGES,
    configs=({}, {"axis": 0}),
    rowwise=True,
    formula=r"\hat x \cdot \hat y,\ \hat x = x / \max(\Vert x\Vert, \epsilon)",
    domain="x, y real vectors (zero vectors allowed); eps > 0",
    optax_peer=optax_loss("cosine_similarity"),
    naive=lambda x, y: jnp.sum(x * y, -1) / (jnp.linalg.norm(x, axis=-1) * jnp.linalg.norm(y, axis=-1)),
    float_argnums=(0, 1),
)

COSINE_DISTANCE = LossSpec(
    name="cosine_distance",
    family="metric",
    fn=cosine_distance,
    arg_names=("predictions", "targets"),
    grads={0: _neg(_cos_dx), 1: _neg(_cos_dy)},
    sample=_sample_pairs,
    reference=lambda x, y, **k: 1.0 - _ref_cos(x, y, **k),
    edge_cases=_COS_EDGES,
    configs=({}, {"axis": 0}),
    rowwise=True,
    formula=r"1 - \hat x \cdot \hat y",
    domain="x, y real vectors (zero vectors allowed); eps > 0",
    optax_peer=optax_loss("cosine_distance"),
    naive=lambda x, y: 1.0 - jnp.sum(x * y, -1) / (jnp.linalg.norm(x, axis=-1) * jnp.linalg.norm(y, axis=-1)),
    float_argnums=(0, 1),
)


# --------------------------------------------------------------------------
# cosine embedding loss
# --------------------------------------------------------------------------
def cosine_embedding_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 0.0,
    axis: int = -1,
    eps: float = _EPS,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Cosine embedding loss (PyTorch's ``CosineEmbeddingLoss``), one value per row.

  With :math:`c = \hat x_1 \cdot \hat x_2` (the zero-vector rule of
  :mod:`jaxloss._similarity`) and a label :math:`y \in \{-1, +1\}`:

  .. math::
     \ell = \begin{cases} 1 - c & y = 1 \\ \max(0, c - m) & y = -1. \end{cases}

  Derivatives (by hand), with :math:`\partial_{x_1} c` as in
  :func:`cosine_similarity`:

  .. math::
     \partial_{x_1} \ell = -\partial_{x_1} c \ (y = 1), \qquad
     \partial_{x_1} \ell = [c > m]\, \partial_{x_1} c \ (y = -1),

  and symmetrically for :math:`x_2` (subgradient 0 at :math:`c = m`).

  Differences from PyTorch: PyTorch computes
  :math:`c = x_1\cdot x_2 / \sqrt{(\lVert x_1\rVert^2 + 10^{-12})(\lVert x_2\rVert^2 + 10^{-12})}`
  (a relative difference of about :math:`10^{-12}/\lVert x\rVert^2`, but a
  zero vector gets the gradient :math:`x_2/(10^{-6}\lVert x_2\rVert)`), and
  accepts labels other than :math:`\pm 1`. ``jaxloss.compat.torch.cosine_embedding_loss``
  reproduces it exactly.

  Args:
    x1, x2: floating arrays of the same shape, vectors along ``axis``.
    labels: -1 / +1 (any numeric dtype), the shape of ``x1`` without ``axis``.
    margin: :math:`m`, any real (PyTorch suggests :math:`[-1, 1]`).
    axis: the vector axis.
    eps: the norm floor :math:`\epsilon > 0`.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row.

  References:
    ``torch.nn.CosineEmbeddingLoss``; Hadsell, Chopra and LeCun,
    `Dimensionality Reduction by Learning an Invariant Mapping
    <https://doi.org/10.1109/CVPR.2006.100>`_, CVPR 2006 (the contrastive form).
  """
  bad_eps = _check_eps(eps)
  a, ax, mask, dtype = _rows("x1", x1, axis, where)
  b = _same_rows("x2", x2, "x1", a, ax, mask, dtype)
  y, bad = _pm1("labels", labels, a.shape[:ax] + a.shape[ax + 1:], dtype, mask)
  c = _cos(a, b, eps, ax)
  m = jnp.asarray(margin).astype(dtype)
  loss = jnp.where(y > 0, 1.0 - c, _relu(c - m))
  loss = _base.nan_if(bad_eps, _base.nan_where(bad, loss))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _cel_factor(a, b, y, margin, eps, axis):
  c = _cos(a, b, eps, axis)
  y = jnp.asarray(y).astype(a.dtype)
  f = jnp.where(y > 0, -jnp.ones_like(c), _pos(c - jnp.asarray(margin).astype(a.dtype)))
  return jnp.expand_dims(f, axis)


def _cel_d1(a, b, y, margin=0.0, axis=-1, eps=_EPS):
  return _cel_factor(a, b, y, margin, eps, axis) * _dcos(a, b, eps, axis)


def _cel_d2(a, b, y, margin=0.0, axis=-1, eps=_EPS):
  return _cel_factor(a, b, y, margin, eps, axis) * _dcos(b, a, eps, axis)


def _cel_reference(a, b, y, margin=0.0, axis=-1, eps=_EPS):
  c = _ref_cos(a, b, eps, axis)
  y = np.asarray(y, np.float64)
  out = np.where(y == 1, 1.0 - c, np.maximum(c - margin, 0.0))
  return np.where(np.abs(y) == 1, out, np.nan)


def _sample_cel(key, dtype, shape=(4, 5)):
  k1, k2 = jax.random.split(key)
  a, b = _sample_pairs(k1, dtype, shape)
  return a, b, _pm1_sample(k2, shape[:-1])


COSINE_EMBEDDING_LOSS = LossSpec(
    name="cosine_embedding_loss",
    family="metric",
    fn=cosine_embedding_loss,
    arg_names=("x1", "x2", "labels"),
    grads={0: _cel_d1, 1: _cel_d2},
    sample=_sample_cel,
    reference=_cel_reference,
    edge_cases=(
        EdgeCase(_ZERO_VECTORS + (np.array([1, -1, 1, -1]),), "zero vectors, both labels", config={"eps": 0.1}),
        EdgeCase((np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]),
                  np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]), np.array([-1, -1])),
                 "dissimilar pairs with c - margin = 0 exactly (cos = 1/2; subgradient 0)", config={"margin": 0.5}),
        EdgeCase((np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([[2.0, 1.0], [1.0, 1.0]]), np.array([0, 2])),
                 "labels not -1/+1: NaN", in_domain=False),
    ),
    configs=({}, {"margin": 0.5}, {"margin": -0.5}),
    rowwise=True,
    formula=r"1 - c \ (y = 1),\ \max(0, c - m) \ (y = -1);\ c = \hat x_1 \cdot \hat x_2",
    domain="x1, x2 real vectors; y in {-1, +1}; eps > 0",
    float_argnums=(0, 1),
    naive=lambda a, b, y, margin=0.0: jnp.where(
        y > 0, 1.0 - jnp.sum(a * b, -1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)),
        jnp.maximum(jnp.sum(a * b, -1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)) - margin, 0.0)),
)


# --------------------------------------------------------------------------
# triplet margin loss
# --------------------------------------------------------------------------
def _pnorm(u, p, axis):
  """``||u||_p`` along ``axis`` (p >= 1), NaN-free at u = 0 (value 0, derivative 0)."""
  if isinstance(p, (int, float)) and float(p) == 2.0:
    sq = jnp.sum(jnp.square(u), axis=axis)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, jnp.ones_like(sq))), jnp.zeros_like(sq))
  if isinstance(p, (int, float)) and float(p) == 1.0:
    return jnp.sum(u * jnp.sign(u), axis=axis)
  q = jnp.asarray(p).astype(u.dtype)
  a = jnp.abs(u)
  nz = a > 0
  s = jnp.sum(jnp.where(nz, jnp.where(nz, a, jnp.ones_like(a)) ** q, jnp.zeros_like(a)), axis=axis)
  pos = s > 0
  return jnp.where(pos, jnp.where(pos, s, jnp.ones_like(s)) ** (1.0 / q), jnp.zeros_like(s))


def _dpnorm(u, p, axis):
  r"""Closed form :math:`\partial_u \lVert u\rVert_p = \operatorname{sign}(u)|u|^{p-1}/\lVert u\rVert_p^{p-1}`."""
  q = jnp.asarray(p).astype(u.dtype)
  d = jnp.expand_dims(_pnorm(u, p, axis), axis)
  safe = jnp.where(d > 0, d, jnp.ones_like(d))
  a = jnp.abs(u)
  ratio = jnp.where(a > 0, a / safe, jnp.zeros_like(a))
  g = jnp.sign(u) * (ratio ** (q - 1.0) if float(p) != 1.0 else jnp.ones_like(u))
  return jnp.where(d > 0, g, jnp.zeros_like(u))


def triplet_margin_loss(
    anchors: ArrayLike,
    positives: ArrayLike,
    negatives: ArrayLike,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Triplet margin loss (PyTorch's ``TripletMarginLoss``), one value per triplet.

  With the distance :math:`d(u, v) = \lVert u - v + \epsilon\rVert_p`
  (PyTorch's ``pairwise_distance``: ``eps`` is added to every component of the
  difference, which keeps the norm differentiable at :math:`u = v`):

  .. math::
     \ell = \max\bigl(0,\ d(a, p) - d_- + m\bigr), \qquad
     d_- = \begin{cases} d(a, n) & \text{swap off} \\ \min(d(a, n), d(p, n)) & \text{swap on} \end{cases}

  (the "distance swap" of Balntas et al.: the harder of the two negatives
  distances; at a tie :math:`d(a, n)` is used).

  Derivatives (by hand), with
  :math:`\nabla_p(u) = \operatorname{sign}(u)\,|u|^{p-1} / \lVert u\rVert_p^{p-1}`
  the gradient of the p-norm (:math:`u/\lVert u\rVert_2` for :math:`p = 2`,
  :math:`\operatorname{sign}(u)` for :math:`p = 1`, 0 at :math:`u = 0`),
  :math:`u_{ap} = a - p + \epsilon` etc., and :math:`k = [\ell > 0]`
  (subgradient 0 exactly at the hinge), :math:`s = [d_- = d(p, n) < d(a, n)]`:

  .. math::
     \partial_a \ell = k\bigl(\nabla(u_{ap}) - (1 - s)\nabla(u_{an})\bigr), \quad
     \partial_p \ell = k\bigl(-\nabla(u_{ap}) - s\,\nabla(u_{pn})\bigr), \quad
     \partial_n \ell = k\bigl((1 - s)\nabla(u_{an}) + s\,\nabla(u_{pn})\bigr).

  Differences: PyTorch passes the gradient at exactly :math:`\ell = 0`
  (``clamp_min``) and splits it at a swap tie; optax's
  ``triplet_margin_loss`` uses :math:`(\sum_i u_i^p + \epsilon)^{1/p}` (no
  absolute value, so odd :math:`p` is not a norm) and has no swap.

  Args:
    anchors, positives, negatives: floating arrays of the same shape, vectors
      along ``axis``.
    margin: :math:`m` (any real).
    p: the norm degree, ``>= 1``.
    eps: added to each difference, ``>= 0``.
    swap: use the distance swap.
    axis: the vector axis.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per triplet).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per triplet.

  References:
    Schroff, Kalenichenko and Philbin, `FaceNet <https://arxiv.org/abs/1503.03832>`_, CVPR 2015;
    Balntas et al., `Learning local feature descriptors with triplets and shallow
    convolutional neural networks <https://doi.org/10.5244/C.30.119>`_, BMVC 2016 (the swap);
    ``torch.nn.TripletMarginLoss``.
  """
  bad = _base.check_scalar_in("p", p, 1.0, float("inf"))
  bad_eps = _base.check_scalar_in("eps", eps, 0.0, float("inf"))
  a, ax, mask, dtype = _rows("anchors", anchors, axis, where)
  pp = _same_rows("positives", positives, "anchors", a, ax, mask, dtype)
  nn = _same_rows("negatives", negatives, "anchors", a, ax, mask, dtype)
  e = jnp.asarray(eps).astype(dtype)
  # (a + eps) - p rather than a - p + eps: a + eps is shared by both distances (measured 1.5-2x faster on CPU);
  # the two orders differ by one rounding
  a_e = a + e
  d_pos = _pnorm(a_e - pp, p, ax)
  d_neg = _pnorm(a_e - nn, p, ax)
  if swap:
    d_pn = _pnorm((pp + e) - nn, p, ax)
    d_neg = jnp.where(d_pn < d_neg, d_pn, d_neg)
  loss = _relu(d_pos - d_neg + jnp.asarray(margin).astype(dtype))
  loss = _base.nan_if(bad_eps, _base.nan_if(bad, loss))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _triplet_parts(a, pp, nn, margin, p, eps, swap, axis):
  e = jnp.asarray(eps).astype(a.dtype)
  u_ap, u_an, u_pn = (a + e) - pp, (a + e) - nn, (pp + e) - nn
  d_ap, d_an, d_pn = (_pnorm(u, p, axis) for u in (u_ap, u_an, u_pn))
  s = (d_pn < d_an) if swap else jnp.zeros_like(d_an, bool)
  d_neg = jnp.where(s, d_pn, d_an)
  k = _pos(d_ap - d_neg + jnp.asarray(margin).astype(a.dtype))
  k, s = jnp.expand_dims(k, axis), jnp.expand_dims(s.astype(a.dtype), axis)
  return k, s, _dpnorm(u_ap, p, axis), _dpnorm(u_an, p, axis), _dpnorm(u_pn, p, axis)


def _triplet_da(a, pp, nn, margin=1.0, p=2.0, eps=1e-6, swap=False, axis=-1):
  k, s, g_ap, g_an, _ = _triplet_parts(a, pp, nn, margin, p, eps, swap, axis)
  return k * (g_ap - (1 - s) * g_an)


def _triplet_dp(a, pp, nn, margin=1.0, p=2.0, eps=1e-6, swap=False, axis=-1):
  k, s, g_ap, _, g_pn = _triplet_parts(a, pp, nn, margin, p, eps, swap, axis)
  return k * (-g_ap - s * g_pn)


def _triplet_dn(a, pp, nn, margin=1.0, p=2.0, eps=1e-6, swap=False, axis=-1):
  k, s, _, g_an, g_pn = _triplet_parts(a, pp, nn, margin, p, eps, swap, axis)
  return k * ((1 - s) * g_an + s * g_pn)


def _triplet_reference(a, pp, nn, margin=1.0, p=2.0, eps=1e-6, swap=False, axis=-1):
  a, pp, nn = _f64(a, pp, nn)

  def dist(u, v):
    return np.sum(np.abs(u - v + eps) ** p, axis=axis) ** (1.0 / p)

  d_neg = dist(a, nn)
  if swap:
    d_neg = np.minimum(d_neg, dist(pp, nn))
  return np.maximum(dist(a, pp) - d_neg + margin, 0.0)


def _sample_triplet(key, dtype, shape=(4, 5)):
  k1, k2, k3 = jax.random.split(key, 3)
  a = jax.random.normal(k1, shape, jnp.float32)
  pp = a + 0.5 * jax.random.normal(k2, shape, jnp.float32)
  nn = jax.random.normal(k3, shape, jnp.float32)
  return a.astype(dtype), pp.astype(dtype), nn.astype(dtype)


def _triplet_optax(a, pp, nn, margin=1.0, p=2.0, eps=1e-6, swap=False, axis=-1):
  import optax  # pylint: disable=g-import-not-at-top

  del swap
  return optax.losses.triplet_margin_loss(a, pp, nn, axis=axis, norm_degree=p, margin=margin, eps=eps)


_triplet_optax.__name__ = "optax.losses.triplet_margin_loss"

TRIPLET_MARGIN_LOSS = LossSpec(
    name="triplet_margin_loss",
    family="metric",
    fn=triplet_margin_loss,
    arg_names=("anchors", "positives", "negatives"),
    grads={0: _triplet_da, 1: _triplet_dp, 2: _triplet_dn},
    sample=_sample_triplet,
    reference=_triplet_reference,
    edge_cases=(
        EdgeCase((np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[0.0, 0.0], [1.0, 2.0]]),
                  np.array([[3.0, 4.0], [1.0, 2.5]])), "positive equal to the anchor (eps keeps the norm smooth)"),
        EdgeCase((np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 0.0], [1.0, 1.0]]),
                  np.array([[0.6, 0.8], [1.5, 1.0]])), "hinge exactly at 0 (eps = 0): subgradient 0",
                 config={"eps": 0.0}),
        EdgeCase((np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]]), np.array([[0.5, 1.0, -2.0], [0.0, 1.0, 0.0]]),
                  np.array([[1.0, 0.0, 0.0], [2.0, 0.5, 0.0]])), "p = 1 with zero components",
                 config={"p": 1.0}),
        EdgeCase((np.array([[0.0, 1.0], [2.0, 0.0]]), np.array([[0.5, 1.0], [0.0, 1.0]]),
                  np.array([[0.6, 1.1], [2.0, 0.5]])), "swap: the positive is closer to the negative",
                 config={"swap": True, "margin": 2.0}),
        EdgeCase((np.array([[0.0, 1.0, -1.0]]), np.array([[0.5, 1.0, -2.0]]), np.array([[1.0, 0.0, 0.0]])),
                 "p = 3", config={"p": 3.0, "margin": 0.5}),
    ),
    configs=({}, {"p": 1.0}, {"swap": True, "margin": 2.0}, {"p": 3.0, "margin": 0.5}, {"eps": 0.0}),
    rowwise=True,
    formula=r"\max(0, d(a, p) - d(a, n) + m),\ d(u, v) = \Vert u - v + \epsilon\Vert_p",
    domain="real vectors; p >= 1; eps >= 0",
    float_argnums=(0, 1, 2),
    optax_peer=_triplet_optax,
    naive=lambda a, pp, nn, margin=1.0: jnp.maximum(
        jnp.linalg.norm(a - pp + 1e-6, axis=-1) - jnp.linalg.norm(a - nn + 1e-6, axis=-1) + margin, 0.0),
)


# --------------------------------------------------------------------------
# margin ranking and hinge embedding (elementwise)
# --------------------------------------------------------------------------
def margin_ranking_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 0.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Margin ranking loss (PyTorch's ``MarginRankingLoss``), elementwise.

  :math:`y = 1` says :math:`x_1` should rank above :math:`x_2`, :math:`y = -1` the opposite:

  .. math::
     \ell = \max\bigl(0,\ -y (x_1 - x_2) + m\bigr), \qquad
     \partial_{x_1} \ell = -y\,[\ell > 0], \qquad \partial_{x_2} \ell = y\,[\ell > 0]

  (by hand; subgradient 0 exactly at the hinge, where PyTorch's ``clamp_min``
  passes :math:`\mp y`).

  Args:
    x1, x2: floating arrays of the same shape.
    labels: -1 / +1 (any numeric dtype), the same shape.
    margin: :math:`m` (any real).
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    Herbrich, Graepel and Obermayer, *Large Margin Rank Boundaries for Ordinal
    Regression*, 2000; ``torch.nn.MarginRankingLoss``.
  """
  a, b, mask, dtype = _base.elementwise_inputs("x1", x1, "x2", x2, where)
  a, b = _base.sanitize(a, mask), _base.sanitize(b, mask)
  y, bad = _pm1("labels", labels, a.shape, dtype, mask)
  loss = _base.nan_where(bad, _relu(-y * (a - b) + jnp.asarray(margin).astype(dtype)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _mrl_d1(a, b, y, margin=0.0):
  y = jnp.asarray(y).astype(a.dtype)
  return -y * _pos(-y * (a - b) + margin)


def _mrl_d2(a, b, y, margin=0.0):
  return -_mrl_d1(a, b, y, margin)


def _mrl_reference(a, b, y, margin=0.0):
  a, b, y = _f64(a, b, y)
  return np.where(np.abs(y) == 1, np.maximum(0.0, -y * (a - b) + margin), np.nan)


def _sample_mrl(key, dtype, shape=(4, 3)):
  k1, k2 = jax.random.split(key)
  a, b = _sample_pairs(k1, dtype, shape)
  return a, b, _pm1_sample(k2, shape)


MARGIN_RANKING_LOSS = LossSpec(
    name="margin_ranking_loss",
    family="metric",
    fn=margin_ranking_loss,
    arg_names=("x1", "x2", "labels"),
    grads={0: _mrl_d1, 1: _mrl_d2},
    sample=_sample_mrl,
    reference=_mrl_reference,
    edge_cases=(
        EdgeCase((np.array([1.0, 0.0, 2.0, -1.0]), np.array([1.0, 0.5, 1.5, 1.0]), np.array([1, -1, 1, -1])),
                 "ties and margins exactly at the hinge (subgradient 0)", config={"margin": 0.5}),
        EdgeCase((np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0, 1])), "label 0: NaN", in_domain=False),
    ),
    configs=({}, {"margin": 0.5}),
    formula=r"\max(0, -y (x_1 - x_2) + m)",
    domain="x1, x2 real; y in {-1, +1}",
    float_argnums=(0, 1),
    naive=lambda a, b, y, margin=0.0: jnp.maximum(-y * (a - b) + margin, 0.0),
)


def hinge_embedding_loss(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Hinge embedding loss (PyTorch's ``HingeEmbeddingLoss``), elementwise.

  ``predictions`` are typically distances between a pair of embeddings
  (:math:`y = 1`: similar, :math:`y = -1`: dissimilar):

  .. math::
     \ell = \begin{cases} x & y = 1 \\ \max(0, m - x) & y = -1, \end{cases} \qquad
     \partial_x \ell = \begin{cases} 1 & y = 1 \\ -[m - x > 0] & y = -1 \end{cases}

  (by hand; subgradient 0 at :math:`x = m`, where PyTorch passes -1).

  Differences from PyTorch: labels other than :math:`\pm 1` are NaN here;
  PyTorch adds both branches for them.

  Args:
    predictions: floating array (distances).
    labels: -1 / +1 (any numeric dtype), the same shape.
    margin: :math:`m` (any real).
    weights, where, reduction: see :mod:`jaxloss._base`.

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per element.

  References:
    ``torch.nn.HingeEmbeddingLoss``; Hadsell, Chopra and LeCun, CVPR 2006.
  """
  x, dtype = _base.as_predictions("predictions", predictions)
  mask = _base.prepare_where(where, x.shape)
  x = _base.sanitize(x, mask)
  y, bad = _pm1("labels", labels, x.shape, dtype, mask)
  loss = jnp.where(y > 0, x, _relu(jnp.asarray(margin).astype(dtype) - x))
  loss = _base.nan_where(bad, loss)
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def _hel_dx(x, y, margin=1.0):
  y = jnp.asarray(y).astype(x.dtype)
  return jnp.where(y > 0, jnp.ones_like(x), -_pos(margin - x))


def _hel_reference(x, y, margin=1.0):
  x, y = _f64(x, y)
  return np.where(y == 1, x, np.where(y == -1, np.maximum(0.0, margin - x), np.nan))


def _sample_hel(key, dtype, shape=(4, 3)):
  k1, k2 = jax.random.split(key)
  x = jax.random.uniform(k1, shape, jnp.float32, 0.0, 2.0)
  x = jnp.where(jnp.abs(x - 1.0) < 0.05, x + 0.1, x).astype(dtype)  # off the kink at m = 1
  return x, _pm1_sample(k2, shape)


HINGE_EMBEDDING_LOSS = LossSpec(
    name="hinge_embedding_loss",
    family="metric",
    fn=hinge_embedding_loss,
    arg_names=("predictions", "labels"),
    grads={0: _hel_dx},
    sample=_sample_hel,
    reference=_hel_reference,
    edge_cases=(
        EdgeCase((np.array([1.0, 1.0, 0.0, 3.0]), np.array([-1, 1, -1, -1])), "x = margin exactly, and x = 0"),
        EdgeCase((np.array([0.5, 2.0]), np.array([-1, -1])), "x = margin = 2", config={"margin": 2.0}),
        EdgeCase((np.array([0.5, 0.2]), np.array([0, 1])), "label 0: NaN", in_domain=False),
    ),
    configs=({}, {"margin": 2.0}),
    formula=r"x \ (y = 1),\ \max(0, m - x) \ (y = -1)",
    domain="x real (a distance); y in {-1, +1}",
    naive=lambda x, y, margin=1.0: jnp.where(y > 0, x, jnp.maximum(margin - x, 0.0)),
)


# --------------------------------------------------------------------------
# NT-Xent
# --------------------------------------------------------------------------
def _ntxent_parts(e, labels, temperature, eps):
  """Cosine matrix, scaled logits, pair masks and the negatives' log-sum-exp per anchor."""
  u, n, big = _unit(e, eps, -1)
  z = (u @ u.T) / jnp.asarray(temperature).astype(e.dtype)
  same = labels[:, None] == labels[None, :]
  pos = same & ~jnp.eye(labels.shape[0], dtype=bool)
  neg = ~same
  has_neg = jnp.any(neg, axis=1)
  zmax = jax.lax.stop_gradient(jnp.max(jnp.where(neg, z, -jnp.inf), axis=1, initial=-jnp.inf))
  zmax = jnp.where(has_neg, zmax, jnp.zeros_like(zmax))
  sumexp = jnp.sum(jnp.where(neg, jnp.exp(z - zmax[:, None]), jnp.zeros_like(z)), axis=1)
  lse = jnp.where(has_neg, zmax + jnp.log(jnp.where(has_neg, sumexp, jnp.ones_like(sumexp))), -jnp.inf)
  n_pos = jnp.sum(pos, axis=1).astype(e.dtype)
  return u, n, big, z, pos, neg, lse, n_pos


def ntxent(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 0.07,
    eps: float = _EPS,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Normalized temperature-scaled cross-entropy (NT-Xent, SimCLR), one value per anchor.

  ``embeddings`` is ``[N, D]``; samples with equal ``labels`` are positives of
  each other. With :math:`z_{ij} = \cos(e_i, e_j)/\tau` (the zero-vector rule
  of :mod:`jaxloss._similarity`), :math:`P(i) = \{j \ne i: y_j = y_i\}` and
  :math:`N(i) = \{k: y_k \ne y_i\}`, each positive pair is a softmax over itself
  and the anchor's negatives (optax's semantics), and anchor :math:`i` scores the
  mean over its positives:

  .. math::
     \ell_i = \frac{1}{|P(i)|}\sum_{j \in P(i)} -\log\frac{e^{z_{ij}}}{e^{z_{ij}} + \sum_{k\in N(i)} e^{z_{ik}}}
     = \frac{1}{|P(i)|}\sum_{j \in P(i)} \operatorname{softplus}(m_i - z_{ij}),
     \quad m_i = \log\sum_{k\in N(i)} e^{z_{ik}}.

  An anchor without positives has no loss: its value is 0 and it is left out of
  ``"mean"`` (as if masked; an all-singleton batch gives 0). Without negatives
  :math:`m_i = -\infty` and :math:`\ell_i = 0`.

  Derivatives (by hand), with :math:`\sigma_{ij} = \sigma(m_i - z_{ij})` and
  :math:`L = \sum_i \ell_i`:

  .. math::
     G_{ij} = \frac{\partial L}{\partial z_{ij}} = -\frac{\sigma_{ij}}{|P(i)|} \ (j \in P(i)), \qquad
     G_{ik} = \frac{e^{z_{ik} - m_i}}{|P(i)|}\sum_{j\in P(i)}\sigma_{ij} \ (k \in N(i)),

  then :math:`\partial L/\partial \hat e = (G + G^\top)\hat e/\tau` and, through
  :math:`\hat e = e/\max(\lVert e\rVert, \epsilon)`,
  :math:`\partial L/\partial e_i = (v_i - (v_i\cdot\hat e_i)\hat e_i)/\lVert e_i\rVert`
  (:math:`v_i/\epsilon` for :math:`\lVert e_i\rVert \le \epsilon`).

  Differences from optax (``optax.losses.ntxent``): optax returns the mean over
  all positive *pairs*; this is the mean over anchors of their mean over
  positives. They agree whenever every anchor has the same number of positives
  (the two-view SimCLR batch, labels ``[0, 0, 1, 1, ...]``); optax's number is
  ``ntxent(e, y, weights=n_positives)``. optax clamps the squared norms at the
  dtype's machine epsilon.

  ``where`` (shape ``[N]``) masks *anchors*; a masked sample still serves as a
  positive or negative of the others (drop it from the batch to remove it).

  Args:
    embeddings: floating array ``[N, D]``.
    labels: integer array ``[N]`` (group ids).
    temperature: :math:`\tau > 0`.
    eps: the norm floor :math:`\epsilon > 0`.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per anchor).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per anchor.

  References:
    Chen et al., `A Simple Framework for Contrastive Learning of Visual
    Representations <https://arxiv.org/abs/2002.05709>`_, ICML 2020;
    Sohn, `Improved Deep Metric Learning with Multi-class N-pair Loss Objective
    <https://papers.nips.cc/paper/6200>`_, NeurIPS 2016.
  """
  bad_t = _base.check_scalar_in("temperature", temperature, 0.0, float("inf"), closed_low=False)
  bad_eps = _check_eps(eps)
  e, dtype = _base.as_predictions("embeddings", embeddings)
  if e.ndim != 2:
    raise ValueError(f"embeddings must be [N, D], got shape {e.shape}.")
  y = jnp.asarray(labels)
  if y.shape != e.shape[:1]:
    raise ValueError(f"labels must have shape [N] = {e.shape[:1]}, got labels.shape={y.shape}.")
  mask = _base.prepare_where(where, e.shape[:1])
  _, _, _, z, pos, _, lse, n_pos = _ntxent_parts(e, y, temperature, eps)
  terms = jnp.where(pos, jax.nn.softplus(lse[:, None] - z), jnp.zeros_like(z))
  has_pos = n_pos > 0
  loss = jnp.sum(terms, axis=1) / jnp.where(has_pos, n_pos, jnp.ones_like(n_pos))
  loss = _base.nan_if(bad_eps, _base.nan_if(bad_t, loss))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction, extra_weights=has_pos)


def _ntxent_de(e, labels, temperature=0.07, eps=_EPS):
  u, n, big, z, pos, neg, lse, n_pos = _ntxent_parts(e, jnp.asarray(labels), temperature, eps)
  inv = jnp.where(n_pos > 0, 1.0 / jnp.where(n_pos > 0, n_pos, 1.0), 0.0)[:, None]
  sig = jnp.where(pos, jax.nn.sigmoid(lse[:, None] - z), 0.0)
  soft_neg = jnp.where(neg, jnp.exp(z - jnp.where(jnp.isfinite(lse), lse, 0.0)[:, None]), 0.0)
  g = inv * (-sig + soft_neg * jnp.sum(sig, axis=1, keepdims=True))
  v = (g + g.T) @ u / jnp.asarray(temperature).astype(e.dtype)
  return jnp.where(big, (v - jnp.sum(v * u, axis=1, keepdims=True) * u) / n, v / n)


def _ntxent_reference(e, labels, temperature=0.07, eps=_EPS):
  e = np.asarray(e, np.float64)
  y = np.asarray(labels)
  u = _ref_unit(e, eps, -1)
  z = u @ u.T / temperature
  out = np.zeros(len(y))
  for i in range(len(y)):
    negs = [k for k in range(len(y)) if y[k] != y[i]]
    poss = [j for j in range(len(y)) if j != i and y[j] == y[i]]
    terms = [-(z[i, j] - np.logaddexp.reduce(np.array([z[i, j]] + [z[i, k] for k in negs]))) for j in poss]
    out[i] = np.mean(terms) if terms else 0.0
  return out


def _sample_ntxent(key, dtype, shape=(6, 4)):
  """Two views of ``N / 2`` samples: labels ``[0, 0, 1, 1, ...]`` (every anchor has one positive)."""
  k1, k2 = jax.random.split(key)
  n, d = shape
  base = jax.random.normal(k1, (max(n // 2, 1), d), jnp.float32)
  e = jnp.repeat(base, 2, axis=0)[:n] + 0.3 * jax.random.normal(k2, (n, d), jnp.float32)
  return e.astype(dtype), jnp.arange(n, dtype=jnp.int32) // 2


def _bench_ntxent(key, dtype, elems):
  """A batch of at most 512 embeddings of dimension 128 (optax's peer builds an [N, N, D] tensor)."""
  n = int(min(512, max(2, elems // 128)))
  return _sample_ntxent(key, dtype, shape=(n - n % 2, 128))


NTXENT = LossSpec(
    name="ntxent",
    family="metric",
    fn=ntxent,
    arg_names=("embeddings", "labels"),
    grads={0: _ntxent_de},
    sample=_sample_ntxent,
    reference=_ntxent_reference,
    edge_cases=(
        EdgeCase((np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8], [-1.0, 0.3]]), np.array([0, 0, 1, 1, 2])),
                 "a singleton label: no positive, excluded from the mean"),
        EdgeCase((np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 1.0], [2.0, -1.0]]),
                  np.array([0, 0, 0, 1, 1, 1])), "a zero embedding, three positives per anchor",
                 config={"eps": 0.1}),
        EdgeCase((np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]), np.array([3, 3, 3])),
                 "no negatives: loss 0"),
        EdgeCase((np.array([[1.0, 0.2], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]]), np.array([0, 0, 1, 1])),
                 "temperature 0.5", config={"temperature": 0.5}),
    ),
    configs=({}, {"temperature": 0.5}),
    rowwise=True,
    batch_coupled=True,  # each row's positives and negatives are the other rows
    formula=(r"\tfrac{1}{|P(i)|}\sum_{j\in P(i)} "
             r"\operatorname{softplus}(\operatorname{lse}_{k\in N(i)} z_{ik} - z_{ij})"),
    domain="embeddings [N, D] real; integer labels [N]; temperature > 0",
    optax_peer=optax_loss("ntxent"),
    bench_sample=_bench_ntxent,
)

SPECS = (
    COSINE_SIMILARITY,
    COSINE_DISTANCE,
    COSINE_EMBEDDING_LOSS,
    TRIPLET_MARGIN_LOSS,
    MARGIN_RANKING_LOSS,
    HINGE_EMBEDDING_LOSS,
    NTXENT,
)
