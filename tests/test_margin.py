"""Perceptron and margin losses against optax and PyTorch (values and gradients), and the compat forms.

PyTorch is optional (``pytest.importorskip``): its ``multi_margin_loss`` and
``multilabel_margin_loss`` are the peers of the native losses (which omit its
1/C and take multi-hot targets) and are reproduced exactly by
``jaxloss.compat.torch``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss.compat import torch as T

RNG = np.random.default_rng(1)


def _vg(fn, x):
  return jax.value_and_grad(lambda a: jnp.sum(fn(a)))(jnp.asarray(x))


def _optax_vg(fn, x):
  with jax.numpy_dtype_promotion("standard"):  # optax's own code mixes int and float
    return _vg(fn, x)


def _grid_scores(n, c):
  """Distinct scores 0.7 apart (+ small noise): no pairwise difference near 0 or +-1 (no kinks)."""
  ranks = np.argsort(RNG.random((n, c)), axis=-1).astype(np.float64)
  return 0.7 * (ranks - c / 2) + RNG.uniform(-0.05, 0.05, (n, c))


# --------------------------------------------------------------------------
# perceptrons against optax
# --------------------------------------------------------------------------
def test_perceptron_against_optax():
  s = np.concatenate([RNG.normal(size=100) * 2, [1e4, -1e4]])
  y = np.where(RNG.random(s.shape) < 0.5, -1.0, 1.0)
  v1, g1 = _vg(lambda a: jaxloss.perceptron_loss(a, y, reduction="none"), s)
  v2, g2 = _optax_vg(lambda a: optax.losses.perceptron_loss(a, jnp.asarray(y)), s)
  np.testing.assert_allclose(float(v1), float(v2), rtol=1e-14)
  np.testing.assert_array_equal(np.asarray(g1), np.asarray(g2))


def test_perceptron_subgradient_at_the_kink_is_zero():
  # jax.nn.relu's convention (optax's jnp.maximum(0, .) splits ties: -y / 2)
  g = jax.grad(lambda a: jaxloss.perceptron_loss(a, jnp.array([1, -1]), reduction="sum"))(jnp.zeros(2))
  np.testing.assert_array_equal(np.asarray(g), [0.0, 0.0])


def test_perceptron_01_labels_are_nan():
  got = np.asarray(jaxloss.perceptron_loss(jnp.array([1.0, -1.0]), jnp.array([0, 1]), reduction="none"))
  assert np.isnan(got[0]) and got[1] == 1.0


def test_multiclass_perceptron_against_optax():
  s = _grid_scores(50, 6)
  y = RNG.integers(0, 6, size=50)
  v1, g1 = _vg(lambda a: jaxloss.multiclass_perceptron_loss(a, y, reduction="none"), s)
  v2, g2 = _optax_vg(lambda a: optax.losses.multiclass_perceptron_loss(a, jnp.asarray(y)), s)
  np.testing.assert_allclose(float(v1), float(v2), rtol=1e-14)
  np.testing.assert_array_equal(np.asarray(g1), np.asarray(g2))


@pytest.mark.runtime_checks
def test_multiclass_perceptron_label_out_of_range_raises_naming_labels():
  f = checkify.checkify(lambda s, y: jaxloss.multiclass_perceptron_loss(s, y), errors=checkify.user_checks)
  err, _ = jax.jit(f)(jnp.zeros((2, 3)), jnp.array([0, 3]))
  with pytest.raises(Exception, match="labels must be class indices in \\[0, 3\\)"):
    err.throw()


# --------------------------------------------------------------------------
# multi-margin against PyTorch
# --------------------------------------------------------------------------
@pytest.mark.parametrize("p,margin", [(1, 1.0), (2, 1.0), (1, 0.5), (2, 2.0)])
def test_multi_margin_against_torch(p, margin):
  torch = pytest.importorskip("torch")
  s = _grid_scores(40, 5)
  y = RNG.integers(0, 5, size=40)
  w = np.array([0.5, 1.0, 2.0, 1.5, 0.25])
  xt = torch.tensor(s, requires_grad=True)
  for weight in (None, w):
    for reduction in ("none", "mean"):
      wt = None if weight is None else torch.tensor(weight)
      out = torch.nn.functional.multi_margin_loss(xt, torch.tensor(y), p=p, margin=margin, weight=wt,
                                                  reduction=reduction)
      (gt,) = torch.autograd.grad(out.sum(), xt)
      fn = lambda a, r=reduction, wgt=weight: T.multi_margin_loss(a, y, p=p, margin=margin, weight=wgt, reduction=r)
      v, g = _vg(fn, s)
      np.testing.assert_allclose(float(v), float(out.detach().sum()), rtol=1e-13)
      np.testing.assert_allclose(np.asarray(g), gt.numpy(), rtol=1e-13, atol=1e-15)
    # native: Weston-Watkins sum (no 1/C); class weights in the jaxloss weighted mean
    native = np.asarray(jaxloss.multi_margin_loss(s, y, p=p, margin=margin, reduction="none"))
    tn = torch.nn.functional.multi_margin_loss(xt, torch.tensor(y), p=p, margin=margin, reduction="none")
    np.testing.assert_allclose(native, 5 * tn.detach().numpy(), rtol=1e-13)
  mean_w = float(jaxloss.multi_margin_loss(s, y, p=p, margin=margin, class_weights=w))
  np.testing.assert_allclose(mean_w, np.sum(w[y] * native) / np.sum(w[y]), rtol=1e-13)


def test_multi_margin_rejects_p3():
  with pytest.raises(ValueError, match="p must be 1 or 2"):
    jaxloss.multi_margin_loss(jnp.zeros((2, 3)), jnp.array([0, 1]), p=3)


# --------------------------------------------------------------------------
# multi-label margin against PyTorch
# --------------------------------------------------------------------------
def _torch_target(multi_hot, rng):
  """PyTorch's format: the target classes in some order, then -1 padding (and junk after it)."""
  out = np.full(multi_hot.shape, -1, np.int64)
  for i, row in enumerate(multi_hot):
    idx = rng.permutation(np.flatnonzero(row))
    out[i, :len(idx)] = idx
    if len(idx) + 1 < row.size:
      out[i, len(idx) + 1:] = rng.integers(0, row.size, row.size - len(idx) - 1)  # ignored after the -1
  return out


