"""Similarity, metric-learning and pairwise ranking losses against their peers: PyTorch (CPU, float64), optax and
Keras 3 (JAX backend), values and gradients, on random and edge inputs.

The registry-wide tests (tests/test_registry.py) check the closed-form derivatives and the float64 references; this
file checks that the *semantics* match the libraries users port from, and pins down every documented difference.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402
from jax.experimental import checkify  # noqa: E402

import jaxloss  # noqa: E402
from jaxloss.compat import keras as K  # noqa: E402
from jaxloss.compat import torch as T  # noqa: E402

RTOL = 1e-10


@pytest.fixture(autouse=True)
def _x64():
  with jax.enable_x64(True):
    yield


def _torch():
  torch = pytest.importorskip("torch")
  return torch


def _t(torch, x, grad=True):
  return torch.tensor(np.asarray(x, np.float64), requires_grad=grad)


def _rng(seed=0):
  return np.random.default_rng(seed)


def _jgrad(fn, args, argnums):
  """The gradient, jitted (one compilation instead of one per primitive: the suite runs on 2 busy cores)."""
  with jax.numpy_dtype_promotion("standard"):  # optax's ntxent mixes bool and int
    return [np.asarray(g) for g in jax.jit(jax.grad(lambda *a: fn(*a), argnums=argnums))(*args)]


def _ntxent_optax(e, y, **kw):
  with jax.numpy_dtype_promotion("standard"):
    return optax.losses.ntxent(jnp.asarray(e), jnp.asarray(y), **kw)


# ---------------------------------------------------------------------------
# cosine similarity / distance
# ---------------------------------------------------------------------------
ZERO_X = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [0.0, 0.0, 0.0], [3.0, 0.0, 4.0]])
ZERO_Y = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-3.0, 0.0, -4.0]])


@pytest.mark.parametrize("case", ["random", "zero vectors"])
def test_cosine_similarity_matches_torch_values_and_gradients(case):
  torch = _torch()
  x, y = (_rng().normal(size=(6, 5)), _rng(1).normal(size=(6, 5))) if case == "random" else (ZERO_X, ZERO_Y)
  tx, ty = _t(torch, x), _t(torch, y)
  want = torch.nn.functional.cosine_similarity(tx, ty, dim=-1)
  want.sum().backward()
  got = jaxloss.cosine_similarity(x, y, reduction="none")
  np.testing.assert_allclose(got, want.detach().numpy(), rtol=RTOL, atol=1e-15)
  gx, gy = _jgrad(lambda a, b: jaxloss.cosine_similarity(a, b, reduction="sum"), (x, y), (0, 1))
  np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=RTOL, atol=1e-9)
  np.testing.assert_allclose(gy, ty.grad.numpy(), rtol=RTOL, atol=1e-9)
  # cosine distance is 1 - similarity, gradient negated
  np.testing.assert_allclose(jaxloss.cosine_distance(x, y, reduction="none"), 1 - want.detach().numpy(), rtol=RTOL,
                             atol=1e-15)
  dx, = _jgrad(lambda a: jaxloss.cosine_distance(a, y, reduction="sum"), (x,), (0,))
  np.testing.assert_allclose(dx, -tx.grad.numpy(), rtol=RTOL, atol=1e-9)


def test_zero_vector_rule_is_finite_and_documented():
  g = np.asarray(jax.grad(lambda a: jaxloss.cosine_distance(a, ZERO_Y, reduction="sum"))(ZERO_X))
  assert np.all(np.isfinite(g))
  # d/dx at x = 0 is -y_hat / eps (row 0); both zero (row 2): 0
  y_hat = ZERO_Y[0] / np.linalg.norm(ZERO_Y[0])
  np.testing.assert_allclose(g[0], -y_hat / 1e-8, rtol=1e-12)
  np.testing.assert_array_equal(g[2], 0.0)
  np.testing.assert_array_equal(np.asarray(jaxloss.cosine_distance(ZERO_X, ZERO_Y, reduction="none"))[:3], 1.0)


def test_compat_torch_cosine_similarity_reproduces_the_small_norm_backward():
  torch = _torch()
  x = np.array([[3e-9, -4e-9, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
  y = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 2.0], [0.5, 0.0, 1.0]])
  tx, ty = _t(torch, x), _t(torch, y)
  want = torch.nn.functional.cosine_similarity(tx, ty, dim=1)
  want.sum().backward()
  np.testing.assert_allclose(T.cosine_similarity(x, y), want.detach().numpy(), rtol=RTOL)
  gx, gy = _jgrad(lambda a, b: jnp.sum(T.cosine_similarity(a, b)), (x, y), (0, 1))
  # atol: the rounding noise (1e-16) of components whose true value is 0, next to entries of size 0.6
  np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9, atol=1e-15)
  np.testing.assert_allclose(gy, ty.grad.numpy(), rtol=1e-9, atol=1e-15)
  # the native gradient differs only in the row with 0 < |x| < eps (the derivative of the forward there)
  native, = _jgrad(lambda a: jaxloss.cosine_similarity(a, y, reduction="sum"), (x,), (0,))
  np.testing.assert_allclose(native[1:], tx.grad.numpy()[1:], rtol=1e-9)
  y_hat = y[0] / np.linalg.norm(y[0])
  np.testing.assert_allclose(native[0], y_hat / 1e-8, rtol=1e-12)
  assert not np.allclose(native[0], tx.grad.numpy()[0], rtol=1e-3)


def test_cosine_matches_optax_away_from_zero_vectors():
  x, y = _rng(2).normal(size=(5, 7)), _rng(3).normal(size=(5, 7))
  for ours, theirs in ((jaxloss.cosine_similarity, optax.losses.cosine_similarity),
                       (jaxloss.cosine_distance, optax.losses.cosine_distance)):
    np.testing.assert_allclose(ours(x, y, reduction="none"), theirs(x, y), rtol=RTOL)
    g_ours, = _jgrad(lambda a: ours(a, y, reduction="sum"), (x,), (0,))
    g_theirs, = _jgrad(lambda a: jnp.sum(theirs(a, y)), (x,), (0,))
    np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-9, atol=1e-14)
  # optax (epsilon=0 by default) has no zero-vector rule: NaN where jaxloss is finite
  assert np.isnan(np.asarray(optax.losses.cosine_similarity(ZERO_X, ZERO_Y))[0])


def test_keras_cosine_similarity_is_the_negated_cosine():
  keras = pytest.importorskip("keras")
  if keras.backend.backend() != "jax":
    pytest.skip("keras was imported with another backend")
  x, y = _rng(4).normal(size=(4, 6)), _rng(5).normal(size=(4, 6))
  want = np.asarray(keras.losses.cosine_similarity(y, x))
  np.testing.assert_allclose(K.cosine_similarity(y, x), want, rtol=1e-9)
  np.testing.assert_allclose(jaxloss.cosine_similarity(x, y, reduction="none"), -want, rtol=1e-9)
  g_k, = _jgrad(lambda a: jnp.sum(keras.losses.cosine_similarity(y, a)), (x,), (0,))
  g_c, = _jgrad(lambda a: jnp.sum(K.cosine_similarity(y, a)), (x,), (0,))
  np.testing.assert_allclose(g_c, g_k, rtol=1e-9)
  # zero vectors: the same value 0 (Keras's floor is 1e-7); the compat gradient is finite
  np.testing.assert_allclose(K.cosine_similarity(ZERO_Y, ZERO_X), keras.losses.cosine_similarity(ZERO_Y, ZERO_X),
                             atol=1e-15)
  g0, = _jgrad(lambda a: jnp.sum(K.cosine_similarity(ZERO_Y, a)), (ZERO_X,), (0,))
  assert np.all(np.isfinite(g0))


# ---------------------------------------------------------------------------
# cosine embedding, margin ranking, hinge embedding
# ---------------------------------------------------------------------------
def _pm1(shape, seed):
  return np.where(_rng(seed).random(shape) < 0.5, 1, -1)


@pytest.mark.parametrize("margin", [0.3, -0.4])
def test_cosine_embedding_loss_matches_torch(margin):
  torch = _torch()
  a, b, y = _rng(6).normal(size=(8, 5)), _rng(7).normal(size=(8, 5)), _pm1(8, 8)
  ta, tb = _t(torch, a), _t(torch, b)
  want = torch.nn.functional.cosine_embedding_loss(ta, tb, torch.tensor(y), margin=margin)
  want.backward()
  np.testing.assert_allclose(jaxloss.cosine_embedding_loss(a, b, y, margin=margin), want.item(), rtol=1e-9)
  ga, gb = _jgrad(lambda u, v: jaxloss.cosine_embedding_loss(u, v, y, margin=margin), (a, b), (0, 1))
  np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-9, atol=1e-15)
  np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-9, atol=1e-15)


def test_compat_torch_cosine_embedding_loss_on_zero_vectors_and_other_labels():
  torch = _torch()
  a = np.concatenate([ZERO_X, _rng(9).normal(size=(2, 3))])
  b = np.concatenate([ZERO_Y, _rng(10).normal(size=(2, 3))])
  y = np.array([1, -1, 1, -1, 0, 2])
  ta, tb = _t(torch, a), _t(torch, b)
  want = torch.nn.functional.cosine_embedding_loss(ta, tb, torch.tensor(y), margin=-0.2, reduction="sum")
  want.backward()
  np.testing.assert_allclose(T.cosine_embedding_loss(a, b, y, margin=-0.2, reduction="sum"), want.item(), rtol=1e-12)
  ga, gb = _jgrad(lambda u, v: T.cosine_embedding_loss(u, v, y, margin=-0.2, reduction="sum"), (a, b), (0, 1))
  np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-9)
  np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-9)
  # native: labels other than +-1 are NaN, zero vectors follow the 1e-8 rule (finite)
  native = np.asarray(jaxloss.cosine_embedding_loss(a, b, y, margin=-0.2, reduction="none"))
  assert np.all(np.isnan(native[4:])) and np.all(np.isfinite(native[:4]))


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking_and_hinge_embedding_match_torch(margin):
  torch = _torch()
  a, b, y = _rng(11).normal(size=(5, 4)), _rng(12).normal(size=(5, 4)), _pm1((5, 4), 13)
  ta, tb = _t(torch, a), _t(torch, b)
  want = torch.nn.functional.margin_ranking_loss(ta, tb, torch.tensor(y, dtype=torch.float64), margin=margin)
  want.backward()
  np.testing.assert_allclose(jaxloss.margin_ranking_loss(a, b, y, margin=margin), want.item(), rtol=RTOL)
  ga, gb = _jgrad(lambda u, v: jaxloss.margin_ranking_loss(u, v, y, margin=margin), (a, b), (0, 1))
  np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=RTOL)
  np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=RTOL)

  d = np.abs(a) + 0.05
  td = _t(torch, d)
  want = torch.nn.functional.hinge_embedding_loss(td, torch.tensor(y, dtype=torch.float64), margin=1.0 + margin)
  want.backward()
  np.testing.assert_allclose(jaxloss.hinge_embedding_loss(d, y, margin=1.0 + margin), want.item(), rtol=RTOL)
  gd, = _jgrad(lambda u: jaxloss.hinge_embedding_loss(u, y, margin=1.0 + margin), (d,), (0,))
  np.testing.assert_allclose(gd, td.grad.numpy(), rtol=RTOL)


def test_at_the_hinge_native_takes_subgradient_zero_and_compat_torch_passes_it():
  torch = _torch()
  a, b, y = np.array([1.0, 0.0, 2.0]), np.array([1.0, 0.5, 1.5]), np.array([1, -1, 1])
  ta, tb = _t(torch, a), _t(torch, b)
  torch.nn.functional.margin_ranking_loss(ta, tb, torch.tensor(y, dtype=torch.float64), margin=0.5,
                                          reduction="sum").backward()
  g_compat, = _jgrad(lambda u: T.margin_ranking_loss(u, b, y, margin=0.5, reduction="sum"), (a,), (0,))
  np.testing.assert_array_equal(g_compat, ta.grad.numpy())
  g_native, = _jgrad(lambda u: jaxloss.margin_ranking_loss(u, b, y, margin=0.5, reduction="sum"), (a,), (0,))
  np.testing.assert_array_equal(g_native, [-1.0, 0.0, 0.0])  # rows 1, 2 exactly at the hinge
  assert np.all(ta.grad.numpy() != 0)  # PyTorch passes the gradient there
  x, lab = np.array([1.0, 1.0, 0.2, 3.0]), np.array([-1, 0, 0, 1])
  tx = _t(torch, x)
  want = torch.nn.functional.hinge_embedding_loss(tx, torch.tensor(lab, dtype=torch.float64), reduction="sum")
  want.backward()
  np.testing.assert_allclose(T.hinge_embedding_loss(x, lab, reduction="sum"), want.item(), rtol=RTOL)
  g, = _jgrad(lambda u: T.hinge_embedding_loss(u, lab, reduction="sum"), (x,), (0,))
  np.testing.assert_array_equal(g, tx.grad.numpy())
  assert np.isnan(jaxloss.hinge_embedding_loss(x, lab))  # label 0 is invalid natively


# ---------------------------------------------------------------------------
# triplet margin loss
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("p,swap,margin,eps", [(2.0, False, 1.0, 1e-6), (1.0, False, 0.5, 1e-6), (3.0, True, 1.0, 0.0),
                                               (2.0, True, 2.0, 1e-3), (1.5, False, 1.0, 1e-6)])
def test_triplet_margin_loss_matches_torch(p, swap, margin, eps):
  torch = _torch()
  a = _rng(14).normal(size=(9, 4))
  pp = a + 0.7 * _rng(15).normal(size=(9, 4))
  nn = _rng(16).normal(size=(9, 4))
  ts = [_t(torch, v) for v in (a, pp, nn)]
  want = torch.nn.functional.triplet_margin_loss(*ts, margin=margin, p=p, eps=eps, swap=swap, reduction="none")
  want.sum().backward()
  kw = dict(margin=margin, p=p, eps=eps, swap=swap)
  got = np.asarray(jaxloss.triplet_margin_loss(a, pp, nn, reduction="none", **kw))
  np.testing.assert_allclose(got, want.detach().numpy(), rtol=RTOL, atol=1e-14)
  assert 0 < np.count_nonzero(got) < got.size  # both sides of the hinge are exercised
  grads = _jgrad(lambda *v: jaxloss.triplet_margin_loss(*v, reduction="sum", **kw), (a, pp, nn), (0, 1, 2))
  for g, t in zip(grads, ts):
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-14)


def test_triplet_matches_optax_where_their_distances_agree():
  # optax's distance is (sum u^p + eps)^(1/p): equal to torch's |u + eps|_p at eps = 0 for even p
  a, pp, nn = (_rng(s).normal(size=(6, 3)) for s in (17, 18, 19))
  for p in (2.0, 4.0):
    want = optax.losses.triplet_margin_loss(a, pp, nn, norm_degree=p, margin=0.8, eps=0.0)
    got = jaxloss.triplet_margin_loss(a, pp, nn, p=p, margin=0.8, eps=0.0, reduction="none")
    np.testing.assert_allclose(got, want, rtol=RTOL)
    g_want, = _jgrad(lambda v: jnp.sum(optax.losses.triplet_margin_loss(v, pp, nn, norm_degree=p, margin=0.8,
                                                                        eps=0.0)), (a,), (0,))
    g_got, = _jgrad(lambda v: jaxloss.triplet_margin_loss(v, pp, nn, p=p, margin=0.8, eps=0.0, reduction="sum"),
                    (a,), (0,))
    np.testing.assert_allclose(g_got, g_want, rtol=1e-9, atol=1e-14)


def test_triplet_p_below_one_is_rejected():
  a = np.ones((2, 3))
  with pytest.raises(ValueError, match="p must be"):
    jaxloss.triplet_margin_loss(a, a, a, p=0.5)


# ---------------------------------------------------------------------------
# NT-Xent
# ---------------------------------------------------------------------------
def _views(n, d, seed):
  base = _rng(seed).normal(size=(n // 2, d))
  return np.repeat(base, 2, axis=0) + 0.4 * _rng(seed + 1).normal(size=(n, d)), np.arange(n) // 2


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_ntxent_matches_optax_on_two_view_batches(temperature):
  e, y = _views(8, 5, 20)
  want = _ntxent_optax(e, y, temperature=temperature)
  np.testing.assert_allclose(jaxloss.ntxent(e, y, temperature=temperature), want, rtol=1e-9)
  g_want, = _jgrad(lambda v: _ntxent_optax(v, y, temperature=temperature), (e,), (0,))
  g_got, = _jgrad(lambda v: jaxloss.ntxent(v, y, temperature=temperature), (e,), (0,))
  np.testing.assert_allclose(g_got, g_want, rtol=1e-8, atol=1e-12)


def test_ntxent_unbalanced_groups_optax_is_the_positive_count_weighted_mean():
  e = _rng(22).normal(size=(7, 4))
  y = np.array([0, 0, 0, 1, 1, 2, 3])  # 3 and 2 per group, two singletons (no positive: excluded)
  n_pos = np.array([2, 2, 2, 1, 1, 0, 0], np.float64)
  want = _ntxent_optax(e, y)
  np.testing.assert_allclose(jaxloss.ntxent(e, y, weights=n_pos), want, rtol=1e-9)
  per_anchor = np.asarray(jaxloss.ntxent(e, y, reduction="none"))
  np.testing.assert_array_equal(per_anchor[5:], 0.0)
  np.testing.assert_allclose(jaxloss.ntxent(e, y), per_anchor[:5].mean(), rtol=1e-12)  # singletons not counted
  assert not np.isclose(float(jaxloss.ntxent(e, y)), float(want))


def test_ntxent_all_singletons_is_zero_with_zero_gradient():
  e = _rng(23).normal(size=(4, 3))
  y = np.arange(4)
  assert float(jaxloss.ntxent(e, y)) == 0.0
  g, = _jgrad(lambda v: jaxloss.ntxent(v, y), (e,), (0,))
  np.testing.assert_array_equal(g, 0.0)


def test_ntxent_shape_errors():
  with pytest.raises(ValueError, match=r"\[N, D\]"):
    jaxloss.ntxent(np.ones((2, 3, 4)), np.zeros(2, int))
  with pytest.raises(ValueError, match="labels must have shape"):
    jaxloss.ntxent(np.ones((4, 3)), np.zeros(3, int))


# ---------------------------------------------------------------------------
# pairwise ranking
# ---------------------------------------------------------------------------
def _all_pairs_mean(pair_fn, s, y):
  """Rax's default reduction: the mean over every valid pair of the batch (independent loops)."""
  vals = [pair_fn(s[b, i] - s[b, j]) for b in range(s.shape[0]) for i in range(s.shape[1])
          for j in range(s.shape[1]) if y[b, i] > y[b, j]]
  return np.mean(vals)


