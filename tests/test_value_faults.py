"""Issue 13, items 2-4: true values at the inputs of public bug reports, and at the other members of each kind.

Each expected value is computed independently (mpmath at 50 digits, or exact math), rounded to the output
dtype, and the loss must be within a few ulp of it. Where a fault was value-only (invisible to a gradient
check, so not a mutant of tests/test_mutants.py) the pre-fix formula is evaluated at the same point and
shown to miss the true value: the point discriminates.

* item 2, 0 * inf: gaussian_nll (variance and log-variance, value and derivatives, closed forms),
  compat.torch.gaussian_nll_loss, and r^2 overflowing in huber_loss / smooth_l1_loss.
* item 3, log(1 - p) on a rounded 1 - p: binary_cross_entropy (and binary_entropy / binary_kl_divergence,
  which already used log1p).
* item 4, inputs that are not distributions: NaN rows, the opt-in error naming the argument, the
  tolerance on bfloat16/float16 softmax and log-softmax rows of 32768 classes; generalized_kl_divergence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss import _base
from jaxloss.compat import torch as compat_torch

mpmath.mp.dps = 50


def _ulps(got, want, dtype):
  """|got - want| in units of the last place of ``want`` in ``dtype`` (want: an mpmath number).

  Where ``want`` is beyond the dtype's range the only right answer is the infinity of its sign (0 ulp).
  """
  got = float(got)
  if abs(want) > np.finfo(dtype).max:
    return 0.0 if got == float(mpmath.sign(want)) * np.inf else np.inf
  ulp = float(np.spacing(np.abs(np.asarray(float(want), dtype))))
  return abs(got - float(want)) / ulp


def _mp(x):
  return mpmath.mpf(float(x))


# --------------------------------------------------------------------------
# item 2: 0 * inf and overflowing intermediates
# --------------------------------------------------------------------------
def test_gaussian_nll_tiny_variance_gradient_is_half_over_v():
  """The reported input: d/dv at r = 0, v = 1e-30 (float32) was NaN; true 1 / (2v) = 5e29."""
  mu, y, v = jnp.zeros(1, jnp.float32), jnp.zeros(1, jnp.float32), jnp.array([1e-30], jnp.float32)
  g = jax.grad(lambda v: jaxloss.gaussian_nll(mu, y, v, reduction="sum"))(v)
  assert _ulps(g[0], 1 / (2 * _mp(v[0])), np.float32) <= 2
  # and the closed form the verifier uses
  spec = jaxloss.REGISTRY["gaussian_nll"]
  assert _ulps(spec.grads[2](mu, y, v)[0], 1 / (2 * _mp(v[0])), np.float32) <= 2


@pytest.mark.parametrize("dtype,v,r", [(np.float32, 1e-30, 1e-20), (np.float32, 1e-36, 0.0), (np.float64, 1e-200, 1e-110),
                                       (np.float64, 1e-300, 0.0)])
def test_gaussian_nll_tiny_variance_all_derivatives(dtype, v, r):
  mu, y, var = jnp.zeros(1, dtype), jnp.full(1, r, dtype), jnp.full(1, v, dtype)
  val, grads = jax.value_and_grad(lambda *a: jaxloss.gaussian_nll(*a, reduction="sum"), argnums=(0, 1, 2))(mu, y, var)
  mv, mr = _mp(var[0]), _mp(y[0])
  assert _ulps(val, (mpmath.log(mv) + mr**2 / mv) / 2, dtype) <= 4
  assert _ulps(grads[0][0], -mr / mv, dtype) <= 2
  assert _ulps(grads[1][0], mr / mv, dtype) <= 2
  assert _ulps(grads[2][0], (1 / mv - (mr / mv) ** 2) / 2, dtype) <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_nll_log_variance_products(dtype):
  """r^2 e^{-s} with e^{-s} overflowing (and r^2 0 or underflowing): value and derivatives are the truth."""
  r = jnp.array([0.0, 0.0, 2.0**-44, 2.0**-60, 3.0, 0.0, 2.0**-500], dtype)
  s = jnp.array([-800.0, -100.0, -100.0, -150.0, 80.0, -2900.0, -1500.0], dtype)
  f = lambda *a: jaxloss.gaussian_nll(*a, log_variance=True, reduction="sum")
  mu = jnp.zeros_like(r)
  vals = jax.vmap(jax.value_and_grad(f, argnums=(0, 1, 2)))(mu[:, None], r[:, None], s[:, None])
  spec = jaxloss.REGISTRY["gaussian_nll"]  # the closed forms (float64, as the verifier evaluates them)
  closed = [spec.grads[i](*(jnp.asarray(a, jnp.float64) for a in (mu, r, s)), log_variance=True) for i in (0, 2)]
  for k in range(r.size):
    mr, ms = _mp(r[k]), _mp(s[k])
    scaled = mr**2 * mpmath.exp(-ms)
    val, (gm, gy, gs) = jax.tree.map(lambda a, k=k: a[k], vals)
    assert _ulps(val, (ms + scaled) / 2, dtype) <= 4, k
    assert _ulps(gy[0], mr * mpmath.exp(-ms), dtype) <= 4, k
    assert _ulps(gm[0], -mr * mpmath.exp(-ms), dtype) <= 4, k
    assert _ulps(gs[0], (1 - scaled) / 2, dtype) <= 4, k
    assert _ulps(closed[0][k], -mr * mpmath.exp(-ms), np.float64) <= 4, k
    assert _ulps(closed[1][k], (1 - scaled) / 2, np.float64) <= 4, k


def test_gaussian_nll_pre_fix_was_nan():
  """The points above discriminate: the pre-fix formulas give NaN there."""
  r2, v = jnp.float32(0.0), jnp.float32(1e-30)
  assert np.isnan(jax.grad(lambda v: 0.5 * (jnp.log(v) + r2 / v))(v))
  assert np.isnan(jax.grad(lambda s: 0.5 * (s + r2 * jnp.exp(-s)))(jnp.float32(-800.0)))


def test_compat_torch_gaussian_nll_tiny_clamp():
  """PyTorch's own gradient is 1 / (2v) at x = y, v = 1e-30, eps=1e-38 (checked on torch 2.13); was NaN here."""
  v, z = jnp.array([1e-30], jnp.float32), jnp.zeros(1, jnp.float32)
  g = jax.grad(lambda v: compat_torch.gaussian_nll_loss(z, z, v, eps=1e-38))(v)
  assert _ulps(g[0], 1 / (2 * _mp(v[0])), np.float32) <= 2