def test_multilabel_margin_against_torch():
  torch = pytest.importorskip("torch")
  s = _grid_scores(30, 6)
  t = (RNG.random((30, 6)) < 0.4).astype(np.int64)
  t[0], t[1] = 0, 1  # empty and full target sets
  tt = _torch_target(t, RNG)
  xt = torch.tensor(s, requires_grad=True)
  for reduction in ("none", "mean", "sum"):
    out = torch.nn.functional.multilabel_margin_loss(xt, torch.tensor(tt), reduction=reduction)
    (gt,) = torch.autograd.grad(out.sum(), xt)
    v, g = _vg(lambda a, r=reduction: T.multilabel_margin_loss(a, tt, reduction=r), s)
    np.testing.assert_allclose(float(v), float(out.detach().sum()), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(g), gt.numpy(), rtol=1e-13, atol=1e-15)
  tn = torch.nn.functional.multilabel_margin_loss(xt, torch.tensor(tt), reduction="none")
  v, g = _vg(lambda a: jaxloss.multilabel_margin_loss(a, t, reduction="none"), s)
  (gt,) = torch.autograd.grad(tn.sum(), xt)
  np.testing.assert_allclose(np.asarray(jaxloss.multilabel_margin_loss(s, t, reduction="none")),
                             6 * tn.detach().numpy(), rtol=1e-13)
  np.testing.assert_allclose(np.asarray(g), 6 * gt.numpy(), rtol=1e-13, atol=1e-15)


def test_multilabel_margin_compat_duplicates_and_unbatched_like_torch():
  torch = pytest.importorskip("torch")
  x = np.array([0.3, -0.2, 0.5, 0.1])
  t = np.array([1, 1, -1, 2])  # class 1 listed twice: counted twice by ATen
  want = float(torch.nn.functional.multilabel_margin_loss(torch.tensor(x), torch.tensor(t)))
  np.testing.assert_allclose(float(T.multilabel_margin_loss(x, t)), want, rtol=1e-14)


def test_multilabel_margin_native_margin_and_bad_labels():
  s = jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
  t = jnp.array([[1, 0, 0], [1, 2, 0]])
  got = np.asarray(jaxloss.multilabel_margin_loss(s, t, margin=0.5, reduction="none"))
  assert got[0] == 0.0 and np.isnan(got[1])  # margins 1 and 2 >= 0.5; label 2 is not 0/1


def test_compat_torch_hand_computed_without_torch():
  # rows worked by hand from PyTorch's documented formulas (weight outside the power, as ATen; /C; -1-terminated
  # targets with a repeated class counted twice)
  x = np.array([[0.1, 0.2, 0.4, 0.8], [0.3, -0.2, 0.5, 0.1]])
  y = np.array([3, 0])
  w = np.array([1.0, 2.0, 3.0, 4.0])
  # row 0: 4 * (0.3 + 0.4 + 0.6) / 4; row 1: 1 * (0.5 + 1.2 + 0.8) / 4
  np.testing.assert_allclose(np.asarray(T.multi_margin_loss(x, y, weight=w, reduction="none")), [1.3, 0.625],
                             rtol=1e-14)
  np.testing.assert_allclose(np.asarray(T.multi_margin_loss(x, y, p=2, weight=w, reduction="none")),
                             [4 * (0.09 + 0.16 + 0.36) / 4, (0.25 + 1.44 + 0.64) / 4], rtol=1e-14)
  t = np.array([[3, 0, -1, 1], [1, 1, -1, 2]])
  # row 0: T = {3, 0}: (0.4 + 0.6 + 1.1 + 1.3) / 4; row 1: T = {1, 1}: 2 * (1.5 + 1.7 + 1.3) / 4
  np.testing.assert_allclose(np.asarray(T.multilabel_margin_loss(x, t, reduction="none")), [0.85, 2.25], rtol=1e-14)
