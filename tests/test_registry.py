"""Registry-wide tests: parametrized over jaxloss.REGISTRY, so a new loss is picked up automatically.

* every closed form verified (jaxloss.verify) in bf16, f16, f32 and f64, with no false alarm;
* values against each spec's independent float64 reference (never against the function itself);
* jit / vmap / grad composition, no retracing;
* the spec contract (grads for every float argument it claims, shapes);
* the shared reduction / where / weights invariants.
"""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import verify

NAMES = sorted(jaxloss.REGISTRY)


def _spec(name):
  return jaxloss.REGISTRY[name]


def _sample(spec, dtype, seed=0):
  return tuple(spec.sample(jax.random.PRNGKey(seed), dtype))


def _np(x):
  return np.asarray(jax.device_get(x))


# ---------------------------------------------------------------------------
# the verifier over the registry: no false alarm in any dtype
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_verify_registered(name):
  report = verify.check_registered(name, dtypes=verify.ALL_DTYPES)
  assert report.rows
  assert {r.dtype for r in report.rows} == {"bf16", "f16", "f32", "f64"}
  report.assert_ok()


# ---------------------------------------------------------------------------
# spec contract
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_spec_contract(name):
  spec = _spec(name)
  args = _sample(spec, jnp.float32)
  assert len(args) == len(spec.arg_names)
  for i in spec.float_argnums:
    assert jnp.asarray(args[i]).dtype == jnp.float32, f"sample must put {spec.arg_names[i]} in the dtype"
    assert i in spec.grads, f"{name}: no closed-form derivative for float argument {spec.arg_names[i]}"
  for i, g in spec.grads.items():
    assert jnp.issubdtype(jnp.asarray(args[i]).dtype, jnp.floating), spec.arg_names[i]
    for config in spec.configs:
      out = jax.eval_shape(lambda *a, g=g, config=config: g(*a, **config), *args)
      assert out.shape == jnp.shape(args[i])
  if spec.hessian is not None:
    x = args[spec.hessian_argnum]
    assert jax.eval_shape(spec.hessian, *args).shape == jnp.shape(x) + jnp.shape(x)
  assert spec.family in ("classification", "regression", "information", "gan", "segmentation", "metric",
                         "sequence")
  for e in spec.edge_cases:
    assert len(e.args) == len(spec.arg_names) and e.note


# ---------------------------------------------------------------------------
# values against the independent float64 reference
# ---------------------------------------------------------------------------
def _value_cases(spec):
  sample = tuple(_np(a) for a in _sample(spec, jnp.float64))
  for config in spec.configs:
    yield f"sample {config}", sample, dict(config), True
  for e in spec.edge_cases:
    yield e.note, tuple(np.asarray(a) for a in e.args), dict(e.config), e.in_domain


@pytest.mark.parametrize("name", NAMES)
def test_values_against_reference(name):
  spec = _spec(name)
  if spec.reference is None:
    pytest.fail(f"{name} has no float64 reference")
  for note, args, config, in_domain in _value_cases(spec):
    got = _np(jax.jit(lambda *a, config=config: spec.unreduced(*a, **config))(*args))
    want = np.asarray(spec.reference(*args, **config), np.float64)
    assert got.shape == want.shape, note
    if not in_domain:
      # outside the domain: never a plausible number where the reference has none
      assert np.all(np.isnan(got[np.isnan(want)])), note
      continue
    scale = np.max(np.abs(want[np.isfinite(want)]), initial=1.0)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13 * scale, err_msg=f"{name}: {note}")


@pytest.mark.parametrize("name", [n for n in NAMES if _spec(n).rowwise])
def test_rows_independent_unless_batch_coupled(name):
  """The verifier repeats the rows of a row-wise loss's points unless ``batch_coupled``: exact only if
  each row is an independent example. Rows permuted and repeated give the rows' losses permuted and
  repeated, and for a batch-coupled loss they do not (so the flag is not set for nothing)."""
  spec = _spec(name)
  with jax.enable_x64(True):
    args = _sample(spec, jnp.float64)
    b = np.shape(args[0])[0]
    assert all(np.ndim(a) >= 1 and np.shape(a)[0] == b for a in args), "every argument batched on axis 0"
    idx = np.concatenate([np.arange(b)[::-1], [0]])
    coupled = False
    for config in spec.configs:
      if "axis" in config:
        continue
      full = _np(spec.unreduced(*args, **config))
      sub = _np(spec.unreduced(*[np.asarray(a)[idx] for a in args], **config))
      coupled |= not np.allclose(sub, full[idx], rtol=1e-13, atol=0.0, equal_nan=True)
  assert coupled == spec.batch_coupled


