"""Kernels of :mod:`jaxloss.fused`: chunked scans, token blocks and vocabulary-parallel collectives.

Everything here works on 2-D operands (``h [N, D]``, ``w [D, V]``, ``b [V]`` or
``None``, ``labels [N]`` already made safe: in ``[0, V)``) and is wrapped, when
a mesh axis is named, in a :func:`jax.shard_map` over the ambient mesh. Inside
the map each device holds ``h [N / T, D]`` (``T`` the size of ``token_axis``)
and ``w [D, V / S]`` (``S`` the size of ``vocab_axis``); ``labels`` stay global
class indices and a shard's columns are offset by ``axis_index * V / S``.

Row statistics of the logits ``z`` of a row (``m`` max, ``s = sum exp(z - m)``,
``z_y``, ``sum_j z_j`` and the first argmax) are computed per vocabulary chunk
and merged, first along the chunks of a shard, then across shards with
``pmax``/``psum``/``pmin`` over ``vocab_axis``: ``O(N)`` floats per step. The
backward pass recomputes each chunk's logits, so ``dL/dw`` comes out sharded like
``w`` and only ``dL/dh`` (``[N, D]``) is summed over ``vocab_axis``.

The derivative of the statistics (hand-derived; ``t = tanh(x / c)`` the
soft-cap, ``p = softmax(z)``): for cotangents ``(a, g, u)`` of
``(lse, z_y, sum_j z_j)``, the gradient with respect to the raw logit ``x_j`` is

    G_j = (a p_j + g [j = y] + u) (1 - t_j^2)

and ``dL/dh = G W^T``, ``dL/dW = h^T G``, ``dL/db = 1^T G``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.sharding import PartitionSpec as P

_INT_MAX = np.iinfo(np.int32).max


@dataclasses.dataclass(frozen=True)
class Config:
  """Static configuration of one call (hashable: a ``nondiff_argnums`` argument)."""
  chunk: int                # vocabulary columns per chunk (of a shard's V)
  block: int                # token rows per block (of a shard's N)
  softcap: float | None
  cdtype: Any               # computation dtype (float32 or float64)
  vocab: int                # the GLOBAL V (label smoothing, z-loss)
  vocab_axis: str | None
  token_axis: str | None
  argmax: bool              # also track the first argmax (accuracy output)
  smoothing: bool = True    # label smoothing may be nonzero (else sum_j z_j is not computed)


class Stats(NamedTuple):
  m: jax.Array              # [n] row max
  s: jax.Array              # [n] sum_j exp(z_j - m)
  zy: jax.Array             # [n] label logit
  zsum: jax.Array           # [n] sum_j z_j
  arg: jax.Array | None     # [n] int32 first argmax (global column), or None


# --------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------
def _dot(a, b, ca: int, cb: int, cdtype):
  return lax.dot_general(a, b, (((ca,), (cb,)), ((), ())), preferred_element_type=cdtype)


def _transposed(h):
  """``h.T`` materialized: ``dot(h.T, G)`` then contracts its lhs minor dimension, the layout XLA:CPU's
  fast (YNNPACK) matmul path takes; XLA would otherwise fold the transpose into the dot (an Eigen call)."""
  return lax.optimization_barrier(jnp.transpose(h))


def num_pieces(total: int, size: int) -> int:
  return max(1, -(-total // size))


def _start(i, size: int, total: int):
  """Start of piece ``i`` of ``size``, clamped so that the last one ends at ``total`` (no padding)."""
  return jnp.maximum(jnp.minimum(i * size, total - size), 0)


def _exp_rel(m_old, m_new):
  """``exp(m_old - m_new)``, 0 where ``m_old`` is -inf (an empty accumulator)."""
  return jnp.where(m_old == -jnp.inf, jnp.zeros((), m_old.dtype), jnp.exp(m_old - m_new))


def _logits(hb, wc, bc, cfg: Config):
  """``z`` (soft-capped logits, cdtype) and ``t = tanh(x / c)`` (or None) of a block x chunk."""
  x = _dot(hb, wc, 1, 0, cfg.cdtype)
  if bc is not None:
    x = x + bc[None, :].astype(cfg.cdtype)
  if cfg.softcap is None:
    return x, None
  cap = jnp.asarray(cfg.softcap, cfg.cdtype)
  t = jnp.tanh(x / cap)
  return cap * t, t


def _piece_stats(z, base, lo, labels, cfg: Config) -> Stats:
  """Statistics of a piece of columns ``base + [0, C)`` (global indices) of ``z [n, C]``.

  ``lo``: None, or the first local column not covered by an earlier (overlapping) piece.
  """
  zero = jnp.zeros((), z.dtype)
  width = z.shape[1]
  local = jnp.arange(width, dtype=jnp.int32)
  valid = None if lo is None else local >= lo
  zm = z if valid is None else jnp.where(valid[None, :], z, -jnp.inf)
  m = jnp.max(zm, axis=1)
  s = jnp.sum(jnp.exp(zm - m[:, None]), axis=1)
  idx = labels - base  # the label's local column (a gather of n values, no [n, C] select)
  hit = (idx >= (0 if lo is None else lo)) & (idx < width)
  zy = jnp.where(hit, jnp.take_along_axis(z, jnp.clip(idx, 0, width - 1)[:, None], axis=1)[:, 0], zero)
  if cfg.smoothing:
    zsum = jnp.sum(zm if valid is None else jnp.where(valid[None, :], z, zero), axis=1)
  else:  # label_smoothing is a concrete 0: the row sum is not needed
    zsum = jnp.zeros_like(m)
  arg = (base + jnp.argmax(zm, axis=1).astype(jnp.int32)) if cfg.argmax else None
  return Stats(m, s, zy, zsum, arg)


def _merge(a: Stats, b: Stats) -> Stats:
  """Statistics of the union of two column sets (``a``'s columns come first)."""
  m = jnp.maximum(a.m, b.m)
  s = a.s * _exp_rel(a.m, m) + b.s * _exp_rel(b.m, m)
  arg = None if a.arg is None else jnp.where(b.m > a.m, b.arg, a.arg)  # pyright: ignore[reportArgumentType]
  return Stats(m, s, a.zy + b.zy, a.zsum + b.zsum, arg)


def _merge_across(st: Stats, axis: str) -> Stats:
  """:func:`_merge` over the shards of ``axis`` (collectives of ``[n]`` vectors)."""
  m = lax.pmax(st.m, axis)
  s = lax.psum(st.s * _exp_rel(st.m, m), axis)
  arg = None if st.arg is None else lax.pmin(jnp.where(st.m == m, st.arg, _INT_MAX), axis)
  return Stats(m, s, lax.psum(st.zy, axis), lax.psum(st.zsum, axis), arg)


def _empty_stats(n: int, cfg: Config) -> Stats:
  z = jnp.zeros((n,), cfg.cdtype)
  return Stats(jnp.full((n,), -jnp.inf, cfg.cdtype), z, z, z,
               jnp.zeros((n,), jnp.int32) if cfg.argmax else None)


def _offset(vl: int, cfg: Config):
  """Global index of the shard's first column."""
  if cfg.vocab_axis is None:
    return jnp.zeros((), jnp.int32)
  return (lax.axis_index(cfg.vocab_axis) * vl).astype(jnp.int32)


def _grad_logits(z, t, lse, cols, labels, a, g, u, mask):
  """``G = (a p + g [j = y] + u)(1 - t^2)`` on a block x chunk, 0 where ``mask`` is False."""
  zero = jnp.zeros((), z.dtype)
  p = jnp.exp(z - lse[:, None])
  gz = a[:, None] * p + jnp.where(cols[None, :] == labels[:, None], g[:, None], zero)
  if u is not None:
    gz = gz + u[:, None]
  if t is not None:
    gz = gz * (1 - jnp.square(t))
  return gz if mask is None else jnp.where(mask, gz, zero)


def _row_mask(i, block: int, n: int, nb: int):
  """Rows of clamped block ``i`` not covered by an earlier block (None when blocks do not overlap)."""
  if n % block == 0 or nb == 1:
    return None
  return (_start(i, block, n) + jnp.arange(block)) >= i * block


def row_loss(lse, zy, zsum, eps, zl, vocab: int):
  """Per row: ``lse - (1 - eps) z_y - eps / V sum_j z_j + zl lse^2`` (V the global vocabulary)."""
  one = jnp.ones((), lse.dtype)
  return lse - (one - eps) * zy - (eps / jnp.asarray(vocab, lse.dtype)) * zsum + zl * jnp.square(lse)


# --------------------------------------------------------------------------
# memory-lean mode: forward statistics (token blocks x vocabulary chunks)
# --------------------------------------------------------------------------
def _block_stats(hb, w, b, lb, offset, cfg: Config) -> Stats:
  vl = w.shape[1]
  nc = num_pieces(vl, cfg.chunk)

  def body(acc, c):
    start = _start(c, cfg.chunk, vl)
    wc = lax.dynamic_slice_in_dim(w, start, cfg.chunk, axis=1)
    bc = None if b is None else lax.dynamic_slice_in_dim(b, start, cfg.chunk)
    z, _ = _logits(hb, wc, bc, cfg)
    lo = None if vl % cfg.chunk == 0 else c * cfg.chunk - start
    return _merge(acc, _piece_stats(z, offset + start, lo, lb, cfg)), None

  acc, _ = lax.scan(body, _empty_stats(hb.shape[0], cfg), jnp.arange(nc, dtype=jnp.int32))
  return acc


def _local_stats(h, w, b, labels, cfg: Config) -> Stats:
  offset = _offset(w.shape[1], cfg)
  n = h.shape[0]
  nb = num_pieces(n, cfg.block)
  if nb == 1:
    st = _block_stats(h, w, b, labels, offset, cfg)
  else:
    def body(i, acc):
      start = _start(i, cfg.block, n)
      hb = lax.dynamic_slice_in_dim(h, start, cfg.block)
      lb = lax.dynamic_slice_in_dim(labels, start, cfg.block)
      st = _block_stats(hb, w, b, lb, offset, cfg)
      # rows of an overlapping last block are recomputed identically and rewritten
      return jax.tree.map(lambda a, x: lax.dynamic_update_slice_in_dim(a, x, start, 0), acc, st)

    st = lax.fori_loop(0, nb, body, _empty_stats(n, cfg))
  if cfg.vocab_axis is not None:
    st = _merge_across(st, cfg.vocab_axis)
  return st


def _finish(st: Stats):
  lse = st.m + jnp.log(st.s)
  return (lse, st.zy, st.zsum) + (() if st.arg is None else (st.arg,))


# --------------------------------------------------------------------------
# memory-lean mode: backward (vocabulary chunks x token blocks, logits recomputed)
# --------------------------------------------------------------------------
def _local_backward(h, w, b, labels, lse, a, g, u, cfg: Config):
  """``(dh [n, D] cdtype, summed over vocab_axis; dw like w, summed over token_axis; db cdtype or None)``."""
  offset = _offset(w.shape[1], cfg)
  n, d = h.shape
  vl = w.shape[1]
  chunk, block = cfg.chunk, cfg.block
  nc, nb = num_pieces(vl, chunk), num_pieces(n, block)
  mdtype = h.dtype
  ht = _transposed(h) if nb == 1 else None

  def grads(hb, hbt, lb, lse_b, ab, gb, ub, wc, bc, cols, mask):
    z, t = _logits(hb, wc, bc, cfg)
    gz = _grad_logits(z, t, lse_b, cols, lb, ab, gb, ub, mask)
    gm = gz.astype(mdtype)
    dbc = None if bc is None else jnp.sum(gz, axis=0)
    return _dot(gm, wc, 1, 1, cfg.cdtype), _dot(hbt, gm, 1, 0, cfg.cdtype), dbc

  def chunk_body(carry, c):
    dh, dw, db = carry
    start = _start(c, chunk, vl)
    wc = lax.dynamic_slice_in_dim(w, start, chunk, axis=1)
    bc = None if b is None else lax.dynamic_slice_in_dim(b, start, chunk)
    local = start + jnp.arange(chunk, dtype=jnp.int32)
    col_ok = None if vl % chunk == 0 else (local >= c * chunk)[None, :]
    if nb == 1:
      dhc, dwc, dbc = grads(h, ht, labels, lse, a, g, u, wc, bc, offset + local, col_ok)
      dh = dh + dhc
    else:
      def block_body(i, acc):
        dh, dwc, dbc = acc
        rs = _start(i, block, n)
        sl = functools.partial(lax.dynamic_slice_in_dim, start_index=rs, slice_size=block)
        row_ok = _row_mask(i, block, n, nb)
        mask = col_ok if row_ok is None else (row_ok[:, None] if col_ok is None else row_ok[:, None] & col_ok)
        hb = sl(h)
        ub = None if u is None else sl(u)
        dhb, dwb, dbb = grads(hb, _transposed(hb), sl(labels), sl(lse), sl(a), sl(g), ub, wc, bc, offset + local, mask)
        dh = lax.dynamic_update_slice_in_dim(dh, sl(dh) + dhb, rs, 0)
        return dh, dwc + dwb, None if dbc is None else dbc + dbb

      zc = jnp.zeros((d, chunk), cfg.cdtype)
      dh, dwc, dbc = lax.fori_loop(0, nb, block_body, (dh, zc, None if b is None else jnp.zeros((chunk,), cfg.cdtype)))
    if cfg.token_axis is not None:  # the data-parallel reduction of dL/dw, chunk by chunk, in float32
      dwc = lax.psum(dwc, cfg.token_axis)
      dbc = None if dbc is None else lax.psum(dbc, cfg.token_axis)
    # masked (already written) columns of an overlapping last chunk add exactly 0
    old = lax.dynamic_slice_in_dim(dw, start, chunk, axis=1)
    dw = lax.dynamic_update_slice_in_dim(dw, (old.astype(cfg.cdtype) + dwc).astype(dw.dtype), start, axis=1)
    if db is not None:
      db = lax.dynamic_update_slice_in_dim(db, lax.dynamic_slice_in_dim(db, start, chunk) + dbc, start, axis=0)  # pyright: ignore[reportOperatorIssue]
    return (dh, dw, db), None

  init = (jnp.zeros((n, d), cfg.cdtype), jnp.zeros(w.shape, w.dtype),
          None if b is None else jnp.zeros((vl,), cfg.cdtype))
  (dh, dw, db), _ = lax.scan(chunk_body, init, jnp.arange(nc, dtype=jnp.int32))
  if cfg.vocab_axis is not None:
    dh = lax.psum(dh, cfg.vocab_axis)
  return dh, dw, db


# --------------------------------------------------------------------------
# shard_map plumbing
# --------------------------------------------------------------------------
def _specs(cfg: Config):
  return dict(rows=P(cfg.token_axis), h=P(cfg.token_axis, None), w=P(None, cfg.vocab_axis),
              b=P(cfg.vocab_axis), scalar=P())


def _mapped(fn, cfg: Config, in_specs, out_specs):
  """``fn`` itself, or its :func:`jax.shard_map` over the ambient mesh when an axis is named."""
  if cfg.vocab_axis is None and cfg.token_axis is None:
    return fn
  # check_vma=False: nothing is differentiated through the map (custom_vjp outside), and the
  # collectives make the [n] statistics identical on every vocab shard by construction.
  return jax.shard_map(fn, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def _with_optional_bias(fn, b):
  """Calls ``fn(h, w, b, ...)`` through a signature without ``b`` when it is None (shard_map specs)."""
  if b is None:
    return lambda h, w, *rest: fn(h, w, None, *rest)
  return fn


def stats_impl(h, w, b, labels, cfg: Config):
  """``(lse, z_y, sum_j z_j[, argmax])``, each ``[N]``, of the logits ``h @ w + b`` (no gradient)."""
  sp = _specs(cfg)
  fn = _with_optional_bias(lambda h, w, b, y: _finish(_local_stats(h, w, b, y, cfg)), b)
  n_out = 4 if cfg.argmax else 3
  in_specs = (sp["h"], sp["w"]) + (() if b is None else (sp["b"],)) + (sp["rows"],)
  args = (h, w) + (() if b is None else (b,)) + (labels,)
  return _mapped(fn, cfg, in_specs, (sp["rows"],) * n_out)(*args)


def backward_impl(h, w, b, labels, lse, a, g, u, cfg: Config):
  """``(dh, dw, db)`` for the cotangents ``(a, g, u)`` of ``(lse, z_y, sum_j z_j)`` (``u`` may be None)."""
  sp = _specs(cfg)
  opt = {"b": b, "u": u}
  present = [k for k, x in opt.items() if x is not None]

  def fn(h, w, y, lse, a, g, *rest):
    kw = dict(zip(present, rest))
    dh, dw, db = _local_backward(h, w, kw.get("b"), y, lse, a, g, kw.get("u"), cfg)
    return (dh, dw) + (() if db is None else (db,))

  in_specs = (sp["h"], sp["w"]) + (sp["rows"],) * 4 + tuple(sp["b"] if k == "b" else sp["rows"] for k in present)
  out_specs = (sp["h"], sp["w"]) + ((sp["b"],) if b is not None else ())
  out = _mapped(fn, cfg, in_specs, out_specs)(h, w, labels, lse, a, g, *(opt[k] for k in present))
  return out[0], out[1], (out[2] if b is not None else None)  # pyright: ignore[reportGeneralTypeIssues]


# --------------------------------------------------------------------------
# memory-lean mode: the custom_vjp of the statistics
# --------------------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def lean_stats(h, w, b, labels, cfg: Config):
  """``(lse, z_y, sum_j z_j[, argmax])`` with the chunk-recomputing backward pass (4 matmuls a step)."""
  return stats_impl(h, w, b, labels, cfg)


def _lean_fwd(h, w, b, labels, cfg):
  out = stats_impl(h, w, b, labels, cfg)
  return out, (h, w, b, labels, out[0])


def _lean_bwd(cfg, res, ct):
  h, w, b, labels, lse = res
  a, g, u = (x.astype(cfg.cdtype) for x in ct[:3])
  u = u if cfg.smoothing else None  # sum_j z_j was not computed (a constant 0): no cotangent flows
  dh, dw, db = backward_impl(h, w, b, labels, lse, a, g, u, cfg)
  return dh.astype(h.dtype), dw, (None if b is None else db.astype(b.dtype)), None  # pyright: ignore[reportOptionalMemberAccess]


lean_stats.defvjp(_lean_fwd, _lean_bwd)


# --------------------------------------------------------------------------
# grad-in-forward mode (3 matmuls: Liger-Kernel's order)
# --------------------------------------------------------------------------
def _local_fast(h, w, b, labels, omega, eps, zl, cfg: Config):
  """Token blocks over the shard's whole vocabulary: statistics, rows and the gradients of sum(omega * rows)."""
  offset = _offset(w.shape[1], cfg)
  n, d = h.shape
  vl = w.shape[1]
  block = cfg.block
  nb = num_pieces(n, block)
  cols = offset + jnp.arange(vl, dtype=jnp.int32)
  vocab = jnp.asarray(cfg.vocab, cfg.cdtype)
  one = jnp.ones((), cfg.cdtype)

  def block_fn(hb, lb, ob, row_ok):
    z, t = _logits(hb, w, b, cfg)
    st = _piece_stats(z, offset, None, lb, cfg)
    if cfg.vocab_axis is not None:
      st = _merge_across(st, cfg.vocab_axis)
    lse = st.m + jnp.log(st.s)
    rows = row_loss(lse, st.zy, st.zsum, eps, zl, cfg.vocab)
    a, g = ob * (one + 2 * zl * lse), -ob * (one - eps)
    u = -ob * (eps / vocab) if cfg.smoothing else None
    gz = _grad_logits(z, t, lse, cols, lb, a, g, u, None if row_ok is None else row_ok[:, None])
    gm = gz.astype(h.dtype)
    dhb = _dot(gm, w, 1, 1, cfg.cdtype)
    if cfg.vocab_axis is not None:
      dhb = lax.psum(dhb, cfg.vocab_axis)
    dbb = None if b is None else jnp.sum(gz, axis=0)
    out = (lse, st.zy, st.zsum, rows) + (() if st.arg is None else (st.arg,))
    return out, dhb, _dot(_transposed(hb), gm, 1, 0, cfg.cdtype), dbb

  if nb == 1:
    out, dh, dw, db = block_fn(h, labels, omega, None)
  else:
    def body(i, carry):
      out, dh, dw, db = carry
      start = _start(i, block, n)
      sl = functools.partial(lax.dynamic_slice_in_dim, start_index=start, slice_size=block)
      o, dhb, dwb, dbb = block_fn(sl(h), sl(labels), sl(omega), _row_mask(i, block, n, nb))
      out = tuple(lax.dynamic_update_slice_in_dim(x, y, start, 0) for x, y in zip(out, o))
      dh = lax.dynamic_update_slice_in_dim(dh, sl(dh) + dhb, start, 0)  # masked overlap rows add 0
      return out, dh, dw + dwb, None if db is None else db + dbb

    zn = jnp.zeros((n,), cfg.cdtype)
    out0 = (zn, zn, zn, zn) + ((jnp.zeros((n,), jnp.int32),) if cfg.argmax else ())
    init = (out0, jnp.zeros((n, d), cfg.cdtype), jnp.zeros((d, vl), cfg.cdtype),
            None if b is None else jnp.zeros((vl,), cfg.cdtype))
    out, dh, dw, db = lax.fori_loop(0, nb, body, init)
  if cfg.token_axis is not None:
    dw = lax.psum(dw, cfg.token_axis)
    db = None if db is None else lax.psum(db, cfg.token_axis)
  return out, dh, dw.astype(w.dtype), db


def fast_impl(h, w, b, labels, omega, eps, zl, cfg: Config):
  """``((lse, zy, zsum, rows[, argmax]), dh, dw, db)``: statistics and the gradients of ``sum(omega * rows)``."""
  sp = _specs(cfg)
  has_b = b is not None
  n_out = 5 if cfg.argmax else 4

  def fn(h, w, b, y, om, eps, zl):
    out, dh, dw, db = _local_fast(h, w, b, y, om, eps, zl, cfg)
    return out + (dh, dw) + ((db,) if has_b else ())

  in_specs = (sp["h"], sp["w"]) + ((sp["b"],) if has_b else ()) + (sp["rows"],) * 2 + (sp["scalar"],) * 2
  out_specs = (sp["rows"],) * n_out + (sp["h"], sp["w"]) + ((sp["b"],) if has_b else ())
  args = (h, w) + ((b,) if has_b else ()) + (labels, omega, eps, zl)
  res = _mapped(_with_optional_bias(fn, b), cfg, in_specs, out_specs)(*args)
  return res[:n_out], res[n_out], res[n_out + 1], (res[n_out + 2] if has_b else None)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def fast_total(h, w, b, labels, omega, eps, zl, cfg: Config):
  """``(sum(omega * rows), lse[, argmax])``; under differentiation the gradients are computed in the forward pass."""
  stats = stats_impl(h, w, b, labels, cfg)
  lse, zy, zsum = stats[:3]
  total = jnp.sum(omega * row_loss(lse, zy, zsum, eps, zl, cfg.vocab))
  return (total, lse) + tuple(stats[3:])


def _fast_fwd(h, w, b, labels, omega, eps, zl, cfg):
  h, w, b, labels, omega, eps, zl = (None if x is None else x.value for x in (h, w, b, labels, omega, eps, zl))
  out, dh, dw, db = fast_impl(h, w, b, labels, omega, eps, zl, cfg)
  lse, zy, zsum, rows = out[:4]
  total = jnp.sum(omega * rows)  # pyright: ignore[reportOptionalOperand]
  return (total, lse) + tuple(out[4:]), (h, w, b, labels, omega, eps, zl, lse, zy, zsum, rows, dh, dw, db)


def _ct(x, shape, dtype):
  return jnp.zeros(shape, dtype) if isinstance(x, SymbolicZero) or x is None else x.astype(dtype)


def _fast_bwd(cfg, res, ct):
  h, w, b, labels, omega, eps, zl, lse, zy, zsum, rows, dh, dw, db = res
  cd = cfg.cdtype
  gt = _ct(ct[0], (), cd)
  dh = dh * gt
  dw = (dw.astype(cd) * gt).astype(w.dtype)
  db = None if db is None else db * gt
  if not isinstance(ct[1], SymbolicZero):  # the lse output is used: one recomputing pass for its part
    a = ct[1].astype(cd)
    dh2, dw2, db2 = backward_impl(h, w, b, labels, lse, a, jnp.zeros_like(a), None, cfg)
    dh = dh + dh2
    dw = (dw.astype(cd) + dw2.astype(cd)).astype(w.dtype)
    db = None if db is None else db + db2
  vocab = jnp.asarray(cfg.vocab, cd)
  d_omega = (gt * rows).astype(omega.dtype)
  d_eps = (gt * jnp.sum(omega * (zy - zsum / vocab))).astype(eps.dtype)
  d_zl = (gt * jnp.sum(omega * jnp.square(lse))).astype(zl.dtype)
  return (dh.astype(h.dtype), dw, None if b is None else db.astype(b.dtype), None, d_omega, d_eps, d_zl)  # pyright: ignore[reportOptionalMemberAccess]


fast_total.defvjp(_fast_fwd, _fast_bwd, symbolic_zeros=True)
