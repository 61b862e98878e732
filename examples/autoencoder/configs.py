"""Hyperparameter configurations of the autoencoder example.

``get_config(name)`` returns a :class:`Config`; ``main.py`` picks ``"digits"``
(the default, bundled 8x8 digits), ``"mnist"`` (a local ``mnist.npz`` or
``--synthetic-mnist``) and the tests use ``"tiny"``. Every field can be
overridden from the command line (see ``main.py --help``).
"""

from __future__ import annotations

import dataclasses

# Every variant compared by ``main.py``: name -> (output activation, training loss).
# The loss functions themselves live in ``train.VARIANTS``; the names are public.
VARIANT_NAMES = (
    "sigmoid_bce",
    "sigmoid_mse",
    "sigmoid_mae",
    "linear_mse",
    "softmax_bce",
    "sigmoid_continuous_bernoulli",
    "sigmoid_binary_kl",
    # The Keras MNIST question (keras.losses.binary_crossentropy semantics, via jaxloss.compat.keras): the
    # setting as asked (raw pixels, softmax), then its two fixes one at a time, then both.
    "softmax_bce_unscaled",
    "softmax_bce_scaled",
    "sigmoid_bce_unscaled",
    "sigmoid_bce_scaled",
)
KERAS_VARIANT_NAMES = VARIANT_NAMES[-4:]
BASELINE_NAME = "mean_image"
CONFIG_NAMES = ("digits", "mnist", "keras_mnist", "tiny")


class ConfigError(ValueError):
  """An inconsistent configuration (reported by ``main.py`` without a traceback)."""


@dataclasses.dataclass(frozen=True)
class Config:
  """One training run (shared by all variants of a comparison).

  Attributes:
    dataset: ``"digits"`` (scikit-learn's bundled 8x8 digits), ``"mnist"`` (a
      local Keras-format ``mnist.npz``, needs ``data_path``) or
      ``"synthetic_mnist"`` (generated data of MNIST shape, for timing).
    hidden: encoder widths; the decoder mirrors them. The last entry is the code.
    batch_size: global batch size (split over all local devices; must be a
      multiple of the device count).
    num_steps: optimizer steps per variant.
    learning_rate: Adam step size.
    seed: seeds parameters, the train/test split and the batch order.
    eval_every: steps between evaluations on the test set (the loss curves).
    steps_per_call: optimizer steps per jitted call (a ``lax.scan`` over that
      many batches; 1 = one step per call). Results do not depend on it beyond
      float32 rounding of the compiled code.
    checkpoint_every: steps between orbax checkpoints (0: only at the end).
    test_fraction: fraction of ``load_digits`` held out (MNIST has its own split).
    max_train_examples / max_test_examples: optional caps (0: no cap).
  """

  dataset: str = "digits"
  data_path: str | None = None
  hidden: tuple[int, ...] = (128, 64, 28)
  batch_size: int = 64
  num_steps: int = 3000
  learning_rate: float = 3e-3
  seed: int = 0
  eval_every: int = 100
  steps_per_call: int = 100
  checkpoint_every: int = 0
  test_fraction: float = 0.2
  max_train_examples: int = 0
  max_test_examples: int = 0
  variants: tuple[str, ...] = VARIANT_NAMES

  def replace(self, **kwargs) -> "Config":
    return dataclasses.replace(self, **kwargs)


def get_config(name: str = "digits") -> Config:
  """Returns the named configuration (one of :data:`CONFIG_NAMES`).

  ``keras_mnist`` is the Keras MNIST question's own setting: 784-128-64-28-64-128-784,
  Adam at Keras' default learning rate 1e-3, batch 100, 5 epochs of the 60 000
  training images (3000 steps), the four Keras variants.
  """
  if name == "digits":
    return Config()
  if name == "mnist":
    return Config(dataset="mnist", batch_size=128, num_steps=5000, learning_rate=1e-3, eval_every=500,
                  steps_per_call=50)
  if name == "keras_mnist":
    return Config(dataset="mnist", batch_size=100, num_steps=5 * 600, learning_rate=1e-3, eval_every=600,
                  steps_per_call=50, variants=KERAS_VARIANT_NAMES)
  if name == "tiny":
    return Config(hidden=(16, 8, 4), batch_size=16, num_steps=6, eval_every=3,
                  max_train_examples=64, max_test_examples=32)
  raise ValueError(f"unknown config {name!r}; expected one of {', '.join(map(repr, CONFIG_NAMES))}.")
