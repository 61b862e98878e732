"""Smoke tests of examples/*.py in their --fast mode: each writes its figure and shows its claim."""

import importlib.util
import itertools
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


GAN_THEORY_PER_TERM = {"minimax (BCE)": math.log(2), "least squares": 0.125, "plain MSE": 0.25}


@pytest.fixture(scope="module")
def gan_results(tmp_path_factory):
  """One run of the GAN example for all its tests."""
  # optax's Adam bias correction mixes an int32 step count with floats, which the strict
  # promotion of tests/conftest.py (meant for jaxloss' own code) rejects.
  with jax.numpy_dtype_promotion("standard"):
    return run_example("gan_equilibrium", tmp_path_factory.mktemp("gan"))


@pytest.mark.parametrize("game", list(GAN_THEORY_PER_TERM))
def test_gan_equilibrium(gan_results, game):
  r = gan_results[game]
  theory_per_term = GAN_THEORY_PER_TERM[game]
  np.testing.assert_allclose(r["theory"], 2 * theory_per_term, rtol=1e-12)
  np.testing.assert_allclose(r["measured"], r["theory"], rtol=0.05)
  np.testing.assert_allclose([r["real_term"], r["fake_term"]], [theory_per_term] * 2, rtol=0.1)
  assert abs(r["generator_mean"] - 2.0) < 0.2 and abs(r["generator_std"] - 0.5) < 0.1


def test_gan_metrics_json(gan_results):
  """metrics.json holds the per-term values of the three games; plain MSE of a balanced sigmoid output against
  1/0 is (1/2)^2 = 0.25 per term, twice least squares' 0.125 (which has the 1/2 factor)."""
  import json

  saved = json.loads((pathlib.Path(gan_results["figure"]).parent / "metrics.json").read_text())
  for key, game in (("bce", "minimax (BCE)"), ("least_squares", "least squares"), ("mse", "plain MSE")):
    per_term = saved[f"{key}_discriminator_per_term"]
    assert isinstance(per_term, float)
    g = saved["games"][game]
    np.testing.assert_allclose(per_term, (g["real_term"] + g["fake_term"]) / 2, rtol=1e-12)
    np.testing.assert_allclose(per_term, GAN_THEORY_PER_TERM[game], rtol=0.05)
  np.testing.assert_allclose(saved["mse_theory_per_term"], (0.5 - 1.0) ** 2, rtol=1e-12)
  assert saved["mse_discriminator_per_term"] > 1.8 * saved["least_squares_discriminator_per_term"]


def test_gan_plain_mse_loss_against_numpy():
  spec = importlib.util.spec_from_file_location("example_gan_equilibrium", EXAMPLES / "gan_equilibrium.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=7) * 3, rng.normal(size=5) * 3
  def sig(z):
    return 1 / (1 + np.exp(-z))

  expected = np.mean((sig(real) - 1) ** 2) + np.mean(sig(fake) ** 2)
  np.testing.assert_allclose(float(module.plain_mse_discriminator_loss(real, fake)), expected, rtol=1e-12)
  terms = np.asarray(module.plain_mse_discriminator_loss(real, fake, reduction="none"))
  np.testing.assert_allclose(terms, np.concatenate([(sig(real) - 1) ** 2, sig(fake) ** 2]), rtol=1e-12)
  np.testing.assert_allclose(float(module.plain_mse_generator_loss(fake)), np.mean((sig(fake) - 1) ** 2), rtol=1e-12)
  # the balanced discriminator (logit 0, D = 1/2) scores 0.25 per term
  np.testing.assert_allclose(float(module.plain_mse_discriminator_loss(np.zeros(3), np.zeros(3))), 0.5, rtol=1e-12)


def test_sigmoid_blob(tmp_path):
  """The all-sigmoid X-100-50-100-X autoencoder, --fast (300 steps): the metrics.json contract and the measured
  mechanism that does not need a long run (vanishing first-layer gradient at init, Adam's larger first-layer steps)."""
  import json

  with jax.numpy_dtype_promotion("standard"):
    r = run_example("sigmoid_blob", tmp_path)
  saved = json.loads((pathlib.Path(r["figure"]).parent / "metrics.json").read_text())
  for key in ("ce_sgd", "mse_sgd", "ce_adam", "mse_adam", "ce_double_sigmoid_sgd", "ce_double_sigmoid_adam"):
    m = saved[key]
    assert isinstance(m["psnr"], float) and isinstance(m["first_layer_weight_norm"], float), key
    assert 5 < m["psnr"] < 30 and len(m["grad_norm_init"]) == len(m["saturated_fraction"]) == 4
  # Glorot-uniform 64x100: E||W||_F^2 = n_in n_out limit^2 / 3 = 2 n_in n_out / (n_in + n_out)
  np.testing.assert_allclose(saved["ce_sgd"]["first_layer_weight_norm_init"], math.sqrt(2 * 64 * 100 / 164), rtol=0.03)
  # The baseline against NumPy: the mean training image for every test image.
  from sklearn.datasets import load_digits

  x = load_digits().data / 16.0
  perm = np.random.default_rng(0).permutation(len(x))
  test, train = x[perm[:359]], x[perm[359:]]
  np.testing.assert_allclose(saved["mean_image"]["psnr"], -10 * np.log10(np.mean((test - train.mean(0)) ** 2)),
                             rtol=1e-6)
  for loss in ("ce", "mse", "ce_double_sigmoid"):
    g = saved[f"{loss}_sgd"]["grad_norm_init"]
    assert g == saved[f"{loss}_adam"]["grad_norm_init"]  # same initial parameters and first batch
    # each sigmoid layer shrinks the backpropagated gradient: the first layer's is ~1 % of the last one's
    assert all(a < b for a, b in itertools.pairwise(g)) and g[-1] > 30 * g[0]
  # At p ~ 1/2, dCE/dz = p - x while dMSE/dz = 2 (p - x) p (1 - p) ~ (p - x) / 2: CE's gradient is about twice MSE's.
  ratio = saved["ce_sgd"]["grad_norm_init"][-1] / saved["mse_sgd"]["grad_norm_init"][-1]
  assert 1.6 < ratio < 2.6, ratio
  # Plain gradient descent moves W1 by lr * |grad| (tiny); Adam by ~lr per weight, whatever the gradient's size.
  for loss in ("ce", "mse"):
    sgd, adam = saved[f"{loss}_sgd"], saved[f"{loss}_adam"]
    assert adam["first_layer_update_norm_first_block"] > 3 * sgd["first_layer_update_norm_first_block"]
    assert adam["first_layer_weight_norm"] > 1.2 * sgd["first_layer_weight_norm"]
