"""Tests of jaxloss.verify itself: the rule, the NaN/inf semantics, the report, the CLI, the example."""

import dataclasses
import functools
import json
import os
import runpy
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import EdgeCase, verify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# A small custom loss with hand derivatives: log cosh(p - y).
def _logcosh(p, y):
  r = p - y
  a = jnp.abs(r)
  return a + jnp.log1p(jnp.exp(-2.0 * a)) - jnp.log(jnp.asarray(2.0, r.dtype))


def _logcosh_dp(p, y):
  return jnp.tanh(p - y)  # d/dp log cosh(p - y) = tanh(p - y)


def _logcosh_hess(p, y):
  t = jnp.tanh(p - y)
  return jnp.diag(1.0 - t * t)  # sech^2 on the diagonal


_ARGS = (np.array([0.3, -1.2, 2.5]), np.array([0.1, 0.4, -0.7]))


def test_correct_gradient_passes_in_all_dtypes():
  report = verify.check_gradient(_logcosh, _logcosh_dp, _ARGS, dtypes=verify.ALL_DTYPES,
                                 points=[(np.array([0.0, 50.0, -100.0]), np.zeros(3))])
  report.assert_ok()
  checks = {(r.check, r.dtype) for r in report.rows}
  for d in ("bf16", "f16", "f32", "f64"):
    for c in ("grad/reverse", "grad/forward", "grad/fd64"):
      assert (c, d) in checks
  kinds = {r.kind for r in report.rows}
  assert kinds == {"given", "edge", "near"}


@pytest.mark.parametrize("dtype,rel", [("f32", 1e-4), ("f64", 1e-8)])
def test_small_relative_error_is_caught(dtype, rel):
  wrong = lambda p, y: _logcosh_dp(p, y) * (1.0 + rel)
  report = verify.check_gradient(_logcosh, wrong, _ARGS, dtypes=[dtype])
  assert not report.ok
  failed = {r.check for r in report.failures}
  assert {"grad/reverse", "grad/forward"} <= failed
  with pytest.raises(AssertionError, match="grad/reverse"):
    report.assert_ok()


def test_finite_differences_catch_what_autodiff_agrees_with():
  # fn and closed form are both wrong the same way (autodiff of fn is right for
  # fn, but fn's value is not the function the closed form differentiates):
  # only the finite-difference check sees a closed form that is not fn's derivative...
  # ... so here the closed form is right for fn, and FD must pass; a closed form
  # for 2x the loss fails every check including FD.
  wrong = lambda p, y: 2.0 * _logcosh_dp(p, y)
  report = verify.check_gradient(_logcosh, wrong, _ARGS, dtypes=["f64"])
  assert "grad/fd64" in {r.check for r in report.failures}


def test_nan_on_both_sides_fails_unless_out_of_domain():
  loss = lambda p: jnp.sqrt(p)
  grad = lambda p: 0.5 / jnp.sqrt(p)
  neg = (np.array([-1.0, 4.0]),)
  bad = verify.check_gradient(loss, grad, (np.array([1.0, 4.0]),), points=[neg], dtypes=["f64"])
  assert not bad.ok
  assert any(r.kind == "edge" and r.check == "grad/reverse" for r in bad.failures)
  good = verify.check_gradient(loss, grad, (np.array([1.0, 4.0]),),
                               points=[EdgeCase(neg, "negative input", in_domain=False)], dtypes=["f64"])
  good.assert_ok()


def test_nan_at_one_edge_point_is_caught():
  grad = lambda p, y: jnp.where(p == 0.0, jnp.nan, _logcosh_dp(p, y))
  report = verify.check_gradient(_logcosh, grad, _ARGS, points=[(np.array([0.0, 1.0, 2.0]), np.ones(3))],
                                 dtypes=["f32"], n_near=0)
  assert [r.kind for r in report.failures] == ["edge"]


def test_inf_compared_as_value():
  loss = lambda p: -jnp.log(p)
  grad = lambda p: -1.0 / p
  zero = (np.array([0.0, 0.5]),)
  verify.check_gradient(loss, grad, (np.array([0.25, 0.5]),), points=[zero], dtypes=["f32", "f64"]).assert_ok()
  finite_wrong = lambda p: jnp.where(p == 0, -1e30, -1.0 / p)
  rep = verify.check_gradient(loss, finite_wrong, (np.array([0.25, 0.5]),), points=[zero], dtypes=["f64"])
  assert not rep.ok