@pytest.mark.parametrize("fn,kw,r", [(jaxloss.huber_loss, {"delta": 1e30}, 2e19),
                                     (jaxloss.smooth_l1_loss, {"beta": 1e30}, 1e20),
                                     (jaxloss.smooth_l1_loss, {"beta": 3e38}, 1e30)])
def test_quadratic_branch_does_not_overflow(fn, kw, r):
  """r^2 overflows (float32) where r^2 / 2 (huber, up to 2.6e19) or r^2 / (2 beta) (smooth L1) is finite."""
  p = jnp.array([r], jnp.float32)
  val = fn(p, jnp.zeros(1, jnp.float32), reduction="sum", **kw)
  beta = _mp(np.float32(kw.get("beta", 1.0)))
  want = _mp(p[0]) ** 2 / 2 / (beta if "beta" in kw else 1)
  assert _ulps(val, want, np.float32) <= 2
  assert not np.isfinite(np.float32(r) ** 2)  # the pre-fix intermediate


# --------------------------------------------------------------------------
# item 3: log(1 - p) on a rounded 1 - p
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1e-7, 1e-20, 0.9999])
def test_bce_small_probabilities(dtype, p):
  """The reported input: BCE(1e-7, 0) in float32 was 1.1920929e-07 (+19%); true 1.0000001e-07."""
  x = jnp.array([p, p], dtype)
  y = jnp.array([0.0, 0.25], dtype)
  got = jax.jit(lambda x, y: jaxloss.binary_cross_entropy(x, y, reduction="none"))(x, y)
  mp = _mp(x[0])
  assert _ulps(got[0], -mpmath.log1p(-mp), dtype) <= 2
  assert _ulps(got[1], -(mpmath.mpf(1) / 4 * mpmath.log(mp) + mpmath.mpf(3) / 4 * mpmath.log1p(-mp)), dtype) <= 4


