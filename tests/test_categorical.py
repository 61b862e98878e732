"""Categorical losses against optax, Keras 3 (JAX backend) and PyTorch: values and gradients.

Keras and PyTorch are optional peers (skipped when missing). Keras is imported
with ``KERAS_BACKEND=jax``, so its losses are differentiated with ``jax.grad``.
High-precision values come from mpmath.
"""

import os

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss.compat import keras as K

RNG = np.random.default_rng(2)
Z = RNG.normal(size=(32, 5)) * 1.5
LABELS = RNG.integers(0, 5, size=32)
ONEHOT = np.eye(5)[LABELS]
SOFT = np.exp(RNG.normal(size=(32, 5)))
SOFT /= SOFT.sum(-1, keepdims=True)


def _keras():
  os.environ.setdefault("KERAS_BACKEND", "jax")
  keras = pytest.importorskip("keras")
  if keras.backend.backend() != "jax":
    pytest.skip("keras was imported with another backend")
  return keras


def _vg(fn, x):
  return jax.value_and_grad(lambda a: jnp.sum(fn(a)))(jnp.asarray(x))


def _peer_vg(fn, x):
  with jax.numpy_dtype_promotion("standard"):  # peers mix dtypes internally
    return _vg(fn, x)


def _mp_log_softmax(row):
  mpmath.mp.dps = 60
  row = [mpmath.mpf(float(v)) for v in row]
  lse = mpmath.log(sum(mpmath.exp(v) for v in row))
  return [v - lse for v in row]


# --------------------------------------------------------------------------
# softmax focal loss
# --------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [ONEHOT, SOFT], ids=["onehot", "soft"])
@pytest.mark.parametrize("gamma", [2.0, 0.5])
def test_focal_against_keras(labels, gamma):
  keras = _keras()
  z = jnp.asarray(Z, jnp.float32)
  y = jnp.asarray(labels, jnp.float32)
  v1, g1 = _vg(lambda a: jaxloss.softmax_focal_loss(a, y, alpha=0.25, gamma=gamma, reduction="none"), z)
  v2, g2 = _peer_vg(lambda a: keras.losses.categorical_focal_crossentropy(y, a, gamma=gamma, from_logits=True), z)
  np.testing.assert_allclose(float(v1), float(v2), rtol=2e-6)
  np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-4, atol=1e-6)
  # the compat form is Keras' (normalization and clipping included), also on probabilities with zeros
  p = jnp.asarray(np.where(RNG.random((32, 5)) < 0.2, 0.0, RNG.random((32, 5))), jnp.float32)
  got = K.categorical_focal_crossentropy(y, p, gamma=gamma, label_smoothing=0.1)
  with jax.numpy_dtype_promotion("standard"):
    want = keras.losses.categorical_focal_crossentropy(y, p, gamma=gamma, label_smoothing=0.1)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-6)


def test_focal_gamma_zero_is_optax_cross_entropy():
  v1, g1 = _vg(lambda a: jaxloss.softmax_focal_loss(a, SOFT, gamma=0.0, reduction="none"), Z)
  v2, g2 = _peer_vg(lambda a: optax.losses.softmax_cross_entropy(a, jnp.asarray(SOFT)), Z)
  np.testing.assert_allclose(float(v1), float(v2), rtol=1e-13)
  np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-12, atol=1e-15)


def test_focal_confident_row_float32_against_mpmath():
  z = np.array([[20.0, 0.0, 1.0], [9.0, 0.0, -3.0]], np.float32)
  y = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
  got = np.asarray(jaxloss.softmax_focal_loss(z, y, reduction="none"))
  for row, g in zip(z, got):
    logp = _mp_log_softmax(row)[0]
    want = float((1 - mpmath.exp(logp)) ** 2 * -logp)
    np.testing.assert_allclose(g, want, rtol=1e-5)  # 1 - p computed as 1 - p would give 0 for the first row


