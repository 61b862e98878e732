r"""GAN losses: discriminator (critic) and generator objectives.

Conventions specific to this module (the shared ones -- dtypes, ``weights``,
``where``, run-time errors -- are in :mod:`jaxloss._base`):

**Two terms.** A discriminator loss is the sum of a *real* term and a *fake*
term, each reduced over its own batch, as most GAN code writes it:

.. math::
   L_D = \operatorname{reduce}_i \ell_r(r_i) + \operatorname{reduce}_j \ell_f(f_j),

with ``r = real_logits`` (or scores) and ``f = fake_logits``. The two batches
may have different shapes. ``reduction`` applies *per term*:

* ``"mean"`` (default): mean of the real terms + mean of the fake terms
  (so at :math:`D = 1/2` the minimax loss is :math:`2 \ln 2 = \log 4`,
  :math:`\ln 2` per term; Goodfellow et al. 2014, :math:`C(G^*) = -\log 4`);
* ``"sum"``: sum of the real terms + sum of the fake terms;
* ``"none"``: the 1-D array ``concatenate([real_terms.ravel(), fake_terms.ravel()])``
  of size ``real.size + fake.size`` (each term already multiplied by its
  weights and zeroed where masked). Hence ``fn(r, f, reduction="none").sum()``
  equals ``fn(r, f, reduction="sum")``, and the registry's hand-derived
  derivatives are the elementwise derivatives of the real term with respect to
  ``r`` and of the fake term with respect to ``f``.

Each term takes its own ``real_weights``/``fake_weights`` and
``real_where``/``fake_where`` (broadcast to that term's shape, reduced by
:func:`jaxloss.reduce_loss`, so a weighted mean divides by that term's summed
weights). If the two inputs have different float dtypes, both are computed in
the wider computation dtype.

A generator loss has one term and follows the shared conventions exactly
(``weights``, ``where``, ``reduction`` as every elementwise loss).

Logit-based losses (minimax, non-saturating) take the discriminator's logit
:math:`z`, with :math:`D = \sigma(z)`; they are
:func:`jaxloss.sigmoid_binary_cross_entropy` against labels 1 (real) and 0
(fake), i.e. softplus functions, finite for every finite logit and exact at
:math:`\pm\infty`.

References:
  Goodfellow et al., *Generative Adversarial Nets*, NeurIPS 2014.
  Mao et al., *Least Squares Generative Adversarial Networks*, ICCV 2017.
  Lim and Ye, *Geometric GAN*, 2017; Miyato et al., *Spectral Normalization
  for GANs*, ICLR 2018 (hinge loss).
  Arjovsky, Chintala and Bottou, *Wasserstein GAN*, ICML 2017.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base
from jaxloss._spec import EdgeCase, LossSpec

__all__ = [
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
]

ArrayLike = jax.typing.ArrayLike

TWO_TERM_LOSSES = frozenset({
    "minimax_discriminator_loss",
    "least_squares_discriminator_loss",
    "hinge_discriminator_loss",
    "wasserstein_critic_loss",
})
"""Losses whose ``reduction`` applies per term (see the module docstring): their
``"mean"`` is mean(real terms) + mean(fake terms), not ``none.mean()``, and they
take ``real_/fake_weights`` and ``real_/fake_where`` instead of ``weights``/``where``."""


# --------------------------------------------------------------------------
# plumbing
# --------------------------------------------------------------------------
def _wider(a: np.dtype, b: np.dtype) -> np.dtype:
  return a if np.dtype(a).itemsize >= np.dtype(b).itemsize else b


def _two_terms(real_name, real, fake_name, fake, real_term, fake_term, *,
               real_weights, fake_weights, real_where, fake_where, reduction):
  """Reduces ``real_term(r)`` and ``fake_term(f)`` separately and combines them."""
  _base.check_reduction(reduction)
  r, rdtype = _base.as_predictions(real_name, real)
  f, fdtype = _base.as_predictions(fake_name, fake)
  dtype = _wider(rdtype, fdtype)
  r, f = r.astype(dtype), f.astype(dtype)
  rmask = _base.prepare_where(real_where, r.shape)
  fmask = _base.prepare_where(fake_where, f.shape)
  r = _base.sanitize(r, rmask)
  f = _base.sanitize(f, fmask)
  lr = _base.reduce_loss(real_term(r), weights=real_weights, where=rmask, reduction=reduction)
  lf = _base.reduce_loss(fake_term(f), weights=fake_weights, where=fmask, reduction=reduction)
  if reduction == "none":
    return jnp.concatenate([lr.ravel(), lf.ravel()])
  return lr + lf


def _one_term(name, x, term, *, weights, where, reduction):
  _base.check_reduction(reduction)
  x, _ = _base.as_predictions(name, x)
  mask = _base.prepare_where(where, x.shape)
  x = _base.sanitize(x, mask)
  return _base.reduce_loss(term(x), weights=weights, where=mask, reduction=reduction)


def _bce_against(label: float, sign: float = 1.0):
  """``z -> sign * BCE(sigmoid(z), label)``: the unreduced core of :func:`jaxloss.sigmoid_binary_cross_entropy`.

  The core, not the public function: the labels here are the constants 0 and
  1, so its run-time label check could never fire, and its checkify effect
  would put every GAN loss on JAX's slower dispatch path.
  """
  from jaxloss._classification import _sigmoid_bce_unreduced  # pylint: disable=g-import-not-at-top

  def term(z):
    return sign * _sigmoid_bce_unreduced(z, jnp.full_like(z, label), None)

  return term


def _half_squared_distance_to(target: float):
  """``x -> 0.5 (x - target)^2`` built on :func:`jaxloss.squared_error`."""
  from jaxloss._regression import squared_error  # pylint: disable=g-import-not-at-top

  def term(x):
    return 0.5 * squared_error(x, jnp.full_like(x, target), reduction="none")

  return term


# --------------------------------------------------------------------------
# minimax (Goodfellow et al. 2014)
# --------------------------------------------------------------------------
def minimax_discriminator_loss(
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    *,
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
    real_where: ArrayLike | None = None,
    fake_where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Minimax (BCE) discriminator loss on logits.

  With :math:`D = \sigma(z)`, the real term is the BCE against label 1 and the
  fake term the BCE against label 0:

  .. math::
     \ell_r(r) = -\log \sigma(r) = \operatorname{softplus}(-r), \qquad
     \ell_f(f) = -\log(1 - \sigma(f)) = \operatorname{softplus}(f).

  Derivatives (by hand, :math:`\operatorname{softplus}' = \sigma`):

  .. math::
     \partial_r \ell_r = -\sigma(-r) = \sigma(r) - 1, \qquad
     \partial_f \ell_f = \sigma(f), \qquad
     \partial_r^2 \ell_r = \sigma(r)\,\sigma(-r).

  At :math:`D = 1/2` (logits 0) each term is :math:`\ln 2`, and the default
  (per-term mean) loss is :math:`2\ln 2 = \log 4`: the value at the optimum of
  Goodfellow et al.'s game, :math:`C(G^*) = -\log 4` for the maximized
  objective.

  Args:
    real_logits: discriminator logits on real data.
    fake_logits: discriminator logits on generated data (any shape).
    real_weights, fake_weights, real_where, fake_where, reduction: see
      :mod:`jaxloss.gan` (each term is reduced separately, then summed;
      ``"none"`` returns the concatenation of the two raveled terms).

  References:
    Goodfellow et al., *Generative Adversarial Nets*, NeurIPS 2014.
  """
  return _two_terms(
      "real_logits", real_logits, "fake_logits", fake_logits,
      _bce_against(1.0), _bce_against(0.0),
      real_weights=real_weights, fake_weights=fake_weights,
      real_where=real_where, fake_where=fake_where, reduction=reduction)