def test_bce_pre_fix_point_discriminates():
  p = jnp.float32(1e-7)
  pre = -jnp.log(1 - p)  # the pre-fix second term
  assert _ulps(pre, -mpmath.log1p(-_mp(p)), np.float32) > 1e5


@pytest.mark.parametrize("p", [1e-7, 1e-12, 0.5])
def test_binary_entropy_and_binary_kl_small_probabilities(p):
  x = jnp.array([p], jnp.float32)
  mp = _mp(x[0])
  h = -(mp * mpmath.log(mp) + (1 - mp) * mpmath.log1p(-mp))
  assert _ulps(jaxloss.binary_entropy(x, reduction="sum"), h, np.float32) <= 4
  y = jnp.zeros(1, jnp.float32)
  assert _ulps(jaxloss.binary_kl_divergence(x, y, reduction="sum"), -mpmath.log1p(-mp), np.float32) <= 2


# --------------------------------------------------------------------------
# item 4: inputs that are not distributions
# --------------------------------------------------------------------------
_ISSUE_LP = jnp.log(jnp.array([0.1132, 0.5477, 0.3390]))
_ISSUE_T = jnp.array([0.1541, 0.0511, 0.0947])  # sums to 0.30


def test_kl_divergence_reported_input_is_nan():
  """Was -0.194, silently."""
  assert np.isnan(jaxloss.kl_divergence(_ISSUE_LP, _ISSUE_T))
  lp = jax.nn.log_softmax(jnp.log(jnp.array([0.1132, 0.5477, 0.3390])))
  t = jnp.array([0.1541, 0.0511, 0.0947]) / jnp.sum(jnp.array([0.1541, 0.0511, 0.0947]))
  want = sum(_mp(a) * (mpmath.log(_mp(a)) - _mp(b)) for a, b in zip(np.asarray(t), np.asarray(lp)))
  assert _ulps(jaxloss.kl_divergence(lp, t), want, np.float32) <= 16  # normalized rows: a number again


def _jit(fn, *args, **kw):
  """``fn(*args, **kw)`` compiled once (faster than op-by-op dispatch on a loaded machine)."""
  return jax.jit(lambda *a: fn(*a, **kw))(*args)


