r"""Fused linear + softmax cross-entropy: the LM-head loss without the logits.

A language-model head computes ``logits = hidden @ weight`` (``[N, D] x [D, V]``)
and then a softmax cross-entropy over the ``V`` classes. For a large vocabulary
the ``[N, V]`` logits (and their gradient) dominate the memory of a training
step: 4 GiB of float32 at ``N = 8192, V = 131072``.
:func:`linear_softmax_cross_entropy` computes the same loss and the same
gradients while holding only ``[N, chunk]`` slices of the logits.

**Algorithm (portable scan path).** The vocabulary is cut into column chunks
of ``C`` classes. The forward pass scans the chunks, computing each chunk's
logits with a matmul (low-precision inputs, float32 accumulation) and updating a
running maximum :math:`m` and running sum :math:`s` per row (online softmax,
Milakov & Gimelshein 2018), together with the label logit :math:`z_y` and the
row sum of the logits (for label smoothing):

.. math::
   m' = \max(m, \max_j z_j), \qquad s' = s\, e^{m - m'} + \sum_j e^{z_j - m'},
   \qquad \operatorname{lse} = m + \log s.

Only ``lse``, ``z_y`` and ``sum_j z_j`` (``[N]`` each) are kept for the backward
pass, which scans the chunks again, *recomputes* each chunk's logits and
accumulates

.. math::
   \frac{\partial L}{\partial h} \mathrel{+}= G_c W_c^\top, \qquad
   \frac{\partial L}{\partial W_c} = h^\top G_c, \qquad
   \frac{\partial L}{\partial b_c} = \mathbf 1^\top G_c,

where :math:`G_c` is the ``[N, C]`` gradient with respect to the chunk's raw
logits (below). Each column block of ``dL/dW`` is written exactly once, directly
in the weight's dtype; ``dL/dh`` is accumulated in float32. This is the design
of Cut Cross-Entropy (Wijmans et al., 2025): 4 matmuls of size ``N D V``
in a training step instead of the unfused 3.

**Loss (per row, derived by hand).** With raw logits :math:`x = h W + b`,
optional soft-capping :math:`z = c \tanh(x / c)` (Gemma 2; identity when
``logit_softcap=None``), label :math:`y`, ``V`` classes, smoothing
:math:`\varepsilon` and z-loss coefficient :math:`\lambda`:

.. math::
   \ell = \operatorname{lse}(z) - (1 - \varepsilon) z_y
          - \frac{\varepsilon}{V} \sum_j z_j + \lambda \operatorname{lse}(z)^2 ,

i.e. the cross-entropy against the smoothed target
:math:`q = (1-\varepsilon) e_y + \varepsilon / V` plus the PaLM z-loss.
Its derivatives, with :math:`p = \operatorname{softmax}(z)`:

.. math::
   \frac{\partial \ell}{\partial z_j} = (1 + 2 \lambda \operatorname{lse})\, p_j
        - (1 - \varepsilon) [j = y] - \frac{\varepsilon}{V},
   \qquad
   \frac{\partial \ell}{\partial x_j} = \frac{\partial \ell}{\partial z_j}
        \Bigl(1 - \bigl(\tfrac{z_j}{c}\bigr)^2\Bigr),

and, for the scalar options, :math:`\partial \ell / \partial \varepsilon =
z_y - \frac1V \sum_j z_j` and :math:`\partial \ell / \partial \lambda =
\operatorname{lse}^2` (so ``label_smoothing`` and ``z_loss`` may be traced
values; ``logit_softcap`` must be a Python number).

**Differentiation.** The function is a :func:`jax.custom_vjp`: reverse mode
(``jax.grad``, ``jax.vjp``, ``value_and_grad``) works with respect to
``hidden``, ``weight``, ``bias``, ``label_smoothing`` and ``z_loss``;
**forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) is not supported**
and raises JAX's ``TypeError`` ("can't apply forward-mode autodiff (jvp) to a
custom_vjp function"), as for Liger-Kernel's and Cut Cross-Entropy's fused
losses in PyTorch. ``jax.jit``, ``jax.vmap`` and a token batch sharded over
devices (GSPMD) work.

**Memory.** No ``[N, V]`` array exists in either pass. The temporaries are
``O(N C)`` for the chunk's logits and their gradient, ``4 N D`` bytes for the
float32 accumulator of ``dL/dh``, and ``O(N)`` row statistics. When ``V`` is not a
multiple of ``C`` the last chunk is read at the clamped offset ``V - C`` and the
columns already seen are masked: no padded copy of ``weight`` is made.

A Pallas (Triton / Mosaic GPU) kernel for the chunk loop is not part of this
module yet: it could not be validated without a GPU. The scan path runs on
every backend.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxloss import _base

__all__ = ["linear_softmax_cross_entropy", "default_chunk_size"]

# Default chunk: at most this many f32 logits per chunk (16 MiB) ...
_CHUNK_ELEMENTS = 1 << 22
# ... and a power of two in [_MIN_CHUNK, _MAX_CHUNK] (clipped to V).
_MIN_CHUNK = 128
_MAX_CHUNK = 8192


def default_chunk_size(num_rows: int, vocab_size: int) -> int:
  """The ``chunk_size`` used when none is given.

  The largest power of two ``C`` with ``num_rows * C <= 2**22`` (16 MiB of
  float32 logits per chunk), clipped to ``[128, 8192]`` and then to
  ``vocab_size``.
  """
  budget = _CHUNK_ELEMENTS // max(int(num_rows), 1)
  c = 1 << max(int(budget).bit_length() - 1, 0) if budget >= 1 else 1
  c = min(max(c, _MIN_CHUNK), _MAX_CHUNK)
  return int(max(1, min(c, vocab_size)))


# --------------------------------------------------------------------------
# the chunked kernels (2-D: h [N, D], w [D, V], b [V] or None, labels [N])
# --------------------------------------------------------------------------
def _chunk(h, w, b, c, *, chunk, cdtype, softcap):
  """Chunk ``c`` of the logits.

  Returns ``(start, cols [C], valid [C], w_chunk [D, C], z [N, C], t)``: ``z``
  the (soft-capped) logits in ``cdtype``, ``t = tanh(x / cap)`` or ``None``;
  ``valid`` is False on the columns of a clamped last chunk already covered.
  """
  vocab = w.shape[1]
  start = jnp.minimum(c * chunk, vocab - chunk)
  wc = lax.dynamic_slice_in_dim(w, start, chunk, axis=1)
  x = lax.dot_general(h, wc, (((1,), (0,)), ((), ())), preferred_element_type=cdtype)
  if b is not None:
    x = x + lax.dynamic_slice_in_dim(b, start, chunk)[None, :]
  t = None
  if softcap is not None:
    cap = jnp.asarray(softcap, cdtype)
    t = jnp.tanh(x / cap)
    x = cap * t
  cols = start + jnp.arange(chunk, dtype=jnp.int32)
  valid = cols >= c * chunk  # columns of an overlapping last chunk seen before
  return start, cols, valid, wc, x, t


def _forward_stats(h, w, b, labels, *, chunk, cdtype, softcap):
  """One scan over the vocabulary: (lse, z_y, sum_j z_j), each [N] in cdtype."""
  n = h.shape[0]
  vocab = w.shape[1]
  num_chunks = -(-vocab // chunk)
  neg_inf = jnp.asarray(-jnp.inf, cdtype)
  zero = jnp.zeros((), cdtype)

  def body(carry, c):
    m, s, zy, zsum = carry
    _, cols, valid, _, z, _ = _chunk(h, w, b, c, chunk=chunk, cdtype=cdtype, softcap=softcap)
    zm = jnp.where(valid[None, :], z, neg_inf)
    m_new = jnp.maximum(m, jnp.max(zm, axis=1))
    # m == -inf only before the first chunk, where s == 0: avoid (-inf) - (-inf).
    scale = jnp.where(m == neg_inf, zero, jnp.exp(m - m_new))
    s = s * scale + jnp.sum(jnp.exp(zm - m_new[:, None]), axis=1)
    hit = valid[None, :] & (cols[None, :] == labels[:, None])
    zy = zy + jnp.sum(jnp.where(hit, z, zero), axis=1)
    zsum = zsum + jnp.sum(jnp.where(valid[None, :], z, zero), axis=1)
    return (m_new, s, zy, zsum), None

  init = (jnp.full((n,), -jnp.inf, cdtype), jnp.zeros((n,), cdtype),
          jnp.zeros((n,), cdtype), jnp.zeros((n,), cdtype))
  (m, s, zy, zsum), _ = lax.scan(body, init, jnp.arange(num_chunks, dtype=jnp.int32))
  lse = m + jnp.log(s)
  return lse, zy, zsum


def _row_loss(lse, zy, zsum, eps, zl, vocab):
  cdtype = lse.dtype
  one = jnp.ones((), cdtype)
  return (lse - (one - eps) * zy - (eps / jnp.asarray(vocab, cdtype)) * zsum
          + zl * jnp.square(lse))


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _fused_rows(h, w, b, labels, eps, zl, chunk, softcap, cdtype):
  lse, zy, zsum = _forward_stats(h, w, b, labels, chunk=chunk, cdtype=cdtype, softcap=softcap)
  return _row_loss(lse, zy, zsum, eps, zl, w.shape[1])


def _fused_rows_fwd(h, w, b, labels, eps, zl, chunk, softcap, cdtype):
  lse, zy, zsum = _forward_stats(h, w, b, labels, chunk=chunk, cdtype=cdtype, softcap=softcap)
  out = _row_loss(lse, zy, zsum, eps, zl, w.shape[1])
  return out, (h, w, b, labels, eps, zl, lse, zy, zsum)


def _fused_rows_bwd(chunk, softcap, cdtype, res, g):
  h, w, b, labels, eps, zl, lse, zy, zsum = res
  n, d = h.shape
  vocab = w.shape[1]
  num_chunks = -(-vocab // chunk)
  mdtype = h.dtype  # matmul input dtype (h and w share it)
  zero = jnp.zeros((), cdtype)
  one = jnp.ones((), cdtype)
  g = g.astype(cdtype)
  coef_p = g * (one + 2 * zl * lse)          # [N]
  coef_y = g * (one - eps)                    # [N]
  coef_u = g * (eps / jnp.asarray(vocab, cdtype))  # [N]

  def body(carry, c):
    dh, dw, db = carry
    start, cols, valid, wc, z, t = _chunk(h, w, b, c, chunk=chunk, cdtype=cdtype, softcap=softcap)
    p = jnp.exp(z - lse[:, None])
    onehot = cols[None, :] == labels[:, None]
    gz = coef_p[:, None] * p - jnp.where(onehot, coef_y[:, None], zero) - coef_u[:, None]
    if t is not None:
      gz = gz * (one - jnp.square(t))
    gz = jnp.where(valid[None, :], gz, zero)
    gm = gz.astype(mdtype)
    dh = dh + lax.dot_general(gm, wc, (((1,), (1,)), ((), ())), preferred_element_type=cdtype)
    dwc = lax.dot_general(h, gm, (((0,), (0,)), ((), ())), preferred_element_type=cdtype)
    # Masked (already written) columns of an overlapping last chunk add exactly 0.
    old = lax.dynamic_slice_in_dim(dw, start, chunk, axis=1)
    dw = lax.dynamic_update_slice_in_dim(dw, (old.astype(cdtype) + dwc).astype(dw.dtype), start, axis=1)
    if db is not None:
      old_b = lax.dynamic_slice_in_dim(db, start, chunk)
      db = lax.dynamic_update_slice_in_dim(db, old_b + jnp.sum(gz, axis=0), start, axis=0)
    return (dh, dw, db), None

  init = (jnp.zeros((n, d), cdtype), jnp.zeros(w.shape, w.dtype),
          None if b is None else jnp.zeros(b.shape, cdtype))
  (dh, dw, db), _ = lax.scan(body, init, jnp.arange(num_chunks, dtype=jnp.int32))
  dh = dh.astype(h.dtype)
  if db is not None:
    db = db.astype(b.dtype)
  d_eps = jnp.sum(g * (zy - zsum / jnp.asarray(vocab, cdtype))).astype(eps.dtype)
  d_zl = jnp.sum(g * jnp.square(lse)).astype(zl.dtype)
  return dh, dw, db, None, d_eps, d_zl


_fused_rows.defvjp(_fused_rows_fwd, _fused_rows_bwd)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
def _matmul_dtype(a: Any, b: Any) -> np.dtype:
  """The common matmul dtype of hidden and weight: the wider one (f16 with bf16: f32)."""
  a, b = np.dtype(a), np.dtype(b)
  if a == b:
    return a
  if a.itemsize != b.itemsize:
    return a if a.itemsize > b.itemsize else b
  return np.dtype(np.float32)


def _check_python_int(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{name} must be a Python int, got {value!r}.")
  return int(value)


def linear_softmax_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    chunk_size: int | None = None,
    ignore_index: int | None = None,
    where: jax.typing.ArrayLike | None = None,
    label_smoothing: float | jax.Array = 0.0,
    z_loss: float | jax.Array = 0.0,
    logit_softcap: float | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Softmax cross-entropy of ``hidden @ weight (+ bias)`` without materializing the logits.

  Equal (up to floating-point rounding) to
  ``softmax_cross_entropy_with_integer_labels(hidden @ weight + bias, labels, ...)``
  with the same options, and differentiable (reverse mode) with respect to
  ``hidden``, ``weight`` and ``bias``; see the module docstring of
  :mod:`jaxloss.fused` for the algorithm, the hand-derived gradient and the
  memory model. Per included row, with :math:`z` the (optionally soft-capped)
  logits, :math:`V` classes:

  .. math::
     \ell = \operatorname{lse}(z) - (1 - \varepsilon) z_y
            - \frac{\varepsilon}{V} \sum_j z_j + \lambda \operatorname{lse}(z)^2 .

  Args:
    hidden: ``[..., D]`` floating array (the last hidden states).
    weight: ``[D, V]`` floating array (the output embedding / LM head).
    labels: integer array of shape ``hidden.shape[:-1]``, classes in
      ``[0, V)``. Labels out of range in an included row give a NaN loss for
      that row (and an error under ``checkify``).
    bias: optional ``[V]`` floating array added to the logits.
    chunk_size: number of vocabulary columns per chunk (a Python int >= 1;
      clipped to ``V``). Default: :func:`default_chunk_size` (at most 16 MiB of
      float32 logits per chunk). Memory grows with it, not with ``V``.
    ignore_index: rows whose label equals it are excluded (loss 0, zero
      gradient, not counted in the mean), e.g. ``-100`` for padding tokens.
    where: optional boolean mask broadcastable to ``labels.shape``; ``False``
      rows are excluded like ignored ones (see :mod:`jaxloss._base`).
    label_smoothing: :math:`\varepsilon \in [0, 1]`: the target puts
      :math:`\varepsilon / V` on every class and :math:`1 - \varepsilon` more
      on the label.
    z_loss: :math:`\lambda \ge 0`, coefficient of :math:`\operatorname{lse}^2`
      (PaLM, Chowdhery et al. 2022, section 5).
    logit_softcap: ``None`` or a Python float ``c > 0``: logits are replaced by
      :math:`c \tanh(x / c)` before the softmax (Gemma 2).
    reduction: ``"mean"`` (over included rows), ``"sum"`` or ``"none"`` (one
      value per row, shape ``labels.shape``).

  Returns:
    The loss, float32 for bfloat16/float16/float32 inputs, float64 for float64.

  Dtypes: ``hidden`` and ``weight`` are multiplied in their common dtype (a
  bfloat16 pair stays bfloat16, so bfloat16 matmuls with float32 accumulation);
  everything after the matmul is in the computation dtype (float32 or float64).
  If the two dtypes differ the narrower one is cast (for ``weight`` that is a
  ``[D, V]`` copy). Gradients are returned in each argument's own dtype.

  Raises:
    TypeError: non-floating ``hidden``/``weight``/``bias``, non-integer
      ``labels``, non-bool ``where``, non-int ``chunk_size``/``ignore_index``,
      or forward-mode differentiation (``jax.jvp``: reverse mode only).
    ValueError: mismatched shapes, ``chunk_size < 1``, options out of range,
      unknown ``reduction``.

  References:
    Wijmans et al., *Cut Your Losses in Large-Vocabulary Language Models*,
    ICLR 2025 (Cut Cross-Entropy); Hsu et al., *Liger Kernel*, 2024;
    Milakov & Gimelshein, *Online normalizer calculation for softmax*, 2018;
    Chowdhery et al., *PaLM*, 2022 (z-loss); Gemma Team, *Gemma 2*, 2024
    (logit soft-capping); Szegedy et al., *Rethinking the Inception
    Architecture*, 2016 (label smoothing).
  """
  _base.check_reduction(reduction)
  h_dtype = _base._dtype_of(hidden)
  w_dtype = _base._dtype_of(weight)
  for name, dt in (("hidden", h_dtype), ("weight", w_dtype)):
    if not jnp.issubdtype(dt, jnp.floating):
      raise TypeError(f"{name} must be a floating-point array, got dtype {dt}.")
  hidden = jnp.asarray(hidden)
  weight = jnp.asarray(weight)
  labels = _base.as_integer_labels("labels", labels)
  if hidden.ndim < 1:
    raise ValueError("hidden must have shape [..., D], got a scalar.")
  if weight.ndim != 2:
    raise ValueError(f"weight must have shape [D, V], got weight.shape={weight.shape}.")
  d, vocab = weight.shape
  if hidden.shape[-1] != d:
    raise ValueError(
        f"hidden.shape[-1] must equal weight.shape[0] (D), got hidden.shape={hidden.shape} "
        f"and weight.shape={weight.shape}.")
  if vocab < 1:
    raise ValueError(f"weight must have at least one column (class), got weight.shape={weight.shape}.")
  if labels.shape != hidden.shape[:-1]:
    raise ValueError(
        f"labels.shape must equal hidden.shape[:-1], got labels.shape={labels.shape} and "
        f"hidden.shape={hidden.shape}.")
  mdtype = _matmul_dtype(h_dtype, w_dtype)
  cdtype = _base.computation_dtype(mdtype)
  if bias is not None:
    bias = jnp.asarray(bias)
    if not jnp.issubdtype(bias.dtype, jnp.floating):
      raise TypeError(f"bias must be a floating-point array, got dtype {bias.dtype}.")
    if bias.shape != (vocab,):
      raise ValueError(f"bias must have shape [V]=({vocab},), got bias.shape={bias.shape}.")
  if chunk_size is None:
    chunk = default_chunk_size(math.prod(labels.shape), vocab)
  else:
    chunk = _check_python_int("chunk_size", chunk_size)
    if chunk < 1:
      raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    chunk = min(chunk, vocab)
  if ignore_index is not None:
    ignore_index = _check_python_int("ignore_index", ignore_index)
  if logit_softcap is not None:
    if isinstance(logit_softcap, bool) or not isinstance(logit_softcap, (int, float, np.integer, np.floating)):
      raise TypeError(f"logit_softcap must be None or a Python float, got {logit_softcap!r}.")
    if not float(logit_softcap) > 0:
      raise ValueError(f"logit_softcap must be > 0, got {logit_softcap}.")
    logit_softcap = float(logit_softcap)
  bad_smoothing = _base.check_scalar_in("label_smoothing", label_smoothing, 0.0, 1.0)
  bad_z_loss = _base.check_scalar_in("z_loss", z_loss, 0.0, math.inf)

  loss_shape = labels.shape
  mask = _base.prepare_where(where, loss_shape)
  include = jnp.ones(loss_shape, jnp.bool_) if mask is None else mask
  info = np.iinfo(labels.dtype)
  if ignore_index is not None and info.min <= ignore_index <= info.max:
    include = include & (labels != jnp.asarray(ignore_index, labels.dtype))
  in_range = (labels >= 0) & (labels < jnp.asarray(vocab, labels.dtype)) if vocab <= info.max else labels >= 0
  bad = include & ~in_range
  _base.runtime_check(~bad, f"labels must lie in [0, {vocab}) (or equal ignore_index); got out-of-range "
                      "values in [{lo}, {hi}].", lo=jnp.min(jnp.where(bad, labels, info.max), initial=info.max),
                      hi=jnp.max(jnp.where(bad, labels, info.min), initial=info.min))
  use = include & in_range

  n = math.prod(loss_shape)
  h2 = hidden.reshape(n, d).astype(mdtype)
  if mask is not None or ignore_index is not None:
    # Excluded rows must not leak NaN/inf into dL/dW (0 * NaN): zero them. This is
    # one [N, D] copy of hidden, made only when rows can be excluded.
    h2 = jnp.where(use.reshape(n, 1), h2, jnp.zeros((), mdtype))
  w2 = weight.astype(mdtype)
  b2 = None if bias is None else bias.astype(cdtype)
  lab = jnp.where(use, labels, jnp.zeros((), labels.dtype)).reshape(n).astype(jnp.int32)
  eps = jnp.asarray(label_smoothing).astype(cdtype)
  zl = jnp.asarray(z_loss).astype(cdtype)

  rows = _fused_rows(h2, w2, b2, lab, eps, zl, chunk, logit_softcap, np.dtype(cdtype))
  rows = rows.reshape(loss_shape)
  rows = _base.nan_if(bad_z_loss, _base.nan_if(bad_smoothing, _base.nan_where(bad, rows)))
  row_mask = None if (mask is None and ignore_index is None) else include
  return _base.reduce_loss(rows, where=row_mask, reduction=reduction)
