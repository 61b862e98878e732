"""Fast tests of examples/autoencoder (tiny configs, a few steps; the full comparison is not run here)."""

import importlib
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE_DIR = os.path.join(ROOT, "examples", "autoencoder")
# The example's modules have generic names (train, configs, ...): import them in
# isolation and restore sys.modules afterwards so other examples' modules of the
# same name cannot collide with them.
_MODULES = ("configs", "input_pipeline", "models", "keras_question", "train", "main")


class _Example:
  pass


@pytest.fixture
def standard_promotion():
  """Training runs optax, whose Adam bias correction mixes a Python float with an int32
  count, which the suite-wide strict dtype-promotion fixture rejects; that rule is for
  jaxloss's own code, so training tests use JAX's default ("standard") promotion."""
  import jax

  with jax.numpy_dtype_promotion("standard"):
    yield


@pytest.fixture(scope="module")
def ae():
  saved = {name: sys.modules.pop(name) for name in _MODULES if name in sys.modules}
  sys.path.insert(0, EXAMPLE_DIR)
  try:
    ns = _Example()
    for name in _MODULES:
      setattr(ns, name, importlib.import_module(name))
    yield ns
  finally:
    sys.path.remove(EXAMPLE_DIR)
    for name in _MODULES:
      sys.modules.pop(name, None)
    sys.modules.update(saved)


def _write_npz(path, *, n_train=40, n_test=20, seed=0, **override):
  rng = np.random.default_rng(seed)
  arrays = {
      "x_train": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
      "y_train": rng.integers(0, 10, size=(n_train,), dtype=np.uint8),
      "x_test": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
      "y_test": rng.integers(0, 10, size=(n_test,), dtype=np.uint8),
  }
  arrays["x_train"][0, 0, 0] = 255  # the full range is present
  arrays.update(override)
  arrays = {k: v for k, v in arrays.items() if v is not None}
  np.savez(path, **arrays)
  return arrays


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------
def test_digits_scaled_by_16(ae):
  from sklearn.datasets import load_digits

  ds = ae.input_pipeline.load_digits(test_fraction=0.2, seed=0)
  raw = load_digits().data
  assert ds.train.dtype == np.float32 and ds.train.shape[1] == 64 and ds.image_shape == (8, 8)
  both = np.concatenate([ds.train, ds.test])
  assert both.shape == raw.shape
  # Same multiset of rows as raw / 16 (the split is a permutation).
  expected = np.sort((raw / 16.0).astype(np.float32), axis=0)
  np.testing.assert_array_equal(np.sort(both, axis=0), expected)
  assert both.min() == 0.0 and both.max() == 1.0


