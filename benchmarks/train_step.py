"""Every registry loss inside a jitted training step, against its optax (or naive) peer.

What a user pays for swapping optax's loss for jaxloss's is not the loss alone
but the step around it: dispatch, fusion with the model, memory. For each loss
of ``jaxloss.REGISTRY`` that has a peer (``spec.optax_peer``, else
``spec.naive``), this script builds one SGD step of a linear model

    step(params, x, *rest) = params - lr * grad_params mean_loss(f(x @ W + b), *rest)

(``jax.jit`` of ``jax.value_and_grad`` and the update; ``f`` maps the model's
output into the loss's first argument's domain: ``sigmoid`` / ``softmax`` for a
``probs`` argument, ``log_softmax`` for ``log_predictions``, else identity; the
other arguments are the spec's sampler's at that shape and stay fixed). Both
candidates get exactly the same step, only the loss differs, and the peer is
reduced with ``jnp.mean`` of its unreduced output.

Two sizes:

* ``small``: ``x`` ``[128, 64]`` and about 1,280 loss inputs (10 classes for
  row-wise losses): dispatch-bound, the setting where an effect in the jaxpr
  (which takes ``jax.jit`` off its C++ fast path) shows.
* ``large``: ``x`` ``[2048, 256]`` and about 2048 x 8192 loss inputs:
  compute-bound.

The timed call is the ``jax.jit``-wrapped step called as a user calls it
(C++ dispatch included), medians of interleaved samples (``_harness``). At the
large size it also records ``memory_analysis().temp_size_in_bytes`` of each
compiled step.

Usage::

  python benchmarks/train_step.py                                # both sizes, every loss with a peer
  python benchmarks/train_step.py --names huber_loss --sizes small
  python benchmarks/train_step.py --out benchmarks/results/train_step_cpu.md
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as H  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import bench  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

SIZES = {  # name: (rows of x, model width D, loss inputs, classes for row-wise losses)
    "small": (128, 64, 128 * 10, 10),
    "large": (2048, 256, 2048 * 8192, 8192),
}
LR = 1e-3


def domain_map(spec: Any) -> Callable[[jax.Array], jax.Array]:
  """Maps a linear model's output into the domain of the loss's first argument."""
  name = spec.arg_names[0]
  if name == "probs":
    return jax.nn.softmax if spec.rowwise else jax.nn.sigmoid
  if name == "log_predictions":
    return jax.nn.log_softmax
  return lambda z: z


def peer_of(spec: Any) -> tuple[str, Callable[..., Any]] | None:
  if spec.optax_peer is not None:
    return "optax", spec.optax_peer
  if spec.naive is not None:
    return "naive", spec.naive
  return None


def build(spec: Any, size: str, seed: int = 0) -> dict[str, Any]:
  """Inputs, the two step functions and their arguments for one loss at one size."""
  rows, width, elems, classes = SIZES[size]
  key = jax.random.PRNGKey(seed)
  shape = (rows, classes if spec.rowwise else elems // rows)
  args, how = None, "sample(shape=)"
  if getattr(spec, "bench_sample", None) is not None:
    args, how = tuple(spec.bench_sample(key, jnp.float32, elems)), "bench_sample"
  elif bench._accepts_shape(spec.sample):  # pylint: disable=protected-access
    try:
      args = tuple(spec.sample(key, jnp.float32, shape=shape))
    except Exception:  # pylint: disable=broad-except
      args = None
  if args is None or (how != "bench_sample" and tuple(np.shape(args[0])) != shape):
    args, how = bench.make_inputs(spec, key, jnp.float32, elems, classes)
    if not spec.rowwise and all(np.shape(a) == np.shape(args[0]) for a in args) and np.size(args[0]) >= elems:
      args, how = tuple(jnp.ravel(a)[:elems].reshape(shape) for a in args), how + ", cut to shape"
    elif np.ndim(args[0]) >= 1 and np.size(args[0]) > elems:
      lead = np.shape(args[0])[0]
      per_row = np.size(args[0]) // lead
      keep = max(rows, (elems // per_row) // rows * rows)
      args = tuple(a[:keep] if np.ndim(a) >= 1 and np.shape(a)[0] == lead else a for a in args)
      how += ", cut along axis 0"
  target = jnp.asarray(args[0])
  # The model's output is [rows, cols] with rows = x's rows, reshaped to the first argument's shape.
  out_rows = rows if target.size % rows == 0 else (target.shape[0] if target.ndim else 1)
  out_cols = max(1, target.size // max(out_rows, 1))
  if out_rows * out_cols != target.size:
    raise ValueError(f"cannot factor {target.shape}")
  kx, kw = jax.random.split(jax.random.PRNGKey(seed + 1))
  x = jax.random.normal(kx, (out_rows, width), jnp.float32)
  params = {"w": jax.random.normal(kw, (width, out_cols), jnp.float32) / math.sqrt(width),
            "b": jnp.zeros((out_cols,), jnp.float32)}
  f = domain_map(spec)
  rest = tuple(args[1:])
  peer_name, peer = peer_of(spec)

  def make_step(loss: Callable[..., jax.Array]) -> Callable[..., Any]:
    def objective(p, x, *rest):
      pred = f((x @ p["w"] + p["b"]).reshape(target.shape))
      return loss(pred, *rest)

    def step(p, x, *rest):
      value, g = jax.value_and_grad(objective)(p, x, *rest)
      return jax.tree.map(lambda a, b: a - LR * b, p, g), value

    return jax.jit(step)

  steps = {"jaxloss": make_step(lambda *a: spec.fn(*a)),
           peer_name: make_step(lambda *a: jnp.mean(peer(*a)))}
  return {"steps": steps, "args": (params, x) + rest, "peer": peer_name, "shape": tuple(target.shape),
          "sized_by": how}


def effects_of(step: Any, args: Sequence[Any]) -> bool:
  return bool(jax.make_jaxpr(step)(*args).effects)


def run_one(spec: Any, size: str, cfg: argparse.Namespace) -> dict[str, Any]:
  rec: dict[str, Any] = {"loss": spec.name, "size": size}
  try:
    b = build(spec, size, cfg.seed)
  except Exception as e:  # pylint: disable=broad-except
    rec["error"] = f"{type(e).__name__}: {e}"
    return rec
  rec.update(peer=b["peer"], shape=b["shape"])
  try:
    _time_steps(rec, b, size, cfg)
  except Exception as e:  # pylint: disable=broad-except
    rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
  return rec


def _time_steps(rec: dict[str, Any], b: dict[str, Any], size: str, cfg: argparse.Namespace) -> None:
  args = b["args"]
  cases = {}
  for name, step in b["steps"].items():
    t0 = time.perf_counter()
    compiled = step.lower(*args).compile()
    rec[f"compile_s/{name}"] = time.perf_counter() - t0
    if size == "large":
      mem = compiled.memory_analysis()
      rec[f"temp_bytes/{name}"] = None if mem is None else int(mem.temp_size_in_bytes)
    rec[f"effects/{name}"] = effects_of(step, args)
    values = step(*args)[1]
    rec[f"value/{name}"] = float(values)
    cases[name] = (step, args)
  timings = H.time_interleaved(cases, repeats=cfg.repeats, warmup=cfg.warmup, min_sample_s=cfg.min_sample_s)
  for name, t in timings.items():
    rec[f"median_s/{name}"] = t.median_s
  rec["ratio"] = rec["median_s/jaxloss"] / rec[f"median_s/{b['peer']}"]


def geomean(xs: Sequence[float]) -> float:
  return math.exp(statistics.fmean(math.log(x) for x in xs)) if xs else float("nan")


def _mib(x: int | None) -> str:
  return "-" if x is None else f"{x / 2**20:.0f}"


def table(recs: Sequence[dict[str, Any]], sizes: Sequence[str]) -> str:
  by = {(r["loss"], r["size"]): r for r in recs}
  names = sorted({r["loss"] for r in recs})
  headers = ["loss", "peer"]
  for s in sizes:
    headers += [f"{s}: step", f"{s}: ÷ peer"]
  if "large" in sizes:
    headers += ["large: temp MiB (jaxloss / peer)"]
  headers += ["effects"]
  rows = []
  for n in names:
    any_rec = next(by[(n, s)] for s in sizes if (n, s) in by)
    row = [f"`{n}`", any_rec.get("peer", "-")]
    eff = []
    for s in sizes:
      r = by.get((n, s), {})
      if "ratio" not in r:
        row += ["error", r.get("error", "")[:60]]
        continue
      row += [H.fmt_time(r["median_s/jaxloss"]), f"{r['ratio']:.2f}"]
      eff.append("yes" if r["effects/jaxloss"] else "none")
    if "large" in sizes:
      r = by.get((n, "large"), {})
      row.append(f"{_mib(r.get('temp_bytes/jaxloss'))} / {_mib(r.get('temp_bytes/' + r.get('peer', '')))}")
    row.append(eff[0] if eff else "-")
    rows.append(row)
  return H.markdown_table(headers, rows)


def summary(recs: Sequence[dict[str, Any]], sizes: Sequence[str]) -> list[str]:
  lines = []
  for s in sizes:
    for peer in ("optax", "naive"):
      rs = [r for r in recs if r["size"] == s and r.get("peer") == peer and "ratio" in r]
      if not rs:
        continue
      worst = max(rs, key=lambda r: r["ratio"])
      lines.append(f"- {s}, vs {peer} ({len(rs)} losses): geomean {geomean([r['ratio'] for r in rs]):.3f}, "
                   f"worst {worst['ratio']:.2f} (`{worst['loss']}`)")
  big = [r for r in recs if r["size"] == "large" and "ratio" in r and r.get("temp_bytes/jaxloss") is not None]
  over = [r for r in big if r["temp_bytes/jaxloss"] > r[f"temp_bytes/{r['peer']}"]]
  lines.append(f"- large, temporaries: {len(big) - len(over)} of {len(big)} losses at or below their peer"
               + ("" if not over else "; above: " + ", ".join(
                   f"`{r['loss']}` ({_mib(r['temp_bytes/jaxloss'])} vs {_mib(r['temp_bytes/' + r['peer']])} MiB)"
                   for r in over)))
  return lines


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--names", nargs="*", help="losses to run (default: every registry loss with a peer)")
  p.add_argument("--optax-only", action="store_true", help="only the losses whose peer is optax")
  p.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
  p.add_argument("--repeats", type=int, default=15)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--min-sample-s", type=float, default=0.05)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", help="write a results fragment here (for make_results.py)")
  p.add_argument("--json", help="also write the raw records as JSON")
  p.add_argument("--title", default="Losses inside a jitted training step", help="the fragment's title")
  cfg = p.parse_args(argv)
  import jaxloss  # pylint: disable=g-import-not-at-top

  names = cfg.names or [n for n, s in sorted(jaxloss.REGISTRY.items())
                        if (s.optax_peer is not None if cfg.optax_only else peer_of(s) is not None)]
  env = H.env_info()
  t_start = time.perf_counter()
  recs = []
  for size in cfg.sizes:
    for n in names:
      rec = run_one(jaxloss.REGISTRY[n], size, cfg)
      recs.append(rec)
      msg = rec.get("error") or f"{rec['ratio']:.3f}x {rec['peer']}"
      print(f"{size:5s} {n:45s} {msg}", flush=True)
  body = [table(recs, cfg.sizes), "", "Summary:", "", *summary(recs, cfg.sizes)]
  text = "\n".join(body)
  print(text)
  notes = [
      "One SGD step of a linear model (`x @ W + b`, then sigmoid/softmax/log_softmax where the loss's first "
      "argument needs it) through `jax.value_and_grad` of the mean loss, inside `jax.jit`, called as a user calls "
      "it (C++ dispatch included). Only the loss differs between the two steps. `÷ peer` < 1: jaxloss's step is "
      "faster. small: x [128, 64], ~1,280 loss inputs (dispatch-bound); large: x [2048, 256], ~2048 x 8192 loss "
      "inputs (compute-bound).",
      f"Medians of {cfg.repeats} interleaved samples after {cfg.warmup} warm-up calls; temporaries are "
      "`memory_analysis().temp_size_in_bytes` of the compiled large step. `effects`: whether the jaxloss step's "
      f"jaxpr carries an effect (default settings). Whole run: {time.perf_counter() - t_start:.0f} s.",
  ]
  if cfg.out:
    cmd = "benchmarks/train_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    H.write_fragment(cfg.out, H.fragment(f"{cfg.title} ({env['platform']})", text, env,
                                         script=cmd.strip(), notes=notes))
  if cfg.json:
    H.write_json(cfg.json, {"env": env, "records": recs})
  return 0


if __name__ == "__main__":
  sys.exit(main())
