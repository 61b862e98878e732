"""Sensitivity of jaxloss.verify: every mutant of a registry closed form must be caught.

A mutant is a registry spec whose closed-form gradient or Hessian is wrapped to
plant one mistake: a small relative error on ordinary points (1e-4 in float32,
1e-8 in float64), a sign flip in one component, a term missing only in a
config/edge (label smoothing, the ignore_index row), NaN at one edge point, a
wrong Hessian diagonal, or a cancellation that the implementation and the
closed form share (the versions of the softmax cross-entropies before
issue 13, kept here verbatim: ``S p - y`` and ``p - p^2`` by subtraction,
which are 0 instead of about 4e-8 on the row ``[17, 0]`` in float32 and wrong
in float64 on ``[30, -30, 0]``, where no float64 reference can see it; the
multiprecision reference of ``LossSpec.reference_mp`` does). A mutant may
replace module internals for its duration (``patches``), so that the public
function itself runs the pre-fix code. The control, that the unmodified specs
pass (in all four dtypes, on a superset of these points and configs), is
tests/test_registry.py::test_verify_registered.

``MUTANTS`` is also used by benchmarks/verify_power.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from unittest import mock

import jax
import jax.numpy as jnp
import pytest
from jax.custom_derivatives import SymbolicZero

import jaxloss
from jaxloss import _classification as C
from jaxloss import verify


@dataclasses.dataclass(frozen=True)
class Mutant:
  name: str
  loss: str
  category: str
  dtype: str
  build: object  # spec -> mutant spec
  check: dict  # keyword arguments of verify.check_spec (which points/configs to look at)
  target: str  # "grad" or "hess"
  patches: tuple = ()  # (module, attribute, replacement): module internals replaced while the mutant runs


def patched(m: Mutant):
  """A context manager that installs the mutant's patches (the pre-fix internals)."""
  stack = contextlib.ExitStack()
  for module, attr, value in m.patches:
    stack.enter_context(mock.patch.object(module, attr, value))
  return stack


def _grad(i, wrap):
  """A builder replacing grads[i] by wrap(g)."""

  def build(spec):
    g = spec.grads[i]
    return dataclasses.replace(spec, grads={**spec.grads, i: wrap(g)})

  return build


def _hess(wrap):
  def build(spec):
    return dataclasses.replace(spec, hessian=wrap(spec.hessian))

  return build


def rel(factor):
  return lambda g: (lambda *a, **c: g(*a, **c) * (1.0 + factor))


def flip_one(g):
  """Negates the largest-magnitude component."""

  def out(*a, **c):
    v = g(*a, **c)
    flat = v.reshape(-1)
    k = jnp.argmax(jnp.abs(flat))
    return flat.at[k].multiply(-1.0).reshape(v.shape)

  return out


def drop_config(key):
  """The closed form ignores one option (e.g. label smoothing): wrong only where it is set."""

  def wrap(g):
    return lambda *a, **c: g(*a, **{k: v for k, v in c.items() if k != key})

  return wrap


def nan_where(cond):
  """Right everywhere except NaN where cond(*args) holds (an edge point)."""

  def wrap(g):
    def out(*a, **c):
      v = g(*a, **c)
      return jnp.where(cond(*a), jnp.asarray(jnp.nan, v.dtype), v)

    return out

  return wrap


def ignore_row_kept(g):
  """softmax CE with integer labels: the ignore_index row gets softmax(z) instead of 0."""

  def out(z, labels, **c):
    v = g(z, labels, **c)
    ign = c.get("ignore_index")
    if ign is None:
      return v
    row = (labels == ign)[..., None]
    return v + jnp.where(row, jax.nn.softmax(jnp.where(jnp.isfinite(z), z, -1e30), axis=-1), 0.0).astype(v.dtype)

  return out


