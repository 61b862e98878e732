"""Issue 13, item 1: derivatives at p ~ 1 (confident rows, saturated logits) against exact references.

Every derivative of a softmax or sigmoid loss that subtracts a probability
from 1 (``S p_k - y_k``, ``p_k (1 - p_k)``, ``1 - sigma(z)``) cancels where
that probability is near 1. Here autodiff of the public functions (every
dtype) and the registry's closed forms (float64) are compared, entry by entry,
with mpmath evaluations of the hand-derived formulas at 50 digits on the exact
(dtype-rounded) inputs: an independent reference that cannot share a
cancellation. The z-loss option is tested against float64 NumPy and against
:func:`jaxloss.fused.linear_softmax_cross_entropy`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.special as sp

import jaxloss
from jaxloss import _classification as C

DTYPES = [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64]
# rows whose top probability is within each dtype's epsilon of 1 (1 - p: 4e-8, 3e-4, 4e-18, 9e-14)
CONFIDENT = [[17.0, 0.0], [0.0, 8.0], [40.0, 0.0], [30.0, -30.0, 0.0], [-5.0, 20.0, 1.0], [1000.0, 990.0]]
CONFIDENT_ROWS = [np.array([r for r in CONFIDENT if len(r) == c]) for c in (2, 3)]


def _mp(x):
  return [mpmath.mpf(float(v)) for v in np.asarray(x, np.float64)]


def _mp_softmax(z):
  with mpmath.workdps(50):
    zs = _mp(z)
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zs))
    return [mpmath.exp(v - lse) for v in zs], lse


def _mp_dense_grad_hess(z, y, z_loss=0.0):
  """S p - y and S (diag p - p p^T) (+ the z-loss terms), at 50 digits; float64 results."""
  with mpmath.workdps(50):
    p, lse = _mp_softmax(z)
    ys = _mp(y)
    s = mpmath.fsum(ys)
    lam = mpmath.mpf(z_loss)
    g = [s * pj - yj + 2 * lam * lse * pj for pj, yj in zip(p, ys)]
    c = len(p)
    h = [[(s + 2 * lam * lse) * ((pj if j == k else 0) - pj * pk) + 2 * lam * pj * pk for k, pk in enumerate(p)]
         for j, pj in enumerate(p)]
    return np.array([float(v) for v in g]), np.array([[float(v) for v in r] for r in h]).reshape(c, c)


def _ulp_close(got, ref, dtype, k=4, cond=1.0):
  """|got - ref| <= k eps cond |ref| + tiny, entry by entry (componentwise, not normwise).

  ``cond``: the entries' relative condition number; for a softmax probability
  :math:`e^{z_j - m} / s` that is about :math:`1 + |z_j - m|` (a rounding of the
  logit gap moves it by that many ulp), passed as the row's spread.
  """
  fi = jnp.finfo(dtype)
  got = np.asarray(got, np.float64)
  tol = k * float(fi.eps) * cond * np.abs(ref) + float(fi.tiny)
  bad = ~(np.abs(got - ref) <= tol)
  assert not bad.any(), f"{np.dtype(dtype).name}: got {got[bad]}, exact {ref[bad]}"


def test_issue_13_example_float32():
  """The issue's input: [17, 0] against [1, 0] in float32."""
  z, y = jnp.array([17.0, 0.0], jnp.float32), jnp.array([1.0, 0.0], jnp.float32)
  f = lambda z: jaxloss.softmax_cross_entropy(z, y, reduction="sum")
  g, h = _mp_dense_grad_hess(z, y)
  assert abs(g[0] + 4.1399375e-08) < 1e-14  # the true value quoted in the issue
  _ulp_close(jax.grad(f)(z), g, jnp.float32, k=2)
  _ulp_close(jax.hessian(f)(z), h, jnp.float32, k=2)


def _blocks(h):
  """The per-row [C, C] blocks of a Hessian shaped (N, C, N, C) (the off-row blocks must be 0)."""
  h = np.asarray(h, np.float64)
  n = h.shape[0]
  off = h.copy()
  for r in range(n):
    off[r, :, r, :] = 0
  assert not off.any()
  return np.stack([h[r, :, r, :] for r in range(n)])