def test_mnist_npz_loaded_and_scaled_by_255(ae, tmp_path):
  path = tmp_path / "mnist.npz"
  arrays = _write_npz(path)
  ds = ae.input_pipeline.load_mnist_npz(path)
  assert ds.train.shape == (40, 784) and ds.test.shape == (20, 784) and ds.image_shape == (28, 28)
  np.testing.assert_array_equal(ds.train, arrays["x_train"].reshape(40, 784).astype(np.float32) / np.float32(255))
  np.testing.assert_array_equal(ds.test, arrays["x_test"].reshape(20, 784).astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("case, exc, match", [
    ("missing", FileNotFoundError, "does not exist"),
    ("text", "DataError", "not a readable .npz"),
    ("npy", "DataError", "single array"),
    ("no_key", "DataError", r"missing key\(s\) \['x_test'\]"),
    ("shape", "DataError", r"x_train .* must have shape \(n, 28, 28\)"),
    ("scaled", "DataError", "must be uint8"),
    ("labels", "DataError", "y_train .* must have shape"),
])
def test_mnist_npz_errors(ae, tmp_path, case, exc, match):
  path = tmp_path / "mnist.npz"
  if case == "text":
    path.write_text("this is not numpy data\n")
  elif case == "npy":
    with open(path, "wb") as f:
      np.save(f, np.zeros((3, 28, 28), np.uint8))
  elif case == "no_key":
    _write_npz(path, x_test=None)
  elif case == "shape":
    _write_npz(path, x_train=np.zeros((40, 784), np.uint8))
  elif case == "scaled":  # already divided by 255
    _write_npz(path, x_train=np.random.default_rng(0).random((40, 28, 28)).astype(np.float32))
  elif case == "labels":
    _write_npz(path, y_train=np.zeros((39,), np.uint8))
  exc = getattr(ae.input_pipeline, exc) if isinstance(exc, str) else exc
  with pytest.raises(exc, match=match):
    ae.input_pipeline.load_mnist_npz(path)


def test_scaling_check_rejects_already_scaled_or_out_of_range(ae):
  scale = ae.input_pipeline._scale
  with pytest.raises(ae.input_pipeline.DataError, match="already scaled"):
    scale(np.array([[0.0, 1.0]]), 16.0, "x")
  with pytest.raises(ae.input_pipeline.DataError, match="fractional"):
    scale(np.array([[0.0, 0.5, 16.0]]), 16.0, "x")
  with pytest.raises(ae.input_pipeline.DataError, match=r"in \[0, 16\]"):
    scale(np.array([[0.0, 17.0]]), 16.0, "x")


def test_batch_order_is_a_function_of_seed_and_step(ae):
  bi = ae.input_pipeline.batch_indices
  epoch = np.concatenate([bi(100, 32, 7, s) for s in range(3)])
  assert len(np.unique(epoch)) == 96  # 3 disjoint batches per epoch, remainder dropped
  np.testing.assert_array_equal(bi(100, 32, 7, 4), bi(100, 32, 7, 4))
  assert not np.array_equal(bi(100, 32, 7, 0), bi(100, 32, 7, 3))  # next epoch reshuffled


# ----------------------------------------------------------------------------
# model pieces
# ----------------------------------------------------------------------------
def test_architecture_widths(ae):
  from flax import nnx

  m = nnx.eval_shape(lambda: ae.models.Autoencoder(784, (128, 64, 28), rngs=nnx.Rngs(0)))
  widths = [(l.in_features, l.out_features) for l in list(m.encoder) + list(m.decoder)]
  assert widths == [(784, 128), (128, 64), (64, 28), (28, 64), (64, 128), (128, 784)]


def test_continuous_bernoulli_mean_matches_quadrature(ae):
  from scipy.integrate import quad

  z = np.array([-300.0, -40.0, -5.0, -0.6, -0.4, -1e-3, 0.0, 1e-3, 0.4, 0.6, 5.0, 40.0, 300.0])
  got = np.asarray(ae.models.continuous_bernoulli_mean(z.astype(np.float32)))
  for zi, gi in zip(z, got):
    # density on [0, 1] proportional to lambda^x (1 - lambda)^(1 - x), i.e. to exp(z x)
    c = max(zi, 0.0)
    num = quad(lambda x: x * math.exp(zi * x - c), 0, 1, epsabs=0, epsrel=1e-12, limit=200)[0]
    den = quad(lambda x: math.exp(zi * x - c), 0, 1, epsabs=0, epsrel=1e-12, limit=200)[0]
    np.testing.assert_allclose(gi, num / den, rtol=2e-6)


def test_binary_kl_variant_is_bce_minus_entropy(ae):
  """Two jaxloss losses tied by an identity: KL(x || sigmoid z) = BCE(sigmoid z, x) - H(x)."""
  import jaxloss

  rng = np.random.default_rng(0)
  z = rng.normal(size=(8, 64)).astype(np.float32) * 3
  x = rng.random((8, 64)).astype(np.float32)
  x[:, :10] = 0.0
  x[:, 10:20] = 1.0
  v = ae.train.VARIANTS
  kl = float(v["sigmoid_binary_kl"].loss(z, x))
  bce = float(v["sigmoid_bce"].loss(z, x))
  h = float(jaxloss.binary_entropy(x))
  np.testing.assert_allclose(kl, bce - h, rtol=1e-5)
  # and the BCE is the textbook formula, computed independently in float64
  p = 1 / (1 + np.exp(-z.astype(np.float64)))
  ref = np.mean(-(x * np.log(p) + (1 - x) * np.log1p(-p)))
  np.testing.assert_allclose(bce, ref, rtol=1e-5)


def test_image_metrics_against_numpy(ae):
  import jax.numpy as jnp

  rng = np.random.default_rng(1)
  x = rng.random((16, 64)).astype(np.float32)
  x[:, :8] = 0.0
  recon = np.clip(rng.random((16, 64)) * 1.2 - 0.1, 0.0, 1.0).astype(np.float32)
  recon[:, :8] = np.clip(recon[:, :8], 1e-3, 1.0)  # finite BCE
  m = ae.train.finalize_metrics(ae.train.image_metrics(jnp.asarray(recon), jnp.asarray(x)))
  r64, x64 = recon.astype(np.float64), x.astype(np.float64)
  mse = np.mean((r64 - x64) ** 2)
  with np.errstate(divide="ignore", invalid="ignore"):
    bce = np.mean(-(np.where(x64 > 0, x64 * np.log(r64), 0) + np.where(x64 < 1, (1 - x64) * np.log1p(-r64), 0)))
    h = np.mean(-(np.where(x64 > 0, x64 * np.log(x64), 0) + np.where(x64 < 1, (1 - x64) * np.log1p(-x64), 0)))
  np.testing.assert_allclose(m["mse"], mse, rtol=1e-5)
  np.testing.assert_allclose(m["psnr"], -10 * np.log10(mse), rtol=1e-5)
  np.testing.assert_allclose(m["bce"], bce, rtol=1e-5)
  np.testing.assert_allclose(m["bce_floor"], h, rtol=1e-5)
  np.testing.assert_allclose(m["bce_minus_floor"], bce - h, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------
# end to end: the CLI on the tiny config, all variants
# ----------------------------------------------------------------------------
def test_main_tiny_comparison_writes_reports(ae, tmp_path, standard_promotion):
  workdir = tmp_path / "run"
  rc = ae.main.main(["--config", "tiny", "--workdir", str(workdir), "--no-progress"])
  assert rc == 0
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert list(metrics) == list(ae.configs.VARIANT_NAMES) + ["mean_image"]
  for name, m in metrics.items():
    for key in ("psnr", "mse", "bce", "bce_minus_floor", "seconds"):
      assert key in m, (name, key)
    assert m["mse"] is not None and 0 < m["mse"] < 1 and m["seconds"] >= 0
    assert math.isclose(m["psnr"], -10 * math.log10(m["mse"]), rel_tol=1e-9)
  # The baseline, computed independently: the mean training image against the test images.
  cfg = ae.configs.get_config("tiny")
  ds = ae.input_pipeline.load(cfg)
  train64, test64 = ds.train.astype(np.float64), ds.test.astype(np.float64)
  np.testing.assert_allclose(metrics["mean_image"]["mse"], np.mean((test64 - train64.mean(0)) ** 2), rtol=1e-5)
  for f in ("metrics.md", "reconstructions.png", "loss_curves.png", "config.json", "history.json"):
    assert (workdir / f).stat().st_size > 0, f
  assert "| `softmax_bce` |" in (workdir / "metrics.md").read_text()
  hist = json.loads((workdir / "history.json").read_text())
  assert hist["sigmoid_bce"]["step"] == [3, 6]
  # The Keras question: jaxloss' own BCE on the raw 0..16 targets is NaN exactly at the pixels above 1
  # (counted here from the data), and checkify's message names the valid range and the values seen.
  raw_test = np.round(ds.test.astype(np.float64) * 16)
  for name in ("softmax_bce_unscaled", "sigmoid_bce_unscaled"):
    m = metrics[name]
    assert m["jaxloss_bce"] is None  # NaN, written as null
    np.testing.assert_allclose(m["jaxloss_bce_nan_fraction"], np.mean(raw_test > 1), rtol=1e-6)
    assert "labels must lie in [0, 1]" in m["jaxloss_error"] and "16" in m["jaxloss_error"], m["jaxloss_error"]
  # Keras' value on raw targets goes negative: 6 Adam steps of the sigmoid output already get there.
  assert metrics["sigmoid_bce_unscaled"]["train_loss"] < 0 < metrics["sigmoid_bce_scaled"]["train_loss"]
  for name in ("softmax_bce_scaled", "sigmoid_bce_scaled"):
    assert "jaxloss_error" not in metrics[name]
  md = (workdir / "metrics.md").read_text()
  assert "| `softmax_bce_unscaled` | softmax | Keras BCE, raw pixels |" in md and "Fix: divide the pixels by 16" in md
  # Re-running the same command resumes every variant at its final checkpoint: same metrics.
  rc = ae.main.main(["--config", "tiny", "--workdir", str(workdir), "--no-progress"])
  again = json.loads((workdir / "metrics.json").read_text())
  assert rc == 0 and all(again[k]["mse"] == metrics[k]["mse"] for k in metrics)
  # A different configuration in the same workdir is refused, not silently mixed.
  with pytest.raises(SystemExit, match="different learning_rate"):
    ae.main.main(["--config", "tiny", "--workdir", str(workdir), "--no-progress", "--learning-rate", "0.1"])


def test_steps_per_second_report(ae, tmp_path, standard_promotion):
  # 3 steps per call: the chunk shape of test_main's tiny run (compile cache reused).
  rc = ae.main.main(["--config", "tiny", "--steps-per-second", "--timed-steps", "4", "--steps-per-call", "3",
                     "--workdir", str(tmp_path)])
  assert rc == 0
  (report,) = json.loads((tmp_path / "timing.json").read_text())
  assert report["variant"] == "sigmoid_bce" and report["timed_steps"] == 6 and report["steps_per_call"] == 3
  assert report["steps_per_second"] > 0 and report["device_kind"] and report["num_devices"] >= 1
  assert math.isfinite(report["final_train_loss"])


def test_cli_data_options(ae, tmp_path):
  args = ae.main.parse_args(["--data-path", str(tmp_path / "m.npz")])
  cfg = ae.main.build_config(args)
  assert cfg.dataset == "mnist" and cfg.data_path == str(tmp_path / "m.npz") and cfg.hidden == (128, 64, 28)
  cfg = ae.main.build_config(ae.main.parse_args(["--synthetic-mnist", "--steps", "7", "--variants", "sigmoid_bce"]))
  assert cfg.dataset == "synthetic_mnist" and cfg.num_steps == 7 and cfg.variants == ("sigmoid_bce",)
  with pytest.raises(SystemExit):
    ae.main.build_config(ae.main.parse_args(["--variants", "softmax_mse"]))
  ds = ae.input_pipeline.synthetic_mnist(num_train=8, num_test=4)
  assert ds.train.shape == (8, 784) and ds.test.shape == (4, 784)
  assert ds.train.min() == 0.0 and ds.train.max() == 1.0


def test_main_clear_error_for_missing_file(ae, tmp_path, capsys):
  rc = ae.main.main(["--data-path", str(tmp_path / "nope.npz"), "--workdir", str(tmp_path / "w"), "--no-progress"])
  assert rc == 2
  assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# checkpoint / resume
# ----------------------------------------------------------------------------
def test_resume_gives_the_same_final_parameters(ae, tmp_path, standard_promotion):
  import jax
  from flax import nnx

  # tiny's shapes and 3-step chunks, so the test_main compile cache is reused.
  cfg = ae.configs.get_config("tiny").replace(num_steps=6, eval_every=3, checkpoint_every=3)
  ds = ae.input_pipeline.load(cfg)
  full = ae.train.train_and_evaluate(cfg, "sigmoid_bce", ds, workdir=str(tmp_path / "a"), progress=False)
  # "Kill" after the step-3 checkpoint: a new workdir holding only that checkpoint.
  src = tmp_path / "a" / "checkpoints" / "sigmoid_bce"
  dst = tmp_path / "b" / "checkpoints" / "sigmoid_bce"
  assert sorted(p.name for p in src.iterdir() if p.name.isdigit()) == ["3", "6"]
  dst.mkdir(parents=True)
  shutil.copytree(src / "3", dst / "3")
  resumed = ae.train.train_and_evaluate(cfg, "sigmoid_bce", ds, workdir=str(tmp_path / "b"), progress=False)
  a = jax.tree.leaves(nnx.state(full.model, nnx.Param))
  b = jax.tree.leaves(nnx.state(resumed.model, nnx.Param))
  assert len(a) == len(b) == 12
  for x, y in zip(a, b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert resumed.history["step"] == full.history["step"] == [3, 6]
  assert resumed.history["train_loss"] == full.history["train_loss"]
  # and training did change the parameters (the comparison above is not vacuous)
  fresh = ae.train.create_train_state(cfg, ds.num_features, ae.train.make_mesh())[0]
  c = jax.tree.leaves(nnx.state(fresh, nnx.Param))
  assert any(not np.array_equal(np.asarray(x), np.asarray(z)) for x, z in zip(a, c))


# ----------------------------------------------------------------------------
# data parallel: 8 simulated CPU devices vs 1
# ----------------------------------------------------------------------------
_DP_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import jax, numpy as np
    from flax import nnx
    import configs, input_pipeline, train
    assert len(jax.devices()) == 8, jax.devices()
    cfg = configs.get_config("tiny").replace(num_steps=10, eval_every=1, batch_size=32)
    ds = input_pipeline.load(cfg)
    out = {}
    for name, devs in (("one", jax.devices()[:1]), ("eight", jax.devices())):
      r = train.train_and_evaluate(cfg, "sigmoid_bce", ds, mesh=train.make_mesh(devs), progress=False)
      leaves = jax.tree.leaves(nnx.state(r.model, nnx.Param))
      out[name] = {"loss": r.history["train_loss"],
                   "params": np.concatenate([np.asarray(l).ravel() for l in leaves]).tolist(),
                   "devices_per_param": sorted({len(l.sharding.device_set) for l in leaves}),
                   "replicated": all(l.sharding.is_fully_replicated for l in leaves)}
    print("RESULT" + json.dumps(out))
""")


def test_data_parallel_8_devices_matches_1_device(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
  env.pop("JAX_ENABLE_X64", None)
  proc = subprocess.run([sys.executable, "-c", _DP_SCRIPT, EXAMPLE_DIR], env=env, cwd=str(tmp_path),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
  out = json.loads(line[len("RESULT"):])
  one, eight = out["one"], out["eight"]
  assert one["devices_per_param"] == [1] and eight["devices_per_param"] == [8] and eight["replicated"]
  assert len(one["loss"]) == 10
  # Only the summation order differs (per-device partial sums of the batch mean
  # and the gradient all-reduce): float32 rounding of a 2048-term sum, ~1e-7
  # relative per step, which Adam's normalized update does not amplify over 10
  # steps (measured: ~1e-6 after 50 steps). A wrong split (e.g. each device
  # training on its own shard only) changes the loss at the 1e-2 level.
  np.testing.assert_allclose(eight["loss"], one["loss"], rtol=1e-5)
  np.testing.assert_allclose(eight["params"], one["params"], rtol=0, atol=1e-5)
  assert one["loss"][-1] < one["loss"][0]


def test_checkpoint_saves_a_snapshot_of_the_history(ae, standard_promotion):
  """Orbax saves asynchronously, so the history it is handed must not be the live
  dict that training goes on appending to (CI once resumed with steps [3, 6, 6])."""
  cfg = ae.configs.get_config("tiny")
  ds = ae.input_pipeline.load(cfg)
  model, optimizer = ae.train.create_train_state(cfg, ds.num_features, ae.train.make_mesh())[:2]

  class _RecordingManager:
    def save(self, step, args):
      self.step, self.args = step, args

  manager = _RecordingManager()
  history = {"step": [3], "train_loss": [0.5]}
  ae.train._save(manager, 3, model, optimizer, history)
  history["step"].append(6)
  history["train_loss"].append(0.25)
  saved = manager.args["history"].item
  assert manager.step == 3
  assert saved == {"step": [3], "train_loss": [0.5]}


# ----------------------------------------------------------------------------
# the Keras MNIST question: raw pixels, Keras' BCE, jaxloss' NaN and message
# ----------------------------------------------------------------------------
def test_raw_pixels_are_the_original_integers(ae, tmp_path):
  """The unscaled variants see exactly the raw pixels: sklearn's 0..16 and the npz's uint8 0..255."""
  import jax.numpy as jnp
  from sklearn.datasets import load_digits

  v = ae.train.VARIANTS["softmax_bce_unscaled"]
  ds = ae.input_pipeline.load_digits(test_fraction=0.2, seed=0)
  both = np.concatenate([ds.train, ds.test])
  raw = np.asarray(ae.train.model_inputs(v, jnp.asarray(both), ds.pixel_max))
  np.testing.assert_array_equal(np.sort(raw, axis=0), np.sort(load_digits().data, axis=0))
  path = tmp_path / "mnist.npz"
  arrays = _write_npz(path)
  mnist = ae.input_pipeline.load_mnist_npz(path)
  raw = np.asarray(ae.train.model_inputs(v, jnp.asarray(mnist.train), mnist.pixel_max))
  np.testing.assert_array_equal(raw, arrays["x_train"].reshape(40, 784).astype(np.float32))
  # scaled variants are fed the [0, 1] images unchanged
  scaled = ae.train.VARIANTS["softmax_bce_scaled"]
  np.testing.assert_array_equal(np.asarray(ae.train.model_inputs(scaled, jnp.asarray(ds.test), 16.0)), ds.test)


def test_keras_variant_losses_against_numpy(ae):
  """The Keras variants' loss is Keras' clipped BCE of the activated output, written out in float64 here."""
  rng = np.random.default_rng(3)
  z = (rng.normal(size=(4, 64)) * 4).astype(np.float32)
  x = rng.integers(0, 17, size=(4, 64)).astype(np.float32)  # raw pixels: targets above 1
  eps = 1e-7

  def keras_bce(p):
    p = np.clip(p, eps, 1 - eps)
    return np.mean(-(x * np.log(p) + (1 - x) * np.log(1 - p)))

  z64 = z.astype(np.float64)
  softmax = np.exp(z64 - z64.max(-1, keepdims=True))
  softmax /= softmax.sum(-1, keepdims=True)
  sigmoid = 1 / (1 + np.exp(-z64))
  v = ae.train.VARIANTS
  np.testing.assert_allclose(float(v["softmax_bce_unscaled"].loss(z, x)), keras_bce(softmax), rtol=1e-4)
  np.testing.assert_allclose(float(v["sigmoid_bce_unscaled"].loss(z, x)), keras_bce(sigmoid), rtol=1e-4)


def test_keras_bce_on_a_raw_pixel_goes_negative_without_bound(ae):
  """Target 16: -16 log p + 15 log(1 - p) falls without bound as p -> 1; Keras stops at its clip."""
  out = ae.keras_question.keras_bce_at_raw_target(16.0)
  keras = [out[k]["keras"] for k in ("0.5", "0.9", "0.99", "0.9999", "1")]
  assert all(a > b for a, b in itertools.pairwise(keras)) and keras[1] < 0
  for k in ("0.5", "0.9", "0.99", "0.9999"):
    p = float(k)
    np.testing.assert_allclose(out[k]["formula"], -16 * math.log(p) + 15 * math.log1p(-p), rtol=1e-12)
    np.testing.assert_allclose(out[k]["keras"], out[k]["formula"], rtol=1e-3)
  assert out["1"]["formula"] == -math.inf
  # float32 clip: 1 - 1e-7 rounds to 1 - 2**-23
  np.testing.assert_allclose(out["1"]["keras"], -16 * math.log1p(-2.0**-23) + 15 * math.log(2.0**-23), rtol=1e-5)


def test_jaxloss_bce_on_raw_targets_is_nan_and_names_the_range(ae):
  rng = np.random.default_rng(4)
  z = rng.normal(size=(6, 64)).astype(np.float32)
  raw = rng.integers(0, 17, size=(6, 64)).astype(np.float32)
  for activation in ("softmax", "sigmoid"):
    r = ae.keras_question.jaxloss_bce_on_raw_targets(activation, z, raw)
    assert math.isnan(r["value"])
    np.testing.assert_allclose(r["nan_fraction"], np.mean(raw > 1), rtol=1e-6)
    assert r["error"] is not None and "labels must lie in [0, 1]" in r["error"] and "16" in r["error"], r["error"]
    # control: the same call on the scaled targets is finite and raises nothing
    ok = ae.keras_question.jaxloss_bce_on_raw_targets(activation, z, raw / 16)
    assert math.isfinite(ok["value"]) and ok["nan_fraction"] == 0 and ok["error"] is None
  assert "divide the pixels by 255" in ae.keras_question.fix_hint(255)


def test_keras_mnist_config(ae, tmp_path):
  cfg = ae.main.build_config(ae.main.parse_args(["--config", "keras_mnist", "--data-path", str(tmp_path / "m.npz")]))
  assert cfg.dataset == "mnist" and cfg.hidden == (128, 64, 28) and cfg.batch_size == 100
  assert cfg.num_steps == 5 * 60000 // 100 and cfg.learning_rate == 1e-3
  assert cfg.variants == ae.configs.KERAS_VARIANT_NAMES
  with pytest.raises(SystemExit, match="keras_mnist needs --data-path"):
    ae.main.build_config(ae.main.parse_args(["--config", "keras_mnist"]))


def test_unscaled_variant_on_a_tiny_mnist_npz(ae, tmp_path, standard_promotion):
  """--data-path with raw 0..255 targets: trains, and jaxloss' message names 255."""
  path = tmp_path / "mnist.npz"
  arrays = _write_npz(path)
  workdir = tmp_path / "run"
  rc = ae.main.main(["--config", "keras_mnist", "--data-path", str(path), "--workdir", str(workdir), "--no-progress",
                     "--variants", "softmax_bce_unscaled", "--steps", "2", "--eval-every", "2", "--batch-size", "20",
                     "--steps-per-call", "2"])
  assert rc == 0
  m = json.loads((workdir / "metrics.json").read_text())["softmax_bce_unscaled"]
  assert m["pixel_max"] == 255 and m["jaxloss_bce"] is None and "255" in m["jaxloss_error"]
  np.testing.assert_allclose(m["jaxloss_bce_nan_fraction"], np.mean(arrays["x_test"] > 1), rtol=1e-6)
  assert m["train_loss"] is not None and 0 < m["mse"] < 1
