"""Segmentation losses against their peers: Keras 3 (JAX backend) and optax, values and gradients; and the
documented differences (Keras's batch-wide default axis and swapped Tversky alpha/beta, optax's smoothing form).

Derivatives and float64 references are checked registry-wide (tests/test_registry.py).
"""

import functools
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


@pytest.fixture(autouse=True)
def _x64():
  with jax.enable_x64(True):
    yield


def _keras():
  keras = pytest.importorskip("keras")
  if keras.backend.backend() != "jax":
    pytest.skip("keras was imported with another backend")
  return keras


def _masks(shape, seed):
  rng = np.random.default_rng(seed)
  return rng.random(shape), (rng.random(shape) < 0.4).astype(np.float64)


def _grads(fn, p, t):
  """Gradients of a scalar ``fn(p, t)`` with respect to both, jitted (one compilation)."""
  with jax.numpy_dtype_promotion("standard"):  # keras and optax promote freely
    return [np.asarray(g) for g in jax.jit(jax.grad(fn, argnums=(0, 1)))(p, t)]


def _val(fn, *args, **kw):
  with jax.numpy_dtype_promotion("standard"):
    return np.asarray(jax.jit(functools.partial(fn, **kw))(*args))


# ---------------------------------------------------------------------------
# Keras: compat is exact, native differs as documented
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, (1, 2)])
def test_compat_keras_dice_matches_keras(axis):
  keras = _keras()
  p, t = _masks((3, 4, 5), 0)
  np.testing.assert_allclose(_val(K.dice, t, p, axis=axis), _val(keras.losses.dice, t, p, axis=axis), rtol=1e-12)
  for ours, theirs in zip(_grads(lambda a, b: jnp.sum(K.dice(b, a, axis=axis)), p, t),
                          _grads(lambda a, b: jnp.sum(keras.losses.dice(b, a, axis=axis)), p, t)):
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.9, 0.1)])
def test_compat_keras_tversky_matches_keras(alpha, beta):
  keras = _keras()
  p, t = _masks((2, 6, 3), 1)
  for axis in (None, (1, 2)):
    kw = dict(alpha=alpha, beta=beta, axis=axis)
    np.testing.assert_allclose(_val(K.tversky, t, p, **kw), _val(keras.losses.tversky, t, p, **kw), rtol=1e-12)
    for ours, theirs in zip(_grads(lambda a, b: jnp.sum(K.tversky(b, a, **kw)), p, t),
                            _grads(lambda a, b: jnp.sum(keras.losses.tversky(b, a, **kw)), p, t)):
      np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_keras_tversky_swaps_alpha_and_beta():
  """keras-team/keras#23333: Keras's alpha weighs false negatives; ours (Salehi et al.) false positives."""
  keras = _keras()
  p, t = _masks((2, 10), 2)
  axis = (1,)
  kw = dict(reduction="none", smooth=0.0)
  native = _val(jaxloss.tversky_loss, p, t, alpha=0.2, beta=0.8, **kw)
  swapped = _val(keras.losses.tversky, t, p, alpha=0.8, beta=0.2, axis=axis)
  np.testing.assert_allclose(native, swapped, rtol=1e-6)  # equal up to Keras's epsilon 1e-7
  same_names = _val(keras.losses.tversky, t, p, alpha=0.2, beta=0.8, axis=axis)
  assert np.all(np.abs(native - same_names) > 1e-3)
  # by hand: only false positives (alpha = 1, beta = 0): 1 - TP / (TP + FP)
  tp, fp = np.sum(p * t, 1), np.sum(p * (1 - t), 1)
  np.testing.assert_allclose(_val(jaxloss.tversky_loss, p, t, alpha=1.0, beta=0.0, **kw), 1 - tp / (tp + fp),
                             rtol=1e-12)


