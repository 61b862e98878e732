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
* :func:`ctc_loss`: PyTorch's backward is :math:`\exp(\text{log\_probs}) - \gamma`,
  the gradient with respect to the logits before ``log_softmax``, not the
  derivative with respect to ``log_probs``; reproduced from the posteriors.

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

import functools
import math

import jax
import jax.numpy as jnp

from jaxloss import _base, _ctc, _regression

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
    "ctc_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
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
     \ \text{(also where } v < \epsilon),

  evaluated as :func:`jaxloss.gaussian_nll` evaluates them (never through
  :math:`(x - y)^2 / \hat v^2`, which is ``0 * inf = NaN`` at :math:`x = y` for
  :math:`\hat v < 10^{-19}` in float32, e.g. with ``eps=1e-30``; PyTorch's own
  gradient is :math:`1/(2\hat v)` there).

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
  loss = _regression._gaussian_var_core(x - t, vc)  # pylint: disable=protected-access
  if full:
    loss = loss + 0.5 * math.log(2.0 * math.pi)
  loss = _base.nan_where(jnp.broadcast_to(negative, loss.shape), loss)
  return _reduce(loss, reduction)


# --------------------------------------------------------------------------
# CTC
# --------------------------------------------------------------------------
@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _torch_ctc_nll(log_probs, frame_valid, labels, label_len, blank, zero_infinity):
  return _ctc._nll(log_probs, frame_valid, labels, label_len, blank, zero_infinity)


@_torch_ctc_nll.defjvp
def _torch_ctc_nll_jvp(blank, zero_infinity, primals, tangents):
  log_probs, frame_valid, labels, label_len = primals
  keep = jnp.ones(log_probs.shape[:1], bool)
  nll, g = _ctc._nll_and_grad(log_probs, frame_valid, labels, label_len, keep, blank, zero_infinity)
  return nll, jnp.sum(g * tangents[0], axis=(1, 2))


def _torch_ctc_targets(targets, target_lengths, batch):
  """``[B, N]`` padded targets from PyTorch's padded ``(B, S)`` or concatenated ``(sum(target_lengths),)`` form."""
  if targets.ndim == 2:
    if targets.shape[0] != batch:
      raise ValueError(f"targets must be (B, S) with B = {batch}, got targets.shape={targets.shape}.")
    return targets
  if targets.ndim != 1:
    raise ValueError(f"targets must be (B, S) or concatenated (sum(target_lengths),), got shape {targets.shape}.")
  try:
    n = int(max(jnp.max(target_lengths, initial=0), 0))  # concrete lengths: the longest target
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
    n = targets.shape[0]  # traced lengths: every target could be the whole array
  starts = jnp.cumsum(target_lengths) - target_lengths
  idx = starts[:, None] + jnp.arange(n, dtype=starts.dtype)[None, :]
  if targets.shape[0] == 0:
    return jnp.zeros((batch, n), targets.dtype)
  return jnp.take(targets, jnp.clip(idx, 0, targets.shape[0] - 1), axis=0)


def ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    *,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> jax.Array:
  r"""``torch.nn.functional.ctc_loss`` (the native CPU/CUDA kernel): values and gradients.

  PyTorch's conventions, which differ from :func:`jaxloss.ctc_loss`:

  * ``log_probs`` is time-major ``(T, B, C)`` (or unbatched ``(T, C)``) and
    used **as given**: no log-softmax inside (pass ``log_softmax`` output), and
    the value is not clamped at 0;
  * ``targets`` is padded ``(B, S)`` or concatenated
    ``(sum(target_lengths),)``; lengths instead of paddings: frame
    :math:`t` is valid for :math:`t <` ``input_lengths[b]``;
  * ``reduction="mean"`` is :math:`\operatorname{mean}_b(\ell_b / \max(L_b, 1))`;
  * the gradient with respect to ``log_probs`` is PyTorch's
    :math:`\exp(\texttt{log\_probs}_{t,k}) - \gamma_t(k)` (0 for
    :math:`t \ge` ``input_lengths[b]``), which is the gradient with respect
    to the *logits* when ``log_probs = log_softmax(logits)`` (the log-softmax
    backward then passes it through unchanged, since it sums to 0 over
    :math:`k`), not the partial derivative :math:`-\gamma_t(k)` with respect to
    ``log_probs`` itself;
  * an infeasible row is ``inf`` with a NaN gradient on its valid frames, or
    0 with a zero gradient under ``zero_infinity=True``.

  Where PyTorch raises at run time (a length out of range, a target class
  out of ``[0, C)``), the affected row is NaN (a checkify error inside
  :func:`jaxloss.runtime_checks`); a target equal to ``blank`` (which
  PyTorch does not check) is treated the same way. bfloat16/float16 are
  computed in float32.
  """
  lp, dtype = _base.as_predictions("log_probs", log_probs)
  unbatched = lp.ndim == 2
  if unbatched:
    lp = lp[:, None, :]
  if lp.ndim != 3:
    raise ValueError(f"log_probs must be (T, B, C) or (T, C), got log_probs.shape={lp.shape}.")
  t_max, batch, n_classes = lp.shape
  blank = _ctc._check_blank_id(blank, n_classes)
  tgt = _base.as_integer_labels("targets", targets)
  in_len = _base.as_integer_labels("input_lengths", input_lengths).reshape(-1)
  tg_len = _base.as_integer_labels("target_lengths", target_lengths).reshape(-1)
  if unbatched:
    tgt = tgt[None, :]
  if in_len.shape != (batch,) or tg_len.shape != (batch,):
    raise ValueError(f"input_lengths and target_lengths must have B = {batch} entries, got "
                     f"{in_len.shape} and {tg_len.shape}.")
  labels = _torch_ctc_targets(tgt, tg_len, batch)
  n = labels.shape[1]
  bad_len = (in_len < 0) | (in_len > t_max) | (tg_len < 0) | (tg_len > n)
  _base.runtime_check(~bad_len, f"input_lengths must lie in [0, {t_max}] and target_lengths in [0, {n}].")
  frame_pad = _ctc.paddings_from_lengths(jnp.clip(in_len, 0, t_max), t_max, dtype=jnp.int32)
  label_pad = _ctc.paddings_from_lengths(jnp.clip(tg_len, 0, n), n, dtype=jnp.int32)
  # blank at index 0 internally: the core's blank_id is static, PyTorch's ``blank`` too
  frame_valid, labels, label_len, bad_row = _ctc._prepare(frame_pad, labels, label_pad, n_classes, blank)
  x = jnp.swapaxes(lp, 0, 1)  # (B, T, C)
  x = jnp.where(frame_valid[:, :, None], x, jnp.zeros((), dtype))  # frames past input_lengths are never read
  loss = _torch_ctc_nll(x, frame_valid, labels, label_len, blank, bool(zero_infinity))
  loss = _base.nan_where(bad_row | bad_len, loss)
  if reduction not in ("mean", "sum", "none"):
    raise ValueError(f"reduction must be one of ('mean', 'sum', 'none'), got {reduction!r}.")
  if reduction == "none":
    return loss[0] if unbatched else loss
  if reduction == "sum":
    return jnp.sum(loss)
  return jnp.mean(loss / jnp.maximum(tg_len, 1).astype(dtype))


# --------------------------------------------------------------------------
# multi-class and multi-label margin losses
# --------------------------------------------------------------------------
def _margin_input(input):  # pylint: disable=redefined-builtin
  x, dtype = _base.as_predictions("input", input)
  if x.ndim not in (1, 2):
    raise ValueError(f"input must be (C,) or (N, C), got input.shape={x.shape}.")
  return x, dtype


