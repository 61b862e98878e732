"""Sphinx configuration of the jaxloss reference site.

Build (strict: any warning fails, a broken cross-reference included)::

  python -m pip install -e ".[docs]"
  python -m sphinx -W --keep-going -n -b html docs docs/_build/html

The API pages are generated at build time from ``jaxloss.REGISTRY`` (one page
per family, every registered loss on it), so a new loss appears without
editing any page. Math is rendered by a vendored MathJax 3 (``_static/mathjax``,
Apache-2.0): the built site loads nothing from another host.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import gen_api  # noqa: E402  pylint: disable=wrong-import-position

import jaxloss  # noqa: E402  pylint: disable=wrong-import-position

project = "jaxloss"
author = "jaxloss developers"
release = jaxloss.__version__
copyright = "2026, jaxloss developers"  # pylint: disable=redefined-builtin

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "**/.ipynb_checkpoints"]
templates_path: list[str] = []

# --- math: vendored MathJax, no CDN ---
html_static_path = ["_static"]
mathjax_path = "mathjax/tex-chtml.js"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# --- autodoc ---
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # NamedTuple fields are documented once, as fields

# No network at build time (no intersphinx): names of other libraries in signatures are not cross-referenced.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jnp|np|numpy|optax|chex|flax|typing|collections|types|enum|dataclasses|Array|ArrayLike"
               r"|DTypeLike|Reduction|Literal|Callable|Mapping|Sequence|Any)(\..*)?"),
    (r"py:.*", r"(int|float|bool|str|None|tuple|list|dict|object|type|optional|callable|array|function)"),
    (r"py:.*", r"jax\.Array|jax\.typing\.ArrayLike|jax\.experimental\.checkify.*|contextlib\..*|dict\[.*"),
    # helpers of jaxloss._base named in its (documented) conventions text; internal, not part of the API
    (r"py:func", r"check_scalar_in|prepare_where"),
    # private family modules and helpers named in docstrings; the API pages document the public names
    (r"py:(mod|func|data)", r"jaxloss\._.*"),
]
autodoc_default_options = {"members": True}
suppress_warnings = ["myst.header"]

# --- HTML ---
html_theme = "furo"
html_title = f"jaxloss {release}"
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False


def _check_public_docstrings(app):  # pylint: disable=unused-argument
  """Every public callable of the package has a docstring (a missing one fails the strict build)."""
  from sphinx.util import logging  # pylint: disable=g-import-not-at-top

  log = logging.getLogger(__name__)
  for module_name, names in gen_api.public_names().items():
    module = sys.modules[module_name]
    for name in names:
      obj = getattr(module, name)
      if (inspect.isfunction(obj) or inspect.isclass(obj)) and not (obj.__doc__ or "").strip():
        log.warning("public %s.%s has no docstring", module_name, name, type="jaxloss", subtype="docstring")


def _generate(app):  # pylint: disable=unused-argument
  gen_api.write_pages(HERE / "api")


def setup(app):
  app.connect("builder-inited", _generate)
  app.connect("builder-inited", _check_public_docstrings)
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  return {"parallel_read_safe": True}
