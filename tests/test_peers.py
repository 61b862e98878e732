"""Parity with the real peers: jaxloss (native and compat) against torch.nn.functional and keras.losses.

Values and gradients, on random and edge inputs, in float64 (Keras runs on the JAX backend, see conftest.py, so its
gradients are jax.grad of the Keras function; PyTorch's are torch.autograd). Each test skips when its peer is not
installed (`pip install -e ".[test,peers]"` installs both). Where jaxloss's native convention differs from the peer
(reduction axis, label encoding, epsilon), the test states the mapping it relies on, as docs/coverage.md and
docs/conventions.md do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss.compat import keras as K
from jaxloss.compat import torch as T

RTOL, ATOL = 1e-12, 1e-12
RNG = np.random.default_rng(2026)


def _ours(fn, args, argnums):
  """jaxloss: value and the gradient of its sum with respect to ``argnums`` (one compiled program)."""

  def value_and_grads(*a):
    return fn(*a), jax.grad(lambda *b: jnp.sum(fn(*b)), argnums=argnums)(*a)

  value, grads = jax.jit(value_and_grads)(*[jnp.asarray(a) for a in args])
  return np.asarray(value), [np.asarray(g) for g in grads]


def _check(ours, theirs, rtol=RTOL, atol=ATOL, what=""):
  (v1, g1), (v2, g2) = ours, theirs
  np.testing.assert_allclose(v1, v2, rtol=rtol, atol=atol, err_msg=f"{what}: value")
  for i, (a, b) in enumerate(zip(g1, g2)):
    scale = max(1.0, float(np.max(np.abs(b[np.isfinite(b)]), initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale, err_msg=f"{what}: gradient {i}")


# ==========================================================================
# PyTorch
# ==========================================================================
@pytest.fixture(scope="module")
def torch():
  return pytest.importorskip("torch")


def _theirs_torch(torch, fn, args, argnums):
  ts = [torch.tensor(np.asarray(a), requires_grad=i in argnums) for i, a in enumerate(args)]
  value = fn(*ts)
  grads = torch.autograd.grad(value.sum(), [ts[i] for i in argnums])
  return value.detach().numpy(), [g.numpy() for g in grads]


def _parity_torch(torch, ours, theirs, args, argnums=(0,), what=""):
  _check(_ours(ours, args, argnums), _theirs_torch(torch, theirs, args, argnums), what=what)


def _probs(shape, lo=0.02, hi=0.98):
  return RNG.uniform(lo, hi, shape)


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_torch_bce_on_probabilities(torch):
  F = torch.nn.functional
  x, y = _probs((4, 5)), RNG.uniform(0, 1, (4, 5))
  edge_x = np.array([0.0, 1.0, 0.0, 1.0, 1e-300, 0.5])
  edge_y = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.5])
  w = RNG.uniform(0.5, 2.0, (4, 5))
  _parity_torch(torch, lambda a, b: T.binary_cross_entropy(a, b, reduction="none"),
                lambda a, b: F.binary_cross_entropy(a, b, reduction="none"), (x, y), (0, 1), "compat")
  _parity_torch(torch, lambda a: T.binary_cross_entropy(a, jnp.asarray(edge_y), reduction="none"),
                lambda a: F.binary_cross_entropy(a, torch.tensor(edge_y), reduction="none"), (edge_x,),
                what="compat, probabilities at 0 and 1 (log clamp -100, backward eps 1e-12)")
  _parity_torch(torch, lambda a, b: T.binary_cross_entropy(a, b, weight=jnp.asarray(w)),
                lambda a, b: F.binary_cross_entropy(a, b, weight=torch.tensor(w)), (x, y), (0, 1), "compat, weight")
  _parity_torch(torch, lambda a, b: jaxloss.binary_cross_entropy(a, b, reduction="none"),
                lambda a, b: F.binary_cross_entropy(a, b, reduction="none"), (x, y), (0, 1), "native")


def test_torch_bce_with_logits_multilabel_and_soft_margin(torch):
  F = torch.nn.functional
  z = 3 * RNG.standard_normal((4, 5))
  z[0, :4] = [40.0, -40.0, 700.0, -700.0]
  y = RNG.uniform(0, 1, (4, 5))
  pw = RNG.uniform(0.5, 3.0, (5,))
  _parity_torch(torch, lambda a, b: T.binary_cross_entropy_with_logits(a, b, pos_weight=jnp.asarray(pw),
                                                                       reduction="none"),
                lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=torch.tensor(pw), reduction="none"),
                (z, y), (0, 1), "compat, pos_weight")
  _parity_torch(torch, lambda a, b: jaxloss.sigmoid_binary_cross_entropy(a, b, reduction="none"),
                lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"), (z, y), (0, 1), "native")
  # docs/coverage.md: MultiLabelSoftMarginLoss = class mean of the sigmoid BCE; SoftMarginLoss = sigmoid BCE
  # on (y + 1) / 2 for labels y in {-1, +1}
  y01 = (RNG.uniform(0, 1, (4, 5)) < 0.5).astype(np.float64)
  _parity_torch(torch, lambda a: jaxloss.sigmoid_binary_cross_entropy(a, jnp.asarray(y01), reduction="none").mean(-1),
                lambda a: F.multilabel_soft_margin_loss(a, torch.tensor(y01), reduction="none"), (z,),
                what="MultiLabelSoftMarginLoss")
  ypm = 2 * y01 - 1
  _parity_torch(torch, lambda a: jaxloss.sigmoid_binary_cross_entropy(a, jnp.asarray((ypm + 1) / 2),
                                                                      reduction="none"),
                lambda a: F.soft_margin_loss(a, torch.tensor(ypm), reduction="none"), (z,), what="SoftMarginLoss")


def test_torch_cross_entropy_and_nll(torch):
  F = torch.nn.functional
  z = 2 * RNG.standard_normal((6, 4))
  z[1, 2] = -np.inf  # a masked class (not the label)
  labels = np.array([0, 3, 1, 2, -100, 3])
  w = RNG.uniform(0.5, 2.0, (4,))
  tl, tw = torch.tensor(labels), torch.tensor(w)
  jl, jw = jnp.asarray(labels), jnp.asarray(w)
  for reduction in ("none", "mean"):  # "mean": the summed class weights of the non-ignored labels
    _parity_torch(torch, lambda a: T.cross_entropy(a, jl, weight=jw, reduction=reduction),
                  lambda a: F.cross_entropy(a, tl, weight=tw, reduction=reduction), (z,), what=f"compat {reduction}")
  finite = np.where(np.isfinite(z), z, 0.0)
  _parity_torch(torch, lambda a: T.cross_entropy(a, jl, weight=jw, label_smoothing=0.1),
                lambda a: F.cross_entropy(a, tl, weight=tw, label_smoothing=0.1), (finite,), what="compat smoothing")
  valid = labels >= 0
  _parity_torch(torch, lambda a: jaxloss.softmax_cross_entropy_with_integer_labels(a, jl[valid], reduction="none"),
                lambda a: F.cross_entropy(a, tl[valid], reduction="none"), (z[valid],), what="native, -inf logit")
  _parity_torch(torch, lambda a: jaxloss.softmax_cross_entropy_with_integer_labels(a, jl[valid], label_smoothing=0.1,
                                                                                   reduction="none"),
                lambda a: F.cross_entropy(a, tl[valid], label_smoothing=0.1, reduction="none"), (finite[valid],),
                what="native, label smoothing (eps / C on every class in both)")
  soft = _probs((6, 4))
  soft /= soft.sum(-1, keepdims=True)
  _parity_torch(torch, lambda a, b: jaxloss.softmax_cross_entropy(a, b, reduction="none"),
                lambda a, b: F.cross_entropy(a, b, reduction="none"), (finite, soft), (0, 1), "native, soft labels")
  logp = _log_softmax(finite)
  _parity_torch(torch, lambda a: T.nll_loss(a, jl, weight=jw), lambda a: F.nll_loss(a, tl, weight=tw), (logp,),
                what="compat nll_loss")


@pytest.mark.filterwarnings("ignore:reduction.*'mean' divides the total loss:UserWarning")
def test_torch_kl_div(torch):
  F = torch.nn.functional
  logp = _log_softmax(RNG.standard_normal((3, 5)))
  t = _probs((3, 5))
  t[0, 1] = 0.0  # a zero target: 0 log 0 = 0
  t /= t.sum(-1, keepdims=True)
  for reduction in ("batchmean", "mean"):
    _parity_torch(torch, lambda a: T.kl_div(a, jnp.asarray(t), reduction=reduction),
                  lambda a: F.kl_div(a, torch.tensor(t), reduction=reduction), (logp,), what=f"compat {reduction}")
  logt = _log_softmax(RNG.standard_normal((3, 5)))  # log-space distributions (jaxloss NaNs rows that are not)
  _parity_torch(torch, lambda a, b: T.kl_div(a, b, reduction="batchmean", log_target=True),
                lambda a, b: F.kl_div(a, b, reduction="batchmean", log_target=True), (logp, logt), (0, 1),
                "compat log_target")
  _parity_torch(torch, lambda a: jaxloss.kl_divergence(a, jnp.asarray(t), reduction="none"),
                lambda a: F.kl_div(a, torch.tensor(t), reduction="none").sum(-1), (logp,), what="native (row sums)")
  _parity_torch(torch, lambda a, b: jaxloss.kl_divergence_with_log_targets(a, b, reduction="none"),
                lambda a, b: F.kl_div(a, b, reduction="none", log_target=True).sum(-1), (logp, logt), (0, 1),
                "native, log targets")


def test_torch_elementwise_regression(torch):
  F = torch.nn.functional
  p, y = RNG.standard_normal((4, 6)), RNG.standard_normal((4, 6))
  p[0, :4] = y[0, :4] + np.array([0.0, 0.5, -0.7, 1e-9])  # zero residual, and residuals at beta / delta
  cases = [
      ("mse compat", lambda a, b: T.mse_loss(a, b, reduction="none"), lambda a, b: F.mse_loss(a, b, reduction="none")),
      ("mse native", lambda a, b: jaxloss.squared_error(a, b, reduction="none"),
       lambda a, b: F.mse_loss(a, b, reduction="none")),
      ("l1 compat", lambda a, b: T.l1_loss(a, b, reduction="none"), lambda a, b: F.l1_loss(a, b, reduction="none")),
      ("l1 native", lambda a, b: jaxloss.absolute_error(a, b, reduction="none"),
       lambda a, b: F.l1_loss(a, b, reduction="none")),
      ("l2_loss = mse / 2", lambda a, b: jaxloss.l2_loss(a, b, reduction="none"),
       lambda a, b: F.mse_loss(a, b, reduction="none") / 2),
  ]
  for beta in (0.5, 0.0):
    cases += [
        (f"smooth_l1 compat beta={beta}", lambda a, b, beta=beta: T.smooth_l1_loss(a, b, beta=beta, reduction="none"),
         lambda a, b, beta=beta: F.smooth_l1_loss(a, b, beta=beta, reduction="none")),
        (f"smooth_l1 native beta={beta}",
         lambda a, b, beta=beta: jaxloss.smooth_l1_loss(a, b, beta=beta, reduction="none"),
         lambda a, b, beta=beta: F.smooth_l1_loss(a, b, beta=beta, reduction="none")),
    ]
  for delta in (0.7,):
    cases += [
        (f"huber compat delta={delta}", lambda a, b, d=delta: T.huber_loss(a, b, delta=d, reduction="none"),
         lambda a, b, d=delta: F.huber_loss(a, b, delta=d, reduction="none")),
        (f"huber native delta={delta}", lambda a, b, d=delta: jaxloss.huber_loss(a, b, delta=d, reduction="none"),
         lambda a, b, d=delta: F.huber_loss(a, b, delta=d, reduction="none")),
    ]
  for what, ours, theirs in cases:
    _parity_torch(torch, ours, theirs, (p, y), (0, 1), what)


def test_torch_poisson_nll(torch):
  F = torch.nn.functional
  r = RNG.standard_normal((3, 4))
  rate = np.exp(r)
  y = RNG.poisson(2.0, (3, 4)).astype(np.float64)
  y[0, :3] = [0.0, 1.0, 0.5]
  for log_input, x in ((True, r), (False, rate)):
    for full in (False, True):
      _parity_torch(torch, lambda a, li=log_input, f=full: T.poisson_nll_loss(a, jnp.asarray(y), log_input=li, full=f,
                                                                              reduction="none"),
                    lambda a, li=log_input, f=full: F.poisson_nll_loss(a, torch.tensor(y), log_input=li, full=f,
                                                                       reduction="none"),
                    (x,), what=f"compat log_input={log_input} full={full}")
  _parity_torch(torch, lambda a, b: jaxloss.poisson_nll(a, b, reduction="none"),
                lambda a, b: F.poisson_nll_loss(a, b, log_input=True, full=False, reduction="none"), (r, y), (0, 1),
                "native log-rate")
  # the rate option is PyTorch's log_input=False without its eps
  _parity_torch(torch, lambda a, b: jaxloss.poisson_nll(a, b, log_input=False, reduction="none"),
                lambda a, b: F.poisson_nll_loss(a, b, log_input=False, full=False, eps=0.0, reduction="none"),
                (rate, y), (0, 1), "native rate")


def test_torch_gaussian_nll(torch):
  F = torch.nn.functional
  mu, y = RNG.standard_normal((2, 3, 4))
  var = RNG.uniform(0.1, 3.0, (3, 4))
  tiny = var.copy()
  tiny[0, :2] = [1e-9, 0.0]  # below eps = 1e-6: clamped, gradient passed as the identity
  for v, full in ((var, False), (tiny, True)):
    _parity_torch(torch, lambda a, b, c, f=full: T.gaussian_nll_loss(a, b, c, full=f, reduction="none"),
                  lambda a, b, c, f=full: F.gaussian_nll_loss(a, b, c, full=f, reduction="none"),
                  (mu, y, v), (0, 1, 2), f"compat full={full}")
  _parity_torch(torch, lambda a, b, c: jaxloss.gaussian_nll(a, b, c, full=True, reduction="none"),
                lambda a, b, c: F.gaussian_nll_loss(a, b, c, full=True, reduction="none"), (mu, y, var), (0, 1, 2),
                "native (variances above eps)")


# ==========================================================================
# Keras 3 (JAX backend)
# ==========================================================================
@pytest.fixture(scope="module")
def keras():
  keras = pytest.importorskip("keras")
  if keras.backend.backend() != "jax":
    pytest.skip(f"Keras runs on the {keras.backend.backend()} backend; these tests need KERAS_BACKEND=jax")
  return keras


# Keras 3.15's ``ops.mean`` on the JAX backend computes in ``result_type(x.dtype, "float32")``, which Keras's
# dtype lattice makes float32 for a float64 ``x``: every Keras loss that means over the last axis (BCE, MSE, MAE,
# MSLE, MAPE, Poisson, Huber, log-cosh, hinge, focal) is float32-accurate on float64 inputs (pinned by
# test_keras_mean_is_float32_accurate_on_float64 below). Those are compared to a few float32 roundings of the
# mean (n = 5 terms); the losses that sum over the axis (categorical CE, KL, categorical hinge) to float64.
KERAS_MEAN_RTOL = 2.0**-20


def _parity_keras(ours, theirs, args, argnums=(1,), what="", keras_mean=False):
  """Both sides are JAX functions of ``(y_true, y_pred, ...)``: values and jax.grad."""
  tol = KERAS_MEAN_RTOL if keras_mean else RTOL
  _check(_ours(ours, args, argnums), _ours(theirs, args, argnums), rtol=tol, atol=tol, what=what)


def test_keras_mean_is_float32_accurate_on_float64(keras):
  x = np.array([[1.3, 0.4]])
  got = np.asarray(keras.ops.mean(jnp.asarray(x), axis=-1))
  assert got.dtype == np.float64
  in_float32 = x.astype(np.float32).mean(-1, dtype=np.float32)  # 0.84999996
  assert got[0] == in_float32[0] != np.mean(x)  # if Keras fixes this, tighten KERAS_MEAN_RTOL to RTOL


def test_keras_probability_losses_match_compat(keras):
  L = keras.losses
  y = RNG.uniform(0, 1, (4, 5))
  p = _probs((4, 5))
  p[0, :3] = [0.0, 1.0, 1e-9]  # clipped to [1e-7, 1 - 1e-7]: zero gradient there
  for ls in (0.0, 0.2):
    _parity_keras(lambda a, b, s=ls: K.binary_crossentropy(a, b, label_smoothing=s),
                  lambda a, b, s=ls: L.binary_crossentropy(a, b, label_smoothing=s), (y, p), (0, 1), f"bce ls={ls}",
                  keras_mean=True)
  z = 3 * RNG.standard_normal((4, 5))
  _parity_keras(lambda a, b: K.binary_crossentropy(a, b, from_logits=True),
                lambda a, b: L.binary_crossentropy(a, b, from_logits=True), (y, z), (0, 1), "bce logits",
                keras_mean=True)
  onehot = np.eye(5)[RNG.integers(0, 5, 4)]
  unnormalized = 3 * _probs((4, 5))  # Keras normalizes y_pred over the axis
  for ls in (0.0, 0.1):
    _parity_keras(lambda a, b, s=ls: K.categorical_crossentropy(a, b, label_smoothing=s),
                  lambda a, b, s=ls: L.categorical_crossentropy(a, b, label_smoothing=s), (onehot, unnormalized),
                  what=f"cce ls={ls}")
  _parity_keras(lambda a, b: K.categorical_crossentropy(a, b, from_logits=True),
                lambda a, b: L.categorical_crossentropy(a, b, from_logits=True), (onehot, z), what="cce logits")
  labels = RNG.integers(0, 5, 4)
  sparse_probs = _probs((4, 5))
  sparse_probs /= sparse_probs.sum(-1, keepdims=True)
  for from_logits, x in ((False, sparse_probs), (True, z)):
    _parity_keras(lambda b, fl=from_logits: K.sparse_categorical_crossentropy(jnp.asarray(labels), b, from_logits=fl),
                  lambda b, fl=from_logits: L.sparse_categorical_crossentropy(jnp.asarray(labels), b, from_logits=fl),
                  (x,), (0,), f"sparse cce from_logits={from_logits}")
  t = _probs((4, 5))
  t[0, 1] = 0.0  # clipped to 1e-7 by Keras
  _parity_keras(K.kl_divergence, L.kl_divergence, (t, sparse_probs), (0, 1), "kl")


def test_keras_regression_losses_match_compat(keras):
  L = keras.losses
  y, p = RNG.standard_normal((2, 4, 5))
  _parity_keras(K.mean_squared_error, L.mean_squared_error, (y, p), (0, 1), "mse", keras_mean=True)
  _parity_keras(K.mean_absolute_error, L.mean_absolute_error, (y, p), (0, 1), "mae", keras_mean=True)
  # below 1e-7 Keras floors: negative and zero values score as 1e-7, with zero gradient
  ya, pa = RNG.uniform(0, 5, (2, 4, 5))
  ya[0, :3], pa[0, :3] = [0.0, -0.5, 1e-9], [-2.0, 0.0, 3.0]
  _parity_keras(K.mean_squared_logarithmic_error, L.mean_squared_logarithmic_error, (ya, pa), (0, 1), "msle",
                keras_mean=True)
  yz = y.copy()
  yz[0, :2] = [0.0, 1e-9]  # a zero target divides by 1e-7
  _parity_keras(K.mean_absolute_percentage_error, L.mean_absolute_percentage_error, (yz, p), (0, 1), "mape",
                keras_mean=True)
  rate = RNG.uniform(0.0, 4.0, (4, 5))
  rate[0, 0] = 0.0
  counts = RNG.poisson(2.0, (4, 5)).astype(np.float64)
  _parity_keras(K.poisson, L.poisson, (counts, rate), (0, 1), "poisson", keras_mean=True)


def test_keras_regression_losses_match_native(keras):
  L = keras.losses
  ya, pa = RNG.uniform(0.01, 5, (2, 4, 5))  # above Keras's 1e-7 floor, where MSLE has no clip
  _parity_keras(lambda a, b: jaxloss.mean_squared_logarithmic_error(b, a, reduction="none").mean(-1),
                L.mean_squared_logarithmic_error, (ya, pa), (0, 1), "native msle", keras_mean=True)
  y = RNG.uniform(0.5, 3, (4, 5)) * RNG.choice([-1.0, 1.0], (4, 5))
  p = y + RNG.standard_normal((4, 5))
  y[0, :2] = [0.0, 1e-9]
  _parity_keras(lambda a, b: jaxloss.mean_absolute_percentage_error(b, a, epsilon=1e-7, reduction="none").mean(-1),
                L.mean_absolute_percentage_error, (y, p), (0, 1), "native mape, epsilon=1e-7", keras_mean=True)
  # Keras's poisson takes the rate and adds 1e-7 in the log: keras(l) = native_rate(l + 1e-7) - 1e-7
  rate = RNG.uniform(0.0, 4.0, (4, 5))
  counts = RNG.poisson(2.0, (4, 5)).astype(np.float64)
  _parity_keras(lambda a, b: (jaxloss.poisson_nll(b + 1e-7, a, log_input=False, reduction="none") - 1e-7).mean(-1),
                L.poisson, (counts, rate), (0, 1), "native poisson, rate input", keras_mean=True)
  yr, pr = RNG.standard_normal((2, 4, 5))
  pr[0, :3] = yr[0, :3] + np.array([1.0, -60.0, 400.0])
  _parity_keras(lambda a, b: jaxloss.huber_loss(b, a, delta=0.8, reduction="none").mean(-1),
                lambda a, b: L.huber(a, b, delta=0.8), (yr, pr), (0, 1), "native huber", keras_mean=True)
  _parity_keras(lambda a, b: jaxloss.log_cosh(b, a, reduction="none").mean(-1), L.log_cosh, (yr, pr), (0, 1),
                "native log_cosh", keras_mean=True)


def test_keras_focal_and_hinge_losses_match_native(keras):
  L = keras.losses
  z = 2 * RNG.standard_normal((4, 5))
  y = (RNG.uniform(0, 1, (4, 5)) < 0.5).astype(np.float64)
  _parity_keras(lambda a, b: jaxloss.sigmoid_focal_loss(b, a, gamma=2.0, reduction="none").mean(-1),
                lambda a, b: L.binary_focal_crossentropy(a, b, gamma=2.0, from_logits=True), (y, z), (1,),
                "binary focal, no class balancing", keras_mean=True)
  _parity_keras(lambda a, b: jaxloss.sigmoid_focal_loss(b, a, alpha=0.25, gamma=1.5, reduction="none").mean(-1),
                lambda a, b: L.binary_focal_crossentropy(a, b, apply_class_balancing=True, alpha=0.25, gamma=1.5,
                                                         from_logits=True), (y, z), (1,), "binary focal, alpha",
                keras_mean=True)
  # hinge: Keras maps 0/1 labels to -1/+1
  for ours, theirs in ((jaxloss.hinge_loss, L.hinge), (jaxloss.squared_hinge_loss, L.squared_hinge)):
    _parity_keras(lambda a, b, f=ours: f(b, 2 * a - 1, reduction="none").mean(-1), theirs, (y, z), (1,),
                  theirs.__name__, keras_mean=True)


def test_keras_categorical_hinge_is_multiclass_hinge_when_a_wrong_score_is_nonnegative(keras):
  L = keras.losses
  s = RNG.uniform(0.0, 2.0, (6, 4))
  labels = RNG.integers(0, 4, 6)
  onehot = np.eye(4)[labels]
  _parity_keras(lambda a, b: jaxloss.multiclass_hinge_loss(b, jnp.asarray(labels), reduction="none"),
                L.categorical_hinge, (onehot, s), (1,), "categorical hinge, nonnegative scores")
  # every wrong score negative: Keras's max over (1 - y) * s sees the true class as a 0 (docs/conventions.md)
  s_neg = np.array([[-5.0, -3.0]])
  keras_value = float(L.categorical_hinge(np.array([[1.0, 0.0]]), s_neg)[0])
  native = float(jaxloss.multiclass_hinge_loss(jnp.asarray(s_neg), jnp.array([0])))
  assert (keras_value, native) == (6.0, 3.0)  # max(0 - (-5) + 1, 0) and max(0, 1 + (-3) - (-5))
