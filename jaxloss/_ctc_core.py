r"""The CTC forward-backward recursions (log space), shared by :func:`jaxloss.ctc_loss` and
:func:`jaxloss.compat.torch.ctc_loss`.

Notation (Graves et al. 2006). A label row :math:`l = (l_1, \dots, l_L)` is
extended with blanks to :math:`l' = (\phi, l_1, \phi, l_2, \dots, l_L, \phi)`
of length :math:`S = 2L + 1`; a padded batch uses :math:`S = 2N + 1` states
per row, and the states above :math:`2L` (padded labels) are never reached
backwards from the final states, so they carry no posterior mass. With
:math:`y_t(k)` the emission probability of class :math:`k` at frame
:math:`t` (log :math:`\lambda_t(s) = \log y_t(l'_s)`):

* forward, pre-emission: :math:`\hat\alpha_t(s) = \alpha_{t-1}(s) + \alpha_{t-1}(s-1)
  + [\text{skip}_s]\,\alpha_{t-1}(s-2)`, :math:`\alpha_t(s) = \hat\alpha_t(s)\,y_t(l'_s)`,
  with :math:`\alpha_{-1} = e_0` (a virtual step before the first frame whose
  transitions reach exactly the two start states 0 and 1);
* backward, emission included: :math:`\beta_t(s) = y_t(l'_s)\,[\beta_{t+1}(s) + \beta_{t+1}(s+1)
  + [\text{skip}_{s+2}]\,\beta_{t+1}(s+2)]`, with :math:`\beta_T = e_{2L}` (whose
  backward transitions reach exactly the two final states :math:`2L` and :math:`2L-1`);
* :math:`\text{skip}_s` (the move :math:`s-2 \to s`) holds for a label state
  :math:`s = 2n+1` whose label differs from the previous one, :math:`l_n \ne l_{n-1}`
  (the repeat rule: a blank is required between equal labels);
* :math:`p(l \mid x) = \alpha_{T-1}(2L) + \alpha_{T-1}(2L-1)`, and the posterior occupancy of
  state :math:`s` at frame :math:`t` is :math:`\hat\alpha_t(s)\beta_t(s) / p(l \mid x)` (no
  division by :math:`y_t(l'_s)`, so masked :math:`-\infty` logits give 0, not NaN);
* :math:`\gamma_t(k) = \sum_{s : l'_s = k} \hat\alpha_t(s)\beta_t(s) / p`.

A padded frame is skipped: both recursions carry their vector through it
unchanged, and its occupancy is 0. Everything is in log space; one
``lax.scan`` over the frames runs :math:`\alpha` forwards and :math:`\beta`
backwards in the same step (vectorized over ``[B, S]``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

_NEG_INF = -jnp.inf
# lax.scan unroll of the recursions (1 measured as fast as 2 or 4 on CPU; see benchmarks/ctc.py)
_UNROLL = 1


def _shift(x: Array, k: int) -> Array:
  """``x`` shifted along axis 1 by ``k`` states (right for k > 0, left for k < 0), filled with -inf."""
  b, s = x.shape
  fill = jnp.full((b, abs(k)), _NEG_INF, x.dtype)
  if k > 0:
    return jnp.concatenate([fill, x[:, :max(s - k, 0)]], axis=1)[:, :s]
  return jnp.concatenate([x[:, min(-k, s):], fill], axis=1)[:, :s]


def _lse3(a: Array, b: Array, c: Array) -> Array:
  """``log(exp a + exp b + exp c)`` elementwise, -inf when all three are -inf."""
  m = jnp.maximum(jnp.maximum(a, b), c)
  m = jnp.where(m == _NEG_INF, jnp.zeros((), m.dtype), m)
  return m + jnp.log(jnp.exp(a - m) + jnp.exp(b - m) + jnp.exp(c - m))


def _forward_step(a: Array, skip: Array) -> Array:
  return _lse3(a, _shift(a, 1), jnp.where(skip, _shift(a, 2), _NEG_INF))


def _backward_step(b: Array, skip_next: Array) -> Array:
  return _lse3(b, _shift(b, -1), jnp.where(skip_next, _shift(b, -2), _NEG_INF))


def extended_labels(labels: Array, label_valid: Array, blank_id: int) -> tuple[Array, Array, Array]:
  """``(ext [B, S], skip [B, S], skip_next [B, S])`` for right-padded ``labels [B, N]``.

  Padded (and, for safety, any) label positions outside ``label_valid`` are
  replaced by the blank, so that ``ext`` is always a valid class index when
  ``labels`` are.
  """
  b, n = labels.shape
  lab = jnp.where(label_valid, labels, blank_id).astype(jnp.int32)
  blanks = jnp.full((b, n + 1), blank_id, jnp.int32)
  ext = jnp.zeros((b, 2 * n + 1), jnp.int32).at[:, 0::2].set(blanks).at[:, 1::2].set(lab)
  differs = jnp.concatenate([jnp.zeros((b, min(n, 1)), bool), lab[:, 1:] != lab[:, :-1]], axis=1)
  skip = jnp.zeros((b, 2 * n + 1), bool).at[:, 1::2].set(differs)
  skip_next = jnp.concatenate([skip[:, 2:], jnp.zeros((b, min(2, 2 * n + 1)), bool)], axis=1)
  return ext, skip, skip_next


def _start(b: int, s: int, dtype) -> Array:
  return jnp.where(jnp.arange(s)[None, :] == 0, jnp.zeros((), dtype), jnp.full((b, s), _NEG_INF, dtype))


def _end(label_len: Array, s: int, dtype) -> Array:
  states = jnp.arange(s, dtype=label_len.dtype)[None, :]
  return jnp.where(states == 2 * label_len[:, None], jnp.zeros((), dtype), _NEG_INF)


def _log_likelihood(a: Array, label_len: Array) -> Array:
  """:math:`\\log p = \\log(\\alpha(2L) + \\alpha(2L - 1))` from the forward vector after the last frame."""
  s = jnp.arange(a.shape[1], dtype=label_len.dtype)[None, :]
  final = (s == 2 * label_len[:, None]) | (s == 2 * label_len[:, None] - 1)
  return jax.nn.logsumexp(jnp.where(final, a, _NEG_INF), axis=1)


def forward(lpe: Array, frame_valid: Array, skip: Array, label_len: Array, *, unroll: int = _UNROLL) -> Array:
  """:math:`\\log p(l \\mid x)` per row from the emission log-probabilities ``lpe [B, T, S]``.

  Only the forward recursion (the value without derivative); the same
  arithmetic as the forward half of :func:`forward_backward`, so both give the
  same value.
  """
  b, _, s = lpe.shape

  def body(a, x):
    lp, v = x
    return jnp.where(v[:, None], _forward_step(a, skip) + lp, a), None

  a, _ = lax.scan(body, _start(b, s, lpe.dtype), (jnp.swapaxes(lpe, 0, 1), frame_valid.T), unroll=unroll)
  return _log_likelihood(a, label_len)


def forward_backward(lpe: Array, frame_valid: Array, skip: Array, skip_next: Array, label_len: Array, *,
                     unroll: int = _UNROLL) -> tuple[Array, Array]:
  """``(log_p [B], log_occ [T, B, S])``: the log-likelihood and :math:`\\log \\hat\\alpha_t(s)\\beta_t(s)`.

  One scan: step :math:`i` advances :math:`\\alpha` to frame :math:`i` and
  :math:`\\beta` to frame :math:`T-1-i` (vectorized ``[B, S]`` updates, half
  the loop trips of two scans). Padded frames hold garbage that the caller
  masks. Normalize ``log_occ`` over the states per frame
  (:math:`\\sum_s \\hat\\alpha_t(s)\\beta_t(s) = p` on every valid frame)
  rather than subtracting ``log_p``: both terms carry rounding errors that
  grow with :math:`|\\log p|` (their magnitude), but mostly in common over the
  states of a frame, where the per-frame normalization cancels them.
  (Rescaling :math:`\\alpha, \\beta` at every step would be about 10x more
  accurate in float32 at B=32, T=200, but cost ~15% more time; per-frame
  normalization is already 4x more accurate than optax's autodiff there.)
  """
  b, _, s = lpe.shape
  lpe_t = jnp.swapaxes(lpe, 0, 1)  # [T, B, S]
  valid_t = frame_valid.T  # [T, B]

  def body(carry, x):
    a, bt = carry
    lp_f, v_f, lp_b, v_b = x
    a_hat = _forward_step(a, skip)
    a = jnp.where(v_f[:, None], a_hat + lp_f, a)
    bt = jnp.where(v_b[:, None], _backward_step(bt, skip_next) + lp_b, bt)
    return (a, bt), (a_hat, bt)

  init = (_start(b, s, lpe.dtype), _end(label_len, s, lpe.dtype))
  (a, _), (a_hat, beta_rev) = lax.scan(body, init, (lpe_t, valid_t, lpe_t[::-1], valid_t[::-1]), unroll=unroll)
  return _log_likelihood(a, label_len), a_hat + beta_rev[::-1]
