"""Option values passed as traced arrays (through jit/vmap/grad) are range-checked at run time.

A concrete out-of-range option raises ValueError at trace time (tested per loss
elsewhere); a traced one cannot, so it makes the loss NaN and raises under
checkify, like any other run-time value (see jaxloss._base).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss import fused

Z = np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]])
P = np.array([[0.2, 0.9, -1.0], [0.4, 0.0, 2.5]])
Y01 = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
YDIST = np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]])
YINT = np.array([2, 0])

# (name, call(option) -> unreduced loss, a valid value, an invalid value, the option's name)
CASES = [
    ("sigmoid_bce/label_smoothing",
     lambda o: jaxloss.sigmoid_binary_cross_entropy(Z, Y01, label_smoothing=o, reduction="none"), 0.1, 1.5,
     "label_smoothing"),
    ("softmax_ce/label_smoothing",
     lambda o: jaxloss.softmax_cross_entropy(Z, YDIST, label_smoothing=o, reduction="none"), 0.1, -0.2,
     "label_smoothing"),
    ("int_ce/label_smoothing",
     lambda o: jaxloss.softmax_cross_entropy_with_integer_labels(Z, YINT, label_smoothing=o, reduction="none"),
     0.1, 2.0, "label_smoothing"),
    ("focal/gamma", lambda o: jaxloss.sigmoid_focal_loss(Z, Y01, gamma=o, reduction="none"), 2.0, -1.0, "gamma"),
    ("focal/alpha", lambda o: jaxloss.sigmoid_focal_loss(Z, Y01, alpha=o, reduction="none"), 0.25, 1.25, "alpha"),
    ("huber/delta", lambda o: jaxloss.huber_loss(P, Z, delta=o, reduction="none"), 0.5, -1.0, "delta"),
    ("huber/delta_zero", lambda o: jaxloss.huber_loss(P, Z, delta=o, reduction="none"), 0.5, 0.0, "delta"),
    ("smooth_l1/beta", lambda o: jaxloss.smooth_l1_loss(P, Z, beta=o, reduction="none"), 0.0, -0.5, "beta"),
    ("quantile/tau", lambda o: jaxloss.quantile_loss(P, Z, tau=o, reduction="none"), 0.9, 1.1, "tau"),
    ("mape/epsilon", lambda o: jaxloss.mean_absolute_percentage_error(P, Z, epsilon=o, reduction="none"), 1e-7, -1e-7,
     "epsilon"),
    ("fused/label_smoothing",
     lambda o: fused.linear_softmax_cross_entropy(Z, np.eye(3), YINT, label_smoothing=o, reduction="none"),
     0.1, 1.5, "label_smoothing"),
    ("fused/z_loss",
     lambda o: fused.linear_softmax_cross_entropy(Z, np.eye(3), YINT, z_loss=o, reduction="none"),
     1e-3, -1e-3, "z_loss"),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,call,good,bad,option", CASES, ids=IDS)
def test_concrete_out_of_range_option_raises(name, call, good, bad, option):
  with pytest.raises(ValueError, match=option):
    call(bad)


@pytest.mark.parametrize("name,call,good,bad,option", CASES, ids=IDS)
def test_traced_option_in_range_matches_concrete(name, call, good, bad, option):
  expected = np.asarray(call(good))
  got = np.asarray(jax.jit(call)(jnp.asarray(good)))
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
  assert np.all(np.isfinite(got))


@pytest.mark.runtime_checks
@pytest.mark.parametrize("name,call,good,bad,option", CASES, ids=IDS)
def test_traced_option_out_of_range_is_nan_and_raises_under_checkify(name, call, good, bad, option):
  got = np.asarray(jax.jit(call)(jnp.asarray(bad)))
  assert np.all(np.isnan(got)), got
  err, _ = jax.jit(checkify.checkify(call, errors=checkify.user_checks))(jnp.asarray(bad))
  msg = err.get()
  assert msg is not None and option in msg, msg
  err_ok, _ = jax.jit(checkify.checkify(call, errors=checkify.user_checks))(jnp.asarray(good))
  assert err_ok.get() is None


def test_vmap_over_an_option_flags_only_the_bad_values():
  deltas = jnp.array([0.5, -1.0, 2.0, np.nan])
  out = np.asarray(jax.vmap(lambda d: jaxloss.huber_loss(P, Z, delta=d))(deltas))
  assert np.isfinite(out[0]) and np.isfinite(out[2])
  assert np.isnan(out[1]) and np.isnan(out[3])
  np.testing.assert_allclose(out[[0, 2]], [float(jaxloss.huber_loss(P, Z, delta=0.5)),
                                           float(jaxloss.huber_loss(P, Z, delta=2.0))], rtol=1e-12)


def test_array_alpha_is_checked_per_class():
  alpha_ok = np.array([0.25, 0.5, 0.75])
  with pytest.raises(ValueError, match=r"alpha must be in \[0.0, 1.0\], got values in \[0.25, 1.5\]"):
    jaxloss.sigmoid_focal_loss(Z, Y01, alpha=np.array([0.25, 0.5, 1.5]))
  traced = jax.jit(lambda a: jaxloss.sigmoid_focal_loss(Z, Y01, alpha=a, reduction="none"))
  out = np.asarray(traced(jnp.array([0.25, 0.5, 1.5])))
  assert np.all(np.isnan(out[:, 2])) and np.all(np.isfinite(out[:, :2]))
  np.testing.assert_allclose(np.asarray(traced(jnp.asarray(alpha_ok))),
                             np.asarray(jaxloss.sigmoid_focal_loss(Z, Y01, alpha=alpha_ok, reduction="none")),
                             rtol=1e-12)
