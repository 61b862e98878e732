"""Tests of jaxloss.fused.linear_softmax_cross_entropy (fused LM-head cross-entropy).

The fused loss and its custom-VJP gradients are compared with an *unfused*
float64 reference written here: logits ``h @ W + b`` are materialized in
float64 and the loss is built from ``logsumexp``; its gradients come from
``jax.grad`` of that reference (independent of the hand-derived backward pass
of the fused op). Loss values are also checked against a NumPy float64 loop.

Tolerances are bounds derived from the arithmetic, evaluated on the data
(see :func:`_tolerances`):

* logits: a length-``D`` dot product accumulated in float32 has absolute error
  at most ``D u |h| @ |W|`` (Higham, gamma_D; ``u = 2**-24``); in the bf16 case
  the inputs are bf16 numbers whose products are exact in float32, so the same
  float32 bound holds against the float64 reference *of the bf16 inputs*;
* the online logsumexp / sums over ``V`` columns add at most ``V u`` relative;
* a softmax probability inherits the absolute logit error as a relative one
  (``|d log p| <= |dz| + |d lse|``);
* the gradient matmuls accumulate ``V`` (for dh) or ``N`` (for dW) terms in
  float32 (``(V + N) u`` relative to the sum of magnitudes ``|G| @ |W|^T``,
  ``|h|^T @ |G|``); in bf16 the logit gradient ``G`` is rounded to bf16 before
  those matmuls and the results are rounded to bf16 (each ``2**-8`` relative,
  the bf16 unit roundoff): ``2**-7`` relative to the magnitudes.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from jaxloss import fused

U32 = 2.0**-24
U_BF16 = 2.0**-8  # bfloat16 unit roundoff (8 significant bits)

F64 = jnp.float64


# --------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------
def _ref_rows(h, w, b, y, use, *, eps, zl, cap):
  """Unfused float64 per-row loss (jnp, differentiable) on materialized logits."""
  x = h @ w
  if b is not None:
    x = x + b
  z = x if cap is None else cap * jnp.tanh(x / cap)
  vocab = w.shape[1]
  lse = jax.nn.logsumexp(z, axis=-1)
  ysafe = jnp.where(use, y, 0)
  zy = jnp.take_along_axis(z, ysafe[..., None], axis=-1)[..., 0]
  row = lse - (1.0 - eps) * zy - eps / vocab * jnp.sum(z, axis=-1) + zl * lse**2
  return jnp.where(use, row, 0.0)


def _ref_reduce(rows, use, reduction):
  if reduction == "none":
    return rows
  total = jnp.sum(rows)
  if reduction == "sum":
    return total
  n = jnp.sum(use.astype(F64))
  return jnp.where(n > 0, total / jnp.maximum(n, 1.0), 0.0)


def _numpy_rows(h, w, b, y, use, *, eps, zl, cap):
  """A plain NumPy float64 loop (value only): second, independent reference."""
  h, w = np.asarray(h, np.float64), np.asarray(w, np.float64)
  out = np.zeros(h.shape[:-1])
  for idx in np.ndindex(*h.shape[:-1]):
    if not use[idx]:
      continue
    x = h[idx] @ w + (0.0 if b is None else np.asarray(b, np.float64))
    z = x if cap is None else cap * np.tanh(x / cap)
    m = z.max()
    lse = m + np.log(np.exp(z - m).sum())
    q = np.full(z.shape, eps / z.size)
    q[y[idx]] += 1.0 - eps
    out[idx] = lse - q @ z + zl * lse**2
  return out


def _abs_dz(h, w, b, y, use, *, eps, zl, cap):
  """Per-row magnitudes |(1 + 2 zl lse)| p + (1 - eps) [j=y] + eps/V (float64 NumPy)."""
  h, w = np.asarray(h, np.float64), np.asarray(w, np.float64)
  x = h @ w + (0.0 if b is None else np.asarray(b, np.float64))
  z = x if cap is None else cap * np.tanh(x / cap)
  lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
  p = np.exp(z - lse[..., None])
  onehot = np.eye(w.shape[1])[np.where(use, y, 0)]
  a = np.abs(1 + 2 * zl * lse)[..., None] * p + (1 - eps) * onehot + eps / w.shape[1]
  return a * use[..., None], np.abs(x), np.abs(z), np.abs(lse)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def _data(seed, batch, d, vocab, dtype, *, with_bias, ignore_index=None, with_where=False):
  rng = np.random.default_rng(seed)
  h = rng.standard_normal(batch + (d,)) / np.sqrt(d) * 3.0
  w = rng.standard_normal((d, vocab))
  b = rng.standard_normal(vocab) * 0.5 if with_bias else None
  y = rng.integers(0, vocab, size=batch)
  use = np.ones(batch, bool)
  if ignore_index is not None:
    drop = rng.random(batch) < 0.25
    y = np.where(drop, ignore_index, y)
    use &= y != ignore_index
  where = None
  if with_where:
    where = rng.random(batch) > 0.25
    use &= where
  h = jnp.asarray(h.astype(dtype))  # rounded by NumPy/ml_dtypes: no compiled convert
  w = jnp.asarray(w.astype(dtype))
  if b is not None:
    b = jnp.asarray(b.astype(dtype))
  return h, w, b, jnp.asarray(y, jnp.int32), where, use


def _tolerances(h, w, b, y, use, omega, *, eps, zl, cap, bf16, reduce_rows=True):
  """Absolute error bounds (loss, dh, dW, db) from the rounding analysis above."""
  hd, wd = np.asarray(h).astype(np.float64), np.asarray(w).astype(np.float64)
  bd = None if b is None else np.asarray(b).astype(np.float64)
  d, vocab = wd.shape
  n = int(np.prod(hd.shape[:-1]))
  a, absx, absz, abslse = _abs_dz(hd, wd, bd, np.asarray(y), use, eps=eps, zl=zl, cap=cap)
  habs, wabs = np.abs(hd), np.abs(wd)
  # absolute error of each logit: dot product (D terms) + bias add + tanh.
  tol_z = (d + 2) * U32 * np.max(habs @ wabs + (0 if bd is None else np.abs(bd))) + 4 * U32 * np.max(absz)
  # row loss: lse, z_y, mean z (each <= tol_z + V u |z|), z-loss (2 zl |lse| times that).
  per_row = (3 + 2 * zl * abslse) * (tol_z + (vocab + 4) * U32 * (np.max(absz) + abslse))
  om = np.abs(np.asarray(omega, np.float64)) * use
  if reduce_rows:
    tol_loss = float(np.sum(om * per_row) + (n + 4) * U32 * np.sum(om * abslse) + 1e-300)
  else:
    tol_loss = per_row * use + 1e-300  # per row, before the cotangent
  # relative error of each |dl/dz_j| term, then of the gradient matmuls.
  rel = 2 * tol_z + (vocab + n + d + 16) * U32
  if cap is not None:
    rel += 2 * tol_z / cap
  if bf16:
    rel += 2 * U_BF16
  ga = a * om[..., None]  # [..., V]
  tol_dh = rel * (ga @ wabs.T) + 1e-300
  ga2 = ga.reshape(n, vocab)
  tol_dw = rel * (habs.reshape(n, d).T @ ga2) + 1e-300
  tol_db = rel * ga2.sum(0) + 1e-300
  if bf16 and b is not None and b.dtype == jnp.bfloat16:
    tol_db = tol_db + U_BF16 * np.abs(ga2).sum(0)
  return tol_loss, tol_dh, tol_dw, tol_db


def _assert_within(name, got, want, tol):
  got = np.asarray(got).astype(np.float64)
  want = np.asarray(want)
  err = np.abs(got - want)
  bad = ~(err <= tol)
  assert not bad.any(), (
      f"{name}: {bad.sum()} of {bad.size} elements exceed the bound; worst err "
      f"{err.max():.3e} (bound there {np.broadcast_to(tol, err.shape).ravel()[np.argmax(err - tol)]:.3e})")


CONFIGS = [
    # (id, batch, D, V, chunk, options)
    # (chunk_size 1, the default chunk and V % chunk == 0 are covered by
    # test_chunk_size_does_not_change_the_result)
    ("plain_tail", (12,), 8, 37, 8, dict()),
    ("all_options_mean", (3, 5), 16, 45, 16,
     dict(bias=True, ignore_index=-100, where=True, label_smoothing=0.1, z_loss=1e-3, logit_softcap=3.0)),
    ("all_options_sum", (16,), 16, 50, 12,
     dict(bias=True, ignore_index=-100, where=True, label_smoothing=0.2, z_loss=1e-2, logit_softcap=2.0,
          reduction="sum")),
    ("all_options_none", (2, 7), 8, 30, 7,
     dict(bias=True, ignore_index=3, where=True, label_smoothing=0.05, z_loss=1e-4, logit_softcap=5.0,
          reduction="none")),
    ("smoothing_zloss_no_cap", (10,), 8, 64, 16, dict(label_smoothing=0.3, z_loss=0.05)),
]


def _run_case(cfg, dtype, bias_dtype=None):
  _, batch, d, vocab, chunk, opts = cfg
  opts = dict(opts)
  reduction = opts.pop("reduction", "mean")
  with_bias = opts.pop("bias", False)
  with_where = opts.pop("where", False)
  ignore_index = opts.get("ignore_index")
  eps = opts.get("label_smoothing", 0.0)
  zl = opts.get("z_loss", 0.0)
  cap = opts.get("logit_softcap")
  h, w, b, y, where, use = _data(zlib.crc32(cfg[0].encode()), batch, d, vocab, dtype, with_bias=with_bias,
                                 ignore_index=ignore_index, with_where=with_where)
  if b is not None and bias_dtype is not None:
    b = jnp.asarray(np.asarray(b).astype(bias_dtype))
  ywhere = None if where is None else jnp.asarray(where)

  def fused_fn(h, w, b):
    return fused.linear_softmax_cross_entropy(
        h, w, y, bias=b, chunk_size=chunk, where=ywhere, reduction=reduction, **opts)

  # float64 reference on exactly the same (possibly bf16-rounded) numbers
  h64, w64 = (jnp.asarray(np.asarray(a).astype(np.float64)) for a in (h, w))
  b64 = None if b is None else jnp.asarray(np.asarray(b).astype(np.float64))
  use_j = jnp.asarray(use)

  def ref_fn(h, w, b):
    return _ref_reduce(_ref_rows(h, w, b, y, use_j, eps=eps, zl=zl, cap=cap), use_j, reduction)

  if reduction == "none":
    ct = jnp.asarray(np.random.default_rng(1).standard_normal(batch), F64)
    omega = np.asarray(ct)
  else:
    ct = jnp.ones((), F64)
    omega = np.ones(batch) / (max(use.sum(), 1) if reduction == "mean" else 1.0)

  def value_and_vjp(f, ct, *args):  # one compiled program per side
    out, vjp = jax.vjp(f, *args)
    return out, vjp(ct.astype(out.dtype))

  out, (dh, dw, db) = jax.jit(functools.partial(value_and_vjp, fused_fn))(ct, h, w, b)
  ref, (rdh, rdw, rdb) = jax.jit(functools.partial(value_and_vjp, ref_fn))(ct, h64, w64, b64)
  assert out.dtype == (jnp.float64 if dtype == jnp.float64 else jnp.float32)
  assert out.shape == ref.shape
  tol_loss, tol_dh, tol_dw, tol_db = _tolerances(
      h, w, b, y, use, omega, eps=eps, zl=zl, cap=cap,
      bf16=dtype == jnp.bfloat16, reduce_rows=reduction != "none")
  _assert_within("loss", out, np.asarray(ref), tol_loss)
  # second, loop-based reference for the value
  rows_np = _numpy_rows(h64, w64, b64, np.asarray(y), use, eps=eps, zl=zl, cap=cap)
  want = rows_np if reduction == "none" else (
      rows_np.sum() / max(use.sum(), 1) if reduction == "mean" else rows_np.sum())
  _assert_within("loss (numpy loop)", out, want, tol_loss)

  assert dh.dtype == h.dtype and dw.dtype == w.dtype
  _assert_within("d_hidden", dh, np.asarray(rdh), tol_dh)
  _assert_within("d_weight", dw, np.asarray(rdw), tol_dw)
  if b is not None:
    assert db.dtype == b.dtype
    _assert_within("d_bias", db, np.asarray(rdb), tol_db)
  # excluded rows get an exactly-zero gradient
  assert np.all(np.asarray(dh).astype(np.float64)[~use] == 0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_matches_unfused_reference_f32(cfg):
  _run_case(cfg, jnp.float32)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c[0].startswith(("all_options", "plain_tail"))],
                         ids=lambda c: c[0])
def test_matches_unfused_reference_bf16(cfg):
  _run_case(cfg, jnp.bfloat16, bias_dtype=jnp.float32)


def test_bf16_bias_bf16():
  _run_case(CONFIGS[1], jnp.bfloat16)


def test_float64_stays_float64():
  _run_case(CONFIGS[2], jnp.float64)


def test_tolerance_is_tight_enough_to_catch_an_error():
  """The bound must reject a plausible bug: dropping the eps/V term of the gradient."""
  cfg = CONFIGS[2]
  _, batch, d, vocab, chunk, opts = cfg
  h, w, b, y, where, use = _data(0, batch, d, vocab, jnp.float32, with_bias=True)
  omega = np.ones(batch)
  _, tol_dh, _, _ = _tolerances(h, w, b, y, use, omega, eps=0.2, zl=0.0, cap=None, bf16=False)
  # the eps/V * sum_j W_j contribution that such a bug would drop
  w64 = np.asarray(w.astype(F64))
  dropped = 0.2 / vocab * np.broadcast_to(w64.sum(1), batch + (d,))
  assert np.any(np.abs(dropped) > tol_dh)


# --------------------------------------------------------------------------
# agreement with the package's own (unfused) cross-entropy, when present
# --------------------------------------------------------------------------
def test_matches_jaxloss_integer_label_ce():
  import inspect

  import jaxloss
  ce = getattr(jaxloss, "softmax_cross_entropy_with_integer_labels", None)
  if ce is None:
    pytest.skip("jaxloss.softmax_cross_entropy_with_integer_labels not available yet")
  params = inspect.signature(ce).parameters
  opts = {}
  if "ignore_index" in params:
    opts["ignore_index"] = -100
  if "label_smoothing" in params:
    opts["label_smoothing"] = 0.1
  h, w, b, y, where, use = _data(3, (4, 6), 8, 40, jnp.float32, with_bias=True,
                                 ignore_index=opts.get("ignore_index"), with_where=True)
  if "ignore_index" not in params:
    y = jnp.where(jnp.asarray(use), y, 0)
  wmask = jnp.asarray(where)

  def unfused(h, w, b):
    return ce(h @ w + b, y, where=wmask, **opts)

  def fusedf(h, w, b):
    return fused.linear_softmax_cross_entropy(h, w, y, bias=b, where=wmask, chunk_size=16, **opts)

  @jax.jit
  def both(h, w, b):
    return (jax.value_and_grad(unfused, (0, 1, 2))(h, w, b), jax.value_and_grad(fusedf, (0, 1, 2))(h, w, b))

  (v1, g1), (v2, g2) = both(h, w, b)
  # f32 on both sides, O(1) values: a few hundred ulps covers both roundings (D = 8, V = 40)
  np.testing.assert_allclose(v2, v1, rtol=2e-6)
  for a, c in zip(g2, g1):
    np.testing.assert_allclose(a, c, rtol=2e-5, atol=2e-7)


# --------------------------------------------------------------------------
# scalar options are differentiable
# --------------------------------------------------------------------------
def test_grad_wrt_label_smoothing_and_z_loss():
  h, w, b, y, _, use = _data(5, (9,), 8, 21, F64, with_bias=True)
  use_j = jnp.asarray(use)

  def f(eps, zl):
    return fused.linear_softmax_cross_entropy(h, w, y, bias=b, label_smoothing=eps, z_loss=zl,
                                              logit_softcap=4.0, chunk_size=5)

  def r(eps, zl):
    return _ref_reduce(_ref_rows(h, w, b, y, use_j, eps=eps, zl=zl, cap=4.0), use_j, "mean")

  args = (jnp.asarray(0.1, F64), jnp.asarray(0.01, F64))
  g, gr = jax.jit(lambda *a: (jax.grad(f, (0, 1))(*a), jax.grad(r, (0, 1))(*a)))(*args)
  np.testing.assert_allclose(np.asarray(g), np.asarray(gr), rtol=1e-12)


# --------------------------------------------------------------------------
# transformations
# --------------------------------------------------------------------------
def test_jit_vmap_and_grad_of_vmap():
  k = 3
  h, w, b, y, _, _ = _data(7, (k, 6), 8, 19, jnp.float32, with_bias=True)

  def f(h, y, w, b):
    return fused.linear_softmax_cross_entropy(h, w, y, bias=b, chunk_size=4, label_smoothing=0.1,
                                              z_loss=1e-3, logit_softcap=3.0)

  def total(h, w, b):
    return jnp.sum(jax.vmap(f, in_axes=(0, 0, None, None))(h, y, w, b))

  def total_loop(h, w, b):
    return sum(f(h[i], y[i], w, b) for i in range(k))

  @jax.jit
  def everything(h, w, b):
    batched = jax.vmap(f, in_axes=(0, 0, None, None))(h, y, w, b)
    looped = jnp.stack([f(h[i], y[i], w, b) for i in range(k)])
    g1 = jax.grad(total, (0, 1, 2))(h, w, b)
    g2 = jax.grad(total_loop, (0, 1, 2))(h, w, b)
    # vmap over the weight too (e.g. an ensemble of heads)
    ws = jnp.stack([w, 2 * w])
    heads = jax.vmap(lambda w: f(h[0], y[0], w, b))(ws)
    heads_loop = jnp.stack([f(h[0], y[0], w, b), f(h[0], y[0], 2 * w, b)])
    return batched, looped, g1, g2, heads, heads_loop

  batched, looped, g1, g2, heads, heads_loop = everything(h, w, b)
  np.testing.assert_allclose(batched, looped, rtol=1e-6)
  for a, c in zip(g1, g2):
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(heads, heads_loop, rtol=1e-6)


def test_forward_mode_is_not_supported():
  h, w, _, y, _, _ = _data(0, (4,), 4, 6, jnp.float32, with_bias=False)
  f = lambda h: fused.linear_softmax_cross_entropy(h, w, y)
  with pytest.raises(TypeError, match="forward-mode"):
    jax.jit(lambda h, t: jax.jvp(f, (h,), (t,)))(h, jnp.ones_like(h))


def test_chunk_size_does_not_change_the_result():
  h, w, b, y, _, _ = _data(11, (10,), 8, 23, F64, with_bias=True)

  @jax.jit
  def all_chunks(h, w, b):
    out = []
    for c in (None, 1, 5, 8):  # default = 23 = V: one chunk; 5 and 8: clamped last chunk
      f = lambda h, w, b: fused.linear_softmax_cross_entropy(h, w, y, bias=b, chunk_size=c, z_loss=0.01)
      out.append(jax.value_and_grad(f, (0, 1, 2))(h, w, b))
    return out

  vals = all_chunks(h, w, b)
  for v, g in vals[1:]:
    np.testing.assert_allclose(v, vals[0][0], rtol=1e-13)
    for a, c in zip(g, vals[0][1]):
      np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-15)


def test_default_chunk_size():
  assert fused.default_chunk_size(8192, 131072) == 512
  assert fused.default_chunk_size(16, 131072) == 8192
  assert fused.default_chunk_size(10**6, 131072) == 128
  assert fused.default_chunk_size(8192, 100) == 100
  c = fused.default_chunk_size(3000, 50000)
  assert c & (c - 1) == 0 and 3000 * c <= 2**22 < 3000 * 2 * c


# --------------------------------------------------------------------------
# masking, NaN safety, run-time label errors
# --------------------------------------------------------------------------
def test_masked_rows_do_not_leak_nan_and_all_masked_is_zero():
  h, w, b, y, _, _ = _data(2, (6,), 4, 9, jnp.float32, with_bias=True)
  h = h.at[1].set(jnp.nan).at[2].set(jnp.inf)
  y = y.at[3].set(-100)
  where = jnp.asarray([True, False, False, True, True, True])
  f = lambda h, w, b: fused.linear_softmax_cross_entropy(h, w, y, bias=b, where=where, ignore_index=-100)
  v, (dh, dw, db) = jax.jit(jax.value_and_grad(f, (0, 1, 2)))(h, w, b)
  assert np.isfinite(v) and np.all(np.isfinite(dw)) and np.all(np.isfinite(db))
  assert np.all(np.asarray(dh)[[1, 2, 3]] == 0) and np.all(np.isfinite(dh))
  none_on = jnp.zeros(6, bool)
  for red in ("mean", "sum"):
    g = lambda h, w: fused.linear_softmax_cross_entropy(h, w, y, where=none_on, reduction=red)
    v0, (dh0, dw0) = jax.jit(jax.value_and_grad(g, (0, 1)))(h, w)
    assert float(v0) == 0.0 and not np.any(np.asarray(dh0)) and not np.any(np.asarray(dw0))


@pytest.mark.runtime_checks
def test_out_of_range_labels_nan_and_checkify():
  h, w, _, y, _, _ = _data(4, (5,), 4, 6, jnp.float32, with_bias=False)
  y_bad = y.at[2].set(6)
  rows = jax.jit(lambda y: fused.linear_softmax_cross_entropy(h, w, y, reduction="none"))(y_bad)
  assert np.isnan(rows[2]) and np.all(np.isfinite(np.delete(np.asarray(rows), 2)))
  checked = jax.jit(checkify.checkify(lambda y: fused.linear_softmax_cross_entropy(h, w, y),
                                      errors=checkify.user_checks))
  err, val = checked(y_bad)
  assert np.isnan(val)
  with pytest.raises(checkify.JaxRuntimeError, match="labels"):
    err.throw()
  err, _ = checked(y)
  err.throw()  # in-range labels: no error
  # an ignored row may carry any label, also out of range
  y_ign = y.at[2].set(-100)
  err, ok = jax.jit(checkify.checkify(lambda y: fused.linear_softmax_cross_entropy(h, w, y, ignore_index=-100),
                                      errors=checkify.user_checks))(y_ign)
  err.throw()  # ignored rows are not checked
  assert np.isfinite(ok)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(hidden=np.ones((3, 4), np.int32)), TypeError, "hidden"),
    (dict(weight=np.ones((4, 5), np.int32)), TypeError, "weight"),
    (dict(labels=np.zeros(3, np.float32)), TypeError, "labels"),
    (dict(weight=np.ones((5, 5), np.float32)), ValueError, "weight.shape"),
    (dict(weight=np.ones((4,), np.float32)), ValueError, r"\[D, V\]"),
    (dict(labels=np.zeros(4, np.int32)), ValueError, "labels.shape"),
    (dict(bias=np.ones(4, np.float32)), ValueError, "bias"),
    (dict(bias=np.ones(5, np.int32)), TypeError, "bias"),
    (dict(chunk_size=0), ValueError, "chunk_size"),
    (dict(chunk_size=2.0), TypeError, "chunk_size"),
    (dict(ignore_index=1.5), TypeError, "ignore_index"),
    (dict(where=np.ones(3, np.int32)), TypeError, "where"),
    (dict(where=np.ones(4, bool)), ValueError, "where"),
    (dict(label_smoothing=1.5), ValueError, "label_smoothing"),
    (dict(z_loss=-1.0), ValueError, "z_loss"),
    (dict(logit_softcap=0.0), ValueError, "logit_softcap"),
    (dict(logit_softcap=jnp.ones(())), TypeError, "logit_softcap"),
    (dict(reduction="avg"), ValueError, "reduction"),
    (dict(token_block_size=0), ValueError, "token_block_size"),
    (dict(token_block_size=2.0), TypeError, "token_block_size"),
    (dict(grad_in_forward=True, reduction="none"), ValueError, "grad_in_forward"),
    (dict(weights=np.ones(4, np.float32)), ValueError, "weights"),
    (dict(weights=np.ones(3, bool)), TypeError, "weights"),
    (dict(vocab_axis="model"), ValueError, "vocab_axis"),
    (dict(token_axis="data"), ValueError, "token_axis"),
])
def test_bad_arguments(kwargs, exc, match):
  args = dict(hidden=np.ones((3, 4), np.float32), weight=np.ones((4, 5), np.float32),
              labels=np.zeros(3, np.int32))
  for k in ("hidden", "weight", "labels"):
    if k in kwargs:
      args[k] = kwargs.pop(k)
  with pytest.raises(exc, match=match):
    fused.linear_softmax_cross_entropy(args["hidden"], args["weight"], args["labels"], **kwargs)


# --------------------------------------------------------------------------
# memory: temporaries grow with the chunk, not with V
# --------------------------------------------------------------------------
def _temp_bytes(fn, *args):
  return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_temporaries_grow_with_chunk_not_with_vocab():
  n, d = 512, 16
  y = jnp.zeros((n,), jnp.int32)
  h = jnp.ones((n, d), jnp.float32)

  def fused_step(chunk):
    def step(h, w):
      return jax.value_and_grad(
          lambda h, w: fused.linear_softmax_cross_entropy(h, w, y, chunk_size=chunk, z_loss=1e-4),
          (0, 1))(h, w)
    return step

  def unfused_step(h, w):
    def loss(h, w):
      x = h @ w
      return jnp.mean(jax.nn.logsumexp(x, -1) - jnp.take_along_axis(x, y[:, None], -1)[:, 0])
    return jax.value_and_grad(loss, (0, 1))(h, w)

  t = {}
  for vocab in (2048, 4096):
    w = jnp.ones((d, vocab), jnp.float32)
    for chunk in ((128, 256) if vocab == 2048 else (128,)):
      t[vocab, chunk] = _temp_bytes(fused_step(chunk), h, w)
    t[vocab, "unfused"] = _temp_bytes(unfused_step, h, w)
  chunk_bytes = n * 128 * 4  # one [N, 128] float32 array
  # doubling V leaves the fused temporaries unchanged up to a few [D, chunk]-sized buffers ...
  assert abs(t[4096, 128] - t[2048, 128]) <= 4 * d * 128 * 4, t
  # ... while the unfused ones grow by at least one [N, V] float32 array
  assert t[4096, "unfused"] - t[2048, "unfused"] >= n * 2048 * 4, t
  # doubling the chunk grows the fused temporaries by O(N * chunk)
  assert t[2048, 256] - t[2048, 128] >= chunk_bytes, t
  assert t[2048, 256] - t[2048, 128] <= 16 * chunk_bytes, t
  # and the fused step never holds anything of [N, V] size
  assert t[4096, 128] < n * 4096 * 4, t


# --------------------------------------------------------------------------
# sharded over 8 simulated CPU devices (one fresh process: XLA_FLAGS must precede jax)
# --------------------------------------------------------------------------
_SHARDED_SCRIPT = textwrap.dedent(r"""
    import re
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    from jaxloss import fused
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    n, d, v = 32, 16, 256
    h = jnp.asarray(rng.standard_normal((8, n // 8, d)), jnp.float32)
    w = rng.standard_normal((d, v)) / 4
    w[:, 5] *= 3.0
    w[:, 200] = w[:, 5]   # a tie across shards: the first argmax (5) is the correct one
    w = jnp.asarray(w, jnp.float32)
    b = jnp.asarray(rng.standard_normal(v), jnp.float32).at[200].set(0.0).at[5].set(0.0)
    h = h.at[0, 0].set(w[:, 5] * 2).at[0, 1].set(w[:, 5] * 2)
    top = np.argmax(np.asarray(h @ w + b), -1)  # half the labels are the argmax: accuracy is not all False
    y = np.where(rng.random(top.shape) < 0.5, top, rng.integers(0, v, top.shape))
    y[0, :3] = (5, 200, -100)
    y = jnp.asarray(y, jnp.int32)
    tw = jnp.asarray(rng.random(y.shape), jnp.float32)
    OPTS = dict(ignore_index=-100, label_smoothing=0.1, z_loss=1e-3, logit_softcap=5.0, return_aux=True)

    def step_fn(**kw):
      def loss(h, w, b, y, tw):
        val, aux = fused.linear_softmax_cross_entropy(h, w, y, bias=b, weights=tw, **OPTS, **kw)
        return val + 1e-2 * jnp.mean(aux.logsumexp ** 2), aux.correct
      return jax.jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))

    def all_gathers(text):  # result shapes of the all-gathers in compiled HLO ("f32[16,256]{1,0} all-gather(")
      return [tuple(int(x) for x in m.group(1).split(",") if x)
              for m in re.finditer(r"\w+\[([\d,]*)\][^ ]* all-gather(?:-start)?\(", text)]

    def check(label, mesh_shape, kw, hlo=False, auto=False):
      types = (AxisType.Auto if auto else AxisType.Explicit,) * 2
      mesh = jax.make_mesh(mesh_shape, ("tok", "voc"), axis_types=types)
      unsharded = {k: x for k, x in kw.items() if k not in ("vocab_axis", "token_axis")}
      (rval, rcorrect), rgrads = step_fn(chunk_size=24, **unsharded)(h, w, b, y, tw)
      with jax.set_mesh(mesh):
        put = lambda x, *spec: jax.device_put(x, NamedSharding(mesh, P(*spec)))
        tok = kw.get("token_axis")
        args = (put(h, tok, None, None), put(w, None, "voc"), put(b, "voc"), put(y, tok, None), put(tw, tok, None))
        step = step_fn(chunk_size=24, **kw)
        (val, correct), grads = step(*args)
        gathers = all_gathers(step.lower(*args).compile().as_text()) if hlo else []
      # float32 on both sides: only the order of the sums differs
      np.testing.assert_allclose(val, rval, rtol=2e-6)
      assert np.array_equal(correct, rcorrect) and rcorrect.any() and rcorrect[0, 0] and not rcorrect[0, 1]
      for name, a, c in zip(("dh", "dw", "db"), grads, rgrads):
        np.testing.assert_allclose(a, c, rtol=2e-5, atol=2e-6 * float(np.max(np.abs(c))), err_msg=name)
      assert grads[1].sharding.spec[1] == "voc" and grads[2].sharding.spec[0] == "voc", grads[1].sharding
      big = [s for s in gathers if int(np.prod(s)) >= v]
      assert not big, f"all-gathers of V-sized arrays: {big}"
      print("OK", label, flush=True)

    check("1x8", (1, 8), dict(vocab_axis="voc"), hlo=True)
    check("8x1", (8, 1), dict(vocab_axis="voc", token_axis="tok", token_block_size=3))
    check("2x4", (2, 4), dict(vocab_axis="voc", token_axis="tok"), auto=True)
    check("2x4-grad_in_forward", (2, 4), dict(vocab_axis="voc", token_axis="tok", grad_in_forward=True,
                                              token_block_size=5), hlo=True)
    # the detector sees the gathers of the unsharded formulation (weight sharded over V, no vocab_axis) ...
    mesh = jax.make_mesh((1, 8), ("tok", "voc"), axis_types=(AxisType.Auto,) * 2)
    with jax.set_mesh(mesh):
      ws = jax.device_put(w, NamedSharding(mesh, P(None, "voc")))
      text = step_fn(chunk_size=24).lower(h, ws, b, y, tw).compile().as_text()
    assert any(int(np.prod(s)) >= d * v for s in all_gathers(text)), all_gathers(text)
    print("OK gather-detector", flush=True)
    # ... and a token batch sharded by GSPMD alone (no axis named) still matches
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    ref_v, ref_g = step_fn(chunk_size=24)(h, w, b, y, tw)
    hs = jax.device_put(h, NamedSharding(mesh, P("data")))
    (val, _), g = step_fn(chunk_size=24)(hs, w, b, jax.device_put(y, NamedSharding(mesh, P("data"))), tw)
    assert len(g[0].sharding.device_set) == 8
    np.testing.assert_allclose(val, ref_v[0], rtol=2e-6)
    for a, c in zip(g, ref_g):
      np.testing.assert_allclose(a, c, rtol=2e-5, atol=2e-6 * float(np.max(np.abs(c))))
    print("OK gspmd-token-batch", flush=True)
""")

_SHARDED_LABELS = ("1x8", "8x1", "2x4", "2x4-grad_in_forward", "gather-detector", "gspmd-token-batch")


@pytest.fixture(scope="module")
def sharded_run():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
  env["JAX_PLATFORMS"] = "cpu"
  res = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], env=env, capture_output=True, text=True,
                       timeout=600)
  ok = {line.split(" ", 1)[1] for line in res.stdout.splitlines() if line.startswith("OK ")}
  return ok, res.stdout + res.stderr[-4000:]


@pytest.mark.parametrize("label", _SHARDED_LABELS)
def test_sharded_over_8_cpu_devices(label, sharded_run):
  """Meshes (tokens x vocabulary) 1x8, 8x1, 2x4: value, accuracy and gradients equal the unsharded call,
  dL/dweight stays sharded over V, and the compiled step has no V-sized all-gather."""
  ok, log = sharded_run
  assert label in ok, log


def test_unbatched_empty_and_mixed_dtypes():
  h, w, b, y, _, _ = _data(9, (3,), 4, 6, jnp.float32, with_bias=True)

  @jax.jit
  def run(h, w, b, y):
    one = fused.linear_softmax_cross_entropy(h[0], w, y[0], bias=b)          # hidden [D], label scalar
    batch1 = fused.linear_softmax_cross_entropy(h[:1], w, y[:1], bias=b)
    empty = fused.linear_softmax_cross_entropy(h[:0], w, y[:0], bias=b)
    mixed, grads = jax.value_and_grad(
        lambda h, w: fused.linear_softmax_cross_entropy(h, w, y, bias=b, reduction="sum"), (0, 1))(
            h.astype(jnp.float16), w.astype(jnp.bfloat16))
    return one, batch1, empty, mixed, grads

  one, batch1, empty, mixed, (dh, dw) = run(h, w, b, y)
  assert one.shape == () and float(one) == float(batch1)
  assert float(empty) == 0.0
  assert mixed.dtype == jnp.float32 and dh.dtype == jnp.float16 and dw.dtype == jnp.bfloat16


# --------------------------------------------------------------------------
# per-token weights, aux outputs, token blocking, grad_in_forward (float64: tight tolerances)
# --------------------------------------------------------------------------
_OPTS64 = dict(ignore_index=-100, label_smoothing=0.1, z_loss=1e-2, logit_softcap=4.0)
_MODES = {
    "lean": dict(chunk_size=8),
    "lean_token_blocks": dict(chunk_size=8, token_block_size=4),  # 21 rows: clamped last block
    "grad_in_forward": dict(grad_in_forward=True),
    "grad_in_forward_blocks": dict(grad_in_forward=True, token_block_size=4),
}


def _weighted_case(seed=21):
  h, w, b, y, where, use = _data(seed, (3, 7), 8, 45, F64, with_bias=True, ignore_index=-100, with_where=True)
  tw = jnp.asarray(np.random.default_rng(seed).random((3, 7)) * 2)
  return h, w, b, y, jnp.asarray(where), use, tw


def _ref_weighted(h, w, b, tw, y, use, reduction):
  rows = _ref_rows(h, w, b, y, jnp.asarray(use), eps=0.1, zl=1e-2, cap=4.0) * tw
  if reduction == "none":
    return rows
  if reduction == "sum":
    return jnp.sum(rows)
  return jnp.sum(rows) / jnp.sum(jnp.where(jnp.asarray(use), tw, 0.0))


# each mode once, each reduction at least twice (grad_in_forward has no "none": see test_bad_arguments)
@pytest.mark.parametrize("mode, reduction", [("lean", "mean"), ("lean", "none"), ("lean_token_blocks", "sum"),
                                             ("lean_token_blocks", "none"), ("grad_in_forward", "mean"),
                                             ("grad_in_forward_blocks", "sum")])
def test_weights_and_modes_match_reference(mode, reduction):
  h, w, b, y, where, use, tw = _weighted_case()
  ct = jnp.asarray(np.random.default_rng(2).standard_normal((3, 7)) if reduction == "none" else 1.0)

  def fused_fn(h, w, b, tw):
    return fused.linear_softmax_cross_entropy(h, w, y, bias=b, weights=tw, where=where, reduction=reduction,
                                              **_OPTS64, **_MODES[mode])

  def ref_fn(h, w, b, tw):
    return _ref_weighted(h, w, b, tw, y, use, reduction)

  @jax.jit
  def both(h, w, b, tw):
    out = []
    for f in (fused_fn, ref_fn):
      val, vjp = jax.vjp(f, h, w, b, tw)
      out.append((val, vjp(ct)))
    return out

  (val, grads), (rval, rgrads) = both(h, w, b, tw)
  # float64 throughout: the two differ by the order of the sums only
  np.testing.assert_allclose(val, rval, rtol=1e-12, atol=1e-14)
  for name, a, c in zip(("hidden", "weight", "bias", "weights"), grads, rgrads):
    np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-13 * float(np.max(np.abs(c))), err_msg=name)


@pytest.mark.parametrize("mode", ["lean", "grad_in_forward"])
def test_negative_weight_makes_the_loss_nan(mode):
  h, w, b, y, where, use, tw = _weighted_case()
  tw = tw.at[1, 2].set(-1.0)
  f = lambda h, tw: fused.linear_softmax_cross_entropy(h, w, y, weights=tw, ignore_index=-100, **_MODES[mode])
  ok, _ = jax.jit(jax.value_and_grad(f))(h, jnp.abs(tw))
  val, dh = jax.jit(jax.value_and_grad(f))(h, tw)
  assert np.isfinite(ok) and np.isnan(val) and np.all(np.isfinite(dh))
  f = functools.partial(f, tw=tw)
  assert not jax.make_jaxpr(jax.value_and_grad(f))(h).effects  # no checkify effect by default


@pytest.mark.runtime_checks
@pytest.mark.parametrize("mode", ["lean", "grad_in_forward"])
def test_negative_weight_raises_under_runtime_checks(mode):
  h, w, b, y, where, use, tw = _weighted_case()
  tw = tw.at[1, 2].set(-1.0)
  f = lambda tw: fused.linear_softmax_cross_entropy(h, w, y, weights=tw, ignore_index=-100, **_MODES[mode])
  checked = jax.jit(checkify.checkify(f, errors=checkify.user_checks))
  err, val = checked(jnp.abs(tw))
  err.throw()  # valid weights: no error
  err, val = checked(tw)
  assert np.isnan(val)
  with pytest.raises(checkify.JaxRuntimeError, match="weights must be non-negative"):
    err.throw()


@pytest.mark.parametrize("mode", ["lean_token_blocks", "grad_in_forward_blocks"])
def test_aux_logsumexp_and_accuracy(mode):
  """logsumexp equals the reference (and is differentiable); correct is 'first argmax == label', ties included."""
  rng = np.random.default_rng(4)
  n, d, vocab = 21, 8, 45
  w = rng.standard_normal((d, vocab))
  w[:, 5] *= 3.0
  w[:, 30] = w[:, 5]   # classes 5 and 30 tie on rows aligned with that column; 5 comes first
  h = rng.standard_normal((n, d))
  h[:2] = 2 * w[:, 5]
  x = h @ w
  y = np.where(rng.random(n) < 0.5, np.argmax(x, -1), rng.integers(0, vocab, n))
  y[:3] = (5, 30, -100)
  h, w, y = jnp.asarray(h), jnp.asarray(w), jnp.asarray(y)
  use = np.asarray(y) != -100
  c = jnp.asarray(rng.standard_normal(n))

  def fused_fn(h, w):
    loss, aux = fused.linear_softmax_cross_entropy(h, w, y, ignore_index=-100, return_aux=True, **_MODES[mode])
    return loss + jnp.sum(c * aux.logsumexp), aux

  def ref_fn(h, w):
    lse = jnp.where(jnp.asarray(use), jax.nn.logsumexp(h @ w, -1), 0.0)
    loss = _ref_reduce(_ref_rows(h, w, None, y, jnp.asarray(use), eps=0.0, zl=0.0, cap=None), jnp.asarray(use), "mean")
    return loss + jnp.sum(c * lse), lse

  (v1, aux), g1 = jax.jit(jax.value_and_grad(fused_fn, (0, 1), has_aux=True))(h, w)
  (v2, lse), g2 = jax.jit(jax.value_and_grad(ref_fn, (0, 1), has_aux=True))(h, w)
  np.testing.assert_allclose(aux.logsumexp, lse, rtol=1e-13, atol=1e-13)
  np.testing.assert_allclose(v1, v2, rtol=1e-12)
  for a, b_ in zip(g1, g2):
    np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)
  want = (np.argmax(np.asarray(h @ w), -1) == np.asarray(y)) & use
  assert aux.correct.dtype == jnp.bool_ and np.array_equal(aux.correct, want)
  assert want[0] and not want[1] and want.sum() >= 5


def _count_dots(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    total += eqn.primitive.name == "dot_general"
    for p in eqn.params.values():
      for sub in (p if isinstance(p, (tuple, list)) else (p,)):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          total += _count_dots(inner)
  return total


def test_grad_in_forward_does_three_matmuls_instead_of_four():
  h, w, _, y, _, _ = _data(0, (16,), 8, 64, jnp.float32, with_bias=False)

  def dots(**kw):
    f = lambda h, w: fused.linear_softmax_cross_entropy(h, w, y, chunk_size=16, **kw)
    return _count_dots(jax.make_jaxpr(jax.value_and_grad(f, (0, 1)))(h, w).jaxpr)

  assert dots() == 4 and dots(token_block_size=4) == 4
  assert dots(grad_in_forward=True) == 3 and dots(grad_in_forward=True, token_block_size=4) == 3
  # the primal alone is one matmul in both modes (the gradients are computed only under differentiation)
  prim = lambda **kw: _count_dots(jax.make_jaxpr(
      lambda h, w: fused.linear_softmax_cross_entropy(h, w, y, **kw))(h, w).jaxpr)
  assert prim() == 1 and prim(grad_in_forward=True) == 1


def test_token_blocks_bound_the_temporaries():
  """With token blocks, doubling N adds only the float32 dL/dhidden accumulator and O(N) vectors."""
  d, vocab, chunk, block = 16, 2048, 128, 64

  def temp(n, token_block_size):
    h = jax.ShapeDtypeStruct((n, d), jnp.float32)
    w = jax.ShapeDtypeStruct((d, vocab), jnp.float32)
    y = jax.ShapeDtypeStruct((n,), jnp.int32)
    f = lambda h, w, y: fused.linear_softmax_cross_entropy(h, w, y, chunk_size=chunk,
                                                           token_block_size=token_block_size)
    return _temp_bytes(jax.value_and_grad(f, (0, 1)), h, w, y)

  grow_blocked = temp(2048, block) - temp(1024, block)
  grow_plain = temp(2048, None) - temp(1024, None)
  extra = 1024
  # the accumulator (4 D bytes per row) and a few [N] float32 statistics (at most 16 of them)
  assert grow_blocked <= extra * (4 * d + 16 * 4), grow_blocked
  # without blocks the [N, chunk] buffers grow too: at least one more [extra, chunk] float32 array
  assert grow_plain >= extra * chunk * 4, grow_plain


def test_new_options_add_no_effect_by_default():
  h, w, _, y, _, _ = _data(0, (8,), 4, 16, jnp.float32, with_bias=False)
  tw = jnp.ones((8,), jnp.float32)
  for kw in (dict(weights=tw), dict(grad_in_forward=True, weights=tw), dict(return_aux=True),
             dict(token_block_size=3)):
    def f(h, kw=kw):
      out = fused.linear_softmax_cross_entropy(h, w, y, **kw)
      return out[0] + jnp.sum(out[1].logsumexp) if isinstance(out, tuple) else out
    assert not jax.make_jaxpr(jax.value_and_grad(f))(h).effects, kw


def test_default_token_block():
  assert fused.default_token_block(131072) == 256  # the floor: 2**23 / V would be 64
  assert fused.default_token_block(32768) == 256
  assert fused.default_token_block(8192) == 1024
  assert fused.default_token_block(1 << 30) == 256
  b = fused.default_token_block(20000)
  assert b & (b - 1) == 0 and b * 20000 <= 2**23 < 2 * b * 20000
