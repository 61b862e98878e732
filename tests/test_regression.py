"""Loss-specific numerics and bad-input tests of the regression losses.

The registry-wide checks (closed-form gradients/Hessians vs autodiff, jit,
vmap, sharding, references on samples) live in tests/test_registry.py; the
tests here pin down the numerics each loss promises in its docstring.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.experimental import checkify

import jaxloss


def _checked(fn, *args, **kwargs):
  """Runs ``fn`` under checkify (user checks) and returns ``(error message or None, value)``."""
  err, out = checkify.checkify(lambda *a: fn(*a, **kwargs), errors=checkify.user_checks)(*args)
  return err.get(), out


# --------------------------------------------------------------------------
# seed facts
# --------------------------------------------------------------------------
@pytest.mark.parametrize("target", [0.0, 1.0])
def test_gan_discriminator_at_half_has_squared_error_quarter(target):
  # least-squares GAN: D = 0.5 scored against 1 (real) or 0 (fake): (0.5 - y)^2 = 1/4.
  d = jnp.full((3,), 0.5, jnp.float32)
  y = jnp.full((3,), target, jnp.float32)
  assert jaxloss.squared_error(d, y) == np.float32(0.25)
  np.testing.assert_array_equal(jaxloss.squared_error(d, y, reduction="none"), np.full(3, 0.25, np.float32))


# --------------------------------------------------------------------------
# log-cosh
# --------------------------------------------------------------------------
def test_log_cosh_near_zero_in_bfloat16_gradient_is_tanh_not_zero():
  x = jnp.array([1e-3, -1e-3, 5e-4, 1e-5, -3e-4], jnp.bfloat16)
  zeros = jnp.zeros_like(x)
  x64 = np.asarray(x, np.float64)  # the values bf16 actually holds
  value = jaxloss.log_cosh(x, zeros, reduction="none")
  assert value.dtype == jnp.float32
  # log cosh x = x^2/2 - x^4/12 + ..., both relative to the bf16-held x.
  np.testing.assert_allclose(value, x64**2 / 2 - x64**4 / 12, rtol=1e-6)
  grad = jax.grad(lambda p: jaxloss.log_cosh(p, zeros, reduction="sum"))(x)
  assert grad.dtype == jnp.bfloat16
  assert np.all(np.asarray(grad, np.float64) != 0)
  # tanh x rounded once to bf16 (8 significant bits): within half a bf16 ulp.
  np.testing.assert_allclose(np.asarray(grad, np.float64), np.tanh(x64), rtol=2**-8)


def test_log_cosh_no_overflow_in_float32():
  x = jnp.array([89.5, 100.0, -100.0, 1e4, -3e38], jnp.float32)
  zeros = jnp.zeros_like(x)
  value = jaxloss.log_cosh(x, zeros, reduction="none")
  assert np.all(np.isfinite(value))
  # for |x| >= 89.5, e^{-2|x|} < 1e-77: log cosh x = |x| - log 2 to float32 precision.
  np.testing.assert_allclose(value, np.abs(np.asarray(x, np.float64)) - np.log(2.0), rtol=1e-7)
  grad = jax.grad(lambda p: jaxloss.log_cosh(p, zeros, reduction="sum"))(x)
  np.testing.assert_array_equal(grad, np.sign(np.asarray(x)))
  hess = jax.hessian(lambda p: jaxloss.log_cosh(p, zeros[:3], reduction="sum"))(x[:3])
  assert np.all(np.isfinite(hess))
  np.testing.assert_allclose(np.diag(hess), 4 * np.exp(-2 * np.abs(np.asarray(x[:3], np.float64))), atol=1e-30)


def test_log_cosh_custom_jvp_matches_unfused_autodiff_and_finite_differences():
  r = np.array([-3.0, -0.7, -1e-2, 0.0, 1e-3, 0.4, 0.999, 1.0, 1.001, 5.0])
  zeros = jnp.zeros(r.shape, jnp.float64)
  ours = jax.grad(lambda p: jaxloss.log_cosh(p, zeros, reduction="sum"))(jnp.asarray(r))
  # unfused autodiff of the textbook formula (fine for |r| <= 5 in float64)
  unfused = jax.grad(lambda p: jnp.sum(jnp.log(jnp.cosh(p))))(jnp.asarray(r))
  np.testing.assert_allclose(ours, unfused, rtol=1e-14, atol=1e-300)
  # central differences of an independent float64 evaluation, log((e^r + e^-r)/2)
  h = 1e-6
  f = lambda v: np.logaddexp(v, -v) - np.log(2.0)
  fd = (f(r + h) - f(r - h)) / (2 * h)
  np.testing.assert_allclose(ours, fd, rtol=1e-7, atol=1e-9)
  # and the second derivative (jax.hessian through the custom JVP) vs sech^2
  hess = jax.hessian(lambda p: jaxloss.log_cosh(p, zeros, reduction="sum"))(jnp.asarray(r))
  np.testing.assert_allclose(np.diag(hess), 1 / np.cosh(r) ** 2, rtol=1e-14)


def test_log_cosh_second_derivative_stays_accurate_in_float32_tails():
  # 1 - tanh^2 r rounds to 0 in float32 for |r| > 9; sech^2 r is ~1e-13 at 15.
  r = jnp.array([0.5, -9.5, 15.0, -30.0], jnp.float32)
  zeros = jnp.zeros_like(r)
  hess = jax.hessian(lambda p: jaxloss.log_cosh(p, zeros, reduction="sum"))(r)
  np.testing.assert_allclose(np.diag(hess), 1 / np.cosh(np.asarray(r, np.float64)) ** 2, rtol=1e-5)


# --------------------------------------------------------------------------
# Huber / smooth L1 / absolute / quantile
# --------------------------------------------------------------------------
def test_huber_pieces_and_optax_agree():
  p = jnp.array([0.0, 0.5, -1.0, 1.0 + 1e-9, 3.0, -7.5])
  y = jnp.zeros_like(p)
  for delta in (1.0, 0.25, 4.0):
    got = jaxloss.huber_loss(p, y, delta=delta, reduction="none")
    a = np.abs(np.asarray(p))
    want = np.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta))
    np.testing.assert_allclose(got, want, rtol=1e-15)
    import optax
    np.testing.assert_allclose(got, optax.losses.huber_loss(p, y, delta=delta), rtol=1e-15)


def test_smooth_l1_is_huber_over_beta_and_l1_at_beta_zero():
  key = jax.random.PRNGKey(0)
  p, y = jax.random.normal(key, (2, 16), jnp.float64)
  for beta in (0.3, 1.0, 2.0):
    np.testing.assert_allclose(
        jaxloss.smooth_l1_loss(p, y, beta=beta, reduction="none"),
        jaxloss.huber_loss(p, y, delta=beta, reduction="none") / beta, rtol=1e-14)
  np.testing.assert_array_equal(
      jaxloss.smooth_l1_loss(p, y, beta=0.0, reduction="none"), np.abs(np.asarray(p) - np.asarray(y)))
  # beta = 0: no 1/0 leaks into the gradient; subgradient 0 at r = 0.
  grad = jax.grad(lambda a: jaxloss.smooth_l1_loss(a, jnp.array([0.0, 1.0, 0.0]), beta=0.0, reduction="sum"))(
      jnp.array([2.0, 1.0, -3.0]))
  np.testing.assert_array_equal(grad, [1.0, 0.0, -1.0])


def test_absolute_and_quantile_use_zero_subgradient_at_the_kink():
  p = jnp.array([1.0, 2.0, 3.0])
  y = jnp.array([1.0, 0.0, 5.0])
  g_abs = jax.grad(lambda a: jaxloss.absolute_error(a, y, reduction="sum"))(p)
  np.testing.assert_array_equal(g_abs, [0.0, 1.0, -1.0])
  g_q = jax.grad(lambda a: jaxloss.quantile_loss(a, y, tau=0.2, reduction="sum"))(p)
  np.testing.assert_allclose(g_q, [0.0, 0.8, -0.2], rtol=1e-15)


def test_quantile_loss_is_minimized_at_the_empirical_quantile():
  y = np.sort(np.random.default_rng(0).normal(size=10))
  tau = 0.25  # n * tau = 2.5 is not an integer: the unique minimizer is y_(3)
  cands = np.concatenate([y, y[:-1] + np.diff(y) / 2])
  losses = [float(jaxloss.quantile_loss(jnp.full(10, c), jnp.asarray(y), tau=tau)) for c in cands]
  assert cands[int(np.argmin(losses))] == y[2]
  # pinball with tau = 1/2 is half the absolute error
  p = jnp.asarray(np.linspace(-2, 2, 10))
  np.testing.assert_allclose(jaxloss.quantile_loss(p, jnp.asarray(y), reduction="none"),
                             0.5 * np.abs(np.asarray(p) - y), rtol=1e-15)


# --------------------------------------------------------------------------
# Poisson / Gaussian NLL
# --------------------------------------------------------------------------
def test_poisson_full_is_the_exact_negative_log_pmf():
  r = np.array([-2.0, 0.0, 0.3, 2.5, 4.0])
  y = np.array([0.0, 1.0, 3.0, 12.0, 60.0])
  got = jaxloss.poisson_nll(jnp.asarray(r), jnp.asarray(y), full=True, reduction="none")
  np.testing.assert_allclose(got, -scipy.stats.poisson.logpmf(y, np.exp(r)), rtol=1e-13)
  # without `full` the constant log y! is dropped
  part = jaxloss.poisson_nll(jnp.asarray(r), jnp.asarray(y), reduction="none")
  np.testing.assert_allclose(part, np.exp(r) - y * r, rtol=1e-15)


@pytest.mark.runtime_checks
def test_poisson_negative_targets_are_nan_and_raise_under_checkify():
  msg, out = _checked(jaxloss.poisson_nll, jnp.zeros(3), jnp.array([1.0, -1.0, 2.0]), reduction="none")
  assert msg is not None and "targets must be non-negative" in msg
  np.testing.assert_array_equal(np.isnan(out), [False, True, False])
  msg, _ = _checked(jaxloss.poisson_nll, jnp.zeros(3), jnp.array([1.0, 0.0, 2.0]))
  assert msg is None


def test_gaussian_nll_matches_scipy_logpdf_and_log_variance_form():
  rng = np.random.default_rng(1)
  mu, y = rng.normal(size=(2, 6))
  var = rng.uniform(0.1, 3.0, size=6)
  got = jaxloss.gaussian_nll(jnp.asarray(mu), jnp.asarray(y), jnp.asarray(var), full=True, reduction="none")
  np.testing.assert_allclose(got, -scipy.stats.norm.logpdf(y, mu, np.sqrt(var)), rtol=1e-14)
  got_log = jaxloss.gaussian_nll(jnp.asarray(mu), jnp.asarray(y), jnp.log(jnp.asarray(var)), log_variance=True,
                                 full=True, reduction="none")
  np.testing.assert_allclose(got_log, got, rtol=1e-14)


def test_gaussian_nll_variance_gradient_vanishes_at_the_squared_residual():
  # d/dv [log v + r^2 / v] / 2 = 0  <=>  v = r^2; d/ds = 0 <=> s = log r^2.
  mu = jnp.array([0.0, 1.0, -2.0])
  y = jnp.array([0.5, -1.0, 1.0])
  r2 = (y - mu) ** 2
  g_v = jax.grad(lambda v: jaxloss.gaussian_nll(mu, y, v, reduction="sum"))(r2)
  g_s = jax.grad(lambda s: jaxloss.gaussian_nll(mu, y, s, log_variance=True, reduction="sum"))(jnp.log(r2))
  np.testing.assert_allclose(g_v, 0.0, atol=1e-15)
  np.testing.assert_allclose(g_s, 0.0, atol=1e-15)
  g_mu = jax.grad(lambda m: jaxloss.gaussian_nll(m, y, r2, reduction="sum"))(mu)
  np.testing.assert_allclose(g_mu, (mu - y) / r2, rtol=1e-15)


@pytest.mark.runtime_checks
def test_gaussian_nll_nonpositive_variance_is_nan_and_raises_under_checkify():
  mu = jnp.zeros(4)
  y = jnp.ones(4)
  msg, out = _checked(jaxloss.gaussian_nll, mu, y, jnp.array([1.0, 0.0, -2.0, 0.5]), reduction="none")
  assert msg is not None and "variance must be > 0" in msg
  np.testing.assert_array_equal(np.isnan(out), [False, True, True, False])


def test_gaussian_nll_masked_nan_variance_leaks_no_nan_into_gradients():
  mu = jnp.array([0.0, 1.0])
  y = jnp.array([1.0, 1.0])
  var = jnp.array([2.0, jnp.nan])
  where = jnp.array([True, False])
  f = lambda m, v: jaxloss.gaussian_nll(m, y, v, where=where)
  value = f(mu, var)
  g_mu, g_v = jax.grad(f, argnums=(0, 1))(mu, var)
  np.testing.assert_allclose(value, 0.5 * (np.log(2.0) + 0.5), rtol=1e-15)
  np.testing.assert_allclose(g_mu, [-0.5, 0.0], rtol=1e-15)
  np.testing.assert_allclose(g_v, [0.5 * (0.5 - 0.25), 0.0], rtol=1e-15)


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------
def test_targets_are_not_quantized_through_bfloat16_and_wider_targets_are_cast():
  p = jnp.zeros((2,), jnp.bfloat16)
  y = jnp.array([0.1, 0.8], jnp.float32)
  got = jaxloss.squared_error(p, y, reduction="none")
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(got, np.square(np.asarray(y)))  # not bf16(0.1)^2
  got = jaxloss.huber_loss(jnp.zeros((2,), jnp.float32), jnp.array([0.1, 3.0], jnp.float64), reduction="none")
  assert got.dtype == jnp.float32
  got = jaxloss.gaussian_nll(jnp.zeros(2, jnp.bfloat16), y, jnp.ones(2, jnp.float64), reduction="none")
  assert got.dtype == jnp.float32


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
_ELEMENTWISE = ["squared_error", "absolute_error", "huber_loss", "smooth_l1_loss", "log_cosh", "quantile_loss",
                "poisson_nll", "mean_squared_logarithmic_error", "mean_absolute_percentage_error", "l2_loss"]


@pytest.mark.parametrize("name", _ELEMENTWISE)
def test_shape_mismatch_n_vs_n1_raises(name):
  fn = getattr(jaxloss, name)
  with pytest.raises(ValueError, match=r"same shape.*\(4,\).*\(4, 1\)"):
    fn(jnp.zeros(4), jnp.zeros((4, 1)))


@pytest.mark.parametrize("name", _ELEMENTWISE)
def test_integer_or_boolean_predictions_raise_type_error(name):
  fn = getattr(jaxloss, name)
  with pytest.raises(TypeError, match=r"must be a floating-point array.*int"):
    fn(jnp.arange(4), jnp.zeros(4))
  with pytest.raises(TypeError, match=r"must be a floating-point array.*bool"):
    fn(jnp.ones(4, bool), jnp.zeros(4))


@pytest.mark.parametrize("name", _ELEMENTWISE)
def test_unknown_reduction_raises(name):
  with pytest.raises(ValueError, match="reduction must be one of"):
    getattr(jaxloss, name)(jnp.zeros(4), jnp.zeros(4), reduction="avg")


def test_gaussian_nll_bad_inputs():
  z = jnp.zeros(4)
  with pytest.raises(ValueError, match=r"mean and variance must have the same shape"):
    jaxloss.gaussian_nll(z, z, jnp.ones((4, 1)))
  with pytest.raises(ValueError, match=r"mean and targets must have the same shape"):
    jaxloss.gaussian_nll(z, jnp.zeros((4, 1)), jnp.ones(4))
  with pytest.raises(TypeError, match=r"variance \(third argument\) must be a floating-point"):
    jaxloss.gaussian_nll(z, z, jnp.ones(4, jnp.int32))
  with pytest.raises(TypeError, match=r"mean must be a floating-point"):
    jaxloss.gaussian_nll(jnp.zeros(4, jnp.int32), z, jnp.ones(4))


def test_bad_options_raise_value_error():
  z = jnp.zeros(3)
  with pytest.raises(ValueError, match="delta must be > 0"):
    jaxloss.huber_loss(z, z, delta=0.0)
  with pytest.raises(ValueError, match="beta must be >= 0"):
    jaxloss.smooth_l1_loss(z, z, beta=-1.0)
  with pytest.raises(ValueError, match=r"tau must be in \[0.0, 1.0\]"):
    jaxloss.quantile_loss(z, z, tau=1.5)
  with pytest.raises(ValueError, match="epsilon must be >= 0"):
    jaxloss.mean_absolute_percentage_error(z, z + 1.0, epsilon=-1e-7)


# --------------------------------------------------------------------------
# Poisson NLL on the rate (log_input=False)
# --------------------------------------------------------------------------
def test_poisson_rate_input_is_the_negative_log_pmf_and_the_log_rate_default_is_not():
  rate = np.array([0.5, 1.0, 3.0, 0.2, 7.5])
  y = np.array([0.0, 1.0, 2.0, 1.0, 9.0])
  got = jaxloss.poisson_nll(jnp.asarray(rate), jnp.asarray(y), log_input=False, full=True, reduction="none")
  np.testing.assert_allclose(got, -scipy.stats.poisson.logpmf(y, rate), rtol=1e-13)
  # without full: equal to the log-rate form at log(rate)
  np.testing.assert_allclose(jaxloss.poisson_nll(jnp.asarray(rate), jnp.asarray(y), log_input=False),
                             jaxloss.poisson_nll(jnp.log(jnp.asarray(rate)), jnp.asarray(y)), rtol=1e-14)
  # a rate read as a log-rate (the default) is a different, wrong number
  as_log = float(jaxloss.poisson_nll(jnp.asarray(rate), jnp.asarray(y)))
  np.testing.assert_allclose(as_log, np.mean(np.exp(rate) - y * rate), rtol=1e-14)
  assert abs(as_log - float(jaxloss.poisson_nll(jnp.asarray(rate), jnp.asarray(y), log_input=False))) > 1.0


def test_poisson_rate_zero_rate_edges():
  rate = jnp.array([0.0, 0.0, 1e-30])
  y = jnp.array([0.0, 2.0, 0.0])
  value = jaxloss.poisson_nll(rate, y, log_input=False, reduction="none")
  np.testing.assert_array_equal(value, [0.0, np.inf, 1e-30])  # 0 log 0 = 0; lambda = 0 < y: +inf
  g_rate = jax.grad(lambda r: jaxloss.poisson_nll(r, y, log_input=False, reduction="sum"))(rate)
  np.testing.assert_array_equal(g_rate, [1.0, -np.inf, 1.0])  # 1 - y / lambda
  g_y = jax.grad(lambda t: jaxloss.poisson_nll(rate[2:], t, log_input=False, reduction="sum"))(y[2:])
  np.testing.assert_allclose(g_y, [-np.log(1e-30)], rtol=1e-15)  # -log lambda at y = 0 is kept
  h = jax.hessian(lambda r: jaxloss.poisson_nll(r, jnp.zeros(1, jnp.float32), log_input=False, reduction="sum"))(
      jnp.array([1e-30], jnp.float32))
  np.testing.assert_array_equal(h, [[0.0]])  # no 0 * inf where lambda^2 underflows in float32


@pytest.mark.runtime_checks
def test_poisson_negative_rate_is_nan_and_raises_under_checkify():
  msg, out = _checked(jaxloss.poisson_nll, jnp.array([1.0, -0.5, 2.0]), jnp.ones(3), log_input=False,
                      reduction="none")
  assert msg is not None and "rate must be non-negative" in msg
  np.testing.assert_array_equal(np.isnan(out), [False, True, False])


# --------------------------------------------------------------------------
# MSLE, MAPE, L2
# --------------------------------------------------------------------------
def test_msle_matches_sklearn_and_is_accurate_for_tiny_values():
  sklearn_metrics = pytest.importorskip("sklearn.metrics")
  rng = np.random.default_rng(3)
  p, y = rng.uniform(0, 10, (2, 40))
  np.testing.assert_allclose(jaxloss.mean_squared_logarithmic_error(jnp.asarray(p), jnp.asarray(y)),
                             sklearn_metrics.mean_squared_log_error(y, p), rtol=1e-13)
  # log1p, not log(1 + x): 1e-10 against 0 is (1e-10)^2, where log(1 + 1e-10) in float32 would be 0
  tiny = jaxloss.mean_squared_logarithmic_error(jnp.array([1e-10], jnp.float32), jnp.zeros(1, jnp.float32))
  np.testing.assert_allclose(tiny, 1e-20, rtol=1e-6)


@pytest.mark.runtime_checks
def test_msle_below_minus_one_is_nan_and_raises_under_checkify_and_minus_one_is_inf():
  msg, out = _checked(jaxloss.mean_squared_logarithmic_error, jnp.array([0.5, -1.5, 2.0, 0.0, -1.0]),
                      jnp.array([0.0, 0.0, 1.0, -3.0, 0.0]), reduction="none")
  assert msg is not None and "must be >= -1" in msg
  np.testing.assert_array_equal(np.isnan(out), [False, True, False, True, False])
  assert out[4] == np.inf  # log(1 + p) -> -inf as p -> -1
  msg, _ = _checked(jaxloss.mean_squared_logarithmic_error, jnp.array([-1.0, 0.0]), jnp.array([0.0, -1.0]))
  assert msg is None
  g = jax.grad(lambda p: jaxloss.mean_squared_logarithmic_error(p, jnp.zeros(2), where=jnp.array([True, False])))(
      jnp.array([1.0, -5.0]))
  np.testing.assert_allclose(g, [2 * np.log(2.0) / 2.0, 0.0], rtol=1e-15)  # masked invalid element leaks nothing


def test_mape_is_a_percentage_matching_sklearn_times_100():
  sklearn_metrics = pytest.importorskip("sklearn.metrics")
  rng = np.random.default_rng(4)
  y = rng.uniform(0.5, 4, 30) * rng.choice([-1.0, 1.0], 30)
  p = y + rng.normal(size=30)
  got = jaxloss.mean_absolute_percentage_error(jnp.asarray(p), jnp.asarray(y))
  np.testing.assert_allclose(got, 100 * sklearn_metrics.mean_absolute_percentage_error(y, p), rtol=1e-13)
  np.testing.assert_allclose(jaxloss.mean_absolute_percentage_error(jnp.array([110.0]), jnp.array([100.0])), 10.0,
                             rtol=1e-14)


@pytest.mark.runtime_checks
def test_mape_zero_target_is_nan_without_epsilon_and_floored_with_it():
  p, y = jnp.array([0.5, 3.0, 0.0]), jnp.array([0.0, 2.0, 0.0])
  msg, out = _checked(jaxloss.mean_absolute_percentage_error, p, y, reduction="none")
  assert msg is not None and "targets must be nonzero" in msg
  np.testing.assert_array_equal(np.isnan(out), [True, False, True])
  msg, out = _checked(jaxloss.mean_absolute_percentage_error, p, y, epsilon=1e-7, reduction="none")
  assert msg is None
  np.testing.assert_allclose(out, [100 * 0.5 / 1e-7, 50.0, 0.0], rtol=1e-14)


def test_l2_loss_is_half_the_squared_error_and_optax_l2_loss():
  import optax  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(5)
  p, y = jnp.asarray(rng.normal(size=(3, 4))), jnp.asarray(rng.normal(size=(3, 4)))
  np.testing.assert_allclose(jaxloss.l2_loss(p, y, reduction="none"), optax.losses.l2_loss(p, y), rtol=1e-15)
  np.testing.assert_allclose(jaxloss.l2_loss(p, reduction="none"), optax.losses.l2_loss(p), rtol=1e-15)
  np.testing.assert_allclose(2 * jaxloss.l2_loss(p, y), jaxloss.squared_error(p, y), rtol=1e-15)
  assert jaxloss.l2_loss(p.astype(jnp.bfloat16)).dtype == jnp.float32
