"""Sparsemax losses against an independent sparsemax, optax, and high-precision values.

The sparsemax used as the reference here is a direct transcription of Algorithm 1
of Martins and Astudillo (2016) (sort, find k(z), threshold), written in float64
NumPy, one row at a time; jaxloss computes its threshold in JAX with a different
support test. Keras 3's ``keras.activations.sparsemax`` is not used as a peer
(its threshold was wrong, keras-team/keras#23425; see docs/conventions.md).
"""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss import _sparsemax as S


def sparsemax_martins(z):
  """Martins and Astudillo (2016), Algorithm 1, one row, float64."""
  z = np.asarray(z, np.float64)
  zs = np.sort(z)[::-1]
  k_z = 0
  for k in range(1, len(z) + 1):
    if 1 + k * zs[k - 1] > np.sum(zs[:k]):
      k_z = k
  tau = (np.sum(zs[:k_z]) - 1) / k_z
  return np.maximum(z - tau, 0.0), tau


def _rows(z, fn):
  return np.stack([fn(r) for r in np.asarray(z).reshape(-1, np.shape(z)[-1])]).reshape(np.shape(z))


def _loss_def(z, y):
  """The Fenchel-Young definition: Omega*(z) - z_y + Omega(e_y), Omega(p) = (|p|^2 - 1) / 2."""
  pi, _ = sparsemax_martins(z)
  conj = np.dot(pi, z) - 0.5 * (np.dot(pi, pi) - 1.0)
  return conj - z[y]


RNG = np.random.default_rng(0)
RANDOM = RNG.normal(size=(64, 7)) * 2.0
TIES = np.array([[3.0, 3.0, -2.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, -5.0, 0.0]])


@pytest.mark.parametrize("z", [RANDOM, TIES], ids=["random", "ties"])
def test_sparsemax_matches_martins_astudillo(z):
  got = np.asarray(S.sparsemax(jnp.asarray(z), -1))
  want = _rows(z, lambda r: sparsemax_martins(r)[0])
  np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
  np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-13)


def test_sparsemax_masked_classes_and_axis():
  z = np.array([[0.5, -np.inf, 2.0, 1.8], [-np.inf, -1.0, -np.inf, -0.5]])
  got = np.asarray(S.sparsemax(jnp.asarray(z), -1))
  for row, g in zip(z, got):
    finite = np.isfinite(row)
    want = np.zeros_like(row)
    want[finite] = sparsemax_martins(row[finite])[0]
    np.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-15)
  np.testing.assert_allclose(np.asarray(S.sparsemax(jnp.asarray(RANDOM.T), 0)),
                             _rows(RANDOM, lambda r: sparsemax_martins(r)[0]).T, rtol=1e-13, atol=1e-15)


def test_multiclass_value_and_grad_against_definition():
  labels = RNG.integers(0, 7, size=64)
  z = jnp.asarray(RANDOM)
  got = np.asarray(jaxloss.multiclass_sparsemax_loss(z, labels, reduction="none"))
  want = np.array([_loss_def(r, y) for r, y in zip(RANDOM, labels)])
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
  g = np.asarray(jax.grad(lambda x: jaxloss.multiclass_sparsemax_loss(x, labels, reduction="sum"))(z))
  want_g = _rows(RANDOM, lambda r: sparsemax_martins(r)[0]) - np.eye(7)[labels]  # pi - e_y
  np.testing.assert_allclose(g, want_g, rtol=1e-12, atol=1e-14)


def test_multiclass_against_optax_values_and_grads():
  labels = jnp.asarray(RNG.integers(0, 7, size=64))
  # float64 only: optax 0.2.8's simplex projection fails on float32 inputs when x64 is on (its custom JVP
  # returns a float32 tangent for a float64 primal).
  for dtype, rtol in ((jnp.float64, 1e-12),):
    z = jnp.asarray(RANDOM, dtype)
    ours = lambda x: jnp.sum(jaxloss.multiclass_sparsemax_loss(x, labels, reduction="none"))
    peer = lambda x: jnp.sum(optax.losses.multiclass_sparsemax_loss(x, labels))
    v1, g1 = jax.value_and_grad(ours)(z)
    with jax.numpy_dtype_promotion("standard"):  # optax's own code mixes int and float
      v2, g2 = jax.value_and_grad(peer)(z)
    np.testing.assert_allclose(float(v1), float(v2), rtol=rtol)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=rtol, atol=rtol)


def test_multiclass_near_confident_row_is_accurate_where_the_textbook_form_cancels():
  # pi = [0.9995, 0.0005]: the loss is 2.5e-7 exactly (in real arithmetic, for these float32 inputs)
  z32 = np.array([[1.0, 0.001]], np.float32)
  mpmath.mp.dps = 50
  a, b = (mpmath.mpf(float(v)) for v in z32[0])
  tau = (a + b - 1) / 2
  pa, pb = a - tau, b - tau
  exact = float(pa * (a - a) + pb * (b - a) + (1 - pa**2 - pb**2) / 2)
  got = float(jaxloss.multiclass_sparsemax_loss(jnp.asarray(z32), jnp.array([0]), reduction="sum"))
  assert abs(got - exact) <= 1e-3 * exact  # the <pi, z - z_y> + (1 - |pi|^2)/2 form is ~10% off in float32
  with jax.numpy_dtype_promotion("standard"):
    textbook = float(optax.losses.multiclass_sparsemax_loss(jnp.asarray(z32), jnp.array([0]))[0])
  assert abs(textbook - exact) > abs(got - exact)