def test_overflow_in_the_dtype_is_the_right_answer():
  # -1/p at p = 1e-6 is -1e6: -inf in float16 is the correctly rounded gradient.
  loss = lambda p: -jnp.log(p)
  grad = lambda p: -1.0 / p
  verify.check_gradient(loss, grad, (np.array([1e-6, 0.5]),), dtypes=["f16"], n_near=0).assert_ok()


def test_kink_accepts_either_subgradient():
  # max(0, 1 - z) at z = 1: autodiff and the closed form may pick different subgradients.
  loss = lambda z: jnp.maximum(0.0, 1.0 - z)
  for closed in (lambda z: jnp.where(z < 1.0, -1.0, 0.0), lambda z: jnp.where(z <= 1.0, -1.0, 0.0)):
    verify.check_gradient(loss, closed, (np.array([0.5, 2.0]),), points=[(np.array([1.0, 1.0]),)],
                          dtypes=["f32", "f64"]).assert_ok()
  # ... but not a wrong slope next to it
  wrong = lambda z: jnp.where(z < 1.0, -1.5, 0.0)
  assert not verify.check_gradient(loss, wrong, (np.array([0.5, 2.0]),), dtypes=["f64"]).ok


def test_hessian():
  verify.check_hessian(_logcosh, _logcosh_hess, _ARGS, dtypes=["f32", "f64"]).assert_ok()
  wrong = lambda p, y: _logcosh_hess(p, y) + 1e-4 * jnp.eye(3)
  rep = verify.check_hessian(_logcosh, wrong, _ARGS, dtypes=["f32"])
  assert {"hess/reverse", "hess/forward"} <= {r.check for r in rep.failures}


def test_several_argnums_and_integer_args():
  # softmax cross-entropy with integer labels: only the logits are differentiable.
  def loss(z, label):
    return jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, label[:, None], axis=-1)[:, 0]

  def dz(z, label):
    return jax.nn.softmax(z, axis=-1) - jax.nn.one_hot(label, z.shape[-1], dtype=z.dtype)

  z = np.array([[1.0, 2.0, -1.0], [0.5, 0.5, 3.0]])
  lab = np.array([0, 2], np.int32)
  verify.check_gradient(loss, dz, (z, lab), dtypes=["bf16", "f32"],
                        points=[(np.array([[3.0, 1.0, -np.inf]]), np.array([0], np.int32)),
                                (np.array([[1000.0, 990.0, -np.inf]]), np.array([0], np.int32))]).assert_ok()
  sq = lambda p, y: (p - y) ** 2
  verify.check_gradient(sq, [lambda p, y: 2 * (p - y), lambda p, y: -2 * (p - y)], _ARGS,
                        argnums=(0, 1), dtypes=["f64"]).assert_ok()


def test_report_rendering_and_json(tmp_path):
  rep = verify.check_gradient(_logcosh, lambda p, y: -_logcosh_dp(p, y), _ARGS, dtypes=["f32"], name="mine")
  text = str(rep)
  assert "mine" in text and "FAIL" in text and "grad/reverse" in text
  path = tmp_path / "r.json"
  rep.to_json(str(path))
  data = json.loads(path.read_text())
  assert data["ok"] is False and data["name"] == "mine"
  row = data["rows"][0]
  for key in ("check", "dtype", "kind", "max_error", "tolerance", "worst", "ok"):
    assert key in row
  assert rep.to_dict()["rows"][0]["check"] == row["check"]


def test_dtype_names():
  assert verify.resolve_dtype("bf16") == jnp.bfloat16
  assert verify.resolve_dtype("float16") == np.float16
  assert verify.resolve_dtype(np.float32) == np.float32
  with pytest.raises(ValueError, match="unknown dtype"):
    verify.resolve_dtype("f8")
  with pytest.raises(TypeError):
    verify.resolve_dtype(np.int32)


def test_x64_is_restored():
  before = jax.config.jax_enable_x64
  verify.check_gradient(_logcosh, _logcosh_dp, _ARGS, dtypes=["f64"], n_near=0)
  assert jax.config.jax_enable_x64 == before


