"""Fused linear + softmax cross-entropy against its unfused peers and jax-cce, same run.

For each (N, D, V, dtype) this script compiles these training-step candidates,
each ``jax.value_and_grad`` of the mean loss with respect to ``hidden`` and
``weight``:

* ``lean``: :func:`jaxloss.fused.linear_softmax_cross_entropy` (memory-lean
  mode: vocabulary chunks, logits recomputed in the backward pass, 4 matmuls);
* ``fast``: the same with ``grad_in_forward=True`` (token blocks over the whole
  vocabulary, gradients computed in the forward pass, 3 matmuls);
* ``unfused``: ``jaxloss.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels)``;
* ``optax``: ``optax.softmax_cross_entropy_with_integer_labels(hidden @ weight, labels).mean()``;
* ``jax_cce``: ``jax_cce.linear_cross_entropy(hidden, weight_vd, labels)`` (jax-cce 0.1.0,
  ``pip install -e .[bench]``), given the weight stored as ``[V, D]`` (its layout),
  so that no transpose is timed; its gradient is taken with respect to that array.

It reports the compiled executables' temporaries
(``memory_analysis().temp_size_in_bytes``), the median step times measured
interleaved (``benchmarks/_harness.py``: every candidate sampled once per
round, rotating order), the ratios against optax, and checks that the losses
and gradients agree.

Usage::

  python benchmarks/fused_ce.py --out benchmarks/results/fused_ce_cpu.md \\
      --plot docs/fused_ce_memory.png     # the CPU table: N=2048, D=256, V in {8192, 32768, 131072},
                                          # float32 and bfloat16; about 20 min on an idle 2-core CPU (a
                                          # V=131072 step is several seconds; --dtypes float32 halves it)
  python benchmarks/fused_ce.py --quick   # smoke run (tiny shapes, < 1 min)
  python benchmarks/fused_ce.py --gpu-target --out benchmarks/results/fused_ce_gpu.md

On a GPU, a run without ``--quick`` is a ``--gpu-target`` run (what
``benchmarks/gpu_session.sh`` needs): N = 8192, D = 4096, V = 131072 in
bfloat16, all candidates plus ``lean_c8192`` (chunk 8192) and ``fast_b1024`` (token
block 1024): 7 programs compiled at the full shape (budget: 170 s in gpu_session.sh),
peak device memory of each step, and the goal check (lean temporaries <= 128
MiB; fastest fused mode <= 1.0x unfused).
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
CPU_CONFIGS = [(2048, 256, v) for v in (8192, 32768, 131072)]
CPU_DTYPES = ("float32", "bfloat16")
QUICK_CONFIGS = [(256, 64, 1024), (256, 64, 4096)]
SWEEP_N, SWEEP_D = 2048, 256
SWEEP_V = (1024, 4096, 16384, 32768, 65536, 131072)
BASE = ("lean", "fast", "unfused", "optax", "jax_cce")
LEAN_BLOCK = 256  # token_block_size of the "lean_tb" candidate in the memory sweep


def _jax_cce():
  try:
    import jax_cce  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return jax_cce


def _loss_fns(variants: dict[str, dict[str, Any]]):
  """``{name: loss(h, w, y)}``; ``w`` is ``[D, V]`` except for jax_cce (``[V, D]``)."""
  import optax  # pylint: disable=g-import-not-at-top

  fns = {}
  for name, kw in variants.items():
    fns[name] = lambda h, w, y, kw=kw: jfused.linear_softmax_cross_entropy(h, w, y, **kw)
  fns["unfused"] = lambda h, w, y: jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, y)
  fns["optax"] = lambda h, w, y: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h @ w, y))
  cce = _jax_cce()
  if cce is not None:
    fns["jax_cce"] = lambda h, w_vd, y: cce.linear_cross_entropy(h, w_vd, y)
  return fns


def _variants(chunks=(), blocks=()) -> dict[str, dict[str, Any]]:
  v = {"lean": {}, "fast": {"grad_in_forward": True}}
  for c in chunks:
    v[f"lean_c{c}"] = {"chunk_size": c}
  for b in blocks:
    v[f"fast_b{b}"] = {"grad_in_forward": True, "token_block_size": b}
  return v


def _steps(variants):
  return {name: jax.value_and_grad(f, (0, 1)) for name, f in _loss_fns(variants).items()}


def _inputs(n: int, d: int, v: int, dtype: Any, seed: int = 0):
  kh, kw, ky = jax.random.split(jax.random.key(seed), 3)
  h = jax.random.normal(kh, (n, d), jnp.float32).astype(dtype)
  w = (jax.random.normal(kw, (d, v), jnp.float32) / np.sqrt(d)).astype(dtype)
  y = jax.random.randint(ky, (n,), 0, v, jnp.int32)
  return h, w, y


def _args_for(name, h, w, w_vd, y):
  return (h, w_vd, y) if name == "jax_cce" else (h, w, y)


def _abstract(n, d, v, dtype):
  return (jax.ShapeDtypeStruct((n, d), dtype), jax.ShapeDtypeStruct((d, v), dtype),
          jax.ShapeDtypeStruct((n,), jnp.int32)), jax.ShapeDtypeStruct((v, d), dtype)


def memory_sweep(n: int, d: int, vocabs, dtype) -> list[dict[str, Any]]:
  """Temporary bytes of each candidate against V (compiled only, never run)."""
  rows = []
  variants = _variants()
  variants["lean_tb"] = {"token_block_size": LEAN_BLOCK}
  steps = _steps(variants)
  for v in vocabs:
    (h, w, y), w_vd = _abstract(n, d, v, dtype)
    row = {"N": n, "D": d, "V": v, "chunk": jfused.default_chunk_size(n, v)}
    for name, step in steps.items():
      args = _args_for(name, h, w, w_vd, y)
      row[f"{name}_temp"] = int(jax.jit(step).lower(*args).compile().memory_analysis().temp_size_in_bytes)
    rows.append(row)
    print(f"  sweep V={v}: " + ", ".join(f"{k}={row[k + '_temp'] / MiB:.1f} MiB" for k in steps), flush=True)
  return rows


def _device_stat(key: str) -> int | None:
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get(key)


def measure(n, d, v, dtype, *, repeats, min_sample_s, peak=False, chunks=(), blocks=(), skip=()) -> dict[str, Any]:
  h, w, y = _inputs(n, d, v, dtype)
  w_vd = jnp.asarray(w.T)  # jax-cce's layout, made once outside the timed step
  H.block((h, w, y, w_vd))
  steps = {k: f for k, f in _steps(_variants(chunks, blocks)).items() if k not in skip}
  row: dict[str, Any] = {"N": n, "D": d, "V": v, "dtype": jnp.dtype(dtype).name,
                         "chunk": jfused.default_chunk_size(n, v), "block": min(jfused.default_token_block(v), n)}
  compiled = {}
  for name, step in steps.items():
    c = H.compile_fn(step, *_args_for(name, h, w, w_vd, y))
    compiled[name] = c
    row[f"{name}_temp"] = int(c.executable.memory_analysis().temp_size_in_bytes)
    row[f"{name}_compile_s"] = c.compile_s
  if peak:  # fused candidates first: device peaks only grow, so each reading is that candidate's own
    base = _device_stat("bytes_in_use")
    order = [k for k in compiled if k not in ("unfused", "optax", "jax_cce")] + ["unfused"] * ("unfused" in compiled)
    for name in order:
      H.block(compiled[name](*_args_for(name, h, w, w_vd, y)))
      p = _device_stat("peak_bytes_in_use")
      row[f"{name}_peak_above_inputs"] = None if (p is None or base is None) else p - base
  ref_v, (ref_dh, ref_dw) = compiled["optax"](h, w, y)
  for name, c in compiled.items():  # agreement with optax (jax_cce's dW is [V, D])
    val, (dh, dw) = c(*_args_for(name, h, w, w_vd, y))
    dw = dw.T if name == "jax_cce" else dw
    row[f"{name}_loss_diff"] = abs(float(val) - float(ref_v))
    row[f"{name}_dw_rel"] = float(jnp.linalg.norm((dw - ref_dw).astype(jnp.float32))
                                  / jnp.linalg.norm(ref_dw.astype(jnp.float32)))
    del val, dh, dw
  del ref_dh, ref_dw
  timings = H.time_interleaved({name: (compiled[name], _args_for(name, h, w, w_vd, y)) for name in compiled},
                               repeats=repeats, warmup=1, min_sample_s=min_sample_s)
  for name, t in timings.items():
    row[f"{name}_s"] = t.median_s
    row[f"{name}_spread"] = t.spread
  return row


def _mib(b):
  return "n/a" if b is None else f"{b / MiB:.1f} MiB"


def _names(rows):
  seen = []
  for r in rows:
    for k in r:
      if k.endswith("_s") and not k.endswith("compile_s") and k[:-2] not in seen:
        seen.append(k[:-2])
  return seen


def table(rows) -> str:
  """One line per (shape, dtype, candidate): temporaries, time, time / optax."""
  headers = ["N", "D", "V", "dtype", "candidate", "temporaries", "temp / unfused", "time", "time / optax",
             "|loss - optax|", "dW rel. diff"]
  out = []
  for r in rows:
    for name in _names([r]):
      out.append([r["N"], r["D"], r["V"], r["dtype"], name, _mib(r[f"{name}_temp"]),
                  f"{r[f'{name}_temp'] / max(r.get('unfused_temp', 0), 1):.3f}" if "unfused_temp" in r else "-",
                  H.fmt_time(r[f"{name}_s"]),
                  H.fmt_ratio(r[f"{name}_s"], r["optax_s"]), f"{r[f'{name}_loss_diff']:.1e}",
                  f"{r[f'{name}_dw_rel']:.1e}"])
  return H.markdown_table(headers, out)


def ratio_table(rows) -> str:
  """The headline: time ratios of the fused modes against optax and jax-cce."""
  headers = ["N", "D", "V", "dtype", "fast / optax", "lean / optax", "fast / jax_cce", "lean / jax_cce",
             "unfused / optax", "lean temp / unfused temp"]
  out = []
  for r in rows:
    cce = r.get("jax_cce_s")
    out.append([r["N"], r["D"], r["V"], r["dtype"], H.fmt_ratio(r["fast_s"], r["optax_s"]),
                H.fmt_ratio(r["lean_s"], r["optax_s"]), H.fmt_ratio(r["fast_s"], cce), H.fmt_ratio(r["lean_s"], cce),
                H.fmt_ratio(r.get("unfused_s"), r["optax_s"]),
                f"1/{r['unfused_temp'] / max(r['lean_temp'], 1):.0f}" if "unfused_temp" in r else "-"])
  return H.markdown_table(headers, out)


def sweep_table(rows) -> str:
  names = [k[:-5] for k in rows[0] if k.endswith("_temp")]
  headers = ["N", "D", "V", "chunk"] + [f"temp {k}" for k in names] + ["unfused / lean"]
  return H.markdown_table(headers, [
      [r["N"], r["D"], r["V"], r["chunk"]] + [_mib(r[f"{k}_temp"]) for k in names]
      + [f"{r['unfused_temp'] / max(r['lean_temp'], 1):.1f}x"] for r in rows])


def plot(sweep_rows, timed_rows, path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  styles = {"lean": "o-", "lean_tb": "o:", "fast": "D-", "unfused": "s--", "optax": "^:", "jax_cce": "x-."}
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
  ax = axes[0]
  vs = [r["V"] for r in sweep_rows]
  for name, style in styles.items():
    if f"{name}_temp" in sweep_rows[0]:
      ax.plot(vs, [r[f"{name}_temp"] / MiB for r in sweep_rows], style, label=name, ms=4)
  ax.set(xscale="log", yscale="log", xlabel="V (classes)", ylabel="temporaries (MiB)",
         title=f"XLA temp bytes, value_and_grad\nN={sweep_rows[0]['N']}, D={sweep_rows[0]['D']}, float32")
  ax.legend(fontsize=7)
  ax.grid(True, which="both", alpha=0.3)
  ax = axes[1]
  rows = sorted([r for r in timed_rows if r["dtype"] == "float32"], key=lambda r: r["V"])
  if rows:
    vs = [r["V"] for r in rows]
    for name, style in styles.items():
      if f"{name}_s" in rows[0]:
        ax.plot(vs, [r[f"{name}_s"] / r["optax_s"] for r in rows], style, label=name, ms=4)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set(xscale="log", xlabel="V (classes)", ylabel="step time / optax (same run)",
           title=f"time, value_and_grad\nN={rows[0]['N']}, D={rows[0]['D']}, float32")
    ax.set_xticks(vs, [str(v) for v in vs])
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)")


def _notes(env, gpu: bool) -> list[str]:
  notes = [
      "Each candidate is `jax.value_and_grad` of the mean loss w.r.t. (hidden, weight); times are medians of "
      "interleaved samples from one run (every candidate once per round, rotating order); temporaries are XLA's "
      "`memory_analysis().temp_size_in_bytes` of the compiled step (inputs and outputs excluded).",
      "`lean` = `jaxloss.fused.linear_softmax_cross_entropy` (default: memory-lean, 4 matmuls); `fast` = the same "
      "with `grad_in_forward=True` (3 matmuls, gradients computed in the forward pass); `unfused` = "
      "`jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, y)`; `optax` = "
      "`optax.softmax_cross_entropy_with_integer_labels(h @ w, y).mean()`; `jax_cce` = "
      "`jax_cce.linear_cross_entropy(h, w_vd, y)` (jax-cce 0.1.0, weight stored `[V, D]`, no transpose timed).",
  ]
  if env.get("platform") == "cpu":
    notes.append("CPU run on a shared host (load average in the header): only the ratios of one run are "
                 "meaningful. XLA:CPU upcasts bfloat16 matmul operands to float32, so bfloat16 rows on CPU "
                 "include float32 copies of the operands in their temporaries.")
  if gpu:
    notes.append("GPU goal (issue 9/16): lean temporaries <= 128 MiB and the fastest fused mode <= 1.0x unfused.")
  return notes


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="tiny configurations, few repeats")
  p.add_argument("--gpu-target", action="store_true", help="N=8192, D=4096, V=131072 bfloat16 + peak memory")
  p.add_argument("--target-shape", default=None, help="N,D,V replacing the GPU target (to dry-run that path)")
  p.add_argument("--dtypes", default=None, help="comma-separated (default: float32,bfloat16; GPU: bfloat16)")
  p.add_argument("--vocabs", default=None, help="comma-separated V list replacing the CPU table's")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--chunks", default=None, help="extra lean chunk sizes (default on GPU: 8192)")
  p.add_argument("--blocks", default=None, help="extra fast token blocks (default on GPU: 1024)")
  p.add_argument("--skip", default="", help="comma-separated candidates not to run (e.g. unfused, to save time)")
  p.add_argument("--sweep", action="store_true", help="also the compile-only memory sweep over V")
  p.add_argument("--out", default=None, help="markdown fragment, e.g. benchmarks/results/fused_ce_cpu.md")
  p.add_argument("--json", default=None, help="raw numbers as JSON")
  p.add_argument("--plot", default=None, help="PNG of memory/time against V (implies --sweep)")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = _parse(argv)
  if jax.devices()[0].platform == "gpu" and not args.quick and not args.gpu_target:
    print("GPU detected: running the --gpu-target configuration (what benchmarks/gpu_session.sh needs)")
    args.gpu_target = True
  if args.gpu_target:
    configs = [tuple(int(x) for x in args.target_shape.split(","))] if args.target_shape else [GPU_TARGET]
    dtypes = (args.dtypes or "bfloat16").split(",")
  elif args.quick:
    configs, dtypes = QUICK_CONFIGS, (args.dtypes or "float32").split(",")
  else:
    vocabs = [int(v) for v in args.vocabs.split(",")] if args.vocabs else [c[2] for c in CPU_CONFIGS]
    configs, dtypes = [(2048, 256, v) for v in vocabs], (args.dtypes or ",".join(CPU_DTYPES)).split(",")
  if args.gpu_target and args.skip:
    p_err = "--skip is for CPU runs (the GPU goal compares against unfused)"
    raise SystemExit(p_err)
  repeats = args.repeats or (2 if args.quick else 5 if args.gpu_target else 3)
  chunks = [int(c) for c in (args.chunks or ("8192" if args.gpu_target else "")).split(",") if c]
  blocks = [int(c) for c in (args.blocks or ("1024" if args.gpu_target else "")).split(",") if c]
  env = H.env_info()
  print(json.dumps(env))
  if _jax_cce() is None:
    print("jax-cce is not installed (pip install -e .[bench]): the jax_cce column is skipped")

  rows = []
  for dtype in dtypes:
    for n, d, v in configs:
      print(f"measuring N={n} D={d} V={v} {dtype} ...", flush=True)
      r = measure(n, d, v, jnp.dtype(dtype), repeats=repeats, min_sample_s=0.0 if args.quick else 0.05,
                  peak=args.gpu_target, chunks=[c for c in chunks if c <= v], blocks=[b for b in blocks if b <= n],
                  skip=[k for k in args.skip.split(",") if k and k != "optax"])
      rows.append(r)
      print("  " + ", ".join(f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in r), flush=True)
      print("  time / optax: " + ", ".join(f"{k}={r[k + '_s'] / r['optax_s']:.3f}" for k in _names([r])), flush=True)

  sweep_rows = []
  if args.sweep or args.plot:
    print("memory sweep (compile only) ...", flush=True)
    sweep_rows = memory_sweep(SWEEP_N, SWEEP_D, SWEEP_V if not args.quick else SWEEP_V[:2], jnp.float32)

  body = [ratio_table(rows), "", "All candidates:", "", table(rows)]
  if args.gpu_target:
    r = rows[0]
    fused_names = [k for k in _names([r]) if k.startswith(("lean", "fast"))]
    best = min(fused_names, key=lambda k: r[f"{k}_s"])
    body += ["", H.markdown_table(["candidate", "peak device memory above inputs"],
                                  [[k[:-len("_peak_above_inputs")], _mib(r[k])] for k in r
                                   if k.endswith("_peak_above_inputs")])]
    if (r["N"], r["D"], r["V"]) != GPU_TARGET or r["dtype"] != "bfloat16":
      body.append(f"\n(Dry run at N, D, V = {(r['N'], r['D'], r['V'])}, {r['dtype']}: NOT the goal configuration.)")
    ok_mem, ok_time = r["lean_temp"] <= GOAL_TEMP_BYTES, r[f"{best}_s"] <= r["unfused_s"]
    body.append(f"\nGoal: lean temporaries <= 128 MiB: **{'met' if ok_mem else 'NOT met'}** ({_mib(r['lean_temp'])}); "
                f"fastest fused mode ({best}) <= 1.0x unfused: **{'met' if ok_time else 'NOT met'}** "
                f"({H.fmt_ratio(r[f'{best}_s'], r['unfused_s'])}x).")
    print(body[-1])
  if sweep_rows:
    body += ["", f"Compile-only memory sweep against V (N={SWEEP_N}, D={SWEEP_D}, float32; `lean_tb` = lean with "
             f"`token_block_size={LEAN_BLOCK}`):", "", sweep_table(sweep_rows)]
  flags = [f"--{k} {getattr(args, k)}" for k in ("vocabs", "dtypes", "skip", "repeats") if getattr(args, k)]
  script = " ".join(["benchmarks/fused_ce.py"] + (["--gpu-target"] if args.gpu_target else
                                                  ["--quick"] if args.quick else []) + flags)
  text = H.fragment("Fused linear + softmax cross-entropy (issues 9, 16)", "\n".join(body), env, script=script,
                    notes=_notes(env, args.gpu_target))
  print(text)
  if args.out:
    H.write_fragment(args.out, text)
    print(f"wrote {args.out}")
  if args.json:
    H.write_json(args.json, {"env": env, "rows": rows, "sweep": sweep_rows})
  if args.plot:
    plot(sweep_rows, rows, args.plot, f"jaxloss.fused vs peers ({env['device']})")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
