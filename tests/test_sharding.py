"""A batch sharded over 8 simulated CPU devices gives the same value and gradient as unsharded.

One subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be
set before JAX starts) runs every registry loss and prints one JSON line per
loss; the tests are parametrized over the registry and read those results.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import jaxloss

NAMES = sorted(jaxloss.REGISTRY)

_SCRIPT = textwrap.dedent(r"""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    jax.config.update("jax_enable_x64", True)
    import jaxloss

    devices = jax.devices()
    assert len(devices) == 8, devices
    mesh = Mesh(np.array(devices), ("batch",))
    batch = NamedSharding(mesh, P("batch"))
    replicated = NamedSharding(mesh, P())

    def tile(x, n=8):
      x = np.asarray(x)
      if x.ndim == 0:
        return x
      return x[np.arange(n * ((x.shape[0] + n - 1) // n)) % x.shape[0]]

    for name in sys.argv[1:]:
      spec = jaxloss.REGISTRY[name]
      try:
        args = tuple(tile(a) for a in spec.sample(jax.random.PRNGKey(0), jnp.float32))
        diff = tuple(sorted(spec.grads))

        def loss(*a):
          return spec.fn(*a, reduction="mean")

        vg = jax.jit(jax.value_and_grad(loss, argnums=diff))
        v0, g0 = vg(*[jnp.asarray(a) for a in args])
        sharded = [jax.device_put(a, batch if np.ndim(a) else replicated) for a in args]
        assert all(len(s.sharding.device_set) == 8 for s in sharded if np.ndim(s))
        v1, g1 = vg(*sharded)
        out = {"name": name, "value": [float(v0), float(v1)],
               "grad_max_abs_diff": max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(g0, g1)),
               "grad_max_abs": max(float(jnp.max(jnp.abs(a))) for a in g0),
               "finite": bool(np.isfinite(float(v1)) and all(bool(jnp.all(jnp.isfinite(b))) for b in g1))}
      except Exception as e:  # reported per loss
        out = {"name": name, "error": repr(e)}
      print(json.dumps(out), flush=True)
    """)


@pytest.fixture(scope="module")
def sharded_results():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, *NAMES], env=env, capture_output=True, text=True,
                        timeout=600, check=False)
  results = {}
  for line in proc.stdout.splitlines():
    if line.startswith("{"):
      d = json.loads(line)
      results[d["name"]] = d
  if not results:
    pytest.fail(f"sharding subprocess failed:\n{proc.stderr[-4000:]}")
  return results


@pytest.mark.parametrize("name", NAMES)
def test_sharded_batch_matches_unsharded(name, sharded_results):
  r = sharded_results.get(name)
  assert r is not None, f"{name}: no result from the sharding subprocess"
  assert "error" not in r, r.get("error")
  assert r["finite"]
  v0, v1 = r["value"]
  # float32; only the order of the cross-device reduction differs
  assert abs(v0 - v1) <= 1e-5 * max(1.0, abs(v0)), r
  assert r["grad_max_abs_diff"] <= 1e-5 * max(1.0, r["grad_max_abs"]), r
