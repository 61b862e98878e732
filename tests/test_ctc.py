"""CTC loss: against optax, brute-force path enumeration, PyTorch, and its own edge semantics.

Independent references: ``optax.ctc_loss`` (autodiff of a different forward recursion), enumeration of
every alignment of up to 6 frames (value and posterior, no dynamic programming at all), and PyTorch's
native CPU kernel for ``jaxloss.compat.torch.ctc_loss``.
"""

import functools
import itertools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss.compat import torch as T


def _np(x):
  return np.asarray(jax.device_get(x))


def _batch(seed, b, t, k, n, *, blank_id=0, label_low=1):
  """A random padded batch of feasible rows (frames right-padded, labels with repeats)."""
  rng = np.random.default_rng(seed)
  z = 2.0 * rng.standard_normal((b, t, k))
  frames = rng.integers(max(2 * n - 1, 1), t + 1, b)
  lengths = rng.integers(0, n + 1, b)
  classes = [c for c in range(label_low, k) if c != blank_id]
  labels = rng.choice(classes, (b, n)).astype(np.int32)
  fp = (np.arange(t)[None] >= frames[:, None]).astype(np.float64)
  lp = (np.arange(n)[None] >= lengths[:, None]).astype(np.float64)
  return z, fp, np.where(lp > 0, 0, labels).astype(np.int32), lp


def _optax(z, fp, labels, lp, **kw):
  with jax.numpy_dtype_promotion("standard"):
    return optax.ctc_loss(z, fp, labels, lp, **kw)


# Everything is jitted (one compile per shape) and most tests share a few shapes: eager CTC compiles every
# primitive of both scans separately, which is what made these tests slow.
@functools.partial(jax.jit, static_argnames=("blank_id", "zero_infinity", "normalize_by_label_length"))
def _rows_and_grad(z, fp, labels, lp, where=None, **kw):
  """(unreduced loss [B], gradient of its (where-masked) sum w.r.t. the logits)."""
  f = lambda x: jaxloss.ctc_loss(x, fp, labels, lp, where=where, reduction="none", **kw)
  return f(z), jax.grad(lambda x: jnp.sum(f(x)))(z)


@jax.jit
def _optax_rows_and_grad(z, fp, labels, lp):
  return _optax(z, fp, labels, lp), jax.grad(lambda x: jnp.sum(_optax(x, fp, labels, lp)))(z)


# ---------------------------------------------------------------------------
# brute force: every alignment of the valid frames
# ---------------------------------------------------------------------------
def _collapse(path, blank):
  out = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
  return tuple(c for c in out if c != blank)


def _brute_force(z, fp, labels, lp, blank_id=0):
  """(loss [B], d sum(loss) / dz [B, T, K]) by enumerating K^T_valid alignments per row, in float64."""
  z = np.asarray(z, np.float64)
  b, _, k = z.shape
  loss, grad = np.zeros(b), np.zeros_like(z)
  for r in range(b):
    frames = np.flatnonzero(np.asarray(fp[r]) == 0)
    target = tuple(int(c) for c in np.asarray(labels[r])[np.asarray(lp[r]) == 0])
    y = np.exp(z[r, frames] - z[r, frames].max(-1, keepdims=True))
    y /= y.sum(-1, keepdims=True)
    p, post = 0.0, np.zeros_like(y)
    for path in itertools.product(range(k), repeat=len(frames)):
      if _collapse(path, blank_id) == target:
        prob = np.prod(y[np.arange(len(frames)), path]) if path else 1.0
        p += prob
        post[np.arange(len(frames)), path] += prob
    loss[r] = -np.log(p) if p > 0 else np.inf
    grad[r, frames] = y - post / p if p > 0 else np.nan
  return loss, grad


@pytest.mark.parametrize("blank_id", [0, 2])
def test_brute_force_values_and_gradients(blank_id):
  z, fp, labels, lp = _batch(1, 6, 5, 3, 2, blank_id=blank_id, label_low=0)
  fp[0] = [0, 1, 0, 0, 1]  # padded frames in the middle
  labels[1], lp[1] = [1 if blank_id != 1 else 0] * 2, 0  # a repeated label
  want, want_g = _brute_force(z, fp, labels, lp, blank_id)
  assert np.all(np.isfinite(want))
  got, got_g = _rows_and_grad(z, fp, labels, lp, blank_id=blank_id)
  np.testing.assert_allclose(_np(got), want, rtol=1e-12)
  np.testing.assert_allclose(_np(got_g), want_g, rtol=1e-10, atol=1e-12)