def test_native_dice_is_per_sample_keras_default_is_batch_wide():
  keras = _keras()
  # a large, well-segmented sample and a small, badly segmented one
  t = np.zeros((2, 100))
  t[0, :60], t[1, :2] = 1.0, 1.0
  p = np.zeros((2, 100))
  p[0, :60], p[1, 50:52] = 1.0, 1.0
  per_sample = _val(jaxloss.dice_loss, p, t, smooth=0.0, reduction="none")
  np.testing.assert_allclose(per_sample, [0.0, 1.0], atol=1e-15)
  np.testing.assert_allclose(_val(keras.losses.dice, t, p, axis=(1,)), per_sample, atol=1e-6)
  batch = float(_val(keras.losses.dice, t, p))  # axis=None: one ratio over the batch
  np.testing.assert_allclose(batch, 1 - 2 * 60 / 124, rtol=1e-6)  # the small sample's total miss almost vanishes
  assert batch < 0.04 < float(_val(jaxloss.dice_loss, p, t, smooth=0.0))


# ---------------------------------------------------------------------------
# optax: dice_loss(smooth=s) is Tversky's form, i.e. our dice_loss(smooth=2s)
# ---------------------------------------------------------------------------
def _two_class(x):
  return np.stack([x, 1.0 - x], axis=-1)


@pytest.mark.parametrize("smooth", [1.0, 1e-3])
def test_dice_and_tversky_match_optax(smooth):
  p, t = _masks((3, 4, 5), 3)
  # optax's probability path (apply_softmax=False) checks row sums in Python: eager only, two classes
  with jax.numpy_dtype_promotion("standard"):
    want = np.asarray(optax.losses.dice_loss(_two_class(p), _two_class(t), smooth=smooth, apply_softmax=False,
                                             reduction="none"))[:, 0]
    want_tv = np.asarray(optax.losses.dice_loss(_two_class(p), _two_class(t), smooth=smooth, alpha=0.3, beta=0.7,
                                                apply_softmax=False, reduction="none"))[:, 0]
  np.testing.assert_allclose(_val(jaxloss.dice_loss, p, t, smooth=2 * smooth, reduction="none"), want, rtol=1e-12)
  np.testing.assert_allclose(_val(jaxloss.tversky_loss, p, t, alpha=0.3, beta=0.7, smooth=smooth, reduction="none"),
                             want_tv, rtol=1e-12)
  # gradients through optax's logit path: sigmoid logits z give probabilities p = sigmoid(z)
  z = np.log(p / (1 - p))

  def optax_sum(zz, tt):
    return jnp.sum(optax.losses.dice_loss(zz[..., None], tt[..., None], smooth=smooth, alpha=0.3, beta=0.7,
                                          axis=(1, 2), reduction="none"))

  def ours_sum(zz, tt):
    return jaxloss.tversky_loss(jax.nn.sigmoid(zz), tt, alpha=0.3, beta=0.7, smooth=smooth, reduction="sum")

  for ours, theirs in zip(_grads(ours_sum, z, t), _grads(optax_sum, z, t)):
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)


def test_dice_equals_tversky_half_half_with_half_smoothing():
  p, t = _masks((4, 7), 4)
  np.testing.assert_allclose(_val(jaxloss.dice_loss, p, t, smooth=0.6, reduction="none"),
                             _val(jaxloss.tversky_loss, p, t, smooth=0.3, reduction="none"), rtol=1e-12)