def multi_margin_loss(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.multi_margin_loss``: Weston-Watkins, divided by :math:`C`.

  .. math::
     \ell_n = \frac{w_{y_n}}{C} \sum_{i \ne y_n} \max(0, m - x_{n, y_n} + x_{n, i})^p,

  with the class weight outside the power (as ATen computes it; PyTorch's
  documentation puts it inside the ``max``, which differs for ``p=2``), and
  ``"mean"`` the plain mean over the rows (not divided by the weights).
  ``input`` is ``(N, C)`` or ``(C,)``; class indices out of range give NaN
  (PyTorch raises). Native :func:`jaxloss.multi_margin_loss` omits the
  :math:`1/C` and takes a weighted mean.
  """
  from jaxloss._margin import multi_margin_loss as _native  # pylint: disable=g-import-not-at-top

  x, dtype = _margin_input(input)
  c = x.shape[-1]
  loss = _native(x, target, p=p, margin=margin, reduction="none") / c
  w = _class_weight(weight, c, dtype)
  if w is not None:
    loss = loss * w[jnp.clip(jnp.asarray(target), 0, c - 1)]
  return _reduce(loss, reduction)


def multilabel_margin_loss(
    input: ArrayLike,  # pylint: disable=redefined-builtin
    target: ArrayLike,
    *,
    reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.multilabel_margin_loss`` with PyTorch's -1-terminated target format.

  ``target`` has ``input``'s shape and holds class indices; the target set of a
  row is its prefix before the first -1. With :math:`T` that prefix (a class
  listed twice counts twice, as in ATen) and :math:`\bar T` the classes not
  in it:

  .. math::
     \ell_n = \frac{1}{C} \sum_{j \in T} \sum_{i \in \bar T} \max(0, 1 - x_{n, j} + x_{n, i}).

  ``"mean"`` averages over the rows. Indices outside :math:`[-1, C)` in the
  prefix give NaN (PyTorch raises). Native
  :func:`jaxloss.multilabel_margin_loss` takes a multi-hot target, omits the
  :math:`1/C` and has a ``margin`` option.
  """
  x, _ = _margin_input(input)
  t = _base.as_integer_labels("target", target)
  _base.check_same_shape("input", x, "target", t)
  c = x.shape[-1]
  valid = jnp.cumprod((t != -1).astype(jnp.int32), axis=-1) > 0
  bad_index = valid & ((t < 0) | (t >= c))
  _base.runtime_check(~bad_index, "target must hold class indices in [0, {c}) before its first -1; got {v}.",
                      c=jnp.asarray(c), v=_base.first_flagged(t, bad_index))
  # counts[..., j]: how often class j is listed in the prefix
  counts = jnp.sum(jax.nn.one_hot(jnp.where(valid, t, -1), c, dtype=x.dtype), axis=-2)
  non_target = (counts == 0).astype(x.dtype)
  h = jax.nn.relu(1.0 + (x[..., None, :] - x[..., :, None]))  # [..., j, i] = 1 - x_j + x_i
  loss = jnp.sum(counts[..., :, None] * non_target[..., None, :] * h, axis=(-2, -1)) / c
  loss = _base.nan_where(jnp.any(bad_index, axis=-1), loss)
  return _reduce(loss, reduction)


# --------------------------------------------------------------------------
# similarity and metric learning (issue 15)
# --------------------------------------------------------------------------
__all__ += ["cosine_similarity", "cosine_embedding_loss", "margin_ranking_loss", "hinge_embedding_loss"]


def _norm2(x, dim):
  """``linalg.vector_norm(x, 2, dim)`` with PyTorch's backward (0 at the zero vector)."""
  sq = jnp.sum(jnp.square(x), axis=dim, keepdims=True)
  pos = sq > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, jnp.ones_like(sq))), jnp.zeros_like(sq))


def cosine_similarity(x1: ArrayLike, x2: ArrayLike, *, dim: int = 1, eps: float = 1e-8) -> jax.Array:
  r"""``torch.nn.functional.cosine_similarity``, backward included.

  PyTorch computes :math:`(x_1 / n_1)\cdot(x_2 / n_2)` with
  :math:`n_i = \max(\lVert x_i\rVert, \epsilon)`, the clamp applied in place under
  ``no_grad``: the backward treats the clamp as the identity. The value equals
  native :func:`jaxloss.cosine_similarity` (same rule), and so does the gradient
  except for :math:`0 < \lVert x_i\rVert < \epsilon`, where PyTorch adds
  :math:`-x_i (\hat x_i\cdot\hat x_j)/(\epsilon \lVert x_i\rVert)` to the
  derivative :math:`\hat x_j/\epsilon` of its own forward. Note ``dim=1`` (PyTorch's default).
  """
  a, dtype = _base.as_predictions("x1", x1)
  b = _base.as_targets("x2", x2, dtype)
  _base.check_same_shape("x1", a, "x2", b)
  na = _clamp_min_straight_through(_norm2(a, dim), jnp.asarray(eps, dtype))
  nb = _clamp_min_straight_through(_norm2(b, dim), jnp.asarray(eps, dtype))
  return jnp.sum((a / na) * (b / nb), axis=dim)