def test_brute_force_masked_logits_and_tight_alignment():
  z, fp, labels, lp = _batch(2, 3, 6, 4, 2)
  z[:, :, 3] = -np.inf  # masked class
  labels[:], lp[:], fp[:] = [[1, 2], [2, 2], [1, 1]], 0, 0
  fp[1, 3:] = 1  # (2, 2) in exactly 3 frames: the single alignment 2 0 2
  want, want_g = _brute_force(z, fp, labels, lp)
  got, got_g = map(_np, _rows_and_grad(z, fp, labels, lp))
  np.testing.assert_allclose(got, want, rtol=1e-12)
  np.testing.assert_allclose(got_g, np.nan_to_num(want_g, nan=0.0), rtol=1e-10, atol=1e-12)
  assert np.all(got_g[:, :, 3] == 0.0)


# ---------------------------------------------------------------------------
# optax
# ---------------------------------------------------------------------------
_SHAPE = (6, 8, 5, 3)  # (B, T, K, N) shared by most tests below


@pytest.mark.parametrize("seed,shape", [(0, (8, 30, 7, 6)), (1, _SHAPE), (2, _SHAPE)])
def test_matches_optax_value_and_gradient(seed, shape):
  z, fp, labels, lp = _batch(seed, *shape)
  fp[0, 3] = 1  # a padded frame inside the sequence (optax skips it too)
  (v, g), (vo, go) = _rows_and_grad(z, fp, labels, lp), _optax_rows_and_grad(z, fp, labels, lp)
  np.testing.assert_allclose(_np(v), _np(vo), rtol=1e-11)
  np.testing.assert_allclose(_np(g), _np(go), rtol=1e-9, atol=1e-12)
  # optax's mean over sequences is the default reduction
  np.testing.assert_allclose(float(jax.jit(jaxloss.ctc_loss)(z, fp, labels, lp)), float(jnp.mean(vo)), rtol=1e-11)


def test_float32_gradient_closer_to_float64_than_optax():
  """At B=4, T=120 the rescaled recursions keep float32 gradients within ~1e-5 of float64."""
  z, fp, labels, lp = _batch(3, 4, 120, 20, 25)
  g64 = _np(_rows_and_grad(z, fp, labels, lp)[1])
  g32 = _np(_rows_and_grad(z.astype(np.float32), fp, labels, lp)[1])
  assert g32.dtype == np.float32
  assert np.max(np.abs(g32 - g64)) < 1e-4


def test_infeasible_row_inf_nan_gradient_and_zero_infinity():
  z, fp, labels, lp = _batch(4, *_SHAPE)
  labels[0, :2], lp[0], fp[0] = [1, 1], [0, 0, 1], [0, 0, 1, 1, 1, 1, 1, 1]  # (1, 1) needs 3 frames, has 2
  loss, g = map(_np, _rows_and_grad(z, fp, labels, lp))
  assert loss[0] == np.inf and np.all(np.isfinite(loss[1:]))
  assert _np(_optax_rows_and_grad(z, fp, labels, lp)[0])[0] > 1e4  # optax: a large finite value (log_epsilon)
  assert np.all(np.isnan(g[0, :2])) and np.all(g[0, 2:] == 0.0) and np.all(np.isfinite(g[1:]))
  # zero_infinity: 0 and a zero gradient on that row, the others unchanged
  loss_zi, g_zi = map(_np, _rows_and_grad(z, fp, labels, lp, zero_infinity=True))
  np.testing.assert_array_equal(loss_zi, np.where(np.isinf(loss), 0.0, loss))
  assert np.all(g_zi[0] == 0.0)
  np.testing.assert_array_equal(g_zi[1:], g[1:])
  # where=False on the row: the same, without zero_infinity
  keep = np.arange(_SHAPE[0]) > 0
  loss_w, g_w = map(_np, _rows_and_grad(z, fp, labels, lp, where=keep))
  assert loss_w[0] == 0.0 and np.all(g_w[0] == 0.0)
  np.testing.assert_array_equal(g_w[1:], g[1:])


def test_never_negative_on_near_certain_alignment():
  """One label, 4 frames, margin 17 in float32: optax 0.2.8 returns about -1.2e-07 here."""
  z = np.zeros((1, 4, 2), np.float32)
  z[0, :2, 1] = 17.0
  z[0, 2:, 0] = 17.0
  fp, labels, lp = np.zeros((1, 4), np.float32), np.array([[1]], np.int32), np.zeros((1, 1), np.float32)
  got = float(jaxloss.ctc_loss(z, fp, labels, lp, reduction="none")[0])
  want, _ = _brute_force(z.astype(np.float64), fp, labels, lp)
  assert 0.0 <= got <= 4 * np.finfo(np.float32).eps
  assert abs(got - want[0]) <= 4 * np.finfo(np.float32).eps
  for dtype in (jnp.bfloat16, jnp.float16):
    assert float(jaxloss.ctc_loss(z.astype(dtype), fp, labels, lp)) >= 0.0