def test_focal_alpha_per_class_and_bad_labels():
  alpha = np.array([0.5, 1.0, 2.0, 1.5, 0.25])
  got = np.asarray(jaxloss.softmax_focal_loss(Z, ONEHOT, alpha=alpha, reduction="none"))
  plain = np.asarray(jaxloss.softmax_focal_loss(Z, ONEHOT, reduction="none"))
  np.testing.assert_allclose(got, alpha[LABELS] * plain, rtol=1e-14)
  y = ONEHOT.copy()
  y[0, 0] = -1.0
  assert np.isnan(np.asarray(jaxloss.softmax_focal_loss(Z, y, reduction="none"))[0])
  with pytest.raises(ValueError, match="gamma"):
    jaxloss.softmax_focal_loss(Z, ONEHOT, gamma=-1.0)


# --------------------------------------------------------------------------
# poly-1
# --------------------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [2.0, -1.0])
def test_poly_against_optax(epsilon):
  for y in (ONEHOT, SOFT):
    v1, g1 = _vg(lambda a: jaxloss.poly_loss_cross_entropy(a, y, epsilon=epsilon, reduction="none"), Z)
    v2, g2 = _peer_vg(lambda a: optax.losses.poly_loss_cross_entropy(a, jnp.asarray(y), epsilon=epsilon), Z)
    np.testing.assert_allclose(float(v1), float(v2), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-12, atol=1e-15)


def test_poly_confident_row_float32_against_mpmath():
  z = np.array([[20.0, 0.0, 1.0]], np.float32)
  got = float(jaxloss.poly_loss_cross_entropy(z, np.array([[1.0, 0.0, 0.0]], np.float32), reduction="sum"))
  logp = _mp_log_softmax(z[0])[0]
  want = float(-logp + 2 * (1 - mpmath.exp(logp)))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  with jax.numpy_dtype_promotion("standard"):
    peer = float(optax.losses.poly_loss_cross_entropy(jnp.asarray(z), jnp.asarray([[1.0, 0.0, 0.0]], jnp.float32))[0])
  assert abs(peer - want) > 0.5 * want  # optax's 1 - p is 0 here


# --------------------------------------------------------------------------
# generalized cross-entropy
# --------------------------------------------------------------------------
@pytest.mark.parametrize("q", [0.7, 1.0])
def test_gce_against_keras(q):
  keras = _keras()
  z = jnp.asarray(Z, jnp.float32)
  v1, g1 = _vg(lambda a: jaxloss.generalized_cross_entropy(a, LABELS, q=q, reduction="none"), z)
  v2, g2 = _peer_vg(lambda a: keras.losses.categorical_generalized_cross_entropy(
      jnp.asarray(LABELS), jax.nn.softmax(a), q), z)
  np.testing.assert_allclose(float(v1), float(v2), rtol=2e-6)
  np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-4, atol=1e-6)
  p = jax.nn.softmax(z)
  with jax.numpy_dtype_promotion("standard"):
    want = keras.losses.categorical_generalized_cross_entropy(jnp.asarray(LABELS), p, q)
  np.testing.assert_allclose(np.asarray(K.categorical_generalized_cross_entropy(LABELS, p, q)), np.asarray(want),
                             rtol=1e-6)


