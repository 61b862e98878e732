"""Where ``jaxloss.verify``'s time goes: the numbers behind docs/verify.md "Where the time goes".

Three measurements, each printed as a small table:

* ``--cli``: ``python -m jaxloss verify`` over the whole registry (or ``--names``)
  as a user runs it, in a subprocess: wall time and the CPU time of the process
  and its workers (``resource.getrusage(RUSAGE_CHILDREN)``). The comparison the
  docs make is against another checkout of the code run the same way on the
  same host in the same session (``--pythonpath DIR`` runs the CLI of the
  jaxloss found in ``DIR``), because a shared 2-core host's speed varies.
* ``--groups``: how many (config, shape) groups the verifier compiles per
  dtype, counted from the registry with the verifier's own grouping (flattening
  of elementwise losses, repeated rows of independent-row losses, integer
  arguments in the sampler's dtype), and how many of them are edge cases of
  their own shape.
* ``--phases``: one process, loss by loss, with the verifier's programs traced,
  lowered and compiled one after the other (not overlapped, as the verifier
  does) so that each phase is timed alone: seconds per phase and per program
  (the float64 reference program and one autodiff program per dtype).
  ``--compile-option KEY=VALUE`` (repeatable) adds XLA compile options to the
  verifier's own, to measure what an option does to the compile phase.

Usage::

  python benchmarks/verify_time.py --cli --groups --phases
  python benchmarks/verify_time.py --phases --names dice_loss ctc_loss --compile-option xla_cpu_use_xnnpack=false
  python benchmarks/verify_time.py --cli --pythonpath /tmp/old_checkout   # the previous code, same host
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _base, verify
from jaxloss._registry import REGISTRY


def cli_time(names: Sequence[str], pythonpath: str | None) -> dict[str, float]:
  env = dict(os.environ)
  if pythonpath:
    env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  t0 = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "jaxloss", "verify", *names], env=env, capture_output=True,
                        text=True, check=False)
  wall = time.perf_counter() - t0
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  if proc.returncode != 0:
    raise SystemExit(f"jaxloss verify failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  return {"wall_s": wall, "cpu_s": cpu}


def _tasks(spec: Any) -> list[Any]:
  fn = lambda *a, **c: spec.fn(*a, reduction="none", **c)
  with jax.enable_x64(True):
    sample = spec.sample(jax.random.PRNGKey(0), jnp.float64)
    return verify._build_tasks(  # pylint: disable=protected-access
        fn, dict(spec.grads), spec.hessian, spec.hessian_argnum, sample, list(spec.edge_cases),
        spec.float_argnums, spec.arg_names, configs=list(spec.configs), elementwise=not spec.rowwise,
        independent_rows=spec.rowwise and not spec.batch_coupled)


def count_groups(names: Sequence[str]) -> dict[str, int]:
  """(config, shape) groups per dtype as the verifier forms them (near points share their base's shape)."""
  out = collections.Counter()
  for name in names:
    for task in _tasks(REGISTRY[name]):
      pts = list(task.points)
      if task.flatten:
        length = max(int(np.size(p.args[0])) for p in pts)
        pts = [verify._tile(p, length) for p in pts]  # pylint: disable=protected-access
      elif task.tile_rows:
        pts = verify._tile_rows(pts)  # pylint: disable=protected-access
      kinds: dict[tuple, set[str]] = collections.defaultdict(set)
      for p in pts:
        kinds[verify._shape_sig(p.args)].add(p.kind)  # pylint: disable=protected-access
      out["tasks"] += 1
      out["groups"] += len(kinds)
      out["edge-only groups"] += sum("given" not in k for k in kinds.values())
  out["losses"] = len(names)
  return dict(out)


def phases(names: Sequence[str], extra_options: dict[str, Any]) -> dict[tuple[str, str], float]:
  """Seconds per (program, phase) summed over ``names``: program 0 is the float64 reference, 1.. the dtypes."""
  acc: collections.Counter = collections.Counter()
  opts = dict(verify._COMPILER_OPTIONS) if jax.default_backend() == "cpu" else {}  # pylint: disable=protected-access
  opts.update(extra_options)
  labels = ["f64 reference"] + [f"autodiff {verify._short(verify.resolve_dtype(d))}"  # pylint: disable=protected-access
                                for d in verify.ALL_DTYPES]

  def sequential(units):
    outs = []
    with _base.trace_for_platform(jax.default_backend()):
      for j, (f, a) in enumerate(units):
        t0 = time.perf_counter()
        traced = jax.jit(f).trace(*a)
        t1 = time.perf_counter()
        lowered = traced.lower()
        t2 = time.perf_counter()
        compiled = lowered.compile(compiler_options=opts)
        t3 = time.perf_counter()
        outs.append(jax.device_get(compiled(*a)))
        t4 = time.perf_counter()
        for phase, dt in (("trace", t1 - t0), ("lower", t2 - t1), ("compile", t3 - t2), ("run", t4 - t3)):
          acc[(labels[j], phase)] += dt
    return outs, {"trace": 0.0, "compile": 0.0, "run": 0.0}

  original = verify._compile_and_run  # pylint: disable=protected-access
  verify._compile_and_run = sequential  # pylint: disable=protected-access
  try:
    verify.check_registered("squared_error")  # imports and first-use costs out of the measurement
    acc.clear()
    t0 = time.perf_counter()
    for name in names:
      verify.check_registered(name).assert_ok()
    acc[("all", "wall")] = time.perf_counter() - t0
  finally:
    verify._compile_and_run = original  # pylint: disable=protected-access
  return dict(acc)


def _option(text: str) -> tuple[str, Any]:
  key, _, value = text.partition("=")
  if value.lower() in ("true", "false"):
    return key, value.lower() == "true"
  try:
    return key, int(value)
  except ValueError:
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--names", nargs="*", help="losses (default: the whole registry)")
  p.add_argument("--cli", action="store_true", help="time `python -m jaxloss verify` in a subprocess")
  p.add_argument("--pythonpath", help="with --cli: run the jaxloss found in this directory")
  p.add_argument("--groups", action="store_true", help="count the verifier's (config, shape) groups")
  p.add_argument("--phases", action="store_true", help="trace / lower / compile / run seconds per program")
  p.add_argument("--compile-option", action="append", default=[], type=_option, metavar="KEY=VALUE",
                 help="with --phases: an extra XLA compile option")
  args = p.parse_args(argv)
  names = list(args.names or REGISTRY)
  if not (args.cli or args.groups or args.phases):
    p.error("choose at least one of --cli, --groups, --phases")
  print(f"{len(names)} losses; jax {jax.__version__}; {jax.default_backend()}; {os.cpu_count()} CPUs; "
        f"load average {tuple(round(x, 2) for x in os.getloadavg())}")
  if args.cli:
    r = cli_time(names if args.names else [], args.pythonpath)
    print(f"\n| `python -m jaxloss verify` | wall | CPU |\n| --- | --- | --- |\n"
          f"| {args.pythonpath or 'this checkout'} | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s |")
  if args.groups:
    g = count_groups(names)
    print("\n| count | value |\n| --- | --- |")
    for k in ("losses", "tasks", "groups", "edge-only groups"):
      print(f"| {k} | {g.get(k, 0)} |")
  if args.phases:
    acc = phases(names, dict(args.compile_option))
    total = sum(v for (prog, ph), v in acc.items() if prog != "all" and ph != "run")
    print(f"\nOne process, compiled after tracing: {acc[('all', 'wall')]:.1f} s wall; trace + lower + compile "
          f"{total:.1f} s; options {dict(args.compile_option) or 'the verifier defaults'}")
    progs = list(dict.fromkeys(prog for prog, _ in acc if prog != "all"))
    print("\n| program | trace | lower | compile | run | share |\n| --- | --- | --- | --- | --- | --- |")
    for prog in progs:
      row = [acc.get((prog, ph), 0.0) for ph in ("trace", "lower", "compile", "run")]
      print(f"| {prog} | " + " | ".join(f"{v:.1f} s" for v in row) + f" | {sum(row[:3]) / total:.0%} |")
    col = [sum(acc.get((prog, ph), 0.0) for prog in progs) for ph in ("trace", "lower", "compile")]
    print("| all | " + " | ".join(f"{v:.1f} s ({v / total:.0%})" for v in col) + " | | |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