def hess_diag(factor):
  def wrap(h):
    def out(*a, **c):
      m = h(*a, **c)
      n = int(round(m.size ** 0.5))
      flat = m.reshape(n, n)
      flat = flat + factor * jnp.diag(jnp.diag(flat))
      return flat.reshape(m.shape)

    return out

  return wrap


# ---- the softmax cross-entropies before issue 13 (kept verbatim): a shared cancellation at p ~ 1
@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def prefix_soft_ce(z, y, axis):
  d, _, _, log_norm, _ = C._softmax_stats(z, axis)
  return C._soft_ce_value(y, d, log_norm, axis)


def _prefix_soft_ce_jvp(axis, primals, tangents):
  (z, y), (dz, dy) = primals, tangents
  d, e, s, log_norm, _ = C._softmax_stats(z, axis)
  out = prefix_soft_ce(z, y, axis)
  tangent = jnp.zeros_like(out)
  if not isinstance(dz, SymbolicZero):
    big_s = jnp.sum(y, axis=axis, keepdims=True)
    tangent = tangent + jnp.sum((big_s * (e / s) - y) * dz, axis=axis)  # S p - y by subtraction
  if not isinstance(dy, SymbolicZero):
    minus_logp = jnp.where((y == 0) & (d == jnp.inf), jnp.zeros((), d.dtype), d + log_norm)
    tangent = tangent + jnp.sum(minus_logp * dy, axis=axis)
  return out, tangent


prefix_soft_ce.defjvp(_prefix_soft_ce_jvp, symbolic_zeros=True)


def prefix_sce_dz(z, y, *, axis=-1, label_smoothing=0.0, z_loss=0.0):
  z, y = C._cast_like_logits(z, y)
  y = C._smooth_dist(y, label_smoothing, axis)
  g = jnp.sum(y, axis=axis, keepdims=True) * jax.nn.softmax(z, axis=axis) - y
  return g + C._z_loss_grad(z, jax.nn.softmax(z, axis=axis), z_loss, axis) if z_loss else g


def prefix_hessian_blocks(z, scale, axis, z_loss=0.0):
  zm = jnp.moveaxis(z, axis, -1)
  p = jax.nn.softmax(zm, axis=-1)
  blocks = jnp.einsum("...j,jk->...jk", p, jnp.eye(p.shape[-1], dtype=p.dtype)) - p[..., :, None] * p[..., None, :]
  if not z_loss:
    return scale[..., None, None] * blocks
  lse = jax.nn.logsumexp(zm, axis=-1)
  return (scale + 2 * z_loss * lse)[..., None, None] * blocks + 2 * z_loss * p[..., :, None] * p[..., None, :]


def prefix_ice_dz(z, labels, *, axis=-1, label_smoothing=0.0, z_loss=0.0, class_weights=None, ignore_index=None):
  (z,) = C._cast_like_logits(z)
  c = z.shape[axis]
  q = (1 - label_smoothing) * jax.nn.one_hot(labels, c, dtype=z.dtype, axis=axis) + label_smoothing / c
  w = C._int_row_factor(labels, class_weights, ignore_index, z.dtype)
  p = jax.nn.softmax(z, axis=axis)
  g = p - q if not z_loss else p - q + C._z_loss_grad(z, p, z_loss, axis)
  return jnp.expand_dims(w, axis) * g


def _confident(spec):
  """Only the confident-row edge points (where the cancellation is; fewer shape groups to trace)."""
  return dataclasses.replace(spec, edge_cases=tuple(e for e in spec.edge_cases if "confident" in e.note))


def _prefix_sce():
  def build(spec):
    return dataclasses.replace(_confident(spec), grads={**spec.grads, 0: prefix_sce_dz})

  return build


def _prefix_ice(spec):
  return dataclasses.replace(_confident(spec), grads={**spec.grads, 0: prefix_ice_dz})


_PREFIX_SCE_IMPL = ((C, "_soft_ce", prefix_soft_ce),)
_PREFIX_BLOCKS = ((C, "_softmax_hessian_blocks", prefix_hessian_blocks),)
_EDGES_GRAD = dict(configs=[], edge_cases=True, hessian=False)
_EDGES_HESS = dict(configs=[], edge_cases=True, argnums=())

