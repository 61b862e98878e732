"""Shared argument checks, dtype rules and the one reduction every loss uses.

Conventions (stated once, here, and linked from every loss docstring):

**Unreduced loss.** Elementwise losses return one value per element of the
predictions; losses over ``axis`` (softmax cross-entropy, entropy, KL, ...)
return one value per row, i.e. the predictions' shape without ``axis``.

**weights** (optional, float) broadcasts *to* the unreduced loss shape (never
the other way round: a ``weights`` that would enlarge the loss raises
``ValueError``). Negative weights are invalid: the affected elements become NaN
(and raise under :mod:`jax.experimental.checkify`).

**where** (optional, bool) broadcasts to the unreduced loss shape. ``False``
elements are excluded: their unreduced value is exactly 0, their gradient is
exactly 0 (inputs are sanitized before use, so a masked row of ``-inf`` logits
cannot leak a NaN into the gradient), and they do not count in a mean.

**reduction**:

* ``"none"``: the unreduced loss times the effective weight
  ``w = weights * (class weight of the label, where a loss has one)``, and 0
  where ``where`` is False.
* ``"sum"``: the sum of that array.
* ``"mean"`` (default): ``sum(w * loss * where) / sum(w * where)``; with
  neither weights nor mask this is the plain mean. An all-masked (or all
  zero-weight) batch gives 0 with a zero gradient, never NaN.

**Dtypes.** bfloat16 and float16 predictions are computed in float32 and the
loss is returned in float32; float32 stays float32, float64 stays float64.
Targets are cast straight to that computation dtype, never through the
predictions' dtype (a label of 0.8 stays 0.8 next to bfloat16 logits).
Integer or boolean predictions raise ``TypeError``.

**Run-time values** (labels out of range, probabilities outside [0, 1],
negative weights) cannot be checked at trace time. jaxloss never turns them
into a plausible number: each offending element of the unreduced loss is NaN.
That is the whole default behavior: the NaN is computed in the same fused pass
as the loss, and no loss adds an effect (checkify or otherwise) to the user's
jaxpr, so a jitted training step that calls a jaxloss loss stays on JAX's C++
dispatch path and compiles to the same program shape as with its optax peer.

Options follow the same rule: a concrete out-of-range option
(``label_smoothing=1.5``, ``delta=0``, ``tau=-0.1``, an ``alpha`` array with a
value above 1) raises ``ValueError`` at trace time, and the same option passed
as a traced array (through ``jit``, ``vmap`` or ``grad``) makes the loss NaN
where it is out of range (see :func:`check_scalar_in`); so does a constant
built inside a jitted function (``jnp.float32(1.5)`` there is traced too). The
gradient with respect to such an option is then 0.

**Opt-in run-time errors.** Inside ``with jaxloss.runtime_checks():`` (or with
the environment variable ``JAXLOSS_RUNTIME_CHECKS=1`` set before ``jaxloss`` is
imported) every such check is also emitted as a ``checkify`` check, so that
``checkify.checkify(fn, errors=checkify.user_checks)`` raises an error that
names the argument and the offending range. ``jaxloss.runtime_checks(False)``
turns them off again inside an enabled region.

When the switch takes effect: the switch is read while a loss is *traced*, and
its value is part of ``jax.jit``'s tracing, lowering and compilation cache key
(it is a :func:`jax.make_user_context`). A function that was jitted and
compiled with checks off and is then called inside ``runtime_checks()`` is
therefore re-traced with the checks in it, never served from the cache without
them; leaving the region goes back to the check-free executable (a cache hit).
The checks only *raise* under ``checkify.checkify``; without it they are
no-ops that still carry the checkify effect. Keep them for debugging: a
function carrying the effect is dispatched through JAX's Python path (on CPU
about 100 microseconds more per top-level call, several times a small
training step; see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Reduction = Literal["mean", "sum", "none"]

REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------
# backend-specific code paths
# --------------------------------------------------------------------------
# The backend whose branch :func:`platform_dependent` traces, where the caller knows it
# (``jaxloss.verify`` sets it for the programs it compiles for the default backend). Unset: both
# branches are traced and the backend picks one when the program is lowered. A user context, so
# part of jax's tracing cache key: a function traced with one branch is never reused without it.
_TRACE_PLATFORM = jax.make_user_context(default_value=None)


def trace_for_platform(platform: str | None) -> contextlib.AbstractContextManager[None]:
  """Within the block, :func:`platform_dependent` traces only ``platform``'s branch ("cpu", "gpu", ...).

  Only for programs that will run on that platform; ``jaxloss.verify`` uses
  it because every transformation of a ``lax.platform_dependent`` traces each
  branch again.
  """
  return _TRACE_PLATFORM(platform)


def platform_dependent(*args: Any, cpu: Any, default: Any) -> Any:
  """``lax.platform_dependent(*args, cpu=cpu, default=default)``, or the branch set by :func:`trace_for_platform`."""
  platform = _TRACE_PLATFORM.value
  if platform is not None:
    return (cpu if platform == "cpu" else default)(*args)
  return jax.lax.platform_dependent(*args, cpu=cpu, default=default)


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------
def _dtype_of(x: Any) -> np.dtype:
  return jnp.asarray(x).dtype if not hasattr(x, "dtype") else np.dtype(x.dtype)


def computation_dtype(dtype: Any) -> np.dtype:
  """The dtype a loss computes in: at least float32, float64 stays float64."""
  dtype = np.dtype(dtype)
  if dtype == np.float64:
    return np.dtype(np.float64) if jax.config.read("jax_enable_x64") else np.dtype(np.float32)
  return np.dtype(np.float32)


def as_predictions(name: str, x: ArrayLike) -> tuple[Array, np.dtype]:
  """Checks that ``x`` is floating point and returns it cast to its computation dtype.

  Returns:
    ``(x_in_computation_dtype, computation_dtype)``.
  """
  dtype = _dtype_of(x)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(
        f"{name} must be a floating-point array (bfloat16, float16, float32 or "
        f"float64), got dtype {dtype}. Cast it first, e.g. "
        f"{name}.astype(jnp.float32)."
    )
  cdtype = computation_dtype(dtype)
  return jnp.asarray(x).astype(cdtype), cdtype


def as_targets(name: str, y: ArrayLike, dtype: Any) -> Array:
  """Casts real-valued targets straight to the computation ``dtype``.

  Integer and boolean targets are accepted (0/1 labels) and converted exactly.
  """
  y = jnp.asarray(y)
  if jnp.issubdtype(y.dtype, jnp.complexfloating):
    raise TypeError(f"{name} must be real, got dtype {y.dtype}.")
  return y.astype(dtype)


def as_distribution_targets(name: str, y: ArrayLike, dtype: Any) -> Array:
  """Like :func:`as_targets`, but a probability distribution must be floating."""
  y_arr = jnp.asarray(y)
  if not jnp.issubdtype(y_arr.dtype, jnp.floating):
    raise TypeError(
        f"{name} must be a floating-point probability distribution, got dtype "
        f"{y_arr.dtype}. For integer class labels use "
        "softmax_cross_entropy_with_integer_labels."
    )
  return y_arr.astype(dtype)


def as_integer_labels(name: str, labels: ArrayLike) -> Array:
  labels = jnp.asarray(labels)
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise TypeError(
        f"{name} must be integer class indices, got dtype {labels.dtype}. For "
        "probability targets use softmax_cross_entropy."
    )
  return labels


def check_same_shape(a_name: str, a: Any, b_name: str, b: Any) -> None:
  """Raises ``ValueError`` unless the two arrays have exactly the same shape."""
  sa, sb = jnp.shape(a), jnp.shape(b)
  if sa != sb:
    raise ValueError(
        f"{a_name} and {b_name} must have the same shape, got {a_name}.shape={sa} "
        f"and {b_name}.shape={sb}. jaxloss never broadcasts predictions against "
        "targets; reshape one of them explicitly."
    )


def elementwise_inputs(
    name_p: str, predictions: ArrayLike, name_t: str, targets: ArrayLike, where: ArrayLike | None
) -> tuple[Array, Array, Array | None, np.dtype]:
  """The common prologue of an elementwise loss.

  Checks and casts predictions (floating) and targets (to the computation
  dtype), requires identical shapes, and prepares ``where``.

  Returns:
    ``(predictions, targets, mask_or_None, computation_dtype)``.
  """
  p, dtype = as_predictions(name_p, predictions)
  t = as_targets(name_t, targets, dtype)
  check_same_shape(name_p, p, name_t, t)
  mask = prepare_where(where, p.shape)
  return p, t, mask, dtype


def normalize_axis(axis: int, ndim: int, name: str = "axis") -> int:
  if not isinstance(axis, (int, np.integer)):
    raise TypeError(f"{name} must be an int, got {axis!r}.")
  if ndim == 0:
    raise ValueError(f"a loss over {name} needs at least 1-D predictions, got a scalar.")
  if not -ndim <= axis < ndim:
    raise ValueError(f"{name}={axis} is out of range for arrays with {ndim} dimensions.")
  return int(axis) % ndim


def check_reduction(reduction: str) -> None:
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")


def check_scalar_in(name: str, value: Any, low: float, high: float, *, closed_low: bool = True,
                    closed_high: bool = True) -> Array | None:
  """Range check of an option (``label_smoothing``, ``delta``, ``tau``, ``alpha``, ...).

  A concrete value (Python number, NumPy or concrete JAX array) is checked at
  trace time: ``ValueError`` naming the option and the interval. A traced value
  (an option passed through ``jit``, ``vmap`` or ``grad``) can only be checked at
  run time, like any other run-time value: this returns a boolean array
  (``True`` outside the interval or NaN, the option's shape) that the caller
  applies to the unreduced loss with :func:`nan_if`, and the check raises under
  ``checkify``. Returns ``None`` when there is nothing left to check.
  """
  if high == float("inf"):
    interval = f"{'>=' if closed_low else '>'} {low}"
  else:
    interval = f"in {'[' if closed_low else '('}{low}, {high}{']' if closed_high else ')'}"
  try:
    concrete = np.asarray(value, dtype=np.float64)
  except (TypeError, jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    concrete = None
  if concrete is not None:
    ok = (concrete >= low if closed_low else concrete > low) & (concrete <= high if closed_high else concrete < high)
    if not np.all(ok):
      shown = value if concrete.ndim == 0 else f"values in [{np.nanmin(concrete)}, {np.nanmax(concrete)}]"
      if np.isnan(concrete).any():
        shown = f"{shown} (with NaN)" if concrete.ndim else "nan"
      raise ValueError(f"{name} must be {interval}, got {shown}.")
    return None
  x = jnp.asarray(value)
  ok = (x >= low if closed_low else x > low) & (x <= high if closed_high else x < high)
  runtime_check(ok, f"{name} must be {interval}; got values in [{{lo}}, {{hi}}].", lo=value_min(x), hi=value_max(x))
  return ~ok


def nan_if(bad: Array | None, loss: Array) -> Array:
  """:func:`nan_where` for an optional flag (``None``: nothing flagged); ``bad`` broadcasts to ``loss``."""
  return loss if bad is None else nan_where(bad, loss)


# --------------------------------------------------------------------------
# run-time value checks: NaN + checkify
# --------------------------------------------------------------------------
def first_flagged(x: ArrayLike, bad: ArrayLike) -> Array:
  """The first element of ``x`` where ``bad`` is True, for an error message (0 if none or ``x`` is empty)."""
  x, bad = jnp.ravel(jnp.asarray(x)), jnp.ravel(jnp.asarray(bad))
  if x.size == 0:
    return jnp.zeros((), x.dtype)
  return x[jnp.argmax(bad)]


def value_min(x: ArrayLike) -> Array:
  """``min(x)`` for an error message; the identity (``+inf`` or the dtype's max) for an empty ``x``."""
  x = jnp.asarray(x)
  big = jnp.inf if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.iinfo(x.dtype).max
  return jnp.min(x, initial=jnp.asarray(big, x.dtype))


def value_max(x: ArrayLike) -> Array:
  """``max(x)`` for an error message; the identity (``-inf`` or the dtype's min) for an empty ``x``."""
  x = jnp.asarray(x)
  small = -jnp.inf if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.iinfo(x.dtype).min
  return jnp.max(x, initial=jnp.asarray(small, x.dtype))


def nan_where(bad: Array, loss: Array) -> Array:
  """Sets the elements of ``loss`` flagged by ``bad`` to NaN."""
  return jnp.where(bad, jnp.asarray(jnp.nan, loss.dtype), loss)


def _env_default() -> bool:
  value = os.environ.get("JAXLOSS_RUNTIME_CHECKS", "").strip().lower()
  if value in ("", "0", "false", "no", "off"):
    return False
  if value in ("1", "true", "yes", "on"):
    return True
  raise ValueError(f"JAXLOSS_RUNTIME_CHECKS must be 0 or 1 (or true/false), got {value!r}.")


# Part of jax.jit's cache key: flipping it re-traces instead of reusing a trace without checks.
_RUNTIME_CHECKS = jax.make_user_context(default_value=_env_default())


def runtime_checks_enabled() -> bool:
  """Whether run-time value checks are emitted by losses traced now (see :func:`runtime_checks`)."""
  return bool(_RUNTIME_CHECKS.value)


def runtime_checks(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
  """Opt in to (or, with ``False``, out of) jaxloss's run-time value errors.

  By default an invalid run-time value (a label out of range, a probability
  outside [0, 1], a negative weight, a traced option out of its range) only
  makes the offending elements of the loss NaN, and no loss adds an effect to
  the caller's jaxpr. Inside this context manager every loss traced also emits
  a ``checkify`` check naming the argument, so that
  ``checkify.checkify(fn, errors=checkify.user_checks)`` raises::

      with jaxloss.runtime_checks():
        err, loss = checkify.checkify(step, errors=checkify.user_checks)(params, batch)
      err.throw()  # ValueError-like JaxRuntimeError: "labels must lie in [0, 10) ..."

  The value is read when a function is traced and is part of ``jax.jit``'s
  cache key, so a function compiled before entering the region is re-traced
  with the checks inside it (and the check-free executable is reused after
  leaving it). The environment variable ``JAXLOSS_RUNTIME_CHECKS=1``, read
  when ``jaxloss`` is imported, turns the checks on globally;
  ``runtime_checks(False)`` turns them off inside such a region.

  Args:
    enabled: ``True`` (default) to emit the checks, ``False`` to suppress them.

  Returns:
    A context manager.

  Raises:
    TypeError: if ``enabled`` is not a bool.
  """
  if not isinstance(enabled, (bool, np.bool_)):
    raise TypeError(f"runtime_checks(enabled) takes a bool, got {enabled!r}.")
  return _RUNTIME_CHECKS(bool(enabled))


def runtime_check(ok: Array, message: str, **fmt: Any) -> None:
  """A check that is emitted only inside :func:`runtime_checks` (then raises under ``checkify``).

  Outside it nothing is added to the jaxpr; the caller's NaN flag is the
  only trace of an invalid value.
  """
  if not _RUNTIME_CHECKS.value:
    return
  checkify.debug_check(jnp.all(ok), message, **fmt)


PROBABILITY_FIX = ("If these are raw intensities or counts, rescale them into [0, 1] first (e.g. divide 8-bit "
                   "pixels by 255); if they are logits, use the from-logits loss (sigmoid_binary_cross_entropy, "
                   "softmax_cross_entropy).")


def check_probabilities(name: str, p: Array) -> Array:
  """Returns a boolean array flagging elements of ``p`` outside [0, 1] (or NaN).

  The opt-in error names the argument, the observed range and the usual fixes (:data:`PROBABILITY_FIX`).
  """
  bad = ~((p >= 0) & (p <= 1))
  runtime_check(~bad, f"{name} must lie in [0, 1]; got values in [{{lo}}, {{hi}}]. {PROBABILITY_FIX}",
                lo=value_min(p), hi=value_max(p))
  return bad


def check_nonnegative(name: str, x: Array) -> Array:
  """Returns a boolean array flagging elements of ``x`` below 0 (or NaN)."""
  bad = ~(x >= 0)
  runtime_check(~bad, f"{name} must be non-negative; got min {{lo}}.", lo=value_min(x))
  return bad


def distribution_tolerance(input_dtype: Any, compute_dtype: Any, n: int, *, log_space: bool) -> float:
  r"""How far from 1 a row's total mass may be before :func:`check_distribution` flags it.

  With :math:`u` the unit roundoff of the *input* dtype (the argument's dtype before the
  cast to the computation dtype; at least the computation dtype's), :math:`u_c` that of
  the computation dtype and :math:`n` the row length:

  * probabilities: :math:`2u + n u_c`. A correctly rounded distribution has
    :math:`|\sum_i \mathrm{fl}(p_i) - 1| \le u \sum_i p_i = u`; the second :math:`u` covers
    one more rounding (normalizing by a rounded sum), :math:`n u_c` the summation here.
  * log-probabilities: :math:`\operatorname{expm1}(2u(1 + \log n)) + n u_c`. Rounding
    :math:`\ell_i` costs :math:`u|\ell_i|`, a factor :math:`e^{\pm u|\ell_i|}` on
    :math:`p_i`, and :math:`\sum_i p_i |\ell_i|` is the entropy, at most :math:`\log n`: a
    bfloat16 ``log_softmax`` row of 32768 equal logits has :math:`\sum e^{\ell_i} = 1.02`
    (tolerance 0.095; float16: 0.013); float32 rows of 10 classes get 7.2e-7 (probabilities)
    and 9.9e-7.
  """
  u_c = float(jnp.finfo(compute_dtype).eps) / 2
  u = max(float(jnp.finfo(input_dtype).eps) / 2, u_c) if jnp.issubdtype(input_dtype, jnp.inexact) else u_c
  n = max(int(n), 1)
  rep = math.expm1(2.0 * u * (1.0 + math.log(n))) if log_space else 2.0 * u
  return rep + n * u_c


def check_distribution(name: str, x: Array, *, axis: int, input_dtype: Any, mask: Array | None = None,
                       log_space: bool = False) -> Array:
  """Flags the rows (along ``axis``) of ``x`` whose total mass is not 1 (or is NaN).

  ``x`` holds probabilities (``log_space=False``: the row must sum to 1) or
  log-probabilities (``log_space=True``: ``exp`` of the row must sum to 1),
  within :func:`distribution_tolerance` of ``input_dtype`` (the argument's dtype
  as the caller passed it) and the row length. Rows excluded by ``mask`` (the
  unreduced-loss shape) are never flagged. Returns a boolean array of the row
  shape; the check is emitted under :func:`runtime_checks` naming ``name``.
  """
  n = x.shape[axis]
  if n == 0:
    return jnp.zeros(x.shape[:axis] + x.shape[axis + 1:], bool)
  tol = distribution_tolerance(input_dtype, x.dtype, n, log_space=log_space)
  total = jnp.sum(jnp.exp(x) if log_space else x, axis=axis)
  bad = ~(jnp.abs(total - 1) <= tol)
  if mask is not None:
    bad = bad & mask
  what = "exp(row) must sum to 1 (a log-space distribution)" if log_space else "each row must sum to 1"
  runtime_check(~bad, f"{name}: {what} within {tol:.3g} (along axis {axis}); got a row summing to {{s}}.",
                s=first_flagged(total, bad))
  return bad


# --------------------------------------------------------------------------
# masking and reduction
# --------------------------------------------------------------------------
def _check_broadcast_to(name: str, arr_shape: Sequence[int], loss_shape: Sequence[int]) -> None:
  try:
    out = jnp.broadcast_shapes(tuple(arr_shape), tuple(loss_shape))
  except ValueError:
    out = None
  if out != tuple(loss_shape):
    raise ValueError(
        f"{name} must broadcast to the unreduced loss shape {tuple(loss_shape)}, got "
        f"{name}.shape={tuple(arr_shape)}. For losses over an axis the unreduced "
        "loss has one value per row (mask classes with -inf logits instead)."
    )


def prepare_where(where: ArrayLike | None, loss_shape: Sequence[int]) -> Array | None:
  """Checks ``where`` (bool, broadcastable to the loss shape) and broadcasts it."""
  if where is None:
    return None
  where = jnp.asarray(where)
  if where.dtype != jnp.bool_:
    raise TypeError(f"where must be a boolean mask, got dtype {where.dtype}.")
  _check_broadcast_to("where", where.shape, loss_shape)
  return jnp.broadcast_to(where, tuple(loss_shape))


def sanitize(x: Array, where: Array | None, fill: float = 0.0, axis: int | None = None) -> Array:
  """Replaces masked entries of ``x`` by ``fill`` before any arithmetic.

  This is the "double where" that keeps NaN/inf in masked-out inputs from
  reaching the gradient. ``where`` has the unreduced-loss shape; ``axis`` is
  the reduced axis of ``x`` for row-wise losses.
  """
  if where is None:
    return x
  if axis is not None:
    where = jnp.expand_dims(where, axis)
  return jnp.where(where, x, jnp.asarray(fill, x.dtype))


def reduce_loss(
    loss: Array,
    *,
    weights: ArrayLike | None = None,
    where: Array | None = None,
    reduction: str = "mean",
    extra_weights: Array | None = None,
) -> Array:
  """The single reduction used by every jaxloss loss (see module docstring).

  Args:
    loss: the unreduced loss, in the computation dtype.
    weights: user weights, broadcastable to ``loss.shape``.
    where: boolean mask already broadcast by :func:`prepare_where`.
    reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    extra_weights: per-element weights a loss adds itself (class weights of the
      labels); they multiply ``weights`` and enter the mean's denominator. A
      boolean array is an exclusion mask (a ranking list without pairs, an
      anchor without positives): an excluded element counts 0 in the sum and
      in the denominator, except that a NaN stays NaN. (Applied as a select:
      multiplying by the mask keeps a NaN in eager mode, but XLA rewrites
      ``x * float(mask)`` into a select that drops it under ``jit``.)
  """
  check_reduction(reduction)
  dtype = loss.dtype
  w = None
  if weights is not None:
    weights_arr = jnp.asarray(weights)
    if not (jnp.issubdtype(weights_arr.dtype, jnp.floating) or jnp.issubdtype(weights_arr.dtype, jnp.integer)):
      raise TypeError(f"weights must be numeric, got dtype {weights_arr.dtype}.")
    _check_broadcast_to("weights", weights_arr.shape, loss.shape)
    w = jnp.broadcast_to(weights_arr.astype(dtype), loss.shape)
    runtime_check(w >= 0, "weights must be non-negative; got min {m}.", m=value_min(w))
    loss = nan_where(w < 0, loss)
  w_denominator = w
  if extra_weights is not None and extra_weights.dtype == jnp.bool_:
    loss = jnp.where(extra_weights | jnp.isnan(loss), loss, jnp.zeros((), dtype))
    ew = extra_weights.astype(dtype)
    w_denominator = ew if w is None else w * ew
  elif extra_weights is not None:
    w = extra_weights.astype(dtype) if w is None else w * extra_weights.astype(dtype)
    w_denominator = w
  if w is not None:
    loss = loss * w
  if where is not None:
    loss = jnp.where(where, loss, jnp.zeros((), dtype))
  if reduction == "none":
    return loss
  total = jnp.sum(loss)
  if reduction == "sum":
    return total
  # mean
  w = w_denominator
  if w is None and where is None:
    return total / jnp.asarray(loss.size, dtype) if loss.size else jnp.zeros((), dtype)
  if w is None:
    assert where is not None
    denom = jnp.sum(where.astype(dtype))
  elif where is None:
    denom = jnp.sum(w)
  else:
    denom = jnp.sum(jnp.where(where, w, jnp.zeros((), dtype)))
  positive = denom > 0
  safe = jnp.where(positive, denom, jnp.ones((), dtype))
  return jnp.where(positive, total / safe, jnp.zeros((), dtype))


def xlogy(x: Array, y: Array) -> Array:
  """``x * log(y)`` with ``0 * log(0) = 0`` in value and in both derivatives.

  At ``x = 0, y = 0`` the value is 0 and both partial derivatives are taken as
  0 (the limit convention used for entropies, KL and cross-entropy with a zero
  target). Everywhere else the derivatives are the true ``log y`` and ``x / y``
  (``-inf`` where ``x > 0, y = 0``).
  """
  both_zero = (x == 0) & (y == 0)
  safe_y = jnp.where(both_zero, jnp.ones_like(y), y)
  return x * jnp.log(safe_y)


def xlogx(x: Array) -> Array:
  """``x log x`` with value 0 and derivative 0 at ``x = 0`` (see :func:`xlogy`)."""
  safe_x = jnp.where(x == 0, jnp.ones_like(x), x)
  return x * jnp.log(safe_x)


def xlog1my(x: Array, y: Array) -> Array:
  """``(1 - x) log(1 - y)`` as ``(1 - x) log1p(-y)``, with the 0 log 0 convention of :func:`xlogy`.

  ``log1p(-y)`` is exact to rounding for small ``y``; ``log(1 - y)`` of the
  rounded ``1 - y`` is not (``y = 1e-7`` in float32: ``1 - y`` rounds to
  ``1 - 2^-23`` and the log is ``-1.19e-7``, 19% off ``-1.0000001e-7``). At
  ``x = y = 1`` the value and both derivatives are 0.
  """
  both_one = (x == 1) & (y == 1)
  safe_y = jnp.where(both_one, jnp.zeros_like(y), y)
  return (1.0 - x) * jnp.log1p(-safe_y)