def test_gce_limits_and_confident_rows():
  p = np.exp(Z - Z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  py = p[np.arange(32), LABELS]
  np.testing.assert_allclose(np.asarray(jaxloss.generalized_cross_entropy(Z, LABELS, q=1.0, reduction="none")),
                             1 - py, rtol=1e-12)
  z = np.array([[20.0, 0.0, 1.0]], np.float32)
  got = float(jaxloss.generalized_cross_entropy(z, np.array([0]), q=0.7, reduction="sum"))
  logp = _mp_log_softmax(z[0])[0]
  np.testing.assert_allclose(got, float((1 - mpmath.exp(0.7 * logp)) / 0.7), rtol=1e-5)
  with pytest.raises(ValueError, match="q must be in \\(0.0, 1.0\\]"):
    jaxloss.generalized_cross_entropy(Z, LABELS, q=0.0)


# --------------------------------------------------------------------------
# nll_loss and sparse_categorical_cross_entropy
# --------------------------------------------------------------------------
def test_nll_against_torch():
  torch = pytest.importorskip("torch")
  logp = Z - np.log(np.exp(Z).sum(-1, keepdims=True))
  labels = LABELS.copy()
  labels[:3] = -100
  w = np.array([0.5, 1.0, 2.0, 1.5, 0.25])
  xt = torch.tensor(logp, requires_grad=True)
  for reduction in ("none", "mean", "sum"):
    out = torch.nn.functional.nll_loss(xt, torch.tensor(labels), weight=torch.tensor(w), ignore_index=-100,
                                       reduction=reduction)
    (gt,) = torch.autograd.grad(out.sum(), xt)
    v, g = _vg(lambda a, r=reduction: jaxloss.nll_loss(a, labels, class_weights=w, ignore_index=-100, reduction=r),
               logp)
    np.testing.assert_allclose(float(v), float(out.detach().sum()), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(g), gt.numpy(), rtol=1e-13, atol=1e-16)


def test_nll_positive_log_probability_is_nan():
  got = np.asarray(jaxloss.nll_loss(np.array([[2.0, -1.0], [-0.5, 1.0]]), np.array([0, 0]), reduction="none"))
  assert np.isnan(got[0]) and got[1] == 0.5


@pytest.mark.runtime_checks
def test_nll_runtime_checks_name_the_argument():
  f = checkify.checkify(lambda x, y: jaxloss.nll_loss(x, y), errors=checkify.user_checks)
  err, _ = jax.jit(f)(jnp.array([[2.0, -1.0]]), jnp.array([0]))
  with pytest.raises(Exception, match="log_probs must be <= 0"):
    err.throw()
  err, _ = jax.jit(f)(jnp.array([[-2.0, -1.0]]), jnp.array([2]))
  with pytest.raises(Exception, match="labels must be class indices"):
    err.throw()


def test_sparse_categorical_against_keras():
  keras = _keras()
  v1, g1 = _vg(lambda a: jaxloss.sparse_categorical_cross_entropy(a, LABELS, reduction="none"), SOFT)
  v2, g2 = _peer_vg(lambda a: keras.losses.sparse_categorical_crossentropy(jnp.asarray(LABELS), a), SOFT)
  np.testing.assert_allclose(float(v1), float(v2), rtol=1e-12)
  # Keras renormalizes p / sum(p): its gradient has the extra + 1 / sum(p) = + 1 on every class
  np.testing.assert_allclose(np.asarray(g1), np.asarray(g2) - 1.0, rtol=1e-10, atol=1e-12)


def test_sparse_categorical_as_given_and_bad_values():
  p = np.array([[0.2, 0.3, 0.5], [2.0, 8.0, 0.0], [0.0, 0.5, 0.5], [0.1, 0.1, 0.1]])
  got = np.asarray(jaxloss.sparse_categorical_cross_entropy(p, np.array([2, 0, 0, 1]), reduction="none"))
  np.testing.assert_allclose(got[[0, 3]], [-np.log(0.5), -np.log(0.1)], rtol=1e-14)  # not renormalized
  assert np.isnan(got[1]) and got[2] == np.inf
  ignored = np.asarray(jaxloss.sparse_categorical_cross_entropy(p[:1], np.array([-1]), ignore_index=-1,
                                                                reduction="none"))
  np.testing.assert_array_equal(ignored, [0.0])


def test_new_modules_exported_and_registered():
  from jaxloss import _categorical, _margin, _sparsemax  # pylint: disable=g-import-not-at-top
  for module in (_categorical, _margin, _sparsemax):
    assert [s.name for s in module.SPECS] == list(module.__all__)
    for name in module.__all__:
      assert getattr(jaxloss, name) is getattr(module, name)
      assert jaxloss.REGISTRY[name].fn is getattr(module, name)