_ORDINARY = dict(configs=[{}], edge_cases=False, hessian=False)  # the sampled point and points near it

MUTANTS = [
    # small relative errors on well-conditioned points
    Mutant("rel 1e-4 f32", "squared_error", "relative error", "f32", _grad(0, rel(1e-4)), _ORDINARY, "grad"),
    Mutant("rel 1e-8 f64", "squared_error", "relative error", "f64", _grad(1, rel(1e-8)), _ORDINARY, "grad"),
    Mutant("rel 1e-4 f32", "sigmoid_binary_cross_entropy", "relative error", "f32", _grad(0, rel(1e-4)),
           _ORDINARY, "grad"),
    Mutant("rel 1e-8 f64", "sigmoid_binary_cross_entropy", "relative error", "f64", _grad(0, rel(1e-8)),
           _ORDINARY, "grad"),
    Mutant("rel 1e-4 f32", "softmax_cross_entropy", "relative error", "f32", _grad(0, rel(1e-4)), _ORDINARY,
           "grad"),
    Mutant("rel 1e-8 f64", "softmax_cross_entropy_with_integer_labels", "relative error", "f64",
           _grad(0, rel(1e-8)), _ORDINARY, "grad"),
    Mutant("rel 1e-4 f32", "log_cosh", "relative error", "f32", _grad(0, rel(1e-4)), _ORDINARY, "grad"),
    Mutant("rel 1e-8 f64", "poisson_nll", "relative error", "f64", _grad(0, rel(1e-8)), _ORDINARY, "grad"),
    Mutant("rel 1e-4 f32 (variance)", "gaussian_nll", "relative error", "f32", _grad(2, rel(1e-4)), _ORDINARY,
           "grad"),
    Mutant("rel 1e-8 f64 (targets)", "kl_divergence", "relative error", "f64", _grad(1, rel(1e-8)), _ORDINARY,
           "grad"),
    Mutant("rel 1e-4 f32", "entropy", "relative error", "f32", _grad(0, rel(1e-4)), _ORDINARY, "grad"),
    # a sign flip in one component
    Mutant("sign flip", "squared_error", "sign flip", "f32", _grad(0, flip_one), _ORDINARY, "grad"),
    Mutant("sign flip", "softmax_cross_entropy_with_integer_labels", "sign flip", "f32", _grad(0, flip_one),
           _ORDINARY, "grad"),
    Mutant("sign flip (targets)", "huber_loss", "sign flip", "f32", _grad(1, flip_one), _ORDINARY, "grad"),
    Mutant("sign flip", "binary_cross_entropy", "sign flip", "f32", _grad(0, flip_one), _ORDINARY, "grad"),
    # a term missing only in a config / at an edge
    Mutant("no label smoothing", "sigmoid_binary_cross_entropy", "term missing at edges", "f32",
           _grad(0, drop_config("label_smoothing")),
           dict(configs=[{"label_smoothing": 0.1}], edge_cases=False, hessian=False), "grad"),
    Mutant("no label smoothing", "softmax_cross_entropy", "term missing at edges", "f32",
           _grad(0, drop_config("label_smoothing")),
           dict(configs=[{"label_smoothing": 0.1}], edge_cases=False, hessian=False), "grad"),
    Mutant("no label smoothing", "softmax_cross_entropy_with_integer_labels", "term missing at edges", "f64",
           _grad(0, drop_config("label_smoothing")),
           dict(configs=[{"label_smoothing": 0.1}], edge_cases=False, hessian=False), "grad"),
    Mutant("ignore_index row kept", "softmax_cross_entropy_with_integer_labels", "term missing at edges",
           "f32", _grad(0, ignore_row_kept), dict(configs=[], edge_cases=True, hessian=False), "grad"),
    # right except NaN at one edge point
    Mutant("NaN at |z| > 1e3", "sigmoid_binary_cross_entropy", "NaN at an edge", "f32",
           _grad(0, nan_where(lambda z, y, **c: jnp.abs(z) > 1e3)),
           dict(configs=[], edge_cases=True, hessian=False), "grad"),
    Mutant("NaN at |p| > 1e10", "squared_error", "NaN at an edge", "f32",
           _grad(0, nan_where(lambda p, y, **c: jnp.abs(p) > 1e10)),
           dict(configs=[], edge_cases=True, hessian=False), "grad"),
    Mutant("NaN at |r| > 80", "log_cosh", "NaN at an edge", "f32",
           _grad(0, nan_where(lambda p, y, **c: jnp.abs(p - y) > 80)),
           dict(configs=[], edge_cases=True, hessian=False), "grad"),
    Mutant("NaN at p = 0", "binary_cross_entropy", "NaN at an edge", "f32",
           _grad(0, nan_where(lambda p, y, **c: p == 0)),
           dict(configs=[], edge_cases=True, hessian=False), "grad"),
    # a wrong Hessian diagonal
    Mutant("H diag x (1 + 1e-4)", "squared_error", "wrong Hessian diagonal", "f32", _hess(hess_diag(1e-4)),
           dict(configs=[{}], edge_cases=False, argnums=()), "hess"),
    Mutant("H diag x (1 + 1e-4)", "sigmoid_binary_cross_entropy", "wrong Hessian diagonal", "f32",
           _hess(hess_diag(1e-4)), dict(configs=[{}], edge_cases=False, argnums=()), "hess"),
    Mutant("H diag x (1 + 1e-4)", "softmax_cross_entropy", "wrong Hessian diagonal", "f32",
           _hess(hess_diag(1e-4)), dict(configs=[{}], edge_cases=False, argnums=()), "hess"),
    Mutant("H diag x (1 + 1e-8)", "softmax_cross_entropy_with_integer_labels", "wrong Hessian diagonal", "f64",
           _hess(hess_diag(1e-8)), dict(configs=[{}], edge_cases=False, argnums=()), "hess"),
    # implementation and closed form share a cancellation (the pre-issue-13 code)
    Mutant("pre-fix S p - y (impl + closed form)", "softmax_cross_entropy", "shared cancellation", "f32",
           _prefix_sce(), _EDGES_GRAD, "grad", _PREFIX_SCE_IMPL),
    Mutant("pre-fix S p - y (impl + closed form)", "softmax_cross_entropy", "shared cancellation", "bf16",
           _prefix_sce(), _EDGES_GRAD, "grad", _PREFIX_SCE_IMPL),
    Mutant("pre-fix p - p^2 (impl + closed form)", "softmax_cross_entropy", "shared cancellation", "f32",
           _confident, _EDGES_HESS, "hess", _PREFIX_SCE_IMPL + _PREFIX_BLOCKS),
    Mutant("pre-fix p - p^2 (impl + closed form)", "softmax_cross_entropy", "shared cancellation", "f64",
           _confident, _EDGES_HESS, "hess", _PREFIX_SCE_IMPL + _PREFIX_BLOCKS),
    Mutant("pre-fix p - q (closed form)", "softmax_cross_entropy_with_integer_labels", "shared cancellation",
           "f64", _prefix_ice, _EDGES_GRAD, "grad"),
    Mutant("pre-fix p - p^2 (closed form)", "softmax_cross_entropy_with_integer_labels", "shared cancellation",
           "f64", _confident, _EDGES_HESS, "hess", _PREFIX_BLOCKS),
]


