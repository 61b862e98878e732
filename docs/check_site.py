"""Checks the built documentation site: offline, and formulas rendered in a real browser.

1. Static: no page or stylesheet of the built site loads anything from another host (scripts, styles, images,
   fonts, iframes). Links to papers in the text are fine (``<a href>``).
2. Browser: headless Chromium (Debian's ``chromium`` package, driven by Playwright) opens every API page and the
   catalog over a local HTTP server, with every request to another host blocked and recorded; on each page MathJax
   must have typeset formulas (``mjx-container`` elements, no ``mjx-merror``), and the visible text must hold no raw
   LaTeX (``\\frac``, ``\\log``, ``\\sum``, ``\\operatorname``, ``$$``, ``.. math::``, ...).

Usage (after building the site, see docs/conf.py)::

  python docs/check_site.py docs/_build/html                 # static + browser checks
  python docs/check_site.py docs/_build/html --static-only   # no browser needed

Exit status 0 when every check passes, 1 otherwise, 2 when the browser is missing (with --require-browser).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import pathlib
import re
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence

EXTERNAL = re.compile(
    r"""<(?:script|link|img|iframe|source|audio|video)\b[^>]*?\b(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)""",
    re.I)
CSS_EXTERNAL = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])((?:https?:)?//[^"')]+)""", re.I)
RAW_LATEX = re.compile(r"\\(frac|log|sum|operatorname|sigma|mathrm|tfrac|partial|ell|qquad|vert|max|min|exp)\b"
                       r"|\$\$|\.\. math::|:math:`")


def static_problems(site: pathlib.Path) -> list[str]:
  problems = []
  for path in sorted(site.rglob("*")):
    if path.suffix not in (".html", ".css", ".js") or not path.is_file():
      continue
    text = path.read_text(encoding="utf-8", errors="replace")
    pattern = EXTERNAL if path.suffix == ".html" else CSS_EXTERNAL
    if path.suffix == ".js":
      continue  # MathJax's code names its CDN as a default it never uses with a local mathjax_path
    for m in pattern.finditer(text):
      problems.append(f"{path.relative_to(site)}: loads {m.group(1)}")
  return problems


def pages_to_check(site: pathlib.Path) -> list[tuple[str, bool]]:
  """``(page, must_have_formulas)``: every API page; the loss pages (one per registry family) and the catalog
  must show typeset formulas."""
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
  import jaxloss  # pylint: disable=g-import-not-at-top

  families = {s.family for s in jaxloss.REGISTRY.values()}
  pages = sorted(str(p.relative_to(site)) for p in (site / "api").glob("*.html") if p.name != "index.html")
  out = [(p, pathlib.Path(p).stem in families) for p in pages]
  missing = [f for f in families if f"api/{f}.html" not in pages]
  if missing:
    raise SystemExit(f"check_site: no page for the registry families {missing}; rebuild the site")
  return out + [("catalog.html", True)]


@contextlib.contextmanager
def serve(site: pathlib.Path) -> Iterator[str]:
  class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  pylint: disable=redefined-builtin
      del format, args

  handler = functools.partial(Quiet, directory=str(site))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}"
  finally:
    server.shutdown()


def find_chromium() -> str | None:
  for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
    if name and shutil.which(name):
      return shutil.which(name)
  return None


def browser_problems(site: pathlib.Path, chromium: str, pages: Sequence[tuple[str, bool]]) -> list[str]:
  from playwright.sync_api import Error as PlaywrightError  # pylint: disable=g-import-not-at-top
  from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top

  problems: list[str] = []
  with serve(site) as base, sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page()
    blocked: list[str] = []

    def route(r):
      if r.request.url.startswith(base):
        r.continue_()
      else:
        blocked.append(r.request.url)
        r.abort()

    page.route("**/*", route)
    for rel, must_have_math in pages:
      blocked.clear()
      page.goto(f"{base}/{rel}", wait_until="load")
      if page.locator("script[src*='mathjax']").count():  # Sphinx loads MathJax only on pages with math
        try:
          page.wait_for_function("() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)",
                                 timeout=60_000)
          page.evaluate("() => MathJax.startup.promise.then(() => true)")
        except PlaywrightError as e:
          problems.append(f"{rel}: MathJax did not start ({str(e).splitlines()[0]})")
      n_math = page.locator("mjx-container").count()
      n_err = page.locator("mjx-merror").count()
      text = page.evaluate("() => document.body.innerText")
      raw = sorted({m.group(0) for m in RAW_LATEX.finditer(text)})
      if must_have_math and n_math == 0:
        problems.append(f"{rel}: no typeset formula")
      if n_err:
        problems.append(f"{rel}: {n_err} MathJax errors")
      if raw:
        problems.append(f"{rel}: raw LaTeX in the visible text: {raw[:8]}")
      if blocked:
        problems.append(f"{rel}: requests to other hosts: {blocked[:5]}")
      print(f"{rel}: {n_math} formulas, {n_err} errors, {len(raw)} raw LaTeX fragments, {len(blocked)} external")
    browser.close()
  return problems


def main(argv: Sequence[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("site", type=pathlib.Path, help="the built HTML directory (docs/_build/html)")
  ap.add_argument("--static-only", action="store_true", help="skip the browser check")
  ap.add_argument("--require-browser", action="store_true", help="exit 2 if no Chromium is installed")
  a = ap.parse_args(argv)
  if not (a.site / "index.html").exists():
    print(f"check_site: {a.site} has no index.html; build the site first (see docs/conf.py)", file=sys.stderr)
    return 1
  problems = static_problems(a.site)
  print(f"static: {len(problems)} external loads")
  if not a.static_only:
    chromium = find_chromium()
    if chromium is None:
      print("check_site: no Chromium found (apt-get install chromium); browser check skipped", file=sys.stderr)
      if a.require_browser:
        return 2
    else:
      problems += browser_problems(a.site, chromium, pages_to_check(a.site))
  for p in problems:
    print("FAIL", p)
  print("check_site:", "ok" if not problems else f"{len(problems)} problems")
  return 0 if not problems else 1


if __name__ == "__main__":
  sys.exit(main())
