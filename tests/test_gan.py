"""Tests of jaxloss.gan: seed numbers, the two-term reduction convention, specs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import gan

LN2 = math.log(2.0)
DISCRIMINATORS = [
    gan.minimax_discriminator_loss,
    gan.least_squares_discriminator_loss,
    gan.hinge_discriminator_loss,
    gan.wasserstein_critic_loss,
]
GENERATORS = [
    gan.minimax_generator_loss,
    gan.non_saturating_generator_loss,
    gan.least_squares_generator_loss,
    gan.hinge_generator_loss,
    gan.wasserstein_generator_loss,
]


# ---------------------------------------------------------------- seed facts
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
def test_minimax_at_half_is_log4(dtype):
  # D = sigmoid(0) = 1/2 on both batches: ln 2 per term, 2 ln 2 = log 4 in all.
  r, f = jnp.zeros((8,), dtype), jnp.zeros((3, 2), dtype)
  terms = gan.minimax_discriminator_loss(r, f, reduction="none")
  np.testing.assert_allclose(terms, np.full(14, LN2), rtol=1e-7)
  total = gan.minimax_discriminator_loss(r, f)
  np.testing.assert_allclose(total, math.log(4.0), rtol=1e-7)
  # the saturating generator loss log(1 - D) = -ln 2, the non-saturating -log D = ln 2.
  np.testing.assert_allclose(gan.minimax_generator_loss(f), -LN2, rtol=1e-7)
  np.testing.assert_allclose(gan.non_saturating_generator_loss(f), LN2, rtol=1e-7)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_least_squares_at_half_is_quarter(dtype):
  half = jnp.full((4,), 0.5, dtype)
  # Mao et al. with the 1/2 factors: 0.5 (0.5 - 1)^2 + 0.5 (0.5)^2 = 0.25.
  np.testing.assert_allclose(gan.least_squares_discriminator_loss(half, half), 0.25, rtol=1e-7)
  np.testing.assert_allclose(gan.least_squares_generator_loss(half), 0.125, rtol=1e-7)


def test_values_against_numpy_formulas():
  rng = np.random.default_rng(0)
  r, f = 3 * rng.standard_normal(7), 3 * rng.standard_normal(5)
  sig = lambda x: 1 / (1 + np.exp(-x))
  expect = {
      gan.minimax_discriminator_loss: np.mean(-np.log(sig(r))) + np.mean(-np.log(1 - sig(f))),
      gan.least_squares_discriminator_loss: np.mean(0.5 * (r - 1) ** 2) + np.mean(0.5 * f ** 2),
      gan.hinge_discriminator_loss: np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)),
      gan.wasserstein_critic_loss: np.mean(f) - np.mean(r),
  }
  for fn, value in expect.items():
    np.testing.assert_allclose(fn(r, f), value, rtol=1e-12, err_msg=fn.__name__)
  expect_g = {
      gan.minimax_generator_loss: np.mean(np.log(1 - sig(f))),
      gan.non_saturating_generator_loss: np.mean(-np.log(sig(f))),
      gan.least_squares_generator_loss: np.mean(0.5 * (f - 1) ** 2),
      gan.hinge_generator_loss: -np.mean(f),
      gan.wasserstein_generator_loss: -np.mean(f),
  }
  for fn, value in expect_g.items():
    np.testing.assert_allclose(fn(f), value, rtol=1e-12, err_msg=fn.__name__)


def test_saturated_logits_are_finite_and_exact():
  big = jnp.array([1e4, -1e4, jnp.inf, -jnp.inf])
  loss = gan.minimax_discriminator_loss(big, big, reduction="none")
  np.testing.assert_array_equal(loss, [0.0, 1e4, 0.0, jnp.inf, 1e4, 0.0, jnp.inf, 0.0])
  g = jax.grad(lambda z: gan.non_saturating_generator_loss(z, reduction="sum"))(big)
  np.testing.assert_array_equal(g, [0.0, -1.0, 0.0, -1.0])  # never saturates at -inf
  g = jax.grad(lambda z: gan.minimax_generator_loss(z, reduction="sum"))(big)
  np.testing.assert_array_equal(g, [-1.0, 0.0, -1.0, 0.0])  # saturates at -inf


# ---------------------------------------------------------------- conventions
@pytest.mark.parametrize("fn", DISCRIMINATORS, ids=lambda f: f.__name__)
def test_two_term_reduction(fn):
  rng = np.random.default_rng(1)
  r, f = rng.standard_normal((3, 4)), rng.standard_normal((5,))  # unequal batches
  none = fn(r, f, reduction="none")
  assert none.shape == (17,)
  real_part, fake_part = np.asarray(none[:12]), np.asarray(none[12:])
  np.testing.assert_allclose(fn(r, f), real_part.mean() + fake_part.mean(), rtol=1e-12)
  np.testing.assert_allclose(fn(r, f, reduction="sum"), none.sum(), rtol=1e-12)
  # the gradient of none.sum() is the gradient of the "sum" reduction
  g1 = jax.grad(lambda a, b: fn(a, b, reduction="none").sum(), argnums=(0, 1))(r, f)
  g2 = jax.grad(lambda a, b: fn(a, b, reduction="sum"), argnums=(0, 1))(r, f)
  for a, b in zip(g1, g2):
    np.testing.assert_allclose(a, b, rtol=1e-12)
  # "mean" gradient = per-term elementwise derivative / term size
  gm = jax.grad(lambda a, b: fn(a, b), argnums=(0, 1))(r, f)
  np.testing.assert_allclose(gm[0], g2[0] / 12, rtol=1e-12)
  np.testing.assert_allclose(gm[1], g2[1] / 5, rtol=1e-12)


@pytest.mark.parametrize("fn", DISCRIMINATORS, ids=lambda f: f.__name__)
def test_per_term_weights_and_where(fn):
  rng = np.random.default_rng(2)
  r, f = rng.standard_normal(4), rng.standard_normal(3)
  none = np.asarray(fn(r, f, reduction="none"))
  lr, lf = none[:4], none[4:]
  wr = np.array([1.0, 2.0, 0.0, 3.0])
  mf = np.array([True, False, True])
  got = fn(r, f, real_weights=wr, fake_where=mf)
  np.testing.assert_allclose(got, (wr * lr).sum() / wr.sum() + lf[mf].mean(), rtol=1e-12)
  # a masked NaN input contributes neither value nor gradient
  f_nan = np.where(mf, f, np.nan)
  g = jax.grad(lambda b: fn(r, b, fake_where=mf))(f_nan)
  assert np.all(np.isfinite(g)) and g[1] == 0.0
  # all-masked fake batch: that term is 0
  np.testing.assert_allclose(fn(r, f, fake_where=np.zeros(3, bool)), lr.mean(), rtol=1e-12)


@pytest.mark.parametrize("fn", GENERATORS, ids=lambda f: f.__name__)
def test_generator_shared_conventions(fn):
  f = np.random.default_rng(3).standard_normal((2, 3))
  none = fn(f, reduction="none")
  assert none.shape == (2, 3)
  np.testing.assert_allclose(fn(f), np.asarray(none).mean(), rtol=1e-12)
  w = np.array([1.0, 0.0, 2.0])
  np.testing.assert_allclose(fn(f, weights=w), (np.asarray(none) * w).sum() / (2 * w.sum()), rtol=1e-12)


def test_dtypes():
  for dtype, out in [(jnp.bfloat16, jnp.float32), (jnp.float16, jnp.float32), (jnp.float32, jnp.float32),
                     (jnp.float64, jnp.float64)]:
    x = jnp.zeros(3, dtype)
    assert gan.minimax_discriminator_loss(x, x).dtype == out
    assert gan.non_saturating_generator_loss(x).dtype == out
  # mixed f32 / f64 batches are computed in f64
  assert gan.wasserstein_critic_loss(jnp.zeros(2, jnp.float32), jnp.zeros(2, jnp.float64)).dtype == jnp.float64


def test_bad_input():
  with pytest.raises(TypeError, match="real_logits"):
    gan.minimax_discriminator_loss(jnp.zeros(3, jnp.int32), jnp.zeros(3))
  with pytest.raises(TypeError, match="fake_scores"):
    gan.least_squares_generator_loss(jnp.zeros(3, bool))
  with pytest.raises(ValueError, match="reduction"):
    gan.hinge_discriminator_loss(jnp.zeros(3), jnp.zeros(3), reduction="batchmean")
  with pytest.raises(ValueError, match="where"):
    gan.minimax_discriminator_loss(jnp.zeros(3), jnp.zeros(2), fake_where=jnp.ones(3, bool))
  with pytest.raises(ValueError, match="weights"):
    gan.wasserstein_generator_loss(jnp.zeros(3), weights=jnp.ones(4))


def test_jit_and_vmap():
  r, f = jnp.arange(6.0).reshape(2, 3), -jnp.arange(6.0).reshape(2, 3)
  per_row = jax.vmap(gan.minimax_discriminator_loss)(r, f)
  np.testing.assert_allclose(jax.jit(gan.minimax_discriminator_loss)(r, f), per_row.mean(), rtol=1e-12)


# ---------------------------------------------------------------- registry specs
GAN_SPECS = [s for s in jaxloss.REGISTRY.values() if s.family == "gan"]


def test_registry_has_every_gan_loss():
  assert sorted(s.name for s in GAN_SPECS) == sorted(gan.__all__)
  for name in gan.__all__:
    assert jaxloss.REGISTRY[name].fn is getattr(gan, name)


def _points(spec):
  yield spec.sample(jax.random.PRNGKey(0), jnp.float64), {}
  for case in spec.edge_cases:
    yield tuple(jnp.asarray(a) for a in case.args), dict(case.config)


@pytest.mark.parametrize("spec", GAN_SPECS, ids=lambda s: s.name)
def test_spec_reference_and_hand_derivatives(spec):
  for k, (args, config) in enumerate(_points(spec)):
    value = spec.unreduced(*args, **config)
    np.testing.assert_allclose(value, spec.reference(*args, **config), rtol=1e-12, atol=1e-300)
    total = lambda *a: spec.unreduced(*a, **config).sum()
    for i, grad_fn in spec.grads.items():
      np.testing.assert_allclose(jax.grad(total, argnums=i)(*args), grad_fn(*args, **config), rtol=1e-12, atol=1e-300)
      tangent = jnp.ones_like(args[i])
      _, jvp = jax.jvp(lambda x: total(*args[:i], x, *args[i + 1:]), (args[i],), (tangent,))
      np.testing.assert_allclose(jvp, jnp.sum(grad_fn(*args, **config)), rtol=1e-12, atol=1e-300)
    if spec.hessian is not None and k == 0:  # the random point (tests/test_registry.py covers the rest)
      # autodiff's second derivative of softplus can underflow to 0 at large |z| where the
      # closed form sigma(z) sigma(-z) is right: absolute tolerance 1e-16.
      h = jax.jit(jax.hessian(total, argnums=spec.hessian_argnum))(*args)
      np.testing.assert_allclose(h, spec.hessian(*args, **config), rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("spec", GAN_SPECS, ids=lambda s: s.name)
def test_spec_float32(spec):
  args = spec.sample(jax.random.PRNGKey(1), jnp.float32)
  value = spec.unreduced(*args)
  assert value.dtype == jnp.float32
  np.testing.assert_allclose(value, spec.reference(*args), rtol=2e-6, atol=1e-6)
  for i, grad_fn in spec.grads.items():
    g = jax.grad(lambda *a: spec.unreduced(*a).sum(), argnums=i)(*args)
    np.testing.assert_allclose(g, grad_fn(*args), rtol=2e-6, atol=1e-7)


def test_two_term_names():
  assert gan.TWO_TERM_LOSSES == {f.__name__ for f in DISCRIMINATORS}


def test_gan_losses_carry_no_checkify_effect():
  """The GAN losses check nothing at run time (their labels are constants), so they must not carry a
  checkify effect: one would take every jitted training step off JAX's fast dispatch path."""
  r = jnp.linspace(-3.0, 3.0, 16)
  for name in ("minimax_discriminator_loss", "least_squares_discriminator_loss", "hinge_discriminator_loss",
               "wasserstein_critic_loss"):
    assert not jax.make_jaxpr(getattr(gan, name))(r, -r).effects, name
  for name in ("minimax_generator_loss", "non_saturating_generator_loss", "least_squares_generator_loss",
               "hinge_generator_loss", "wasserstein_generator_loss"):
    assert not jax.make_jaxpr(getattr(gan, name))(r).effects, name