# ===========================================================================================================
# issue 13, items 2-4 (helper i13-faults): the pre-fix versions, kept as mutants. Entries only; nothing above
# is changed. Value-only faults of items 3-4 (log(1 - p) on a rounded 1 - p, rows that are not distributions,
# r^2 overflowing in huber/smooth_l1) are invisible to a gradient check; they are value tests in
# tests/test_value_faults.py, each with its pre-fix version shown to fail there.
# ===========================================================================================================
import numpy as _np  # noqa: E402

_HALF_LOG_2PI_13 = 0.5 * float(_np.log(2.0 * _np.pi))


def _gaussian_nll_pre13(mean, targets, variance, *, log_variance=False, full=False, reduction="none"):
  """gaussian_nll before issue 13 (unreduced): r^2 / v and r^2 e^{-s} as written (0 * inf)."""
  assert reduction == "none"
  mean, targets, variance = (jnp.asarray(a) for a in (mean, targets, variance))
  dtype = jnp.float64 if mean.dtype == jnp.float64 else jnp.float32
  mu, t, v = (a.astype(dtype) for a in (mean, targets, variance))
  r2 = jnp.square(t - mu)
  if log_variance:
    loss = 0.5 * (v + r2 * jnp.exp(-v))
  else:
    bad = ~(v > 0)
    safe_v = jnp.where(bad, jnp.ones_like(v), v)
    loss = jnp.where(bad, jnp.nan, 0.5 * (jnp.log(safe_v) + r2 / safe_v))
  return loss + _HALF_LOG_2PI_13 if full else loss