def _check_rows(f, z, y_rows, dtype):
  """jax.grad / jax.hessian of ``f`` (a sum over rows) vs the mp formulas, row by row."""
  zd = jnp.asarray(z, dtype)
  z64 = np.asarray(zd, np.float64)
  g = np.asarray(jax.jit(jax.grad(f))(zd), np.float64)
  h = _blocks(jax.jit(jax.hessian(f))(zd))
  for r in range(z.shape[0]):
    gr, hr = _mp_dense_grad_hess(z64[r], y_rows[r])
    cond = 1 + float(np.ptp(z64[r]))
    _ulp_close(g[r], gr, dtype, cond=cond)
    _ulp_close(h[r], hr, dtype, cond=cond)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dense_ce_confident_rows(dtype):
  for z in CONFIDENT_ROWS:
    c = z.shape[1]
    top = np.eye(c)[np.argmax(z, axis=1)]
    # one-hot, and a soft row whose sum is exact in every dtype (else the rounding of sum(y) is the error,
    # by conditioning)
    for y in (top, 0.75 * top + 0.25 / (c - 1) * (1 - top)):
      yd = jnp.asarray(y, dtype)
      _check_rows(lambda zz, yd=yd: jaxloss.softmax_cross_entropy(zz, yd, reduction="sum"), z, y, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_integer_label_ce_confident_rows(dtype):
  for z in CONFIDENT_ROWS:
    for labels in (np.argmax(z, axis=1), np.argmin(z, axis=1)):
      lab = jnp.asarray(labels)
      f = lambda zz, lab=lab: jaxloss.softmax_cross_entropy_with_integer_labels(zz, lab, reduction="sum")
      _check_rows(f, z, np.eye(z.shape[1])[labels], dtype)


@pytest.mark.parametrize("z_loss", [0.0, 0.2])
@pytest.mark.parametrize("row", CONFIDENT, ids=str)
def test_closed_forms_float64_confident_rows(row, z_loss):
  """The registry's hand-derived gradient and Hessian, in float64, entry by entry (no float64 reference can)."""
  with jax.enable_x64(True):
    z = jnp.asarray(row, jnp.float64)[None]
    k = int(np.argmax(row))
    for y in (np.eye(len(row))[k], np.eye(len(row))[(k + 1) % len(row)]):
      g, h = _mp_dense_grad_hess(row, y, z_loss)
      yy = jnp.asarray(y, jnp.float64)[None]
      _ulp_close(C._sce_dz(z, yy, z_loss=z_loss)[0], g, jnp.float64, k=8)
      _ulp_close(np.asarray(C._sce_hessian(z, yy, z_loss=z_loss))[0, :, 0, :], h, jnp.float64, k=8)
    label = jnp.asarray([k])
    g, h = _mp_dense_grad_hess(row, np.eye(len(row))[k], z_loss)
    _ulp_close(C._ice_dz(z, label, z_loss=z_loss)[0], g, jnp.float64, k=8)
    _ulp_close(np.asarray(C._ice_hessian(z, label, z_loss=z_loss))[0, :, 0, :], h, jnp.float64, k=8)
    # the label derivative -log p_j: at the top class lse(z) - max z, tiny
    with mpmath.workdps(50):
      p, _ = _mp_softmax(row)
      ref = np.array([float(-mpmath.log(v)) for v in p])
    _ulp_close(C._sce_dy(z, jnp.asarray(np.eye(len(row))[k], jnp.float64)[None])[0], ref, jnp.float64, k=8)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sigmoid_family_saturated(dtype):
  """Members of the kind that already hold: sigma(-z) (never 1 - sigma(z)) and sigma(z) sigma(-z)."""
  z = np.array([-40.0, -17.0, -8.0, 8.0, 17.0, 40.0])
  zd = jnp.asarray(z, dtype)
  z64 = np.asarray(zd, np.float64)
  with mpmath.workdps(50):
    sig = [1 / (1 + mpmath.exp(-v)) for v in _mp(z64)]
    sig_m = [1 / (1 + mpmath.exp(v)) for v in _mp(z64)]
    curv = np.array([float(a * b) for a, b in zip(sig, sig_m)])
    for y in (0.0, 1.0):
      grad = np.array([float((1 - y) * a - y * b) for a, b in zip(sig, sig_m)])
      yd = jnp.full(z.shape, y, dtype)
      f = lambda zz, yd=yd: jaxloss.sigmoid_binary_cross_entropy(zz, yd, reduction="sum")
      _ulp_close(jax.grad(f)(zd), grad, dtype)
      _ulp_close(jnp.diagonal(jax.hessian(f)(zd)), curv, dtype)
    ns = lambda zz: jaxloss.gan.non_saturating_generator_loss(zz, reduction="sum")
    _ulp_close(jax.grad(ns)(zd), -np.array([float(b) for b in sig_m]), dtype)


# --------------------------------------------------------------------------
# z_loss
# --------------------------------------------------------------------------
def _np_zloss_grad(z, y, lam):
  p = sp.softmax(z, axis=-1)
  lse = sp.logsumexp(z, axis=-1, keepdims=True)
  return y.sum(-1, keepdims=True) * p - y + 2 * lam * lse * p


@pytest.mark.parametrize("lam", [0.0, 1e-4, 0.3])
def test_z_loss_dense_against_numpy(lam):
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 7)) * 3
    y = sp.softmax(rng.normal(size=(6, 7)), axis=-1)
    ref = -(y * sp.log_softmax(z, axis=-1)).sum(-1) + lam * sp.logsumexp(z, axis=-1) ** 2
    got = jaxloss.softmax_cross_entropy(jnp.asarray(z), jnp.asarray(y), z_loss=lam, reduction="none")
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    g = jax.grad(lambda zz: jaxloss.softmax_cross_entropy(zz, jnp.asarray(y), z_loss=lam, reduction="sum"))(
        jnp.asarray(z))
    np.testing.assert_allclose(g, _np_zloss_grad(z, y, lam), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lam", [1e-4, 0.3])
def test_z_loss_integer_labels_against_numpy_and_fused(lam):
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 6)) * 3
    labels = rng.integers(0, 6, size=5)
    y = np.eye(6)[labels]
    ref = sp.logsumexp(z, axis=-1) - z[np.arange(5), labels] + lam * sp.logsumexp(z, axis=-1) ** 2
    f = lambda zz: jaxloss.softmax_cross_entropy_with_integer_labels(zz, jnp.asarray(labels), z_loss=lam,
                                                                     reduction="none")
    np.testing.assert_allclose(f(jnp.asarray(z)), ref, rtol=1e-13)
    g = jax.grad(lambda zz: jnp.sum(f(zz)))(jnp.asarray(z))
    np.testing.assert_allclose(g, _np_zloss_grad(z, y, lam), rtol=1e-12, atol=1e-14)
    # the fused LM-head loss with an identity weight computes the same rows (its z-loss convention)
    fused = jaxloss.fused.linear_softmax_cross_entropy(jnp.asarray(z), jnp.eye(6), jnp.asarray(labels), z_loss=lam,
                                                       reduction="none")
    np.testing.assert_allclose(f(jnp.asarray(z)), fused, rtol=1e-12)


def test_z_loss_checked_and_free_by_default():
  z, y = jnp.zeros((2, 3)), jnp.full((2, 3), 1 / 3)
  with pytest.raises(ValueError, match="z_loss"):
    jaxloss.softmax_cross_entropy(z, y, z_loss=-0.1)
  with pytest.raises(ValueError, match="z_loss"):
    jaxloss.softmax_cross_entropy_with_integer_labels(z, jnp.zeros(2, jnp.int32), z_loss=float("nan"))
  # traced and negative: NaN (the run-time value rule)
  out = jax.jit(lambda lam: jaxloss.softmax_cross_entropy(z, y, z_loss=lam))(-1.0)
  assert np.isnan(out)
  # z_loss=0.0 traces nothing more than no z_loss at all, and fewer equations than a positive one
  n0 = len(jax.make_jaxpr(lambda zz: jaxloss.softmax_cross_entropy(zz, y))(z).eqns)
  n1 = len(jax.make_jaxpr(lambda zz: jaxloss.softmax_cross_entropy(zz, y, z_loss=0.0))(z).eqns)
  n2 = len(jax.make_jaxpr(lambda zz: jaxloss.softmax_cross_entropy(zz, y, z_loss=0.1))(z).eqns)
  assert n0 == n1 < n2
