r"""Sequence losses: connectionist temporal classification (CTC).

Shared conventions (``weights``, ``where``, ``reduction``, dtypes, run-time
values) are documented once in :mod:`jaxloss._base`; the unreduced CTC loss
has one value per sequence (shape ``[B]``). The recursions are in
:mod:`jaxloss._ctc_core`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base
from jaxloss import _ctc_core as core
from jaxloss._spec import EdgeCase, LossSpec

__all__ = ["ctc_loss", "paddings_from_lengths"]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


# --------------------------------------------------------------------------
# the differentiable core: value and the posterior-based derivative
# --------------------------------------------------------------------------
def _gamma(log_occ: Array, frame_valid: Array, labels: Array, num_classes: int, blank_id: int) -> Array:
  r""":math:`\gamma_t(k) = \sum_{s : l'_s = k} \hat\alpha_t(s)\beta_t(s) / p`, shape ``[B, T, K]``.

  ``log_occ [T, B, S]`` from :func:`jaxloss._ctc_core.forward_backward`, known
  up to a constant per frame: normalized here over the states
  (:math:`\sum_s \hat\alpha_t(s)\beta_t(s) = p` on each valid frame), which
  is more accurate than subtracting :math:`\log p` (no :math:`O(T)` log
  magnitudes cancel). ``labels [B, N]`` have padded positions replaced by the
  blank (their states carry no mass). Blank states (even :math:`s`) are summed;
  label states (odd :math:`s`) go to their classes with a one-hot matmul.
  An infeasible row (all :math:`-\infty`) gives NaN.
  """
  m = jnp.max(log_occ, axis=2, keepdims=True)
  e = jnp.exp(log_occ - m)
  occ = e / jnp.sum(e, axis=2, keepdims=True)  # [T, B, S]
  occ = jnp.where(frame_valid.T[:, :, None], occ, jnp.zeros((), occ.dtype))
  occ_blank = jnp.sum(occ[:, :, 0::2], axis=2).T  # [B, T]
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=occ.dtype)  # [B, N, K]
  gamma = jnp.einsum("tbn,bnk->btk", occ[:, :, 1::2], one_hot)
  blank = jax.nn.one_hot(blank_id, num_classes, dtype=occ.dtype)
  return gamma + occ_blank[:, :, None] * blank


def _nll_and_grad(log_probs: Array, frame_valid: Array, labels: Array, label_len: Array, keep: Array,
                  blank_id: int, zero_infinity: bool) -> tuple[Array, Array]:
  r"""``(-log p [B], exp(log_probs) - gamma [B, T, K])``, the gradient 0 on padded frames and dropped rows.

  ``keep [B]``: rows whose gradient is kept (``where``); with ``zero_infinity``
  infinite rows are dropped too and their value is 0.
  """
  ext, skip, skip_next = core.extended_labels(labels, jnp.ones(labels.shape, bool), blank_id)
  lpe = jnp.take_along_axis(log_probs, ext[:, None, :], axis=2)
  log_p, log_occ = core.forward_backward(lpe, frame_valid, skip, skip_next, label_len)
  nll = -log_p
  gamma = _gamma(log_occ, frame_valid, labels, log_probs.shape[2], blank_id)
  g = jnp.exp(log_probs) - gamma
  if zero_infinity:
    infinite = jnp.isinf(nll)
    nll = jnp.where(infinite, jnp.zeros((), nll.dtype), nll)
    keep = keep & ~infinite
  keep_bt = keep[:, None] & frame_valid
  return nll, jnp.where(keep_bt[:, :, None], g, jnp.zeros((), g.dtype))


def _nll(log_probs, frame_valid, labels, label_len, blank_id, zero_infinity):
  ext, skip, _ = core.extended_labels(labels, jnp.ones(labels.shape, bool), blank_id)
  lpe = jnp.take_along_axis(log_probs, ext[:, None, :], axis=2)
  nll = -core.forward(lpe, frame_valid, skip, label_len)
  if zero_infinity:
    nll = jnp.where(jnp.isinf(nll), jnp.zeros((), nll.dtype), nll)
  return nll


@functools.partial(jax.custom_jvp, nondiff_argnums=(5, 6))
def _ctc_nll(logits, frame_valid, labels, label_len, keep, blank_id, zero_infinity):
  """Per-row CTC negative log-likelihood of ``logits`` (log-softmax inside); see :func:`ctc_loss`."""
  del keep
  return _clamp(_nll(jax.nn.log_softmax(logits, axis=-1), frame_valid, labels, label_len, blank_id, zero_infinity))


@_ctc_nll.defjvp
def _ctc_nll_jvp(blank_id, zero_infinity, primals, tangents):
  logits, frame_valid, labels, label_len, keep = primals
  dz = tangents[0]
  nll, g = _nll_and_grad(jax.nn.log_softmax(logits, axis=-1), frame_valid, labels, label_len, keep, blank_id,
                         zero_infinity)
  return _clamp(nll), jnp.sum(g * dz, axis=(1, 2))


def _clamp(nll: Array) -> Array:
  """max(nll, 0): removes the few-ulp negative values of a near-certain alignment (see ctc_loss)."""
  return jnp.maximum(nll, jnp.zeros((), nll.dtype))


# --------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------
def _check_blank_id(blank_id: Any, num_classes: int) -> int:
  if isinstance(blank_id, bool) or not isinstance(blank_id, (int, np.integer)):
    raise TypeError(f"blank_id must be a Python int (a static class index), got {blank_id!r}.")
  if not 0 <= int(blank_id) < num_classes:
    raise ValueError(f"blank_id must be in [0, {num_classes}) (logits.shape[-1] = {num_classes}), got {blank_id}.")
  return int(blank_id)


def _as_paddings(name: str, x: ArrayLike) -> Array:
  x = jnp.asarray(x)
  if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_):
    raise TypeError(f"{name} must be numeric or boolean (1 = padded, 0 = valid), got dtype {x.dtype}.")
  return x


def _check_shapes(logits: Array, logit_paddings: Array, labels: Array, label_paddings: Array) -> None:
  if logits.ndim != 3:
    raise ValueError(f"logits must be [B, T, K], got logits.shape={logits.shape}.")
  if logit_paddings.shape != logits.shape[:2]:
    raise ValueError(f"logit_paddings must be [B, T] = {logits.shape[:2]} (logits.shape={logits.shape}), got "
                     f"logit_paddings.shape={logit_paddings.shape}.")
  if labels.ndim != 2 or labels.shape[0] != logits.shape[0]:
    raise ValueError(f"labels must be [B, N] with B = {logits.shape[0]} (logits.shape={logits.shape}), got "
                     f"labels.shape={labels.shape}.")
  if label_paddings.shape != labels.shape:
    raise ValueError(f"label_paddings must have labels' shape {labels.shape}, got "
                     f"label_paddings.shape={label_paddings.shape}.")


def _binary_flags(name: str, p: Array) -> Array:
  """Flags padding entries that are neither 0 nor 1 (NaN included)."""
  bad = ~((p == 0) | (p == 1))
  _base.runtime_check(~bad, f"{name} must be 0 (valid) or 1 (padded); got values in [{{lo}}, {{hi}}].",
                      lo=_base.value_min(p), hi=_base.value_max(p))
  return bad


def _prepare(logit_paddings: Array, labels: Array, label_paddings: Array, num_classes: int,
             blank_id: int) -> tuple[Array, Array, Array, Array]:
  """``(frame_valid [B, T], labels [B, N] (padded -> blank), label_len [B], bad_row [B])``.

  A row is invalid (NaN loss) when a padding is not 0/1, the label paddings
  are not right-padded (0...0 1...1), or an unpadded label is outside
  ``[0, K)`` or equals ``blank_id``.
  """
  bad_frames = _binary_flags("logit_paddings", logit_paddings)
  bad_labels = _binary_flags("label_paddings", label_paddings)
  frame_valid = logit_paddings == 0
  label_valid = label_paddings == 0
  not_right = label_valid[:, 1:] & ~label_valid[:, :-1]
  _base.runtime_check(~not_right, "label_paddings must be right-padded (each row 0...0 then 1...1).")
  out_of_range = label_valid & ((labels < 0) | (labels >= num_classes) | (labels == blank_id))
  _base.runtime_check(
      ~out_of_range,
      f"labels must be class indices in [0, {num_classes}) other than blank_id={blank_id}; got {{v}}.",
      v=_base.first_flagged(labels, out_of_range))
  bad_row = (jnp.any(bad_frames, axis=1) | jnp.any(bad_labels, axis=1) | jnp.any(not_right, axis=1)
             | jnp.any(out_of_range, axis=1))
  label_len = jnp.sum(label_valid, axis=1, dtype=jnp.int32)
  labels = jnp.where(label_valid & ~out_of_range, labels, blank_id).astype(jnp.int32)
  return frame_valid, labels, label_len, bad_row


def _inputs(logits, logit_paddings, labels, label_paddings, blank_id, where):
  """The shared prologue: casts, shape checks, run-time validity, sanitized logits."""
  z, dtype = _base.as_predictions("logits", logits)
  labels = _base.as_integer_labels("labels", labels)
  logit_paddings = _as_paddings("logit_paddings", logit_paddings)
  label_paddings = _as_paddings("label_paddings", label_paddings)
  _check_shapes(z, logit_paddings, labels, label_paddings)
  num_classes = z.shape[2]
  if num_classes == 0:
    raise ValueError(f"logits need at least one class (the blank), got logits.shape={z.shape}.")
  blank_id = _check_blank_id(blank_id, num_classes)
  mask = _base.prepare_where(where, z.shape[:1])
  frame_valid, labels, label_len, bad_row = _prepare(logit_paddings, labels, label_paddings, num_classes, blank_id)
  keep = jnp.ones(z.shape[:1], bool) if mask is None else mask
  # padded frames and masked rows: their logits never enter the arithmetic (a padded frame of -inf or NaN
  # would otherwise give NaN through the log-softmax, and its gradient 0 * NaN)
  z = jnp.where(frame_valid[:, :, None] & keep[:, None, None], z, jnp.zeros((), dtype))
  return z, frame_valid, labels, label_len, bad_row, keep, mask, blank_id, dtype


def _check_flags(zero_infinity: Any, normalize_by_label_length: Any) -> None:
  for name, v in (("zero_infinity", zero_infinity), ("normalize_by_label_length", normalize_by_label_length)):
    if not isinstance(v, (bool, np.bool_)):
      raise TypeError(f"{name} must be a Python bool, got {v!r}.")


def _per_label(loss: Array, label_len: Array, normalize_by_label_length: bool) -> Array:
  if not normalize_by_label_length:
    return loss
  return loss / jnp.maximum(label_len, 1).astype(loss.dtype)


# --------------------------------------------------------------------------
# the public loss
# --------------------------------------------------------------------------
def ctc_loss(
    logits: ArrayLike,
    logit_paddings: ArrayLike,
    labels: ArrayLike,
    label_paddings: ArrayLike,
    *,
    blank_id: int = 0,
    zero_infinity: bool = False,
    normalize_by_label_length: bool = False,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> Array:
  r"""Connectionist temporal classification loss, :math:`-\log p(l \mid x)` per sequence.

  Drop-in for ``optax.ctc_loss`` (same argument order, shapes and padding
  convention), with an exact infeasible value, a loss that is never negative
  and a closed-form, posterior-based derivative.

  .. math::
     \ell_b = -\log p(l \mid x) = -\log \sum_{\pi \in \mathcal B^{-1}(l)}
       \prod_{t} y_t(\pi_t), \qquad y_t = \operatorname{softmax}(z_t),

  where :math:`\mathcal B` removes repeated symbols and then blanks, the sum
  runs over the alignments :math:`\pi` of the valid frames, and :math:`l` is
  the unpadded label row. It is computed by the forward recursion over the
  blank-extended labels :math:`l' = (\phi, l_1, \phi, \dots, l_L, \phi)`:
  :math:`\alpha_t(s) = y_t(l'_s)\,[\alpha_{t-1}(s) + \alpha_{t-1}(s-1) +
  [l'_s \ne \phi,\ l'_s \ne l'_{s-2}]\,\alpha_{t-1}(s-2)]` (the repeat rule: a
  blank must separate equal labels), :math:`p = \alpha_{T-1}(2L) + \alpha_{T-1}(2L-1)`,
  in log space (details in :mod:`jaxloss._ctc_core`).

  Derivative (by hand; Graves et al. 2006, eq. 16). With the backward
  recursion :math:`\beta` (emission at :math:`t` included) the posterior
  occupancy of class :math:`k` at frame :math:`t` is
  :math:`\gamma_t(k) = \frac{1}{p}\sum_{s : l'_s = k} \alpha_t(s)\beta_t(s) / y_t(k)`, and

  .. math::
     \frac{\partial \ell_b}{\partial z_{t,k}} = y_t(k) - \gamma_t(k)

  on valid frames, 0 on padded frames. It is implemented from these
  recursions (its own backward pass), not by differentiating the forward
  scan: the function is a :func:`jax.custom_jvp` whose tangent is
  :math:`\sum_{t,k} (y_t(k) - \gamma_t(k))\,\dot z_{t,k}`, so forward mode
  works, and reverse mode keeps only that ``[B, T, K]`` gradient (no taped
  scan; :math:`O(B\,T\,(2N+1))` working memory for :math:`\alpha, \beta`).
  Second derivatives are not provided (differentiating twice treats the
  posterior as a constant).

  Speed and accuracy (``benchmarks/ctc.py``, CPU, B=32, T=200, K=64, N=40,
  float32, interleaved runs on a shared 2-core host at load 12-16):
  ``value_and_grad`` took 0.82-0.85x optax's time and the value alone 0.47-0.51x; the
  float32 gradient was within 2.1e-06 of float64, optax's within 9.0e-06.

  Semantics:

  * **Padding.** ``logit_paddings[b, t] = 1`` skips frame :math:`t` (any
    pattern, as in optax; its logits are never read, so ``-inf``/NaN there is
    harmless, and its gradient is 0). ``label_paddings`` must be right-padded
    (``0...0 1...1`` per row); :math:`L_b` is the number of zeros.
  * **Infeasible** rows (:math:`p = 0`: fewer valid frames than
    :math:`L_b` plus the number of adjacent repeats, or a needed class masked
    with a ``-inf`` logit) give :math:`+\infty` and a NaN gradient, as in
    PyTorch (optax gives about :math:`10^5` from its ``log_epsilon``). With
    ``zero_infinity=True`` they give 0 and a zero gradient. ``where=False``
    on a row gives 0 and a zero gradient either way (a zero *weight* does not:
    :math:`0 \cdot \infty` is NaN).
  * **Masked classes**: ``-inf`` logits are exact (probability 0, gradient 0).
  * **Never negative.** :math:`p \le 1` in exact arithmetic, but when one
    alignment has probability within a few ulps of 1, ``log_softmax`` rounds
    its log-probabilities to exactly 0 while the other alignments keep their
    tiny mass, and the computed :math:`-\log p` can come out a few ulps below 0
    (optax 0.2.8 returns -8.3e-08 in float32; a downstream ``log(loss)`` is
    then NaN). The value is therefore clamped at 0: ``max(-log p, 0)``, an
    error of at most those few ulps; the derivative is the closed form above,
    not the clamp's.

  Args:
    logits: ``[B, T, K]`` floating, unnormalized scores (log-softmax is taken
      over ``K`` inside). bfloat16/float16 are computed in float32.
    logit_paddings: ``[B, T]``, 1 for padded frames, 0 for valid ones (float,
      int or bool).
    labels: ``[B, N]`` integer class indices in ``[0, K)``, never ``blank_id``
      where unpadded.
    label_paddings: ``[B, N]``, 1 for padded labels, 0 for valid ones,
      right-padded. Build both paddings from lengths with
      :func:`paddings_from_lengths`.
    blank_id: the blank's class index (a static int in ``[0, K)``).
    zero_infinity: infeasible rows give 0 and a zero gradient instead of
      :math:`+\infty` and NaN (PyTorch's ``zero_infinity``).
    normalize_by_label_length: divide each row's loss by
      :math:`\max(L_b, 1)` before weighting and reduction. With the default
      ``reduction="mean"`` this is PyTorch's ``reduction="mean"``
      (``mean_b(loss_b / max(L_b, 1))``); the default (``False``) with
      ``"mean"`` is optax's ``mean(ctc_loss(...))``.
    weights, where, reduction: see :mod:`jaxloss._base` (one value per row,
      shape ``[B]``).

  Returns:
    The reduced loss, or with ``reduction="none"`` one value per row ``[B]``
    (float32, or float64 for float64 logits).

  Raises:
    ValueError: on shapes that are not ``[B, T, K]``, ``[B, T]``, ``[B, N]``,
      ``[B, N]``, or ``blank_id`` out of range.
    TypeError: on non-floating logits or non-integer labels.

  Run-time values: a row whose paddings are not 0/1, whose label paddings are
  not right-padded, or whose unpadded labels are out of ``[0, K)`` or equal to
  ``blank_id`` is NaN (a checkify error inside :func:`jaxloss.runtime_checks`).

  References:
    Graves, Fernández, Gomez and Schmidhuber, `Connectionist temporal
    classification: labelling unsegmented sequence data with recurrent neural
    networks <https://doi.org/10.1145/1143844.1143891>`_, ICML 2006 (eqs. 6-16).
    Graves, *Supervised Sequence Labelling with Recurrent Neural Networks*,
    Springer 2012, ch. 7.
  """
  _check_flags(zero_infinity, normalize_by_label_length)
  z, frame_valid, labels, label_len, bad_row, keep, mask, blank_id, _ = _inputs(
      logits, logit_paddings, labels, label_paddings, blank_id, where)
  loss = _ctc_nll(z, frame_valid, labels, label_len, keep, blank_id, bool(zero_infinity))
  loss = _base.nan_where(bad_row, _per_label(loss, label_len, bool(normalize_by_label_length)))
  return _base.reduce_loss(loss, weights=weights, where=mask, reduction=reduction)


def paddings_from_lengths(lengths: ArrayLike, max_length: int, *, dtype: Any = jnp.float32) -> Array:
  """``[B, max_length]`` paddings (1 = padded) from ``[B]`` lengths, for :func:`ctc_loss`.

  ``paddings[b, i] = 1`` where ``i >= lengths[b]``, else 0: right padding, as
  ``ctc_loss`` expects for labels (and accepts for frames). A length outside
  ``[0, max_length]`` (a run-time value) makes its whole row NaN when
  ``dtype`` is floating, so that ``ctc_loss`` returns NaN for that row
  instead of silently truncating (a checkify error inside
  :func:`jaxloss.runtime_checks`).

  Args:
    lengths: ``[B]`` integer lengths.
    max_length: the padded length (a static int >= 0), e.g. ``logits.shape[1]``
      or ``labels.shape[1]``.
    dtype: the paddings' dtype (default float32, as optax uses).

  Returns:
    ``[B, max_length]`` array of 0/1 in ``dtype``.
  """
  if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 0:
    raise ValueError(f"max_length must be a static int >= 0, got {max_length!r}.")
  lengths = jnp.asarray(lengths)
  if not jnp.issubdtype(lengths.dtype, jnp.integer):
    raise TypeError(f"lengths must be integer, got dtype {lengths.dtype}.")
  if lengths.ndim != 1:
    raise ValueError(f"lengths must be [B], got lengths.shape={lengths.shape}.")
  bad = (lengths < 0) | (lengths > max_length)
  _base.runtime_check(~bad, f"lengths must lie in [0, {max_length}]; got {{v}}.", v=_base.first_flagged(lengths, bad))
  pad = (jnp.arange(max_length, dtype=lengths.dtype)[None, :] >= lengths[:, None]).astype(dtype)
  if jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
    pad = jnp.where(bad[:, None], jnp.asarray(jnp.nan, dtype), pad)
  return pad


# --------------------------------------------------------------------------
# registry: closed-form derivative, float64 reference, sampler, edge cases
# --------------------------------------------------------------------------
def _ctc_grad(logits, logit_paddings, labels, label_paddings, *, blank_id=0, zero_infinity=False,
              normalize_by_label_length=False):
  r"""The closed form :math:`\partial \sum_b \ell_b / \partial z_{t,k} = y_t(k) - \gamma_t(k)` (0 on padded
  frames; divided by :math:`\max(L_b, 1)` with ``normalize_by_label_length``), from the alpha/beta recursions."""
  z, frame_valid, labels, label_len, bad_row, keep, _, blank_id, _ = _inputs(
      logits, logit_paddings, labels, label_paddings, blank_id, None)
  _, g = _nll_and_grad(jax.nn.log_softmax(z, axis=-1), frame_valid, labels, label_len, keep, blank_id,
                       bool(zero_infinity))
  if normalize_by_label_length:
    g = g / jnp.maximum(label_len, 1).astype(g.dtype)[:, None, None]
  return jnp.where(bad_row[:, None, None], jnp.asarray(jnp.nan, g.dtype), g)


def _log_softmax64(z: np.ndarray) -> np.ndarray:
  m = np.max(z, axis=-1, keepdims=True)
  m = np.where(np.isfinite(m), m, 0.0)
  with np.errstate(divide="ignore"):
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def _row_reference(lp: np.ndarray, lab: np.ndarray, blank_id: int) -> float:
  """-log p(lab | frames) by the textbook forward recursion in float64 (Graves et al. 2006, eqs. 6-8)."""
  ext = [blank_id]
  for c in lab:
    ext += [int(c), blank_id]
  s_len = len(ext)
  alpha = np.full(s_len, -np.inf)
  if lp.shape[0] == 0:
    return 0.0 if len(lab) == 0 else np.inf
  alpha[0] = lp[0, ext[0]]
  if s_len > 1:
    alpha[1] = lp[0, ext[1]]
  for t in range(1, lp.shape[0]):
    new = np.full(s_len, -np.inf)
    for s in range(s_len):
      terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
      if s >= 2 and ext[s] != blank_id and ext[s] != ext[s - 2]:
        terms.append(alpha[s - 2])
      new[s] = np.logaddexp.reduce(terms) + lp[t, ext[s]]
    alpha = new
  return -float(np.logaddexp.reduce(alpha[max(s_len - 2, 0):]))


def _ctc_reference(logits, logit_paddings, labels, label_paddings, *, blank_id=0, zero_infinity=False,
                   normalize_by_label_length=False):
  """Independent float64 NumPy reference of the unreduced loss (row by row, valid frames only)."""
  z = np.asarray(logits, np.float64)
  fp, lp_, lab = np.asarray(logit_paddings), np.asarray(label_paddings), np.asarray(labels)
  out = np.empty(z.shape[0])
  with np.errstate(invalid="ignore", divide="ignore"):
    for b in range(z.shape[0]):
      valid = lp_[b] == 0
      ok = (np.all((fp[b] == 0) | (fp[b] == 1)) and np.all((lp_[b] == 0) | (lp_[b] == 1))
            and np.all(np.diff(valid.astype(int)) <= 0))
      row_labels = lab[b][valid]
      ok = ok and np.all((row_labels >= 0) & (row_labels < z.shape[2]) & (row_labels != blank_id))
      if not ok:
        out[b] = np.nan
        continue
      nll = _row_reference(_log_softmax64(z[b][fp[b] == 0]), row_labels, blank_id)
      if zero_infinity and np.isinf(nll):
        nll = 0.0
      out[b] = nll / max(len(row_labels), 1) if normalize_by_label_length else nll
  return out


def _sample(key, dtype, shape=(3, 6, 4)):
  """Random padded batch of feasible rows: logits ``[B, T, K]``, int32 paddings and labels.

  ``N = T // 5`` labels at most (at least 2, at most what the shortest row can
  align); labels drawn from ``[1, K - 1)`` (neither class 0 nor class ``K - 1``,
  so ``blank_id`` may be either), repeats included; frames right-padded to a
  length in ``[ceil(T / 2), T]``, labels to a length in ``[0, N]``.
  """
  b, t, k = shape
  min_frames = -(-t // 2)
  n = max(1, min(max(2, t // 5), (min_frames + 1) // 2))
  k1, k2, k3, k4 = jax.random.split(key, 4)
  logits = (2.0 * jax.random.normal(k1, shape, jnp.float32)).astype(dtype)
  frames = jax.random.randint(k2, (b,), min_frames, t + 1)
  lengths = jax.random.randint(k3, (b,), 0, n + 1)
  labels = jax.random.randint(k4, (b, n), 1, max(k - 1, 2))
  logit_paddings = paddings_from_lengths(frames, t, dtype=jnp.int32)
  label_paddings = paddings_from_lengths(lengths, n, dtype=jnp.int32)
  return logits, logit_paddings, jnp.where(label_paddings == 1, 0, labels).astype(jnp.int32), label_paddings


def _optax_ctc(logits, logit_paddings, labels, label_paddings):
  import optax  # pylint: disable=g-import-not-at-top

  with jax.numpy_dtype_promotion("standard"):
    dtype = _base.computation_dtype(jnp.asarray(logits).dtype)
    return optax.ctc_loss(jnp.asarray(logits).astype(dtype), jnp.asarray(logit_paddings).astype(dtype), labels,
                          jnp.asarray(label_paddings).astype(dtype))


_optax_ctc.__name__ = "optax.ctc_loss"


# Every edge case has the default sample's shapes (B, T, K, N) = (3, 6, 4, 2), so that the verifier
# compiles one program per config for all of them.
_EDGE_SHAPE = (3, 6, 4)


def _edge(logits, frames, labels, note, **kw):
  """An edge case from logits, per-row frame lengths (or explicit 0/1 padding rows) and label rows."""
  z = np.asarray(logits, np.float64)
  lab = np.zeros((z.shape[0], 2), np.int32)
  lp = np.ones((z.shape[0], 2), np.int32)
  for i, r in enumerate(labels):
    lab[i, :len(r)], lp[i, :len(r)] = r, 0
  if np.ndim(frames) == 1:
    fp = (np.arange(z.shape[1])[None, :] >= np.asarray(frames)[:, None]).astype(np.int32)
  else:
    fp = np.asarray(frames, np.int32)
  return EdgeCase((z, fp, lab, lp), note, **kw)


def _edge_logits(seed: int, scale: float = 1.5) -> np.ndarray:
  return scale * np.random.default_rng(seed).standard_normal(_EDGE_SHAPE)


def _confident_logits(margin: float = 10.0) -> np.ndarray:
  """One alignment per row has probability ~(1 - 3e-5)^T (a margin of 10 in every frame)."""
  z = np.zeros(_EDGE_SHAPE)
  for b, path in enumerate(((1, 1, 1, 2, 2, 2), (0, 2, 0, 1, 0, 0), (0, 0, 0, 0, 0, 0))):
    z[b, np.arange(6), path] = margin
  return z


def _masked_logits() -> np.ndarray:
  z = _edge_logits(3)
  z[0, :, 3] = -np.inf  # a class no label of the row uses, masked in every frame
  z[1, 2, 0] = -np.inf  # the blank masked at one frame
  z[2, :, 2] = -np.inf
  return z


def _padded_logits() -> np.ndarray:
  z = _edge_logits(4)
  z[0, 4:] = -np.inf  # padded frames of -inf and of huge values: never read
  z[1, 3:] = 1e4
  z[2, [2, 5]] = -np.inf
  return z


_EDGES = (
    _edge(_edge_logits(1), [3, 6, 2], [[1, 1], [2, 2], [1, 2]],
          "repeats: (1, 1) in exactly 3 frames and (1, 2) in 2 (one alignment each), (2, 2) in 6"),
    _edge(_edge_logits(2), [2, 1, 6], [[1, 1], [2, 1], [1, 2]],
          "infeasible rows ((1, 1) in 2 frames, 2 labels in 1), zero_infinity: 0 and a zero gradient",
          config={"zero_infinity": True}),
    _edge(_edge_logits(2), [2, 1, 6], [[1, 1], [2, 1], [1, 2]],
          "infeasible rows: +inf and a NaN gradient", in_domain=False),
    _edge(_padded_logits(), [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 1, 0, 0, 1]], [[1, 2], [3], []],
          "padded frames (-inf, 1e4; in the middle too), padded labels, an empty label row"),
    _edge(_masked_logits(), [6, 6, 6], [[1, 2], [2, 2], [1]], "masked -inf logits (a class; the blank at a frame)"),
    _edge(_confident_logits(), [6, 6, 6], [[1, 2], [2, 1], []], "confident alignments (margin 10 in every frame)"),
    _edge(_edge_logits(5), [6, 4, 5], [[0, 1], [2], [0, 0]], "blank_id = 3, labels include class 0",
          config={"blank_id": 3, "normalize_by_label_length": True}),
)

CTC_LOSS = LossSpec(
    name="ctc_loss",
    family="sequence",
    fn=ctc_loss,
    arg_names=("logits", "logit_paddings", "labels", "label_paddings"),
    grads={0: _ctc_grad},
    sample=_sample,
    reference=_ctc_reference,
    edge_cases=_EDGES,
    configs=({}, {"blank_id": 3, "normalize_by_label_length": True}),
    formula=r"-\log \sum_{\pi \in \mathcal{B}^{-1}(l)} \prod_t \mathrm{softmax}(z_t)_{\pi_t}",
    domain="logits real or -inf (not a whole valid frame); paddings 0/1, labels right-padded, not the blank",
    optax_peer=_optax_ctc,
)

SPECS = (CTC_LOSS,)