def _covered(log_p, log_t, p, t):
  """(name, call, argument names) for every covered loss, on the given log rows / probability rows."""
  return [
      ("kl_divergence", lambda **k: _jit(jaxloss.kl_divergence, log_p, t, **k), ("log_predictions", "targets")),
      ("kl_divergence_with_log_targets", lambda **k: _jit(jaxloss.kl_divergence_with_log_targets, log_p, log_t, **k),
       ("log_predictions", "log_targets")),
      ("cross_entropy", lambda **k: _jit(jaxloss.cross_entropy, p, t, **k), ("probs", "target_probs")),
      ("js_divergence", lambda **k: _jit(jaxloss.js_divergence, p, t, **k), ("probs", "target_probs")),
      ("entropy", lambda **k: _jit(jaxloss.entropy, p, **k), ("probs",)),
      ("categorical_cross_entropy", lambda **k: _jit(jaxloss.categorical_cross_entropy, p, t, **k),
       ("probs", "labels")),
  ]


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_softmax_rows_of_32768_classes_pass(dtype):
  """Correctly rounded bf16/f16 softmax and log_softmax rows are never flagged (a bf16 log_softmax row of
  32768 equal logits has exp summing to 1.022)."""
  z = jnp.concatenate([jnp.zeros((1, 32768)), 3.0 * jax.random.normal(jax.random.PRNGKey(0), (2, 32768))])
  z2 = jnp.concatenate([jnp.zeros((1, 32768)), 2.0 * jax.random.normal(jax.random.PRNGKey(1), (2, 32768))])
  log_p, log_t = jax.nn.log_softmax(z).astype(dtype), jax.nn.log_softmax(z2).astype(dtype)
  p, t = jax.nn.softmax(z).astype(dtype), jax.nn.softmax(z2).astype(dtype)
  if dtype == jnp.bfloat16:
    assert abs(float(jnp.sum(jnp.exp(log_p[0].astype(jnp.float32)))) - 1) > 0.02  # the hard row is in the test
  for name, call, _ in _covered(log_p, log_t, p, t):
    out = call(reduction="none")  # (+inf where a probability underflowed to 0 under a positive target)
    assert not np.isnan(np.asarray(out)).any(), name


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_native_softmax_rows_pass(dtype):
  """softmax / log_softmax computed in the half dtype itself (not correctly rounded): 2000 rows of 5 classes."""
  z = (3.0 * jax.random.normal(jax.random.PRNGKey(2), (2000, 5))).astype(dtype)
  z2 = (3.0 * jax.random.normal(jax.random.PRNGKey(3), (2000, 5))).astype(dtype)
  log_p, log_t, p, t = jax.nn.log_softmax(z), jax.nn.log_softmax(z2), jax.nn.softmax(z), jax.nn.softmax(z2)
  for name, call, _ in _covered(log_p, log_t, p, t):
    assert not np.isnan(np.asarray(call(reduction="none"))).any(), name


def test_non_distribution_rows_are_nan_per_argument():
  good_p = jnp.array([[0.2, 0.3, 0.5], [0.25, 0.25, 0.5]])
  bad_p = good_p.at[1, 0].set(0.5)  # second row sums to 1.25
  for arg in range(2):
    p = bad_p if arg == 0 else good_p
    t = good_p[::-1] if arg == 0 else bad_p[::-1]  # the bad row is row 1 (arg 0) or row 0 (arg 1)
    for name, call, names in _covered(jnp.log(p), jnp.log(t), p, t):
      if arg >= len(names):
        continue
      out = np.asarray(call(reduction="none"))
      bad_row = 1 if arg == 0 else 0
      assert np.isnan(out[bad_row]) and np.isfinite(out[1 - bad_row]), (name, arg, out)


def test_tolerance_is_sized_from_the_input_dtype_and_row_length():
  tol = _base.distribution_tolerance
  assert tol(jnp.bfloat16, np.float32, 32768, log_space=True) > 0.0225 > tol(np.float32, np.float32, 32768,
                                                                             log_space=True)
  assert tol(np.float32, np.float32, 10, log_space=False) < 1e-6
  assert tol(np.float64, np.float64, 10, log_space=False) < 1e-14
  # a float32 row just outside the tolerance is flagged, just inside is not
  row = np.full(8, 1 / 8, np.float32)
  off = tol(np.float32, np.float32, 8, log_space=False)
  for scale, flagged in ((1 + 2 * off, True), (1 + off / 4, False)):
    t = jnp.asarray(row * np.float32(scale))
    assert bool(np.isnan(jaxloss.entropy(t))) == flagged, scale


def test_masked_rows_are_not_flagged():
  p = jnp.array([[0.2, 0.3, 0.5], [0.9, 0.9, 0.9]])
  out = jaxloss.entropy(p, where=jnp.array([True, False]), reduction="none")
  assert np.isfinite(out).all()


@pytest.mark.runtime_checks
def test_opt_in_error_names_the_argument():
  p = jnp.array([[0.2, 0.3, 0.5]])
  bad = jnp.array([[0.2, 0.3, 0.4]])
  for name, call, names in _covered(jnp.log(p), jnp.log(p), p, p):
    del call
    for k, arg in enumerate(names):
      args = [p if not n.startswith("log") else jnp.log(p) for n in names]
      args[k] = jnp.log(bad) if arg.startswith("log") else bad
      fn = getattr(jaxloss, name)
      with jaxloss.runtime_checks():
        err, out = checkify.checkify(lambda *a, fn=fn: fn(*a, reduction="none"), errors=checkify.user_checks)(*args)
      msg = err.get()
      assert msg is not None and msg.startswith(f"{arg}: ") and "sum to 1" in msg, (name, arg, msg)
      assert np.isnan(np.asarray(out)).all()