# ---------------------------------------------------------------------------
# composition and retracing
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_grad_composition(name):
  spec = _spec(name)
  a0, a1 = _sample(spec, jnp.float64, 0), _sample(spec, jnp.float64, 1)
  unreduced = lambda *a: spec.fn(*a, reduction="none")
  eager = _np(unreduced(*a0))
  np.testing.assert_allclose(_np(jax.jit(unreduced)(*a0)), eager, rtol=1e-12, atol=1e-14)
  stacked = tuple(jnp.stack([x, y]) for x, y in zip(a0, a1))
  batched = _np(jax.vmap(unreduced)(*stacked))
  np.testing.assert_allclose(batched[0], eager, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(batched[1], _np(unreduced(*a1)), rtol=1e-12, atol=1e-14)
  # grad of the summed loss, under jit and under vmap, against the closed form
  i = min(spec.grads)

  def total(x, *args):
    full = list(args)
    full.insert(i, x)
    return spec.fn(*full, reduction="sum")

  rest = lambda a: tuple(x for k, x in enumerate(a) if k != i)
  g_jit = _np(jax.jit(jax.grad(total))(a0[i], *rest(a0)))
  closed = _np(spec.grads[i](*a0))
  np.testing.assert_allclose(g_jit, closed, rtol=1e-9, atol=1e-12)
  g_vmap = _np(jax.vmap(jax.grad(total))(stacked[i], *rest(stacked)))
  np.testing.assert_allclose(g_vmap[1], _np(spec.grads[i](*a1)), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_no_retracing(name):
  spec = _spec(name)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def loss(*args):
    return spec.fn(*args)

  for seed in range(3):
    jax.block_until_ready(loss(*_sample(spec, jnp.float32, seed)))


# ---------------------------------------------------------------------------
# reduction / where / weights invariants
# ---------------------------------------------------------------------------
def _has_shared_options(spec):
  params = inspect.signature(spec.fn).parameters
  return all(k in params for k in ("weights", "where", "reduction"))


@pytest.mark.parametrize("name", NAMES)
def test_reduction_invariants(name):
  spec = _spec(name)
  if not _has_shared_options(spec):
    # two-sample GAN discriminator losses take real_/fake_ weights and masks
    # (tested in tests/test_gan.py); every other loss has the shared options.
    assert spec.family == "gan", f"{name} lacks weights/where/reduction"
    pytest.skip("two-sample loss: real_weights/fake_weights instead of weights")
  args = _sample(spec, jnp.float64)
  fn = spec.fn
  unreduced = _np(fn(*args, reduction="none"))
  total = float(fn(*args, reduction="sum"))
  mean = float(fn(*args, reduction="mean"))
  np.testing.assert_allclose(total, unreduced.sum(), rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(mean, total / unreduced.size, rtol=1e-12, atol=1e-14)
  # weights = 2 doubles the sum and leaves the mean unchanged
  np.testing.assert_allclose(float(fn(*args, weights=2.0, reduction="sum")), 2 * total, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(float(fn(*args, weights=2.0, reduction="mean")), mean, rtol=1e-12, atol=1e-14)
  # where: masked elements excluded from sum and mean
  rng = np.random.default_rng(0)
  mask = rng.random(unreduced.shape) < 0.5
  mask.flat[0], mask.flat[-1] = True, False
  np.testing.assert_allclose(float(fn(*args, where=jnp.asarray(mask), reduction="sum")),
                             unreduced[mask].sum(), rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(float(fn(*args, where=jnp.asarray(mask), reduction="mean")),
                             unreduced[mask].mean(), rtol=1e-12, atol=1e-14)
  # all masked: 0 with zero gradient, never NaN
  none = jnp.zeros(unreduced.shape, bool)
  for reduction in ("mean", "sum"):
    assert float(fn(*args, where=none, reduction=reduction)) == 0.0
  fl = tuple(sorted(spec.grads))

  def masked_mean(*xs):
    full = list(args)
    for k, x in zip(fl, xs):
      full[k] = x
    return fn(*full, where=none)

  grads = jax.grad(masked_mean, argnums=tuple(range(len(fl))))(*(args[k] for k in fl))
  for g in grads:
    assert np.all(_np(g) == 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch(name):
  """A batch of 0 rows: mean and sum 0 (as an all-masked batch), empty unreduced loss, empty gradients."""
  spec = _spec(name)
  args = _sample(spec, jnp.float64)
  empty = tuple(a[:0] if np.ndim(a) >= 1 else a for a in args)
  for reduction in ("mean", "sum"):
    assert float(spec.fn(*empty, reduction=reduction)) == 0.0
  assert _np(spec.fn(*empty, reduction="none")).size == 0
  fl = tuple(sorted(spec.grads))

  def f(*xs):
    full = list(empty)
    for k, x in zip(fl, xs):
      full[k] = x
    return spec.fn(*full)

  grads = jax.jit(jax.grad(f, argnums=tuple(range(len(fl)))))(*(empty[k] for k in fl))
  for k, g in zip(fl, grads):
    assert g.shape == np.shape(empty[k])
