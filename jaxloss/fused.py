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

**Differentiation.** The statistics ``(lse, z_y, sum_j z_j)`` are a
:func:`jax.custom_vjp` whose backward pass is the recomputing scan above, with
the cotangents ``(a, g, u)`` of the three statistics giving
:math:`G_j = (a\, p_j + g [j = y] + u)(1 - t_j^2)`; the loss and its
derivatives in ``label_smoothing``, ``z_loss`` and ``weights`` follow by
ordinary autodiff of the row formula. Reverse mode (``jax.grad``, ``jax.vjp``,
``value_and_grad``) works with respect to ``hidden``, ``weight``, ``bias``,
``weights``, ``label_smoothing`` and ``z_loss``; **forward mode (``jax.jvp``,
``jax.jacfwd``, ``jax.hessian``) is not supported** and raises JAX's
``TypeError`` ("can't apply forward-mode autodiff (jvp) to a custom_vjp
function"), as for Liger-Kernel's and Cut Cross-Entropy's fused losses in
PyTorch. ``jax.jit``, ``jax.vmap`` and a token batch sharded over devices
(GSPMD) work.

**Two modes.**

* memory-lean (default): the two scans above, 4 matmuls of size ``N D V`` per
  training step.
* ``grad_in_forward=True`` (Liger-Kernel's order): one pass over token blocks
  of ``B`` rows, each against the whole vocabulary: the block's ``[B, V]``
  logits give its statistics, its rows of the loss and, at once, ``G`` for the
  *reduced* loss ``sum_i omega_i l_i`` (``omega`` = weights / mask /
  denominator of the reduction), so ``dL/dh`` (block rows), ``dL/dW`` and
  ``dL/db`` (accumulated over blocks in float32) are computed in the forward
  pass and kept as the residuals; the backward pass only scales them by the
  incoming cotangent: 3 matmuls per step. Only when the call is
  differentiated; the plain forward is the lean forward scan. A cotangent on
  the ``logsumexp`` output (``return_aux``) costs one recomputing pass for
  that term (a symbolic-zero check: none when the output is unused).

**Vocabulary-parallel (``vocab_axis``).** With ``weight`` sharded over ``V`` on
a mesh axis of ``S`` devices (and optionally the tokens over ``token_axis``),
the call is a :func:`jax.shard_map` over the ambient mesh: each device scans
its own ``V / S`` columns, and the per-row statistics combine across the axis
(Megatron-LM's vocabulary-parallel cross-entropy):

.. math::
   m = \operatorname{pmax}(m_s), \quad s = \operatorname{psum}(s_s e^{m_s - m}), \quad
   z_y = \operatorname{psum}(z_{y,s}), \quad \textstyle\sum_j z_j = \operatorname{psum}(\sum_{j \in s} z_j),

plus a ``pmin`` of the shards' first argmax for the accuracy output. Label
smoothing and z-loss use the **global** ``V`` (the bug of Megatron-LM #737 was
the local one). Nothing of size ``[D, V]`` or ``[N, V]`` is gathered: the
communication per step is ``O(N)`` floats over ``vocab_axis``, the
``[N, D]`` all-reduce of ``dL/dh`` (each shard holds a partial sum) and, with
``token_axis``, the data-parallel all-reduce of ``dL/dW`` (chunk by chunk, in
float32); ``dL/dW`` comes out sharded like ``weight``.

**Memory.** No ``[N, V]`` array exists in the lean mode. Its temporaries are
``O(N C)`` for the chunk's logits and their gradient, ``4 N D`` bytes for the
float32 accumulator of ``dL/dh``, and ``O(N)`` row statistics; with
``token_block_size=B`` the chunk buffers are ``O(B C)``, so only the
accumulator and the ``O(N)`` statistics grow with ``N``. When ``V`` is not a
multiple of ``C`` (or ``N`` of ``B``) the last piece is read at a clamped
offset and the columns (rows) already seen are masked: no padded copy of
``weight`` is made. The ``grad_in_forward`` mode holds about three
``[B, V]`` float32 buffers (default ``B``: :func:`default_token_block`, 32 MiB
each, more where its 256-row floor applies), a float32 ``[D, V]`` accumulator of ``dL/dW`` when there is more than
one block, and keeps ``dL/dh`` and ``dL/dW`` (the sizes of ``hidden`` and
``weight``) alive from the forward to the backward pass.

A Pallas (Triton / Mosaic GPU) kernel for the chunk loop is not part of this
module yet: it could not be validated without a GPU. The scan path runs on
every backend.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxloss import _base
from jaxloss import _fused_kernels as _K

__all__ = ["linear_softmax_cross_entropy", "default_chunk_size", "default_token_block", "FusedAux"]

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


# Default token block of grad_in_forward: at most this many f32 logits per block (32 MiB) ...
_BLOCK_ELEMENTS = 1 << 23
# ... but at least this many rows: each block reads and writes the float32 [D, V] accumulator of
# dL/dweight (8 D V bytes) for 6 B D V flops of matmuls, so small blocks turn the step memory-bound.
_MIN_BLOCK = 256


def default_token_block(vocab_size: int) -> int:
  """The ``token_block_size`` used with ``grad_in_forward=True`` when none is given.

  The largest power of two ``B`` with ``B * vocab_size <= 2**23`` (32 MiB of
  float32 logits per block; ``vocab_size`` is a shard's V), but at least 256
  (the accumulator traffic per block, ``8 D V`` bytes, then stays below 1/192 of
  the block's matmul flops); clipped to the number of rows by the caller.
  """
  budget = _BLOCK_ELEMENTS // max(int(vocab_size), 1)
  b = 1 << max(int(budget).bit_length() - 1, 0) if budget >= 1 else 1
  return int(max(b, _MIN_BLOCK))


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
class FusedAux(NamedTuple):
  r"""Per-token by-products of :func:`linear_softmax_cross_entropy` (``return_aux=True``), computed in its scan.

  Attributes:
    logsumexp: ``labels.shape``, the computation dtype: :math:`\operatorname{lse}(z)` of each row's
      (soft-capped) logits, 0 on excluded rows. Differentiable (e.g. for a z-loss of your own).
    correct: ``labels.shape`` bool: whether the first argmax of the row's logits is the label (as
      ``jnp.argmax(logits, -1) == labels``); False on excluded rows and rows with an out-of-range label.
  """
  logsumexp: jax.Array
  correct: jax.Array


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


def _check_arrays(hidden, weight, labels, bias):
  """Dtype and shape checks; returns ``(hidden, weight, labels, bias, matmul dtype, computation dtype)``."""
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
  if bias is not None:
    bias = jnp.asarray(bias)
    if not jnp.issubdtype(bias.dtype, jnp.floating):
      raise TypeError(f"bias must be a floating-point array, got dtype {bias.dtype}.")
    if bias.shape != (vocab,):
      raise ValueError(f"bias must have shape [V]=({vocab},), got bias.shape={bias.shape}.")
  return hidden, weight, labels, bias, mdtype, _base.computation_dtype(mdtype)


def _mesh_sizes(vocab_axis: str | None, token_axis: str | None, n: int, vocab: int) -> tuple[int, int]:
  """Sizes of the named axes of the ambient mesh (1 for None), with the divisibility checks."""
  mesh = jax.sharding.get_abstract_mesh()
  names = tuple(getattr(mesh, "axis_names", ()) or ())
  if vocab_axis is None and token_axis is None:
    return 1, 1
  for opt, ax in (("vocab_axis", vocab_axis), ("token_axis", token_axis)):
    if ax is not None and (not isinstance(ax, str) or ax not in names):
      raise ValueError(f"{opt}={ax!r} is not an axis of the ambient mesh (axes {names}); set the mesh with "
                       "jax.set_mesh(mesh) around the jitted call.")
  if vocab_axis is not None and vocab_axis == token_axis:
    raise ValueError(f"vocab_axis and token_axis must differ, got {vocab_axis!r} for both.")
  vs = 1 if vocab_axis is None else int(mesh.shape[vocab_axis])
  ts = 1 if token_axis is None else int(mesh.shape[token_axis])
  if vocab % vs:
    raise ValueError(f"V={vocab} (weight.shape[1]) must be divisible by the size {vs} of vocab_axis={vocab_axis!r}.")
  if n % ts:
    raise ValueError(f"the number of tokens N={n} must be divisible by the size {ts} of token_axis={token_axis!r}.")
  return vs, ts


def _explicit_mesh() -> bool:
  """Whether the ambient mesh has an Explicit axis (then reshapes must name their output sharding)."""
  mesh = jax.sharding.get_abstract_mesh()
  types = tuple(getattr(mesh, "axis_types", ()) or ())
  return any(t == jax.sharding.AxisType.Explicit for t in types)


def _reshape(x: jax.Array, shape: tuple[int, ...], token_axis: str | None, explicit: bool) -> jax.Array:
  """``x.reshape(shape)``; under an Explicit mesh with the (flattened) token dimension over ``token_axis``."""
  shape = tuple(shape)
  if x.shape == shape:
    return x
  if not explicit:
    return x.reshape(shape)
  spec = jax.sharding.PartitionSpec(token_axis, *([None] * (len(shape) - 1)))
  return lax.reshape(x, shape, out_sharding=spec)


def _static_sizes(chunk_size, token_block_size, grad_in_forward: bool, n: int, vocab: int) -> tuple[int, int]:
  """``(chunk, block)`` for one shard of ``n`` rows and ``vocab`` columns."""
  if chunk_size is None:
    chunk = default_chunk_size(n, vocab)
  else:
    chunk = _check_python_int("chunk_size", chunk_size)
    if chunk < 1:
      raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
  if token_block_size is None:
    block = default_token_block(vocab) if grad_in_forward else n
  else:
    block = _check_python_int("token_block_size", token_block_size)
    if block < 1:
      raise ValueError(f"token_block_size must be >= 1, got {token_block_size}.")
  return min(chunk, vocab), max(1, min(block, n))


def _check_softcap(logit_softcap):
  if logit_softcap is None:
    return None
  if isinstance(logit_softcap, bool) or not isinstance(logit_softcap, (int, float, np.integer, np.floating)):
    raise TypeError(f"logit_softcap must be None or a Python float, got {logit_softcap!r}.")
  if not float(logit_softcap) > 0:
    raise ValueError(f"logit_softcap must be > 0, got {logit_softcap}.")
  return float(logit_softcap)


def _row_weights(weights, include, reduction: str, cdtype) -> tuple[jax.Array, jax.Array]:
  """``(omega, flagged)``: the reduction as row coefficients (loss = sum(omega * rows)), negative weights."""
  shape = include.shape
  if weights is None:
    w = jnp.ones(shape, cdtype)
    flagged = jnp.zeros(shape, jnp.bool_)
  else:
    w = jnp.asarray(weights)
    if not (jnp.issubdtype(w.dtype, jnp.floating) or jnp.issubdtype(w.dtype, jnp.integer)):
      raise TypeError(f"weights must be numeric, got dtype {w.dtype}.")
    _base._check_broadcast_to("weights", w.shape, shape)
    w = jnp.broadcast_to(w.astype(cdtype), shape)
    flagged = _base.check_nonnegative("weights", w) & include
  wm = jnp.where(include, w, jnp.zeros((), cdtype))
  if reduction == "sum":
    return wm, flagged
  denom = jnp.sum(wm)
  positive = denom > 0
  return jnp.where(positive, wm / jnp.where(positive, denom, 1), 0), flagged


def linear_softmax_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    weights: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    token_block_size: int | None = None,
    ignore_index: int | None = None,
    label_smoothing: float | jax.Array = 0.0,
    z_loss: float | jax.Array = 0.0,
    logit_softcap: float | None = None,
    grad_in_forward: bool = False,
    return_aux: bool = False,
    vocab_axis: str | None = None,
    token_axis: str | None = None,
) -> jax.Array | tuple[jax.Array, FusedAux]:
  r"""Softmax cross-entropy of ``hidden @ weight (+ bias)`` without materializing the logits.

  Equal (up to floating-point rounding) to
  ``softmax_cross_entropy_with_integer_labels(hidden @ weight + bias, labels, ...)``
  with the same options, and differentiable (reverse mode) with respect to
  ``hidden``, ``weight``, ``bias``, ``weights``, ``label_smoothing`` and ``z_loss``;
  see the module docstring of :mod:`jaxloss.fused` for the algorithm, the
  hand-derived gradient, the two modes and the memory model. Per included row,
  with :math:`z` the (optionally soft-capped) logits and :math:`V` the number
  of classes (the global one when ``weight`` is sharded):

  .. math::
     \ell = \operatorname{lse}(z) - (1 - \varepsilon) z_y
            - \frac{\varepsilon}{V} \sum_j z_j + \lambda \operatorname{lse}(z)^2 .

  Args:
    hidden: ``[..., D]`` floating array (the last hidden states).
    weight: ``[D, V]`` floating array (the output embedding / LM head).
    labels: integer array of shape ``hidden.shape[:-1]``, classes in
      ``[0, V)``. Labels out of range in an included row give a NaN loss for
      that row (and an error inside :func:`jaxloss.runtime_checks` under ``checkify``).
    bias: optional ``[V]`` floating array added to the logits.
    weights: optional per-token weights (non-negative reals) broadcastable to
      ``labels.shape``, as for every jaxloss loss (:mod:`jaxloss._base`): a
      negative weight makes the loss NaN.
    where: optional boolean mask broadcastable to ``labels.shape``; ``False``
      rows are excluded like ignored ones.
    reduction: ``"mean"`` (weighted, over included rows), ``"sum"`` or ``"none"``
      (one value per row, shape ``labels.shape``; not with ``grad_in_forward``).
    chunk_size: vocabulary columns per chunk of the memory-lean mode (a Python
      int >= 1; clipped to a shard's ``V``). Default: :func:`default_chunk_size`.
    token_block_size: token rows per block (Python int >= 1). In the memory-lean
      mode the default is all rows; a block bounds the ``[block, chunk]`` buffers
      so that nothing but the float32 ``dL/dhidden`` accumulator and ``O(N)``
      row statistics grows with ``N``. With ``grad_in_forward`` each block holds
      its ``[block, V]`` logits; default :func:`default_token_block`.
    ignore_index: rows whose label equals it are excluded (loss 0, zero
      gradient, not counted in the mean), e.g. ``-100`` for padding tokens.
    label_smoothing: :math:`\varepsilon \in [0, 1]`: the target puts
      :math:`\varepsilon / V` on every class and :math:`1 - \varepsilon` more
      on the label.
    z_loss: :math:`\lambda \ge 0`, coefficient of :math:`\operatorname{lse}^2`.
    logit_softcap: ``None`` or a Python float ``c > 0``: logits are replaced by
      :math:`c \tanh(x / c)` before the softmax (Gemma 2).
    grad_in_forward: when the call is differentiated, compute ``dL/dhidden``,
      ``dL/dweight`` and ``dL/dbias`` in the forward pass, one token block at
      a time over the whole vocabulary (3 matmuls of size ``N D V`` per step
      instead of 4; Liger-Kernel's order) and keep them as the residuals:
      faster, but it holds ``[block, V]`` float32 logits and gradient buffers,
      a float32 ``[D, V]`` accumulator of ``dL/dweight`` when there is more
      than one block, and the gradients (the size of ``hidden`` and
      ``weight``) from the forward to the backward pass. The gradient of the
      *reduced* loss is precomputed, so ``reduction="none"`` is not allowed.
    return_aux: also return a :class:`FusedAux` (per-token ``logsumexp`` and
      ``correct``), computed in the same scan.
    vocab_axis: name of an axis of the ambient mesh (:func:`jax.set_mesh`)
      over which ``weight``'s ``V`` (and ``bias``) is sharded: each device
      scans its own columns, the row statistics are combined with collectives
      (``O(N)`` floats), ``dL/dweight`` comes out sharded like ``weight``,
      nothing ``[D, V]`` or ``[N, V]``-sized is gathered. ``V`` must be divisible by the axis size.
    token_axis: optional mesh axis over which the tokens are sharded (the
      leading dimensions of ``hidden`` and ``labels``, flattened).

  Returns:
    The loss (float32 for bfloat16/float16/float32 inputs, float64 for
    float64), or ``(loss, FusedAux)`` with ``return_aux=True``.

  Dtypes: ``hidden`` and ``weight`` are multiplied in their common dtype (a
  bfloat16 pair stays bfloat16, so bfloat16 matmuls with float32 accumulation);
  everything after the matmul is in the computation dtype (float32 or float64).
  If the two dtypes differ the narrower one is cast (for ``weight`` that is a
  ``[D, V]`` copy). Gradients are returned in each argument's own dtype.

  Raises:
    TypeError: non-floating ``hidden``/``weight``/``bias``, non-integer
      ``labels``, non-bool ``where``, non-numeric ``weights``, non-int
      ``chunk_size``/``token_block_size``/``ignore_index``, or forward-mode
      differentiation (``jax.jvp``: reverse mode only).
    ValueError: mismatched shapes, ``chunk_size < 1``, options out of range,
      unknown ``reduction``, ``reduction="none"`` with ``grad_in_forward``, a
      ``vocab_axis``/``token_axis`` that is not an axis of the ambient mesh or
      does not divide ``V``/``N``.

  References:
    Wijmans et al., *Cut Your Losses in Large-Vocabulary Language Models*,
    ICLR 2025 (Cut Cross-Entropy); Hsu et al., *Liger Kernel*, 2024;
    Milakov & Gimelshein, *Online normalizer calculation for softmax*, 2018;
    Shoeybi et al., *Megatron-LM*, 2019 (vocabulary-parallel cross-entropy);
    Chowdhery et al., *PaLM*, 2022 (z-loss); Gemma Team, *Gemma 2*, 2024
    (logit soft-capping); Szegedy et al., *Rethinking the Inception
    Architecture*, 2016 (label smoothing).
  """
  _base.check_reduction(reduction)
  if grad_in_forward and reduction == "none":
    raise ValueError("grad_in_forward=True precomputes the gradient of the reduced loss: use reduction='mean' or "
                     "'sum' (reduction='none' needs the default, recomputing backward pass).")
  hidden, weight, labels, bias, mdtype, cdtype = _check_arrays(hidden, weight, labels, bias)
  d, vocab = weight.shape
  loss_shape = labels.shape
  n = math.prod(loss_shape)
  vs, ts = _mesh_sizes(vocab_axis, token_axis, n, vocab)
  chunk, block = _static_sizes(chunk_size, token_block_size, grad_in_forward, n // ts, vocab // vs)
  if ignore_index is not None:
    ignore_index = _check_python_int("ignore_index", ignore_index)
  bad_smoothing = _base.check_scalar_in("label_smoothing", label_smoothing, 0.0, 1.0)
  # a concrete 0 (checked above) needs no row sum of the logits; a traced value may be nonzero
  smoothing = not (bad_smoothing is None and float(np.asarray(label_smoothing)) == 0.0)
  cfg = _K.Config(chunk=chunk, block=block, softcap=_check_softcap(logit_softcap), cdtype=np.dtype(cdtype),
                  vocab=vocab, vocab_axis=vocab_axis, token_axis=token_axis, argmax=bool(return_aux),
                  smoothing=smoothing)
  bad_z_loss = _base.check_scalar_in("z_loss", z_loss, 0.0, math.inf)

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

  explicit = _explicit_mesh()
  flat = functools.partial(_reshape, token_axis=token_axis, explicit=explicit)
  h2 = flat(hidden, (n, d)).astype(mdtype)
  if mask is not None or ignore_index is not None:
    # Excluded rows must not leak NaN/inf into dL/dW (0 * NaN): zero them. This is
    # one [N, D] copy of hidden, made only when rows can be excluded.
    h2 = jnp.where(flat(use, (n,))[:, None], h2, jnp.zeros((), mdtype))
  w2 = weight.astype(mdtype)
  b2 = None if bias is None else bias.astype(cdtype)
  lab = flat(jnp.where(use, labels, jnp.zeros((), labels.dtype)), (n,)).astype(jnp.int32)
  eps = jnp.asarray(label_smoothing).astype(cdtype)
  zl = jnp.asarray(z_loss).astype(cdtype)
  row_mask = None if (mask is None and ignore_index is None) else include
  flags = [bad_smoothing, bad_z_loss]

  out: Any
  if grad_in_forward:
    omega, bad_w = _row_weights(weights, include, reduction, cdtype)
    omega = flat(jnp.where(use, omega, 0), (n,))
    out = _K.fast_total(h2, w2, b2, lab, omega, eps, zl, cfg)
    loss = _base.nan_if(jnp.any(bad | bad_w), out[0])
    lse = out[1]
  else:
    out = _K.lean_stats(h2, w2, b2, lab, cfg)
    lse = out[0]
    rows = flat(_K.row_loss(lse, out[1], out[2], eps, zl, vocab), loss_shape)
    rows = _base.nan_where(bad, rows)
    loss = _base.reduce_loss(rows, weights=weights, where=row_mask, reduction=reduction)
  for flag in flags:
    loss = _base.nan_if(flag, loss)
  if not return_aux:
    return loss
  lse = jnp.where(include, flat(lse, loss_shape), jnp.zeros((), cdtype))
  correct = use & (flat(out[-1], loss_shape).astype(labels.dtype) == labels)
  return loss, FusedAux(logsumexp=lse, correct=correct)