# ---------------------------------------------------------------------------
# generalized Dice (Sudre et al.): by hand on a small case, the absent-class rule, optax's different loss
# ---------------------------------------------------------------------------
def test_generalized_dice_by_hand():
  # one sample, 4 pixels, 2 classes: class 0 on 3 pixels, class 1 on 1
  t = np.array([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
  p = np.array([[[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]]])
  w0, w1 = 1 / 9, 1 / 1
  num = 2 * (w0 * (0.9 + 0.8 + 0.4) + w1 * 0.7)
  den = w0 * (0.9 + 0.8 + 0.4 + 0.3 + 3) + w1 * (0.1 + 0.2 + 0.6 + 0.7 + 1)
  np.testing.assert_allclose(_val(jaxloss.multiclass_generalized_dice_loss, p, t), 1 - num / den, rtol=1e-12)
  # the derivative by hand: w_c (N - 2 t D) / D^2
  g, _ = _grads(lambda a, b: jaxloss.multiclass_generalized_dice_loss(a, b, reduction="sum"), p, t)
  np.testing.assert_allclose(g[0, 3, 1], w1 * (num - 2 * 1 * den) / den**2, rtol=1e-12)
  np.testing.assert_allclose(g[0, 3, 0], w0 * num / den**2, rtol=1e-12)


def test_generalized_dice_absent_class_takes_the_largest_present_weight():
  t = np.array([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # class 2 absent
  p = np.array([[[0.6, 0.2, 0.2], [0.5, 0.2, 0.3], [0.1, 0.5, 0.4]]])
  w = np.array([1 / 4, 1.0, 1.0])  # absent class 2 weighs like class 1, the rarest present
  inter, psum, tsum = (p * t).sum(1)[0], p.sum(1)[0], t.sum(1)[0]
  want = 1 - 2 * np.sum(w * inter) / np.sum(w * (psum + tsum))
  np.testing.assert_allclose(_val(jaxloss.multiclass_generalized_dice_loss, p, t), want, rtol=1e-12)
  # a false positive on the absent class costs: moving mass onto it raises the loss
  q = p.copy()
  q[0, 0] = [0.4, 0.2, 0.4]
  assert float(_val(jaxloss.multiclass_generalized_dice_loss, q, t)) > want


def test_generalized_dice_differs_from_optax_which_is_another_loss():
  p, t = _masks((2, 5, 3), 5)
  t = np.eye(3)[np.argmax(t + np.random.default_rng(6).random(t.shape), axis=-1)]
  p = p / p.sum(-1, keepdims=True)
  with jax.numpy_dtype_promotion("standard"):
    theirs = float(optax.losses.multiclass_generalized_dice_loss(p, t, smooth=0.0, apply_softmax=False))
  ours = float(_val(jaxloss.multiclass_generalized_dice_loss, p, t))
  assert abs(ours - theirs) > 1e-3


def test_generalized_dice_class_axis_and_errors():
  p, t = _masks((2, 3, 4), 7)
  a = _val(jaxloss.multiclass_generalized_dice_loss, p, t, reduction="none")
  b = _val(jaxloss.multiclass_generalized_dice_loss, np.moveaxis(p, -1, 1), np.moveaxis(t, -1, 1), axis=1,
           reduction="none")
  np.testing.assert_allclose(a, b, rtol=1e-12)
  with pytest.raises(ValueError, match="batch axis"):
    jaxloss.multiclass_generalized_dice_loss(p, t, axis=0)


# ---------------------------------------------------------------------------
# inputs and options
# ---------------------------------------------------------------------------
def test_axis_none_needs_a_batch_axis_and_shapes_must_match():
  with pytest.raises(ValueError, match="batch axis"):
    jaxloss.dice_loss(np.ones(3), np.ones(3))
  with pytest.raises(ValueError, match="same shape"):
    jaxloss.tversky_loss(np.ones((2, 3)), np.ones((2, 3, 1)))
  with pytest.raises(ValueError, match="alpha must be"):
    jaxloss.tversky_loss(np.ones((2, 3)), np.ones((2, 3)), alpha=-0.1)


@pytest.mark.runtime_checks
def test_probabilities_outside_unit_interval_raise_under_checkify():
  p = jnp.array([[0.2, 1.3], [0.5, 0.5]])
  t = jnp.array([[0.0, 1.0], [1.0, 0.0]])
  with jaxloss.runtime_checks():
    err, value = checkify.checkify(lambda a, b: jaxloss.dice_loss(a, b, reduction="none"),
                                   errors=checkify.user_checks)(p, t)
  assert np.isnan(value[0]) and np.isfinite(value[1])
  with pytest.raises(checkify.JaxRuntimeError, match=r"probs must lie in \[0, 1\]"):
    err.throw()