def _clamp0_pass(z):
  """``clamp_min(z, 0)`` with PyTorch's backward: the gradient passes where ``z >= 0``."""
  return jnp.where(z >= 0, z, jnp.zeros_like(z))


def cosine_embedding_loss(
    input1: ArrayLike, input2: ArrayLike, target: ArrayLike, *, margin: float = 0.0, reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.cosine_embedding_loss`` (vectors along the last dimension).

  :math:`c = x_1\cdot x_2 / \sqrt{(\lVert x_1\rVert^2 + \epsilon)(\lVert x_2\rVert^2 + \epsilon)}`
  with ATen's float32 :math:`\epsilon = 10^{-12}` (9.99999996e-13);
  the loss is :math:`1 - c` where ``target == 1``, :math:`\max(0, c - m)` where
  ``target == -1`` (gradient passed at :math:`c = m`), and 0 for any other
  target value. Native :func:`jaxloss.cosine_embedding_loss` uses the
  zero-vector rule :math:`\max(\lVert x\rVert, 10^{-8})` and NaN for other labels.
  """
  a, dtype = _base.as_predictions("input1", input1)
  b = _base.as_targets("input2", input2, dtype)
  _base.check_same_shape("input1", a, "input2", b)
  y = _base.as_targets("target", target, dtype)
  _base.check_same_shape("target", y, "input1 without its last dimension", a[..., 0])
  tiny = jnp.asarray(_BCE_EPS, dtype)  # ATen's EPSILON = 1e-12 is a float32 constant, as in BCE's backward
  c = jnp.sum(a * b, -1) / jnp.sqrt((jnp.sum(a * a, -1) + tiny) * (jnp.sum(b * b, -1) + tiny))
  zero = jnp.zeros_like(c)
  loss = jnp.where(y == 1, 1.0 - c, zero) + jnp.where(y == -1, _clamp0_pass(c - margin), zero)
  return _reduce(loss, reduction)


def margin_ranking_loss(
    input1: ArrayLike, input2: ArrayLike, target: ArrayLike, *, margin: float = 0.0, reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.margin_ranking_loss``: :math:`\max(0, -y(x_1 - x_2) + m)`.

  Any ``target`` value is used as given (native :func:`jaxloss.margin_ranking_loss`
  requires :math:`\pm 1`), and the gradient passes at the hinge.
  """
  a, dtype = _base.as_predictions("input1", input1)
  b = _base.as_targets("input2", input2, dtype)
  _base.check_same_shape("input1", a, "input2", b)
  y = _base.as_targets("target", target, dtype)
  _base.check_same_shape("input1", a, "target", y)
  return _reduce(_clamp0_pass(-y * (a - b) + margin), reduction)


def hinge_embedding_loss(  # pylint: disable=redefined-builtin
    input: ArrayLike, target: ArrayLike, *, margin: float = 1.0, reduction: str = "mean",
) -> jax.Array:
  r"""``torch.nn.functional.hinge_embedding_loss``.

  :math:`\ell = [y \ne -1]\,x + [y \ne 1]\max(0, m - x)`: :math:`x` for
  :math:`y = 1`, :math:`\max(0, m - x)` for :math:`y = -1`, both for any other
  value; the gradient passes at :math:`x = m`. Native
  :func:`jaxloss.hinge_embedding_loss` gives NaN for labels other than :math:`\pm 1`.
  """
  x, t, _ = _pair(input, target)
  zero = jnp.zeros_like(x)
  return _reduce(jnp.where(t != 1, _clamp0_pass(margin - x), zero) + jnp.where(t != -1, x, zero), reduction)