def test_cli(tmp_path, capsys):
  from jaxloss.__main__ import main

  path = tmp_path / "out.json"
  rc = main(["verify", "squared_error", "--dtypes", "f32,f64", "--json", str(path)])
  out = capsys.readouterr().out
  assert rc == 0, out
  assert "squared_error" in out and "grad/reverse" in out and "f64" in out
  data = json.loads(path.read_text())
  assert data["ok"] and {r["dtype"] for r in data["rows"]} == {"f32", "f64"}
  with pytest.raises(SystemExit):
    main(["verify", "no_such_loss"])


def test_cli_exit_status_on_failure(monkeypatch, capsys):
  import dataclasses

  import jaxloss
  from jaxloss import _registry
  from jaxloss.__main__ import main

  spec = jaxloss.REGISTRY["squared_error"]
  broken = dataclasses.replace(spec, grads={0: lambda p, y: 2.0 * (y - p)})  # sign error
  reg = dict(jaxloss.REGISTRY, squared_error=broken)
  monkeypatch.setattr(_registry, "REGISTRY", reg)
  monkeypatch.setattr(jaxloss, "REGISTRY", reg)
  rc = main(["verify", "squared_error", "--dtypes", "f64"])
  out = capsys.readouterr().out
  assert rc == 1
  assert "FAIL" in out


def test_example_smoke(tmp_path, monkeypatch, capsys):
  script = os.path.join(ROOT, "examples", "verify_custom_loss.py")
  monkeypatch.setattr(sys, "argv", [script, "--workdir", str(tmp_path)])
  with pytest.raises(SystemExit) as exc:
    runpy.run_path(script, run_name="__main__")
  assert exc.value.code in (0, None)
  out = capsys.readouterr().out
  assert "planted mistake found" in out
  reports = json.loads((tmp_path / "verify_report.json").read_text())
  assert reports["buggy"]["ok"] is False and reports["fixed"]["ok"] is True


# ---- the multiprecision reference (LossSpec.reference_mp): a cancellation shared by implementation and
# closed form, invisible to every float64 reference. -log sigma(z) (a GAN generator's loss): its derivative
# -sigma(-z), written sigma(z) - 1, is 0 in float32 at z = 17 (true -4.1e-8) and 1e-3 off in float64 at 30.
# (With a floating label y the derivative sigma(z) - y is as sensitive to y's rounding as that error, so the
# tolerance, which counts the labels' rounding, would accept it: the backward error is one ulp of y.)
def _nll_sigmoid_cancelling(z, reduction="none"):
  del reduction
  return jnp.logaddexp(0.0, z) - z  # autodiff: sigma(z) - 1


def _nll_sigmoid_accurate(z, reduction="none"):
  del reduction
  return jax.nn.softplus(-z)  # autodiff: -sigma(-z)


def _nll_sigmoid_mp(z):
  import mpmath  # pylint: disable=g-import-not-at-top

  return np.frompyfunc(lambda a: mpmath.log1p(mpmath.exp(-a)), 1, 1)(z)


def _nll_sigmoid_spec(fn, grad, reference_mp):
  from jaxloss import LossSpec  # pylint: disable=g-import-not-at-top

  return LossSpec(
      name="nll_sigmoid", family="gan", fn=fn, arg_names=("logits",), grads={0: grad},
      sample=lambda key, dtype, shape=(3,): (jnp.array([0.5, -1.0, 2.0], dtype),),
      edge_cases=(EdgeCase((np.array([30.0, -30.0, 17.0, 8.0]),), "saturated logits"),),
      reference_mp=reference_mp)


@pytest.mark.parametrize("dtype", ["bf16", "f32", "f64"])
def test_mp_reference_sees_a_shared_cancellation(dtype):
  cancelling = _nll_sigmoid_spec(_nll_sigmoid_cancelling, lambda z: jax.nn.sigmoid(z) - 1, _nll_sigmoid_mp)
  # without the mp reference every check passes: the float64 closed form cancels exactly like autodiff
  blind = verify.check_spec(dataclasses.replace(cancelling, reference_mp=None), dtypes=[dtype])
  blind.assert_ok()
  seen = verify.check_spec(cancelling, dtypes=[dtype])
  assert not seen.ok
  assert {r.check for r in seen.failures} <= {"grad/mp", "grad/mp-closed-form"}
  assert all(r.kind == "edge" for r in seen.failures)
  # the accurate versions pass, also entry by entry against mpmath
  good = _nll_sigmoid_spec(_nll_sigmoid_accurate, lambda z: -jax.nn.sigmoid(-z), _nll_sigmoid_mp)
  rep = verify.check_spec(good, dtypes=[dtype])
  rep.assert_ok()
  assert any(r.check == "grad/mp" and r.n > 0 for r in rep.rows)


