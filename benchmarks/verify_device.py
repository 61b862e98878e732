"""Runs ``jaxloss.verify`` over the registry on the current device and writes a results fragment.

``python -m jaxloss verify`` prints its table to the terminal; this script runs
the same checks (``jaxloss.verify.check_all``) and writes the outcome as a
``benchmarks/results/`` fragment, so that the verification on each backend (the
CPU here, an NVIDIA GPU in ``gpu_session.sh``) lands in ``RESULTS.md`` with the
device name, like every other measured table.

The table has one row per loss and one column per dtype. A cell reads
``ok 0.31`` when every check (reverse, forward, float64 finite differences,
Hessian; given, edge and nearby points) passed, with the worst ratio of error
to tolerance over those checks, and ``FAIL n/m`` with the failing rows counted
otherwise; the failing rows are listed under the table.

Usage::

  python benchmarks/verify_device.py --out benchmarks/results/verify_cpu.md
  python benchmarks/verify_device.py squared_error --dtypes f32   # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as H  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from jaxloss import verify  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


def summarize(report: verify.Report, dtypes: Sequence[str]) -> tuple[str, list[str]]:
  """(markdown table loss x dtype, lines for the failing rows)."""
  short = [verify._short(verify.resolve_dtype(d)) for d in dtypes]  # pylint: disable=protected-access
  cells: dict[str, dict[str, list[float]]] = {}
  failures = []
  for r in report.rows:
    c = cells.setdefault(r.loss, {}).setdefault(r.dtype, [0, 0, 0.0])  # rows, failing rows, worst ratio
    c[0] += 1
    c[1] += 0 if r.ok else 1
    if r.n:
      c[2] = max(c[2], float(r.ratio))
    if not r.ok:
      failures.append(f"- `{r.loss}` {r.arg} {r.check} {r.dtype} ({r.kind}): error {r.max_error:.3g} > "
                      f"tolerance {r.tolerance:.3g}; {r.worst}")
  rows = []
  for loss in sorted(cells):
    row = [f"`{loss}`"]
    for d in short:
      c = cells[loss].get(d)
      if c is None:
        row.append("-")
      elif c[1]:
        row.append(f"FAIL {c[1]}/{c[0]}")
      else:
        row.append(f"ok {c[2]:.2f}")
    rows.append(row)
  return H.markdown_table(["loss"] + short, rows), failures


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("names", nargs="*", help="loss names (default: the whole registry)")
  p.add_argument("--dtypes", default="bf16,f16,f32,f64")
  p.add_argument("--jobs", type=int, default=None, help="worker processes (default: min(4, CPU count))")
  p.add_argument("--out", default=None, help="write the markdown fragment here")
  p.add_argument("--json", default=None, help="write the full report as JSON")
  a = p.parse_args(argv)
  dtypes = [d for d in a.dtypes.split(",") if d]
  env = H.env_info()
  t0 = time.perf_counter()
  jobs = a.jobs if a.jobs is not None else min(4, os.cpu_count() or 1)  # as `python -m jaxloss verify`
  report = verify.check_all(a.names or None, dtypes=dtypes, jobs=jobs)
  seconds = time.perf_counter() - t0
  table, failures = summarize(report, dtypes)
  n_losses = len({r.loss for r in report.rows})
  verdict = "every check passed" if report.ok else f"{len(failures)} failing rows"
  notes = [
      f"`jaxloss.verify.check_all` over {n_losses} losses in {', '.join(dtypes)}: {verdict} "
      f"({len(report.rows)} rows, {seconds:.0f} s including compilation).",
      "Cell: `ok r` when every check of that loss and dtype passed, r the worst error/tolerance ratio "
      "(tolerance from the dtype's epsilon and the point's conditioning; see docs/verify.md); "
      "`FAIL n/m` otherwise.",
  ]
  body = table + ("\n\nFailing rows:\n\n" + "\n".join(failures) if failures else "")
  title = f"Derivative verification ({env.get('platform')})"
  script = "benchmarks/verify_device.py " + " ".join(argv if argv is not None else sys.argv[1:])
  text = H.fragment(title, body, env, script=script.strip(), notes=notes)
  print(text)
  if a.out:
    H.write_fragment(a.out, text)
  if a.json:
    report.to_json(a.json)
  return 0 if report.ok else 1


if __name__ == "__main__":
  raise SystemExit(main())
