"""Loss-specific numerics and bad-input tests of the information-theoretic losses.

The registry-wide checks (closed-form gradients vs autodiff, jit, vmap,
sharding, references on samples) live in tests/test_registry.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from jax.experimental import checkify

import jaxloss


def _checked(fn, *args, **kwargs):
  err, out = checkify.checkify(lambda *a: fn(*a, **kwargs), errors=checkify.user_checks)(*args)
  return err.get(), out


# --------------------------------------------------------------------------
# seed facts: the BCE floor
# --------------------------------------------------------------------------
H_08 = 0.5004024235  # -(0.8 ln 0.8 + 0.2 ln 0.2), nats


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_binary_kl_is_exactly_zero_at_p_equals_soft_label(dtype):
  y = jnp.array([0.8, 0.3, 0.5, 1e-4, 0.999], dtype)
  value, grad = jax.value_and_grad(lambda p: jaxloss.binary_kl_divergence(p, y, reduction="sum"))(y)
  assert value == 0.0
  np.testing.assert_array_equal(grad, np.zeros(5))
  assert jaxloss.binary_kl_divergence(jnp.asarray(0.8, dtype), jnp.asarray(0.8, dtype)) == 0.0


def test_binary_entropy_of_08_and_bce_floor():
  np.testing.assert_allclose(jaxloss.binary_entropy(jnp.float64(0.8)), H_08, rtol=1e-10)
  np.testing.assert_allclose(jaxloss.binary_entropy(jnp.float32(0.8)), H_08, rtol=1e-7)
  # binary KL = BCE(p, y) - H(y), with BCE written independently in numpy
  p = np.array([0.1, 0.5, 0.8, 0.95])
  y = 0.8
  bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
  h = -(y * np.log(y) + (1 - y) * np.log(1 - y))
  got = jaxloss.binary_kl_divergence(jnp.asarray(p), jnp.full(4, y), reduction="none")
  np.testing.assert_allclose(got, bce - h, rtol=1e-13, atol=1e-15)
  # so it is minimized at p = 0.8, where BCE equals H(0.8)
  assert np.argmin(np.asarray(got)) == 2


def test_binary_kl_hard_labels_at_endpoints_zero_log_zero():
  # y = 0, p = 0: KL = -log(1 - p) = 0 with derivative 1/(1 - p) = 1 (exact, not a NaN).
  # y = 1, p = 1: KL = -log p = 0 with derivative -1/p = -1.
  p = jnp.array([0.0, 1.0])
  y = jnp.array([0.0, 1.0])
  value, grad = jax.value_and_grad(lambda a: jaxloss.binary_kl_divergence(a, y, reduction="sum"))(p)
  assert value == 0.0
  np.testing.assert_array_equal(grad, [1.0, -1.0])


# --------------------------------------------------------------------------
# 0 log 0 = 0 in value and gradient
# --------------------------------------------------------------------------
def test_zero_targets_give_zero_value_and_gradient_terms():
  t = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
  p = jnp.array([[0.6, 0.4, 0.0], [0.5, 0.25, 0.25]])
  # cross-entropy: the (t=0, p=0) entry contributes nothing, in value and in both gradients
  f = lambda a, b: jaxloss.cross_entropy(a, b, reduction="sum")
  value = f(p, t)
  gp, gt = jax.grad(f, argnums=(0, 1))(p, t)
  np.testing.assert_allclose(value, -np.log(0.6) - 0.5 * np.log(0.5) - 0.5 * np.log(0.25), rtol=1e-15)
  np.testing.assert_allclose(gp, [[-1 / 0.6, 0.0, 0.0], [-1.0, -2.0, 0.0]], rtol=1e-15)
  np.testing.assert_allclose(gt, [[-np.log(0.6), -np.log(0.4), 0.0],
                                  [-np.log(0.5), -np.log(0.25), -np.log(0.25)]], rtol=1e-15)
  # entropy of a one-hot row is 0 with a finite gradient
  h, gh = jax.value_and_grad(lambda a: jaxloss.entropy(a, reduction="sum"))(t[:1])
  assert h == 0.0
  np.testing.assert_array_equal(gh, [[-1.0, 0.0, 0.0]])


def test_kl_zero_targets_on_minus_inf_log_predictions_are_finite():
  lp = jnp.array([[-jnp.inf, np.log(0.25), np.log(0.75)]])
  t = jnp.array([[0.0, 0.5, 0.5]])
  f = lambda a, b: jaxloss.kl_divergence(a, b, reduction="sum")
  value = f(lp, t)
  g_lp, g_t = jax.grad(f, argnums=(0, 1))(lp, t)
  np.testing.assert_allclose(value, scipy.special.rel_entr([0.5, 0.5], [0.25, 0.75]).sum(), rtol=1e-15)
  assert np.all(np.isfinite(g_lp)) and np.all(np.isfinite(g_t))
  np.testing.assert_array_equal(g_lp, [[0.0, -0.5, -0.5]])
  # log-target form: a -inf log target contributes 0 and has derivative 0
  lt = jnp.log(t)
  f2 = lambda a, b: jaxloss.kl_divergence_with_log_targets(a, b, reduction="sum")
  np.testing.assert_allclose(f2(lp, lt), value, rtol=1e-15)
  g2_lp, g2_lt = jax.grad(f2, argnums=(0, 1))(lp, lt)
  np.testing.assert_array_equal(g2_lp, g_lp)
  assert g2_lt[0, 0] == 0.0 and np.all(np.isfinite(g2_lt))


def test_kl_log_targets_zero_targets_and_infinite_rows():
  rng = np.random.default_rng(4)
  lp = np.log(rng.dirichlet(np.ones(5), size=5))
  lt = np.log(rng.dirichlet(np.ones(5), size=5))
  lt[1, 2] = -np.inf                        # zero target: contributes 0
  lt[2, 0] = -np.inf; lp[2, 0] = -np.inf    # zero target on a zero prediction: still 0
  lp[3, 4] = -np.inf                        # positive target on a zero prediction: +inf
  # renormalized after the zeros (rows must stay distributions; float64 so that float32 rounds them correctly)
  lp -= np.log(np.sum(np.exp(lp), axis=-1, keepdims=True))
  lt -= np.log(np.sum(np.exp(lt), axis=-1, keepdims=True))
  with np.errstate(invalid="ignore", divide="ignore"):
    ref = np.sum(np.where(lt == -np.inf, 0.0, np.exp(lt) * (lt - lp)), axis=-1)
  assert ref[3] == np.inf and np.all(np.isfinite(np.delete(ref, 3)))
  for dtype in (np.float32, np.float64):
    a, b = jnp.asarray(lp, dtype), jnp.asarray(lt, dtype)
    f = jax.jit(lambda a, b: jaxloss.kl_divergence_with_log_targets(a, b, reduction="none"))
    np.testing.assert_allclose(np.asarray(f(a, b)), ref, rtol=8 * np.finfo(dtype).eps)
    g_lp, g_lt = jax.jit(jax.grad(lambda a, b: jnp.sum(f(a, b)[np.array([0, 1, 2, 4])]), argnums=(0, 1)))(a, b)
    np.testing.assert_allclose(np.asarray(g_lp), -np.exp(lt) * (np.arange(5) != 3)[:, None], rtol=8 * np.finfo(dtype).eps)
    with np.errstate(invalid="ignore"):
      slope = np.where(lt == -np.inf, 0.0, np.exp(lt) * (1 + lt - lp)) * (np.arange(5) != 3)[:, None]
    np.testing.assert_allclose(np.asarray(g_lt), slope, rtol=64 * np.finfo(dtype).eps, atol=0)


# --------------------------------------------------------------------------
# identities and peers
# --------------------------------------------------------------------------
def _rows(seed, shape=(3, 6)):
  rng = np.random.default_rng(seed)
  p = rng.dirichlet(np.ones(shape[-1]), size=shape[0])
  t = rng.dirichlet(np.ones(shape[-1]), size=shape[0])
  return p, t


def test_kl_matches_optax_and_log_target_form():
  import optax
  p, t = _rows(0)
  lp = jnp.log(jnp.asarray(p))
  ours = jaxloss.kl_divergence(lp, jnp.asarray(t), reduction="none")
  np.testing.assert_allclose(ours, optax.losses.kl_divergence(lp, jnp.asarray(t)), rtol=1e-14)
  np.testing.assert_allclose(ours, scipy.special.rel_entr(t, p).sum(-1), rtol=1e-13)
  np.testing.assert_allclose(
      jaxloss.kl_divergence_with_log_targets(lp, jnp.log(jnp.asarray(t)), reduction="none"), ours, rtol=1e-13)
  np.testing.assert_allclose(
      jaxloss.kl_divergence(lp.T, jnp.asarray(t).T, axis=0, reduction="none"), ours, rtol=1e-15)


def test_cross_entropy_is_entropy_plus_kl():
  p, t = _rows(1)
  p, t = jnp.asarray(p), jnp.asarray(t)
  ce = jaxloss.cross_entropy(p, t, reduction="none")
  np.testing.assert_allclose(
      ce, jaxloss.entropy(t, reduction="none") + jaxloss.kl_divergence(jnp.log(p), t, reduction="none"), rtol=1e-13)


def test_js_divergence_properties():
  p, t = _rows(2)
  p, t = jnp.asarray(p), jnp.asarray(t)
  js = jaxloss.js_divergence(p, t, reduction="none")
  np.testing.assert_allclose(js, jaxloss.js_divergence(t, p, reduction="none"), rtol=1e-15)
  m = 0.5 * (np.asarray(p) + np.asarray(t))
  want = 0.5 * scipy.special.rel_entr(p, m).sum(-1) + 0.5 * scipy.special.rel_entr(t, m).sum(-1)
  np.testing.assert_allclose(js, want, rtol=1e-12)
  assert np.all(np.asarray(js) > 0) and np.all(np.asarray(js) < np.log(2))
  disjoint = jaxloss.js_divergence(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]]), reduction="none")
  np.testing.assert_allclose(disjoint, [np.log(2.0)], rtol=1e-15)
  assert jaxloss.js_divergence(p, p) == 0.0
  # gradient at p = t is 0 (the minimum)
  np.testing.assert_allclose(jax.grad(lambda a: jaxloss.js_divergence(a, t, reduction="sum"))(t), 0.0, atol=1e-15)


# --------------------------------------------------------------------------
# continuous Bernoulli
# --------------------------------------------------------------------------
_Z = np.array([0.0, 1e-8, 1e-3, 0.1, 10.0, 50.0, 700.0])
_Z = np.concatenate([_Z, -_Z[1:]])


def _cb_log_norm_reference(z):
  """log(z / tanh(z/2)) in float64: tanh is relatively accurate, so is the ratio."""
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(z == 0, np.log(2.0), np.log(z / np.tanh(z / 2)))


def _cb_dlog_norm_reference(z):
  """1/z - 1/sinh z: Taylor series z/6 - 7z^3/360 + 31z^5/15120 - 127 z^7/604800 for |z| < 0.05,
  else the direct formula in extended precision (np.longdouble)."""
  z = np.asarray(z, np.float64)
  series = z / 6 - 7 * z**3 / 360 + 31 * z**5 / 15120 - 127 * z**7 / 604800
  zl = np.where(np.abs(z) < 0.05, 1.0, z).astype(np.longdouble)
  with np.errstate(over="ignore"):
    direct = (1 / zl - 1 / np.sinh(zl)).astype(np.float64)
  return np.where(np.abs(z) < 0.05, series, direct)


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-13), (jnp.float32, 3e-6)])
def test_continuous_bernoulli_value_and_gradient_vs_float64_reference(dtype, rtol):
  x = np.linspace(0.0, 1.0, _Z.size)
  z = np.asarray(jnp.asarray(_Z, dtype), np.float64)  # the logits the dtype holds
  f = lambda a, b: jaxloss.continuous_bernoulli_nll(a, b, reduction="none")
  value = f(jnp.asarray(z, dtype), jnp.asarray(x, dtype))
  x_held = np.asarray(jnp.asarray(x, dtype), np.float64)
  want = (x_held * np.logaddexp(0, -z) + (1 - x_held) * np.logaddexp(0, z) - _cb_log_norm_reference(z))
  # |value| can be tiny where two O(1) terms cancel: compare against the terms' scale
  scale = np.abs(z) * 0 + np.logaddexp(0, np.abs(z)) + 1
  np.testing.assert_array_less(np.abs(np.asarray(value, np.float64) - want), rtol * scale)
  grad = jax.grad(lambda a: f(a, jnp.asarray(x, dtype)).sum())(jnp.asarray(z, dtype))
  want_g = scipy.special.expit(z) - x_held - _cb_dlog_norm_reference(z)
  np.testing.assert_allclose(np.asarray(grad, np.float64), want_g, rtol=rtol, atol=rtol * 1e-3)
  # the log-normalizer log C(z) on its own (the part that needs the series): value and slope,
  # relative to their size (the full gradient above is O(1) - O(1) near z = 0)
  from jaxloss import _information
  small = jnp.asarray([1e-8, -1e-3, 0.1, -0.5, 0.999, 1.0, 1.5], dtype)
  s64 = np.asarray(small, np.float64)
  np.testing.assert_allclose(np.asarray(_information._cb_log_norm(small), np.float64),
                             _cb_log_norm_reference(s64), rtol=rtol)
  g_small = jax.grad(lambda a: _information._cb_log_norm(a).sum())(small)
  np.testing.assert_allclose(np.asarray(g_small, np.float64), _cb_dlog_norm_reference(s64), rtol=rtol)


def test_continuous_bernoulli_density_integrates_to_one():
  nodes, w = np.polynomial.legendre.leggauss(64)
  x = 0.5 * (nodes + 1)
  for z in (0.0, 1e-3, 0.7, -3.0, 25.0):
    nll = jaxloss.continuous_bernoulli_nll(jnp.full(64, z), jnp.asarray(x), reduction="none")
    np.testing.assert_allclose(0.5 * np.sum(w * np.exp(-np.asarray(nll))), 1.0, rtol=1e-12)


@pytest.mark.runtime_checks
def test_continuous_bernoulli_targets_outside_unit_interval_are_nan_and_raise():
  msg, out = _checked(jaxloss.continuous_bernoulli_nll, jnp.zeros(3), jnp.array([0.5, 1.5, -0.1]), reduction="none")
  assert msg is not None and "targets must lie in [0, 1]" in msg
  np.testing.assert_array_equal(np.isnan(out), [False, True, True])


# --------------------------------------------------------------------------
# run-time value errors
# --------------------------------------------------------------------------
_LH = float(np.log(0.5))  # log-rows must be log-distributions (issue 13): log 0.5 twice


@pytest.mark.parametrize("name,args,arg_name", [
    ("entropy", (jnp.array([[0.5, 0.5], [0.5, 1.5]]),), "probs"),
    ("binary_entropy", (jnp.array([[0.5, 0.5], [0.5, -0.5]]),), "probs"),
    ("cross_entropy", (jnp.array([[0.5, 0.5], [0.5, 0.5]]), jnp.array([[0.5, 0.5], [2.0, -1.0]])), "target_probs"),
    ("js_divergence", (jnp.array([[0.5, 0.5], [jnp.nan, 0.5]]), jnp.array([[0.5, 0.5], [0.5, 0.5]])), "probs"),
    ("kl_divergence", (jnp.array([[_LH, _LH], [0.1, _LH]]), jnp.array([[0.5, 0.5], [0.5, 0.5]])),
     "log_predictions"),
    ("kl_divergence_with_log_targets", (jnp.array([[_LH, _LH], [_LH, _LH]]), jnp.array([[_LH, _LH], [0.3, -1.0]])),
     "log_targets"),
    ("binary_kl_divergence", (jnp.array([[0.5, 0.5], [0.5, 0.5]]), jnp.array([[0.5, 0.5], [1.2, 0.5]])), "labels"),
])
@pytest.mark.runtime_checks
def test_out_of_range_probabilities_are_nan_and_raise_under_checkify(name, args, arg_name):
  msg, out = _checked(getattr(jaxloss, name), *args, reduction="none")
  assert msg is not None and msg.startswith(arg_name + " must") or f": {arg_name}" in msg, msg
  out = np.asarray(out)
  assert np.all(np.isfinite(out[0])) and np.any(np.isnan(out[1]))
  msg_ok, _ = _checked(getattr(jaxloss, name), *(a[:1] for a in args))
  assert msg_ok is None


@pytest.mark.runtime_checks
def test_masked_invalid_rows_are_excluded_without_error_or_nan():
  p = jnp.array([[0.5, 0.5], [jnp.nan, 7.0]])
  where = jnp.array([True, False])
  msg, out = _checked(jaxloss.entropy, p, where=where)
  assert msg is None
  np.testing.assert_allclose(out, np.log(2.0), rtol=1e-15)
  g = jax.grad(lambda a: jaxloss.entropy(a, where=where))(p)
  np.testing.assert_array_equal(g[1], [0.0, 0.0])


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------
def test_soft_labels_are_not_quantized_through_bfloat16():
  p = jnp.asarray(0.75, jnp.bfloat16)  # exact in bf16
  y = jnp.asarray(0.8, jnp.float32)  # bf16(0.8) = 0.80078125
  got = jaxloss.binary_kl_divergence(p, y)
  assert got.dtype == jnp.float32
  y32 = float(np.float32(0.8))
  want = scipy.special.rel_entr(y32, 0.75) + scipy.special.rel_entr(1 - y32, 0.25)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  y16 = float(jnp.asarray(0.8, jnp.bfloat16))
  wrong = scipy.special.rel_entr(y16, 0.75) + scipy.special.rel_entr(1 - y16, 0.25)
  assert abs(float(got) - wrong) > 10 * abs(float(got) - want)
  # wider targets are cast to the computation dtype
  out = jaxloss.cross_entropy(jnp.full((2, 2), 0.5, jnp.float32), jnp.full((2, 2), 0.5, jnp.float64))
  assert out.dtype == jnp.float32


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
_PAIRS = ["cross_entropy", "kl_divergence", "kl_divergence_with_log_targets", "js_divergence",
          "binary_kl_divergence", "continuous_bernoulli_nll"]


@pytest.mark.parametrize("name", _PAIRS)
def test_shape_mismatch_n_vs_n1_raises(name):
  with pytest.raises(ValueError, match=r"same shape.*\(4,\).*\(4, 1\)"):
    getattr(jaxloss, name)(jnp.full(4, 0.25), jnp.full((4, 1), 0.25))


@pytest.mark.parametrize("name", _PAIRS + ["entropy", "binary_entropy"])
def test_integer_predictions_raise_type_error(name):
  fn = getattr(jaxloss, name)
  args = (jnp.zeros(4, jnp.int32),) if name in ("entropy", "binary_entropy") else (
      jnp.zeros(4, jnp.int32), jnp.full(4, 0.25))
  with pytest.raises(TypeError, match=r"must be a floating-point array.*int32"):
    fn(*args)


@pytest.mark.parametrize("name", ["cross_entropy", "kl_divergence", "kl_divergence_with_log_targets", "js_divergence"])
def test_non_float_distribution_target_raises_type_error(name):
  with pytest.raises(TypeError, match=r"must be a floating-point probability distribution, got dtype int32"):
    getattr(jaxloss, name)(jnp.full((2, 3), -1.0), jnp.zeros((2, 3), jnp.int32))


def test_axis_and_where_shape_errors():
  p = jnp.full((2, 3), 1 / 3)
  with pytest.raises(ValueError, match="axis=2 is out of range"):
    jaxloss.entropy(p, axis=2)
  with pytest.raises(ValueError, match=r"where must broadcast to the unreduced loss shape \(2,\)"):
    jaxloss.entropy(p, where=jnp.ones((2, 3), bool))
  with pytest.raises(ValueError, match="reduction must be one of"):
    jaxloss.js_divergence(p, p, reduction="batchmean")
  with pytest.raises(ValueError, match="reduction must be one of"):
    jaxloss.continuous_bernoulli_nll(p, p, reduction="avg")
