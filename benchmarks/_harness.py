"""Shared timing utilities for the jaxloss benchmark scripts.

Every script in ``benchmarks/`` measures its candidates *in the same run*,
interleaved, after warm-up, with compile time measured separately, and writes
ratios against a peer measured beside it. Absolute times from different runs or
machines are never compared.

Small API (used by ``bench.py``, ``ce_bandwidth.py``, ``fused_ce.py``):

``compile_fn(fn, *args) -> Compiled``
  ``jax.jit(fn).lower(*args).compile()``, timed (``Compiled.compile_s``).
  Calling the ``Compiled`` runs the executable.
``time_interleaved(cases, *, repeats, warmup, min_sample_s) -> dict[str, Timing]``
  ``cases`` maps a name to ``(callable, args)`` (typically a ``Compiled`` and
  its arguments). Each callable is warmed up, calibrated to an inner loop of
  ``min_sample_s``, then the cases are timed round-robin (order rotated each
  round), ``repeats`` samples each. ``Timing.median_s`` is the statistic to use.
``copy_kernel(x)``
  The read-once + write-once reference (``-x``): its time on an array is the
  bandwidth limit of any op that reads that array once and writes one like it.
``env_info() -> dict``
  Device name, platform, device count, jax/jaxlib/optax versions, UTC date,
  host CPU count and load average.
``fragment(title, body, env, *, script, notes=()) -> str`` / ``write_fragment``
  A markdown fragment for ``benchmarks/results/`` with a machine-readable
  header (``<!-- jaxloss-bench: {json} -->``) that ``make_results.py`` reads.
``hlo_summary(compiled) -> dict``
  Op counts of the optimized HLO (top-level kernels, fusions, reduces,
  transcendentals, ...), to diagnose why one candidate is slower.
``markdown_table(headers, rows)``, ``fmt_time(s)``, ``fmt_ratio(a, b)``,
``write_json(path, payload)``.

This module imports only jax/numpy (optax is looked up for its version only).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

FRAGMENT_TAG = "jaxloss-bench:"
REQUIRED_META = ("title", "script", "device", "platform", "jax", "date")


# --------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------
def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def env_info() -> dict[str, Any]:
  """What a result needs beside it: device, versions, date, host load."""
  dev = jax.devices()[0]
  kind = getattr(dev, "device_kind", str(dev))
  device = kind
  if dev.platform == "cpu":
    device = f"CPU ({_cpu_model()}, {os.cpu_count()} cores)"
  try:
    import optax  # pylint: disable=g-import-not-at-top

    optax_version = optax.__version__
  except ImportError:  # pragma: no cover
    optax_version = None
  try:
    import jaxlib  # pylint: disable=g-import-not-at-top

    jaxlib_version = jaxlib.__version__
  except (ImportError, AttributeError):  # pragma: no cover
    jaxlib_version = None
  try:
    load = [round(x, 2) for x in os.getloadavg()]
  except OSError:  # pragma: no cover
    load = None
  return {
      "device": device,
      "platform": dev.platform,
      "device_count": jax.device_count(),
      "jax": jax.__version__,
      "jaxlib": jaxlib_version,
      "optax": optax_version,
      "python": platform.python_version(),
      "x64": bool(jax.config.jax_enable_x64),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "host_cpus": os.cpu_count(),
      "loadavg": load,
  }


# --------------------------------------------------------------------------
# compiling and timing
# --------------------------------------------------------------------------
def block(x: Any) -> Any:
  """Waits for every array in the pytree ``x``."""
  return jax.block_until_ready(x)


@dataclasses.dataclass
class Compiled:
  """An AOT-compiled function and the seconds its lowering + compile took."""

  executable: Any
  compile_s: float
  hlo_text: Callable[[], str]

  def __call__(self, *args: Any) -> Any:
    return self.executable(*args)


def compile_fn(fn: Callable[..., Any], *args: Any, static_argnums: Sequence[int] = ()) -> Compiled:
  """Lowers and compiles ``jax.jit(fn)`` for ``args``; times that alone.

  The returned object runs the executable (no tracing, no cache lookup), so
  timed calls measure execution plus a constant dispatch cost, the same for
  every candidate.
  """
  jitted = jax.jit(fn, static_argnums=tuple(static_argnums))
  t0 = time.perf_counter()
  lowered = jitted.lower(*args)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  return Compiled(compiled, compile_s, compiled.as_text)


@dataclasses.dataclass
class Timing:
  """Per-call times (seconds) of one case; one entry per interleaved sample."""

  name: str
  samples: list[float]
  inner: int
  compile_s: float | None = None

  @property
  def median_s(self) -> float:
    return statistics.median(self.samples)

  @property
  def min_s(self) -> float:
    return min(self.samples)

  @property
  def spread(self) -> float:
    """(upper quartile - lower quartile) / median: the run's noise."""
    if len(self.samples) < 4:
      return float("nan")
    q = np.percentile(self.samples, [25, 75])
    return float((q[1] - q[0]) / self.median_s)

  def as_dict(self) -> dict[str, Any]:
    return {
        "name": self.name,
        "median_s": self.median_s,
        "min_s": self.min_s,
        "spread": self.spread,
        "inner": self.inner,
        "samples": len(self.samples),
        "compile_s": self.compile_s,
    }