def test_normalize_by_label_length_is_pytorch_mean():
  z, fp, labels, lp = _batch(5, *_SHAPE)
  per_row, g = map(_np, _rows_and_grad(z, fp, labels, lp))
  lengths = np.maximum((lp == 0).sum(1), 1)
  got, got_g = map(_np, _rows_and_grad(z, fp, labels, lp, normalize_by_label_length=True))
  np.testing.assert_allclose(got, per_row / lengths, rtol=1e-13)
  np.testing.assert_allclose(got_g, g / lengths[:, None, None], rtol=1e-13)


def test_low_precision_computed_in_float32():
  z, fp, labels, lp = _batch(6, *_SHAPE)
  for dtype in (jnp.bfloat16, jnp.float16):
    x = jnp.asarray(z, dtype)
    loss, g = _rows_and_grad(x, fp, labels, lp)
    assert loss.dtype == jnp.float32 and g.dtype == dtype
    want, want_g = _rows_and_grad(x.astype(jnp.float32), fp, labels, lp)
    np.testing.assert_array_equal(_np(loss), _np(want))  # the same float32 computation
    np.testing.assert_array_equal(_np(g), _np(want_g.astype(dtype)))


def test_forward_mode_is_the_closed_form_contracted():
  z, fp, labels, lp = _batch(7, *_SHAPE)
  v = np.random.default_rng(0).standard_normal(z.shape)
  f = lambda x: jaxloss.ctc_loss(x, fp, labels, lp, reduction="sum")
  g = _np(_rows_and_grad(z, fp, labels, lp)[1])
  np.testing.assert_allclose(float(jax.jit(lambda a, b: jax.jvp(f, (a,), (b,))[1])(z, v)), np.sum(g * v), rtol=1e-12)


def test_reverse_mode_does_not_tape_the_scan():
  """The gradient's jaxpr has the one alpha/beta scan and no transposed (taped) scan; optax's has two."""
  z, fp, labels, lp = _batch(8, 2, 10, 4, 3)

  def scans(fn):
    jaxpr = jax.make_jaxpr(jax.grad(fn))(z)
    found = []

    def walk(j):
      for eqn in j.eqns:
        if eqn.primitive.name == "scan":
          found.append(eqn)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
          walk(sub)

    walk(jaxpr.jaxpr)
    return found

  ours = scans(lambda x: jaxloss.ctc_loss(x, fp, labels, lp))
  assert len(ours) == 1
  # its outputs: the carry and the per-frame (a_hat, beta) stacks, nothing else kept for a backward pass
  assert len(ours[0].outvars) == 2 + 2
  assert len(scans(lambda x: jnp.mean(_optax(x, fp, labels, lp)))) == 2


# ---------------------------------------------------------------------------
# padding helper, validation, shapes
# ---------------------------------------------------------------------------
def test_paddings_from_lengths():
  pad = _np(jaxloss.paddings_from_lengths(jnp.array([0, 2, 3]), 3))
  np.testing.assert_array_equal(pad, [[1, 1, 1], [0, 0, 1], [0, 0, 0]])
  assert pad.dtype == np.float32
  bad = _np(jaxloss.paddings_from_lengths(jnp.array([1, 4, -1]), 3))
  assert np.all(np.isfinite(bad[0])) and np.all(np.isnan(bad[1:]))
  # lengths -> paddings -> ctc_loss equals explicit paddings
  z, fp, labels, lp = _batch(9, *_SHAPE)
  frames, lengths = (fp == 0).sum(1), (lp == 0).sum(1)
  np.testing.assert_array_equal(_np(jaxloss.paddings_from_lengths(frames, 8)), fp)
  np.testing.assert_array_equal(_np(jaxloss.paddings_from_lengths(lengths, 3)), lp)
  too_long = np.where(np.arange(_SHAPE[0]) == 1, 9, frames)  # a length past max_length: that row is NaN
  loss = _np(_rows_and_grad(z, jaxloss.paddings_from_lengths(too_long, 8), labels, lp)[0])
  assert np.isnan(loss[1]) and np.all(np.isfinite(np.delete(loss, 1)))


def test_invalid_rows_are_nan():
  z, fp, labels, lp = _batch(10, *_SHAPE)
  lp[:] = 0
  labels[:] = [1, 2, 3]
  fp[0, 0] = 0.5  # not 0/1
  lp[1] = [1, 0, 0]  # not right-padded
  labels[2, 1] = 5  # out of range
  labels[3, 0] = 0  # the blank
  loss = _np(_rows_and_grad(z, fp, labels, lp)[0])
  assert np.all(np.isnan(loss[:4])) and np.all(np.isfinite(loss[4:]))


