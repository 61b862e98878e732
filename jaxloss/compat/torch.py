r"""``torch.nn.functional`` losses, reproduced exactly: values and gradients.

Argument order ``(input, target)`` and ``reduction="mean" | "sum" | "none"``
as in PyTorch (options are keyword-only here). Where PyTorch's backward is not
the derivative of its forward -- because the forward clamps -- these functions
reproduce PyTorch's backward with :func:`jax.custom_jvp`:

* :func:`binary_cross_entropy`: the forward clamps each log at -100; the
  backward with respect to ``input`` is PyTorch's own formula
  :math:`w (x - y) / \max(x (1 - x), \epsilon)` with ATen's float32 :math:`\epsilon \approx 10^{-12}` (finite at :math:`x \in \{0, 1\}`:
  0 where the label is met, :math:`\mp 10^{12} w` where it is not), and with
  respect to ``target`` it is :math:`-w \operatorname{logit}(x)` (unclamped).
* :func:`gaussian_nll_loss`: the variance is clamped at ``eps`` under
  ``torch.no_grad()``, so the gradient passes the clamp as if it were the
  identity, evaluated at the clamped variance.

Differences from native jaxloss are listed in ``docs/conventions.md``: PyTorch
means are means over *all* elements (weighted means only in ``nll_loss`` /
``cross_entropy`` with class indices), there is no ``where``, and
``weight`` is a per-class vector in ``cross_entropy`` / ``nll_loss`` but an
elementwise rescaling (broadcast to ``input``) in ``binary_cross_entropy``.

Where PyTorch raises at run time on values (probabilities outside [0, 1] in
``binary_cross_entropy``, class indices out of range, a negative variance),
these functions return NaN in the affected elements and raise under
``jax.experimental.checkify`` (``errors=checkify.user_checks``), the jaxloss
convention. Shapes must match exactly (PyTorch broadcasts ``input`` against
``target`` in the regression losses with a warning; here that is a
``ValueError``). bfloat16/float16 inputs are computed in float32.

References:
  PyTorch ``torch/nn/functional.py`` and ``aten/src/ATen/native/Loss.cpp``,
  ``LossNLL.cpp`` (``cross_entropy_loss_label_smoothing``,
  ``cross_entropy_loss_prob_target``), ``tools/autograd/derivatives.yaml``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxloss import _base

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
    "kl_div",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "poisson_nll_loss",
    "gaussian_nll_loss",
]

ArrayLike = jax.typing.ArrayLike
# ATen's binary_cross_entropy_backward uses ``static const float EPSILON = 1e-12``:
# the float32 value 9.99999996e-13, also in float64 arithmetic.
_BCE_EPS = 9.999999960041972e-13
_LOG_CLAMP = -100.0


def _reduce(loss, reduction, allowed=("mean", "sum", "none")):
  if reduction not in allowed:
    raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}.")
  if reduction == "none":
    return loss
  if reduction == "sum":
    return jnp.sum(loss)
  return jnp.mean(loss)


def _pair(input, target):  # pylint: disable=redefined-builtin
  x, dtype = _base.as_predictions("input", input)
  t = _base.as_targets("target", target, dtype)
  _base.check_same_shape("input", x, "target", t)
  return x, t, dtype


def _elementwise_weight(weight, shape, dtype):
  if weight is None:
    return None
  w = _base.as_targets("weight", weight, dtype)
  try:
    ok = jnp.broadcast_shapes(w.shape, shape) == tuple(shape)
  except ValueError:
    ok = False
  if not ok:
    raise ValueError(f"weight must broadcast to input's shape {tuple(shape)}, got weight.shape={w.shape}.")
  return w


# --------------------------------------------------------------------------
# binary cross-entropy on probabilities
# --------------------------------------------------------------------------
@jax.custom_jvp
def _torch_bce(x, y):
  log_x = jnp.maximum(jnp.log(x), _LOG_CLAMP)
  log_1mx = jnp.maximum(jnp.log1p(-x), _LOG_CLAMP)
  return -(y * log_x + (1.0 - y) * log_1mx)


@_torch_bce.defjvp
def _torch_bce_jvp(primals, tangents):
  x, y = primals
  dx, dy = tangents
  out = _torch_bce(x, y)
  d_x = (x - y) / jnp.maximum((1.0 - x) * x, jnp.asarray(_BCE_EPS, x.dtype))  # PyTorch's backward
  d_y = -jnp.log(x / (1.0 - x))
  return out, d_x * dx + d_y * dy


def binary_cross_entropy(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.binary_cross_entropy`` on probabilities.

  .. math::
     \ell = -w \big[y \max(\log x, -100) + (1 - y) \max(\log(1 - x), -100)\big]

  ``"mean"`` divides by the number of elements (``weight`` rescales, it does
  not renormalize). Gradients are PyTorch's (see the module docstring), with
  :math:`\epsilon` = float32(1e-12) = 9.99999996e-13 (ATen's ``EPSILON`` is a
  float constant, so at :math:`x = 0, y = 1` the gradient is -1.0000000039958e12):

  .. math::
     \partial_x \ell = w \frac{x - y}{\max(x(1 - x), \epsilon)}, \qquad
     \partial_y \ell = -w \log\frac{x}{1 - x}.

  An ``input`` outside [0, 1] (PyTorch raises) gives NaN and a checkify error.
  """
  x, y, dtype = _pair(input, target)
  w = _elementwise_weight(weight, x.shape, dtype)
  bad = _base.check_probabilities("input", x)
  loss = _base.nan_where(bad, _torch_bce(x, y))
  if w is not None:
    loss = loss * w
  return _reduce(loss, reduction)