def _run(fn: Callable[..., Any], args: Sequence[Any], n: int) -> float:
  """Seconds for ``n`` back-to-back calls; waits on the last output only.

  Calls on one device run in order, so waiting on the last one waits for all;
  earlier outputs are dropped at once (large gradients must not pile up).
  """
  out = None
  t0 = time.perf_counter()
  for _ in range(n):
    out = fn(*args)
  block(out)
  return time.perf_counter() - t0


def time_interleaved(
    cases: Mapping[str, tuple[Callable[..., Any], Sequence[Any]]],
    *,
    repeats: int = 15,
    warmup: int = 2,
    min_sample_s: float = 0.02,
    max_inner: int = 10_000,
) -> dict[str, Timing]:
  """Times every case round-robin; returns ``{name: Timing}`` (per-call seconds).

  1. warm-up: ``warmup`` calls of each case (results awaited);
  2. calibration: each case gets an inner loop of ``inner`` calls so that one
     sample lasts at least ``min_sample_s`` (one call if a call is longer);
  3. ``repeats`` rounds; in each round every case is sampled once, and the
     order is rotated from round to round so that no case always follows the
     same neighbour (a shared or thermally throttled machine then hurts all
     cases alike, and the medians stay comparable).
  """
  names = list(cases)
  inner: dict[str, int] = {}
  for name in names:
    fn, args = cases[name]
    for _ in range(max(warmup, 1)):
      block(fn(*args))
    one = _run(fn, args, 1)
    n = 1 if one >= min_sample_s else int(min(max_inner, np.ceil(min_sample_s / max(one, 1e-7))))
    inner[name] = max(1, n)
  samples: dict[str, list[float]] = {n: [] for n in names}
  for r in range(repeats):
    k = r % len(names)
    for name in names[k:] + names[:k]:
      fn, args = cases[name]
      samples[name].append(_run(fn, args, inner[name]) / inner[name])
  compile_s = {n: getattr(cases[n][0], "compile_s", None) for n in names}
  return {n: Timing(n, samples[n], inner[n], compile_s[n]) for n in names}


def copy_kernel(x: jax.Array) -> jax.Array:
  """Reads ``x`` once and writes an array like it (negation: XLA cannot elide it)."""
  return -x