def minimax_generator_loss(
    fake_logits: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Saturating minimax generator loss :math:`\log(1 - D(G(z)))` on logits.

  .. math::
     \ell(f) = \log(1 - \sigma(f)) = -\operatorname{softplus}(f), \qquad
     \partial_f \ell = -\sigma(f).

  The generator *minimizes* this (negative) quantity. Its gradient vanishes
  when the discriminator confidently rejects the fakes (:math:`f \to -\infty`),
  which is why :func:`non_saturating_generator_loss` is used in practice.

  References:
    Goodfellow et al., *Generative Adversarial Nets*, NeurIPS 2014, eq. (1).
  """
  return _one_term("fake_logits", fake_logits, _bce_against(0.0, sign=-1.0),
                   weights=weights, where=where, reduction=reduction)


def non_saturating_generator_loss(
    fake_logits: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Non-saturating generator loss :math:`-\log D(G(z))` on logits.

  .. math::
     \ell(f) = -\log \sigma(f) = \operatorname{softplus}(-f), \qquad
     \partial_f \ell = -\sigma(-f) = \sigma(f) - 1.

  The gradient tends to -1 (not 0) as :math:`f \to -\infty`.

  References:
    Goodfellow et al., *Generative Adversarial Nets*, NeurIPS 2014, Sec. 3.
  """
  return _one_term("fake_logits", fake_logits, _bce_against(1.0),
                   weights=weights, where=where, reduction=reduction)


# --------------------------------------------------------------------------
# least squares (Mao et al. 2017, a = 0, b = 1, c = 1)
# --------------------------------------------------------------------------
def least_squares_discriminator_loss(
    real_scores: ArrayLike,
    fake_scores: ArrayLike,
    *,
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
    real_where: ArrayLike | None = None,
    fake_where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Least-squares (LSGAN) discriminator loss, with Mao et al.'s 1/2 factors.

  Targets :math:`b = 1` for real and :math:`a = 0` for fake scores (raw
  discriminator outputs, no sigmoid):

  .. math::
     \ell_r(r) = \tfrac12 (r - 1)^2, \qquad \ell_f(f) = \tfrac12 f^2, \qquad
     \partial_r \ell_r = r - 1, \qquad \partial_f \ell_f = f, \qquad
     \partial_r^2 \ell_r = 1.

  At :math:`D = 1/2` on both batches the loss is
  :math:`\tfrac12 (1/2 - 1)^2 + \tfrac12 (1/2)^2 = 0.25`, the value at the
  equilibrium of the LSGAN game with these targets.

  Args: see :func:`minimax_discriminator_loss`.

  References:
    Mao et al., *Least Squares Generative Adversarial Networks*, ICCV 2017, eq. (2).
  """
  return _two_terms(
      "real_scores", real_scores, "fake_scores", fake_scores,
      _half_squared_distance_to(1.0), _half_squared_distance_to(0.0),
      real_weights=real_weights, fake_weights=fake_weights,
      real_where=real_where, fake_where=fake_where, reduction=reduction)


def least_squares_generator_loss(
    fake_scores: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Least-squares generator loss :math:`\tfrac12 (f - c)^2` with :math:`c = 1`.

  .. math::
     \ell(f) = \tfrac12 (f - 1)^2, \qquad \partial_f \ell = f - 1.

  References:
    Mao et al., *Least Squares Generative Adversarial Networks*, ICCV 2017, eq. (2).
  """
  return _one_term("fake_scores", fake_scores, _half_squared_distance_to(1.0),
                   weights=weights, where=where, reduction=reduction)


# --------------------------------------------------------------------------
# hinge (Lim and Ye 2017; Miyato et al. 2018)
# --------------------------------------------------------------------------
def hinge_discriminator_loss(
    real_scores: ArrayLike,
    fake_scores: ArrayLike,
    *,
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
    real_where: ArrayLike | None = None,
    fake_where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Hinge discriminator loss.

  .. math::
     \ell_r(r) = \max(0, 1 - r), \qquad \ell_f(f) = \max(0, 1 + f),

  .. math::
     \partial_r \ell_r = -\mathbb{1}[r < 1], \qquad
     \partial_f \ell_f = \mathbb{1}[f > -1]

  (at the kinks :math:`r = 1`, :math:`f = -1` the subgradient 0 is used, as
  :func:`jax.nn.relu` does).

  Args: see :func:`minimax_discriminator_loss`.

  References:
    Lim and Ye, *Geometric GAN*, 2017; Miyato et al., ICLR 2018.
  """
  return _two_terms(
      "real_scores", real_scores, "fake_scores", fake_scores,
      lambda r: jax.nn.relu(1.0 - r), lambda f: jax.nn.relu(1.0 + f),
      real_weights=real_weights, fake_weights=fake_weights,
      real_where=real_where, fake_where=fake_where, reduction=reduction)


def hinge_generator_loss(
    fake_scores: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Hinge-GAN generator loss :math:`\ell(f) = -f`, :math:`\partial_f \ell = -1`.

  References:
    Lim and Ye, *Geometric GAN*, 2017; Miyato et al., ICLR 2018.
  """
  return _one_term("fake_scores", fake_scores, lambda f: -f,
                   weights=weights, where=where, reduction=reduction)


# --------------------------------------------------------------------------
# Wasserstein (Arjovsky et al. 2017)
# --------------------------------------------------------------------------
def wasserstein_critic_loss(
    real_scores: ArrayLike,
    fake_scores: ArrayLike,
    *,
    real_weights: ArrayLike | None = None,
    fake_weights: ArrayLike | None = None,
    real_where: ArrayLike | None = None,
    fake_where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Wasserstein critic loss :math:`\operatorname{mean}(f) - \operatorname{mean}(r)`.

  .. math::
     \ell_r(r) = -r, \qquad \ell_f(f) = f, \qquad
     \partial_r \ell_r = -1, \qquad \partial_f \ell_f = 1.

  The Lipschitz constraint (weight clipping, gradient penalty) is not part of
  this function.

  Args: see :func:`minimax_discriminator_loss`.

  References:
    Arjovsky, Chintala and Bottou, *Wasserstein GAN*, ICML 2017.
  """
  return _two_terms(
      "real_scores", real_scores, "fake_scores", fake_scores,
      lambda r: -r, lambda f: f,
      real_weights=real_weights, fake_weights=fake_weights,
      real_where=real_where, fake_where=fake_where, reduction=reduction)


def wasserstein_generator_loss(
    fake_scores: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Wasserstein generator loss :math:`\ell(f) = -f`, :math:`\partial_f \ell = -1`.

  References:
    Arjovsky, Chintala and Bottou, *Wasserstein GAN*, ICML 2017.
  """
  return _one_term("fake_scores", fake_scores, lambda f: -f,
                   weights=weights, where=where, reduction=reduction)


# --------------------------------------------------------------------------
# registry: hand-derived derivatives (see the docstrings), float64 references
# --------------------------------------------------------------------------
def _sig(x):
  return jax.nn.sigmoid(x)


def _np64(x):
  return np.asarray(x, np.float64)


def _np_softplus(x):
  return np.logaddexp(0.0, _np64(x))


def _ref2(real_fn, fake_fn):
  def ref(r, f):
    return np.concatenate([real_fn(_np64(r)).ravel(), fake_fn(_np64(f)).ravel()])
  return ref


def _sample_pair(key, dtype, shape_r=(4, 3), shape_f=(5,), scale=2.0):
  kr, kf = jax.random.split(key)
  r = (scale * jax.random.normal(kr, shape_r, jnp.float32)).astype(dtype)
  f = (scale * jax.random.normal(kf, shape_f, jnp.float32)).astype(dtype)
  return r, f


def _sample_one(key, dtype, shape=(4, 3), scale=2.0):
  return ((scale * jax.random.normal(key, shape, jnp.float32)).astype(dtype),)


def _diag_hessian(d2):
  def hess(x, *rest):
    del rest
    n = x.size
    return (jnp.eye(n, dtype=x.dtype) * d2(x).ravel()).reshape(x.shape + x.shape)
  return hess


_LOGIT_EDGES = np.array([0.0, 40.0, -40.0, 1e4, -1e4, np.inf, -np.inf])
_SCORE_EDGES = np.array([0.0, 0.5, 1.0, -1.0, 1e6, -1e6])

MINIMAX_DISCRIMINATOR = LossSpec(
    name="minimax_discriminator_loss",
    family="gan",
    fn=minimax_discriminator_loss,
    arg_names=("real_logits", "fake_logits"),
    grads={0: lambda r, f: -_sig(-r), 1: lambda r, f: _sig(f)},
    hessian=_diag_hessian(lambda r: _sig(r) * _sig(-r)),
    hessian_argnum=0,
    sample=_sample_pair,
    reference=_ref2(lambda r: _np_softplus(-r), _np_softplus),
    edge_cases=(
        EdgeCase((np.zeros(3), np.zeros(2)), "D = 1/2: ln 2 per element"),
        EdgeCase((_LOGIT_EDGES[:-2], -_LOGIT_EDGES[:-2]), "saturated logits, both signs"),
        EdgeCase((np.array([np.inf]), np.array([-np.inf])), "perfect discriminator: loss 0"),
    ),
    formula=r"\mathrm{softplus}(-r) \,\|\, \mathrm{softplus}(f)",
    domain="real_logits, fake_logits real (any shapes)",
    float_argnums=(0, 1),
)

MINIMAX_GENERATOR = LossSpec(
    name="minimax_generator_loss",
    family="gan",
    fn=minimax_generator_loss,
    arg_names=("fake_logits",),
    grads={0: lambda f: -_sig(f)},
    hessian=_diag_hessian(lambda f: -_sig(f) * _sig(-f)),
    sample=_sample_one,
    reference=lambda f: -_np_softplus(f),
    edge_cases=(EdgeCase((_LOGIT_EDGES[:-2],), "saturated logits"),),
    formula=r"-\mathrm{softplus}(f) = \log(1 - \sigma(f))",
    domain="fake_logits real",
)

NON_SATURATING_GENERATOR = LossSpec(
    name="non_saturating_generator_loss",
    family="gan",
    fn=non_saturating_generator_loss,
    arg_names=("fake_logits",),
    grads={0: lambda f: -_sig(-f)},
    hessian=_diag_hessian(lambda f: _sig(f) * _sig(-f)),
    sample=_sample_one,
    reference=lambda f: _np_softplus(-f),
    edge_cases=(EdgeCase((_LOGIT_EDGES[:-2],), "saturated logits"),),
    formula=r"\mathrm{softplus}(-f) = -\log \sigma(f)",
    domain="fake_logits real",
)

LEAST_SQUARES_DISCRIMINATOR = LossSpec(
    name="least_squares_discriminator_loss",
    family="gan",
    fn=least_squares_discriminator_loss,
    arg_names=("real_scores", "fake_scores"),
    grads={0: lambda r, f: r - 1.0, 1: lambda r, f: f},
    hessian=_diag_hessian(jnp.ones_like),
    sample=_sample_pair,
    reference=_ref2(lambda r: 0.5 * (r - 1.0) ** 2, lambda f: 0.5 * f ** 2),
    edge_cases=(
        EdgeCase((np.full(3, 0.5), np.full(2, 0.5)), "D = 1/2: 0.125 per element, 0.25 in all"),
        EdgeCase((_SCORE_EDGES, _SCORE_EDGES), "targets and large scores"),
    ),
    formula=r"\tfrac12 (r - 1)^2 \,\|\, \tfrac12 f^2",
    domain="real_scores, fake_scores real (any shapes)",
    float_argnums=(0, 1),
)

LEAST_SQUARES_GENERATOR = LossSpec(
    name="least_squares_generator_loss",
    family="gan",
    fn=least_squares_generator_loss,
    arg_names=("fake_scores",),
    grads={0: lambda f: f - 1.0},
    hessian=_diag_hessian(jnp.ones_like),
    sample=_sample_one,
    reference=lambda f: 0.5 * (_np64(f) - 1.0) ** 2,
    edge_cases=(EdgeCase((_SCORE_EDGES,), "target and large scores"),),
    formula=r"\tfrac12 (f - 1)^2",
    domain="fake_scores real",
)


def _np_relu(x):
  return np.maximum(_np64(x), 0.0)


HINGE_DISCRIMINATOR = LossSpec(
    name="hinge_discriminator_loss",
    family="gan",
    fn=hinge_discriminator_loss,
    arg_names=("real_scores", "fake_scores"),
    grads={
        0: lambda r, f: -(r < 1.0).astype(r.dtype),
        1: lambda r, f: (f > -1.0).astype(f.dtype),
    },
    sample=_sample_pair,
    reference=_ref2(lambda r: _np_relu(1.0 - r), lambda f: _np_relu(1.0 + f)),
    edge_cases=(
        EdgeCase((np.array([0.5, 2.0, -3.0, 1e6]), np.array([-0.5, -2.0, 3.0, -1e6])), "both sides of the margins"),
    ),
    formula=r"\max(0, 1 - r) \,\|\, \max(0, 1 + f)",
    domain="real_scores, fake_scores real (any shapes); kinks at r = 1, f = -1",
    float_argnums=(0, 1),
)

HINGE_GENERATOR = LossSpec(
    name="hinge_generator_loss",
    family="gan",
    fn=hinge_generator_loss,
    arg_names=("fake_scores",),
    grads={0: lambda f: -jnp.ones_like(f)},
    hessian=_diag_hessian(jnp.zeros_like),
    sample=_sample_one,
    reference=lambda f: -_np64(f),
    edge_cases=(EdgeCase((_SCORE_EDGES,), "large scores"),),
    formula=r"-f",
    domain="fake_scores real",
)

WASSERSTEIN_CRITIC = LossSpec(
    name="wasserstein_critic_loss",
    family="gan",
    fn=wasserstein_critic_loss,
    arg_names=("real_scores", "fake_scores"),
    grads={0: lambda r, f: -jnp.ones_like(r), 1: lambda r, f: jnp.ones_like(f)},
    hessian=_diag_hessian(jnp.zeros_like),
    sample=_sample_pair,
    reference=_ref2(lambda r: -r, lambda f: f),
    edge_cases=(EdgeCase((_SCORE_EDGES, _SCORE_EDGES[:3]), "large scores, unequal batches"),),
    formula=r"-r \,\|\, f",
    domain="real_scores, fake_scores real (any shapes)",
    float_argnums=(0, 1),
)

WASSERSTEIN_GENERATOR = LossSpec(
    name="wasserstein_generator_loss",
    family="gan",
    fn=wasserstein_generator_loss,
    arg_names=("fake_scores",),
    grads={0: lambda f: -jnp.ones_like(f)},
    hessian=_diag_hessian(jnp.zeros_like),
    sample=_sample_one,
    reference=lambda f: -_np64(f),
    edge_cases=(EdgeCase((_SCORE_EDGES,), "large scores"),),
    formula=r"-f",
    domain="fake_scores real",
)

SPECS = (
    MINIMAX_DISCRIMINATOR,
    MINIMAX_GENERATOR,
    NON_SATURATING_GENERATOR,
    LEAST_SQUARES_DISCRIMINATOR,
    LEAST_SQUARES_GENERATOR,
    HINGE_DISCRIMINATOR,
    HINGE_GENERATOR,
    WASSERSTEIN_CRITIC,
    WASSERSTEIN_GENERATOR,
)