@jax.custom_jvp
def _bce_logits_core(x, y, pw):
  """``(1 - y) x + (1 + (pw - 1) y) softplus(-x)``, PyTorch's forward, elementwise."""
  return (1.0 - y) * x + (1.0 + (pw - 1.0) * y) * jax.nn.softplus(-x)


@_bce_logits_core.defjvp
def _bce_logits_core_jvp(primals, tangents):
  x, y, pw = primals
  dx, dy, dpw = tangents
  out = _bce_logits_core(x, y, pw)
  sp = jax.nn.softplus(-x)
  d_x = (1.0 + (pw - 1.0) * y) * jax.nn.sigmoid(x) - pw * y  # PyTorch's backward (ATen)
  d_y = -x + (pw - 1.0) * sp
  return out, d_x * dx + d_y * dy + y * sp * dpw


def binary_cross_entropy_with_logits(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    pos_weight: ArrayLike | None = None,
) -> jax.Array:
  r"""``torch.nn.functional.binary_cross_entropy_with_logits``.

  .. math::
     \ell = w \big[(1 - y) x + (1 + (p_w - 1) y)\operatorname{softplus}(-x)\big]
          = -w \big[p_w y \log\sigma(x) + (1 - y) \log(1 - \sigma(x))\big],

  .. math::
     \partial_x \ell = w\big[(1 + (p_w - 1) y)\sigma(x) - p_w y\big], \qquad
     \partial_y \ell = w\big[-x + (p_w - 1)\operatorname{softplus}(-x)\big].

  ``pos_weight`` broadcasts against ``input`` (a per-class vector on the last
  axis, as in PyTorch); ``weight`` broadcasts to ``input``; ``"mean"`` divides
  by the number of elements.

  The derivative with respect to ``input`` is PyTorch's backward formula above
  (a custom JVP): autodiff of the forward would give :math:`(1 - y) - l_w
  \sigma(-x)`, which is 0 in float32 for :math:`y = 0, x \lesssim -17` where
  PyTorch (and the true derivative) give :math:`\sigma(x)`.
  """
  x, y, dtype = _pair(input, target)
  w = _elementwise_weight(weight, x.shape, dtype)
  pw = None if pos_weight is None else _elementwise_weight(pos_weight, x.shape, dtype)
  loss = _bce_logits_core(x, y, jnp.ones((), dtype) if pw is None else pw)
  if w is not None:
    loss = loss * w
  return _reduce(loss, reduction)