@pytest.mark.parametrize("name,pair_fn", [("pairwise_logistic_loss", lambda d: np.logaddexp(0.0, -d)),
                                          ("pairwise_hinge_loss", lambda d: max(0.0, 1.0 - d))])
def test_pairwise_losses_with_pair_count_weights_are_rax_means(name, pair_fn):
  fn = getattr(jaxloss, name)
  s = _rng(24).normal(size=(4, 6))
  y = _rng(25).integers(0, 3, size=(4, 6)).astype(np.float64)
  y[3] = 1.0  # a list without pairs: excluded
  n_pairs = np.array([np.sum(r[:, None] > r[None, :]) for r in y], np.float64)
  np.testing.assert_allclose(fn(s, y, weights=n_pairs), _all_pairs_mean(pair_fn, s, y), rtol=1e-12)
  per_list = np.asarray(fn(s, y, reduction="none"))
  assert per_list[3] == 0.0
  np.testing.assert_allclose(fn(s, y), per_list[:3].mean(), rtol=1e-12)


def test_pairwise_logistic_gradient_is_antisymmetric_in_pairs():
  # the loss depends on score differences only: gradients sum to 0 per list
  s = _rng(26).normal(size=(3, 5))
  y = _rng(27).integers(0, 4, size=(3, 5))
  for fn in (jaxloss.pairwise_logistic_loss, jaxloss.pairwise_hinge_loss):
    g, = _jgrad(lambda v: fn(v, y, reduction="sum"), (s,), (0,))
    np.testing.assert_allclose(g.sum(axis=-1), 0.0, atol=1e-15)


# ---------------------------------------------------------------------------
# run-time value errors (opt-in)
# ---------------------------------------------------------------------------
@pytest.mark.runtime_checks
@pytest.mark.parametrize("call", [
    lambda: jaxloss.margin_ranking_loss(jnp.ones(3), jnp.zeros(3), jnp.array([1, 0, -1])),
    lambda: jaxloss.hinge_embedding_loss(jnp.ones(3), jnp.array([1, 2, -1])),
    lambda: jaxloss.cosine_embedding_loss(jnp.ones((3, 2)), jnp.ones((3, 2)), jnp.array([1, -1, 3])),
])
def test_invalid_labels_raise_under_checkify_naming_labels(call):
  with jaxloss.runtime_checks():
    err, value = checkify.checkify(call, errors=checkify.user_checks)()
  assert np.isnan(value)
  with pytest.raises(checkify.JaxRuntimeError, match="labels must be -1 or \\+1"):
    err.throw()
