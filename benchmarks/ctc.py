"""CTC: ``jax.value_and_grad`` of ``jaxloss.ctc_loss`` against ``optax.ctc_loss``, same run, interleaved.

The issue's target shape is B=32 sequences of T=200 frames, K=64 classes and
labels of up to N=40 (frames right-padded to lengths in [T/2, T], labels to
lengths in [1, N]). Both candidates are the mean over sequences of the
per-sequence loss; the gradient is with respect to the logits. Also reported:
the forward value alone, XLA's temporary memory of the compiled
``value_and_grad`` (``memory_analysis().temp_size_in_bytes``: optax tapes its
scan, jaxloss keeps the ``[T, B, 2N+1]`` alpha/beta stacks only) and the
largest gradient difference to float64.

Usage::

  python benchmarks/ctc.py                 # B=32, T=200, K=64, N=40, float32
  python benchmarks/ctc.py --quick         # a tiny shape, few repeats (smoke test)
  python benchmarks/ctc.py --out benchmarks/results/ctc_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as H  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxloss  # noqa: E402

TARGET = (32, 200, 64, 40)
QUICK = (4, 20, 8, 5)


def make_batch(b: int, t: int, k: int, n: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((b, t, k)).astype(np.float32)
  frames = rng.integers(max(t // 2, 2 * n - 1), t + 1, b)
  lengths = rng.integers(1, n + 1, b)
  labels = rng.integers(1, k, (b, n)).astype(np.int32)
  fp = (np.arange(t)[None] >= frames[:, None]).astype(np.float32)
  lp = (np.arange(n)[None] >= lengths[:, None]).astype(np.float32)
  return z, fp, np.where(lp > 0, 0, labels).astype(np.int32), lp


def candidates(fp, labels, lp):
  import optax  # pylint: disable=g-import-not-at-top

  def ours(z):
    return jaxloss.ctc_loss(z, fp, labels, lp)

  def peer(z):
    return jnp.mean(optax.ctc_loss(z, fp, labels, lp))

  return {"jaxloss": ours, "optax": peer}


def measure(shape, *, repeats: int, min_sample_s: float) -> dict:
  z, fp, labels, lp = make_batch(*shape)
  fns = candidates(jnp.asarray(fp), jnp.asarray(labels), jnp.asarray(lp))
  z = jnp.asarray(z)
  out: dict = {"shape": "B={} T={} K={} N={}".format(*shape)}
  vg = {name: H.compile_fn(jax.value_and_grad(f), z) for name, f in fns.items()}
  val = {name: H.compile_fn(f, z) for name, f in fns.items()}
  for name in fns:
    mem = vg[name].executable.memory_analysis()
    out[f"{name}_temp_bytes"] = getattr(mem, "temp_size_in_bytes", None) if mem is not None else None
    out[f"{name}_compile_s"] = vg[name].compile_s
  cases = {f"{name} v&g": (vg[name], (z,)) for name in fns}
  cases.update({f"{name} value": (val[name], (z,)) for name in fns})
  timings = H.time_interleaved(cases, repeats=repeats, min_sample_s=min_sample_s)
  for key, tm in timings.items():
    out[f"{key} median_s"] = tm.median_s
    out[f"{key} spread"] = tm.spread
  out["ratio v&g"] = timings["jaxloss v&g"].median_s / timings["optax v&g"].median_s
  out["ratio value"] = timings["jaxloss value"].median_s / timings["optax value"].median_s
  # accuracy: float32 gradients against the float64 closed form (jaxloss in float64 equals optax in float64)
  with jax.enable_x64(True):
    g64 = np.asarray(jax.grad(fns["jaxloss"])(jnp.asarray(np.asarray(z), jnp.float64)))
  for name in fns:
    g32 = np.asarray(vg[name](z)[1], np.float64)
    out[f"{name} grad err vs f64"] = float(np.max(np.abs(g32 - g64)))
  return out


def table(r: dict) -> str:
  rows = []
  for name in ("jaxloss", "optax"):
    rows.append([name, r["shape"], H.fmt_time(r[f"{name} v&g median_s"]), H.fmt_time(r[f"{name} value median_s"]),
                 f"{(r[f'{name}_temp_bytes'] or 0) / 2**20:.1f} MiB", f"{r[f'{name} grad err vs f64']:.1e}"])
  rows.append(["jaxloss / optax", "", f"{r['ratio v&g']:.2f}", f"{r['ratio value']:.2f}",
               f"{(r['jaxloss_temp_bytes'] or 0) / max(r['optax_temp_bytes'] or 1, 1):.2f}", ""])
  return H.markdown_table(["candidate", "shape", "value_and_grad", "value", "XLA temp memory (v&g)",
                           "max |grad - f64 grad|"], rows)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="a tiny shape, few repeats")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--out", default=None, help="markdown fragment, e.g. benchmarks/results/ctc_cpu.md")
  p.add_argument("--json", default=None, help="raw numbers as JSON")
  args = p.parse_args(argv)
  shape = QUICK if args.quick else TARGET
  repeats = args.repeats or (3 if args.quick else 21)
  env = H.env_info()
  print(json.dumps(env))
  r = measure(shape, repeats=repeats, min_sample_s=0.0 if args.quick else 0.05)
  print(table(r))
  print(f"value_and_grad jaxloss / optax = {r['ratio v&g']:.3f} (same run, interleaved medians; "
        f"load average {env.get('loadavg')})")
  notes = [
      "Both candidates: mean over sequences of the per-sequence CTC loss, float32 logits, `jax.value_and_grad` "
      "w.r.t. the logits; medians of interleaved samples from one run.",
      "jaxloss: one `lax.scan` running the alpha and beta recursions together, gradient `softmax - gamma` "
      "(custom_jvp); optax: autodiff through its forward scan.",
  ]
  if env.get("platform") == "cpu":
    notes.append("CPU run on a shared host: the ratio is the statistic; absolute times are indicative only.")
  if args.out:
    H.write_fragment(args.out, H.fragment("CTC loss vs optax.ctc_loss", table(r), env, script="benchmarks/ctc.py",
                                          notes=notes))
  if args.json:
    H.write_json(args.json, {"env": env, "result": r})
  return 0


if __name__ == "__main__":
  sys.exit(main())
