"""Numerics, bad-input and reduction tests of the classification losses.

Every expected value comes from an independent float64 computation
(scipy.special / numpy) or from a closed form, never from jaxloss itself.
Generic registry-wide checks (grad vs closed form, jit/vmap, sharding) live
in tests/test_registry.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special as sp
from jax.experimental import checkify

import jaxloss
from jaxloss import _classification as C

F32_EPS = float(np.finfo(np.float32).eps)


def _f64(x):
  return np.asarray(x, np.float64)


def _ulp_diff32(a, b):
  """|a - b| in units of float32 spacing at b."""
  b = np.asarray(b, np.float64)
  return np.abs(np.asarray(a, np.float64) - b) / np.spacing(np.abs(b).astype(np.float32)).astype(np.float64)


def _sum_none(fn, **kw):
  return lambda *a: fn(*a, reduction="none", **kw).sum()


def _jgrad(f, **kw):
  return jax.jit(jax.grad(f, **kw))


def _jvg(f, **kw):
  return jax.jit(jax.value_and_grad(f, **kw))


def _jhess(f, **kw):
  return jax.jit(jax.hessian(f, **kw))


# --------------------------------------------------------------------------
# sigmoid binary cross-entropy
# --------------------------------------------------------------------------
SAT = np.array([-np.inf, -1e4, -30.0, -15.0, 15.0, 30.0, 1e4, np.inf])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_sigmoid_bce_saturated_logits(dtype, label):
  z = SAT.astype(dtype)
  y = np.full_like(z, label)
  val = np.asarray(C.sigmoid_binary_cross_entropy(z, y, reduction="none"))
  grad = np.asarray(_jgrad(_sum_none(C.sigmoid_binary_cross_entropy))(z, y))
  # reference: -y log sigma(z) - (1-y) log sigma(-z) with scipy's log_expit; the
  # unmet label at infinite logits is +inf, the met one exactly 0.
  ref = -sp.log_expit(_f64(z)) if label == 1 else -sp.log_expit(-_f64(z))
  np.testing.assert_allclose(val, ref, rtol=1e-6)
  assert not np.any(np.isnan(val))
  assert np.all(np.isfinite(val[1:-1]))  # +-1e4, +-30, +-15 are finite
  assert np.all(np.isfinite(grad))
  ref_grad = (1 - label) * sp.expit(_f64(z)) - label * sp.expit(-_f64(z))
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=0)


def test_sigmoid_bce_zero_at_plus_inf():
  z = np.array([np.inf, -np.inf], np.float32)
  y = np.array([1.0, 0.0], np.float32)
  val, g = _jvg(_sum_none(C.sigmoid_binary_cross_entropy))(z, y)
  assert float(val) == 0.0
  np.testing.assert_array_equal(np.asarray(g), [0.0, 0.0])


@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_sigmoid_bce_second_derivative_saturated_f32(pos_weight):
  z = np.array([15.0, 17.0, 20.0, 30.0, 50.0, -15.0, -20.0, -50.0], np.float32)
  y = np.array([1.0, 0.0, 1.0, 0.3, 1.0, 0.0, 1.0, 0.5], np.float32)
  f = _sum_none(C.sigmoid_binary_cross_entropy, pos_weight=pos_weight)
  h = _jhess(f)(z, y)
  h_diag = np.diag(np.asarray(h))
  pw = 1.0 if pos_weight is None else pos_weight
  expected = (1 + _f64(y) * (pw - 1)) * sp.expit(_f64(z)) * sp.expit(-_f64(z))
  assert np.all(h_diag > 0)
  np.testing.assert_allclose(h_diag, expected, rtol=1e-5)
  # forward-over-forward too (pure jvp path)
  d2 = jax.jit(lambda x: jax.jvp(lambda x: jax.jvp(lambda u: f(u, y), (x,), (np.ones_like(z),))[1], (x,),
                                  (np.ones_like(z),))[1])(z)
  np.testing.assert_allclose(float(d2), expected.sum(), rtol=1e-5)


def test_sigmoid_bce_gan_discriminator_at_half_is_ln2():
  # D = sigmoid(0) = 0.5, on a real (label 1) and a fake (label 0) sample.
  val = C.sigmoid_binary_cross_entropy(np.zeros(2), np.array([1.0, 0.0]))
  np.testing.assert_allclose(float(val), np.log(2.0), rtol=1e-15)
  np.testing.assert_allclose(float(C.binary_cross_entropy(np.array([0.5]), np.array([1.0]))), np.log(2.0),
                             rtol=1e-15)


def test_sigmoid_bce_pos_weight_and_smoothing_reference():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(3, 4)) * 4
  y = (rng.uniform(size=(3, 4)) > 0.5).astype(np.float64)
  pw = np.array([0.5, 1.0, 2.0, 4.0])
  eps = 0.1
  val = C.sigmoid_binary_cross_entropy(z, y, pos_weight=pw, label_smoothing=eps, reduction="none")
  ys = y * (1 - eps) + eps / 2
  ref = -pw * ys * sp.log_expit(z) - (1 - ys) * sp.log_expit(-z)
  np.testing.assert_allclose(np.asarray(val), ref, rtol=1e-13)
  g = _jgrad(_sum_none(C.sigmoid_binary_cross_entropy, pos_weight=pw, label_smoothing=eps))(z, y)
  # closed form of the reference, by hand: (1 - y') sigma(z) - w y' sigma(-z)
  np.testing.assert_allclose(np.asarray(g), (1 - ys) * sp.expit(z) - pw * ys * sp.expit(-z), rtol=1e-12)


def test_sigmoid_bce_matches_optax_on_hard_labels():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(5, 3)) * 3
  y = (rng.uniform(size=(5, 3)) > 0.5).astype(np.float64)
  np.testing.assert_allclose(np.asarray(C.sigmoid_binary_cross_entropy(z, y, reduction="none")),
                             np.asarray(optax.losses.sigmoid_binary_cross_entropy(z, y)), rtol=1e-12)


def test_labels_not_quantized_with_bf16_logits():
  z = jnp.asarray([0.5, -1.25], jnp.bfloat16)  # exactly representable
  y = np.array([0.8, 0.3], np.float32)
  val = C.sigmoid_binary_cross_entropy(z, y, reduction="none")
  assert val.dtype == jnp.float32
  ref = -0.8 * sp.log_expit(0.5) - 0.2 * sp.log_expit(-0.5)
  quantized = float(jnp.asarray(0.8, jnp.bfloat16))  # 0.80078125
  ref_q = -quantized * sp.log_expit(0.5) - (1 - quantized) * sp.log_expit(-0.5)
  assert abs(float(val[0]) - ref) < 4 * F32_EPS
  assert abs(float(val[0]) - ref_q) > 100 * F32_EPS


# --------------------------------------------------------------------------
# binary cross-entropy on probabilities
# --------------------------------------------------------------------------
def test_bce_seed_fact_minimum_at_target():
  y = np.array([0.8])
  h08 = 0.5004024235
  val = float(C.binary_cross_entropy(np.array([0.8]), y))
  np.testing.assert_allclose(val, h08, atol=5e-11)
  np.testing.assert_allclose(val, -(0.8 * np.log(0.8) + 0.2 * np.log(0.2)), rtol=1e-15)
  g = _jgrad(lambda p: C.binary_cross_entropy(p, y))(np.array([0.8]))
  assert abs(float(g[0])) < 1e-14
  grid = np.linspace(0.01, 0.99, 99)
  vals = np.asarray(C.binary_cross_entropy(grid, np.full_like(grid, 0.8), reduction="none"))
  assert grid[np.argmin(vals)] == pytest.approx(0.8)


def test_bce_exact_at_zero_and_one_no_clipping():
  p = np.array([0.0, 1.0, 0.0, 1.0, 1e-30, 0.0], np.float64)
  y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.5], np.float64)
  val = np.asarray(C.binary_cross_entropy(p, y, reduction="none"))
  np.testing.assert_array_equal(val[:4], [0.0, 0.0, np.inf, np.inf])
  np.testing.assert_allclose(val[4], 30 * np.log(10.0), rtol=1e-15)  # no epsilon clipping
  assert val[5] == np.inf
  # float32 too (1e-30 is a normal float32): no clipping to a float32 epsilon either
  val32 = np.asarray(C.binary_cross_entropy(np.array([1e-30], np.float32), np.array([1.0], np.float32),
                                            reduction="none"))
  np.testing.assert_allclose(val32, [30 * np.log(10.0)], rtol=1e-6)


def test_bce_gradients_and_zero_target_derivative():
  p = np.array([0.0, 1.0, 0.3, 0.0], np.float64)
  y = np.array([0.0, 1.0, 0.6, 0.0], np.float64)
  gp, gy = _jgrad(_sum_none(C.binary_cross_entropy), argnums=(0, 1))(p, y)
  # d/dp = -y/p + (1-y)/(1-p), each term 0 where its coefficient and probability are 0
  np.testing.assert_allclose(np.asarray(gp), [1.0, -1.0, -0.6 / 0.3 + 0.4 / 0.7, 1.0], rtol=1e-14)
  # d/dy = log((1-p)/p): 0 (not inf) at y = p = 0 (and y = p = 1)
  np.testing.assert_allclose(np.asarray(gy), [0.0, 0.0, np.log(0.7 / 0.3), 0.0], rtol=1e-14, atol=0)


@pytest.mark.runtime_checks
def test_bce_out_of_range_probabilities():
  p = np.array([0.5, 1.5, -0.1, 0.2])
  y = np.array([1.0, 1.0, 0.0, 0.0])
  val = np.asarray(C.binary_cross_entropy(p, y, reduction="none"))
  assert np.isnan(val[1]) and np.isnan(val[2])
  np.testing.assert_allclose(val[[0, 3]], [np.log(2.0), -np.log(0.8)], rtol=1e-15)
  err, _ = checkify.checkify(lambda a, b: C.binary_cross_entropy(a, b), errors=checkify.user_checks)(p, y)
  with pytest.raises(Exception, match="probs"):
    err.throw()
  err_ok, _ = checkify.checkify(lambda a, b: C.binary_cross_entropy(a, b), errors=checkify.user_checks)(
      np.array([0.5]), np.array([1.0]))
  err_ok.throw()  # no error


# --------------------------------------------------------------------------
# softmax cross-entropy (distribution labels)
# --------------------------------------------------------------------------
def test_softmax_ce_masked_classes_finite():
  z = np.array([[0.5, -np.inf, 2.0, -np.inf], [1.0, -1.0, -np.inf, 3.0]])
  y = np.array([[0.3, 0.0, 0.7, 0.0], [0.0, 0.5, 0.0, 0.5]])
  val, g = _jvg(_sum_none(C.softmax_cross_entropy))(z, y)
  with np.errstate(invalid="ignore"):
    logp = sp.log_softmax(z, axis=-1)
    ref = -np.sum(np.where(y == 0, 0.0, y * logp), axis=-1).sum()  # 0 * -inf masked by where
  np.testing.assert_allclose(float(val), ref, rtol=1e-14)
  assert np.all(np.isfinite(np.asarray(g)))
  np.testing.assert_allclose(np.asarray(g), sp.softmax(z, axis=-1) * y.sum(-1, keepdims=True) - y, atol=1e-15)


def test_softmax_ce_all_masked_row_excluded():
  z = np.array([[1.0, 2.0, 0.5], [-np.inf, -np.inf, -np.inf]], np.float32)
  y = np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]], np.float32)
  where = np.array([True, False])
  val, g = _jvg(lambda a: C.softmax_cross_entropy(a, y, where=where))(z)
  ref = -np.sum(y[0] * sp.log_softmax(_f64(z[0])))
  np.testing.assert_allclose(float(val), ref, rtol=1e-6)
  g = np.asarray(g)
  assert np.all(np.isfinite(g))
  np.testing.assert_array_equal(g[1], 0.0)
  np.testing.assert_allclose(g[0], sp.softmax(_f64(z[0])) - y[0], atol=1e-6)
  # integer-label version too
  val_i, g_i = _jvg(lambda a: C.softmax_cross_entropy_with_integer_labels(
      a, np.array([1, 0]), where=where))(z)
  np.testing.assert_allclose(float(val_i), -sp.log_softmax(_f64(z[0]))[1], rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(g_i))) and np.all(np.asarray(g_i)[1] == 0)


def test_softmax_ce_hessian_per_row():
  rng = np.random.default_rng(2)
  z = rng.normal(size=(3, 4))
  y = rng.dirichlet(np.ones(4), size=3) * np.array([[1.0], [0.5], [2.0]])  # unnormalized rows
  h = np.asarray((_jhess(_sum_none(C.softmax_cross_entropy)))(z, y))
  assert h.shape == (3, 4, 3, 4)
  for i in range(3):
    p = sp.softmax(z[i])
    np.testing.assert_allclose(h[i, :, i, :], y[i].sum() * (np.diag(p) - np.outer(p, p)), atol=1e-14)
    for j in range(3):
      if j != i:
        np.testing.assert_array_equal(h[i, :, j, :], 0.0)


def test_softmax_ce_label_smoothing_and_axis():
  rng = np.random.default_rng(3)
  z = rng.normal(size=(4, 5)) * 2
  y = rng.dirichlet(np.ones(5), size=4)
  val = C.softmax_cross_entropy(z, y, label_smoothing=0.2, reduction="none")
  ys = 0.8 * y + 0.2 / 5
  np.testing.assert_allclose(np.asarray(val), -np.sum(ys * sp.log_softmax(z, axis=-1), -1), rtol=1e-14)
  val0 = C.softmax_cross_entropy(z.T, y.T, axis=0, label_smoothing=0.2, reduction="none")
  np.testing.assert_allclose(np.asarray(val0), np.asarray(val), rtol=1e-14)
  np.testing.assert_allclose(np.asarray(C.softmax_cross_entropy(z, y, reduction="none")),
                             np.asarray(optax.losses.softmax_cross_entropy(z, y)), rtol=1e-13)


def test_softmax_ce_tied_maxima_hessian():
  z = np.array([[3.0, 3.0, -2.0]])
  y = np.array([[0.2, 0.8, 0.0]])
  h = np.asarray((_jhess(_sum_none(C.softmax_cross_entropy)))(z, y))[0, :, 0, :]
  p = sp.softmax(z[0])
  np.testing.assert_allclose(h, np.diag(p) - np.outer(p, p), atol=1e-15)


def test_softmax_ce_positive_target_on_masked_class_is_inf():
  z = np.array([[0.5, -np.inf, 2.0], [1.0, 2.0, 0.0]], np.float32)
  y = np.array([[0.3, 0.2, 0.5], [0.1, 0.2, 0.7]], np.float32)
  val, g = _jvg(_sum_none(C.softmax_cross_entropy))(z, y)
  rows = np.asarray(C.softmax_cross_entropy(z, y, reduction="none"))
  assert rows[0] == np.inf
  np.testing.assert_allclose(rows[1], -np.sum(y[1] * sp.log_softmax(_f64(z[1]))), rtol=2e-7)
  assert float(val) == np.inf
  # the gradient stays the closed form S p - y (finite) on both rows
  np.testing.assert_allclose(np.asarray(g), sp.softmax(_f64(z), axis=-1) - y, atol=1e-7)


@pytest.mark.runtime_checks
def test_softmax_ce_negative_label_is_nan_also_with_smoothing():
  z = np.array([[0.0, 0.0, 1.0], [0.5, 0.2, -0.3]])
  y = np.array([[-0.01, 1.0, 0.01], [0.2, 0.3, 0.5]])  # smoothing 0.1 would lift -0.01 to 0.024
  for eps in (0.0, 0.1):
    rows = np.asarray(C.softmax_cross_entropy(z, y, label_smoothing=eps, reduction="none"))
    assert np.isnan(rows[0]) and np.isfinite(rows[1]), (eps, rows)
    err, _ = checkify.checkify(lambda a, b: C.softmax_cross_entropy(a, b, label_smoothing=eps),
                               errors=checkify.user_checks)(z, y)
    assert "labels must be non-negative" in err.get()


def test_softmax_ce_gap_sum_select_and_screened_agree():
  """The CPU path (plain sum, select only when a row is NaN) against the GPU/TPU path (select)."""
  rng = np.random.default_rng(11)
  d = np.abs(rng.normal(size=(6, 5))) * 3
  y = rng.dirichlet(np.ones(5), size=6)
  d[1, 2] = np.inf; y[1, 2] = 0.0           # masked class, zero target: 0
  d[2, 0] = np.inf; y[2, 0] = 0.25          # masked class, positive target: inf
  d[3, 4] = np.nan                          # NaN logit: NaN
  y[4, 1] = 0.0                             # a zero target on a finite class
  for dtype in (np.float32, np.float64):
    yy, dd = jnp.asarray(y, dtype), jnp.asarray(d, dtype)
    select = np.asarray(jax.jit(lambda a, b: C._gap_sum_select(a, b, -1))(yy, dd))
    screened = np.asarray(jax.jit(lambda a, b: C._gap_sum_screened(a, b, -1))(yy, dd))
    np.testing.assert_array_equal(screened, select)
    with np.errstate(invalid="ignore"):
      ref = np.sum(np.where(y == 0, 0.0, y * d), axis=-1)
    np.testing.assert_allclose(select, ref, rtol=4 * np.finfo(dtype).eps)
    # without a masked class the screened path is the plain sum (no cond taken): equal to rounding
    # (XLA may sum the fused select and the plain product in a different order)
    rows = np.array([0, 4, 5])
    ok = np.asarray(jax.jit(lambda a, b: C._gap_sum_screened(a, b, -1))(yy[rows], dd[rows]))
    np.testing.assert_allclose(ok, ref[rows], rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("case", ["confident", "ties", "near_ties", "all_equal_wide", "wide_random"])
def test_softmax_ce_float32_rows_within_ulps_of_float64(case):
  """lse(z) - z_j through the rest-sum and tie count of _softmax_stats, against mpmath-free float64."""
  rng = np.random.default_rng(5)
  if case == "confident":
    z = np.array([[1000.0, 990.0], [100.0, 80.0], [0.0, -40.0], [3.0, -60.0, -70.0]], dtype=object)
  elif case == "ties":
    z = np.array([[3.0, 3.0, -2.0, 3.0], [5.0, 5.0, -30.0, -40.0], [1.0, 1.0, 1.0, -50.0]], dtype=object)
  elif case == "near_ties":
    z = np.array([[1.0, np.nextafter(np.float32(1), np.float32(0)), -20.0],
                  [1e-30, 0.0, -1e-30]], dtype=object)
  elif case == "all_equal_wide":
    z = np.zeros((2, 4096))
  else:
    z = rng.normal(size=(3, 50_000)) * 4
  rows = [np.asarray(r, np.float32) for r in z]
  for r in rows:
    y = np.zeros_like(r)
    y[int(np.argmax(r))] = 1.0                # the target on the maximum: the confident term
    y[-1] += 0.5                              # and some mass on the smallest logit
    got = float(C.softmax_cross_entropy(r[None], y[None], reduction="none")[0])
    ref = float(-np.sum(y.astype(np.float64) * sp.log_softmax(r.astype(np.float64))))
    assert _ulp_diff32(got, ref) <= 4, (case, r[:4], got, ref)
    # the confident term alone: lse(z) - max z, tiny on confident rows
    y1 = np.zeros_like(r); y1[int(np.argmax(r))] = 1.0
    got1 = float(C.softmax_cross_entropy(r[None], y1[None], reduction="none")[0])
    r64 = r.astype(np.float64)
    rest = np.exp(r64 - r64.max())
    rest[int(np.argmax(r64))] = 0.0          # 1 + rest = sum exp(z - max), without the cancellation
    ref1 = float(np.log1p(rest.sum()))
    assert _ulp_diff32(got1, ref1) <= 4, (case, r[:4], got1, ref1)


# --------------------------------------------------------------------------
# softmax cross-entropy with integer labels: accuracy and its custom_jvp
# --------------------------------------------------------------------------
def _ref_int_ce64(z, label):
  z = _f64(z)
  return -sp.log_softmax(z)[label]


@pytest.mark.parametrize("label", [0, 1])
def test_int_ce_confident_rows_f32(label):
  z = np.array([[1000.0, 990.0]], np.float32)
  val = np.asarray(C.softmax_cross_entropy_with_integer_labels(z, np.array([label]), reduction="none"))
  assert val.dtype == np.float32
  ref = _ref_int_ce64(z[0], label)  # 4.5399e-05 or 10.0000454
  assert _ulp_diff32(val[0], ref) <= 2
  g = np.asarray(_jgrad(_sum_none(C.softmax_cross_entropy_with_integer_labels))(z, np.array([label])))
  ref_g = sp.softmax(_f64(z[0])) - np.eye(2)[label]
  assert np.all(_ulp_diff32(g[0], ref_g) <= 4)


@pytest.mark.parametrize("label", [0, 1])
def test_int_ce_confident_rows_bf16(label):
  z = jnp.asarray([[100.0, 95.0]], jnp.bfloat16)
  val = np.asarray(C.softmax_cross_entropy_with_integer_labels(z, np.array([label]), reduction="none"))
  assert val.dtype == np.float32
  ref = _ref_int_ce64(np.array([100.0, 95.0]), label)  # 6.715e-3 or 5.0067
  assert val[0] != 0.0
  assert _ulp_diff32(val[0], ref) <= 2


def test_int_ce_confident_rows_beat_naive_f32():
  # The test inputs are hard: the textbook lse - z_y in float32 is far off on them.
  z = jnp.asarray([[1000.0, 990.0]], jnp.float32)
  naive = float(jax.nn.logsumexp(z[0]) - z[0, 0])
  ref = _ref_int_ce64([1000.0, 990.0], 0)
  assert abs(naive - ref) / ref > 0.1
  ours = float(C.softmax_cross_entropy_with_integer_labels(z, np.array([0])))
  assert abs(ours - ref) / ref < 4 * F32_EPS


def _plain_int_ce(z, labels):
  """Unfused textbook reference, differentiated by plain autodiff."""
  zy = jnp.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
  return jax.nn.logsumexp(z, axis=-1) - zy


def test_int_ce_custom_jvp_against_plain_autodiff_and_finite_differences():
  rng = np.random.default_rng(4)
  z = rng.normal(size=(3, 5)) * 3
  labels = np.array([0, 4, 2])
  ours = _sum_none(C.softmax_cross_entropy_with_integer_labels)
  plain = lambda a: _plain_int_ce(a, labels).sum()
  v = rng.normal(size=z.shape)

  @jax.jit
  def derivatives(a, lab, t):
    f = lambda x: ours(x, lab)
    return (jax.grad(f)(a), jax.jvp(f, (a,), (t,))[1], jax.hessian(f)(a), jax.jacrev(jax.jacfwd(f))(a))

  @jax.jit
  def plain_derivatives(a, t):
    return jax.grad(plain)(a), jax.jvp(plain, (a,), (t,))[1], jax.hessian(plain)(a)

  g_ours, jvp_ours, h_ours, h2_ours = derivatives(z, labels, v)
  g_plain, jvp_plain, h_plain = plain_derivatives(z, v)
  np.testing.assert_allclose(np.asarray(g_ours), np.asarray(g_plain), rtol=1e-12, atol=1e-15)  # reverse
  np.testing.assert_allclose(float(jvp_ours), float(jvp_plain), rtol=1e-12)  # forward
  np.testing.assert_allclose(np.asarray(h_ours), np.asarray(h_plain), atol=1e-13)  # fwd over rev
  np.testing.assert_allclose(np.asarray(h2_ours), np.asarray(h_plain), atol=1e-13)  # rev over fwd
  # float64 central finite differences of a plain NumPy loss
  def np_loss(a):
    return float(np.sum(-sp.log_softmax(a, axis=-1)[np.arange(3), labels]))
  g = np.asarray(g_ours)
  fd = np.zeros_like(z)
  hstep = 1e-6
  for idx in np.ndindex(z.shape):
    dz = np.zeros_like(z)
    dz[idx] = hstep
    fd[idx] = (np_loss(z + dz) - np_loss(z - dz)) / (2 * hstep)
  np.testing.assert_allclose(g, fd, atol=1e-8)


def test_int_ce_hessian_on_confident_row_f32():
  z = np.array([[1000.0, 990.0, 995.0]], np.float32)
  hess = (_jhess(_sum_none(C.softmax_cross_entropy_with_integer_labels)))
  h = np.asarray(hess(z, np.array([1])))[0, :, 0, :]
  p = sp.softmax(_f64(z[0]))
  np.testing.assert_allclose(h, np.diag(p) - np.outer(p, p), rtol=1e-5, atol=1e-12)


def test_int_ce_masked_classes_and_ties():
  z = np.array([[0.5, -np.inf, 2.0, -np.inf], [3.0, 3.0, -np.inf, 1.0]])
  labels = np.array([2, 1])
  val, g = _jvg(_sum_none(C.softmax_cross_entropy_with_integer_labels))(z, labels)
  with np.errstate(invalid="ignore"):
    logp = sp.log_softmax(z, axis=-1)
  np.testing.assert_allclose(float(val), -(logp[0, 2] + logp[1, 1]), rtol=1e-15)
  np.testing.assert_allclose(np.asarray(g), sp.softmax(z, axis=-1) - np.eye(4)[labels], atol=1e-15)


def test_int_ce_label_smoothing_reference():
  rng = np.random.default_rng(5)
  z = rng.normal(size=(4, 6)) * 2
  labels = np.array([0, 5, 3, 3])
  eps = 0.15
  val = C.softmax_cross_entropy_with_integer_labels(z, labels, label_smoothing=eps, reduction="none")
  q = (1 - eps) * np.eye(6)[labels] + eps / 6
  np.testing.assert_allclose(np.asarray(val), -np.sum(q * sp.log_softmax(z, axis=-1), -1), rtol=1e-13)
  g = _jgrad(_sum_none(C.softmax_cross_entropy_with_integer_labels, label_smoothing=eps))(z, labels)
  np.testing.assert_allclose(np.asarray(g), sp.softmax(z, axis=-1) - q, atol=1e-15)
  np.testing.assert_allclose(
      np.asarray(C.softmax_cross_entropy_with_integer_labels(z, labels, reduction="none")),
      np.asarray(optax.losses.softmax_cross_entropy_with_integer_labels(z, labels)), rtol=1e-13)


def test_int_ce_class_weights_pytorch_mean_and_ignore_index():
  rng = np.random.default_rng(6)
  z = rng.normal(size=(6, 4))
  labels = np.array([0, 3, -100, 1, 3, 2])
  cw = np.array([0.5, 2.0, 1.0, 3.0])
  where = np.array([True, True, True, True, False, True])
  nll = -sp.log_softmax(z, axis=-1)[np.arange(6), np.clip(labels, 0, None)]
  keep = where & (labels != -100)
  w = cw[np.clip(labels, 0, None)] * keep
  expected = np.sum(w * nll) / np.sum(w)  # torch.nn.CrossEntropyLoss(weight=cw, ignore_index=-100)
  f = lambda a: C.softmax_cross_entropy_with_integer_labels(a, labels, class_weights=cw, ignore_index=-100,
                                                            where=where)
  val, g = _jvg(f)(z)
  np.testing.assert_allclose(float(val), expected, rtol=1e-14)
  g = np.asarray(g)
  np.testing.assert_array_equal(g[2], 0.0)
  np.testing.assert_array_equal(g[4], 0.0)
  expected_g = (w / w.sum())[:, None] * (sp.softmax(z, axis=-1) - np.eye(4)[np.clip(labels, 0, None)])
  np.testing.assert_allclose(g, expected_g, atol=1e-15)
  none = np.asarray(C.softmax_cross_entropy_with_integer_labels(z, labels, class_weights=cw, ignore_index=-100,
                                                                reduction="none"))
  np.testing.assert_allclose(none, np.where(labels == -100, 0.0, cw[np.clip(labels, 0, None)] * nll), rtol=1e-14)


def test_int_ce_axis0_and_batched():
  rng = np.random.default_rng(7)
  z = rng.normal(size=(2, 3, 5))
  labels = rng.integers(0, 5, size=(2, 3))
  val = C.softmax_cross_entropy_with_integer_labels(z, labels, reduction="none")
  ref = -np.take_along_axis(sp.log_softmax(z, -1), labels[..., None], -1)[..., 0]
  np.testing.assert_allclose(np.asarray(val), ref, rtol=1e-14)
  zt = np.moveaxis(z, -1, 0)
  val0 = C.softmax_cross_entropy_with_integer_labels(zt, labels, axis=0, reduction="none")
  np.testing.assert_allclose(np.asarray(val0), ref, rtol=1e-14)
  g0 = _jgrad(_sum_none(C.softmax_cross_entropy_with_integer_labels, axis=0))(zt, labels)
  g = sp.softmax(z, -1) - np.eye(5)[labels]
  np.testing.assert_allclose(np.asarray(g0), np.moveaxis(g, -1, 0), atol=1e-15)


@pytest.mark.runtime_checks
def test_int_ce_out_of_range_labels():
  z = np.zeros((3, 4))
  labels = np.array([1, 4, -1])
  val = np.asarray(C.softmax_cross_entropy_with_integer_labels(z, labels, reduction="none"))
  assert np.isnan(val[1]) and np.isnan(val[2])
  np.testing.assert_allclose(val[0], np.log(4.0), rtol=1e-15)
  fn = lambda a, b: C.softmax_cross_entropy_with_integer_labels(a, b)
  err, _ = checkify.checkify(fn, errors=checkify.user_checks)(z, labels)
  with pytest.raises(Exception, match="labels"):
    err.throw()
  # ignore_index and masked rows are not errors
  fn2 = lambda a, b: C.softmax_cross_entropy_with_integer_labels(a, b, ignore_index=-1,
                                                                 where=np.array([True, False, True]))
  err2, v2 = checkify.checkify(fn2, errors=checkify.user_checks)(z, labels)
  err2.throw()
  np.testing.assert_allclose(float(v2), np.log(4.0), rtol=1e-15)


def test_int_ce_jit_and_no_python_loop_over_rows():
  z = np.random.default_rng(8).normal(size=(64, 7)).astype(np.float32)
  labels = np.arange(64) % 7
  f = jax.jit(_jvg(lambda a, b: C.softmax_cross_entropy_with_integer_labels(a, b)))
  jaxpr = jax.make_jaxpr(f)(z, labels)
  # the jaxpr does not grow with the number of rows (vectorized, no unrolled loop)
  jaxpr_small = jax.make_jaxpr(f)(z[:2], labels[:2])
  assert len(str(jaxpr)) < len(str(jaxpr_small)) + 200
  val, g = f(z, labels)
  np.testing.assert_allclose(float(val), np.mean(-sp.log_softmax(_f64(z), -1)[np.arange(64), labels]), rtol=1e-6)


@pytest.mark.parametrize("label", [0, 1, 2])
def test_int_ce_hessian_confident_rows_every_label_f32(label):
  # label 0 is the maximum (p_y ~ 1), 1 and 2 are not: the argmax's diagonal p_k (1 - p_k) ~ 6.7e-3
  # and the label's entries must all be accurate to a few float32 ulp, in forward-over-reverse.
  z = np.array([[1000.0, 990.0, 995.0]], np.float32)
  h = np.asarray(_jhess(_sum_none(C.softmax_cross_entropy_with_integer_labels))(z, np.array([label])))[0, :, 0, :]
  p = sp.softmax(_f64(z[0]))
  np.testing.assert_allclose(h, np.diag(p) - np.outer(p, p), rtol=1e-6, atol=0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_int_ce_scatter_and_onehot_branches_agree(axis):
  # lax.platform_dependent picks the scatter on CPU and the one-hot compare elsewhere: both run here.
  z = jax.random.normal(jax.random.PRNGKey(3), (3, 4, 5), jnp.float32)
  shape = tuple(d for i, d in enumerate(z.shape) if i != axis)
  labels = jax.random.randint(jax.random.PRNGKey(4), shape, 0, z.shape[axis])
  e = jnp.exp(z)
  a = C._minus_onehot_scatter(e, labels, axis)
  b = C._minus_onehot_fused(e, labels, axis)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  onehot = np.moveaxis(np.eye(z.shape[axis], dtype=np.float32)[np.asarray(labels)], -1, axis)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(e) - onehot)


def test_int_ce_invalid_and_ignored_labels_never_index_out_of_bounds():
  # The core scatters/gathers with mode="promise_in_bounds": the public function must sanitize labels.
  z = np.random.default_rng(9).normal(size=(5, 4)).astype(np.float32)
  labels = np.array([2, 2**31 - 1, -100, -(2**31), 4], np.int32)
  f = lambda a, b: C.softmax_cross_entropy_with_integer_labels(a, b, ignore_index=-100, reduction="none")
  val = np.asarray(jax.jit(f)(z, labels))
  assert np.isnan(val[[1, 3, 4]]).all() and val[2] == 0.0
  np.testing.assert_allclose(val[0], -sp.log_softmax(_f64(z[0]))[2], rtol=1e-6)
  g = np.asarray(jax.jit(jax.grad(lambda a, b: jnp.sum(f(a, b)[:3:2])))(z, labels))
  assert np.isfinite(g).all()
  np.testing.assert_allclose(g[0], sp.softmax(_f64(z[0])) - np.eye(4)[2], atol=1e-7)
  np.testing.assert_array_equal(g[1:], 0.0)


def test_int_ce_vmap_forward_mode_and_reverse_agree():
  z = jax.random.normal(jax.random.PRNGKey(5), (4, 6, 3), jnp.float32)
  labels = jax.random.randint(jax.random.PRNGKey(6), (4, 3), 0, 6)
  f = lambda a, b: C.softmax_cross_entropy_with_integer_labels(a, b, axis=0, reduction="sum")
  batched = jax.vmap(f)(z, labels)
  direct = C.softmax_cross_entropy_with_integer_labels(z, labels, axis=1, reduction="none").sum(-1)
  np.testing.assert_allclose(np.asarray(batched), np.asarray(direct), rtol=1e-6)
  total = lambda a: jnp.sum(jax.vmap(f)(a, labels))
  g_rev = jax.jit(jax.grad(total))(z)
  g_fwd = jax.jit(jax.jacfwd(total))(z)
  np.testing.assert_allclose(np.asarray(g_fwd), np.asarray(g_rev), rtol=1e-6, atol=1e-7)
  p = sp.softmax(_f64(z), axis=1)
  onehot = np.moveaxis(np.eye(6)[np.asarray(labels)], -1, 1)
  np.testing.assert_allclose(np.asarray(g_rev), p - onehot, atol=1e-6)


# --------------------------------------------------------------------------
# categorical cross-entropy, focal, hinge
# --------------------------------------------------------------------------
def test_categorical_ce_zeros_and_no_renormalization():
  p = np.array([[0.0, 0.25, 0.75], [0.2, 0.2, 0.6]])
  y = np.array([[0.0, 0.5, 0.5], [0.5, 0.5, 0.0]])
  val, (gp, gy) = _jvg(_sum_none(C.categorical_cross_entropy), argnums=(0, 1))(p, y)
  expected = -(0.5 * np.log(0.25) + 0.5 * np.log(0.75)) - np.log(0.2)
  np.testing.assert_allclose(float(val), expected, rtol=1e-15)
  np.testing.assert_allclose(np.asarray(gp), [[0.0, -2.0, -0.5 / 0.75], [-2.5, -2.5, 0.0]], rtol=1e-15)
  np.testing.assert_allclose(np.asarray(gy), [[0.0, -np.log(0.25), -np.log(0.75)], -np.log([0.2, 0.2, 0.6])],
                             rtol=1e-15)
  # a row summing to 0.6 is not renormalized: it is refused (NaN), and so are labels summing to 0.5 (issue 13)
  short = np.asarray(C.categorical_cross_entropy(np.array([[0.2, 0.2, 0.2], [0.2, 0.2, 0.6]]),
                                                 np.array([[0.5, 0.5, 0.0], [0.5, 0.0, 0.0]]), reduction="none"))
  assert np.isnan(short).all()
  bad = np.asarray(C.categorical_cross_entropy(np.array([[1.2, -0.2], [0.5, 0.5]]), np.array([[1.0, 0.0]] * 2),
                                               reduction="none"))
  assert np.isnan(bad[0]) and bad[1] == pytest.approx(np.log(2.0))
  assert C.categorical_cross_entropy(np.array([[0.0, 1.0]]), np.array([[0.5, 0.5]])) == np.inf


@pytest.mark.parametrize("alpha,gamma", [(None, 2.0), (0.25, 2.0), (0.75, 1.5), (None, 0.0)])
def test_focal_loss_reference_and_optax(alpha, gamma):
  rng = np.random.default_rng(9)
  z = rng.normal(size=(4, 5)) * 3
  y = np.where(rng.uniform(size=(4, 5)) > 0.5, 1.0, 0.0)
  y[0] = rng.uniform(size=5)  # soft labels too
  val = np.asarray(C.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction="none"))
  p = sp.expit(z)
  p_t = p * y + (1 - p) * (1 - y)
  ce = -y * sp.log_expit(z) - (1 - y) * sp.log_expit(-z)
  a_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
  np.testing.assert_allclose(val, a_t * (1 - p_t) ** gamma * ce, rtol=1e-12)
  np.testing.assert_allclose(val, np.asarray(optax.losses.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma)),
                             rtol=1e-10)
  g = np.asarray(_jgrad(_sum_none(C.sigmoid_focal_loss, alpha=alpha, gamma=gamma))(z, y))
  np.testing.assert_allclose(g, np.asarray(C._focal_dz(z, y, alpha=alpha, gamma=gamma)), rtol=1e-11, atol=1e-15)
  if alpha is None and gamma == 0.0:
    np.testing.assert_allclose(val, np.asarray(C.sigmoid_binary_cross_entropy(z, y, reduction="none")), rtol=1e-15)


def test_focal_loss_saturated():
  z = np.array([30.0, 1e4, np.inf, -1e4, -np.inf, -30.0], np.float32)
  y = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 1.0], np.float32)
  val, g = _jvg(_sum_none(C.sigmoid_focal_loss))(z, y)
  np.testing.assert_allclose(float(val), 30.0 * 1.0, rtol=1e-6)  # only the -30 / y=1 element is large
  np.testing.assert_allclose(np.asarray(g), [0.0, 0.0, 0.0, 0.0, 0.0, -1.0], atol=1e-6)


def test_hinge_losses():
  s = np.array([2.0, 0.5, -0.5, -3.0, 0.2])
  y = np.array([1, 1, -1, 1, -1])
  np.testing.assert_allclose(np.asarray(C.hinge_loss(s, y, reduction="none")), [0.0, 0.5, 0.5, 4.0, 1.2])
  np.testing.assert_allclose(np.asarray(C.hinge_loss(s, y, reduction="none")), np.asarray(optax.losses.hinge_loss(s, y)))
  np.testing.assert_allclose(np.asarray(C.squared_hinge_loss(s, y, reduction="none")), [0.0, 0.25, 0.25, 16.0, 1.44])
  g = _jgrad(_sum_none(C.squared_hinge_loss))(s, y)
  np.testing.assert_allclose(np.asarray(g), [0.0, -1.0, 1.0, -8.0, 2.4])
  g1 = _jgrad(_sum_none(C.hinge_loss))(s, y)
  np.testing.assert_allclose(np.asarray(g1), [0.0, -1.0, 1.0, -1.0, 1.0])


@pytest.mark.runtime_checks
@pytest.mark.parametrize("fn", [C.hinge_loss, C.squared_hinge_loss])
def test_hinge_labels_must_be_pm1(fn):
  s = np.array([0.5, 0.5, 0.5])
  y = np.array([1.0, 0.0, 2.0])
  val = np.asarray(fn(s, y, reduction="none"))
  assert not np.isnan(val[0]) and np.isnan(val[1]) and np.isnan(val[2])
  err, _ = checkify.checkify(lambda a, b: fn(a, b), errors=checkify.user_checks)(s, y)
  with pytest.raises(Exception, match="labels must be -1 or \\+1"):
    err.throw()


@pytest.mark.parametrize("fn", [C.hinge_loss, C.squared_hinge_loss])
def test_hinge_kink_subgradient_zero_and_invalid_labels(fn):
  # At the kink y s = 1 the subgradient is 0 (as the registry's closed form _hinge_ds); labels that
  # are not exactly -1 or +1 (NaN, 1 + ulp) give NaN in their element and a zero gradient there.
  s = np.array([1.0, -1.0, 0.5, 0.5, 0.5, 0.5], np.float32)
  y = np.array([1.0, -1.0, np.nan, np.nextafter(np.float32(1), np.float32(2)), -1.0, 1.0], np.float32)
  val = np.asarray(fn(s, y, reduction="none"))
  np.testing.assert_array_equal(np.isnan(val), [False, False, True, True, False, False])
  np.testing.assert_array_equal(val[[0, 1]], 0.0)
  g = np.asarray(_jgrad(lambda a, b: jnp.sum(fn(a, b, where=~np.isnan(val), reduction="none")))(s, y))
  expected = {C.hinge_loss: [0.0, 0.0, 0.0, 0.0, 1.0, -1.0], C.squared_hinge_loss: [0.0, 0.0, 0.0, 0.0, 3.0, -1.0]}
  np.testing.assert_array_equal(g, expected[fn])
  finite_y = np.where(np.isnan(y), 1.5, y).astype(np.float32)  # a NaN label makes its own gradient NaN
  g_bad = np.asarray(_jgrad(lambda a, b: jnp.nansum(fn(a, b, reduction="none")))(s, finite_y))
  np.testing.assert_array_equal(g_bad, expected[fn])


@pytest.mark.runtime_checks
def test_multiclass_hinge():
  s = np.array([[5.0, 1.0, 0.0], [0.0, 2.5, -1.0], [1.0, 0.5, 0.8]])
  labels = np.array([0, 0, 2])
  val = np.asarray(C.multiclass_hinge_loss(s, labels, reduction="none"))
  # by hand: max_k(s_k + [k != y]) - s_y
  np.testing.assert_allclose(val, [0.0, 3.5, 1.2], rtol=1e-15)
  np.testing.assert_allclose(val, np.asarray(optax.losses.multiclass_hinge_loss(s, labels)), rtol=1e-15)
  g = np.asarray(_jgrad(_sum_none(C.multiclass_hinge_loss))(s, labels))
  np.testing.assert_array_equal(g, [[0, 0, 0], [-1, 1, 0], [1, 0, -1]])
  bad = np.asarray(C.multiclass_hinge_loss(s, np.array([0, 3, 1]), reduction="none"))
  assert np.isnan(bad[1]) and not np.isnan(bad[0])
  err, _ = checkify.checkify(lambda a, b: C.multiclass_hinge_loss(a, b), errors=checkify.user_checks)(
      s, np.array([0, 3, 1]))
  with pytest.raises(Exception, match="labels"):
    err.throw()


# --------------------------------------------------------------------------
# bad input at trace time
# --------------------------------------------------------------------------
ELEMENTWISE = [C.sigmoid_binary_cross_entropy, C.binary_cross_entropy, C.sigmoid_focal_loss, C.hinge_loss,
               C.squared_hinge_loss]


@pytest.mark.parametrize("fn", ELEMENTWISE, ids=lambda f: f.__name__)
def test_elementwise_shape_mismatch(fn):
  with pytest.raises(ValueError, match=r"\(4,\).*\(4, 1\)"):
    fn(np.full(4, 0.5), np.ones((4, 1)))


@pytest.mark.parametrize("fn", ELEMENTWISE + [C.softmax_cross_entropy, C.categorical_cross_entropy],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [np.int32, np.bool_])
def test_integer_or_bool_predictions(fn, dtype):
  x = np.ones((2, 3), dtype)
  with pytest.raises(TypeError, match="floating"):
    fn(x, np.ones((2, 3), np.float32))


def test_integer_label_losses_bad_input():
  z = np.zeros((4, 3))
  for fn in (C.softmax_cross_entropy_with_integer_labels, C.multiclass_hinge_loss):
    with pytest.raises(TypeError, match="labels must be integer"):
      fn(z, np.zeros(4))
    with pytest.raises(ValueError, match=r"labels.shape=\(4, 1\)"):
      fn(z, np.zeros((4, 1), np.int32))
    with pytest.raises(TypeError, match="floating"):
      fn(np.zeros((4, 3), np.int32), np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="where"):
      fn(z, np.zeros(4, np.int32), where=np.ones((4, 3), bool))
  with pytest.raises(ValueError, match="class_weights"):
    C.softmax_cross_entropy_with_integer_labels(z, np.zeros(4, np.int32), class_weights=np.ones(4))


def test_distribution_losses_bad_input():
  z = np.zeros((4, 3))
  for fn in (C.softmax_cross_entropy, C.categorical_cross_entropy):
    with pytest.raises(TypeError, match="floating-point probability distribution"):
      fn(np.full((4, 3), 0.3), np.zeros((4, 3), np.int32))
    with pytest.raises(ValueError, match="same shape"):
      fn(np.full((4, 3), 0.3), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="where"):
      fn(np.full((4, 3), 0.3), z, where=np.ones((4, 3), bool))


@pytest.mark.parametrize("spec", C.SPECS, ids=lambda s: s.name)
def test_unknown_reduction(spec):
  args = spec.sample(jax.random.key(0), jnp.float32)
  with pytest.raises(ValueError, match="reduction"):
    spec.fn(*args, reduction="avg")


def test_option_ranges():
  z, y = np.zeros(3), np.ones(3)
  with pytest.raises(ValueError, match="label_smoothing"):
    C.sigmoid_binary_cross_entropy(z, y, label_smoothing=1.5)
  with pytest.raises(ValueError, match="gamma"):
    C.sigmoid_focal_loss(z, y, gamma=-1.0)
  with pytest.raises(ValueError, match="pos_weight"):
    C.sigmoid_binary_cross_entropy(z, y, pos_weight=np.ones(4))


# --------------------------------------------------------------------------
# weights / where / reduction
# --------------------------------------------------------------------------
@pytest.mark.parametrize("spec", C.SPECS, ids=lambda s: s.name)
def test_all_masked_is_zero_with_zero_grad(spec):
  args = spec.sample(jax.random.key(1), jnp.float64)
  loss_shape = spec.unreduced(*args).shape
  where = np.zeros(loss_shape, bool)
  val, g = _jvg(lambda a: spec.fn(a, *args[1:], where=where))(args[0])
  assert float(val) == 0.0
  np.testing.assert_array_equal(np.asarray(g), 0.0)


@pytest.mark.parametrize("spec", C.SPECS, ids=lambda s: s.name)
def test_weighted_masked_mean(spec):
  args = spec.sample(jax.random.key(2), jnp.float64)
  none = np.asarray(spec.unreduced(*args))
  ref = spec.reference(*[np.asarray(a) for a in args])
  np.testing.assert_allclose(none, ref, rtol=1e-12, atol=1e-14)
  rng = np.random.default_rng(0)
  w = rng.uniform(0.1, 2.0, size=none.shape)
  where = rng.uniform(size=none.shape) > 0.3
  mean = float(spec.fn(*args, weights=w, where=where))
  np.testing.assert_allclose(mean, np.sum(w * ref * where) / np.sum(w * where), rtol=1e-12)
  total = float(spec.fn(*args, weights=w, reduction="sum"))
  np.testing.assert_allclose(total, np.sum(w * ref), rtol=1e-12)


@pytest.mark.runtime_checks
def test_negative_weights_raise_under_checkify():
  fn = lambda z, y: C.sigmoid_binary_cross_entropy(z, y, weights=np.array([2.0, -1.0]))
  err, val = checkify.checkify(fn, errors=checkify.user_checks)(np.zeros(2), np.ones(2))
  assert np.isnan(float(val))
  with pytest.raises(Exception, match="weights"):
    err.throw()
  fn2 = lambda z, y: C.softmax_cross_entropy_with_integer_labels(z, y, class_weights=np.array([1.0, -1.0]))
  err2, _ = checkify.checkify(fn2, errors=checkify.user_checks)(np.zeros((2, 2)), np.array([0, 1]))
  with pytest.raises(Exception, match="class_weights"):
    err2.throw()


def test_bf16_computes_in_f32():
  for spec in C.SPECS:
    args = spec.sample(jax.random.key(3), jnp.bfloat16)
    assert spec.fn(*args).dtype == jnp.float32, spec.name
    assert spec.fn(*[jnp.asarray(a, jnp.float64) if i in spec.float_argnums else a
                     for i, a in enumerate(args)]).dtype == jnp.float64, spec.name


def test_exported_and_registered():
  for name in C.__all__:
    assert getattr(jaxloss, name) is getattr(C, name)
    assert jaxloss.REGISTRY[name].fn is getattr(C, name)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.5])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_focal_loss_confidently_right_has_finite_gradient_for_every_gamma(gamma, dtype):
  # sigma(-|z|) underflows to 0 at |z| = 120 in float32: q^(gamma - 1) must not turn into inf * 0.
  z = jnp.array([120.0, -120.0, 1e4, -1e4, jnp.inf, -jnp.inf], dtype)
  y = jnp.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], dtype)
  grad = jax.grad(lambda z: jaxloss.sigmoid_focal_loss(z, y, gamma=gamma, reduction="sum"))(z)
  # d/dz = alpha_t [(s - y) q^gamma + gamma c (1 - 2y) s sbar q^(gamma - 1)]; with q = sigma(-|z|):
  # = -/+ q^(gamma + 1) (1 + gamma c / q ...) -> magnitude at most (1 + gamma) q^gamma, in float64.
  q = np.exp(-np.abs(np.asarray(z, np.float64)))
  bound = (1.0 + gamma) * q**gamma * np.where(gamma == 0.0, q, 1.0)
  assert np.all(np.isfinite(grad))
  assert np.all(np.abs(np.asarray(grad, np.float64)) <= bound + np.finfo(dtype).tiny)


@pytest.mark.parametrize(
    "fn, preds, labels, message",
    [
        (jaxloss.binary_cross_entropy, [0.5, 0.5], [0.0, 2.0], "labels must lie in"),
        (jaxloss.categorical_cross_entropy, [[0.5, 0.5]], [[-1.0, 2.0]], "labels must be non-negative"),
        (jaxloss.softmax_cross_entropy, [[0.0, 0.0]], [[-1.0, 2.0]], "labels must be non-negative"),
    ],
)
@pytest.mark.runtime_checks
def test_invalid_soft_labels_are_nan_and_raise_under_checkify(fn, preds, labels, message):
  preds, labels = jnp.asarray(preds), jnp.asarray(labels)
  out = fn(preds, labels, reduction="none")
  assert np.isnan(np.asarray(out)).ravel()[-1]
  err, _ = checkify.checkify(jax.jit(fn), errors=checkify.user_checks)(preds, labels)
  with pytest.raises(checkify.JaxRuntimeError, match=message):
    err.throw()


@pytest.mark.runtime_checks
@pytest.mark.parametrize("fn", [C.sigmoid_binary_cross_entropy, C.sigmoid_focal_loss])
def test_sigmoid_losses_flag_labels_outside_unit_interval(fn):
  z = np.array([0.3, -1.0, 2.0, 0.5])
  y = np.array([1.0, -0.1, 1.5, np.nan])
  rows = np.asarray(fn(z, y, reduction="none"))
  assert np.isfinite(rows[0]) and np.all(np.isnan(rows[1:])), rows
  err, _ = checkify.checkify(lambda a, b: fn(a, b), errors=checkify.user_checks)(z, y)
  assert "labels must lie in [0, 1]" in err.get()
  # masked elements are not checked
  ok = np.asarray(fn(z, y, where=np.array([True, False, False, False]), reduction="none"))
  assert np.isfinite(ok).all()
