"""Prints the README's catalog table from ``jaxloss.REGISTRY`` (or rewrites README.md with ``--write``).

The table in README.md is generated, never edited by hand; ``tests/test_readme.py`` fails when it is stale.
"""

from __future__ import annotations

import argparse
import pathlib
import re

import jaxloss

BEGIN, END = "<!-- catalog:begin -->", "<!-- catalog:end -->"
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _math(tex: str) -> str:
  return "$" + tex.replace("|", r"\vert ").strip() + "$" if tex else ""


def catalog_markdown() -> str:
  rows = [
      "| loss | family | unreduced loss | closed-form derivative in | Hessian | optax peer |",
      "| --- | --- | --- | --- | --- | --- |",
  ]
  for name, spec in jaxloss.REGISTRY.items():
    args = ", ".join(f"`{spec.arg_names[i]}`" for i in spec.diff_argnums)
    hess = f"`{spec.arg_names[spec.hessian_argnum]}`" if spec.hessian is not None else ""
    peer = "yes" if spec.optax_peer is not None else ""
    rows.append(f"| `{name}` | {spec.family} | {_math(spec.formula)} | {args} | {hess} | {peer} |")
  return "\n".join(rows)


def render_readme(text: str) -> str:
  block = f"{BEGIN}\n{catalog_markdown()}\n{END}"
  pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
  if not pattern.search(text):
    raise SystemExit(f"README.md has no {BEGIN} ... {END} block")
  return pattern.sub(lambda _: block, text)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--write", action="store_true", help="rewrite the table in README.md")
  args = parser.parse_args()
  if args.write:
    README.write_text(render_readme(README.read_text()))
  else:
    print(catalog_markdown())


if __name__ == "__main__":
  main()
