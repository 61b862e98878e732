"""The shared reduction, masking, weighting and dtype rules of jaxloss._base."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss import _base


def _loss():
  return jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_mean_sum_none_without_weights():
  loss = _loss()
  np.testing.assert_allclose(_base.reduce_loss(loss, reduction="sum"), 21.0)
  np.testing.assert_allclose(_base.reduce_loss(loss, reduction="mean"), 3.5)
  np.testing.assert_array_equal(_base.reduce_loss(loss, reduction="none"), loss)


def test_weighted_mean_divides_by_summed_effective_weights():
  loss = _loss()
  w = jnp.array([[1.0], [3.0]])
  where = jnp.array([[True, False, True], [True, True, True]])
  got = _base.reduce_loss(loss, weights=w, where=where, reduction="mean")
  # by hand: numerator 1*1 + 1*3 + 3*(4+5+6) = 49; denominator 1+1+3*3 = 11
  np.testing.assert_allclose(got, 49.0 / 11.0, rtol=1e-15)
  none = _base.reduce_loss(loss, weights=w, where=where, reduction="none")
  np.testing.assert_array_equal(none, [[1.0, 0.0, 3.0], [12.0, 15.0, 18.0]])


def test_extra_weights_multiply_user_weights():
  loss = jnp.array([2.0, 4.0])
  got = _base.reduce_loss(loss, weights=jnp.array([1.0, 0.5]), extra_weights=jnp.array([3.0, 2.0]))
  np.testing.assert_allclose(got, (2.0 * 3.0 + 4.0 * 1.0) / (3.0 + 1.0))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_boolean_extra_weights_exclude_but_keep_nan_under_jit(reduction):
  """An excluded element counts 0, a NaN stays NaN: eagerly and under jit alike.

  Multiplying by ``float(mask)`` keeps the NaN eagerly, but XLA rewrites that
  product into a select under jit, which turned an invalid input into 0 (the
  ranking losses' NaN-label lists did).
  """
  loss = jnp.array([1.0, 5.0, jnp.nan, 3.0])
  keep = jnp.array([True, False, False, True])
  f = lambda l, k: _base.reduce_loss(l, extra_weights=k, reduction=reduction)
  want = {"none": [1.0, 0.0, np.nan, 3.0], "sum": np.nan, "mean": np.nan}[reduction]
  np.testing.assert_array_equal(f(loss, keep), want)
  np.testing.assert_array_equal(jax.jit(f)(loss, keep), want)
  finite = loss.at[2].set(7.0)  # without the NaN: the excluded elements count 0, also in the mean's denominator
  want = {"none": [1.0, 0.0, 0.0, 3.0], "sum": 4.0, "mean": 2.0}[reduction]
  np.testing.assert_array_equal(jax.jit(f)(finite, keep), want)


@pytest.mark.parametrize("name", ["pairwise_logistic_loss", "pairwise_hinge_loss"])
def test_ranking_nan_label_list_is_nan_under_jit(name):
  fn = getattr(jaxloss, name)
  s = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  y = jnp.array([[1.0, jnp.nan], [1.0, 0.0]])
  for f in (fn, jax.jit(fn, static_argnames="reduction")):
    out = np.asarray(f(s, y, reduction="none"))
    assert np.isnan(out[0]) and np.isfinite(out[1])
    assert np.isnan(f(s, y, reduction="mean"))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_masked_is_zero_with_zero_gradient(reduction):
  def f(x):
    return _base.reduce_loss(jnp.square(x), where=jnp.zeros(x.shape, bool), reduction=reduction)

  x = jnp.array([1.0, 2.0, 3.0])
  value, grad = jax.value_and_grad(f)(x)
  assert value == 0.0
  np.testing.assert_array_equal(grad, np.zeros(3))


def test_zero_weights_mean_is_zero_not_nan():
  got = _base.reduce_loss(jnp.array([1.0, 2.0]), weights=jnp.zeros(2))
  assert got == 0.0


def test_weights_must_broadcast_to_loss_not_enlarge_it():
  with pytest.raises(ValueError, match=r"weights must broadcast to the unreduced loss shape \(3,\)"):
    _base.reduce_loss(jnp.ones(3), weights=jnp.ones((2, 3)))


def test_where_must_be_boolean_and_broadcastable():
  with pytest.raises(TypeError, match="where must be a boolean mask"):
    _base.prepare_where(jnp.ones(3), (3,))
  with pytest.raises(ValueError, match="where must broadcast"):
    _base.prepare_where(jnp.ones((3, 4), bool), (3,))


def test_unknown_reduction():
  with pytest.raises(ValueError, match="reduction must be one of"):
    _base.reduce_loss(jnp.ones(3), reduction="average")


@pytest.mark.runtime_checks
def test_negative_weight_is_nan_and_raises_under_checkify():
  loss = jnp.array([1.0, 2.0])
  w = jnp.array([1.0, -1.0])
  out = _base.reduce_loss(loss, weights=w, reduction="none")
  assert np.isnan(out[1]) and out[0] == 1.0
  checked = checkify.checkify(
      jax.jit(lambda w: _base.reduce_loss(loss, weights=w)), errors=checkify.user_checks)
  err, _ = checked(w)
  with pytest.raises(checkify.JaxRuntimeError, match="weights must be non-negative"):
    err.throw()


@pytest.mark.parametrize(
    "dtype, expected",
    [(jnp.bfloat16, jnp.float32), (jnp.float16, jnp.float32), (jnp.float32, jnp.float32),
     (jnp.float64, jnp.float64)],
)
def test_computation_dtype(dtype, expected):
  x, cdtype = _base.as_predictions("logits", jnp.ones(2, dtype))
  assert cdtype == expected and x.dtype == expected


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_integer_predictions_rejected(dtype):
  with pytest.raises(TypeError, match="logits must be a floating-point array"):
    _base.as_predictions("logits", jnp.ones(2, dtype))


def test_targets_are_not_quantized_through_prediction_dtype():
  _, cdtype = _base.as_predictions("logits", jnp.ones(2, jnp.bfloat16))
  y = _base.as_targets("labels", np.float64(0.8), cdtype)
  assert y == np.float32(0.8)
  assert float(jnp.asarray(0.8, jnp.bfloat16)) != float(np.float32(0.8))


def test_xlogy_conventions():
  x = jnp.array([0.0, 0.0, 0.5])
  y = jnp.array([0.0, 0.25, 0.25])
  np.testing.assert_allclose(_base.xlogy(x, y), [0.0, 0.0, 0.5 * np.log(0.25)])
  gx = jax.grad(lambda x: _base.xlogy(x, y).sum())(x)
  gy = jax.grad(lambda y: _base.xlogy(x, y).sum())(y)
  # d/dx = log y (0 by convention at x = y = 0); d/dy = x / y (0 at x = 0).
  np.testing.assert_allclose(gx, [0.0, np.log(0.25), np.log(0.25)])
  np.testing.assert_allclose(gy, [0.0, 0.0, 2.0])


def test_check_same_shape_message_names_both():
  with pytest.raises(ValueError, match=r"predictions.shape=\(4,\) and targets.shape=\(4, 1\)"):
    _base.check_same_shape("predictions", jnp.ones(4), "targets", jnp.ones((4, 1)))


def test_trace_for_platform_traces_one_branch():
  """jaxloss.verify traces lax.platform_dependent's branch for its backend alone; users get both."""
  cpu = lambda x: x + 1.0
  other = lambda x: x - 1.0
  f = lambda x: _base.platform_dependent(x, cpu=cpu, default=other)
  x = jnp.zeros(3)
  both = str(jax.make_jaxpr(f)(x))
  assert "platform_index" in both
  with _base.trace_for_platform("cpu"):
    one = str(jax.make_jaxpr(f)(x))
    np.testing.assert_array_equal(jax.jit(f)(x), cpu(x))
  with _base.trace_for_platform("gpu"):
    np.testing.assert_array_equal(f(x), other(x))
  assert "platform_index" not in one and "add" in one
  assert _base._TRACE_PLATFORM.value is None
