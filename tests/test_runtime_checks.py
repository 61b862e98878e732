"""Zero overhead by default, run-time errors opt-in (jaxloss.runtime_checks).

* default: no registry loss (every config, with weights and a mask), no compat, fused or GAN function puts an
  effect into the jaxpr of ``value_and_grad`` of a training-step-like function;
* inside ``jaxloss.runtime_checks()`` the same functions carry the checkify effect and raise, naming the argument;
* the switch is part of jax.jit's cache key: a function compiled before the switch is re-traced inside it.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss import fused
from jaxloss.compat import keras as K
from jaxloss.compat import torch as T

NAMES = sorted(jaxloss.REGISTRY)


def _effects_of_value_and_grad(fn, args, argnums=0):
  return jax.make_jaxpr(jax.value_and_grad(lambda *a: jnp.sum(fn(*a)), argnums=argnums))(*args).effects


def _registry_calls(name):
  """(label, fn, args) for every config of a registry loss, plus a weights+where call where it has them."""
  spec = jaxloss.REGISTRY[name]
  args = tuple(spec.sample(jax.random.PRNGKey(0), jnp.float32))
  for i, config in enumerate(spec.configs):
    yield f"config {i} {dict(config)}", lambda *a, c=config: spec.fn(*a, **c), args
  params = jaxloss.REGISTRY[name].fn.__code__.co_varnames
  if "weights" in params and "where" in params:
    shape = jnp.shape(spec.unreduced(*args))
    w = jnp.ones(shape, jnp.float32)
    m = jnp.ones(shape, bool)
    yield "weights+where", lambda *a: spec.fn(*a, weights=w, where=m), args


@pytest.mark.parametrize("name", NAMES)
def test_no_effect_by_default(name):
  assert not jaxloss.runtime_checks_enabled()
  for label, fn, args in _registry_calls(name):
    effects = _effects_of_value_and_grad(fn, args, argnums=jaxloss.REGISTRY[name].diff_argnums)
    assert not effects, f"{name} ({label}) adds effects {effects} to the caller's jaxpr"


def _other_public_calls():
  z = jnp.linspace(-2.0, 2.0, 12, dtype=jnp.float32).reshape(4, 3)
  p = jax.nn.softmax(z)
  y01 = (z > 0).astype(jnp.float32)
  labels = jnp.array([0, 2, 1, 0])
  h = jnp.ones((4, 8), jnp.float32)
  w = jnp.ones((8, 16), jnp.float32) * 0.1
  yield "fused.linear_softmax_cross_entropy", lambda a: fused.linear_softmax_cross_entropy(a, w, labels), (h,)
  yield "keras.binary_crossentropy", lambda a: K.binary_crossentropy(y01, jax.nn.sigmoid(a)), (z,)
  yield "keras.categorical_crossentropy", lambda a: K.categorical_crossentropy(p, jax.nn.softmax(a)), (z,)
  yield "keras.sparse_categorical_crossentropy", lambda a: K.sparse_categorical_crossentropy(
      labels, a, from_logits=True), (z,)
  yield "keras.kl_divergence", lambda a: K.kl_divergence(p, jax.nn.softmax(a)), (z,)
  yield "keras.mean_squared_logarithmic_error", lambda a: K.mean_squared_logarithmic_error(jnp.abs(z), a), (z,)
  yield "keras.mean_absolute_percentage_error", lambda a: K.mean_absolute_percentage_error(z, a), (z,)
  yield "keras.poisson", lambda a: K.poisson(jnp.abs(z), jnp.exp(a)), (z,)
  yield "torch.binary_cross_entropy", lambda a: T.binary_cross_entropy(jax.nn.sigmoid(a), y01), (z,)
  yield "torch.binary_cross_entropy_with_logits", lambda a: T.binary_cross_entropy_with_logits(a, y01), (z,)
  yield "torch.nll_loss", lambda a: T.nll_loss(jax.nn.log_softmax(a), labels), (z,)
  yield "torch.cross_entropy", lambda a: T.cross_entropy(a, labels), (z,)
  yield "torch.cross_entropy (smoothing)", lambda a: T.cross_entropy(a, labels, label_smoothing=0.1), (z,)
  yield "torch.kl_div", lambda a: T.kl_div(jax.nn.log_softmax(a), p), (z,)
  yield "torch.poisson_nll_loss", lambda a: T.poisson_nll_loss(a, jnp.abs(z)), (z,)
  yield "torch.gaussian_nll_loss", lambda a: T.gaussian_nll_loss(a, z, jnp.ones_like(z)), (z,)


@pytest.mark.parametrize("label,fn,args", list(_other_public_calls()), ids=lambda v: v if isinstance(v, str) else "")
def test_no_effect_by_default_outside_registry(label, fn, args):
  assert not _effects_of_value_and_grad(fn, args), label


# The ones that validate a run-time value (labels, a probability range, a variance); the Keras functions clip
# instead, and torch's BCE-with-logits, KL and Poisson NLL take any real input.
_CHECKING = ("fused.linear_softmax_cross_entropy", "torch.binary_cross_entropy", "torch.nll_loss",
             "torch.cross_entropy", "torch.cross_entropy (smoothing)", "torch.gaussian_nll_loss")


@pytest.mark.parametrize("label,fn,args", list(_other_public_calls()), ids=lambda v: v if isinstance(v, str) else "")
def test_runtime_checks_on_adds_the_check_exactly_where_one_exists(label, fn, args):
  with jaxloss.runtime_checks():
    assert bool(_effects_of_value_and_grad(fn, args)) == (label in _CHECKING), label


@pytest.mark.runtime_checks
def test_out_of_range_integer_label_raises_naming_labels():
  z = jnp.zeros((3, 4))
  labels = jnp.array([1, 7, 0])
  err, value = checkify.checkify(jaxloss.softmax_cross_entropy_with_integer_labels,
                                 errors=checkify.user_checks)(z, labels)
  assert np.isnan(value)
  with pytest.raises(checkify.JaxRuntimeError, match=r"labels must be class indices in \[0, 4\)"):
    err.throw()


def test_default_keeps_the_nan_and_checkify_finds_nothing():
  z = jnp.zeros((3, 4))
  labels = jnp.array([1, 7, 0])
  err, value = checkify.checkify(jaxloss.softmax_cross_entropy_with_integer_labels,
                                 errors=checkify.user_checks)(z, labels)
  assert np.isnan(value)
  assert err.get() is None


def test_switch_turned_on_after_compilation_retraces_with_checks():
  """A user who compiled a step with checks off and then opts in must get the checks, not the cached trace."""
  traces = []

  @jax.jit
  def step(z, labels):
    traces.append(jaxloss.runtime_checks_enabled())
    return jaxloss.softmax_cross_entropy_with_integer_labels(z, labels)

  z = jnp.zeros((2, 3))
  bad = jnp.array([0, 3])
  assert np.isnan(step(z, bad))  # compiled without checks
  checked = jax.jit(checkify.checkify(step, errors=checkify.user_checks))
  err, _ = checked(z, bad)  # compiled without checks as well: nothing to raise
  assert err.get() is None
  with jaxloss.runtime_checks():
    err, _ = checked(z, bad)
    with pytest.raises(checkify.JaxRuntimeError, match="labels"):
      err.throw()
    with jaxloss.runtime_checks(False):
      err, _ = checked(z, bad)
      assert err.get() is None
  n = len(traces)
  step(z, bad)  # back outside: the check-free trace is reused
  assert len(traces) == n
  assert traces == [False, True]  # one check-free trace, reused everywhere outside; one with checks


def test_switch_rejects_non_bool():
  with pytest.raises(TypeError, match="bool"):
    jaxloss.runtime_checks("yes")


@pytest.mark.parametrize("value,expected", [("1", "True"), ("0", "False"), ("", "False")])
def test_environment_variable(value, expected):
  code = ("import jax, jax.numpy as jnp, jaxloss; "
          "e = jax.make_jaxpr(jaxloss.softmax_cross_entropy_with_integer_labels)(jnp.zeros((2, 3)), "
          "jnp.array([0, 1])).effects; print(jaxloss.runtime_checks_enabled(), bool(e))")
  env = dict(os.environ, JAXLOSS_RUNTIME_CHECKS=value, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
  assert out.stdout.split() == [expected, expected]


def test_environment_variable_bad_value_names_it():
  env = dict(os.environ, JAXLOSS_RUNTIME_CHECKS="maybe", JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", "import jaxloss"], env=env, capture_output=True, text=True)
  assert out.returncode != 0 and "JAXLOSS_RUNTIME_CHECKS" in out.stderr
