"""Property-based tests (hypothesis): invariants that must hold for any input, not just sampled ones.

Each property compares jaxloss with something independent: a float64 NumPy
reference, the same loss at a transformed input, or a second loss that must
agree with it by definition. Shapes are fixed and the losses jitted, so the
examples share one compilation.
"""

import functools

import jax
import numpy as np
import scipy.special as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxloss

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
ROWS, CLASSES, N = 4, 8, 16
F32_EPS = float(np.finfo(np.float32).eps)


@st.composite
def logit_rows(draw):
  """float64 [ROWS, CLASSES] logits with ties, several scales and masked (-inf) classes; class 0 never masked."""
  scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e3]))
  base = draw(hnp.arrays(np.float64, (ROWS, CLASSES), elements=st.integers(-4, 4).map(float)))  # many ties
  noise = draw(hnp.arrays(np.float64, (ROWS, CLASSES), elements=st.floats(-1, 1)))
  z = (base + draw(st.sampled_from([0.0, 1.0])) * noise) * scale
  masked = draw(hnp.arrays(np.bool_, (ROWS, CLASSES)))
  masked[:, 0] = False
  return np.where(masked, -np.inf, z)


def _targets(z, draw):
  """Non-negative targets, zero on masked classes."""
  y = draw(hnp.arrays(np.float64, z.shape, elements=st.floats(0, 1)))
  return np.where(np.isneginf(z), 0.0, y)


@functools.partial(jax.jit, static_argnames="label_smoothing")
def _sce(z, y, label_smoothing=0.0):
  return jaxloss.softmax_cross_entropy(z, y, label_smoothing=label_smoothing, reduction="none")


@functools.partial(jax.jit, static_argnames="label_smoothing")
def _ice(z, labels, label_smoothing=0.0):
  return jaxloss.softmax_cross_entropy_with_integer_labels(z, labels, label_smoothing=label_smoothing,
                                                           reduction="none")


_sce_grad = jax.jit(jax.grad(lambda z, y: jaxloss.softmax_cross_entropy(z, y, reduction="sum")))
_huber = jax.jit(lambda r, d: jaxloss.huber_loss(r, 0 * r, delta=d, reduction="none"))
_sbce = jax.jit(lambda z, y: jaxloss.sigmoid_binary_cross_entropy(z, y, reduction="none"))
_bce = jax.jit(lambda p, y, w: jaxloss.binary_cross_entropy(p, y, where=w, reduction="none"))


def _reference(z, y):
  """float64 CE written without cancellation: -log p_j = (m - z_j) + log1p(sum_{k != argmax} e^{z_k - m}).

  (``scipy.special.log_softmax`` cancels on confident rows: log(1 + 7e-13) loses ~6 digits there.)
  """
  z = np.asarray(z, np.float64)
  with np.errstate(invalid="ignore", over="ignore"):
    top = np.argmax(z, axis=-1)[..., None]
    m = np.take_along_axis(z, top, axis=-1)
    e = np.exp(z - m)
    np.put_along_axis(e, top, 0.0, axis=-1)
    neg_log_p = (m - z) + np.log1p(np.sum(e, axis=-1, keepdims=True))
    return np.sum(np.where(y == 0, 0.0, y * neg_log_p), axis=-1)


@SETTINGS
@given(st.data())
def test_softmax_ce_matches_float64_reference(data):
  z = data.draw(logit_rows())
  y = _targets(z, data.draw)
  np.testing.assert_allclose(np.asarray(_sce(z, y)), _reference(z, y), rtol=1e-12, atol=1e-300)
  # float32, against the float64 loss of the same (rounded) inputs: each term y_j (m - z_j) carries the
  # rounding of m - z_j, so the bound scales with the logits' spread; float32 subnormals set the floor
  z32, y32 = z.astype(np.float32), y.astype(np.float32)
  ref = _reference(z32.astype(np.float64), y32.astype(np.float64))
  got = np.asarray(_sce(z32, y32)).astype(np.float64)
  spread = np.max(np.where(np.isinf(z32), 0.0, np.abs(z32)), axis=-1) + 1.0
  bound = 8 * F32_EPS * (np.abs(ref) + spread * y32.sum(-1, dtype=np.float64)) + 1e-38
  assert np.all(np.abs(got - ref) <= bound), (got, ref)


@SETTINGS
@given(st.data())
def test_softmax_ce_is_shift_invariant_per_row(data):
  z = data.draw(logit_rows())
  y = _targets(z, data.draw)
  shift = data.draw(hnp.arrays(np.float64, (ROWS, 1), elements=st.integers(-1000, 1000).map(float)))
  # an integer shift of these logits is exact in float64: both sides see the same row up to a constant
  np.testing.assert_allclose(np.asarray(_sce(z + shift, y)), np.asarray(_sce(z, y)), rtol=1e-12, atol=1e-13)
  np.testing.assert_allclose(np.asarray(_sce_grad(z + shift, y)), np.asarray(_sce_grad(z, y)),
                             rtol=1e-12, atol=1e-13)


@SETTINGS
@given(st.data(), st.sampled_from([0.0, 0.1]))
def test_integer_labels_equal_one_hot_distribution_labels(data, eps):
  z = data.draw(logit_rows())
  if eps:
    z = np.where(np.isneginf(z), -50.0, z)  # smoothing puts mass on every class: none may be masked
  labels = np.array([data.draw(st.sampled_from(np.flatnonzero(np.isfinite(row)).tolist())) for row in z])
  onehot = np.eye(CLASSES)[labels]
  np.testing.assert_allclose(np.asarray(_ice(z, labels, label_smoothing=eps)),
                             np.asarray(_sce(z, onehot, label_smoothing=eps)), rtol=1e-11, atol=1e-12)


@SETTINGS
@given(hnp.arrays(np.float64, N, elements=st.floats(-50, 50)), st.floats(0.01, 10.0))
def test_huber_is_quadratic_inside_linear_outside_and_continuous(r, delta):
  ref = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
  np.testing.assert_allclose(np.asarray(_huber(r, delta)), ref, rtol=1e-13, atol=1e-15)
  kink = np.full(N, delta) * np.where(np.arange(N) % 2, 1.0, -1.0)
  np.testing.assert_allclose(np.asarray(_huber(kink, delta)), 0.5 * delta**2, rtol=1e-15)


@SETTINGS
@given(hnp.arrays(np.float64, N, elements=st.floats(-80, 80)), hnp.arrays(np.float64, N, elements=st.floats(0, 1)))
def test_sigmoid_bce_agrees_with_softplus_form_and_with_bce_of_the_sigmoid(z, y):
  a = np.asarray(_sbce(z, y))
  np.testing.assert_allclose(a, y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z), rtol=1e-13, atol=1e-300)
  p = sp.expit(z)
  inner = (p > 1e-6) & (p < 1 - 1e-6)  # there 1 - p keeps 10 digits, so log(1 - p) does too
  b = np.asarray(_bce(p, y, inner))
  np.testing.assert_allclose(b[inner], a[inner], rtol=1e-9, atol=1e-12)
