"""Detection power: the mutant set of tests/test_mutants.py through jaxloss.verify and jax.test_util.check_grads.

Each mutant is a registry loss whose closed-form gradient (or Hessian) carries
one planted mistake. jaxloss.verify gets the mutant spec. check_grads compares
autodiff with finite differences of a function, so it gets the mistake the way
a user would ship it: the loss with the mutant derivative installed as its
custom VJP (for Hessian mutants: the gradient with the mutant Hessian as its
custom JVP), checked at the same points (the sampled point and/or the edge
cases, in the mutant's dtype) with check_grads' default tolerances.

Usage: python benchmarks/verify_power.py [--out FILE.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

import jax
import jax.numpy as jnp
from jax import test_util as jtu

import jaxloss
from jaxloss import verify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_mutants():
  path = os.path.join(ROOT, "tests", "test_mutants.py")
  spec = importlib.util.spec_from_file_location("jaxloss_test_mutants", path)
  mod = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = mod
  spec.loader.exec_module(mod)
  return mod


def _points(spec, m, dtype):
  """(args, config) pairs the mutant is checked at, in the mutant's dtype."""
  out = []
  configs = m.check.get("configs", list(spec.configs))
  sample = spec.sample(jax.random.PRNGKey(0), jnp.float64)
  for config in configs:
    out.append((sample, dict(config)))
  if m.check.get("edge_cases", True):
    for e in spec.edge_cases:
      if e.in_domain:
        out.append((e.args, dict(e.config)))
  cast = []
  for args, config in out:
    a = tuple(jnp.asarray(x).astype(dtype) if k in spec.float_argnums else jnp.asarray(x)
              for k, x in enumerate(args))
    cast.append((a, config))
  return cast


def _check_grads_detects_impl(mutant, m, dtype) -> bool:
  """For a mutant implementation (issue 13: a pre-fix loss kept as a mutant): check_grads of its own
  autodiff against finite differences, at the mutant's points (its own edge cases)."""
  detected = False
  for args, config in _points(mutant, m, dtype):
    for i in m.check.get("argnums") or sorted(mutant.grads):
      def f(x, i=i, args=args, config=config):
        a = list(args)
        a[i] = x
        return mutant.fn(*a, reduction="none", **config).sum()

      try:
        jtu.check_grads(f, (args[i],), order=1, modes=("rev",))
      except AssertionError:
        detected = True
  return detected


def _check_grads_detects(spec, mutant, m, dtype) -> bool:
  """True if jax.test_util.check_grads raises at any of the mutant's points."""
  if mutant.fn is not spec.fn:  # issue 13: the mutant is an implementation, not a closed form
    return _check_grads_detects_impl(mutant, m, dtype)
  detected = False
  for args, config in _points(mutant, m, dtype):  # the mutant's own edge cases (issue 13 mutants bring some)
    if m.target == "grad":
      argnums = m.check.get("argnums") or sorted(spec.grads)
      for i in argnums:
        g_mut = mutant.grads[i]

        def make(i=i, g_mut=g_mut, args=args, config=config):
          @jax.custom_vjp
          def f(x):
            a = list(args)
            a[i] = x
            return spec.fn(*a, reduction="sum", **config)

          def fwd(x):
            return f(x), x

          def bwd(x, ct):
            a = list(args)
            a[i] = x
            return ((ct * g_mut(*a, **config)).astype(x.dtype),)

          f.defvjp(fwd, bwd)
          return f

        try:
          jtu.check_grads(make(), (args[i],), order=1, modes=("rev",))
        except AssertionError:
          detected = True
    else:
      i = spec.hessian_argnum
      g_true = spec.grads[i]
      h_mut = mutant.hessian

      def make_grad(args=args, config=config):
        @jax.custom_jvp
        def grad_fn(x):
          a = list(args)
          a[i] = x
          return g_true(*a, **config)

        @grad_fn.defjvp
        def grad_jvp(primals, tangents):
          (x,), (t,) = primals, tangents
          a = list(args)
          a[i] = x
          h = h_mut(*a, **config)
          n = x.size
          return grad_fn(x), (h.reshape(n, n) @ t.reshape(n)).reshape(x.shape).astype(x.dtype)

        return grad_fn

      grad_fn = make_grad()
      try:
        jtu.check_grads(grad_fn, (args[i],), order=1, modes=("fwd",))
      except AssertionError:
        detected = True
  return detected


def _one(spec, mutant, m):
  rep = verify.check_spec(mutant, dtypes=[m.dtype], **m.check)
  try:
    theirs = "caught" if _check_grads_detects(spec, mutant, m, verify.resolve_dtype(m.dtype)) else "missed"
  except Exception as e:  # pylint: disable=broad-except
    theirs = f"error: {type(e).__name__}"
  return rep, theirs


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="also write the table as Markdown to this file")
  args = parser.parse_args(argv)
  mod = _load_mutants()
  rows = []
  t0 = time.perf_counter()
  with jax.enable_x64(True):
    for m in mod.MUTANTS:
      spec = jaxloss.REGISTRY[m.loss]
      mutant = mod.mutant_spec(m)
      with mod.patched(m):  # a mutant may run pre-fix internals (a cancellation the implementation shares)
        rep, theirs = _one(spec, mutant, m)
      ours = not rep.ok
      where = ", ".join(sorted({r.check for r in rep.failures}))
      kinds = "/".join(k for k in ("given", "edge", "near") if any(r.kind == k for r in rep.failures))
      where = f"{where} ({kinds})" if where else "-"
      rows.append((m.loss, m.name, m.category, m.dtype, "caught" if ours else "MISSED", theirs, where))
      print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
  elapsed = time.perf_counter() - t0
  header = ("loss", "mutant", "category", "dtype", "jaxloss.verify", "check_grads",
            "verify: failing checks (points)")
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
  n_ours = sum(r[4] == "caught" for r in rows)
  n_theirs = sum(r[5] == "caught" for r in rows)
  summary = (f"\n{len(rows)} mutants: jaxloss.verify caught {n_ours}, jax.test_util.check_grads caught {n_theirs} "
             f"({elapsed:.0f} s on {jax.devices()[0].platform}).")
  table = "\n".join(lines) + "\n" + summary
  print(table)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      f.write(table + "\n")
  return 0 if n_ours == len(rows) else 1


if __name__ == "__main__":
  sys.exit(main())