def _gaussian_dmu_pre13(mu, y, v, log_variance=False, full=False):
  del full
  var = jnp.exp(v) if log_variance else v
  return (mu - y) / var


def _gaussian_dv_pre13(mu, y, v, log_variance=False, full=False):
  del full
  r2 = jnp.square(y - mu)
  if log_variance:
    return 0.5 * (1.0 - r2 * jnp.exp(-v))
  return 0.5 * (1.0 / v - r2 / jnp.square(v))


def _poisson_nll_pre13(log_rate, targets, *, full=False, reduction="none"):
  """poisson_nll before issue 13 (unreduced, full=False): e^r - y r, NaN at r = -inf, y = 0."""
  assert reduction == "none" and not full
  r = jnp.asarray(log_rate)
  dtype = jnp.float64 if r.dtype == jnp.float64 else jnp.float32
  r, t = r.astype(dtype), jnp.asarray(targets).astype(dtype)
  return jnp.where(t >= 0, jnp.exp(r) - t * r, jnp.nan)


def _poisson_dy_pre13(r, y, full=False, log_input=True):
  """Pre-fix log-rate slope -r, also at r = -inf, y = 0 (0 * inf); the rate-input branch, added later, as now."""
  if not log_input:
    return jaxloss.REGISTRY["poisson_nll"].grads[1](r, y, full=full, log_input=False)
  del y, full
  return -r


def _replace(**fields):
  """A builder replacing spec fields (``fn``, ``grads`` given as {argnum: fn}, ``edge_cases``)."""

  def build(spec):
    if "grads" in fields:
      fields_ = dict(fields, grads={**spec.grads, **fields["grads"]})
    else:
      fields_ = fields
    return dataclasses.replace(spec, **fields_)

  return build


# Plain-variance points need a variance below 1e-19 (float32) or 1e-162 (float64): not representable in
# float16, so they are not registry edge cases (those run in every dtype); each mutant brings its own.
_TINY_VAR_F32 = jaxloss.EdgeCase((_np.array([0.0, 0.0]), _np.array([0.0, 1e-20]), _np.array([1e-30, 1e-30])),
                                 "variance 1e-30, zero and tiny residuals")
_TINY_VAR_F64 = jaxloss.EdgeCase((_np.array([0.0, 0.0]), _np.array([0.0, 1e-110]), _np.array([1e-200, 1e-200])),
                                 "variance 1e-200, zero and tiny residuals")
_EDGES_ONLY = dict(configs=[], edge_cases=True, hessian=False)

