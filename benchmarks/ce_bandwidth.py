"""Integer-label softmax cross-entropy: bandwidth against the copy limit, and accuracy.

**Bandwidth.** ``jax.value_and_grad`` of the mean integer-label cross-entropy
with respect to ``[N, V]`` logits (default ``[8192, 131072]``, bfloat16 and
float32) reads the logits once and writes a gradient of the same size: its
limit is ``2 x bytes / copy bandwidth``, where the copy bandwidth is that of a
copy kernel (``-x``: read once, write once) on the same array, timed in the
same interleaved run. So ``fraction of limit = t_copy / t_candidate`` exactly.
Candidates, timed together: ``jaxloss.softmax_cross_entropy_with_integer_labels``
(plain and with each option it supports: label_smoothing, class_weights,
ignore_index, where, weights; options must not fall off the fast path),
``optax.losses.softmax_cross_entropy_with_integer_labels``, a naive
``logsumexp(x) - x[y]`` and the copy kernel.

**Accuracy.** Confident rows, where the loss is tiny and the logits are large,
([1000, 990] float32 and [100, 95] bfloat16, label 0; also label 1): the loss
of each candidate against a float64 reference computed as
``(m - x_y) + log1p(sum_{j != argmax} exp(x_j - m))``, which is exact to float64
rounding for every row, and the gradient against ``softmax - onehot`` in
float64. Errors are given relative and in float32 ulps of the reference.

Usage::

  python benchmarks/ce_bandwidth.py                          # GPU: full shape
  python benchmarks/ce_bandwidth.py --shape 512,8192 --out benchmarks/results/ce_bandwidth_cpu.md
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as H  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

FULL_SHAPE = (8192, 131072)
JAXLOSS_NAME = "softmax_cross_entropy_with_integer_labels"


# --------------------------------------------------------------------------
# candidates (unreduced, one value per row)
# --------------------------------------------------------------------------
def optax_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
  import optax  # pylint: disable=g-import-not-at-top

  return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)


def naive_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """``logsumexp(x) - x_y`` in the logits' dtype, as one would write it."""
  lse = jax.nn.logsumexp(logits, axis=-1)
  return lse - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]


def jaxloss_ce() -> Callable[..., Any] | None:
  try:
    import jaxloss  # pylint: disable=g-import-not-at-top
  except ImportError:  # pragma: no cover
    return None
  return getattr(jaxloss, JAXLOSS_NAME, None)


def option_variants(fn: Callable[..., Any], n: int, v: int) -> dict[str, dict[str, Any]]:
  """The keyword options ``fn`` accepts, each with a representative value.

  Only options present in ``fn``'s signature are returned, so this works while
  the loss is being extended. Arrays are built here (outside the timed call).
  """
  params = inspect.signature(fn).parameters
  rows = np.arange(n)
  out: dict[str, dict[str, Any]] = {}
  if "label_smoothing" in params:
    out["label_smoothing=0.1"] = {"label_smoothing": 0.1}
  if "class_weights" in params:
    out["class_weights"] = {"class_weights": jnp.asarray(np.linspace(0.5, 1.5, v), jnp.float32)}
  if "ignore_index" in params:
    out["ignore_index (1% ignored)"] = {"ignore_index": -100, "_ignore_every": 97}
  if "where" in params:
    out["where (1/7 masked)"] = {"where": jnp.asarray(rows % 7 != 0)}
  if "weights" in params:
    out["weights"] = {"weights": jnp.asarray(1.0 + (rows % 3), jnp.float32)}
  return out


def _mean_vg(unreduced: Callable[..., Any]) -> Callable[..., Any]:
  return jax.value_and_grad(lambda x, y: jnp.mean(unreduced(x, y).astype(jnp.float32)))


def _jaxloss_vg(fn: Callable[..., Any], opts: dict[str, Any]) -> Callable[..., Any]:
  opts = {k: v for k, v in opts.items() if not k.startswith("_")}
  return jax.value_and_grad(lambda x, y: fn(x, y, **opts))


