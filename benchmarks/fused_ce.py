"""Fused linear + softmax cross-entropy vs the unfused XLA version and optax, same run.

For each (N, D, V) this script compiles three training-step candidates, each
``jax.value_and_grad`` of the mean loss with respect to ``hidden`` and
``weight``:

* ``fused``: :func:`jaxloss.fused.linear_softmax_cross_entropy` (chunked scan,
  never holds ``[N, V]``);
* ``unfused``: ``jaxloss.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)``
  (XLA materializes the logits and their gradient);
* ``optax``: ``optax.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels).mean()``.

It reports, per candidate, the compiled executable's temporary bytes
(``memory_analysis().temp_size_in_bytes``), the median step time measured
interleaved with the others (``benchmarks/_harness.py``), and the ratios
fused/unfused and fused/optax. It also checks that the three losses agree.

Usage::

  python benchmarks/fused_ce.py --quick                         # CPU smoke run
  python benchmarks/fused_ce.py --out benchmarks/results/fused_ce_cpu.md \\
      --plot docs/fused_ce_memory.png                           # CPU table + curve
  python benchmarks/fused_ce.py --gpu-target \\
      --out benchmarks/results/fused_ce_gpu.md                  # the issue's GPU goal

On a GPU, a run without ``--quick`` is a ``--gpu-target`` run (so that
``benchmarks/gpu_session.sh`` measures the goal without extra flags).
``--gpu-target`` runs exactly N = 8192, D = 4096, V = 131072 in bfloat16 and,
in addition, the peak device memory (``jax.devices()[0].memory_stats()``) of a
fused step and of an unfused step (fused first, so that its peak is its own),
and checks the goal: fused temporaries <= 128 MiB and fused time <= 1.0x
unfused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402  (benchmarks/_harness.py)

import jaxloss  # noqa: E402
from jaxloss import fused as jfused  # noqa: E402

MiB = 1 << 20
GPU_TARGET = (8192, 4096, 131072)
GOAL_TEMP_BYTES = 128 * MiB
GOAL_TIME_RATIO = 1.0

FULL_CONFIGS = [(512, 128, 2048), (512, 128, 8192), (512, 128, 32768), (2048, 256, 8192)]
QUICK_CONFIGS = [(256, 64, 1024), (256, 64, 4096)]
# memory-only sweep (compile, no run) for the curve against V
SWEEP_N, SWEEP_D = 2048, 256
SWEEP_V = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


def _loss_fns(chunk: int | None):
  def fused_loss(h, w, y):
    return jfused.linear_softmax_cross_entropy(h, w, y, chunk_size=chunk)

  def unfused_loss(h, w, y):
    return jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, y)

  def optax_loss(h, w, y):
    import optax  # pylint: disable=g-import-not-at-top
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h @ w, y))

  return {"fused": fused_loss, "unfused": unfused_loss, "optax": optax_loss}


def _steps(chunk: int | None):
  return {name: jax.value_and_grad(f, (0, 1)) for name, f in _loss_fns(chunk).items()}


def _inputs(n: int, d: int, v: int, dtype: Any, seed: int = 0):
  kh, kw, ky = jax.random.split(jax.random.key(seed), 3)
  h = jax.random.normal(kh, (n, d), jnp.float32).astype(dtype)
  w = (jax.random.normal(kw, (d, v), jnp.float32) / np.sqrt(d)).astype(dtype)
  y = jax.random.randint(ky, (n,), 0, v, jnp.int32)
  return h, w, y


def _temp_bytes(step, *args) -> int:
  compiled = jax.jit(step).lower(*args).compile()
  return int(compiled.memory_analysis().temp_size_in_bytes)


def _abstract(n, d, v, dtype):
  return (jax.ShapeDtypeStruct((n, d), dtype), jax.ShapeDtypeStruct((d, v), dtype),
          jax.ShapeDtypeStruct((n,), jnp.int32))


def memory_sweep(n: int, d: int, vocabs, dtype, chunk) -> list[dict[str, Any]]:
  """Temporary bytes of each candidate against V (compiled only, never run)."""
  rows = []
  steps = _steps(chunk)
  for v in vocabs:
    args = _abstract(n, d, v, dtype)
    row = {"N": n, "D": d, "V": v, "chunk": chunk or jfused.default_chunk_size(n, v)}
    for name, step in steps.items():
      row[f"{name}_temp"] = _temp_bytes(step, *args)
    rows.append(row)
    print(f"  sweep V={v}: " + ", ".join(f"{k}={row[k + '_temp'] / MiB:.1f} MiB" for k in steps), flush=True)
  return rows


def _peak_bytes() -> int | None:
  stats = jax.devices()[0].memory_stats()
  if not stats:
    return None
  return stats.get("peak_bytes_in_use")


def _in_use_bytes() -> int | None:
  stats = jax.devices()[0].memory_stats()
  if not stats:
    return None
  return stats.get("bytes_in_use")


def measure(n, d, v, dtype, chunk, *, repeats, min_sample_s, peak=False, extra_chunks=()) -> dict[str, Any]:
  h, w, y = _inputs(n, d, v, dtype)
  H.block((h, w, y))
  steps = _steps(chunk)
  for c in extra_chunks:  # fused with other chunk sizes, timed in the same interleaved run
    if c != (chunk or jfused.default_chunk_size(n, v)) and c <= v:
      steps[f"fused_c{c}"] = _steps(c)["fused"]
  row: dict[str, Any] = {"N": n, "D": d, "V": v, "dtype": jnp.dtype(dtype).name,
                         "chunk": chunk or jfused.default_chunk_size(n, v)}
  compiled = {}
  for name, step in steps.items():
    c = H.compile_fn(step, h, w, y)
    compiled[name] = c
    row[f"{name}_temp"] = int(c.executable.memory_analysis().temp_size_in_bytes)
    row[f"{name}_compile_s"] = c.compile_s
  if peak:  # fused first: device peaks only grow, so each reading is that candidate's own
    base = _in_use_bytes()
    row["inputs_in_use"] = base
    for name in ("fused", "unfused"):
      out = compiled[name](h, w, y)
      H.block(out)
      p = _peak_bytes()
      row[f"{name}_peak"] = p
      row[f"{name}_peak_above_inputs"] = None if (p is None or base is None) else p - base
      del out
  # agreement of the three losses (and of the fused gradients with the unfused ones)
  outs = {name: compiled[name](h, w, y) for name in steps}
  ref_v, (ref_dh, ref_dw) = outs["unfused"]
  for name, (val, (dh, dw)) in outs.items():
    row[f"{name}_loss"] = float(val)
    row[f"{name}_dh_rel"] = float(jnp.linalg.norm((dh - ref_dh).astype(jnp.float32))
                                  / jnp.linalg.norm(ref_dh.astype(jnp.float32)))
    row[f"{name}_dw_rel"] = float(jnp.linalg.norm((dw - ref_dw).astype(jnp.float32))
                                  / jnp.linalg.norm(ref_dw.astype(jnp.float32)))
  del outs, ref_dh, ref_dw
  timings = H.time_interleaved({name: (compiled[name], (h, w, y)) for name in steps},
                               repeats=repeats, warmup=1, min_sample_s=min_sample_s)
  for name, t in timings.items():
    row[f"{name}_s"] = t.median_s
    row[f"{name}_spread"] = t.spread
  return row


def chunk_table(rows) -> str:
  headers = ["N", "D", "V", "chunk", "temp", "time", "time / unfused"]
  out = []
  for r in rows:
    names = [("fused", r["chunk"])] + [(k[:-5], int(k[len("fused_c"):-5])) for k in r
                                       if k.startswith("fused_c") and k.endswith("_temp")]
    for name, c in sorted(names, key=lambda t: t[1]):
      out.append([r["N"], r["D"], r["V"], c, _mib(r[f"{name}_temp"]), H.fmt_time(r[f"{name}_s"]),
                  H.fmt_ratio(r[f"{name}_s"], r["unfused_s"])])
  return H.markdown_table(headers, out)


def _mib(b):
  return "n/a" if b is None else f"{b / MiB:.1f} MiB"


def table(rows) -> str:
  headers = ["N", "D", "V", "dtype", "chunk", "temp fused", "temp unfused", "temp optax",
             "temp fused/unfused", "time fused", "time unfused", "time optax",
             "fused/unfused", "fused/optax", "|loss diff|", "dW rel. diff"]
  out = []
  for r in rows:
    out.append([
        r["N"], r["D"], r["V"], r["dtype"], r["chunk"],
        _mib(r["fused_temp"]), _mib(r["unfused_temp"]), _mib(r["optax_temp"]),
        f"{r['fused_temp'] / max(r['unfused_temp'], 1):.3f}",
        H.fmt_time(r["fused_s"]), H.fmt_time(r["unfused_s"]), H.fmt_time(r["optax_s"]),
        H.fmt_ratio(r["fused_s"], r["unfused_s"]), H.fmt_ratio(r["fused_s"], r["optax_s"]),
        f"{abs(r['fused_loss'] - r['unfused_loss']):.1e}", f"{r['fused_dw_rel']:.1e}",
    ])
  return H.markdown_table(headers, out)


def sweep_table(rows) -> str:
  headers = ["N", "D", "V", "chunk", "temp fused", "temp unfused", "temp optax", "unfused/fused"]
  return H.markdown_table(headers, [
      [r["N"], r["D"], r["V"], r["chunk"], _mib(r["fused_temp"]), _mib(r["unfused_temp"]),
       _mib(r["optax_temp"]), f"{r['unfused_temp'] / max(r['fused_temp'], 1):.1f}x"] for r in rows])


def plot(sweep_rows, timed_rows, path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
  ax = axes[0]
  vs = [r["V"] for r in sweep_rows]
  for name, style in (("fused", "o-"), ("unfused", "s--"), ("optax", "^:")):
    ax.plot(vs, [r[f"{name}_temp"] / MiB for r in sweep_rows], style, label=name, ms=4)
  n, d = sweep_rows[0]["N"], sweep_rows[0]["D"]
  ax.set(xscale="log", yscale="log", xlabel="V (classes)", ylabel="temporaries (MiB)",
         title=f"XLA temp bytes, value_and_grad\nN={n}, D={d}, float32")
  ax.legend(fontsize=8)
  ax.grid(True, which="both", alpha=0.3)
  ax = axes[1]
  if timed_rows:
    groups: dict[tuple[int, int], list] = {}
    for r in timed_rows:
      groups.setdefault((r["N"], r["D"]), []).append(r)
    (n, d), rows = max(groups.items(), key=lambda kv: len(kv[1]))
    rows = sorted(rows, key=lambda r: r["V"])
    vs = [r["V"] for r in rows]
    for name, style in (("fused", "o-"), ("unfused", "s--"), ("optax", "^:")):
      ax.plot(vs, [r[f"{name}_s"] * 1e3 for r in rows], style, label=name, ms=4)
    ax.set(xscale="log", yscale="log", xlabel="V (classes)", ylabel="median step time (ms)",
           title=f"time, value_and_grad\nN={n}, D={d}, {rows[0]['dtype']}")
    ax.set_xticks(vs, [str(v) for v in vs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="two tiny configurations, few repeats")
  p.add_argument("--gpu-target", action="store_true",
                 help="only N=8192, D=4096, V=131072 bfloat16, with peak device memory and the goal check")
  p.add_argument("--target-shape", default=None,
                 help="N,D,V replacing the GPU target (only to dry-run the --gpu-target path on a CPU)")
  p.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: float32, bfloat16 with --gpu-target)")
  p.add_argument("--chunk", type=int, default=None, help="chunk_size of the fused loss (default: its default)")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--extra-chunks", default=None,
                 help="comma-separated chunk sizes for extra fused candidates (default with --gpu-target: 2048,8192)")
  p.add_argument("--sweep", action="store_true", help="also the compile-only memory sweep over V")
  p.add_argument("--out", default=None, help="markdown fragment, e.g. benchmarks/results/fused_ce_cpu.md")
  p.add_argument("--json", default=None, help="raw numbers as JSON")
  p.add_argument("--plot", default=None, help="PNG of memory/time against V (implies --sweep)")
  args = p.parse_args(argv)

  if jax.devices()[0].platform == "gpu" and not args.quick and not args.gpu_target:
    print("GPU detected: running the --gpu-target configuration (what benchmarks/gpu_session.sh needs)")
    args.gpu_target = True
  dtype = jnp.dtype(args.dtype or ("bfloat16" if args.gpu_target else "float32"))
  if args.gpu_target:
    configs = [tuple(int(x) for x in args.target_shape.split(","))] if args.target_shape else [GPU_TARGET]
  elif args.quick:
    configs = QUICK_CONFIGS
  else:
    configs = FULL_CONFIGS
  repeats = args.repeats or (3 if args.quick else 7 if args.gpu_target else 5)
  min_sample_s = 0.0 if args.quick else 0.05
  env = H.env_info()
  print(json.dumps(env))

  rows = []
  for n, d, v in configs:
    print(f"measuring N={n} D={d} V={v} {dtype.name} ...", flush=True)
    extra = (args.extra_chunks if args.extra_chunks is not None
             else "2048,8192" if args.gpu_target else "")
    r = measure(n, d, v, dtype, args.chunk, repeats=repeats, min_sample_s=min_sample_s,
                peak=args.gpu_target, extra_chunks=[int(c) for c in extra.split(",") if c])
    rows.append(r)
    print("  " + ", ".join(f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in r),
          flush=True)

  sweep_rows = []
  if args.sweep or args.plot:
    print("memory sweep (compile only) ...", flush=True)
    sweep_rows = memory_sweep(SWEEP_N, SWEEP_D, SWEEP_V if not args.quick else SWEEP_V[:3],
                              jnp.float32, args.chunk)

  body = [table(rows)]
  notes = [
      "Each candidate is `jax.value_and_grad` of the mean loss w.r.t. (hidden, weight); times are medians of "
      "interleaved samples from one run; temporaries are XLA's `memory_analysis().temp_size_in_bytes` of the "
      "compiled step (outputs and inputs excluded).",
      "`unfused` = `jaxloss.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)`; "
      "`optax` = `optax.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels).mean()`; "
      "`|loss diff|` and `dW rel. diff` compare fused with unfused.",
  ]
  if env.get("platform") == "cpu":
    notes.append("CPU run on a shared, loaded host: the time ratios are indicative only; the fused path does "
                 "4 matmuls of size N·D·V per step (forward logsumexp pass + recomputation in the backward "
                 "pass) against 3 for the unfused ones.")
  if args.gpu_target:
    r = rows[0]
    ok_mem = r["fused_temp"] <= GOAL_TEMP_BYTES
    ok_time = r["fused_s"] <= GOAL_TIME_RATIO * r["unfused_s"]
    body.append("")
    body.append(H.markdown_table(
        ["candidate", "peak device memory", "peak above inputs"],
        [[name, _mib(r.get(f"{name}_peak")), _mib(r.get(f"{name}_peak_above_inputs"))]
         for name in ("fused", "unfused")]))
    body.append("")
    shape = (r["N"], r["D"], r["V"])
    if shape != GPU_TARGET or dtype != jnp.bfloat16:
      body.append(f"(Dry run at N, D, V = {shape}, {dtype.name}: NOT the goal configuration.)")
    body.append(f"Goal (issue 9): fused temporaries <= 128 MiB: **{'met' if ok_mem else 'NOT met'}** "
                f"({_mib(r['fused_temp'])}); fused time <= 1.0x unfused: **{'met' if ok_time else 'NOT met'}** "
                f"({H.fmt_ratio(r['fused_s'], r['unfused_s'])}x).")
    print(body[-1])
  if any(k.startswith("fused_c") for r in rows for k in r):
    body.append("")
    body.append("Fused step against its chunk size (same interleaved run; the float32 `dL/dhidden` accumulator "
                "is read and written once per chunk, 8·N·D bytes, so small chunks cost bandwidth):")
    body.append("")
    body.append(chunk_table(rows))
  if sweep_rows:
    body.append("")
    body.append(f"Compile-only memory sweep against V (N={SWEEP_N}, D={SWEEP_D}, float32):")
    body.append("")
    body.append(sweep_table(sweep_rows))
  text = H.fragment("Fused linear + softmax cross-entropy (issue 9)", "\n".join(body), env,
                    script="benchmarks/fused_ce.py" + (" --gpu-target" if args.gpu_target else
                                                         " --quick" if args.quick else ""),
                    notes=notes)
  print(text)
  if args.out:
    H.write_fragment(args.out, text)
    print(f"wrote {args.out}")
  if args.json:
    H.write_json(args.json, {"env": env, "rows": rows, "sweep": sweep_rows})
  if args.plot:
    plot(sweep_rows, rows, args.plot, f"jaxloss.fused vs unfused ({env['device']})")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