@pytest.mark.runtime_checks
def test_runtime_checks_name_the_argument():
  z, fp, labels, lp = _batch(11, *_SHAPE)
  labels[0, 0], lp[0, 0] = 9, 0
  err, _ = checkify.checkify(lambda x: jaxloss.ctc_loss(x, fp, labels, lp), errors=checkify.user_checks)(z)
  with pytest.raises(checkify.JaxRuntimeError, match="labels must be class indices"):
    err.throw()


def test_shape_and_option_errors():
  z, fp, labels, lp = _batch(12, *_SHAPE)
  with pytest.raises(ValueError, match="logit_paddings"):
    jaxloss.ctc_loss(z, fp[:, :5], labels, lp)
  with pytest.raises(ValueError, match="label_paddings"):
    jaxloss.ctc_loss(z, fp, labels, lp[:, :1])
  with pytest.raises(ValueError, match=r"logits must be \[B, T, K\]"):
    jaxloss.ctc_loss(z[0], fp, labels, lp)
  with pytest.raises(ValueError, match="blank_id"):
    jaxloss.ctc_loss(z, fp, labels, lp, blank_id=5)
  with pytest.raises(TypeError, match="labels"):
    jaxloss.ctc_loss(z, fp, labels.astype(np.float64), lp)
  with pytest.raises(TypeError, match="zero_infinity"):
    jaxloss.ctc_loss(z, fp, labels, lp, zero_infinity=1)


# ---------------------------------------------------------------------------
# compat.torch.ctc_loss against PyTorch's CPU kernel
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_ctc_loss_matches_pytorch(dtype):
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(13)
  t, b, c = 10, 5, 6
  log_probs = jax.nn.log_softmax(jnp.asarray(rng.standard_normal((t, b, c)))).astype(dtype)
  log_probs = _np(log_probs.at[:, 3].add(0.3))  # row 3: not normalized (used as given, as in PyTorch)
  targets = rng.integers(1, c - 1, (b, 4))
  targets[1, :3] = [2, 2, 2]
  input_lengths = np.array([10, 6, 2, 9, 7])  # row 2: 2 frames for 3 labels: infeasible
  target_lengths = np.array([4, 3, 3, 2, 0])
  flat = np.concatenate([targets[i, :n] for i, n in enumerate(target_lengths)])
  tol = dict(rtol=2e-6, atol=2e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
  cases = ([(0, "none", False, targets), (c - 1, "sum", True, flat)] if dtype == "float64" else
           [(0, "mean", True, targets), (0, "mean", False, flat)])
  for blank, reduction, zero_inf, tg in cases:
    lpt = torch.tensor(log_probs, requires_grad=True)
    want = torch.nn.functional.ctc_loss(lpt, torch.tensor(tg), torch.tensor(input_lengths),
                                        torch.tensor(target_lengths), blank=blank, reduction=reduction,
                                        zero_infinity=zero_inf)
    want.sum().backward()

    def f(x, tg=tg, blank=blank, reduction=reduction, zero_inf=zero_inf):
      return T.ctc_loss(x, tg, input_lengths, target_lengths, blank=blank, reduction=reduction,
                        zero_infinity=zero_inf)

    got, got_g = jax.jit(lambda x, f=f: (f(x), jax.grad(lambda y: jnp.sum(f(y)))(x)))(log_probs)
    note = f"blank={blank} reduction={reduction} zero_infinity={zero_inf}"
    np.testing.assert_allclose(_np(got), want.detach().numpy(), **tol, err_msg=note)
    np.testing.assert_allclose(_np(got_g), lpt.grad.numpy(), **tol, err_msg=note)
    assert got.dtype == np.dtype(dtype)


# ---------------------------------------------------------------------------
# benchmarks/ctc.py smoke test (no timing asserted)
# ---------------------------------------------------------------------------
def test_benchmark_script_quick(tmp_path):
  import os  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
  import _harness as H  # pylint: disable=g-import-not-at-top
  import ctc as bench_ctc  # pylint: disable=g-import-not-at-top

  out, js = tmp_path / "ctc.md", tmp_path / "ctc.json"
  with jax.numpy_dtype_promotion("standard"):
    assert bench_ctc.main(["--quick", "--out", str(out), "--json", str(js)]) == 0
  meta = H.parse_fragment_meta(out.read_text())
  assert meta is not None and meta["script"] == "benchmarks/ctc.py"
  import json  # pylint: disable=g-import-not-at-top

  result = json.loads(js.read_text())["result"]
  assert result["ratio v&g"] > 0 and result["jaxloss grad err vs f64"] < 1e-4
