"""The registry's record type: one :class:`LossSpec` per loss.

A spec holds everything the tests, the verifier (:mod:`jaxloss.verify`), the
CLI and the benchmarks need, so adding a loss is one function plus one spec.

Conventions every spec follows:

* ``fn(*args, **config)`` is the public loss; the registry calls it with
  ``reduction="none"`` to get the unreduced loss.
* ``grads[i](*args, **config)`` is the **hand-derived** derivative of
  ``fn(*args, reduction="none", **config).sum()`` with respect to ``args[i]``
  (elementwise / per-row derivative, same shape as ``args[i]``). It is written
  from the math in the loss docstring and never obtained from ``jax.grad``.
* ``hessian(*args, **config)``, where given, is the full Hessian of that sum
  with respect to ``args[hessian_argnum]``, shaped as ``jax.hessian`` shapes it
  (``x.shape + x.shape``).
* ``sample(key, dtype, shape=...)`` returns a tuple of arguments: the
  differentiable ones in ``dtype``, the others (integer labels, ...) in their
  natural dtype. The default shapes are small, so that full Hessians stay
  cheap; ``shape`` (a keyword with that small default) is the shape of the
  first argument, the others following from it, and ``benchmarks/bench.py``
  passes a large one. A sampler whose arguments do not follow from one shape
  (a GAN discriminator's separate real and fake batches) omits it; the
  benchmark then tiles its sample along axis 0.
* ``edge_cases`` are extra argument tuples (NumPy float64 / int arrays) on
  which value and derivatives must hold: saturated logits, zero targets,
  masked classes, ... Each may carry its own config.
* ``reference(*args, **config)`` is an independent float64 NumPy/SciPy
  implementation of the unreduced loss, used to test values.
* ``optax_peer`` / ``naive`` are unreduced implementations used by the
  benchmarks (``None`` where no peer exists).
* ``reference_mp(*args, **config)`` (optional) is an mpmath implementation of
  the unreduced loss: the floating arguments arrive as NumPy object arrays of
  ``mpmath.mpf`` (exact copies of the inputs, the others as given), the result
  is an object array of ``mpf`` shaped like the unreduced loss, computed at the
  caller's ``mpmath.mp`` precision. :mod:`jaxloss.verify` differentiates it by
  finite differences at that precision at every in-domain edge point, a
  reference that cannot share a float64 cancellation of the closed form (give
  it for losses whose derivatives subtract nearly equal numbers, e.g. a
  probability from 1). The loss must be smooth at those points.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class EdgeCase:
  """A named extra point where the loss and its derivatives must hold."""

  args: tuple[Any, ...]
  note: str
  config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  # False: the point is outside the loss's domain; NaN on both sides is fine.
  in_domain: bool = True


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """Everything jaxloss knows about one loss (see module docstring)."""

  name: str
  family: str  # "classification" | "regression" | "information" | "gan" | "segmentation" | "metric" | "sequence"
  fn: Callable[..., Any]
  arg_names: tuple[str, ...]
  grads: Mapping[int, Callable[..., Any]]
  sample: Callable[[Any, Any], tuple[Any, ...]]
  reference: Callable[..., np.ndarray] | None = None
  hessian: Callable[..., Any] | None = None
  hessian_argnum: int = 0
  edge_cases: Sequence[EdgeCase] = ()
  configs: Sequence[Mapping[str, Any]] = ({},)
  rowwise: bool = False  # True: one loss value per row (reduces over ``axis``)
  # rowwise: the rows along axis 0 interact (a contrastive loss over the batch). Otherwise each row is
  # an independent example (every argument batched on axis 0; tested), and the verifier may repeat
  # rows to give points of different batch sizes one compiled program.
  batch_coupled: bool = False
  formula: str = ""  # LaTeX of the unreduced loss, for docs and the CLI
  domain: str = ""  # human description of the valid inputs
  optax_peer: Callable[..., Any] | None = None
  naive: Callable[..., Any] | None = None
  # argnums that may carry a dtype (the others, e.g. integer labels, keep theirs)
  float_argnums: tuple[int, ...] = (0,)
  # ``bench_sample(key, dtype, elems)``: the benchmark's inputs at about ``elems`` elements, where the
  # sampler's ``shape`` cannot reach a sensible large size (quadratic losses such as NT-Xent)
  bench_sample: Callable[..., tuple[Any, ...]] | None = None
  reference_mp: Callable[..., np.ndarray] | None = None  # mpmath implementation (see the module docstring)

  def unreduced(self, *args: Any, **config: Any) -> Any:
    """The unreduced loss ``fn(*args, reduction="none", **config)``."""
    return self.fn(*args, reduction="none", **config)

  @property
  def diff_argnums(self) -> tuple[int, ...]:
    return tuple(sorted(self.grads))


def optax_loss(name: str, **fixed: Any) -> Callable[..., Any]:
  """A benchmark peer that calls ``optax.losses.<name>`` (imported lazily)."""

  def peer(*args: Any, **kwargs: Any) -> Any:
    import optax  # pylint: disable=g-import-not-at-top

    return getattr(optax.losses, name)(*args, **fixed, **kwargs)

  peer.__name__ = f"optax.losses.{name}"
  return peer