def test_softmax_cross_entropy_labels_keep_their_rule():
  """softmax_cross_entropy's labels: each in [0, 1], a row may sum to anything."""
  out = _jit(jaxloss.softmax_cross_entropy, jnp.zeros((1, 3)), jnp.array([[0.5, 0.5, 0.5]]), reduction="none")
  assert np.isfinite(out).all()


# --------------------------------------------------------------------------
# generalized KL divergence
# --------------------------------------------------------------------------
def test_generalized_kl_matches_optax_and_kl_on_distributions():
  import optax  # pylint: disable=import-outside-toplevel

  lp = jax.random.normal(jax.random.PRNGKey(0), (3, 7))
  t = jnp.exp(jax.random.normal(jax.random.PRNGKey(1), (3, 7)))
  np.testing.assert_allclose(_jit(jaxloss.generalized_kl_divergence, lp, t, reduction="none"),
                             _jit(optax.losses.generalized_kl_divergence, lp, t), rtol=1e-12)
  lp, t = jax.nn.log_softmax(lp), jax.nn.softmax(jnp.log(t))
  np.testing.assert_allclose(_jit(jaxloss.generalized_kl_divergence, lp, t, reduction="none"),
                             _jit(jaxloss.kl_divergence, lp, t, reduction="none"), rtol=1e-12, atol=1e-14)


def test_generalized_kl_the_reported_input_is_a_number():
  want = sum(_mp(b) * (mpmath.log(_mp(b)) - _mp(a)) - _mp(b) + mpmath.exp(_mp(a))
             for a, b in zip(np.asarray(_ISSUE_LP), np.asarray(_ISSUE_T)))
  assert _ulps(jaxloss.generalized_kl_divergence(_ISSUE_LP, _ISSUE_T), want, np.float32) <= 16


def test_generalized_kl_conventions():
  lp = jnp.array([[-jnp.inf, 0.0, -jnp.inf]])
  t = jnp.array([[0.0, 1.0, 2.0]])
  out = _jit(jaxloss.generalized_kl_divergence, lp, t, reduction="none")
  assert out[0] == jnp.inf
  g = jax.jit(jax.grad(lambda lp, t: jaxloss.generalized_kl_divergence(lp[:, :2], t[:, :2], reduction="sum"),
                       argnums=(0, 1)))(lp, t)
  np.testing.assert_array_equal(np.asarray(g[0]), [[0.0, 0.0, 0.0]])  # e^l - t
  np.testing.assert_array_equal(np.asarray(g[1]), [[-1.0, 0.0, 0.0]])  # 0 log 0: -1; 1 + log 1 - 0 - 1 = 0
  assert np.isnan(jaxloss.generalized_kl_divergence(jnp.zeros((1, 2)), jnp.array([[-1.0, 1.0]])))


def test_poisson_nll_zero_rate():
  """A zero count at a zero rate (log-rate -inf) is certain: loss 0 (was 0 * (-inf) = NaN); a positive count: +inf."""
  r = jnp.array([-jnp.inf, -jnp.inf], jnp.float32)
  y = jnp.array([0.0, 3.0], jnp.float32)
  out = _jit(jaxloss.poisson_nll, r, y, reduction="none")
  np.testing.assert_array_equal(np.asarray(out), [0.0, np.inf])
  g = jax.jit(jax.grad(lambda r: jaxloss.poisson_nll(r, y, reduction="sum")))(r)
  np.testing.assert_array_equal(np.asarray(g), [0.0, -3.0])  # e^r - y
  assert np.isnan(jnp.exp(r[0]) - y[0] * r[0])  # the pre-fix formula