MUTANTS_ISSUE13 = [
    Mutant("issue 13: implementation r^2 / v (0 * inf)", "gaussian_nll", "NaN at an edge", "f32",
           _replace(fn=_gaussian_nll_pre13, edge_cases=(_TINY_VAR_F32,)), _EDGES_ONLY, "grad"),
    Mutant("issue 13: implementation r^2 e^{-s} (0 * inf)", "gaussian_nll", "NaN at an edge", "bf16",
           _replace(fn=_gaussian_nll_pre13), _EDGES_ONLY, "grad"),
    Mutant("issue 13: closed form r^2 / v^2 (0 / 0)", "gaussian_nll", "NaN at an edge", "f64",
           _replace(grads={2: _gaussian_dv_pre13}, edge_cases=(_TINY_VAR_F64,)), _EDGES_ONLY, "grad"),
    Mutant("issue 13: closed forms (mu - y) / e^s, r^2 e^{-s}", "gaussian_nll", "NaN at an edge", "f64",
           _replace(grads={0: _gaussian_dmu_pre13, 2: _gaussian_dv_pre13}), _EDGES_ONLY, "grad"),
]
_ZERO_RATE = dict(configs=[{}], edge_cases=True, hessian=False)  # "full" is not in the pre-fix copy
MUTANTS_ISSUE13 += [
    Mutant("issue 13: implementation y r at r = -inf, y = 0 (0 * inf)", "poisson_nll", "NaN at an edge", "f32",
           _replace(fn=_poisson_nll_pre13, edge_cases=tuple(
               e for e in jaxloss.REGISTRY["poisson_nll"].edge_cases if not e.config)), _ZERO_RATE, "grad"),
    Mutant("issue 13: closed form -r at r = -inf, y = 0", "poisson_nll", "term missing at edges", "f64",
           _replace(grads={1: _poisson_dy_pre13}), _EDGES_ONLY, "grad"),
]
MUTANTS += MUTANTS_ISSUE13


def mutant_spec(m: Mutant):
  return m.build(jaxloss.REGISTRY[m.loss])


def run_mutant(m: Mutant) -> verify.Report:
  with patched(m):
    return verify.check_spec(mutant_spec(m), dtypes=[m.dtype], **m.check)


def test_enough_mutants():
  assert len(MUTANTS) >= 20
  assert {m.category for m in MUTANTS} == {"relative error", "sign flip", "term missing at edges",
                                           "NaN at an edge", "wrong Hessian diagonal", "shared cancellation"}


def test_prefix_versions_are_the_issue_13_faults():
  """The pre-fix code kept as mutants really has the faults of issue 13 (else the mutants test nothing)."""
  z, y = jnp.array([17.0, 0.0], jnp.float32), jnp.array([1.0, 0.0], jnp.float32)
  f = lambda z: jaxloss.softmax_cross_entropy(z, y, reduction="sum")
  with mock.patch.object(C, "_soft_ce", prefix_soft_ce):
    g = jax.grad(f)(z)
    h = jax.hessian(f)(z)
  assert float(g[0]) == 0.0 and float(h[0, 0]) == 0.0  # the faults: true -4.14e-8 and 4.14e-8
  assert float(prefix_sce_dz(z, y)[0]) == 0.0
  assert float(prefix_hessian_blocks(z, jnp.ones((), jnp.float32), -1)[0, 0]) == 0.0
  # and the fixed code does not have them
  assert float(jax.grad(f)(z)[0]) < 0 and float(jax.hessian(f)(z)[0, 0]) > 0


@pytest.mark.parametrize("m", MUTANTS, ids=[f"{m.loss}:{m.name}" for m in MUTANTS])
def test_mutant_is_caught(m):
  spec = jaxloss.REGISTRY[m.loss]
  if m.target == "hess":
    assert spec.hessian is not None, f"{m.loss} has no closed-form Hessian any more; pick another loss"
  report = run_mutant(m)
  assert report.rows, "nothing was checked"
  assert not report.ok, f"mutant {m.name} of {m.loss} was not caught:\n{report}"
  assert all(r.check.startswith(m.target) for r in report.failures)

