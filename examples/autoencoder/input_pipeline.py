"""Data for the autoencoder example: bundled 8x8 digits, a local MNIST, or MNIST-shaped noise.

Every loader returns a :class:`Dataset` of flattened ``float32`` images in
``[0, 1]`` (the scaling is checked, not assumed). :func:`batch_indices` makes
the batch order a pure function of ``(seed, step)``, so a run resumed from a
checkpoint at step ``k`` sees exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zipfile

import numpy as np

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(ValueError):
  """The data given to the example is missing, malformed or scaled wrongly."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Flattened images in [0, 1].

  Attributes:
    train, test: ``float32`` arrays of shape ``(n, height * width)``.
    image_shape: ``(height, width)`` for plotting.
    name: a short description for reports.
    pixel_max: the raw pixels' maximum (16 for the digits, 255 for MNIST):
      ``round(x * pixel_max)`` gives back the raw integer pixels, which the
      ``*_unscaled`` variants train on.
  """

  train: np.ndarray
  test: np.ndarray
  image_shape: tuple[int, int]
  name: str
  pixel_max: float = 1.0

  @property
  def num_features(self) -> int:
    return int(self.train.shape[1])


def _scale(raw: np.ndarray, max_value: float, what: str) -> np.ndarray:
  """Divides integer-valued pixels in ``[0, max_value]`` by ``max_value``, checking both ends."""
  raw = np.asarray(raw)
  if raw.size == 0:
    raise DataError(f"{what} is empty.")
  if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
    raise DataError(f"{what} must hold numbers, got dtype {raw.dtype}.")
  lo, hi = float(np.min(raw)), float(np.max(raw))
  if not np.all(np.isfinite(raw)) or lo < 0 or hi > max_value:
    raise DataError(f"{what} must hold pixel values in [0, {max_value:g}], got values in [{lo:g}, {hi:g}].")
  if np.any(raw != np.round(raw)):
    raise DataError(
        f"{what} must hold integer pixel values in [0, {max_value:g}] (raw, unscaled data); "
        f"got fractional values in [{lo:g}, {hi:g}]. Was it scaled already?")
  if hi <= 1:
    raise DataError(f"{what} has maximum {hi:g}: it looks already scaled to [0, 1]; pass raw pixels "
                     f"in [0, {max_value:g}].")
  x = raw.astype(np.float32) / np.float32(max_value)
  assert 0.0 <= x.min() and x.max() <= 1.0, "scaling left [0, 1]"
  return x


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
  """scikit-learn's bundled 8x8 digits (1797 images, pixels 0..16), scaled by 1/16.

  The train/test split is a seeded permutation (no network access needed).
  """
  from sklearn.datasets import load_digits as _sk_load_digits

  raw = _sk_load_digits().data  # (1797, 64) float64 holding integers 0..16
  x = _scale(raw, 16.0, "load_digits().data")
  if not 0.0 < test_fraction < 1.0:
    raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}.")
  perm = np.random.default_rng(seed).permutation(len(x))
  n_test = int(round(len(x) * test_fraction))
  return Dataset(train=x[perm[n_test:]], test=x[perm[:n_test]], image_shape=(8, 8), name="sklearn digits 8x8",
                 pixel_max=16.0)


def load_mnist_npz(path: str | os.PathLike) -> Dataset:
  """A local Keras-format ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``; uint8 28x28).

  Raises:
    FileNotFoundError: ``path`` does not exist.
    DataError (a ValueError): the file is not a readable ``.npz``, lacks a key, or holds
      images of the wrong shape, dtype or range.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"--data-path {path!r} does not exist. Give a Keras-format mnist.npz (e.g. the file "
        "keras.datasets.mnist.load_data() downloads to ~/.keras/datasets/mnist.npz).")
  try:
    f = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # not numpy data, pickled, truncated
    raise DataError(f"{path!r} is not a readable .npz file ({type(e).__name__}: {e}).") from e
  if not isinstance(f, np.lib.npyio.NpzFile):
    raise DataError(f"{path!r} holds a single array, not a Keras-format mnist.npz with keys {list(MNIST_KEYS)}.")
  with f:
    missing = [k for k in MNIST_KEYS if k not in f.files]
    if missing:
      raise DataError(f"{path!r} is not a Keras-format mnist.npz: missing key(s) {missing}; found {sorted(f.files)}.")
    try:
      arrays = {k: f[k] for k in MNIST_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # corrupt member
      raise DataError(f"{path!r} is a damaged .npz file ({type(e).__name__}: {e}).") from e
  out = {}
  for split in ("train", "test"):
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.ndim != 3 or x.shape[1:] != (28, 28):
      raise DataError(f"x_{split} in {path!r} must have shape (n, 28, 28), got {x.shape}.")
    if x.dtype != np.uint8:
      raise DataError(f"x_{split} in {path!r} must be uint8 pixels 0..255, got dtype {x.dtype}.")
    if y.shape != (x.shape[0],):
      raise DataError(f"y_{split} in {path!r} must have shape ({x.shape[0]},) to match x_{split}, got {y.shape}.")
    out[split] = _scale(x.reshape(x.shape[0], 28 * 28), 255.0, f"x_{split} in {path!r}")
  return Dataset(train=out["train"], test=out["test"], image_shape=(28, 28),
                 name=f"MNIST ({os.path.basename(path)})", pixel_max=255.0)


def synthetic_mnist(*, num_train: int = 60000, num_test: int = 10000, seed: int = 0) -> Dataset:
  """Generated uint8 images of MNIST shape (28x28), scaled like MNIST: for timing only.

  Each image is three bright round blobs at random places on a black
  background: like MNIST, mostly 0, some 255 and a few values in between. Only
  the shapes and the pixel scale matter for timing; it is not a benchmark of
  reconstruction quality.
  """
  rng = np.random.default_rng(seed)
  n = num_train + num_test
  yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
  raw = np.empty((n, 784), np.uint8)
  for start in range(0, n, 5000):  # chunks keep the float intermediates small
    m = min(5000, n - start)
    centers = rng.uniform(6, 22, size=(m, 3, 2)).astype(np.float32)
    d2 = ((yy[None, None] - centers[..., 0, None, None]) ** 2 +
          (xx[None, None] - centers[..., 1, None, None]) ** 2)
    img = np.clip(np.max(np.exp(-d2 / 8.0), axis=1) * 1.6 - 0.3, 0.0, 1.0)
    raw[start:start + m] = np.round(img * 255).astype(np.uint8).reshape(m, 784)
  x = _scale(raw, 255.0, "synthetic MNIST")
  return Dataset(train=x[:num_train], test=x[num_train:], image_shape=(28, 28), name="synthetic MNIST-shaped",
                 pixel_max=255.0)


def load(config) -> Dataset:
  """The dataset a :class:`configs.Config` names, with its optional size caps applied."""
  if config.dataset == "digits":
    ds = load_digits(test_fraction=config.test_fraction, seed=config.seed)
  elif config.dataset == "mnist":
    if not config.data_path:
      raise DataError("dataset='mnist' needs --data-path pointing to a Keras-format mnist.npz "
                       "(or use --synthetic-mnist for generated data of MNIST shape).")
    ds = load_mnist_npz(config.data_path)
  elif config.dataset == "synthetic_mnist":
    ds = synthetic_mnist(seed=config.seed)
  else:
    raise DataError(f"unknown dataset {config.dataset!r}; expected 'digits', 'mnist' or 'synthetic_mnist'.")
  train, test = ds.train, ds.test
  if config.max_train_examples:
    train = train[: config.max_train_examples]
  if config.max_test_examples:
    test = test[: config.max_test_examples]
  if len(train) < config.batch_size:
    raise DataError(f"batch_size={config.batch_size} exceeds the {len(train)} training examples.")
  return dataclasses.replace(ds, train=train, test=test)


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """Indices of the batch used at optimizer step ``step`` (0-based).

  Epoch ``e = step // steps_per_epoch`` uses a permutation seeded by ``(seed, e)``;
  the remainder of each epoch is dropped. A pure function of its arguments, so
  resuming at any step reproduces the batch order exactly.
  """
  steps_per_epoch = num_examples // batch_size
  epoch, i = divmod(step, steps_per_epoch)
  return _epoch_permutation(num_examples, seed, epoch)[i * batch_size:(i + 1) * batch_size]


@functools.lru_cache(maxsize=2)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
  perm.flags.writeable = False
  return perm