# --------------------------------------------------------------------------
# nll / cross-entropy
# --------------------------------------------------------------------------
def _class_dim(x):
  if x.ndim == 0:
    raise ValueError("input must have a class dimension, got a scalar.")
  return 0 if x.ndim == 1 else 1


def _class_weight(weight, n_classes, dtype):
  if weight is None:
    return None
  w = _base.as_targets("weight", weight, dtype)
  if w.shape != (n_classes,):
    raise ValueError(f"weight must be a vector of {n_classes} class weights, got weight.shape={w.shape}.")
  return w


def _broadcast_class(w, ndim, cd):
  shape = [1] * ndim
  shape[cd] = w.shape[0]
  return w.reshape(shape)


def _indexed_nll(log_probs, target, weight, ignore_index, reduction, label_smoothing):
  """PyTorch's class-index NLL / cross-entropy, label smoothing included."""
  cd = _class_dim(log_probs)
  n_classes = log_probs.shape[cd]
  dtype = log_probs.dtype
  labels = _base.as_integer_labels("target", target)
  expected = log_probs.shape[:cd] + log_probs.shape[cd + 1:]
  if labels.shape != expected:
    raise ValueError(
        f"target must have input's shape without the class dimension {cd}: expected {expected}, got "
        f"target.shape={labels.shape} (input.shape={log_probs.shape}).")
  w = _class_weight(weight, n_classes, dtype)
  valid = labels != ignore_index
  out_of_range = valid & ((labels < 0) | (labels >= n_classes))
  _base.runtime_check(~out_of_range, "target must be a class index in [0, {c}) or ignore_index; got {lo}..{hi}.",
                      c=jnp.asarray(n_classes), lo=_base.value_min(labels), hi=_base.value_max(labels))
  safe = jnp.where(valid & ~out_of_range, labels, 0)
  picked = jnp.squeeze(jnp.take_along_axis(log_probs, jnp.expand_dims(safe, cd), axis=cd), cd)
  w_t = jnp.ones(labels.shape, dtype) if w is None else w[safe]
  w_t = jnp.where(valid, w_t, jnp.zeros((), dtype))
  loss = jnp.where(valid, -w_t * picked, jnp.zeros((), dtype))
  if label_smoothing:
    wl = log_probs if w is None else log_probs * _broadcast_class(w, log_probs.ndim, cd)
    smooth = jnp.where(valid, -jnp.sum(wl, axis=cd), jnp.zeros((), dtype))
    loss = (1.0 - label_smoothing) * loss + (label_smoothing / n_classes) * smooth
  loss = _base.nan_where(out_of_range, loss)
  if reduction not in ("mean", "sum", "none"):
    raise ValueError(f"reduction must be one of ('mean', 'sum', 'none'), got {reduction!r}.")
  if reduction == "none":
    return loss
  total = jnp.sum(loss)
  if reduction == "sum":
    return total
  # weighted mean: divided by the summed weights of the non-ignored targets.
  # All targets ignored: 0/0 = NaN as in PyTorch, with a zero gradient.
  denom = jnp.sum(w_t)
  positive = denom > 0
  return jnp.where(positive, total / jnp.where(positive, denom, jnp.ones((), dtype)),
                   jnp.asarray(jnp.nan, dtype))