# --------------------------------------------------------------------------
# bandwidth
# --------------------------------------------------------------------------
def bandwidth(shape: tuple[int, int], dtype: Any, a: argparse.Namespace) -> list[dict[str, Any]]:
  n, v = shape
  kx, ky = jax.random.split(jax.random.PRNGKey(a.seed))
  logits = (3.0 * jax.random.normal(kx, shape, jnp.float32)).astype(dtype)
  labels = jax.random.randint(ky, (n,), 0, v, jnp.int32)
  nbytes = logits.size * logits.dtype.itemsize
  cases: dict[str, tuple[Any, tuple[Any, ...]]] = {}
  cases["copy (-x)"] = (H.compile_fn(H.copy_kernel, logits), (logits,))
  fn = jaxloss_ce()
  notes = []
  if fn is None:
    notes.append(f"jaxloss.{JAXLOSS_NAME} not found: not timed")
  else:
    cases["jaxloss"] = (H.compile_fn(_jaxloss_vg(fn, {}), logits, labels), (logits, labels))
    variants = option_variants(fn, n, v)
    if a.options != "all":
      wanted = {w.strip() for w in a.options.split(",") if w.strip() and w.strip() != "none"}
      variants = {k: o for k, o in variants.items() if k.split()[0].split("=")[0] in wanted}
    for name, opts in variants.items():
      y = labels
      if "_ignore_every" in opts:
        y = jnp.where(jnp.arange(n) % opts["_ignore_every"] == 0, jnp.int32(opts["ignore_index"]), labels)
      try:
        cases[f"jaxloss, {name}"] = (H.compile_fn(_jaxloss_vg(fn, opts), logits, y), (logits, y))
      except Exception as e:  # pylint: disable=broad-except
        notes.append(f"jaxloss, {name}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
  cases["optax"] = (H.compile_fn(_mean_vg(optax_ce), logits, labels), (logits, labels))
  cases["naive logsumexp"] = (H.compile_fn(_mean_vg(naive_ce), logits, labels), (logits, labels))
  t = H.time_interleaved(cases, repeats=a.repeats, warmup=a.warmup, min_sample_s=a.min_sample_s)
  t_copy = t["copy (-x)"].median_s
  t_optax = t["optax"].median_s
  rows = []
  for name, timing in t.items():
    rows.append({
        "dtype": jnp.dtype(dtype).name, "shape": list(shape), "candidate": name,
        "median_s": timing.median_s, "spread": timing.spread, "compile_s": timing.compile_s,
        "gb_per_s": 2 * nbytes / timing.median_s / 1e9,
        "fraction_of_copy_limit": t_copy / timing.median_s,
        "vs_optax": timing.median_s / t_optax,
        "hlo": H.hlo_brief(H.hlo_summary(cases[name][0])),
    })
  for note in notes:
    rows.append({"dtype": jnp.dtype(dtype).name, "shape": list(shape), "candidate": "note", "note": note})
  del logits, labels, cases
  return rows


# --------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------
ACCURACY_CASES = (
    ("[1000, 990] float32, label 0", [1000.0, 990.0], 0, "float32"),
    ("[1000, 990] float32, label 1", [1000.0, 990.0], 1, "float32"),
    ("[100, 95] bfloat16, label 0", [100.0, 95.0], 0, "bfloat16"),
    ("[100, 95] bfloat16, label 1", [100.0, 95.0], 1, "bfloat16"),
)


def reference_ce(x: np.ndarray, y: int) -> tuple[float, np.ndarray]:
  """float64 loss and gradient of one row, without cancellation."""
  x = np.asarray(x, np.float64)
  k = int(np.argmax(x))
  m = x[k]
  rest = np.exp(np.delete(x, k) - m)
  loss = (m - x[y]) + np.log1p(np.sum(rest))
  p = np.exp(x - m) / (1.0 + np.sum(rest))
  g = p.copy()
  g[y] -= 1.0
  return float(loss), g


def _f32_ulps(err: float, ref: float) -> float:
  return err / float(np.spacing(np.float32(abs(ref))))


def accuracy() -> list[dict[str, Any]]:
  cands: dict[str, Callable[..., Any]] = {"optax": optax_ce, "naive logsumexp": naive_ce}
  fn = jaxloss_ce()
  if fn is not None:
    cands = {"jaxloss": lambda x, y: fn(x, y, reduction="none"), **cands}
  rows = []
  for label, values, y, dname in ACCURACY_CASES:
    x = jnp.asarray(np.asarray(values, np.float32)[None, :]).astype(jnp.dtype(dname))
    yy = jnp.asarray([y], jnp.int32)
    ref_loss, ref_grad = reference_ce(np.asarray(x.astype(jnp.float32), np.float64)[0], y)
    for cname, f in cands.items():
      loss, grad = jax.jit(jax.value_and_grad(lambda a, b, f=f: jnp.sum(f(a, b).astype(jnp.float32))))(x, yy)
      loss = float(np.asarray(loss, np.float64))
      g = np.asarray(grad.astype(jnp.float32), np.float64)[0]
      err = abs(loss - ref_loss)
      gerr = float(np.max(np.abs(g - ref_grad) / np.maximum(np.abs(ref_grad), 1e-300)))
      rows.append({"case": label, "candidate": cname, "loss": loss, "reference": ref_loss,
                   "rel_error": err / abs(ref_loss), "f32_ulps": _f32_ulps(err, ref_loss),
                   "grad_max_rel_error": gerr})
  return rows


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def render(bw: Sequence[dict[str, Any]], acc: Sequence[dict[str, Any]]) -> str:
  parts = ["#### value_and_grad of the mean loss: fraction of the read-once + write-once limit\n",
           "Limit = 2 x bytes / copy bandwidth = the copy kernel's time on the same array (same run). "
           "GB/s counts the logits read once and the gradient written once.\n"]
  rows = []
  for r in bw:
    if r["candidate"] == "note":
      continue
    rows.append([r["dtype"], "×".join(map(str, r["shape"])), r["candidate"], H.fmt_time(r["median_s"]),
                 f"{r['gb_per_s']:.1f}", f"{r['fraction_of_copy_limit']:.0%}", f"{r['vs_optax']:.2f}",
                 H.fmt_time(r["compile_s"]), r["hlo"]])
  parts.append(H.markdown_table(["dtype", "shape", "candidate", "median", "GB/s", "of copy limit", "÷ optax",
                                 "compile", "optimized HLO"], rows))
  notes = list(dict.fromkeys(r["note"] for r in bw if r["candidate"] == "note"))
  if notes:
    parts.append("\n" + "\n".join(f"- {n}" for n in notes))
  parts.append("\n#### Accuracy on confident rows (loss vs float64)\n")
  arows = [[r["case"], r["candidate"], f"{r['loss']:.9g}", f"{r['reference']:.9g}", f"{r['rel_error']:.2e}",
            f"{r['f32_ulps']:.3g}", f"{r['grad_max_rel_error']:.2e}"] for r in acc]
  parts.append(H.markdown_table(["row", "candidate", "loss", "float64 reference", "relative error",
                                 "error in f32 ulps", "grad max rel. error"], arows))
  return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--shape", default=None, help="N,V (default 8192,131072 on an accelerator, 256,16384 on CPU)")
  p.add_argument("--dtypes", default="bfloat16,float32")
  p.add_argument("--repeats", type=int, default=15)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--min-sample-s", type=float, default=0.02)
  p.add_argument("--options", default="all", help="jaxloss option variants to time: all, none, or a comma "
                 "list of label_smoothing,class_weights,ignore_index,where,weights")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=None, help="markdown fragment path")
  p.add_argument("--json", default=None)
  p.add_argument("--title", default=None)
  a = p.parse_args(argv)
  env = H.env_info()
  if a.shape is None:
    shape = FULL_SHAPE if env["platform"] != "cpu" else (256, 16384)
  else:
    shape = tuple(int(s) for s in a.shape.split(","))
    if len(shape) != 2 or min(shape) < 1:
      p.error(f"--shape must be N,V with positive N and V, got {a.shape!r}")
  print(f"# device: {env['device']} · jax {env['jax']} · shape {shape}", flush=True)
  bw = []
  for d in [s.strip() for s in a.dtypes.split(",") if s.strip()]:
    rows = bandwidth(shape, jnp.dtype(d), a)
    for r in rows:
      if r["candidate"] != "note":
        print(f"{r['dtype']:9s} {r['candidate']:34s} {H.fmt_time(r['median_s']):>9s} {r['gb_per_s']:8.1f} GB/s "
              f"{r['fraction_of_copy_limit']:5.0%} of copy  {r['vs_optax']:.2f}x optax", flush=True)
    bw.extend(rows)
  acc = accuracy()
  body = render(bw, acc)
  notes = [f"Medians of {a.repeats} interleaved samples after {a.warmup} warm-up calls; compile time apart. "
           "Logits ~ N(0, 3²), uniform labels."]
  if env["platform"] == "cpu":
    notes.append("CPU run at a reduced shape: it checks the script; the bandwidth goal is a GPU figure. "
                 "The host is shared with other jobs (load average in the header).")
  title = a.title or f"Integer-label cross-entropy: bandwidth and accuracy ({env['platform']})"
  text = H.fragment(title, body, env, script="benchmarks/ce_bandwidth.py " + " ".join(
      argv if argv is not None else sys.argv[1:]), notes=notes)
  print(text)
  if a.out:
    H.write_fragment(a.out, text)
  if a.json:
    H.write_json(a.json, {"env": env, "shape": list(shape), "bandwidth": bw, "accuracy": acc})
  return 0


if __name__ == "__main__":
  sys.exit(main())
