"""Writes the API reference pages of the documentation site from ``jaxloss.REGISTRY``.

Called by ``docs/conf.py`` at every build (into ``docs/api/``, which is not
tracked), so every registered loss gets its section, on its family's page,
with its formula, an example computed at build time and its docstring
(signature, shapes, derivation, references).
"""

from __future__ import annotations

import collections
import importlib
import pathlib
import textwrap
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss

FAMILY_TITLES = {
    "classification": "Classification",
    "regression": "Regression",
    "information": "Information theory",
    "gan": "GAN",
    "segmentation": "Segmentation",
    "metric": "Similarity and metric learning",
    "sequence": "Sequence (CTC)",
}

# Modules whose public names (``__all__``) are documented and must have docstrings.
PUBLIC_MODULES = ("jaxloss", "jaxloss.gan", "jaxloss.fused", "jaxloss.verify", "jaxloss.compat.keras",
                  "jaxloss.compat.torch")


def public_names() -> dict[str, list[str]]:
  out = {}
  for name in PUBLIC_MODULES:
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    if names is None:
      names = [n for n in dir(module) if not n.startswith("_")]
    out[name] = list(names)
  return out


def public_path(fn: Any) -> str:
  """``jaxloss.<name>`` when the top-level package exports it, else its public module."""
  name = fn.__name__
  if getattr(jaxloss, name, None) is fn:
    return f"jaxloss.{name}"
  for module_name in PUBLIC_MODULES[1:]:
    module = importlib.import_module(module_name)
    if getattr(module, name, None) is fn:
      return f"{module_name}.{name}"
  return f"{fn.__module__}.{name}"


def _example(name: str, spec: Any) -> str:
  """A doctest-style example, run now (CPU, float32) so the shown output is real."""
  args = tuple(spec.sample(jax.random.PRNGKey(0), jnp.float32))
  value = spec.fn(*args)
  shapes = [tuple(np.shape(a)) for a in args]
  path = public_path(spec.fn)
  call = f"{path}(*args)"
  lines = [
      ">>> import jax, jax.numpy as jnp, jaxloss",
      f">>> args = jaxloss.REGISTRY[{name!r}].sample(jax.random.PRNGKey(0), jnp.float32)",
      ">>> [a.shape for a in args]",
      repr(shapes),
      f">>> float({call})",
      f"{float(value):.6g}",
  ]
  return "\n".join(lines)


def _loss_section(name: str, spec: Any) -> str:
  path = public_path(spec.fn)
  diff = ", ".join(f"``{spec.arg_names[i]}``" for i in spec.diff_argnums)
  parts = [name, "-" * len(name), ""]
  if spec.formula:
    parts += [".. math::", "", textwrap.indent(spec.formula, "   "), ""]
  facts = [f"* Closed-form derivatives in the registry: {diff}."]
  if spec.hessian is not None:
    facts.append(f"* Closed-form Hessian with respect to ``{spec.arg_names[spec.hessian_argnum]}``.")
  if spec.domain:
    facts.append(f"* Domain: {spec.domain}")
  facts.append(f"* optax peer: {'yes' if spec.optax_peer is not None else 'none'}.")
  parts += facts + ["", "Example (run when this page was built)::", "", textwrap.indent(_example(name, spec), "   "),
                    "", f".. autofunction:: {path}", ""]
  return "\n".join(parts)


def family_pages() -> dict[str, str]:
  by_family: dict[str, list[tuple[str, Any]]] = collections.defaultdict(list)
  for name, spec in jaxloss.REGISTRY.items():
    by_family[spec.family].append((name, spec))
  pages = {}
  for family, items in by_family.items():
    title = FAMILY_TITLES.get(family, family.capitalize())
    head = [title, "=" * len(title), "",
            f"Every ``{family}`` entry of ``jaxloss.REGISTRY``, generated from the registry. The shared options "
            "``weights``, ``where`` and ``reduction`` follow :doc:`conventions`.", ""]
    if family == "gan":  # the module docstring states the two-term convention the GAN losses share
      head += [".. automodule:: jaxloss.gan", "   :no-members:", ""]
    pages[family] = "\n".join(head + [_loss_section(n, s) for n, s in items])
  return pages


STATIC_PAGES = {
    "conventions": """\
Shared conventions
==================

.. automodule:: jaxloss._base
   :no-members:

Run-time checks
---------------

.. autofunction:: jaxloss.runtime_checks

.. autofunction:: jaxloss.runtime_checks_enabled

Reduction
---------

.. autofunction:: jaxloss.reduce_loss
{helpers}""",
    "registry": """\
Registry
========

.. automodule:: jaxloss._spec
   :no-members:

.. autoclass:: jaxloss.LossSpec
   :members: unreduced, diff_argnums

.. autoclass:: jaxloss.EdgeCase
""",
    "verify": """\
Verifier
========

.. automodule:: jaxloss.verify
   :members:

Command line
------------

``python -m jaxloss verify --help``::

{cli_help}
""",
    "fused": """\
Fused linear cross-entropy
==========================

.. automodule:: jaxloss.fused
   :members:
""",
    "gan": """\
GAN module
==========

.. automodule:: jaxloss.gan
   :no-members:
""",
    "compat": """\
Peer-exact compatibility
========================

Keras 3
-------

.. automodule:: jaxloss.compat.keras
   :members:

PyTorch
-------

.. automodule:: jaxloss.compat.torch
   :members:
""",
}


def _helpers_section() -> str:
  """Public functions of ``jaxloss`` that are neither registry losses nor documented above (e.g. CTC paddings)."""
  import inspect  # pylint: disable=g-import-not-at-top

  losses = {spec.fn for spec in jaxloss.REGISTRY.values()}
  shown = {"reduce_loss", "runtime_checks", "runtime_checks_enabled"}
  names = [n for n in jaxloss.__all__ if n not in shown and inspect.isfunction(getattr(jaxloss, n))
           and getattr(jaxloss, n) not in losses]
  if not names:
    return ""
  return "\nHelpers\n-------\n\n" + "".join(f".. autofunction:: jaxloss.{n}\n\n" for n in names)


def _cli_help() -> str:
  import contextlib  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top

  from jaxloss import __main__ as cli  # pylint: disable=g-import-not-at-top

  buf = io.StringIO()
  with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
    cli.main(["verify", "--help"])
  return textwrap.indent(buf.getvalue().rstrip() or "(no help text)", "   ")


def write_pages(out_dir: pathlib.Path) -> list[str]:
  out_dir.mkdir(parents=True, exist_ok=True)
  pages = family_pages()
  order = [f for f in FAMILY_TITLES if f in pages] + sorted(f for f in pages if f not in FAMILY_TITLES)
  written = []
  for family in order:
    (out_dir / f"{family}.rst").write_text(pages[family], encoding="utf-8")
    written.append(family)
  for name, text in STATIC_PAGES.items():
    if name == "gan" and "gan" in pages:
      continue
    if name == "verify":
      text = text.format(cli_help=_cli_help())
    if name == "conventions":
      text = text.format(helpers=_helpers_section())
    (out_dir / f"{name}.rst").write_text(text, encoding="utf-8")
    written.append(name)
  toc = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
  toc += [f"   {w}" for w in ["conventions", *order, "verify", "fused", "compat", "registry"] if w in written]
  (out_dir / "index.rst").write_text("\n".join(toc) + "\n", encoding="utf-8")
  # Remove stale pages of families that no longer exist.
  for path in out_dir.glob("*.rst"):
    if path.stem not in written and path.stem != "index":
      path.unlink()
  return written
