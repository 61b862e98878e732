"""jaxloss.compat.keras / .torch against numbers written from the libraries' documented formulas.

The references below are NumPy float64 transcriptions of Keras 3's and PyTorch's
formulas (and of PyTorch's backward formulas where the forward clamps); none of
them calls jaxloss. The seed numbers of issue 7 are pinned as literals.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from jaxloss.compat import keras as K
from jaxloss.compat import torch as T

RNG = np.random.default_rng(7)


def grad(fn, argnum=0):
  return jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=argnum)


def np_log_softmax(x, axis):
  m = x.max(axis=axis, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# =============================================================== Keras
class TestKeras:

  @pytest.mark.parametrize("dtype, cap", [(np.float64, 16.11809565), (np.float32, 15.942385)])
  def test_bce_clip_cap_and_zero_gradient(self, dtype, cap):
    # A prediction of 8 (or exactly 1) is clipped to 1 - 1e-7 rounded to the dtype.
    y = np.zeros((1, 3), dtype)
    p = np.array([[8.0, 1.0, 1.0 + 1e-3]], dtype)
    expected = -np.log(dtype(1.0) - dtype(1.0 - 1e-7))
    np.testing.assert_allclose(expected, cap, rtol=1e-7)  # the documented cap itself
    loss = K.binary_crossentropy(y, p)
    assert loss.dtype == dtype and loss.shape == (1,)
    np.testing.assert_allclose(loss, [expected], rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(grad(lambda q: K.binary_crossentropy(y, q))(p), np.zeros((1, 3)))

  def test_bce_values_and_gradient(self):
    y, p = RNG.uniform(0, 1, (4, 5)), RNG.uniform(0.01, 0.99, (4, 5))
    p[0, :2] = [0.0, 1.0]  # clipped to eps, 1 - eps
    eps = 1e-7
    for ls in (0.0, 0.2):
      ys = y * (1 - ls) + 0.5 * ls
      pc = np.clip(p, eps, 1 - eps)
      ref = -(ys * np.log(pc) + (1 - ys) * np.log(1 - pc)).mean(-1)
      np.testing.assert_allclose(K.binary_crossentropy(y, p, label_smoothing=ls), ref, rtol=1e-12)
      inside = (p > eps) & (p < 1 - eps)
      dref = np.where(inside, (pc - ys) / (pc * (1 - pc)), 0.0) / 5
      np.testing.assert_allclose(grad(lambda q: K.binary_crossentropy(y, q, label_smoothing=ls))(p), dref, rtol=1e-9)
    z = 4 * RNG.standard_normal((4, 5))
    sig = 1 / (1 + np.exp(-z))
    ref = -(y * np.log(sig) + (1 - y) * np.log(1 - sig)).mean(-1)
    np.testing.assert_allclose(K.binary_crossentropy(y, z, from_logits=True), ref, rtol=1e-10)
    # axis: the mean runs over the given axis
    np.testing.assert_allclose(K.binary_crossentropy(y, z, from_logits=True, axis=0),
                               -(y * np.log(sig) + (1 - y) * np.log(1 - sig)).mean(0), rtol=1e-10)

  def test_categorical_normalizes(self):
    y = np.array([0.0, 1.0])
    a = K.categorical_crossentropy(y, np.array([0.2, 0.8]))
    b = K.categorical_crossentropy(y, np.array([2.0, 8.0]))
    np.testing.assert_allclose(a, -math.log(0.8), rtol=1e-12)
    np.testing.assert_allclose(b, a, rtol=1e-12)

  def test_categorical_seed_0458(self):
    y_true = np.array([[0.0, 1.0], [1.0, 0.0]])
    y_pred = np.array([[0.5, 0.5], [0.8, 0.2]])
    per_sample = K.categorical_crossentropy(y_true, y_pred)
    np.testing.assert_allclose(per_sample, [math.log(2), -math.log(0.8)], rtol=1e-12)
    mean = K.categorical_crossentropy(y_true, y_pred, reduction="sum_over_batch_size")
    np.testing.assert_allclose(mean, 0.4581453659370776, rtol=1e-12)
    assert round(float(mean), 3) == 0.458
    np.testing.assert_allclose(K.categorical_crossentropy(y_true, y_pred, reduction="mean"), mean, rtol=1e-15)
    np.testing.assert_allclose(K.categorical_crossentropy(y_true, y_pred, reduction="sum"), 2 * mean, rtol=1e-12)

  def test_categorical_smoothing_clip_and_logits(self):
    y = np.eye(4)[[0, 2, 3]]
    q = RNG.uniform(0, 3, (3, 4))
    q[1, 1] = 0.0  # clipped to eps after normalization
    for ls in (0.0, 0.3):
      ys = y * (1 - ls) + ls / 4
      pn = np.clip(q / q.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
      np.testing.assert_allclose(K.categorical_crossentropy(y, q, label_smoothing=ls),
                                 -(ys * np.log(pn)).sum(-1), rtol=1e-12)
    z = 3 * RNG.standard_normal((3, 4))
    np.testing.assert_allclose(K.categorical_crossentropy(y, z, from_logits=True),
                               -(y * np_log_softmax(z, -1)).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(K.categorical_crossentropy(y.T, z.T, from_logits=True, axis=0),
                               -(y * np_log_softmax(z, -1)).sum(-1), rtol=1e-12)

  def test_sparse_categorical(self):
    q = RNG.uniform(0.1, 3, (3, 4))
    labels = np.array([0, 2, 3])
    pn = np.clip(q / q.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
    ref = -np.log(pn[np.arange(3), labels])
    np.testing.assert_allclose(K.sparse_categorical_crossentropy(labels, q), ref, rtol=1e-12)
    np.testing.assert_allclose(K.sparse_categorical_crossentropy(labels[:, None], q), ref, rtol=1e-12)
    got = K.sparse_categorical_crossentropy(labels, q, ignore_class=2)
    np.testing.assert_allclose(got, np.where(labels == 2, 0.0, ref), rtol=1e-12)
    assert np.all(np.isfinite(grad(lambda a: K.sparse_categorical_crossentropy(labels, a, ignore_class=2))(q)))
    z = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(K.sparse_categorical_crossentropy(labels, z, from_logits=True),
                               -np_log_softmax(z, -1)[np.arange(3), labels], rtol=1e-12)

  def test_regression_and_kl(self):
    y, p = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    np.testing.assert_allclose(K.mean_squared_error(y, p), ((y - p) ** 2).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(K.mean_absolute_error(y, p), np.abs(y - p).mean(-1), rtol=1e-12)
    t = np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0]])
    q = np.array([[0.2, 0.3, 0.5], [0.0, 0.6, 0.4]])
    tc, qc = np.clip(t, 1e-7, 1), np.clip(q, 1e-7, 1)
    np.testing.assert_allclose(K.kl_divergence(t, q), (tc * np.log(tc / qc)).sum(-1), rtol=1e-12)

  def test_msle_mape_poisson_epsilon_conventions(self):
    eps = 1e-7
    y = np.array([[0.0, 2.0, -1.0, 3.0], [1e-9, 0.5, 4.0, 1.0]])
    p = np.array([[-0.5, 2.5, 1.0, 0.0], [3.0, 0.5, 1e-12, 2.0]])
    # MSLE: both floored at eps before log(x + 1); a floored prediction has zero gradient
    ref = ((np.log(np.maximum(p, eps) + 1) - np.log(np.maximum(y, eps) + 1)) ** 2).mean(-1)
    np.testing.assert_allclose(K.mean_squared_logarithmic_error(y, p), ref, rtol=1e-12)
    g = grad(lambda q: K.mean_squared_logarithmic_error(y, q))(p)
    dref = 2 * (np.log(np.maximum(p, eps) + 1) - np.log(np.maximum(y, eps) + 1)) / (p + 1) / 4
    np.testing.assert_allclose(g, np.where(p > eps, dref, 0.0), rtol=1e-12)
    # MAPE: x100, |y| floored at eps: a zero target costs 1e9 |p|
    ref = 100 * (np.abs(y - p) / np.maximum(np.abs(y), eps)).mean(-1)
    np.testing.assert_allclose(K.mean_absolute_percentage_error(y, p), ref, rtol=1e-12)
    assert float(K.mean_absolute_percentage_error(np.zeros((1, 1)), np.full((1, 1), 0.5))[0]) == pytest.approx(5e8)
    # Poisson on the rate, eps inside the log
    counts = np.abs(np.round(y * 3))
    rate = np.abs(p)
    np.testing.assert_allclose(K.poisson(counts, rate), (rate - counts * np.log(rate + eps)).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(grad(lambda q: K.poisson(counts, q))(rate), (1 - counts / (rate + eps)) / 4,
                               rtol=1e-12)

  def test_argument_order_and_errors(self):
    # (y_true, y_pred): the prediction is the second argument, the clipped one.
    assert float(K.binary_crossentropy(np.array([1.0]), np.array([0.5]))) == pytest.approx(math.log(2), rel=1e-12)
    with pytest.raises(ValueError, match="y_true and y_pred must have the same shape"):
      K.binary_crossentropy(np.zeros((3,)), np.zeros((3, 1)))
    with pytest.raises(TypeError, match="y_pred"):
      K.mean_squared_error(np.zeros(3), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="reduction"):
      K.mean_squared_error(np.zeros(3), np.zeros(3), reduction="batchmean")


# =============================================================== PyTorch
def torch_bce_grad_input(x, y, w=1.0):
  # ATen binary_cross_entropy_backward: (x - y) / max((1 - x) x, EPSILON), EPSILON = 1e-12f.
  return w * (x - y) / np.maximum((1 - x) * x, float(np.float32(1e-12)))


class TestTorch:

  def test_bce_clamp_values_and_torch_backward(self):
    x = np.array([0.0, 0.0, 1.0, 1.0, 1e-30, 0.3, 0.9])
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.3, 0.2])
    clog = lambda v: np.maximum(np.log(np.where(v > 0, v, 1e-300)), -100.0)
    ref = -(y * clog(x) + (1 - y) * clog(1 - x))
    np.testing.assert_allclose(ref[:3], [0.0, 100.0, 100.0])
    np.testing.assert_allclose(T.binary_cross_entropy(x, y, reduction="none"), ref, rtol=1e-12)
    np.testing.assert_allclose(T.binary_cross_entropy(x, y), ref.mean(), rtol=1e-12)
    g = grad(lambda a: T.binary_cross_entropy(a, y, reduction="sum"))(x)
    np.testing.assert_allclose(g, torch_bce_grad_input(x, y), rtol=1e-12)
    np.testing.assert_allclose(g[1], -1000000003995.8029, rtol=1e-15)  # -1 / float32(1e-12), as torch 2.13 gives
    gy = grad(lambda b: T.binary_cross_entropy(x[5:], b, reduction="sum"))(y[5:])
    np.testing.assert_allclose(gy, -np.log(x[5:] / (1 - x[5:])), rtol=1e-12)

  def test_bce_weight_rescales_mean(self):
    x, y = RNG.uniform(0.05, 0.95, (4, 3)), RNG.uniform(0, 1, (4, 3))
    w = np.array([0.5, 2.0, 1.0])
    ref = -w * (y * np.log(x) + (1 - y) * np.log(1 - x))
    np.testing.assert_allclose(T.binary_cross_entropy(x, y, weight=w), ref.sum() / 12, rtol=1e-12)
    np.testing.assert_allclose(grad(lambda a: T.binary_cross_entropy(a, y, weight=w))(x),
                               torch_bce_grad_input(x, y, w) / 12, rtol=1e-10)

  @pytest.mark.runtime_checks
  def test_bce_out_of_range_is_nan_and_checkify(self):
    x = np.array([0.5, 1.5])
    assert np.isnan(T.binary_cross_entropy(x, np.array([1.0, 1.0]), reduction="none")[1])
    err, _ = checkify.checkify(T.binary_cross_entropy, errors=checkify.user_checks)(x, np.array([1.0, 1.0]))
    with pytest.raises(Exception, match="input must lie in"):
      err.throw()

  def test_bce_with_logits_pos_weight(self):
    z, y = 4 * RNG.standard_normal((4, 3)), RNG.uniform(0, 1, (4, 3))
    w, pw = np.array([[1.0], [2.0], [0.5], [1.0]]), np.array([1.0, 3.0, 0.25])
    sig = 1 / (1 + np.exp(-z))
    ref = -w * (pw * y * np.log(sig) + (1 - y) * np.log(1 - sig))
    np.testing.assert_allclose(T.binary_cross_entropy_with_logits(z, y, weight=w, pos_weight=pw, reduction="none"),
                               ref, rtol=1e-10)
    dz = w * ((1 + (pw - 1) * y) * sig - pw * y)
    np.testing.assert_allclose(grad(lambda a: T.binary_cross_entropy_with_logits(a, y, weight=w, pos_weight=pw,
                                                                                 reduction="sum"))(z), dz, rtol=1e-10)

  def test_bce_with_logits_saturated_gradient_is_torchs(self):
    """PyTorch's backward sigma(x) - y: accurate at y = 0, x << 0 (autodiff of the forward cancels there)."""
    import torch  # pylint: disable=g-import-not-at-top

    x = np.array([-30.0, -17.0, 17.0, 30.0, 0.5], np.float32)
    y = np.array([0.0, 0.0, 1.0, 1.0, 0.3], np.float32)
    for pw in (None, np.array([2.0, 0.5, 3.0, 1.0, 1.5], np.float32)):
      xt = torch.tensor(x, requires_grad=True)
      torch.nn.functional.binary_cross_entropy_with_logits(
          xt, torch.tensor(y), pos_weight=None if pw is None else torch.tensor(pw), reduction="sum").backward()
      g = grad(lambda a, pw=pw: T.binary_cross_entropy_with_logits(a, jnp.asarray(y), pos_weight=pw,
                                                                     reduction="sum"))(jnp.asarray(x))
      np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), rtol=2e-6, atol=0)

  @staticmethod
  def ce_ref(x, t, w, ignore, ls, reduction):
    """PyTorch's class-index cross-entropy (cross_entropy_loss_label_smoothing), class dim 1."""
    C = x.shape[1]
    logp = np_log_softmax(x, 1)
    w = np.ones(C) if w is None else w
    valid = t != ignore
    ts = np.where(valid, t, 0)
    wt = np.where(valid, w[ts], 0.0)
    nll = -wt * np.take_along_axis(logp, ts[:, None], 1)[:, 0]
    smooth = np.where(valid, -(logp * w).sum(1), 0.0)
    per = (1 - ls) * nll + ls / C * smooth
    if reduction == "none":
      return per
    if reduction == "sum":
      return per.sum()
    return per.sum() / wt.sum()

  @pytest.mark.parametrize("weighted", [False, True])
  @pytest.mark.parametrize("ls", [0.0, 0.2])
  @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
  def test_cross_entropy_class_indices(self, weighted, ls, reduction):
    x = 2 * RNG.standard_normal((6, 4))
    t = np.array([0, 3, -100, 2, 1, 3])
    w = np.array([1.0, 2.0, 0.5, 3.0]) if weighted else None
    got = T.cross_entropy(x, t, weight=w, label_smoothing=ls, reduction=reduction)
    np.testing.assert_allclose(got, self.ce_ref(x, t, w, -100, ls, reduction), rtol=1e-12)
    assert np.all(np.asarray(grad(lambda a: T.cross_entropy(a, t, weight=w, label_smoothing=ls))(x))[2] == 0)

  def test_cross_entropy_mean_denominator_seed(self):
    # weighted mean divides by the summed weights of the non-ignored labels (here 2 + 3),
    # for the smoothing term too.
    x = np.zeros((3, 2))
    t = np.array([0, 1, -100])
    w = np.array([2.0, 3.0])
    expected = (2 * math.log(2) + 3 * math.log(2)) / 5 * 0.9 + 0.1 / 2 * 2 * (5 * math.log(2)) / 5
    np.testing.assert_allclose(T.cross_entropy(x, t, weight=w, label_smoothing=0.1), expected, rtol=1e-12)

  def test_cross_entropy_all_ignored_is_nan_with_zero_grad(self):
    x, t = RNG.standard_normal((2, 3)), np.array([-100, -100])
    assert np.isnan(T.cross_entropy(x, t))
    np.testing.assert_array_equal(grad(lambda a: T.cross_entropy(a, t))(x), np.zeros((2, 3)))

  def test_cross_entropy_nd_and_unbatched(self):
    x = RNG.standard_normal((2, 3, 5))
    t = np.array([[0, 1, 2, -100, 1], [2, 2, 0, 1, -100]])
    w = np.array([1.0, 0.5, 2.0])
    x2 = np.moveaxis(x, 1, -1).reshape(-1, 3)
    np.testing.assert_allclose(T.cross_entropy(x, t, weight=w, label_smoothing=0.2),
                               self.ce_ref(x2, t.reshape(-1), w, -100, 0.2, "mean"), rtol=1e-12)
    v = RNG.standard_normal(4)
    np.testing.assert_allclose(T.cross_entropy(v, np.array(2)), -np_log_softmax(v, 0)[2], rtol=1e-12)

  def test_cross_entropy_probability_targets(self):
    x = 2 * RNG.standard_normal((6, 4))
    y = RNG.dirichlet(np.ones(4), 6)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    ys = y * 0.75 + 0.25 / 4
    per = -(np_log_softmax(x, 1) * ys * w).sum(1)
    # the mean divides by the number of rows, not by the weights
    np.testing.assert_allclose(T.cross_entropy(x, y, weight=w, label_smoothing=0.25), per.mean(), rtol=1e-12)
    np.testing.assert_allclose(jax.grad(lambda b: T.cross_entropy(x, b, weight=w, label_smoothing=0.25))(y),
                               -np_log_softmax(x, 1) * w * 0.75 / 6, rtol=1e-12)

  @pytest.mark.runtime_checks
  def test_nll_loss(self):
    lp = np_log_softmax(RNG.standard_normal((5, 3)), 1)
    t = np.array([0, 2, -100, 1, 2])
    w = np.array([0.5, 1.0, 4.0])
    valid = t != -100
    wt = np.where(valid, w[np.where(valid, t, 0)], 0)
    per = -wt * lp[np.arange(5), np.where(valid, t, 0)]
    np.testing.assert_allclose(T.nll_loss(lp, t, weight=w), per.sum() / wt.sum(), rtol=1e-12)
    np.testing.assert_allclose(T.nll_loss(lp, t, weight=w, reduction="none"), per, rtol=1e-12)
    bad = np.array([0, 3, 1, 1, 1])
    assert np.isnan(T.nll_loss(lp, bad, reduction="none")[1])
    err, _ = checkify.checkify(T.nll_loss, errors=checkify.user_checks)(lp, bad)
    with pytest.raises(Exception, match="class index"):
      err.throw()

  def test_kl_div(self):
    lp = np_log_softmax(RNG.standard_normal((4, 3)), 1)
    y = RNG.dirichlet(np.ones(3), 4)
    y[0, 1] = 0.0
    pointwise = np.where(y > 0, y * (np.log(np.where(y > 0, y, 1)) - lp), 0.0)
    np.testing.assert_allclose(T.kl_div(lp, y, reduction="none"), pointwise, rtol=1e-12)
    np.testing.assert_allclose(T.kl_div(lp, y), pointwise.mean(), rtol=1e-12)  # over all elements
    np.testing.assert_allclose(T.kl_div(lp, y, reduction="batchmean"), pointwise.sum() / 4, rtol=1e-12)
    np.testing.assert_allclose(grad(lambda a: T.kl_div(a, y, reduction="sum"))(lp), -y, rtol=1e-12)
    lt = np.log(RNG.dirichlet(np.ones(3), 4))
    np.testing.assert_allclose(T.kl_div(lp, lt, log_target=True, reduction="sum"),
                               (np.exp(lt) * (lt - lp)).sum(), rtol=1e-12)
    np.testing.assert_allclose(grad(lambda b: T.kl_div(lp, b, log_target=True, reduction="sum"))(lt),
                               np.exp(lt) * (lt - lp + 1), rtol=1e-12)

  def test_regression_losses(self):
    x, t = 2 * RNG.standard_normal((5, 3)), 2 * RNG.standard_normal((5, 3))
    t[0, 0] = x[0, 0]
    d = x - t
    np.testing.assert_allclose(T.mse_loss(x, t), (d ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(T.l1_loss(x, t, reduction="sum"), np.abs(d).sum(), rtol=1e-12)
    np.testing.assert_array_equal(grad(lambda a: T.l1_loss(a, t, reduction="sum"))(x), np.sign(d))  # 0 at d = 0
    for beta in (1.0, 0.5):
      ref = np.where(np.abs(d) < beta, 0.5 * d ** 2 / beta, np.abs(d) - 0.5 * beta)
      np.testing.assert_allclose(T.smooth_l1_loss(x, t, beta=beta, reduction="none"), ref, rtol=1e-12)
      np.testing.assert_allclose(grad(lambda a: T.smooth_l1_loss(a, t, beta=beta, reduction="sum"))(x),
                                 np.where(np.abs(d) < beta, d / beta, np.sign(d)), rtol=1e-12)
    np.testing.assert_allclose(T.smooth_l1_loss(x, t, beta=0.0), np.abs(d).mean(), rtol=1e-12)
    for delta in (1.0, 2.5):
      ref = np.where(np.abs(d) < delta, 0.5 * d ** 2, delta * (np.abs(d) - 0.5 * delta))
      np.testing.assert_allclose(T.huber_loss(x, t, delta=delta, reduction="none"), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
      T.mse_loss(np.zeros((3,)), np.zeros((3, 1)))

  def test_poisson_nll(self):
    x = RNG.standard_normal((4, 3))
    y = RNG.poisson(3.0, (4, 3)).astype(float)
    y[0] = [0.0, 1.0, 2.0]
    np.testing.assert_allclose(T.poisson_nll_loss(x, y), (np.exp(x) - y * x).mean(), rtol=1e-12)
    stirling = np.where(y > 1, y * np.log(np.where(y > 1, y, 1)) - y + 0.5 * np.log(2 * np.pi * np.where(y > 1, y, 1)), 0)
    np.testing.assert_allclose(T.poisson_nll_loss(x, y, full=True, reduction="none"), np.exp(x) - y * x + stirling,
                               rtol=1e-12)
    r = np.abs(x) + 0.1
    np.testing.assert_allclose(T.poisson_nll_loss(r, y, log_input=False, eps=1e-8, reduction="sum"),
                               (r - y * np.log(r + 1e-8)).sum(), rtol=1e-12)
    np.testing.assert_allclose(grad(lambda a: T.poisson_nll_loss(a, y, reduction="sum"))(x), np.exp(x) - y, rtol=1e-12)

  def test_gaussian_nll_clamp_and_straight_through_grad(self):
    x, t = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    v = RNG.uniform(0.1, 2.0, (4, 3))
    v[0, :2] = [1e-9, 0.0]
    eps = 1e-6
    vc = np.maximum(v, eps)
    d2 = (x - t) ** 2
    ref = 0.5 * (np.log(vc) + d2 / vc)
    np.testing.assert_allclose(T.gaussian_nll_loss(x, t, v), ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(T.gaussian_nll_loss(x, t, v, full=True, reduction="sum"),
                               (ref + 0.5 * np.log(2 * np.pi)).sum(), rtol=1e-12)
    gx, gv = jax.grad(lambda a, b: T.gaussian_nll_loss(a, t, b, reduction="sum"), argnums=(0, 1))(x, v)
    np.testing.assert_allclose(gx, (x - t) / vc, rtol=1e-12)
    # torch clamps under no_grad: the clamped entries still get 0.5 (1/vc - d^2/vc^2), not 0
    np.testing.assert_allclose(gv, 0.5 * (1 / vc - d2 / vc ** 2), rtol=1e-12)
    assert gv[0, 0] != 0 and gv[0, 1] != 0
    # homoscedastic var shapes
    np.testing.assert_allclose(T.gaussian_nll_loss(x, t, v[:, 0]),
                               (0.5 * (np.log(vc[:, :1]) + d2 / vc[:, :1])).mean(), rtol=1e-12)
    np.testing.assert_allclose(T.gaussian_nll_loss(x, t, v[:, :1]), T.gaussian_nll_loss(x, t, v[:, 0]), rtol=1e-15)
    np.testing.assert_allclose(T.gaussian_nll_loss(x, t, 0.5), (0.5 * (np.log(0.5) + d2 / 0.5)).mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="var is of incorrect size"):
      T.gaussian_nll_loss(x, t, v[:2])
    assert np.isnan(T.gaussian_nll_loss(x, t, -(v + 1), reduction="none")).all()

  def test_bad_arguments(self):
    with pytest.raises(ValueError, match="reduction"):
      T.mse_loss(np.zeros(2), np.zeros(2), reduction="batchmean")
    with pytest.raises(TypeError, match="target"):
      T.cross_entropy(np.zeros((2, 3)), np.array([True, False]))
    with pytest.raises(ValueError, match="weight"):
      T.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(2))
    with pytest.raises(ValueError, match="target"):
      T.nll_loss(np.zeros((2, 3)), np.array([0, 1, 2]))


def test_target_gradient_at_zero_is_finite_where_torch_gives_nan():
  # documented difference: torch 2.13 gives NaN for both (xlogy / masked_fill backward at target 0)
  x = np.array([-1.0, -0.7])
  g = jax.grad(lambda t: T.kl_div(x, t, reduction="sum"))(np.array([0.0, 0.5]))
  np.testing.assert_allclose(g, [1.0, np.log(0.5) + 1 + 0.7], rtol=1e-12)
  r = np.array([0.1, 0.2])
  g = jax.grad(lambda t: T.poisson_nll_loss(r, t, full=True, log_input=True, reduction="sum"))(np.array([0.0, 3.0]))
  np.testing.assert_allclose(g, [-0.1, -0.2 + np.log(3.0) + 0.5 / 3.0], rtol=1e-12)
