r"""Verify a loss's derivatives against their closed form, in every dtype, at the edges.

``jax.test_util.check_grads`` compares autodiff with finite differences along
one random direction at one point: it passes when both sides are NaN, raises
false alarms on correct bfloat16 gradients and cannot see a 0.05% gradient
error in float32. This module compares three independent things instead:

* the **closed form** (your hand-derived gradient / Hessian, evaluated in
  float64 on the dtype-rounded inputs: that is the reference),
* **autodiff in the dtype under test** (reverse mode ``jax.grad`` /
  ``jax.hessian`` and forward mode ``jax.jvp`` along random directions),
* **float64 central finite differences** of the loss itself (no autodiff at
  all), along random directions,

on the given arguments, on edge points, and on random points near them, in
each requested dtype.

Checks (the ``check`` column of a :class:`Report`):

==================  ==========================================================
``grad/reverse``    ``jax.grad`` of ``fn(*args).sum()`` in the dtype vs the
                    closed-form gradient, elementwise.
``grad/forward``    ``jax.jvp`` along random directions :math:`v` vs
                    :math:`\langle g, v\rangle` of the closed form.
``grad/fd64``       float64 central differences of ``fn(*args).sum()`` along
                    random (input-scaled) directions vs :math:`\langle g, u\rangle`.
``hess/reverse``    ``jax.hessian`` in the dtype vs the closed-form Hessian.
``hess/forward``    Hessian-vector products (``jax.jvp`` of ``jax.grad``) vs
                    :math:`H v`.
``hess/fd64``       float64 differences of the closed-form gradient along
                    :math:`u` vs :math:`H u`, componentwise (second
                    differences of the loss vs :math:`u^\top H u` where
                    there is no closed-form gradient).
==================  ==========================================================

**The tolerance rule** (one rule for every loss, no per-loss numbers). For a
closed-form quantity :math:`q` (a gradient or Hessian) at inputs :math:`x`
(all floating inputs, e.g. predictions *and* targets), in a dtype with
machine epsilon :math:`\varepsilon` (of the input dtype: bf16
:math:`2^{-7}`, f16 :math:`2^{-10}`, f32 :math:`2^{-23}`, f64
:math:`2^{-52}`), entry :math:`i` of autodiff passes when

.. math::
   |\mathrm{ad}_i - q_i| \le C\,\varepsilon\,(\mathrm{size} + \mathrm{cond}_i)
   + \mathrm{tiny}, \qquad C = 16,

* :math:`\mathrm{size} = \max(\|q\|_\infty \text{ at the point},\ \|q\|_\infty
  \text{ at the given point})`: errors are normwise, relative to the largest
  entry at the point and at least to the quantity's typical size;
* :math:`\mathrm{cond}_i = \max_r |q_i(x + (\varepsilon|x| + \mathrm{tiny})
  \odot r) - q_i(x)| / \varepsilon` over sign patterns :math:`r` (all +1, the
  bits of the flat input index, each argument alone, and their negations):
  the closed form's own change under a one-rounding-unit perturbation of the
  inputs. At a smooth point that is the componentwise condition number (the
  second derivative times the input magnitude, for a gradient); at a kink the
  perturbation crosses it is the jump, so autodiff and the closed form may
  pick different subgradients there;
* tiny: the smallest normal number of the output dtype (flush-to-zero).

A backward-stable implementation is within :math:`\varepsilon\,\mathrm{cond}`
of the truth, so a correct loss passes, and a relative error above about
:math:`C\varepsilon` on a well-conditioned point fails. Directional checks
use the same rule contracted with the direction,
:math:`C\varepsilon\sum_i(\mathrm{size} + \mathrm{cond}_i)|v_i|`. Finite
differences are judged against their own error estimate: Richardson's
estimate of the truncation error (steps :math:`h = \varepsilon_{64}^{1/3}`
for first, :math:`\varepsilon_{64}^{1/4}` for second derivatives, times the
input scale) plus the float64 rounding error
:math:`8\varepsilon_{64}\sum|f|/h`, times :math:`C`; at a kink the closed form
may lie anywhere between the one-sided and central differences.

**NaN and inf are compared as values.** The reference is the closed form
rounded to the output dtype (a true gradient of 1e5 *is* inf in float16). A
NaN or inf on one side only fails; infinities must agree in sign; NaN on both
sides fails unless the point is declared outside the loss's domain
(``EdgeCase(in_domain=False)``), where nothing is required. Forward-mode and finite-difference checks need a
finite loss and closed form at the point (else reverse mode compares the
non-finite values one by one, and the point counts as skipped). Random points near an edge inherit its domain flag; a near point whose
float64 loss value is NaN (the perturbation left the domain, e.g. a
probability pushed above 1) is treated as out of domain. An edge point that
overflows to inf when rounded to a dtype (1e15 in float16) is not that point
any more and is skipped (``skipped`` column).

Nothing here raises on a mismatch: you get a :class:`Report`;
:meth:`Report.assert_ok` raises.

float64 is needed for the reference: the entry points switch
``jax_enable_x64`` on for their own duration (``with jax.enable_x64(True)``),
so you don't have to.

Example::

  import jax.numpy as jnp
  from jaxloss import verify

  loss = lambda p, y: jnp.log(jnp.cosh(p - y))
  grad = lambda p, y: jnp.tanh(p - y)          # d/dp log cosh(p - y)
  report = verify.check_gradient(loss, grad, (jnp.ones(3), jnp.zeros(3)),
                                 dtypes=["bf16", "f32", "f64"])
  print(report); report.assert_ok()
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base

__all__ = [
    "ALL_DTYPES",
    "TOLERANCE_FACTOR",
    "Report",
    "Row",
    "check_all",
    "check_gradient",
    "check_hessian",
    "check_registered",
    "check_spec",
    "resolve_dtype",
]

TOLERANCE_FACTOR = 16.0
"""The constant :math:`C` of the tolerance rule (the same for every loss)."""

ALL_DTYPES = ("bfloat16", "float16", "float32", "float64")

_ALIASES = {
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "f16": "float16", "fp16": "float16", "half": "float16", "float16": "float16",
    "f32": "float32", "fp32": "float32", "single": "float32", "float32": "float32",
    "f64": "float64", "fp64": "float64", "double": "float64", "float64": "float64",
}

_EPS64 = float(np.finfo(np.float64).eps)
_EPS_COND_MP = 2.0 ** -26  # smallest relative perturbation of the conditioning estimate of the mp checks
MP_DPS = 100  # decimal digits of the multiprecision reference (LossSpec.reference_mp)
# relative steps of its central differences: truncation ~h^2 = 1e-50 relative, rounding
# 10^-MP_DPS sum|f| / h (gradients) and / h^2 (Hessians), which the tolerance adds
_MP_H1 = 1e-25
_FD_H1 = _EPS64 ** (1.0 / 3.0)
_FD_H2 = _EPS64 ** (1.0 / 4.0)


def resolve_dtype(dtype: Any) -> np.dtype:
  """A dtype from a name ("bf16", "bfloat16", "f16", "f32", "f64", ...) or a dtype."""
  if isinstance(dtype, str):
    key = dtype.strip().lower()
    if key not in _ALIASES:
      raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_ALIASES)}.")
    return np.dtype(jnp.dtype(_ALIASES[key]))
  try:
    out = np.dtype(jnp.dtype(dtype))
  except TypeError as e:
    raise TypeError(f"dtypes must be names or floating dtypes, got {dtype!r}.") from e
  if not jnp.issubdtype(out, jnp.floating):
    raise TypeError(f"dtypes must be floating dtypes, got {out}.")
  return out


def _short(dtype: np.dtype) -> str:
  return {"bfloat16": "bf16", "float16": "f16", "float32": "f32", "float64": "f64"}.get(
      np.dtype(dtype).name, np.dtype(dtype).name)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
  """One line of a :class:`Report`: one check, on one argument, in one dtype, on one kind of point."""

  loss: str
  arg: str
  check: str
  dtype: str
  kind: str  # "given" | "edge" | "near"
  ok: bool
  n: int  # points compared
  skipped: int  # points not comparable (unrepresentable in the dtype, FD undefined)
  max_error: float  # |autodiff - closed form| at the worst element (worst = largest error/tolerance)
  tolerance: float  # the tolerance at that element
  ratio: float  # max error / tolerance (ok <=> ratio <= 1)
  rel_error: float  # normwise relative error max |error| / max |closed form| (absolute where that is 0)
  worst: str  # where the worst element is, and its values

  def to_dict(self) -> dict[str, Any]:
    """This row as a JSON-ready dict (non-finite numbers as strings)."""
    d = dataclasses.asdict(self)
    for k in ("max_error", "tolerance", "ratio", "rel_error"):
      v = d[k]
      d[k] = v if math.isfinite(v) else repr(v)
    return d


def _fmt(x: float) -> str:
  if not math.isfinite(x):
    return str(x)
  return f"{x:.2e}"


@dataclasses.dataclass
class Report:
  """The result of a verification. ``ok`` is True iff every row passed.

  ``str(report)`` renders a table; :meth:`to_json` / :meth:`to_dict` serialize
  it; :meth:`assert_ok` raises ``AssertionError`` listing the failing rows.
  """

  name: str
  rows: list[Row] = dataclasses.field(default_factory=list)
  timings: dict[str, float] = dataclasses.field(default_factory=dict, repr=False)

  @property
  def ok(self) -> bool:
    return all(r.ok for r in self.rows)

  @property
  def failures(self) -> list[Row]:
    return [r for r in self.rows if not r.ok]

  @property
  def losses(self) -> list[str]:
    return list(dict.fromkeys(r.loss for r in self.rows))

  def __bool__(self) -> bool:  # pragma: no cover - convenience
    return self.ok

  def table(self, rows: Sequence[Row] | None = None) -> str:
    rows = self.rows if rows is None else rows
    header = ("loss", "arg", "check", "dtype", "points", "n", "skip", "status", "max err", "tol",
              "err/tol", "rel err", "worst")
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
      lines.append((r.loss, r.arg, r.check, r.dtype, r.kind, str(r.n), str(r.skipped),
                    "ok" if r.ok else "FAIL", _fmt(r.max_error), _fmt(r.tolerance), _fmt(r.ratio),
                    _fmt(r.rel_error), r.worst if not r.ok else ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
      out.append("  ".join(c.ljust(w) for c, w in zip(line[:-1], widths)) + ("  " + line[-1] if line[-1] else ""))
    return "\n".join(s.rstrip() for s in out)

  def __str__(self) -> str:
    status = "OK" if self.ok else f"FAILED ({len(self.failures)} of {len(self.rows)} rows)"
    return f"jaxloss.verify report for {self.name}: {status}\n{self.table()}"

  def to_dict(self) -> dict[str, Any]:
    """The report as a JSON-ready dict: name, ok and one dict per row."""
    return {"name": self.name, "ok": self.ok, "rows": [r.to_dict() for r in self.rows]}

  def to_json(self, path: str | None = None, **kwargs: Any) -> str:
    """The report as JSON; also written to ``path`` if given."""
    kwargs.setdefault("indent", 1)
    text = json.dumps(self.to_dict(), **kwargs)
    if path is not None:
      with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return text

  def assert_ok(self) -> None:
    """Raises ``AssertionError`` with the failing rows unless every check passed."""
    if not self.ok:
      bad = self.failures
      raise AssertionError(
          f"jaxloss.verify: {len(bad)} of {len(self.rows)} checks failed for {self.name}:\n"
          + self.table(bad))

  @classmethod
  def merge(cls, name: str, reports: Iterable[Report]) -> Report:
    rows: list[Row] = []
    for r in reports:
      rows.extend(r.rows)
    return cls(name, rows)


# ---------------------------------------------------------------------------
# points and tasks
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class _Point:
  args: tuple[np.ndarray, ...]  # float args in float64, others as given
  kind: str
  label: str
  in_domain: bool
  shape: tuple[int, ...] | None = None  # the original shape, where the args were flattened and tiled
  rows: int | None = None  # the original number of rows, where the rows were repeated (_tile_rows)


@dataclasses.dataclass
class _Task:
  """One function (config bound) with its closed forms and the points to check it on."""

  fn: Callable[..., Any]
  grads: Mapping[int, Callable[..., Any]]
  hessian: Callable[..., Any] | None
  hessian_argnum: int
  float_argnums: tuple[int, ...]
  arg_names: tuple[str, ...]
  points: list[_Point]
  config_note: str = ""
  perturb_argnums: tuple[int, ...] = ()  # every floating argument (float_argnums and e.g. f64 labels)
  # Elementwise loss: every point is flattened and tiled (repeated) to one common length, so that all
  # points of the task share one compiled program. Exact for an elementwise function.
  flatten: bool = False
  # Independent rows (a row-wise loss, rows along axis 0 uncoupled, no ``axis`` option): the rows of
  # points of the same trailing shapes are repeated to one common count (_tile_rows). Exact for such a
  # loss: each repeated row is an independent copy, its derivatives those of the original row.
  tile_rows: bool = False
  # mpmath implementation of fn (LossSpec.reference_mp, config bound) and how its outputs depend on
  # its inputs: ("elementwise",), ("rowwise", axis) or ("general",)
  ref_mp: Callable[..., Any] | None = None
  mp_structure: tuple = ("general",)


def _as_numpy(a: Any) -> np.ndarray:
  return np.asarray(jax.device_get(a))


def _base_args(args: Sequence[Any], float_argnums: Sequence[int]) -> tuple[np.ndarray, ...]:
  out = []
  for i, a in enumerate(args):
    a = _as_numpy(a)
    if i in float_argnums:
      a = a.astype(np.float64)
    out.append(a)
  return tuple(out)


def _near_points(points: list[_Point], float_argnums, n_near: int, rng: np.random.Generator,
                 sigma: float = 0.05) -> list[_Point]:
  """Random points near each point: float inputs times exp(sigma * N(0,1)) (keeps signs, zeros, infs)."""
  out = []
  for p in points:
    for k in range(n_near):
      new = list(p.args)
      for i in float_argnums:
        x = p.args[i]
        with np.errstate(invalid="ignore", over="ignore"):
          new[i] = x * np.exp(sigma * rng.standard_normal(x.shape))
      out.append(_Point(tuple(new), "near", f"near[{k}] {p.label}", p.in_domain))
  return out


def _tile(p: _Point, length: int) -> _Point:
  shape = np.shape(p.args[0])
  n = max(1, int(np.prod(shape)))
  idx = np.arange(length) % n
  args = tuple(np.asarray(a).reshape(-1)[idx] for a in p.args)
  return _Point(args, p.kind, p.label, p.in_domain, shape=tuple(shape))


def _row_sig(p: _Point) -> tuple | None:
  """(trailing shapes and dtypes of the arguments) if every argument has the same leading dimension."""
  if any(np.ndim(a) == 0 for a in p.args) or len({np.shape(a)[0] for a in p.args}) != 1 or np.shape(p.args[0])[0] == 0:
    return None
  return tuple((np.shape(a)[1:], np.asarray(a).dtype.str) for a in p.args)


def _tile_rows(points: list[_Point]) -> list[_Point]:
  """Points of the same trailing shapes, their rows repeated (cyclically) to the largest row count."""
  most: dict[tuple, int] = {}
  for p in points:
    sig = _row_sig(p)
    if sig is not None:
      most[sig] = max(most.get(sig, 0), np.shape(p.args[0])[0])
  out = []
  for p in points:
    sig = _row_sig(p)
    b = np.shape(p.args[0])[0] if sig is not None else 0
    if sig is None or b == most[sig]:
      out.append(p)
      continue
    idx = np.arange(most[sig]) % b
    out.append(dataclasses.replace(p, args=tuple(np.asarray(a)[idx] for a in p.args), rows=b))
  return out


def _orig_index(pt: _Point, idx) -> list[int]:
  """An index into a (possibly flattened and tiled) argument, as an index of the original argument."""
  idx = [int(i) for i in idx]
  if pt.rows is not None:
    return [idx[0] % pt.rows] + idx[1:] if idx else idx
  if pt.shape is None:
    return idx
  n = max(1, int(np.prod(pt.shape)))
  return [int(i) for i in np.unravel_index(idx[0] % n, pt.shape)] if pt.shape else []


def _round(args: tuple[np.ndarray, ...], float_argnums, dtype: np.dtype):
  """(args in dtype, the same values in float64, representable?)."""
  rd, r64 = list(args), list(args)
  ok = True
  for i in float_argnums:
    x = args[i]
    with np.errstate(over="ignore", invalid="ignore"):
      xd = np.asarray(x).astype(dtype)
      x64 = xd.astype(np.float64)
    if np.any(np.isfinite(x) & ~np.isfinite(x64)):
      ok = False
    rd[i], r64[i] = xd, x64
  return tuple(rd), tuple(r64), ok


def _shape_sig(args) -> tuple:
  return tuple((np.shape(a), np.asarray(a).dtype.str) for a in args)


def _norm_inf(q) -> float:
  """The largest finite |entry| (0 if none)."""
  q = np.asarray(q, np.float64)
  fin = np.isfinite(q)
  return float(np.max(np.abs(q[fin]))) if fin.any() else 0.0


def _finite0(x):
  return np.where(np.isfinite(x), x, 0.0)


def _patterns(rng, batch, perturbed):
  """Sign patterns r for the sensitivity estimate (see the module docstring).

  Over the flat index k of all floating inputs together: all +1; for each bit
  b of k, (-1)^bit_b(k) (so that any two inputs get opposite signs in some
  pattern and their contributions cannot cancel in all of them); +1 on each
  argument alone; and the negation of each (both sides of a kink).
  """
  del rng
  sizes = [int(np.size(x)) for _, x in perturbed]
  total = max(1, sum(sizes))
  nbits = max(1, int(math.ceil(math.log2(total))))
  flat_idx = np.arange(total)
  base = [np.ones(total)]
  base += [1.0 - 2.0 * ((flat_idx >> b) & 1) for b in range(nbits)]
  offset = 0
  for n in sizes:
    only = np.zeros(total)
    only[offset:offset + n] = 1.0
    base.append(only)
    offset += n
  pats = np.stack(base + [-b for b in base])  # (n_pat, total)
  out = {}
  offset = 0
  for (k, x), n in zip(perturbed, sizes):
    r = pats[:, offset:offset + n].reshape((pats.shape[0],) + np.shape(x))
    out[k] = np.broadcast_to(r, (batch,) + r.shape).astype(np.asarray(x).dtype)
    offset += n
  return out


def _fd_steps() -> np.ndarray:
  h, g = _FD_H1, _FD_H2
  return np.array([0.0, h, -h, 2 * h, -2 * h, g, -g, 2 * g, -2 * g], np.float64)


def _bcast(a: np.ndarray, e: int, k: int) -> np.ndarray:
  """(E, *s) -> (E * k, *s): each entry repeated k times."""
  return np.repeat(np.asarray(a), k, axis=0) if k != 1 else np.asarray(a)


def _flat2(a: np.ndarray) -> np.ndarray:
  """(E, K, *s) -> (E * K, *s)."""
  return a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:])


# ---------------------------------------------------------------------------
# the programs
#
# Everything a check needs is evaluated in a few jitted programs per loss: one
# float64 reference program and one autodiff program per dtype, each holding
# every (config, shape) group of the loss. Only the loss, its closed forms and
# autodiff are traced; the points they are evaluated at (perturbations,
# finite-difference steps, tangents) are built in NumPy before, and the
# quantities the comparisons need (conditioning, directional derivatives) are
# computed in NumPy after. Tracing is what a verification run spends its time
# on (JAX traces each transformation of each loss in Python), so the traced
# programs are kept to the minimum.
# ---------------------------------------------------------------------------
def _ref_layout(task: _Task, args, eps, tiny, dirs, patterns):
  """NumPy: the float64 points the reference program evaluates, for a group of E entries.

  Returns ``(cf_args, fd_args, meta)``: ``cf_args`` the argument batch of the
  closed forms (per entry: the point, its rounding-unit perturbations, the
  finite-difference points of the Hessian check, the multiprecision checks'
  perturbations), ``fd_args`` that of the loss (per entry: every argument's
  directions times every step of :func:`_fd_steps`; step 0 is the point).
  """
  e = int(eps.shape[0])
  fl = task.perturb_argnums
  order = sorted(dirs)
  steps = _fd_steps()
  us = {}
  for i in order:
    x = args[i]
    scale = np.where(np.isfinite(x) & (x != 0), np.abs(x), 1.0)
    us[i] = dirs[i] * scale[:, None]  # (E, n_dir, *x)
  nd = us[order[0]].shape[1] if order else 0
  n_pat = patterns[fl[0]].shape[1] if fl else 0

  def bshape(a, ndim):  # per-entry scalars (E,) broadcast against an (E, ...) array of ndim dimensions
    return np.reshape(a, (e,) + (1,) * (ndim - 1))

  with np.errstate(invalid="ignore", over="ignore"):
    variants: dict[int, list[np.ndarray]] = {}
    for k in fl:
      x = args[k]
      fin = np.isfinite(x)[:, None]
      step = (bshape(eps, x.ndim) * np.abs(x) + bshape(tiny, x.ndim))[:, None] * patterns[k]
      variants[k] = [x[:, None], np.where(fin, x[:, None] + step, x[:, None])]
    hi = task.hessian_argnum
    fd_hess = task.hessian is not None and hi in task.grads
    if fd_hess:
      x = args[hi]
      t = steps[:5].reshape((1, 1, 5) + (1,) * (x.ndim - 1))
      pts = x[:, None, None] + t * us[hi][:, :, None]  # (E, n_dir, 5, *x)
      pts = np.where(np.isfinite(x)[:, None, None], pts, x[:, None, None])
      pts = pts.reshape((e, nd * 5) + x.shape[1:])
      for k in fl:
        variants[k].append(pts if k == hi else np.broadcast_to(args[k][:, None], pts.shape[:2] + args[k].shape[1:]))
    if task.ref_mp is not None:
      # the conditioning for the multiprecision checks: perturbations of at least 2^-26 relative, so
      # that a float64 closed form's own rounding error (a cancellation) does not read as conditioning
      eps2 = np.maximum(eps, _EPS_COND_MP)
      for k in fl:
        x = args[k]
        step = (bshape(eps2, x.ndim) * np.abs(x) + bshape(tiny, x.ndim))[:, None] * patterns[k]
        variants[k].append(np.where(np.isfinite(x)[:, None], x[:, None] + step, x[:, None]))
    n_cf = sum(v.shape[1] for v in variants[fl[0]]) if fl else 1
    cf_args = []
    for k, a in enumerate(args):
      if k in variants:
        cf_args.append(_flat2(np.concatenate(variants[k], axis=1)))
      else:
        cf_args.append(_bcast(a, e, n_cf))
    # the loss: for each argument j, its directions (zero in the others), times each step
    n_t = len(order) * nd
    fd_args = []
    for k, a in enumerate(args):
      if k in us:
        tan = np.concatenate([us[i] if i == k else np.zeros_like(us[k]) for i in order], axis=1)  # (E, n_t, *x)
        t = steps.reshape((1, 1, len(steps)) + (1,) * (a.ndim - 1))
        pts = a[:, None, None] + t * tan[:, :, None]
        pts = np.where(np.isfinite(a)[:, None, None], pts, a[:, None, None])
        fd_args.append(pts.reshape((e * n_t * len(steps),) + a.shape[1:]))
      else:
        fd_args.append(_bcast(a, e, n_t * len(steps)))
  meta = dict(e=e, nd=nd, n_pat=n_pat, n_cf=n_cf, n_t=n_t, us=us, order=order, fd_hess=fd_hess)
  return tuple(cf_args), tuple(fd_args), meta


def _ref_program(task: _Task):
  """float64: the closed forms over their batch, the loss over its batch (sums and finiteness per point)."""
  fn = task.fn

  def closed_forms(*args):
    out = {f"g{i}": g(*args).astype(jnp.float64) for i, g in task.grads.items()}
    if task.hessian is not None:
      out["h"] = task.hessian(*args).astype(jnp.float64)
    return out

  def program(cf_args, fd_args):
    qs = jax.vmap(closed_forms)(*cf_args)
    l = jax.vmap(fn)(*fd_args)
    l = l.reshape(l.shape[0], -1)
    lf = l.astype(jnp.float64)
    loss = (jnp.sum(lf, axis=1), jnp.sum(jnp.abs(lf), axis=1), jnp.any(jnp.isnan(l), axis=1),
            jnp.all(jnp.isfinite(l), axis=1))
    return qs, loss

  return program


def _ref_post(task: _Task, args, eps, meta, raw):
  """NumPy: the reference quantities of each entry (closed forms, conditioning, differences) from the raw run."""
  qs_flat, (fv, fa, nan, fin) = raw
  e, nd, n_pat, n_cf, n_t = meta["e"], meta["nd"], meta["n_pat"], meta["n_cf"], meta["n_t"]
  us, order = meta["us"], meta["order"]
  n_steps = len(_fd_steps())
  qs = {k: np.asarray(v).reshape((e, n_cf) + np.shape(v)[1:]) for k, v in qs_flat.items()}
  fv = np.asarray(fv).reshape(e, n_t, n_steps)
  fa = np.asarray(fa).reshape(e, n_t, n_steps)
  out: dict[str, Any] = {}
  with np.errstate(all="ignore"):
    q = {k: v[:, 0] for k, v in qs.items()}

    def per_entry(a, like):  # (E,) -> broadcastable against (E, *like.shape[1:])
      return np.reshape(a, (e,) + (1,) * (np.ndim(like) - 1))

    # Conditioning: the closed forms' own change under a one-rounding-unit
    # relative perturbation of the inputs (eps*cond in the tolerance rule).
    cond = {k: np.max(_finite0(np.abs(qs[k][:, 1:1 + n_pat] - q[k][:, None])), axis=1) / per_entry(eps, q[k])
            for k in q}
    cond2 = None
    if task.ref_mp is not None:  # the cond2 block is last in the batch
      eps2 = np.maximum(eps, _EPS_COND_MP)
      cond2 = {k: np.max(_finite0(np.abs(qs[k][:, n_cf - n_pat:] - q[k][:, None])), axis=1) / per_entry(eps2, q[k])
               for k in q}
    # step 0 of the first direction is the point itself
    out["loss_nan"] = np.asarray(nan).reshape(e, n_t, n_steps)[:, 0, 0]
    out["loss_finite"] = np.asarray(fin).reshape(e, n_t, n_steps)[:, 0, 0]
    fd = {i: (us[i], fv[:, k * nd:(k + 1) * nd], fa[:, k * nd:(k + 1) * nd]) for k, i in enumerate(order)}
    for i in task.grads:
      gr, c = q[f"g{i}"], cond[f"g{i}"]
      u, fvi, fai = fd[i]
      ax = tuple(range(2, u.ndim))
      out[f"g{i}"] = dict(
          g=gr, cond=c, jump=np.zeros_like(c), fv=fvi, fa=fai,
          gu=np.sum(gr[:, None] * u, axis=ax), gu_abs=np.sum(_finite0(np.abs(gr[:, None] * u)), axis=ax),
          gx_abs=np.sum(_finite0(np.abs(gr * args[i])).reshape(e, -1), axis=1),
          condu=np.sum(c[:, None] * np.abs(u), axis=ax))
      if cond2 is not None:
        out[f"g{i}"]["cond2"] = cond2[f"g{i}"]
    if task.hessian is not None:
      i = task.hessian_argnum
      hr, c = q["h"], cond["h"]
      u, fvi, fai = fd[i]
      n = int(np.prod(args[i].shape[1:], dtype=np.int64))
      hm = hr.reshape(e, n, n)
      cm = c.reshape(e, n, n)
      uf = u.reshape(e, nd, n)
      au, ahm = np.abs(uf), _finite0(np.abs(hm))
      out["h"] = dict(
          h=hr, cond=c, jump=np.zeros_like(c), fv=fvi, fa=fai,
          uhu=np.einsum("edi,eij,edj->ed", uf, hm, uf),
          uhu_abs=np.einsum("edi,eij,edj->ed", au, ahm, au),
          condu=np.einsum("edi,eij,edj->ed", au, cm, au))
      if cond2 is not None:
        out["h"]["cond2"] = cond2["h"]
      if meta["fd_hess"]:
        # float64 differences of the closed-form gradient along u, componentwise: H u
        gv = qs[f"g{i}"][:, 1 + n_pat:1 + n_pat + 5 * nd].reshape(e, nd, 5, n)
        out["h"].update(
            gv=gv, hu=np.einsum("edj,eij->edi", uf, hm), hu_abs=np.einsum("edj,eij->edi", au, ahm),
            condhu=np.einsum("edj,eij->edi", au, cm), gcond=cond[f"g{i}"].reshape(e, -1))
  return out


def _ad_tangents(task: _Task, args, dirs):
  """NumPy: the tangent batches of :func:`_ad_program` for a group of E entries (in the entries' dtype).

  Per entry: the directions of each gradient argument (zero elsewhere), then,
  with a Hessian, the basis vectors and the directions of the Hessian's
  argument.
  """
  gargs = tuple(sorted(task.grads))
  hi = task.hessian_argnum if task.hessian is not None else None
  vars_ = tuple(sorted(set(gargs) | ({hi} if hi is not None else set())))
  e = args[vars_[0]].shape[0]
  nd = dirs[vars_[0]].shape[1]
  blocks = []
  for i in gargs:
    blocks.append({j: (dirs[i] if j == i else np.zeros((e, nd) + args[j].shape[1:], args[j].dtype)) for j in vars_})
  if hi is not None:
    x = args[hi]
    n = int(np.prod(x.shape[1:], dtype=np.int64))
    basis = np.broadcast_to(np.eye(n, dtype=x.dtype).reshape((1, n) + x.shape[1:]), (e, n) + x.shape[1:])
    hv_t = np.concatenate([basis, dirs[hi]], axis=1)
    blocks.append({j: (hv_t if j == hi else np.zeros((e, n + nd) + args[j].shape[1:], args[j].dtype))
                   for j in vars_})
  return tuple(np.concatenate([b[j] for b in blocks], axis=1) for j in vars_)


def _ad_program(task: _Task):
  """In the dtype under test: reverse mode, forward mode, Hessian and HVPs, for a group of points.

  Takes the group's points ``args`` (``[E, ...]``) and their tangents
  (``[E, K, ...]``, see :func:`_ad_tangents`). Each point is repeated once per
  tangent, so that one ``jax.jvp`` (or one ``jax.linearize``) evaluates every
  tangent of every point at once, and ``vmap`` batches only the loss (its
  innermost transformation, applied once), not the derivatives' programs.
  ``s`` is the vector of the copies' loss sums: copy ``c``'s sum depends on
  copy ``c`` alone, so the transpose (reverse mode) at a cotangent of ones
  gives each copy's own gradient, the tangent of ``s`` each copy's directional
  derivative (forward mode), and, with a Hessian, the tangent of the reverse
  gradient (forward over reverse, as ``jax.hessian`` is) each copy's
  Hessian-vector product; those along the basis vectors are ``jax.hessian``'s
  columns.
  """
  fn = task.fn
  gargs = tuple(sorted(task.grads))
  hi = task.hessian_argnum if task.hessian is not None else None
  vars_ = tuple(sorted(set(gargs) | ({hi} if hi is not None else set())))
  pos = {j: k for k, j in enumerate(vars_)}

  def program(args, tangents):
    e, k = tangents[0].shape[:2]
    rep = [jnp.repeat(a, k, axis=0) for a in args]  # [E * K, ...]: copy c = e * K + k

    def s(*xs):
      new = list(rep)
      for j, x in zip(vars_, xs):
        new[j] = x
      l = jax.vmap(fn)(*new)
      return jnp.sum(l.reshape(l.shape[0], -1), axis=1)

    primals = tuple(rep[j] for j in vars_)
    tans = tuple(t.reshape((e * k,) + t.shape[2:]) for t in tangents)
    if hi is None:
      y, f_jvp = jax.linearize(s, *primals)
      jv = f_jvp(*tans)
      grads = jax.linear_transpose(f_jvp, *primals)(jnp.ones_like(y))
    else:
      def vg(*xs):
        y, pull = jax.vjp(s, *xs)
        return y, pull(jnp.ones_like(y))

      (_, grads), (jv, hcols) = jax.jvp(vg, primals, tans)
    jv = jv.reshape(e, k)
    grads = [g.reshape((e, k) + g.shape[1:])[:, 0] for g in grads]
    nd = (k - (int(np.prod(args[hi].shape[1:], dtype=np.int64)) if hi is not None else 0)) // (
        len(gargs) + (hi is not None))
    out = {}
    for b, i in enumerate(gargs):
      out[f"g{i}"] = dict(g=grads[pos[i]], jv=jv[:, b * nd:(b + 1) * nd])
    if hi is not None:
      x = args[hi]
      xs = x.shape[1:]
      n = int(np.prod(xs, dtype=np.int64))
      cols = hcols[pos[hi]].reshape((e, k) + xs)[:, len(gargs) * nd:]
      # jax.hessian(f)(x) is jacfwd(jacrev(f)): the same columns, reshaped
      h = jnp.moveaxis(cols[:, :n].reshape((e, n) + xs), 1, -1).reshape((e,) + xs + xs)
      out["h"] = dict(h=h, hv=cols[:, n:])
    return out

  return program


# The programs are small and run once: compile them without backend optimization and with the
# classic (non-MLIR) fusion emitters, which compile several times faster on CPU. Options an XLA build
# doesn't know are dropped (see _compile_and_run).
_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def _compile_and_run(units):
  """Traces each (fn, args) unit, compiles them concurrently (XLA releases the GIL), runs them.

  Each program is handed to a compiler thread as soon as it is traced, so that
  tracing the next one (Python) overlaps with compiling the previous ones. The
  programs are small and run once, so they are compiled with
  ``_COMPILER_OPTIONS`` (a 2-core CPU spends its time in LLVM otherwise).
  """

  def comp(lo):
    # CPU only: on an accelerator the programs are compiled exactly as a user's would be.
    opts = dict(_COMPILER_OPTIONS) if jax.default_backend() == "cpu" else {}
    while True:
      try:
        return lo.compile(compiler_options=opts)
      except Exception:  # pylint: disable=broad-except  # an option this XLA build (or backend) doesn't know
        if not opts:
          raise
        opts.popitem()

  t0 = time.perf_counter()
  trace = 0.0
  workers = max(1, min(len(units), os.cpu_count() or 1))
  # The programs run on the default backend: lax.platform_dependent branches are traced for it alone.
  with concurrent.futures.ThreadPoolExecutor(workers) as pool, _base.trace_for_platform(jax.default_backend()):
    futures = []
    for f, a in units:
      ts = time.perf_counter()
      lo = jax.jit(f).lower(*a)
      trace += time.perf_counter() - ts
      futures.append(pool.submit(comp, lo))
    compiled = [fut.result() for fut in futures]
  t2 = time.perf_counter()
  outs = [jax.device_get(c(*a)) for c, (_, a) in zip(compiled, units)]
  # "compile": the compile time not hidden behind tracing
  return outs, {"trace": trace, "compile": t2 - t0 - trace, "run": time.perf_counter() - t2}


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------
def _compare(got: np.ndarray, ref: np.ndarray, tol: np.ndarray, in_domain: bool, out_dtype):
  """Elementwise (ok, ratio, err, ref_in_out_dtype) with the NaN/inf-as-values rule."""
  got = np.asarray(got, np.float64)
  ref = np.asarray(ref, np.float64)
  with np.errstate(all="ignore"):
    fmax = float(jnp.finfo(out_dtype).max) if out_dtype is not None else np.inf
    ref_o = np.where(np.isfinite(ref) & (np.abs(ref) > fmax), np.sign(ref) * np.inf, ref)
    both_finite = np.isfinite(got) & np.isfinite(ref_o)
    err = np.where(both_finite, np.abs(got - ref_o), np.inf)
    same_inf = np.isinf(got) & np.isinf(ref_o) & (got == ref_o)
    nonfinite_ok = same_inf
    ok = np.where(both_finite, err <= tol, nonfinite_ok)
    if not in_domain:  # outside the domain nothing is required
      ok = np.ones_like(ok)
    ratio = np.where(both_finite, np.where(tol > 0, err / np.where(tol > 0, tol, 1.0),
                                           np.where(err > 0, np.inf, 0.0)),
                     np.where(nonfinite_ok, 0.0, np.inf))
    err = np.where(~both_finite & nonfinite_ok, 0.0, err)
    if not in_domain:  # nothing is required, nothing is counted as an error
      ratio = np.zeros_like(ratio)
      err = np.zeros_like(err)
  return ok, ratio, err, ref_o


class _Acc:
  """Accumulates one report row."""

  def __init__(self):
    self.n = 0
    self.skipped = 0
    self.ok = True
    self.ratio = -1.0
    self.max_error = 0.0
    self.tolerance = 0.0
    self.worst = ""
    self.abs_err = 0.0
    self.abs_ref = 0.0

  def add(self, ok, ratio, err, tol, ref, describe):
    self.n += 1
    ok = np.asarray(ok)
    ratio = np.asarray(ratio, np.float64)
    if not ok.all():
      self.ok = False
    fin = np.isfinite(err)
    if fin.any():
      self.abs_err = max(self.abs_err, float(np.max(np.where(fin, err, 0.0))))
    rf = np.isfinite(ref)
    if rf.any():
      self.abs_ref = max(self.abs_ref, float(np.max(np.abs(np.where(rf, ref, 0.0)))))
    if ratio.size:
      # ok <=> ratio <= 1 elementwise (a non-finite mismatch has ratio inf)
      idx = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
      r = float(ratio[idx])
      if r > self.ratio:
        self.ratio = r
        self.max_error = float(np.asarray(err)[idx])
        self.tolerance = float(np.asarray(tol)[idx]) if np.ndim(tol) else float(tol)
        self.worst = describe(idx)

  def row(self, loss, arg, check, dtype, kind) -> Row:
    # normwise; where the closed form is identically 0 this is the absolute error
    rel = self.abs_err / self.abs_ref if self.abs_ref > 0 else self.abs_err
    if not self.ok and rel == 0.0:
      rel = math.inf  # a non-finite mismatch
    return Row(loss, arg, check, dtype, kind, self.ok, self.n, self.skipped,
               self.max_error, self.tolerance, max(self.ratio, 0.0), rel, self.worst)


def _fmt_val(v) -> str:
  try:
    return f"{float(v):.6g}"
  except (TypeError, ValueError):
    return str(v)


def _fd_first(fv, fa, ref, ref_err):
  """Finite-difference estimate of a directional first derivative: (lo, hi, tolerance) or None.

  ``fv``/``fa``: sum of the loss / of its absolute values at the steps of
  :func:`_fd_steps`. Central differences with Richardson's truncation
  estimate; the one-sided second-order differences span the interval a
  subgradient at a kink may lie in. At a domain boundary only one side exists.
  """
  del ref
  f0, fp, fm, fp2, fm2 = fv[0], fv[1], fv[2], fv[3], fv[4]
  h = _FD_H1
  if not np.isfinite(f0):
    return None
  fmag = float(np.max(np.where(np.isfinite(fa[:5]), fa[:5], 0.0)))
  rnd = 8.0 * _EPS64 * fmag / h  # float64 rounding of the loss sums
  c = TOLERANCE_FACTOR
  if np.isfinite([fp, fm, fp2, fm2]).all():
    d1 = (fp - fm) / (2 * h)
    d2 = (fp2 - fm2) / (4 * h)
    dp = (-3 * f0 + 4 * fp - fp2) / (2 * h)
    dm = (3 * f0 - 4 * fm + fm2) / (2 * h)
    trunc = abs(d1 - d2) / 3.0  # Richardson
    return min(d1, dp, dm), max(d1, dp, dm), c * (trunc + rnd + ref_err)
  for a, b, s in ((fp, fp2, 1.0), (fm, fm2, -1.0)):
    if np.isfinite([a, b]).all():
      d = s * (-3 * f0 + 4 * a - b) / (2 * h)
      d1 = s * (a - f0) / h  # first order: |d - d1| over-estimates d's error
      return d, d, c * (abs(d - d1) + rnd + ref_err)
  return None


def _fd_second(fv, fa, ref, ref_err):
  """Like :func:`_fd_first` for the second directional derivative u^T H u."""
  del ref
  f0 = fv[0]
  fp, fm, fp2, fm2 = fv[5], fv[6], fv[7], fv[8]
  h = _FD_H2
  if not np.isfinite(f0):
    return None
  idx = [0, 5, 6, 7, 8]
  fmag = float(np.max(np.where(np.isfinite(fa[idx]), fa[idx], 0.0)))
  rnd = 16.0 * _EPS64 * fmag / (h * h)
  c = TOLERANCE_FACTOR
  if np.isfinite([fp, fm, fp2, fm2]).all():
    c1 = (fp - 2 * f0 + fm) / (h * h)
    c2 = (fp2 - 2 * f0 + fm2) / (4 * h * h)
    dp = (f0 - 2 * fp + fp2) / (h * h)
    dm = (f0 - 2 * fm + fm2) / (h * h)
    trunc = abs(c1 - c2) / 3.0
    return min(c1, dp, dm), max(c1, dp, dm), c * (trunc + rnd + ref_err)
  for a, b in ((fp, fp2), (fm, fm2)):
    if np.isfinite([a, b]).all():
      d = (f0 - 2 * a + b) / (h * h)  # one-sided, first order: error O(h)
      return d, d, c * (abs(d) * h + rnd + ref_err)
  return None


# ---------------------------------------------------------------------------
# the multiprecision reference (LossSpec.reference_mp)
# ---------------------------------------------------------------------------
def _have_mpmath() -> bool:
  """The mp checks need mpmath (a test dependency, not a core one); without it they are left out."""
  try:
    import mpmath  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  except ImportError:
    return False
  return True


def _mp_out_index(structure, shape_in, idx):
  """The unreduced-loss index that input element ``idx`` feeds (None: every output, "general")."""
  if structure[0] == "elementwise":
    return idx
  if structure[0] == "rowwise":
    axis = structure[1] % len(shape_in)
    return idx[:axis] + idx[axis + 1:]
  return None


def _mp_groups(structure, shape):
  """Sets of input elements that can be perturbed together (each output depends on at most one of them)."""
  if structure[0] == "elementwise":
    return [np.ones(shape, bool)]
  if structure[0] == "rowwise" and len(shape) > 0:
    axis = structure[1] % len(shape)
    out = []
    for c in range(shape[axis]):
      m = np.zeros(shape, bool)
      m[(slice(None),) * axis + (c,)] = True
      out.append(m)
    return out
  out = []
  for idx in np.ndindex(shape):
    m = np.zeros(shape, bool)
    m[idx] = True
    out.append(m)
  return out


def _mp_derivatives(task: _Task, args, diff_argnums, hess_argnum):
  """Gradients (and the Hessian) of ``sum(ref_mp(*args))`` by central differences at ``MP_DPS`` digits.

  Returns float64 arrays; NaN where the difference is not finite (an infinite
  input, an infinite loss nearby): those entries are not compared.
  """
  import mpmath  # pylint: disable=g-import-not-at-top

  f = task.ref_mp
  assert f is not None, "called only for tasks with a multiprecision reference"
  with mpmath.workdps(MP_DPS):
    margs = list(args)
    for k in task.perturb_argnums:
      a = np.asarray(args[k], np.float64)
      margs[k] = np.array([mpmath.mpf(float(v)) for v in a.reshape(-1)], dtype=object).reshape(a.shape)

    def at(shifts):
      new = list(margs)
      for k, d in shifts.items():
        new[k] = margs[k] + d
      return np.asarray(f(*new), dtype=object)

    def step(k):
      a = np.asarray(args[k], np.float64)
      ok = np.isfinite(a)
      h = np.empty(a.shape, dtype=object)
      for idx in np.ndindex(a.shape):
        h[idx] = mpmath.mpf(_MP_H1) * max(abs(margs[k][idx]), 1) if ok[idx] else mpmath.mpf(0)
      return h, ok

    def to64(v):
      try:
        x = float(v)
      except (TypeError, ValueError, OverflowError):
        return math.nan
      return x if mpmath.isfinite(v) else math.nan

    def collect(vals, idx_in, shape_in, total):
      j = _mp_out_index(task.mp_structure, shape_in, idx_in)
      return total if j is None else vals[j]

    f0 = at({})
    # the rounding error of the differences: 10^-MP_DPS per loss value, summed
    fmag = mpmath.fsum(abs(v) for v in f0.reshape(-1) if mpmath.isfinite(v)) + 1
    unit = mpmath.mpf(10) ** (4 - MP_DPS) * fmag
    grads, grad_errs = {}, {}
    for i in diff_argnums:
      h, ok = step(i)
      shape = np.shape(args[i])
      g = np.full(shape, np.nan)
      gerr = np.zeros(shape)
      for m in _mp_groups(task.mp_structure, shape):
        d = np.where(m, h, mpmath.mpf(0))
        fp, fm = at({i: d}), at({i: -d})
        diff = fp - fm
        total = mpmath.fsum(diff.reshape(-1)) if task.mp_structure[0] == "general" else None
        for idx in zip(*np.nonzero(m)):
          if ok[idx]:
            g[idx] = to64(collect(diff, idx, shape, total) / (2 * h[idx]))
            gerr[idx] = float(unit / h[idx])
      grads[i] = g
      grad_errs[i] = gerr
    hess = None
    if hess_argnum is not None:
      i = hess_argnum
      h, ok = step(i)
      shape = np.shape(args[i])
      n = int(np.prod(shape, dtype=np.int64))
      hess = np.zeros((n, n))
      herr = np.zeros((n, n))
      groups = _mp_groups(task.mp_structure, shape)
      for ga, ma in enumerate(groups):
        for gb in range(ga, len(groups)):
          mb = groups[gb]
          da, db = np.where(ma, h, mpmath.mpf(0)), np.where(mb, h, mpmath.mpf(0))
          if ga == gb:
            diff = at({i: 2 * da}) - 2 * f0 + at({i: -2 * da})
          else:
            diff = at({i: da + db}) - at({i: da - db}) - at({i: db - da}) + at({i: -da - db})
          total = mpmath.fsum(diff.reshape(-1)) if task.mp_structure[0] == "general" else None
          for ia in zip(*np.nonzero(ma)):
            for ib in zip(*np.nonzero(mb)):
              ja = _mp_out_index(task.mp_structure, shape, ia)
              if ga != gb and ja is not None and ja != _mp_out_index(task.mp_structure, shape, ib):
                continue  # different outputs: a zero entry
              if ga == gb and task.mp_structure[0] != "general" and ia != ib:
                continue
              fa, fb = np.ravel_multi_index(ia, shape), np.ravel_multi_index(ib, shape)
              if not (ok[ia] and ok[ib]):
                hess[fa, fb] = hess[fb, fa] = np.nan
                continue
              v = to64(collect(diff, ia, shape, total) / (4 * h[ia] * h[ib]))
              hess[fa, fb] = hess[fb, fa] = v
              herr[fa, fb] = herr[fb, fa] = float(unit / (h[ia] * h[ib]))
      hess = hess.reshape(shape + shape)
      herr = herr.reshape(shape + shape)
  return grads, hess, grad_errs, (herr if hess is not None else None)


def _mp_derivatives_rows(task: _Task, args, rows: int | None, diff_argnums, hess_argnum):
  """:func:`_mp_derivatives` of a point whose rows were repeated: computed on the original rows, repeated.

  The repeated rows are independent copies: the gradient's rows repeat, and the
  Hessian is block diagonal over the copies with the original row's block.
  """
  if rows is None:
    return _mp_derivatives(task, args, diff_argnums, hess_argnum)
  n_rows = np.shape(args[0])[0]
  idx = np.arange(n_rows) % rows
  grads, hess, gerr, herr = _mp_derivatives(task, tuple(np.asarray(a)[:rows] for a in args), diff_argnums,
                                            hess_argnum)
  grads = {i: g[idx] for i, g in grads.items()}
  gerr = {i: g[idx] for i, g in gerr.items()}

  def blocks(h):
    if h is None:
      return None
    tail = np.shape(args[hess_argnum])[1:]
    m = int(np.prod(tail, dtype=np.int64))
    h4 = h.reshape(rows, m, rows, m)
    out = np.zeros((n_rows, m, n_rows, m))
    for r in range(n_rows):
      out[r, :, r, :] = h4[idx[r], :, idx[r], :]
    return out.reshape((n_rows,) + tail + (n_rows,) + tail)

  return grads, blocks(hess), gerr, blocks(herr)


def _mp_rows(acc_cf: _Acc, acc_ad: _Acc, mp, mp_err, cf, ad, cond, eps_d, out_dtype, where, name, pt,
             hess=False):
  r"""Adds the closed form vs mp (float64 rule) and autodiff vs mp (dtype rule) comparisons, componentwise.

  The tolerance is the module's rule without the normwise floor:
  :math:`C (arepsilon (|q_i| + \mathrm{cond}_i) + \mathrm{err}_i) + \mathrm{tiny}` with :math:`q`
  the mp value and err its own error bound, so a relative error above
  :math:`Carepsilon` in a well-conditioned tiny entry fails.
  """
  mp = np.asarray(mp, np.float64)
  mp_err = np.asarray(mp_err, np.float64)
  sel = np.isfinite(mp)
  if not sel.any():
    acc_cf.skipped += 1
    acc_ad.skipped += 1
    return
  c = TOLERANCE_FACTOR
  cond = np.where(np.isfinite(cond), cond, np.inf)
  for acc_, got, eps, odt in ((acc_cf, cf, _EPS64, np.float64), (acc_ad, ad, eps_d, out_dtype)):
    tiny = float(jnp.finfo(odt).tiny)
    tol = c * (eps * (np.abs(mp) + cond) + mp_err) + tiny
    ok, ratio, err, ref_o = _compare(np.asarray(got)[sel], mp[sel], tol[sel], True, odt)
    flat = np.argwhere(sel)
    side = "closed form" if acc_ is acc_cf else "autodiff"

    def describe(idx, got=np.asarray(got)[sel], ref=mp[sel], flat=flat, side=side):
      pos = [int(v) for v in flat[idx[0]]]
      if hess:
        half = len(pos) // 2
        label = f"H{_orig_index(pt, pos[:half]) + _orig_index(pt, pos[half:])}"
      else:
        label = f"{name}{_orig_index(pt, pos)}"
      return f"{where}, {label}: {side}={_fmt_val(got[idx])} mp reference={_fmt_val(ref[idx])}"

    acc_.add(ok, ratio, err, tol[sel], ref_o, describe)


# ---------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------
def _run(name: str, tasks: Sequence[_Task], dtypes: Sequence[np.dtype], *, n_near: int,
         n_directions: int, seed: int) -> Report:
  rng = np.random.default_rng(seed)
  dtypes = [resolve_dtype(d) for d in dtypes]
  # -------- build the batches: per task, per shape group: ref (all dtypes) and ad (per dtype)
  plan = []  # per task: list of groups
  for ti, task in enumerate(tasks):
    pts = list(task.points) + _near_points(task.points, task.float_argnums, n_near, rng)
    if task.flatten:
      length = max(int(np.size(p.args[0])) for p in pts)
      pts = [_tile(p, length) for p in pts]
    elif task.tile_rows:
      pts = _tile_rows(pts)
    diff_args = sorted(set(task.grads) | ({task.hessian_argnum} if task.hessian is not None else set()))
    groups: dict[tuple, dict] = {}
    skipped: list[tuple[str, str]] = []  # (dtype, kind)
    for pt in pts:
      dirs64 = {}
      for i in diff_args:
        x = pt.args[i]
        v = rng.standard_normal((n_directions,) + np.shape(x))
        dirs64[i] = np.where(np.isfinite(x), v, 0.0)
      for d in dtypes:
        rd, r64, representable = _round(pt.args, task.float_argnums, d)
        if not representable:
          skipped.append((_short(d), pt.kind))
          continue
        key = (_shape_sig(pt.args),)
        grp = groups.setdefault(key, {"entries": []})
        dirs_d = {i: dirs64[i].astype(rd[i].dtype) for i in diff_args}
        grp["entries"].append(dict(point=pt, dtype=d, rd=rd, r64=r64, dirs_d=dirs_d,
                                   dirs64={i: v.astype(np.float64) for i, v in dirs_d.items()}))
    plan.append(dict(task=task, groups=list(groups.values()), skipped=skipped, diff_args=diff_args))

  # -------- inputs
  ref_inputs, ad_inputs = [], []
  for tp in plan:
    task = tp["task"]
    ref_t, ad_t = [], []
    for grp in tp["groups"]:
      ents = grp["entries"]
      nargs = len(ents[0]["r64"])
      args = tuple(np.stack([e["r64"][k] for e in ents]) for k in range(nargs))
      eps = np.array([float(jnp.finfo(e["dtype"]).eps) for e in ents], np.float64)
      tiny = np.array([float(jnp.finfo(e["dtype"]).tiny) for e in ents], np.float64)
      dirs = {i: np.stack([e["dirs64"][i] for e in ents]) for i in tp["diff_args"]}
      patterns = _patterns(rng, len(ents), [(k, ents[0]["r64"][k]) for k in task.perturb_argnums])
      cf_args, fd_args, meta = _ref_layout(task, args, eps, tiny, dirs, patterns)
      grp["ref_meta"] = (args, eps, meta)
      ref_t.append((cf_args, fd_args))
      per_dtype = {}
      for d in dtypes:
        sel = [j for j, e in enumerate(ents) if e["dtype"] == d]
        if not sel:
          continue
        a = tuple(np.stack([ents[j]["rd"][k] for j in sel]) for k in range(nargs))
        dd = {i: np.stack([ents[j]["dirs_d"][i] for j in sel]) for i in tp["diff_args"]}
        per_dtype[d.name] = (sel, a, _ad_tangents(task, a, dd))
      grp["per_dtype"] = per_dtype
      ad_t.append({k: (v[1], v[2]) for k, v in per_dtype.items()})
    ref_inputs.append(ref_t)
    ad_inputs.append(ad_t)

  ref_fns = [_ref_program(tp["task"]) for tp in plan]
  ad_fns = [_ad_program(tp["task"]) for tp in plan]

  def ref_program(ref_in):
    return [[ref_fns[ti](*g) for g in ref_in[ti]] for ti in range(len(plan))]

  def ad_program(dname, ad_in):
    return [[ad_fns[ti](*g[dname]) if dname in g else None for g in ad_in[ti]]
            for ti in range(len(plan))]

  units: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [(ref_program, (ref_inputs,))]
  for d in dtypes:
    units.append((functools.partial(ad_program, d.name), (ad_inputs,)))
  with jax.enable_x64(True):
    outs, timings = _compile_and_run(units)
  ref_out = []
  for ti, tp in enumerate(plan):
    per_group = []
    for gi, grp in enumerate(tp["groups"]):
      args64, eps64, meta = grp["ref_meta"]
      per_group.append(_ref_post(tp["task"], args64, eps64, meta, outs[0][ti][gi]))
    ref_out.append(per_group)
  ad_out = [[{d.name: outs[1 + j][ti][gi] for j, d in enumerate(dtypes) if outs[1 + j][ti][gi] is not None}
             for gi in range(len(plan[ti]["groups"]))] for ti in range(len(plan))]
  t3 = time.perf_counter()

  # -------- the typical size of each closed form (its largest entry at the given points)
  typical: dict[tuple[str, str], float] = {}
  for ti, tp in enumerate(plan):
    for gi, grp in enumerate(tp["groups"]):
      for ej, e in enumerate(grp["entries"]):
        if e["point"].kind != "given":
          continue
        for qname, res in ref_out[ti][gi].items():
          if not isinstance(res, dict):
            continue
          q = np.asarray(res["g" if qname.startswith("g") else "h"][ej])
          key = (qname, e["dtype"].name)
          typical[key] = max(typical.get(key, 0.0), _norm_inf(q))

  # -------- compare
  accs: dict[tuple, _Acc] = {}
  mp_cache: dict[tuple, Any] = {}
  mp_time = 0.0

  def acc(arg, check, dtype, kind) -> _Acc:
    return accs.setdefault((arg, check, dtype, kind), _Acc())

  for ti, tp in enumerate(plan):
    task = tp["task"]
    for d, kind in tp["skipped"]:
      for i in task.grads:
        for chk in ("grad/reverse", "grad/forward", "grad/fd64"):
          acc(task.arg_names[i], chk, d, kind).skipped += 1
      if task.hessian is not None:
        for chk in ("hess/reverse", "hess/forward", "hess/fd64"):
          acc(task.arg_names[task.hessian_argnum], chk, d, kind).skipped += 1
    for gi, grp in enumerate(tp["groups"]):
      ents = grp["entries"]
      ro = ref_out[ti][gi]
      for dname, (sel, _, _) in grp["per_dtype"].items():
        ao = ad_out[ti][gi][dname]
        for bj, ej in enumerate(sel):
          e = ents[ej]
          pt = e["point"]
          d = e["dtype"]
          ds = _short(d)
          eps = float(jnp.finfo(d).eps)
          in_domain = pt.in_domain and not (pt.kind == "near" and bool(ro["loss_nan"][ej]))
          where = f"{pt.kind} point '{pt.label}'{task.config_note}"
          mp_res = None
          if task.ref_mp is not None and pt.kind == "edge" and pt.in_domain:
            key = (ti,) + tuple(np.asarray(e["r64"][k]).tobytes() for k in range(len(e["r64"])))
            if key not in mp_cache:
              tm = time.perf_counter()
              mp_cache[key] = _mp_derivatives_rows(task, e["r64"], pt.rows, sorted(task.grads),
                                                   task.hessian_argnum if task.hessian is not None else None)
              mp_time += time.perf_counter() - tm
            mp_res = mp_cache[key]
          for i in sorted(task.grads):
            aname = task.arg_names[i]
            r = {k: np.asarray(v[ej]) for k, v in ro[f"g{i}"].items()}
            a = {k: np.asarray(v[bj]) for k, v in ao[f"g{i}"].items()}
            g_ref, cond, jump = r["g"], r["cond"], r["jump"]
            x = e["r64"][i]
            # reverse mode
            out_dtype = a["g"].dtype
            tiny = float(jnp.finfo(out_dtype).tiny)
            size = max(_norm_inf(g_ref), typical.get((f"g{i}", d.name), 0.0))
            tol = TOLERANCE_FACTOR * eps * (size + cond) + jump + tiny
            ok, ratio, err, ref_o = _compare(a["g"], g_ref, tol, in_domain, out_dtype)

            def describe(idx, x=x, got=a["g"], ref=g_ref, aname=aname, where=where, pt=pt):
              return (f"{where}, {aname}{_orig_index(pt, idx)}={_fmt_val(x[idx])}: autodiff={_fmt_val(got[idx])}"
                      f" closed form={_fmt_val(ref[idx])}")

            acc(aname, "grad/reverse", ds, pt.kind).add(ok, ratio, err, tol, ref_o, describe)
            if mp_res is not None:
              _mp_rows(acc(aname, "grad/mp-closed-form", ds, pt.kind), acc(aname, "grad/mp", ds, pt.kind),
                       mp_res[0][i], mp_res[2][i], g_ref, a["g"], r["cond2"], eps, out_dtype, where, aname, pt)
            # forward mode: a directional derivative of fn(*args).sum() exists only
            # where that sum and the gradient are finite (elsewhere reverse mode
            # compares the non-finite values one by one).
            smooth = bool(ro["loss_finite"][ej]) and bool(np.isfinite(g_ref).all())
            if not smooth:
              acc(aname, "grad/forward", ds, pt.kind).skipped += 1
              acc(aname, "grad/fd64", ds, pt.kind).skipped += 1
              continue
            v = e["dirs64"][i]
            ax = tuple(range(1, v.ndim))
            with np.errstate(all="ignore"):
              gv = np.sum(g_ref * v, axis=ax)
              tol_f = (TOLERANCE_FACTOR * eps * np.sum((size + cond) * np.abs(v), axis=ax)
                       + float(jnp.finfo(a["jv"].dtype).tiny))
            ok, ratio, err, ref_o = _compare(a["jv"], gv, tol_f, in_domain, a["jv"].dtype)

            def describe_f(idx, got=a["jv"], ref=gv, where=where, aname=aname):
              return (f"{where}, direction {idx[0]} in {aname}: jvp={_fmt_val(got[idx])}"
                      f" closed form={_fmt_val(ref[idx])}")

            acc(aname, "grad/forward", ds, pt.kind).add(ok, ratio, err, tol_f, ref_o, describe_f)
            # float64 finite differences
            fa = acc(aname, "grad/fd64", ds, pt.kind)
            if not in_domain:
              fa.skipped += 1
            else:
              # the loss sums' rounding: their size plus their first-order sensitivity sum|g x|
              _fd_rows(fa, r["fv"], r["fa"] + r["gx_abs"], r["gu"], _EPS64 * (r["gu_abs"] + r["condu"]),
                       _fd_first, where, aname)
          if task.hessian is not None:
            i = task.hessian_argnum
            aname = task.arg_names[i]
            r = {k: np.asarray(v[ej]) for k, v in ro["h"].items()}
            a = {k: np.asarray(v[bj]) for k, v in ao["h"].items()}
            h_ref, cond, jump = r["h"], r["cond"], r["jump"]
            out_dtype = a["h"].dtype
            tiny = float(jnp.finfo(out_dtype).tiny)
            size = max(_norm_inf(h_ref), typical.get(("h", d.name), 0.0))
            tol = TOLERANCE_FACTOR * eps * (size + cond) + jump + tiny
            ok, ratio, err, ref_o = _compare(a["h"], h_ref, tol, in_domain, out_dtype)

            def describe_h(idx, got=a["h"], ref=h_ref, where=where, pt=pt):
              half = len(idx) // 2
              ij = _orig_index(pt, idx[:half]) + _orig_index(pt, idx[half:])
              return f"{where}, H{ij}: autodiff={_fmt_val(got[idx])} closed form={_fmt_val(ref[idx])}"

            acc(aname, "hess/reverse", ds, pt.kind).add(ok, ratio, err, tol, ref_o, describe_h)
            if mp_res is not None and mp_res[1] is not None:
              _mp_rows(acc(aname, "hess/mp-closed-form", ds, pt.kind), acc(aname, "hess/mp", ds, pt.kind),
                       mp_res[1], mp_res[3], h_ref, a["h"], r["cond2"], eps, out_dtype, where, aname, pt,
                       hess=True)
            if not (bool(ro["loss_finite"][ej]) and bool(np.isfinite(h_ref).all())):
              acc(aname, "hess/forward", ds, pt.kind).skipped += 1
              acc(aname, "hess/fd64", ds, pt.kind).skipped += 1
              continue
            v = e["dirs64"][i]
            n = v[0].size
            vf = v.reshape(v.shape[0], n)
            hm = h_ref.reshape(n, n)
            with np.errstate(all="ignore"):
              hv = (vf @ hm.T).reshape(v.shape)
              scale = np.abs(vf) @ (eps * (size + cond.reshape(n, n))).T
              tol_f = TOLERANCE_FACTOR * scale.reshape(v.shape) + float(jnp.finfo(a["hv"].dtype).tiny)
            ok, ratio, err, ref_o = _compare(a["hv"], hv, tol_f, in_domain, a["hv"].dtype)

            def describe_hv(idx, got=a["hv"], ref=hv, where=where, pt=pt):
              return (f"{where}, (H v)[{int(idx[0])}]{_orig_index(pt, idx[1:])}: jvp(grad)={_fmt_val(got[idx])}"
                      f" closed form={_fmt_val(ref[idx])}")

            acc(aname, "hess/forward", ds, pt.kind).add(ok, ratio, err, tol_f, ref_o, describe_hv)
            fa = acc(aname, "hess/fd64", ds, pt.kind)
            if not in_domain:
              fa.skipped += 1
            else:
              if "gv" in r:
                _fd_hess_rows(fa, r["gv"], r["hu"], _EPS64 * (r["hu_abs"] + r["condhu"]), where, aname, pt,
                              np.shape(e["r64"][i]), r["gcond"], typical.get((f"g{i}", d.name), 0.0))
              else:
                _fd_rows(fa, r["fv"], r["fa"], r["uhu"], _EPS64 * (r["uhu_abs"] + r["condu"]), _fd_second,
                         where, aname)

  order = {"grad/reverse": 0, "grad/forward": 1, "grad/fd64": 2, "grad/mp": 3, "grad/mp-closed-form": 4,
           "hess/reverse": 5, "hess/forward": 6, "hess/fd64": 7, "hess/mp": 8, "hess/mp-closed-form": 9}
  kinds = {"given": 0, "edge": 1, "near": 2}
  dorder = {_short(d): j for j, d in enumerate(dtypes)}
  rows = [a.row(name, *k) for k, a in accs.items() if a.n or a.skipped]
  rows.sort(key=lambda r: (r.arg, order.get(r.check, 9), dorder.get(r.dtype, 9), kinds.get(r.kind, 9)))
  rep = Report(name, rows)
  rep.timings = dict(timings, compare=time.perf_counter() - t3 - mp_time, mp=mp_time)
  return rep


def _fd_hess_rows(acc_: _Acc, gv, hu, ref_err, where, aname, pt, xshape, gcond, gsize):
  """Componentwise: float64 differences of the closed-form gradient along u vs the closed-form H u.

  ``gv``: (n_dir, 5, n) gradients at x + t u, t in (0, h, -h, 2h, -2h). At a
  kink of the gradient the closed form may lie between the one-sided and
  central differences of each component.
  """
  h = _FD_H1
  c = TOLERANCE_FACTOR
  with np.errstate(all="ignore"):
    g0, gp, gm, gp2, gm2 = (gv[:, k] for k in range(5))
    d1 = (gp - gm) / (2 * h)
    d2 = (gp2 - gm2) / (4 * h)
    dp = (-3 * g0 + 4 * gp - gp2) / (2 * h)
    dm = (3 * g0 - 4 * gm + gm2) / (2 * h)
    central = np.isfinite(gv).all(axis=1)
    fwd = np.isfinite(g0) & np.isfinite(gp) & np.isfinite(gp2)
    bwd = np.isfinite(g0) & np.isfinite(gm) & np.isfinite(gm2)
    # float64 rounding of the gradient evaluations: its size plus its conditioning
    # (cancellation: sigmoid(z) - y near z = 0, y = 1/2 is small, its terms are not)
    gmag = max(_norm_inf(gv), gsize) + gcond  # normwise, like the autodiff checks
    rnd = 8.0 * _EPS64 * gmag / h
    lo = np.where(central, np.minimum(np.minimum(d1, dp), dm), np.where(fwd, dp, dm))
    hi = np.where(central, np.maximum(np.maximum(d1, dp), dm), np.where(fwd, dp, dm))
    trunc = np.where(central, np.abs(d1 - d2) / 3.0,
                     np.where(fwd, np.abs(dp - (gp - g0) / h), np.abs(dm - (g0 - gm) / h)))
    tol = c * (trunc + rnd + ref_err)
    usable = (central | fwd | bwd) & np.isfinite(hu) & np.isfinite(tol)
    err = np.where(usable, np.where((hu >= lo) & (hu <= hi), 0.0,
                                    np.minimum(np.abs(hu - lo), np.abs(hu - hi))), 0.0)
    err = np.where(np.isfinite(err), err, np.inf)
    ok = err <= tol
    ratio = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.where(err > 0, np.inf, 0.0))
  if not usable.any():
    acc_.skipped += 1
    return

  def describe(idx):
    k, j = int(idx[0]), int(idx[1])
    fd = _fmt_val(lo[k, j]) if lo[k, j] == hi[k, j] else f"[{_fmt_val(lo[k, j])}, {_fmt_val(hi[k, j])}]"
    pos = _orig_index(pt, (j,)) if pt.shape is not None else [int(a) for a in np.unravel_index(j, xshape)]
    return (f"{where}, direction {k}, (H u){pos}"
            f": differences of the closed-form gradient={fd} closed form={_fmt_val(hu[k, j])}")

  acc_.add(ok, ratio, err, tol, np.where(usable, hu, np.nan), describe)


def _fd_rows(acc_: _Acc, fv, fa, refs, ref_errs, estimator, where, aname):
  """Adds one point's finite-difference comparisons (one per direction) to ``acc_``."""
  oks, ratios, errs, tols, vals, descs = [], [], [], [], [], []
  for k in range(fv.shape[0]):
    ref = float(refs[k])
    if not np.isfinite(ref):
      continue  # a non-finite closed form is compared by the autodiff checks
    est = estimator(fv[k], fa[k], ref, float(ref_errs[k]))
    if est is None:
      continue  # the loss is not finite around the point: no difference quotient
    lo, hi, tol = est
    err = 0.0 if lo <= ref <= hi else min(abs(ref - lo), abs(ref - hi))
    if not np.isfinite(err):
      err = math.inf
    oks.append(err <= tol)
    ratios.append(err / tol if tol > 0 else (0.0 if err == 0 else math.inf))
    errs.append(err)
    tols.append(tol)
    vals.append(ref)
    fd = _fmt_val(lo) if lo == hi else f"[{_fmt_val(lo)}, {_fmt_val(hi)}]"
    descs.append(f"{where}, direction {k} in {aname}: finite differences={fd} closed form={_fmt_val(ref)}")
  if not oks:
    acc_.skipped += 1
    return
  acc_.add(np.array(oks), np.array(ratios), np.array(errs), np.array(tols), np.array(vals),
           lambda idx: descs[idx[0]])


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def _bind(f: Callable[..., Any] | None, config: Mapping[str, Any]) -> Callable[..., Any] | None:
  if f is None:
    return None
  if not config:
    return f
  return lambda *a: f(*a, **config)


def _config_note(config: Mapping[str, Any]) -> str:
  if not config:
    return ""
  parts = []
  for k, v in config.items():
    if isinstance(v, (np.ndarray, jax.Array)) and np.size(v) > 4:
      parts.append(f"{k}=<array {np.shape(v)}>")
    else:
      parts.append(f"{k}={np.asarray(v).tolist() if isinstance(v, (np.ndarray, jax.Array)) else v!r}")
  return " [" + ", ".join(parts) + "]"


def _points_from(points, float_argnums) -> list[tuple[dict, _Point]]:
  from jaxloss._spec import EdgeCase  # pylint: disable=g-import-not-at-top

  out = []
  for j, p in enumerate(points or ()):
    if isinstance(p, EdgeCase):
      out.append((dict(p.config), _Point(_base_args(p.args, float_argnums), "edge", p.note or f"edge {j}",
                                         p.in_domain)))
    else:
      out.append(({}, _Point(_base_args(tuple(p), float_argnums), "edge", f"point {j}", True)))
  return out


def _default_float_argnums(args) -> tuple[int, ...]:
  return tuple(i for i, a in enumerate(args) if jnp.issubdtype(np.asarray(a).dtype, jnp.floating))


def _flattenable(config: Mapping[str, Any], points: Sequence[_Point]) -> bool:
  """Whether an elementwise loss's points may be flattened and tiled under this config."""
  if any(k in config for k in ("axis", "where", "weights")):
    return False
  if any(np.ndim(v) > 0 for v in config.values() if not isinstance(v, str)):
    return False
  for p in points:
    shapes = {np.shape(a) for a in p.args}
    if len(shapes) != 1 or np.size(p.args[0]) == 0:
      return False
  return True


def _mp_structure(reference_mp, elementwise, config, pts) -> tuple:
  if reference_mp is None:
    return ("general",)
  if not elementwise:
    return ("rowwise", int(config.get("axis", -1)))
  shapes = {np.shape(a) for p in pts for a in p.args}
  return ("elementwise",) if len({np.shape(a) for a in pts[0].args}) == 1 and len(shapes) >= 1 else ("general",)


def _build_tasks(fn, grads, hessian, hessian_argnum, args, points, float_argnums, arg_names,
                 configs=({},), elementwise=False, reference_mp=None, independent_rows=False) -> list[_Task]:
  """One task per distinct config: the given args under every config, each edge under its own."""
  buckets: list[tuple[dict, list[_Point]]] = []

  def bucket(config):
    for c, pts in buckets:
      if _same_config(c, config):
        return pts
    buckets.append((dict(config), []))
    return buckets[-1][1]

  for config in configs:
    pts = bucket(config)
    if args is not None:
      pts.append(_Point(_base_args(args, float_argnums), "given", "args", True))
  for config, pt in _points_from(points, float_argnums):
    bucket(config).append(pt)
  tasks = []
  for config, pts in buckets:
    if not pts:
      continue
    pts = _common_int_dtypes(pts, float_argnums)
    tasks.append(_Task(
        fn=cast(Callable[..., Any], _bind(fn, config)),
        grads={i: cast(Callable[..., Any], _bind(g, config)) for i, g in grads.items()},
        hessian=_bind(hessian, config), hessian_argnum=hessian_argnum, float_argnums=tuple(float_argnums),
        arg_names=tuple(arg_names), points=pts, config_note=_config_note(config),
        perturb_argnums=tuple(i for i, a in enumerate(pts[0].args)
                              if jnp.issubdtype(np.asarray(a).dtype, jnp.floating)),
        flatten=elementwise and _flattenable(config, pts),
        tile_rows=independent_rows and "axis" not in config,
        ref_mp=_bind(reference_mp, config),
        mp_structure=_mp_structure(reference_mp, elementwise, config, pts)))
  return tasks


def _common_int_dtypes(points: list[_Point], float_argnums) -> list[_Point]:
  """The points with each integer argument in the first point's integer dtype, where its values fit.

  Edge cases written with Python ints arrive as int64, the sampler's labels as
  int32: of one shape, they share a compiled program only in one dtype.
  """
  first = points[0].args
  out = []
  for p in points:
    args = list(p.args)
    for k, a in enumerate(args):
      if k in float_argnums or k >= len(first):
        continue
      a, ref = np.asarray(a), np.asarray(first[k])
      if (a.dtype != ref.dtype and np.issubdtype(a.dtype, np.integer) and np.issubdtype(ref.dtype, np.integer)
          and np.array_equal(a.astype(ref.dtype).astype(a.dtype), a)):
        args[k] = a.astype(ref.dtype)
    out.append(dataclasses.replace(p, args=tuple(args)))
  return out


def _same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
  if set(a) != set(b):
    return False
  for k in a:
    va, vb = a[k], b[k]
    if isinstance(va, (np.ndarray, jax.Array)) or isinstance(vb, (np.ndarray, jax.Array)):
      if np.shape(va) != np.shape(vb) or not np.array_equal(np.asarray(va), np.asarray(vb)):
        return False
    elif va is not vb and va != vb:
      return False
  return True


def _normalize_argnums(argnums) -> tuple[int, ...]:
  if isinstance(argnums, (int, np.integer)):
    return (int(argnums),)
  return tuple(int(a) for a in argnums)


def check_gradient(
    fn: Callable[..., Any],
    grad_fn: Callable[..., Any] | Sequence[Callable[..., Any]],
    args: Sequence[Any],
    *,
    argnums: int | Sequence[int] = 0,
    dtypes: Sequence[Any] | None = None,
    points: Sequence[Any] | None = None,
    hessian_fn: Callable[..., Any] | None = None,
    hessian_argnum: int | None = None,
    float_argnums: Sequence[int] | None = None,
    arg_names: Sequence[str] | None = None,
    n_near: int = 1,
    n_directions: int = 3,
    seed: int = 0,
    name: str | None = None,
) -> Report:
  """Checks a closed-form gradient against autodiff (both modes) and float64 finite differences.

  Args:
    fn: ``fn(*args)`` returns the unreduced (or a scalar) loss; it must be a
      JAX-traceable function.
    grad_fn: ``grad_fn(*args)`` returns the closed-form gradient of
      ``fn(*args).sum()`` with respect to ``args[argnums]``, JAX-traceable. With
      several ``argnums``, a sequence of closed forms, one per argnum.
    args: the point to check at (any dtypes; they are promoted to float64 and
      rounded to each dtype under test).
    argnums: which argument(s) the closed form differentiates.
    dtypes: names ("bf16", "bfloat16", "f16", "f32", "f64", ...) or dtypes;
      default ``("float32", "float64")``.
    points: extra argument tuples to check (edge cases), or
      :class:`jaxloss.EdgeCase` objects (whose ``config`` is passed to ``fn``
      and ``grad_fn`` as keyword arguments and whose ``in_domain=False`` marks
      a point outside the domain).
    hessian_fn: optionally, the closed-form Hessian of ``fn(*args).sum()`` with
      respect to ``args[hessian_argnum]`` (default the first argnum), checked
      too (see :func:`check_hessian`).
    float_argnums: the arguments that are cast to the dtype under test and
      perturbed (default: those with a floating dtype).
    arg_names: names for the report (default ``arg0, arg1, ...``).
    n_near: random points near each point (float inputs times
      ``exp(0.05 N(0, 1))``).
    n_directions: random directions for the forward-mode and finite-difference
      checks.
    seed: seeds the random points and directions.
    name: the name used in the report.

  Returns:
    A :class:`Report`; it never raises on a mismatch (use ``assert_ok()``).
  """
  argnums_t = _normalize_argnums(argnums)
  if callable(grad_fn):
    grad_fns = [grad_fn]
  else:
    grad_fns = list(grad_fn)
  if len(grad_fns) != len(argnums_t):
    raise ValueError(f"got {len(grad_fns)} closed forms for argnums={argnums_t}.")
  with jax.enable_x64(True):
    fl = tuple(float_argnums) if float_argnums is not None else _default_float_argnums(args)
    for i in argnums_t:
      if i not in fl:
        raise ValueError(f"argnums={i} is not a floating-point argument (float_argnums={fl}).")
    names = tuple(arg_names) if arg_names is not None else tuple(f"arg{i}" for i in range(len(args)))
    h_arg = argnums_t[0] if hessian_argnum is None else int(hessian_argnum)
    tasks = _build_tasks(fn, dict(zip(argnums_t, grad_fns)), hessian_fn, h_arg, args, points, fl, names)
    return _run(name or getattr(fn, "__name__", "fn"), tasks,
                dtypes if dtypes is not None else ("float32", "float64"),
                n_near=n_near, n_directions=n_directions, seed=seed)


def check_hessian(
    fn: Callable[..., Any],
    hessian_fn: Callable[..., Any],
    args: Sequence[Any],
    *,
    argnums: int = 0,
    dtypes: Sequence[Any] | None = None,
    points: Sequence[Any] | None = None,
    float_argnums: Sequence[int] | None = None,
    arg_names: Sequence[str] | None = None,
    n_near: int = 1,
    n_directions: int = 3,
    seed: int = 0,
    name: str | None = None,
) -> Report:
  """Checks a closed-form Hessian the same three ways as :func:`check_gradient`.

  ``hessian_fn(*args)`` is the full Hessian of ``fn(*args).sum()`` with
  respect to ``args[argnums]``, shaped ``x.shape + x.shape`` (as
  ``jax.hessian`` shapes it). It is compared with ``jax.hessian`` (reverse
  over forward) in each dtype, with Hessian-vector products ``jax.jvp`` of
  ``jax.grad`` along random directions, and with float64 second differences
  of ``fn`` along random directions. Other arguments as in
  :func:`check_gradient`.
  """
  with jax.enable_x64(True):
    fl = tuple(float_argnums) if float_argnums is not None else _default_float_argnums(args)
    names = tuple(arg_names) if arg_names is not None else tuple(f"arg{i}" for i in range(len(args)))
    tasks = _build_tasks(fn, {}, hessian_fn, int(argnums), args, points, fl, names)
    return _run(name or getattr(fn, "__name__", "fn"), tasks,
                dtypes if dtypes is not None else ("float32", "float64"),
                n_near=n_near, n_directions=n_directions, seed=seed)


def check_spec(
    spec: Any,
    *,
    dtypes: Sequence[Any] = ALL_DTYPES,
    configs: Sequence[Mapping[str, Any]] | None = None,
    edge_cases: bool = True,
    hessian: bool = True,
    argnums: Sequence[int] | None = None,
    n_near: int = 1,
    n_directions: int = 3,
    seed: int = 0,
) -> Report:
  """Runs every check on a :class:`jaxloss.LossSpec` (registered or not).

  The spec's sampler gives the ``given`` point (sampled once in float64 and
  rounded to each dtype, so every dtype sees the same point), checked under
  every config in ``spec.configs``; each edge case is checked under its own
  config. Every closed-form gradient in ``spec.grads`` is checked, and the
  Hessian where the spec has one.
  """
  with jax.enable_x64(True):
    fn = lambda *a, **c: spec.fn(*a, reduction="none", **c)
    sample = spec.sample(jax.random.PRNGKey(seed), jnp.float64)
    grads = dict(spec.grads)
    if argnums is not None:
      grads = {i: g for i, g in grads.items() if i in set(argnums)}
    tasks = _build_tasks(
        fn, grads, spec.hessian if hessian else None, spec.hessian_argnum, sample,
        list(spec.edge_cases) if edge_cases else [], spec.float_argnums, spec.arg_names,
        configs=list(spec.configs) if configs is None else list(configs), elementwise=not spec.rowwise,
        independent_rows=spec.rowwise and not getattr(spec, "batch_coupled", False),
        reference_mp=getattr(spec, "reference_mp", None) if edge_cases and _have_mpmath() else None)
    return _run(spec.name, tasks, dtypes, n_near=n_near, n_directions=n_directions, seed=seed)


def check_registered(name: str, *, dtypes: Sequence[Any] = ALL_DTYPES, **kwargs: Any) -> Report:
  """:func:`check_spec` of ``jaxloss.REGISTRY[name]``."""
  from jaxloss._registry import REGISTRY  # pylint: disable=g-import-not-at-top

  if name not in REGISTRY:
    raise KeyError(f"no loss named {name!r} in jaxloss.REGISTRY; known: {sorted(REGISTRY)}")
  return check_spec(REGISTRY[name], dtypes=dtypes, **kwargs)


def _row_from_dict(d: Mapping[str, Any]) -> Row:
  d = dict(d)
  for k in ("max_error", "tolerance", "ratio", "rel_error"):
    d[k] = float(d[k])
  return Row(**d)


def _report_from_dict(d: Mapping[str, Any]) -> Report:
  rep = Report(d["name"], [_row_from_dict(r) for r in d["rows"]])
  rep.timings = dict(d.get("timings", {}))
  return rep


def _check_registered_dict(name: str, dtypes, kwargs) -> dict[str, Any]:
  rep = check_registered(name, dtypes=dtypes, **kwargs)
  out = rep.to_dict()
  out["timings"] = rep.timings
  return out


def _cost_estimate(spec: Any) -> float:
  """A spec's relative verification time: its (config, edge) combinations, more with a Hessian.

  A rough static estimate (no sampling, no tracing), used only to order the
  workers' queue longest first.
  """
  return (len(spec.configs) + len(spec.edge_cases)) * (1.6 if spec.hessian is not None else 1.0)


def _worker_xla_flags() -> str:
  """``XLA_FLAGS`` for :func:`check_all`'s workers: on CPU, ``_COMPILER_OPTIONS`` for every compilation.

  The verifier's own programs are compiled with those options anyway; the
  flags extend them to the operations run eagerly (the samplers draw each
  spec's point op by op, and each new operation is a compilation). Only the
  options this XLA build accepts (probed here) are passed: an unknown flag in
  ``XLA_FLAGS`` stops the process.
  """
  if jax.default_backend() != "cpu":
    return ""
  lowered = jax.jit(lambda x: x + 1).lower(np.float32(0))
  flags = []
  for k, v in _COMPILER_OPTIONS.items():
    try:
      lowered.compile(compiler_options={k: v})
    except Exception:  # pylint: disable=broad-except  # an option this XLA build doesn't know
      continue
    flags.append(f"--{k}={str(v).lower()}")
  return " ".join(flags)


def _init_worker(flags: str) -> None:
  """Before the worker's backend starts: the user's ``XLA_FLAGS`` followed by ``flags``."""
  if flags:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()


def check_all(names: Sequence[str] | None = None, *, dtypes: Sequence[Any] = ALL_DTYPES,
              progress: Callable[[str, Report], None] | None = None, jobs: int = 1,
              **kwargs: Any) -> Report:
  """:func:`check_registered` over ``names`` (default: the whole registry), merged into one report.

  ``jobs > 1`` checks losses in that many worker processes (tracing is
  single-threaded Python, so processes are what uses several cores).
  """
  from jaxloss._registry import REGISTRY  # pylint: disable=g-import-not-at-top

  names = list(REGISTRY) if not names else list(names)
  dtypes = [resolve_dtype(d).name for d in dtypes]
  reports: dict[str, Report] = {}
  if jobs > 1 and len(names) > 1:
    import multiprocessing  # pylint: disable=g-import-not-at-top

    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                                initargs=(_worker_xla_flags(),)) as pool:
      # longest first (estimated), so that no worker is left with a long loss at the end
      order = sorted(names, key=lambda n: -_cost_estimate(REGISTRY[n]))
      futures = {pool.submit(_check_registered_dict, n, dtypes, kwargs): n for n in order}
      for fut in concurrent.futures.as_completed(futures):
        rep = _report_from_dict(fut.result())
        reports[futures[fut]] = rep
        if progress is not None:
          progress(futures[fut], rep)
  else:
    for n in names:
      rep = check_registered(n, dtypes=dtypes, **kwargs)
      if progress is not None:
        progress(n, rep)
      reports[n] = rep
  return Report.merge("jaxloss.REGISTRY" if len(names) != 1 else names[0], [reports[n] for n in names])
