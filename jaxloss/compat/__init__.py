"""Compatibility layers: the exact numbers of the library a user ports code from.

* :mod:`jaxloss.compat.keras` -- Keras 3 loss functions (``y_true, y_pred``
  order, epsilon clipping, normalization of categorical predictions).
* :mod:`jaxloss.compat.torch` -- ``torch.nn.functional`` losses (``input,
  target`` order, log clamp at -100, weighted means, PyTorch's backward where
  the forward clamps).

Every difference from jaxloss' native conventions is listed in
``docs/conventions.md``. These functions exist to reproduce other libraries'
numbers, clipping included; new code should prefer the native losses, which
never clip silently.
"""

from jaxloss.compat import keras, torch  # noqa: F401

__all__ = ["keras", "torch"]
