"""The Keras MNIST question's loss on raw pixels: Keras' value against jaxloss' own BCE.

Keras' ``binary_crossentropy(y_true, y_pred)`` never checks ``y_true``. On a raw
pixel ``y > 1`` the per-pixel term

  -(y log p + (1 - y) log(1 - p)) = -y log p + (y - 1) log(1 - p)

*decreases* without bound as ``p -> 1`` (the second term goes to -inf), so the
loss goes negative and training chases it; only Keras' clipping of ``p`` to
``1 - 1e-7`` stops it. jaxloss' own BCE reads targets outside [0, 1] as invalid:
the loss is NaN, and inside ``jaxloss.runtime_checks()`` a ``checkify`` check
names the argument and the range.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

import jaxloss
from jaxloss.compat import keras as keras_compat

PROBABILITIES = (0.5, 0.9, 0.99, 0.9999, 1.0)  # 1.0: Keras clips it to 1 - 1e-7 (float32: 1 - 2**-23)


def keras_bce_at_raw_target(y: float, probabilities=PROBABILITIES) -> dict[str, float]:
  """Keras' float32 BCE of one pixel with raw target ``y`` at each predicted probability (key: ``str(p)``),
  next to the unclipped float64 formula (``inf``/``-inf`` where it diverges)."""
  p = jnp.asarray(probabilities, jnp.float32)[:, None]
  keras = np.asarray(keras_compat.binary_crossentropy(jnp.full_like(p, y), p))
  out = {}
  for prob, k in zip(probabilities, keras):
    with np.errstate(divide="ignore"):
      exact = -(y * math.log(prob)) + (y - 1.0) * (np.log1p(-prob) if prob < 1 else -np.inf)
    out[f"{prob:g}"] = {"keras": float(k), "formula": float(exact)}
  return out


def fix_hint(pixel_max: float) -> str:
  """The fix for this model, printed by the example after jaxloss' message (which gives the generic one)."""
  return (f"Fix: divide the pixels by {pixel_max:g} (x / {pixel_max:g}) so the targets lie in [0, 1], and give each "
          "pixel its own sigmoid probability (jaxloss.sigmoid_binary_cross_entropy on the logits) instead of a "
          "softmax over the pixels.")


def jaxloss_bce_on_raw_targets(activation: str, logits: jax.Array, raw: jax.Array) -> dict:
  """jaxloss' own BCE of the activated output against the raw pixels ``raw`` (values above 1).

  Returns ``value`` (the default: NaN), ``nan_fraction`` (of the per-pixel
  terms), ``error`` (the message ``checkify`` raises inside
  ``jaxloss.runtime_checks()``; ``None`` if there is none) and ``loss`` (the
  function used).
  """
  if activation == "softmax":
    name = "binary_cross_entropy(softmax(logits), raw pixels)"

    def loss(z, y, reduction="mean"):
      return jaxloss.binary_cross_entropy(jax.nn.softmax(z, axis=-1), y, reduction=reduction)
  elif activation == "sigmoid":
    name = "sigmoid_binary_cross_entropy(logits, raw pixels)"

    def loss(z, y, reduction="mean"):
      return jaxloss.sigmoid_binary_cross_entropy(z, y, reduction=reduction)
  else:
    raise ValueError(f"no jaxloss BCE for activation {activation!r}")
  value = float(jax.jit(loss)(logits, raw))
  terms = np.asarray(jax.jit(lambda z, y: loss(z, y, reduction="none"))(logits, raw))
  with jaxloss.runtime_checks():
    err, _ = jax.jit(checkify.checkify(loss, errors=checkify.user_checks))(logits, raw)
  return {"loss": name, "value": value, "nan_fraction": float(np.mean(np.isnan(terms))), "error": err.get()}


def output_statistics(probs: jax.Array, images: np.ndarray) -> dict[str, float]:
  """``at_keras_clip_fraction``: output pixels at or above Keras' upper clip ``1 - 1e-7`` (rounded to float32),
  where Keras' BCE has zero gradient; ``input_dependence``: the variance across test images of each output pixel
  over the images' own, averaged over pixels (0: the same picture for every input)."""
  probs = np.asarray(probs, np.float32)
  top = np.float32(1.0 - keras_compat.EPSILON)
  data_var = np.var(np.asarray(images, np.float64), axis=0)
  return {"at_keras_clip_fraction": float(np.mean(probs >= top)),
          "input_dependence": float(np.mean(np.var(probs.astype(np.float64), axis=0)) / np.mean(data_var))}
