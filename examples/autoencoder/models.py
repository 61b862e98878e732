"""The dense autoencoder (Flax NNX) and the output activations it is paired with."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


class Autoencoder(nnx.Module):
  """Dense autoencoder ``d-h1-...-code-...-h1-d`` with ReLU hidden layers.

  ``__call__`` returns the *pre-activation* output (logits): the output
  activation belongs to the variant (sigmoid, softmax, identity), and losses
  such as ``jaxloss.sigmoid_binary_cross_entropy`` are exact only on logits.

  Args:
    num_features: input and output width (64 for 8x8 digits, 784 for MNIST).
    hidden: encoder widths, the last one the code size; the decoder mirrors
      them. Default ``(128, 64, 28)`` gives 64-128-64-28-64-128-64 for digits
      and 784-128-64-28-64-128-784 for MNIST.
    rngs: parameter initialization.
  """

  def __init__(self, num_features: int, hidden: Sequence[int] = (128, 64, 28), *, rngs: nnx.Rngs):
    widths = (num_features, *hidden)
    self.encoder = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
    back = widths[::-1]
    self.decoder = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(back[:-1], back[1:])])

  def encode(self, x: jax.Array) -> jax.Array:
    for layer in self.encoder:
      x = nnx.relu(layer(x))
    return x

  def decode_logits(self, z: jax.Array) -> jax.Array:
    for layer in self.decoder[:-1]:
      z = nnx.relu(layer(z))
    return self.decoder[-1](z)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.decode_logits(self.encode(x))


def continuous_bernoulli_mean(logits: jax.Array) -> jax.Array:
  r"""Mean of the continuous Bernoulli :math:`\mathcal{CB}(\lambda)`, :math:`\lambda = \sigma(z)`.

  With density :math:`C(\lambda)\lambda^x(1-\lambda)^{1-x}` on [0, 1] the mean is
  :math:`\lambda/(2\lambda-1) + 1/(2\,\mathrm{artanh}(1-2\lambda))`. Since
  :math:`\mathrm{artanh}(1-2\sigma(z)) = -z/2` and :math:`2\sigma(z)-1 = \tanh(z/2)`,
  this is :math:`\mu(z) = \tfrac12\,(1 + L(z/2))` with the Langevin function
  :math:`L(u) = \coth u - 1/u`. Near 0 (:math:`|u| < 1/4`) the series
  :math:`L(u) = u/3 - u^3/45 + 2u^5/945` avoids the cancellation.

  The CB maximum-likelihood fit sets :math:`\mu(z)` (not :math:`\lambda`) to the
  data, so :math:`\mu`, not :math:`\lambda`, is the reconstruction to look at.

  References:
    Loaiza-Ganem & Cunningham, *The continuous Bernoulli: fixing a pervasive
    error in variational autoencoders*, NeurIPS 2019.
  """
  u = 0.5 * logits
  small = jnp.abs(u) < 0.25
  safe_u = jnp.where(small, jnp.ones_like(u), u)
  exact = 1.0 / jnp.tanh(safe_u) - 1.0 / safe_u
  u2 = u * u
  series = u * (1.0 / 3.0 - u2 * (1.0 / 45.0 - u2 * (2.0 / 945.0)))
  return 0.5 * (1.0 + jnp.where(small, series, exact))