def nll_loss(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.nll_loss`` on log-probabilities.

  ``input`` is ``(N, C, d1, ...)`` or ``(C,)`` (class dimension 1, or 0 when
  unbatched); ``target`` holds class indices, shaped like ``input`` without
  the class dimension.

  .. math::
     \ell_n = -w_{y_n} x_{n, y_n} [y_n \ne \text{ignore}], \qquad
     \text{mean} = \frac{\sum_n \ell_n}{\sum_n w_{y_n} [y_n \ne \text{ignore}]}

  (NaN when every target is ignored, as in PyTorch).
  """
  x, _ = _base.as_predictions("input", input)
  return _indexed_nll(x, target, weight, ignore_index, reduction, 0.0)


def cross_entropy(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> jax.Array:
  r"""``torch.nn.functional.cross_entropy`` on logits.

  With :math:`\log p = \operatorname{log\_softmax}(x)` over the class
  dimension (1, or 0 for unbatched input) and :math:`\varepsilon` =
  ``label_smoothing``:

  **Class-index targets** (integer ``target``):

  .. math::
     \ell_n = \big[(1 - \varepsilon)(-w_{y_n} \log p_{n, y_n})
       + \tfrac{\varepsilon}{C} \textstyle\sum_c (-w_c \log p_{n, c})\big][y_n \ne \text{ignore}],

  and ``"mean"`` divides :math:`\sum_n \ell_n` by :math:`\sum_n w_{y_n} [y_n \ne \text{ignore}]`
  -- the smoothing term too (PyTorch normalizes it by the same label weights).

  **Probability targets** (floating ``target`` shaped like ``input``):

  .. math::
     \tilde y = (1 - \varepsilon) y + \varepsilon / C, \qquad
     \ell_n = -\textstyle\sum_c w_c \tilde y_{n,c} \log p_{n,c},

  and ``"mean"`` divides by the number of rows (input.size / C), *not* by the
  weights.
  """
  x, dtype = _base.as_predictions("input", input)
  _base.check_scalar_in("label_smoothing", label_smoothing, 0.0, 1.0)
  cd = _class_dim(x)
  log_probs = jax.nn.log_softmax(x, axis=cd)
  target_arr = jnp.asarray(target)
  if jnp.issubdtype(target_arr.dtype, jnp.integer):
    return _indexed_nll(log_probs, target_arr, weight, ignore_index, reduction, label_smoothing)
  if not jnp.issubdtype(target_arr.dtype, jnp.floating):
    raise TypeError(f"target must be integer class indices or floating probabilities, got dtype {target_arr.dtype}.")
  y = _base.as_distribution_targets("target", target_arr, dtype)
  _base.check_same_shape("input", x, "target (probabilities)", y)
  n_classes = x.shape[cd]
  if label_smoothing:
    y = y * (1.0 - label_smoothing) + label_smoothing / n_classes
  prod = log_probs * y
  w = _class_weight(weight, n_classes, dtype)
  if w is not None:
    prod = prod * _broadcast_class(w, x.ndim, cd)
  loss = -jnp.sum(prod, axis=cd)
  if reduction == "mean":
    return jnp.sum(loss) / jnp.asarray(x.size // n_classes, dtype)
  return _reduce(loss, reduction)


# --------------------------------------------------------------------------
# KL divergence
# --------------------------------------------------------------------------
def kl_div(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    *,
    reduction: str = "mean",
    log_target: bool = False,
) -> jax.Array:
  r"""``torch.nn.functional.kl_div``: ``input`` is log-probabilities.

  .. math::
     \ell = y (\log y - x) \ (\text{with } 0 \log 0 = 0), \qquad
     \ell = e^{t} (t - x) \ (\texttt{log\_target}, t = \log y).

  ``"mean"`` is the mean over all elements (PyTorch's default, which is not
  the KL divergence); ``"batchmean"`` divides the sum by ``input.shape[0]``
  (the KL per sample). Gradients: :math:`\partial_x \ell = -y`;
  :math:`\partial_y \ell = \log y + 1 - x` (at :math:`y = 0` the
  :math:`\log y + 1` part is taken as 0, giving :math:`-x`, where PyTorch's
  ``xlogy`` backward gives NaN); with ``log_target``,
  :math:`\partial_t \ell = e^t (t - x + 1)`.
  """
  x, t, dtype = _pair(input, target)
  if log_target:
    loss = jnp.exp(t) * (t - x)
  else:
    loss = _base.xlogx(t) - t * x
  if reduction == "batchmean":
    n = x.shape[0] if x.ndim else 1
    return jnp.sum(loss) / jnp.asarray(n, dtype)
  return _reduce(loss, reduction, ("mean", "batchmean", "sum", "none"))


# --------------------------------------------------------------------------
# regression
# --------------------------------------------------------------------------
def mse_loss(input: ArrayLike, target: ArrayLike, *, reduction: str = "mean") -> jax.Array:  # pylint: disable=redefined-builtin
  r"""``torch.nn.functional.mse_loss``: :math:`(x - y)^2`."""
  x, t, _ = _pair(input, target)
  return _reduce(jnp.square(x - t), reduction)


@jax.custom_jvp
def _abs(d):
  return jnp.abs(d)


@_abs.defjvp
def _abs_jvp(primals, tangents):
  (d,), (dd,) = primals, tangents
  return jnp.abs(d), jnp.sign(d) * dd  # PyTorch's abs backward: sign(0) = 0


def l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: str = "mean") -> jax.Array:  # pylint: disable=redefined-builtin
  r"""``torch.nn.functional.l1_loss``: :math:`|x - y|` (gradient 0 at :math:`x = y`, as ``sign``)."""
  x, t, _ = _pair(input, target)
  return _reduce(_abs(x - t), reduction)


def _quadratic_then_linear(d, threshold, quadratic_scale, linear):
  ad = jnp.abs(d)
  small = ad < threshold
  d_small = jnp.where(small, d, jnp.zeros((), d.dtype))
  return jnp.where(small, quadratic_scale * jnp.square(d_small), linear(ad))


def smooth_l1_loss(
    input: ArrayLike, target: ArrayLike, *, reduction: str = "mean", beta: float = 1.0,  # pylint: disable=redefined-builtin
) -> jax.Array:
  r"""``torch.nn.functional.smooth_l1_loss``.

  .. math::
     \ell = \begin{cases} \tfrac{1}{2} d^2 / \beta & |d| < \beta \\ |d| - \beta/2 & \text{otherwise}\end{cases},
     \qquad d = x - y,

  ``beta = 0`` is the L1 loss (as in PyTorch). :math:`\partial_x \ell = d/\beta`
  inside, :math:`\operatorname{sign}(d)` outside.
  """
  x, t, dtype = _pair(input, target)
  _base.check_scalar_in("beta", beta, 0.0, math.inf)
  d = x - t
  if float(beta) == 0.0:
    return _reduce(_abs(d), reduction)
  b = jnp.asarray(beta, dtype)
  loss = _quadratic_then_linear(d, b, 0.5 / b, lambda ad: ad - 0.5 * b)
  return _reduce(loss, reduction)


def huber_loss(
    input: ArrayLike, target: ArrayLike, *, reduction: str = "mean", delta: float = 1.0,  # pylint: disable=redefined-builtin
) -> jax.Array:
  r"""``torch.nn.functional.huber_loss`` (= ``delta * smooth_l1_loss(beta=delta)``).

  .. math::
     \ell = \begin{cases} \tfrac{1}{2} d^2 & |d| < \delta \\ \delta (|d| - \delta/2) & \text{otherwise}\end{cases}.
  """
  x, t, dtype = _pair(input, target)
  _base.check_scalar_in("delta", delta, 0.0, math.inf)
  if not float(delta) > 0.0:
    raise ValueError(f"delta must be positive, got {delta}.")
  dl = jnp.asarray(delta, dtype)
  loss = _quadratic_then_linear(x - t, dl, 0.5, lambda ad: dl * (ad - 0.5 * dl))
  return _reduce(loss, reduction)


def poisson_nll_loss(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.poisson_nll_loss``.

  .. math::
     \ell = e^{x} - y x \ (\texttt{log\_input}), \qquad \ell = x - y \log(x + \epsilon) \ (\text{otherwise}),

  plus, with ``full=True``, Stirling's term
  :math:`y \log y - y + \tfrac12 \log(2\pi y)` where :math:`y > 1` (0
  elsewhere). Gradient with respect to ``input``: :math:`e^x - y` (log input),
  :math:`1 - y / (x + \epsilon)` otherwise. (PyTorch's gradient with respect
  to ``target`` is NaN at :math:`y = 0` with ``full=True``; here the masked
  Stirling term contributes 0 there, leaving :math:`-x`.)
  """
  x, t, dtype = _pair(input, target)
  if log_input:
    loss = jnp.exp(x) - t * x
  else:
    loss = x - t * jnp.log(x + jnp.asarray(eps, dtype))
  if full:
    big = t > 1
    ts = jnp.where(big, t, jnp.ones((), dtype))
    stirling = ts * jnp.log(ts) - ts + 0.5 * jnp.log(2.0 * math.pi * ts)
    loss = loss + jnp.where(big, stirling, jnp.zeros((), dtype))
  return _reduce(loss, reduction)


@jax.custom_jvp
def _clamp_min_straight_through(v, eps):
  return jnp.maximum(v, eps)


@_clamp_min_straight_through.defjvp
def _clamp_min_straight_through_jvp(primals, tangents):
  v, eps = primals
  dv, _ = tangents
  return jnp.maximum(v, eps), dv


def gaussian_nll_loss(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    var: ArrayLike | float,
    *,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.gaussian_nll_loss``.

  .. math::
     \ell = \tfrac12 \Big(\log \hat v + \frac{(x - y)^2}{\hat v}\Big) \ [+\ \tfrac12 \log 2\pi],
     \qquad \hat v = \max(v, \epsilon).

  PyTorch clamps the variance in place under ``torch.no_grad()``, so the
  gradient treats the clamp as the identity (evaluated at :math:`\hat v`):

  .. math::
     \partial_x \ell = \frac{x - y}{\hat v}, \qquad
     \partial_v \ell = \frac{1}{2}\Big(\frac{1}{\hat v} - \frac{(x - y)^2}{\hat v^2}\Big)
     \ \text{(also where } v < \epsilon).

  ``var`` is a float, an array shaped like ``input``, ``input``'s shape without
  its last axis (homoscedastic over it), or ``input``'s shape with exactly one
  axis of size 1. A negative variance (PyTorch raises) gives NaN and a
  checkify error.
  """
  x, t, dtype = _pair(input, target)
  if isinstance(var, (int, float)):
    v = jnp.full(x.shape, var, dtype)
  else:
    v = _base.as_targets("var", var, dtype)
    if v.shape != x.shape:
      if v.shape == x.shape[:-1]:
        v = jnp.expand_dims(v, -1)
      elif v.ndim == x.ndim and sum(b for a, b in zip(x.shape, v.shape) if a != b) == 1:
        pass
      else:
        raise ValueError(f"var is of incorrect size: var.shape={v.shape}, input.shape={x.shape}.")
  negative = v < 0
  _base.runtime_check(~negative, "var must be non-negative; got min {m}.", m=_base.value_min(v))
  vc = _clamp_min_straight_through(v, jnp.asarray(eps, dtype))
  loss = 0.5 * (jnp.log(vc) + jnp.square(x - t) / vc)
  if full:
    loss = loss + 0.5 * math.log(2.0 * math.pi)
  loss = _base.nan_where(jnp.broadcast_to(negative, loss.shape), loss)
  return _reduce(loss, reduction)
