"""Times every loss of ``jaxloss.REGISTRY`` against its optax peer and a naive version.

For each loss and each size ("small", "large") it compiles, then times in one
interleaved run (see ``_harness.time_interleaved``):

* ``value``: the jitted mean loss;
* ``value_and_grad``: the jitted ``jax.value_and_grad`` of the mean loss with
  respect to the first argument (the predictions / logits);

for three candidates: ``jaxloss`` (``spec.fn`` with its default
``reduction="mean"``), ``optax`` (``mean(spec.optax_peer(...))``, where a peer
exists) and ``naive`` (``mean(spec.naive(...))``). It prints medians, the
ratios jaxloss / optax and jaxloss / naive, compile times (measured apart) and
the device name. Losses slower than optax by more than ``--threshold`` (5%) on
``value_and_grad`` at the large size are timed again with twice the samples
and, if still slow, diagnosed with op counts of the optimized HLO.

Inputs: ``spec.sample(key, dtype)`` gives the loss's arguments at a small
shape. To reach a size, in order of preference:

1. ``spec.bench_sample(key, dtype, elems)``, if the spec has one;
2. ``spec.sample(key, dtype, shape=...)`` if the sampler takes ``shape`` (the
   shape of the first argument: the leading axis scaled, and for row-wise
   losses the class axis set to ``--classes``), used when the first returned
   argument has that shape;
3. tiling: every array argument (not scalars) is repeated along axis 0 by
   the same factor (labels stay valid, arguments of different lengths, such as
   a GAN's real and fake logits, keep their proportion; the data repeat, which
   does not matter for timing).

Usage::

  python benchmarks/bench.py                       # all losses, small + large
  python benchmarks/bench.py --quick --names squared_error
  python benchmarks/bench.py --out benchmarks/results/cpu.md --json /tmp/b.json
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as H  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

CANDIDATES = ("jaxloss", "optax", "naive")
MODES = ("value", "value_and_grad")


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def _accepts_shape(fn: Callable[..., Any]) -> bool:
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False
  return "shape" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def target_shape(shape: Sequence[int], elems: int, *, rowwise: bool, classes: int | None) -> tuple[int, ...]:
  """The first argument's shape scaled to about ``elems`` elements (leading axis)."""
  shape = tuple(int(s) for s in shape)
  if not shape:
    return shape
  if rowwise and classes and len(shape) >= 2:
    shape = shape[:-1] + (int(classes),)
  rest = math.prod(shape[1:]) if len(shape) > 1 else 1
  return (max(1, elems // max(rest, 1)),) + shape[1:]


def _tile(args: Sequence[Any], elems: int) -> tuple[Any, ...]:
  a0 = args[0]
  if np.ndim(a0) == 0:
    return tuple(args)
  reps = max(1, math.ceil(elems / max(np.size(a0), 1)))
  out = []
  for a in args:
    if hasattr(a, "shape") and np.ndim(a) >= 1:
      a = jnp.tile(jnp.asarray(a), (reps,) + (1,) * (np.ndim(a) - 1))
    out.append(a)
  return tuple(out)


def make_inputs(spec: Any, key: jax.Array, dtype: Any, elems: int,
                classes: int | None) -> tuple[tuple[Any, ...], str]:
  """Arguments of ``spec`` with about ``elems`` elements in the first one, and how."""
  sizer = getattr(spec, "bench_sample", None)
  if sizer is not None:
    return tuple(sizer(key, dtype, elems)), "bench_sample"
  base = tuple(spec.sample(key, dtype))
  if _accepts_shape(spec.sample) and np.ndim(base[0]) >= 1:
    shape = target_shape(np.shape(base[0]), elems, rowwise=spec.rowwise, classes=classes)
    try:
      args = tuple(spec.sample(key, dtype, shape=shape))
      if tuple(np.shape(args[0])) == shape:
        return args, "sample(shape=)"
    except Exception:  # pylint: disable=broad-except
      pass  # the sampler's `shape` means something else: fall back to tiling.
  return _tile(base, elems), "tiled"


# --------------------------------------------------------------------------
# candidates
# --------------------------------------------------------------------------
def _mean_of(unreduced: Callable[..., Any]) -> Callable[..., Any]:
  def f(*args):
    return jnp.mean(unreduced(*args))

  return f


def candidates(spec: Any) -> dict[str, Callable[..., Any]]:
  """Mean-reduced scalar functions of the loss's arguments, by candidate name."""
  out = {"jaxloss": lambda *args: spec.fn(*args)}
  if spec.optax_peer is not None:
    out["optax"] = _mean_of(spec.optax_peer)
  if spec.naive is not None:
    out["naive"] = _mean_of(spec.naive)
  return out


def _vg(f: Callable[..., Any]) -> Callable[..., Any]:
  return jax.value_and_grad(f, argnums=0)


# --------------------------------------------------------------------------
# one loss at one size
# --------------------------------------------------------------------------
def bench_one(spec: Any, size: str, elems: int, args_cfg: argparse.Namespace) -> dict[str, Any]:
  key = jax.random.PRNGKey(args_cfg.seed)
  dtype = jnp.dtype(args_cfg.dtype)
  rec: dict[str, Any] = {"loss": spec.name, "size": size, "errors": {}}
  try:
    args, how = make_inputs(spec, key, dtype, elems, args_cfg.classes if size == "large" else None)
  except Exception as e:  # pylint: disable=broad-except
    rec["errors"]["inputs"] = f"{type(e).__name__}: {e}"
    return rec
  args = tuple(jax.device_put(a) if hasattr(a, "shape") else a for a in args)
  rec["shapes"] = [list(np.shape(a)) for a in args]
  rec["dtypes"] = [str(getattr(a, "dtype", type(a).__name__)) for a in args]
  rec["sized_by"] = how
  cands = candidates(spec)
  compiled: dict[tuple[str, str], H.Compiled] = {}
  values: dict[str, float] = {}
  for cname, f in cands.items():
    for mode in MODES:
      fn = f if mode == "value" else _vg(f)
      try:
        c = H.compile_fn(fn, *args)
        out = H.block(c(*args))
      except Exception as e:  # pylint: disable=broad-except
        rec["errors"][f"{cname}/{mode}"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if args_cfg.verbose:
          traceback.print_exc()
        continue
      compiled[(cname, mode)] = c
      if mode == "value":
        values[cname] = float(np.asarray(out, np.float64))
  rec["values"] = values
  if "jaxloss" in values:
    for peer in ("optax", "naive"):
      if peer in values:
        a, b = values["jaxloss"], values[peer]
        rec[f"value_rel_diff_{peer}"] = abs(a - b) / max(abs(b), 1e-30) if math.isfinite(a) and math.isfinite(b) else None
  cases = {f"{c}/{m}": (compiled[(c, m)], args) for (c, m) in compiled}
  if not cases:
    return rec
  timings = H.time_interleaved(cases, repeats=args_cfg.repeats, warmup=args_cfg.warmup,
                               min_sample_s=args_cfg.min_sample_s)
  rec["timings"] = {k: v.as_dict() for k, v in timings.items()}
  rec["_compiled"] = compiled
  rec["_args"] = args
  return rec


def median(rec: dict[str, Any], cand: str, mode: str) -> float | None:
  t = rec.get("timings", {}).get(f"{cand}/{mode}")
  return None if t is None else t["median_s"]


def compile_s(rec: dict[str, Any], cand: str, mode: str) -> float | None:
  t = rec.get("timings", {}).get(f"{cand}/{mode}")
  return None if t is None else t["compile_s"]


def confirm_and_diagnose(rec: dict[str, Any], args_cfg: argparse.Namespace) -> None:
  """Re-times a jaxloss-vs-optax miss with twice the samples; adds HLO op counts."""
  compiled, args = rec["_compiled"], rec["_args"]
  pair = {k: (compiled[k], args) for k in (("jaxloss", "value_and_grad"), ("optax", "value_and_grad"))}
  t = H.time_interleaved({f"{c}/{m}": v for (c, m), v in pair.items()}, repeats=2 * args_cfg.repeats,
                         warmup=args_cfg.warmup, min_sample_s=args_cfg.min_sample_s)
  rec["confirm_ratio"] = t["jaxloss/value_and_grad"].median_s / t["optax/value_and_grad"].median_s
  rec["confirm_min_ratio"] = t["jaxloss/value_and_grad"].min_s / t["optax/value_and_grad"].min_s
  rec["hlo"] = {c: H.hlo_summary(compiled[(c, "value_and_grad")]) for c in ("jaxloss", "optax")}


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def _ratio(rec: dict[str, Any], mode: str, peer: str) -> float | None:
  a, b = median(rec, "jaxloss", mode), median(rec, peer, mode)
  return None if a is None or b is None else a / b


def _shape_str(rec: dict[str, Any]) -> str:
  if "shapes" not in rec:
    return "-"
  return " ".join("[" + ",".join(map(str, s)) + "]" for s in rec["shapes"][:2])


def _flag(rec: dict[str, Any], peer: str) -> str:
  d = rec.get(f"value_rel_diff_{peer}")
  return "" if d is None or d <= 1e-3 else " ≠"


def size_table(recs: Sequence[dict[str, Any]]) -> str:
  headers = ["loss", "shapes", "value", "÷ optax", "÷ naive", "value_and_grad", "÷ optax", "÷ naive",
             "compile v&g (jaxloss / optax / naive)"]
  rows = []
  for r in recs:
    if "timings" not in r:
      rows.append([r["loss"], _shape_str(r), "error", "", "", "", "", "", "; ".join(r["errors"].values())[:80]])
      continue
    row = [r["loss"], _shape_str(r)]
    for mode in MODES:
      row.append(H.fmt_time(median(r, "jaxloss", mode)))
      for peer in ("optax", "naive"):
        q = _ratio(r, mode, peer)
        row.append("-" if q is None else f"{q:.2f}{_flag(r, peer)}")
    row.append(" / ".join(H.fmt_time(compile_s(r, c, "value_and_grad")) for c in CANDIDATES))
    rows.append(row)
  return H.markdown_table(headers, rows)


def report(recs: Sequence[dict[str, Any]], sizes: Sequence[str], threshold: float, env: dict[str, Any],
           elems: dict[str, int]) -> tuple[str, list[str]]:
  parts = []
  for size in sizes:
    rs = [r for r in recs if r["size"] == size]
    if not rs:
      continue
    parts.append(f"#### {size} (about {elems[size]:,} elements in the first argument)\n")
    parts.append(size_table(rs))
    parts.append("")
  misses = []
  gate = "large" if "large" in sizes else sizes[-1]
  checked = [r for r in recs if r["size"] == gate and _ratio(r, "value_and_grad", "optax") is not None]
  noise = []
  for r in checked:
    if r.get("confirm_ratio") is None:
      continue
    if r["confirm_ratio"] > 1 + threshold and r["confirm_min_ratio"] > 1 + threshold:
      h = r["hlo"]
      misses.append(f"- `{r['loss']}`: value_and_grad {r['confirm_ratio']:.2f}x optax (re-timed median; "
                    f"fastest samples {r['confirm_min_ratio']:.2f}x). Optimized HLO, jaxloss: "
                    f"{H.hlo_brief(h['jaxloss'])}; optax: {H.hlo_brief(h['optax'])}")
    else:
      noise.append(f"`{r['loss']}` ({_ratio(r, 'value_and_grad', 'optax'):.2f}x, re-timed "
                   f"{r['confirm_ratio']:.2f}x median / {r['confirm_min_ratio']:.2f}x fastest)")
  parts.append(f"#### Goal: value_and_grad at the {gate} size within {threshold:.0%} of optax\n")
  n_peer = len(checked)
  if misses:
    parts.append(f"{len(misses)} of {n_peer} losses with an optax peer miss it: slower by more than "
                 f"{threshold:.0%} both in the median and in the fastest sample when re-timed (jaxloss vs optax "
                 "only, twice the samples):\n")
    parts.extend(misses)
  else:
    parts.append(f"All {n_peer} losses with an optax peer are within {threshold:.0%} "
                 "(a loss over the threshold is re-timed, jaxloss vs optax only, twice the samples, and counted "
                 "as a miss only if both its median and its fastest sample stay over).")
  if noise:
    parts.append(f"\nOver the threshold at first, not on re-timing (noise): {', '.join(noise)}.")
  no_peer = sorted({r["loss"] for r in recs if "optax/value" not in r.get("timings", {})})
  if no_peer:
    parts.append(f"\nNo optax peer (or the peer failed): {', '.join(no_peer)}.")
  errs = [f"- `{r['loss']}` ({r['size']}): {k}: {v}" for r in recs for k, v in r["errors"].items()]
  if errs:
    parts.append("\nErrors:\n")
    parts.extend(errs)
  del env
  return "\n".join(parts) + "\n", misses


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--names", default="", help="comma-separated loss names (default: the whole registry)")
  p.add_argument("--sizes", default="small,large")
  p.add_argument("--small-elems", type=int, default=4096)
  p.add_argument("--large-elems", type=int, default=None,
                 help="default 2**20 on CPU, 2**24 on an accelerator")
  p.add_argument("--classes", type=int, default=1024, help="class axis of row-wise losses at the large size "
                 "(only where the sampler takes `shape`)")
  p.add_argument("--dtype", default="float32")
  p.add_argument("--repeats", type=int, default=15)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--min-sample-s", type=float, default=0.02)
  p.add_argument("--threshold", type=float, default=0.05)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--quick", action="store_true", help="tiny shapes, few samples: a smoke test, not a measurement")
  p.add_argument("--out", default=None, help="write a markdown fragment here (e.g. benchmarks/results/cpu.md)")
  p.add_argument("--json", default=None, help="write every record here")
  p.add_argument("--title", default=None)
  p.add_argument("--budget-s", type=float, default=None,
                 help="start no new loss after this many seconds (the skipped ones are listed)")
  p.add_argument("--verbose", action="store_true")
  a = p.parse_args(argv)
  if a.quick:
    a.sizes, a.small_elems, a.large_elems = "small", min(a.small_elems, 256), 1024
    a.repeats, a.warmup, a.min_sample_s, a.classes = 3, 1, 0.001, 16

  import jaxloss  # pylint: disable=g-import-not-at-top

  env = H.env_info()
  if a.large_elems is None:
    a.large_elems = 2**20 if env["platform"] == "cpu" else 2**24
  elems = {"small": a.small_elems, "large": a.large_elems}
  sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
  for s in sizes:
    if s not in elems:
      p.error(f"unknown size {s!r}; use small and/or large")
  names = [n.strip() for n in a.names.split(",") if n.strip()] or list(jaxloss.REGISTRY)
  unknown = [n for n in names if n not in jaxloss.REGISTRY]
  if unknown:
    p.error(f"unknown loss names {unknown}; known: {sorted(jaxloss.REGISTRY)}")
  print(f"# device: {env['device']} · jax {env['jax']} · {env['date']} · {len(names)} losses", flush=True)

  t_start = time.perf_counter()
  recs = []
  skipped = []
  for name in names:
    if a.budget_s is not None and time.perf_counter() - t_start > a.budget_s:
      skipped.append(name)
      continue
    spec = jaxloss.REGISTRY[name]
    for size in sizes:
      rec = bench_one(spec, size, elems[size], a)
      recs.append(rec)
      q = _ratio(rec, "value_and_grad", "optax")
      qn = _ratio(rec, "value_and_grad", "naive")
      print(f"{name:40s} {size:5s} {_shape_str(rec):24s} v&g {H.fmt_time(median(rec, 'jaxloss', 'value_and_grad')):>9s}"
            f"  ÷optax {'-' if q is None else f'{q:.2f}':>5s}  ÷naive {'-' if qn is None else f'{qn:.2f}':>5s}"
            + (f"  ERR {rec['errors']}" if rec["errors"] else ""), flush=True)
  gate = "large" if "large" in sizes else sizes[-1]
  for rec in recs:
    q = _ratio(rec, "value_and_grad", "optax")
    if rec["size"] == gate and q is not None and q > 1 + a.threshold:
      confirm_and_diagnose(rec, a)
      print(f"re-timed {rec['loss']}: {rec['confirm_ratio']:.2f}x optax (fastest samples "
            f"{rec['confirm_min_ratio']:.2f}x)", flush=True)
  body, misses = report(recs, sizes, a.threshold, env, elems)
  wall = time.perf_counter() - t_start
  notes = [
      f"{a.dtype} inputs; mean reduction; value_and_grad is with respect to the first argument. "
      f"Medians of {a.repeats} interleaved samples (candidates rotated every round) after {a.warmup} "
      "warm-up calls; compile time measured apart. Ratios < 1: jaxloss is faster. "
      "`≠`: the peer's mean differs from jaxloss's by more than 1e-3 relative (a different definition).",
      f"Inputs per loss: `{'`, `'.join(sorted({r.get('sized_by', '?') for r in recs}))}` "
      "(see bench.py's docstring). Whole run: " + f"{wall:.0f} s.",
  ]
  if env["platform"] == "cpu":
    notes.append("Shared CPU: other jobs ran on this host at the same time (load average in the header), so "
                 "single ratios carry a few percent of noise; interleaving and medians keep the candidates "
                 "under the same load, and any miss is re-timed before being reported.")
  if skipped:
    notes.append(f"Time budget ({a.budget_s:.0f} s) spent: not measured: {', '.join(skipped)}.")
  if a.quick:
    notes.append("`--quick`: a smoke test at tiny shapes, not a measurement.")
  title = a.title or f"Registry losses vs optax and naive ({env['platform']}, {a.dtype})"
  text = H.fragment(title, body, env, script="benchmarks/bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    notes=notes)
  print(text)
  if a.out:
    H.write_fragment(a.out, text)
  if a.json:
    H.write_json(a.json, {"env": env, "args": vars(a), "misses": misses,
                          "records": [{k: v for k, v in r.items() if not k.startswith("_")} for r in recs]})
  failed = [r for r in recs if any(k == "inputs" or k.startswith("jaxloss/") for k in r["errors"])]
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