# --------------------------------------------------------------------------
# HLO diagnosis
# --------------------------------------------------------------------------
_OP_RE = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*.*?\s([a-z][a-z0-9\-]*)\(")
_NOT_KERNELS = frozenset({"parameter", "constant", "get-tuple-element", "tuple", "bitcast"})
TRANSCENDENTALS = frozenset({
    "exponential", "exponential-minus-one", "log", "log-plus-one", "logistic", "tanh",
    "power", "sqrt", "rsqrt", "cbrt", "sine", "cosine", "atan2", "erf", "divide"})


def hlo_summary(compiled: Compiled | Any) -> dict[str, Any]:
  """Counts the ops of an optimized HLO module (a :class:`Compiled` or its text).

  ``kernels``: ops of the entry computation that launch work (fusions,
  custom-calls, unfused ops; parameters/constants/tuples/bitcasts excluded).
  ``ops``: every instruction of every computation by opcode. ``transcendental``
  and ``reduce`` add up the matching opcodes over all computations (so a
  second pass over the data, or an extra ``exp``, shows up as a difference).
  """
  text = compiled if isinstance(compiled, str) else compiled.hlo_text()
  ops: dict[str, int] = {}
  entry: dict[str, int] = {}
  in_entry = False
  for line in text.splitlines():
    if line.startswith("ENTRY"):
      in_entry = True
      continue
    if line.startswith("}"):
      in_entry = False
      continue
    m = _OP_RE.match(line)
    if not m:
      continue
    op = m.group(1)
    ops[op] = ops.get(op, 0) + 1
    if in_entry and op not in _NOT_KERNELS:
      entry[op] = entry.get(op, 0) + 1
  return {
      "kernels": sum(entry.values()),
      "entry": dict(sorted(entry.items())),
      "fusions": entry.get("fusion", 0),
      "reduce": ops.get("reduce", 0) + ops.get("reduce-window", 0),
      "transcendental": sum(v for k, v in ops.items() if k in TRANSCENDENTALS),
      "ops": dict(sorted(ops.items())),
      "instructions": sum(ops.values()),
  }


def hlo_brief(summary: Mapping[str, Any]) -> str:
  """One line: ``kernels K (fusions F), reduce R, transcendental T, instr I``."""
  return (f"kernels {summary['kernels']} (fusion {summary['fusions']}), reduce {summary['reduce']}, "
          f"transc. {summary['transcendental']}, instr {summary['instructions']}")


# --------------------------------------------------------------------------
# formatting and output
# --------------------------------------------------------------------------
def fmt_time(s: float | None) -> str:
  if s is None or not np.isfinite(s):
    return "n/a"
  if s >= 1:
    return f"{s:.2f} s"
  if s >= 1e-3:
    return f"{s * 1e3:.3g} ms"
  return f"{s * 1e6:.3g} µs"


def fmt_ratio(a: float | None, b: float | None) -> str:
  """``a / b`` to two decimals, or ``-`` when either is missing."""
  if a is None or b is None or not b:
    return "-"
  return f"{a / b:.2f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
  def cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")

  lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
           "| " + " | ".join("---" for _ in headers) + " |"]
  for row in rows:
    lines.append("| " + " | ".join(cell(v) for v in row) + " |")
  return "\n".join(lines)


def fragment(title: str, body: str, env: Mapping[str, Any], *, script: str,
             notes: Sequence[str] = ()) -> str:
  """A results fragment: machine-readable header, environment line, notes, body.

  ``make_results.py`` reads the header comment (keys in ``REQUIRED_META``) and
  refuses fragments without it.
  """
  meta = {"title": title, "script": script, **{k: env.get(k) for k in (
      "device", "platform", "device_count", "jax", "jaxlib", "optax", "date", "host_cpus", "loadavg")}}
  header = f"<!-- {FRAGMENT_TAG} {json.dumps(meta, sort_keys=True)} -->"
  env_line = (f"Device: **{env.get('device')}** ({env.get('platform')}) · jax {env.get('jax')}"
              f" · jaxlib {env.get('jaxlib')} · optax {env.get('optax')} · {env.get('date')}"
              f" · `{script}`")
  if env.get("platform") == "cpu" and env.get("loadavg") is not None:
    env_line += f" · host load average at start {env['loadavg']}"
  parts = [header, f"### {title}", "", env_line, ""]
  for note in notes:
    parts.append(f"> {note}")
  if notes:
    parts.append("")
  parts.append(body.rstrip())
  parts.append("")
  return "\n".join(parts)


def write_fragment(path: str | os.PathLike[str], text: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def parse_fragment_meta(text: str) -> dict[str, Any] | None:
  """The header dict of a fragment written by :func:`fragment`, else None."""
  for line in text.splitlines()[:3]:
    line = line.strip()
    if line.startswith("<!--") and FRAGMENT_TAG in line and line.endswith("-->"):
      payload = line[4:-3].strip()[len(FRAGMENT_TAG):].strip()
      try:
        meta = json.loads(payload)
      except json.JSONDecodeError:
        return None
      return meta if isinstance(meta, dict) else None
  return None


def _jsonable(x: Any) -> Any:
  if isinstance(x, Timing):
    return x.as_dict()
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  if isinstance(x, float) and not np.isfinite(x):
    return None
  if isinstance(x, Mapping):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  return x


def write_json(path: str | os.PathLike[str], payload: Any) -> None:
  """Writes ``payload`` (Timings, NumPy scalars allowed; NaN -> null) as JSON."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(_jsonable(payload), f, indent=1, sort_keys=True)
    f.write("\n")