# ---------------------------------------------------------------------------
# repeated rows (independent-row losses): an edge of fewer rows shares the given point's program
# ---------------------------------------------------------------------------
def _lse_rows(z, reduction="none"):
  del reduction
  return jax.nn.logsumexp(z, axis=-1)


def _lse_rows_mp(z):
  import mpmath  # pylint: disable=g-import-not-at-top

  return np.array([mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row)) for row in z], dtype=object)


def _lse_hessian(z, cancelling=False):
  """d^2 lse / dz^2 = diag p - p p^T; the diagonal p_j (1 - p_j) with 1 - p_j = sum_{k != j} p_k (or, with
  ``cancelling``, p_j - p_j^2, which cancels on a confident row)."""
  from jaxloss._classification import _rowwise_hessian  # pylint: disable=g-import-not-at-top

  def block(q):
    n = q.shape[-1]
    rest = jnp.sum(jnp.where(jnp.eye(n, dtype=bool), 0.0, q[None, :]), axis=1)
    diag = q - q * q if cancelling else q * rest
    return jnp.where(jnp.eye(n, dtype=bool), jnp.diag(diag), -jnp.outer(q, q))

  blocks = jax.vmap(block)(jax.nn.softmax(z, axis=-1))
  return _rowwise_hessian(blocks, z.shape, -1)


def _lse_spec(grad, hessian=_lse_hessian, edge_row=(0.5, -7.0, 1.0, 2.0)):
  from jaxloss import LossSpec  # pylint: disable=g-import-not-at-top

  return LossSpec(
      name="lse_rows", family="classification", fn=_lse_rows, arg_names=("logits",), grads={0: grad},
      hessian=hessian, rowwise=True,
      sample=lambda key, dtype, shape=(3, 4): (jax.random.normal(key, shape, dtype),),
      edge_cases=(EdgeCase((np.array([edge_row]),), "one row"),),
      reference_mp=_lse_rows_mp)


def test_repeated_rows_share_a_program_and_report_original_indices():
  spec = _lse_spec(lambda z: jax.nn.softmax(z, axis=-1))
  [task] = verify._build_tasks(  # pylint: disable=protected-access
      spec.fn, dict(spec.grads), spec.hessian, 0, spec.sample(jax.random.PRNGKey(0), jnp.float64),
      list(spec.edge_cases), (0,), ("logits",), independent_rows=True)
  assert task.tile_rows
  tiled = verify._tile_rows(task.points)  # pylint: disable=protected-access
  assert {np.shape(p.args[0]) for p in tiled} == {(3, 4)}  # one shape group, not two
  [edge] = [p for p in tiled if p.kind == "edge"]
  assert edge.rows == 1 and np.array_equal(edge.args[0], np.repeat(task.points[-1].args[0], 3, axis=0))
  assert verify._orig_index(edge, (2, 1)) == [0, 1]  # pylint: disable=protected-access  # a copy -> the row
  # correct closed forms pass, the multiprecision reference (computed on the original row) included
  rep = verify.check_spec(spec, dtypes=["f32", "f64"])
  rep.assert_ok()
  assert any(r.check == "hess/mp" and r.n > 0 for r in rep.rows)
  # the multiprecision reference on the repeated row still sees a closed form that cancels like autodiff
  # (on a confident row, where p_j - p_j^2 loses 1 - p_j = 4e-17 entirely)
  cancels = verify.check_spec(_lse_spec(spec.grads[0], functools.partial(_lse_hessian, cancelling=True),
                                        edge_row=(0.5, -1.0, 40.0, 2.0)), dtypes=["f64"])
  [row] = [r for r in cancels.failures if r.check == "hess/mp-closed-form"]
  assert row.kind == "edge" and "H[0, 2, 0, 2]" in row.worst
  # a closed form wrong only at the edge's entry -7 is caught, and named at its original index
  wrong = _lse_spec(lambda z: jax.nn.softmax(z, axis=-1) * jnp.where(z < -6.0, 0.5, 1.0))
  bad = verify.check_spec(wrong, dtypes=["f64"])
  fails = [r for r in bad.failures if r.check == "grad/reverse"]
  assert fails and all(r.kind in ("edge", "near") for r in fails)
  assert any("logits[0, 1]" in r.worst for r in fails if r.kind == "edge")
