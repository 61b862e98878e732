"""Smoke tests of examples/*.py in their --fast mode: each writes its figure and shows its claim."""

import importlib.util
import math
import pathlib

import jax
import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, tmp_path):
  spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  workdir = tmp_path / name
  result = module.main(["--fast", "--workdir", str(workdir)])
  figure = pathlib.Path(result["figure"])
  assert figure.parent == workdir and figure.suffix == ".png" and figure.stat().st_size > 10_000
  return result


def test_soft_targets(tmp_path, capsys):
  r = run_example("soft_targets", tmp_path)
  h08 = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
  np.testing.assert_allclose(h08, 0.5004024235, rtol=1e-10)
  np.testing.assert_allclose(r["bce_at_target"], 0.5004024235, rtol=1e-9)
  np.testing.assert_allclose(r["entropy"], h08, rtol=1e-12)
  assert abs(r["grad_at_target"]) < 1e-12 and abs(r["kl_grad_at_target"]) < 1e-12
  assert r["kl_at_target"] == 0.0
  assert abs(r["grid_argmin"] - 0.8) <= 0.005
  assert r["shift_error"] < 1e-12
  assert "0.5004024235" in capsys.readouterr().out


def test_bce_vs_categorical(tmp_path):
  r = run_example("bce_vs_categorical", tmp_path)
  np.testing.assert_allclose(r["bce_a"], -(math.log(0.8) + 2 * math.log(0.9)) / 3, rtol=1e-12)
  np.testing.assert_allclose(r["bce_b"], -(math.log(0.8) + math.log(0.8)) / 3, rtol=1e-12)
  assert r["bce_a"] < r["bce_b"]
  np.testing.assert_allclose([r["cce_a"], r["cce_b"]], [-math.log(0.8)] * 2, rtol=1e-12)
  np.testing.assert_allclose(r["bce_single"], r["cce_two_class"], rtol=1e-12)
  assert r["bce_multilabel"] > r["cce_multilabel_formula"] + 0.05
  assert math.isnan(r["cce_multilabel"])  # [0.3, 0.8] is not a distribution (issue 13)
  np.testing.assert_allclose([r["cce_mean"], r["keras_cce_mean"]], [0.4581453659370776] * 2, rtol=1e-12)
  assert round(r["cce_mean"], 3) == 0.458
  np.testing.assert_allclose(r["keras_cce_2_8"], r["keras_cce_02_08"], rtol=1e-12)
  assert math.isnan(r["native_cce_2_8"]) and math.isnan(r["native_bce_8"])
  np.testing.assert_allclose(r["keras_bce_clip_f64"], 16.11809565, rtol=1e-9)
  np.testing.assert_allclose(r["keras_bce_clip_f32"], 15.942385, rtol=1e-6)
  assert r["keras_bce_clip_grad"] == 0.0


def test_loss_landscape(tmp_path):
  r = run_example("loss_landscape", tmp_path)
  assert r["ce_above"] > 2 * r["ce_below"]  # asymmetric around the target 0.8
  np.testing.assert_allclose(r["mse_below"], r["mse_above"], rtol=1e-9)
  assert abs(r["grad_mse_at_minus10"]) < 1e-3 and r["grad_bce_at_minus10"] < -0.99
  assert r["ce_min_eigenvalue"] > 0  # strictly convex in the directions that change the softmax
  assert r["mse_min_eigenvalue"] < -0.1 and r["mse_nonconvex_fraction"] > 0.1


@pytest.mark.parametrize("game", ["minimax (BCE)", "least squares"])
def test_gan_equilibrium(tmp_path_factory, game, _gan_results={}):  # noqa: B006  (one run for both games)
  if not _gan_results:
    # optax's Adam bias correction mixes an int32 step count with floats, which the strict
    # promotion of tests/conftest.py (meant for jaxloss' own code) rejects.
    with jax.numpy_dtype_promotion("standard"):
      _gan_results.update(run_example("gan_equilibrium", tmp_path_factory.mktemp("gan")))
  r = _gan_results[game]
  theory_per_term = math.log(2) if game.startswith("minimax") else 0.125
  np.testing.assert_allclose(r["theory"], 2 * theory_per_term, rtol=1e-12)
  np.testing.assert_allclose(r["measured"], r["theory"], rtol=0.05)
  np.testing.assert_allclose([r["real_term"], r["fake_term"]], [theory_per_term] * 2, rtol=0.1)
  assert abs(r["generator_mean"] - 2.0) < 0.2 and abs(r["generator_std"] - 0.5) < 0.1
