"""The one registry of losses: ``jaxloss.REGISTRY`` maps a loss name to its :class:`LossSpec`.

Each family module defines a tuple ``SPECS``; this module collects them. Tests,
the verifier and its CLI, the benchmarks and the README table all iterate over
``REGISTRY``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping

from jaxloss import (
  _categorical,
  _classification,
  _ctc,
  _information,
  _margin,
  _ranking,
  _regression,
  _segmentation,
  _similarity,
  _sparsemax,
  gan,
)
from jaxloss._spec import LossSpec


def _collect() -> Mapping[str, LossSpec]:
  out: dict[str, LossSpec] = {}
  for module in (_classification, _categorical, _margin, _sparsemax, _regression, _information, gan, _segmentation,
                 _similarity, _ranking, _ctc):
    for spec in module.SPECS:
      if spec.name in out:
        raise RuntimeError(f"loss {spec.name!r} is registered twice")
      out[spec.name] = spec
  return types.MappingProxyType(out)


REGISTRY: Mapping[str, LossSpec] = _collect()
