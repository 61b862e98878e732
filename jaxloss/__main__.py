"""Command line: ``python -m jaxloss verify [NAMES...] [--dtypes bf16,f16,f32,f64] [--json PATH]``.

Also installed as the ``jaxloss`` console script. Prints a table of
loss x check x dtype (``ok`` or ``FAIL`` with the largest normwise relative
error |autodiff - closed form| / |closed form| over the loss's points), the
worst input of every failure, and exits with status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence


def _table(report, dtypes: Sequence[str]) -> str:
  from jaxloss import verify  # pylint: disable=g-import-not-at-top

  short = [verify._short(verify.resolve_dtype(d)) for d in dtypes]  # pylint: disable=protected-access
  cells: dict[tuple[str, str], dict[str, tuple[bool, float, int]]] = {}
  for r in report.rows:
    c = cells.setdefault((r.loss, r.check), {})
    ok, err, n = c.get(r.dtype, (True, 0.0, 0))
    c[r.dtype] = (ok and r.ok, max(err, r.rel_error), n + r.n)
  header = ["loss", "check"] + short
  lines = [header]
  for (loss, check), c in cells.items():
    row = [loss, check]
    for d in short:
      if d not in c or c[d][2] == 0:
        row.append("-")
      else:
        ok, err, _ = c[d]
        row.append(f"{'ok' if ok else 'FAIL'} {err:.1e}")
    lines.append(row)
  widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
  return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in lines)


def _verify(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(
      prog="jaxloss verify",
      description="Check every closed-form derivative in jaxloss.REGISTRY (or the named losses) against "
      "reverse- and forward-mode autodiff in each dtype and float64 finite differences.")
  parser.add_argument("names", nargs="*", help="loss names (default: the whole registry)")
  parser.add_argument("--dtypes", default="bf16,f16,f32,f64",
                      help="comma-separated dtypes (bf16, f16, f32, f64; default all four)")
  parser.add_argument("--json", metavar="PATH", help="also write the full report as JSON")
  parser.add_argument("--seed", type=int, default=0, help="seed of the random points and directions")
  parser.add_argument("--jobs", type=int, default=None,
                      help="worker processes (default: the number of CPU cores, at most 4)")
  parser.add_argument("--list", action="store_true", help="list the registered losses and exit")
  args = parser.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top

  from jaxloss import REGISTRY, verify  # pylint: disable=g-import-not-at-top

  if args.list:
    for name, spec in REGISTRY.items():
      print(f"{name:45s} {spec.family}")
    return 0
  unknown = [n for n in args.names if n not in REGISTRY]
  if unknown:
    parser.error(f"unknown loss(es) {unknown}; known: {', '.join(REGISTRY)}")
  dtypes = [d for d in args.dtypes.split(",") if d.strip()]
  try:
    for d in dtypes:
      verify.resolve_dtype(d)
  except (ValueError, TypeError) as e:
    parser.error(str(e))

  t0 = time.perf_counter()

  def progress(name, rep):
    status = "ok" if rep.ok else "FAIL"
    print(f"  {name:45s} {status:4s} {sum(rep.timings.values()):6.1f}s", file=sys.stderr, flush=True)

  jobs = args.jobs if args.jobs is not None else min(4, os.cpu_count() or 1)
  report = verify.check_all(args.names or None, dtypes=dtypes, seed=args.seed, progress=progress, jobs=jobs)
  elapsed = time.perf_counter() - t0
  device = jax.devices()[0]
  print(f"jaxloss verify: {len(report.losses)} losses x {len(dtypes)} dtypes on "
        f"{device.platform} ({getattr(device, 'device_kind', '?')}), {elapsed:.1f} s")
  print("cells: ok/FAIL and the largest normwise relative error |autodiff - closed form| / |closed form|")
  print(_table(report, dtypes))
  if args.json:
    report.to_json(args.json)
  if not report.ok:
    print(f"\n{len(report.failures)} failing checks:")
    print(report.table(report.failures))
    return 1
  print("\nall checks passed")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    print((__doc__ or "").strip())
    print("\ncommands:\n  verify   check the closed-form derivatives (python -m jaxloss verify --help)")
    return 0 if argv else 2
  if argv[0] == "verify":
    return _verify(argv[1:])
  print(f"unknown command {argv[0]!r}; try: jaxloss verify --help", file=sys.stderr)
  return 2


if __name__ == "__main__":
  sys.exit(main())