def test_multiclass_hessian_is_the_projection_jacobian():
  z = jnp.asarray(RANDOM[:3])
  labels = jnp.array([0, 3, 6])
  h = np.asarray(jax.hessian(lambda x: jaxloss.multiclass_sparsemax_loss(x, labels, reduction="sum"))(z))
  for i, row in enumerate(RANDOM[:3]):
    pi, _ = sparsemax_martins(row)
    s = (pi > 0).astype(float)
    want = np.diag(s) - np.outer(s, s) / s.sum()
    np.testing.assert_allclose(h[i, :, i, :], want, atol=1e-12)


def test_multiclass_zero_iff_margin_one():
  z = jnp.array([[2.0, 1.0, 0.5], [2.0, 1.5, 0.0]])
  got = np.asarray(jaxloss.multiclass_sparsemax_loss(z, jnp.array([0, 0]), reduction="none"))
  assert got[0] == 0.0 and got[1] > 0


def test_multiclass_bad_labels_nan():
  got = np.asarray(jaxloss.multiclass_sparsemax_loss(jnp.ones((3, 4)), jnp.array([0, 4, -1]), reduction="none"))
  assert np.isfinite(got[0]) and np.isnan(got[1:]).all()


# --------------------------------------------------------------------------
# binary
# --------------------------------------------------------------------------
def test_binary_against_optax_hard_labels_values_and_grads():
  z = jnp.asarray(np.concatenate([RNG.normal(size=200) * 2, [-1.0, 1.0, 0.0, 1e4, -1e4]]))
  y = jnp.asarray(RNG.integers(0, 2, size=z.shape[0]))
  ours = lambda x: jnp.sum(jaxloss.sparsemax_loss(x, y, reduction="none"))
  peer = lambda x: jnp.sum(optax.losses.sparsemax_loss(x, y))
  v1, g1 = jax.value_and_grad(ours)(z)
  with jax.numpy_dtype_promotion("standard"):
    v2, g2 = jax.value_and_grad(peer)(z)
  np.testing.assert_allclose(float(v1), float(v2), rtol=1e-13)
  np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-13, atol=1e-15)


def test_binary_soft_labels_fenchel_young_definition():
  # Omega*(z) - y z + Omega(y), Omega*(z) = max_{p in [0,1]} p z + p (1 - p): maximize on a fine grid
  z = np.array([-2.5, -0.7, 0.0, 0.3, 0.9, 1.7])
  y = np.array([0.2, 0.6, 0.5, 0.1, 0.95, 0.4])
  p = np.linspace(0.0, 1.0, 200001)
  conj = np.max(p[None, :] * z[:, None] + p * (1 - p), axis=1)
  want = conj - y * z - y * (1 - y)
  got = np.asarray(jaxloss.sparsemax_loss(jnp.asarray(z), jnp.asarray(y), reduction="none"))
  np.testing.assert_allclose(got, want, atol=1e-9)
  y = np.array([0.0, 0.125, 0.5, 0.625, 1.0])  # dyadic: 2y - 1 and z + 1 - 2y are exact
  zero_at = np.asarray(jaxloss.sparsemax_loss(jnp.asarray(2 * y - 1), jnp.asarray(y), reduction="none"))
  np.testing.assert_array_equal(zero_at, 0.0)


def test_binary_infinite_logits():
  z = jnp.array([jnp.inf, -jnp.inf, jnp.inf, -jnp.inf])
  y = jnp.array([1.0, 0.0, 0.0, 1.0])
  got = np.asarray(jaxloss.sparsemax_loss(z, y, reduction="none"))
  np.testing.assert_array_equal(got, [0.0, 0.0, np.inf, np.inf])
  g = np.asarray(jax.grad(lambda x: jaxloss.sparsemax_loss(x, y[:2], reduction="sum"))(z[:2]))
  np.testing.assert_array_equal(g, [0.0, 0.0])


@pytest.mark.parametrize("steps", [0, 1, 24])
def test_threshold_fixed_point_and_sort_fallback_agree_with_martins(steps, monkeypatch):
  # steps=0: every row falls back to the sort; 1: some rows settle, the others fall back; 24: the default
  monkeypatch.setattr(S, "_FIXED_POINT_STEPS", steps)
  geometric = np.cumsum(0.5 ** np.arange(7))[::-1].copy()  # a support that shrinks one element per pass
  z = np.concatenate([RANDOM, 0.05 * RANDOM, TIES[:, :3].repeat(3, axis=1)[:, :7], geometric[None]])
  got = np.asarray(jax.jit(lambda x: S.sparsemax(x, -1))(jnp.asarray(z)))
  np.testing.assert_allclose(got, _rows(z, lambda r: sparsemax_martins(r)[0]), rtol=1e-13, atol=1e-15)
