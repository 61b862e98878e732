"""Training and evaluation of one autoencoder variant: optax Adam, nnx.jit, orbax, data parallel.

* :func:`train_step` is ``nnx.value_and_grad`` of the variant's jaxloss loss,
  ``nnx.Optimizer.update`` and an on-device running mean of the loss
  (``nnx.metrics.Average``); :func:`make_train_steps` runs
  ``config.steps_per_call`` of them per ``nnx.jit`` call (``lax.scan`` over a
  block of batches). Nothing is fetched to the host per step; the running mean
  and the test metrics are read at evaluation intervals only.
* Data parallel over all local devices with :mod:`jax.sharding`: each batch
  is sharded along a ``"data"`` mesh axis, parameters and optimizer state are
  replicated, and XLA inserts the gradient all-reduce.
* Orbax checkpoints hold parameters, optimizer state and the metric history;
  batches are a pure function of ``(seed, step)``, so a resumed run ends with
  exactly the parameters of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import configs as configs_lib
import input_pipeline
import jax
import jax.numpy as jnp
import models
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss.compat import keras as keras_compat


# ----------------------------------------------------------------------------
# Variants: output activation + jaxloss training loss. All loss math is jaxloss.
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Variant:
  """An output activation and the loss it is trained with.

  Attributes:
    name: the public variant name (a key of ``metrics.json``).
    activation: ``"sigmoid"``, ``"softmax"`` or ``"linear"``.
    loss: ``loss(logits, images) -> scalar``, a jaxloss loss.
    description: one line for the report.
    reconstruction: ``"output"`` (the activated output) or ``"cb_mean"`` (the
      mean of the continuous Bernoulli whose parameter is the sigmoid output).
    raw_pixels: train on the raw integer pixels (0..16 or 0..255) as inputs
      *and* targets, as a user who never divided by the maximum does. The
      reconstruction (the activated output, in [0, 1]) is still scored against
      the scaled image.
    loss_label: the loss column of the report.
  """

  name: str
  activation: str
  loss: Callable[[jax.Array, jax.Array], jax.Array]
  description: str
  reconstruction: str = "output"
  raw_pixels: bool = False
  loss_label: str = ""


def activate(activation: str, logits: jax.Array) -> jax.Array:
  if activation == "sigmoid":
    return jax.nn.sigmoid(logits)
  if activation == "softmax":
    return jax.nn.softmax(logits, axis=-1)
  if activation == "linear":
    return logits
  raise ValueError(f"unknown activation {activation!r}")


def _sigmoid_bce(z, x):
  return jaxloss.sigmoid_binary_cross_entropy(z, x)


def _sigmoid_mse(z, x):
  return jaxloss.squared_error(jax.nn.sigmoid(z), x)


def _sigmoid_mae(z, x):
  return jaxloss.absolute_error(jax.nn.sigmoid(z), x)


def _linear_mse(z, x):
  return jaxloss.squared_error(z, x)


def _softmax_bce(z, x):
  return jaxloss.binary_cross_entropy(jax.nn.softmax(z, axis=-1), x)


def _sigmoid_cb(z, x):
  return jaxloss.continuous_bernoulli_nll(z, x)


def _sigmoid_binary_kl(z, x):
  return jaxloss.binary_kl_divergence(jax.nn.sigmoid(z), x)


# The Keras question: keras.losses.binary_crossentropy(y_true, y_pred) on the activated output (probabilities,
# clipped to [1e-7, 1 - 1e-7], no check of the targets), reproduced by jaxloss.compat.keras.
def _keras_softmax_bce(z, x):
  return keras_compat.binary_crossentropy(x, jax.nn.softmax(z, axis=-1), reduction="mean")


def _keras_sigmoid_bce(z, x):
  return keras_compat.binary_crossentropy(x, jax.nn.sigmoid(z), reduction="mean")


VARIANTS: dict[str, Variant] = {
    v.name: v for v in (
        Variant("sigmoid_bce", "sigmoid", _sigmoid_bce,
                "sigmoid output, binary cross-entropy (jaxloss.sigmoid_binary_cross_entropy on logits)"),
        Variant("sigmoid_mse", "sigmoid", _sigmoid_mse, "sigmoid output, squared error"),
        Variant("sigmoid_mae", "sigmoid", _sigmoid_mae, "sigmoid output, absolute error"),
        Variant("linear_mse", "linear", _linear_mse, "no output activation, squared error"),
        Variant("softmax_bce", "softmax", _softmax_bce,
                "softmax over pixels, binary cross-entropy (the classic mistake)"),
        Variant("sigmoid_continuous_bernoulli", "sigmoid", _sigmoid_cb,
                "sigmoid output, continuous Bernoulli NLL (reconstruction: the CB mean)", "cb_mean"),
        Variant("sigmoid_binary_kl", "sigmoid", _sigmoid_binary_kl,
                "sigmoid output, binary KL = BCE minus the pixels' entropy (reaches 0)"),
        Variant("softmax_bce_unscaled", "softmax", _keras_softmax_bce,
                "the Keras question: raw pixels in and as targets, softmax, keras binary_crossentropy",
                raw_pixels=True, loss_label="Keras BCE, raw pixels"),
        Variant("softmax_bce_scaled", "softmax", _keras_softmax_bce,
                "fix 1 only: pixels divided by their maximum; still softmax, keras binary_crossentropy",
                loss_label="Keras BCE, scaled"),
        Variant("sigmoid_bce_unscaled", "sigmoid", _keras_sigmoid_bce,
                "fix 2 only: sigmoid output; still raw pixels, keras binary_crossentropy",
                raw_pixels=True, loss_label="Keras BCE, raw pixels"),
        Variant("sigmoid_bce_scaled", "sigmoid", _keras_sigmoid_bce,
                "both fixes: scaled pixels and a sigmoid output, keras binary_crossentropy",
                loss_label="Keras BCE, scaled"),
    )
}
assert tuple(VARIANTS) == configs_lib.VARIANT_NAMES


def model_inputs(variant: Variant, images: jax.Array, pixel_max: float) -> jax.Array:
  """What the variant feeds the network and trains against: the scaled images, or for
  ``raw_pixels`` the raw integer pixels ``round(images * pixel_max)`` (exact: 0..16 or 0..255)."""
  return jnp.round(images * pixel_max) if variant.raw_pixels else images


def pixel_max_for(variant: Variant, dataset: input_pipeline.Dataset) -> float:
  return float(dataset.pixel_max) if variant.raw_pixels else 1.0


def reconstruct(variant: Variant, logits: jax.Array) -> jax.Array:
  """The image a variant predicts from its output logits."""
  if variant.reconstruction == "cb_mean":
    return models.continuous_bernoulli_mean(logits)
  return activate(variant.activation, logits)


# ----------------------------------------------------------------------------
# Evaluation metrics (test set)
# ----------------------------------------------------------------------------
def psnr_from_mse(mse: float) -> float:
  """Peak signal-to-noise ratio in dB for images in [0, 1]: ``10 log10(1 / mse)``."""
  return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def image_metrics(recon: jax.Array, images: jax.Array, *, logits: jax.Array | None = None) -> dict[str, jax.Array]:
  """Test metrics of reconstructions ``recon`` of ``images`` (both ``(n, d)`` in [0, 1]).

  ``mse`` is the mean squared error over all test pixels of the reconstruction
  clipped to [0, 1] (what an image viewer shows; it only matters for the
  linear output). ``bce`` is the mean binary cross-entropy of the clipped
  reconstruction read as pixel probabilities; when ``logits`` is given (a
  sigmoid reconstruction) it is computed from the logits, which is the same
  number without saturation to exactly 0 or 1. ``bce_floor`` is the mean
  binary entropy of the test pixels: the BCE of a perfect reconstruction, so
  ``bce_minus_floor`` (= the mean binary KL) is 0 exactly when the
  reconstruction is perfect, while ``bce`` never gets below the floor.
  """
  clipped = jnp.clip(recon, 0.0, 1.0)
  mse = jaxloss.squared_error(clipped, images)
  if logits is not None:
    bce = jaxloss.sigmoid_binary_cross_entropy(logits, images)
  else:
    bce = jaxloss.binary_cross_entropy(clipped, images)
  floor = jaxloss.binary_entropy(images)
  return {"mse": mse, "bce": bce, "bce_floor": floor, "bce_minus_floor": bce - floor}


def finalize_metrics(raw: dict[str, Any]) -> dict[str, float]:
  out = {k: float(v) for k, v in raw.items()}
  out["psnr"] = psnr_from_mse(out["mse"])
  if "mse_sigmoid_output" in out:
    out["psnr_sigmoid_output"] = psnr_from_mse(out["mse_sigmoid_output"])
  return out


@functools.lru_cache(maxsize=None)  # one jitted function (and compile cache) per variant
def make_eval_step(variant: Variant, num_shown: int = 0, pixel_max: float = 1.0):
  """Test metrics; with ``num_shown``, also the first reconstructions (key ``"shown"``).

  A ``raw_pixels`` variant is fed the raw pixels; its reconstruction (the
  activated output) is scored against the scaled image, like every other."""

  @nnx.jit
  def eval_step(model: models.Autoencoder, images: jax.Array):
    logits = model(model_inputs(variant, images, pixel_max))
    recon = reconstruct(variant, logits)
    sig_logits = logits if (variant.activation == "sigmoid" and variant.reconstruction == "output") else None
    out = image_metrics(recon, images, logits=sig_logits)
    if variant.reconstruction == "cb_mean":  # also score the raw sigmoid output lambda, for the README
      out["mse_sigmoid_output"] = jaxloss.squared_error(jax.nn.sigmoid(logits), images)
    if num_shown:
      out["shown"] = jnp.clip(recon[:num_shown], 0.0, 1.0)
    return out
  return eval_step


def mean_image_baseline(dataset: input_pipeline.Dataset) -> dict[str, float]:
  """Metrics of predicting the mean training image for every test image."""
  t0 = time.perf_counter()
  mean = np.mean(dataset.train, axis=0, dtype=np.float64).astype(np.float32)
  test = jnp.asarray(dataset.test)
  recon = jnp.broadcast_to(jnp.asarray(mean), test.shape)
  m = finalize_metrics(jax.jit(image_metrics)(recon, test))
  m["seconds"] = time.perf_counter() - t0
  return m


# ----------------------------------------------------------------------------
# Model, optimizer, sharding
# ----------------------------------------------------------------------------
def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D ``"data"`` mesh over ``devices`` (default: all local devices)."""
  devices = list(jax.local_devices() if devices is None else devices)
  return Mesh(np.array(devices), ("data",))


def _replicate(mesh: Mesh, *objs: Any) -> None:
  replicated = NamedSharding(mesh, P())
  for obj in objs:
    nnx.update(obj, jax.device_put(nnx.state(obj), replicated))


@functools.partial(nnx.jit, static_argnums=(0, 1, 2, 3))
def _init(num_features: int, hidden: tuple[int, ...], seed: int, learning_rate: float):
  # One compiled initializer per configuration, shared by all variants (eager
  # initialization would compile every random op of every layer separately).
  model = models.Autoencoder(num_features, hidden, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
  return model, optimizer, nnx.metrics.Average()


def create_train_state(config: configs_lib.Config, num_features: int, mesh: Mesh):
  """Fresh model, optimizer and loss metric, replicated over ``mesh``."""
  model, optimizer, metric = _init(num_features, tuple(config.hidden), config.seed, config.learning_rate)
  _replicate(mesh, model, optimizer, metric)
  return model, optimizer, metric


def train_step(variant: Variant, model: models.Autoencoder, optimizer: nnx.Optimizer,
               metric: nnx.metrics.Average, images: jax.Array, pixel_max: float = 1.0) -> None:
  """One optimizer step, in place: forward, jaxloss loss, gradient, Adam update, running loss mean.

  ``images`` are scaled to [0, 1]; a ``raw_pixels`` variant trains on ``round(images * pixel_max)``."""
  x = model_inputs(variant, images, pixel_max)

  def loss_fn(model):
    return variant.loss(model(x), x)

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  metric.update(values=loss)


@functools.lru_cache(maxsize=None)  # one jitted function (and compile cache) per variant
def make_train_steps(variant: Variant, pixel_max: float = 1.0):
  """``train_steps(model, optimizer, metric, batches)``: one ``nnx.jit`` call running
  :func:`train_step` over ``batches`` of shape ``(k, batch, features)`` with ``lax.scan``.

  ``k = 1`` is the classic one-step-per-call loop; a larger ``k``
  (``config.steps_per_call``) runs ``k`` steps per call, which on a CPU cuts
  the per-step Python/dispatch cost about fourfold. Same updates either way.
  Returns nothing: the state is updated in place and stays on the devices.
  """

  @nnx.jit(donate_argnums=(0, 1, 2))
  def train_steps(model: models.Autoencoder, optimizer: nnx.Optimizer, metric: nnx.metrics.Average,
                  batches: jax.Array) -> None:
    graphdef, state = nnx.split((model, optimizer, metric))

    def body(state, images):
      m, o, me = nnx.merge(graphdef, state)
      train_step(variant, m, o, me, images, pixel_max)
      return nnx.state((m, o, me)), None

    state, _ = jax.lax.scan(body, state, batches)
    nnx.update((model, optimizer, metric), state)

  return train_steps


def _next_boundary(step: int, config: configs_lib.Config) -> int:
  """End of the chunk of steps that starts at ``step``: never past an evaluation, the end, or
  a multiple of ``steps_per_call`` (absolute, so a resumed run chunks exactly like an uninterrupted one)."""
  spc = max(1, config.steps_per_call)
  return min(config.num_steps, (step // config.eval_every + 1) * config.eval_every, (step // spc + 1) * spc)


def _chunk(dataset: input_pipeline.Dataset, config: configs_lib.Config, start: int, stop: int,
           sharding: NamedSharding) -> jax.Array:
  """Batches of steps ``start..stop-1``, shape ``(stop - start, batch, features)``, batch axis sharded."""
  idx = np.stack([input_pipeline.batch_indices(len(dataset.train), config.batch_size, config.seed, s)
                  for s in range(start, stop)])
  return jax.device_put(dataset.train[idx], sharding)


# ----------------------------------------------------------------------------
# Checkpoints (orbax)
# ----------------------------------------------------------------------------
def _checkpoint_manager(directory: str):
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
  )


def _save(manager, step: int, model, optimizer, history: dict) -> None:
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  state = {"model": nnx.to_pure_dict(nnx.state(model)), "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}
  # Orbax saves asynchronously and may serialize `history` after training has
  # appended the next evaluation to it: hand it a snapshot, not the live dict.
  snapshot = {key: list(values) for key, values in history.items()}
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             history=ocp.args.JsonSave(snapshot)))


def _restore(manager, step: int, model, optimizer) -> dict:
  """Restores ``step`` into ``model``/``optimizer`` (keeping their sharding); returns the history."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  model_state, opt_state = nnx.state(model), nnx.state(optimizer)
  target = {"model": nnx.to_pure_dict(model_state), "optimizer": nnx.to_pure_dict(opt_state)}
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), target)
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                           history=ocp.args.JsonRestore()))
  nnx.replace_by_pure_dict(model_state, restored["state"]["model"])
  nnx.replace_by_pure_dict(opt_state, restored["state"]["optimizer"])
  nnx.update(model, model_state)
  nnx.update(optimizer, opt_state)
  return dict(restored["history"])


# ----------------------------------------------------------------------------
# One variant, end to end
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
  name: str
  metrics: dict[str, float]
  history: dict[str, list]
  model: models.Autoencoder
  examples: np.ndarray  # reconstructions of the first test images, for the figure


def train_and_evaluate(
    config: configs_lib.Config,
    variant_name: str,
    dataset: input_pipeline.Dataset,
    *,
    workdir: str | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    num_examples_shown: int = 10,
) -> Result:
  """Trains one variant for ``config.num_steps`` steps and evaluates it on the test set.

  With ``workdir``, checkpoints go to ``workdir/checkpoints/<variant>`` every
  ``config.checkpoint_every`` steps and at the end, and an existing checkpoint
  there is resumed from.
  """
  variant = VARIANTS[variant_name]
  mesh = make_mesh() if mesh is None else mesh
  n_dev = mesh.devices.size
  if config.batch_size % n_dev:
    raise configs_lib.ConfigError(f"batch_size={config.batch_size} must be a multiple of the {n_dev} devices "
                                  "(the batch is split evenly over them).")
  if config.checkpoint_every and config.checkpoint_every % config.eval_every:
    raise configs_lib.ConfigError(
        f"checkpoint_every={config.checkpoint_every} must be a multiple of eval_every={config.eval_every}.")
  t_start = time.perf_counter()
  model, optimizer, metric = create_train_state(config, dataset.num_features, mesh)
  train_steps = make_train_steps(variant, pixel_max_for(variant, dataset))
  eval_step = make_eval_step(variant, num_examples_shown, pixel_max_for(variant, dataset))
  chunk_sharding = NamedSharding(mesh, P(None, "data"))  # (steps, batch, features): batch axis split
  test_images = jax.device_put(dataset.test, NamedSharding(mesh, P()))  # small: evaluated whole, replicated

  history: dict[str, list] = {"step": [], "train_loss": [], "test_mse": [], "test_bce_minus_floor": [],
                              "elapsed": []}
  manager = _checkpoint_manager(os.path.join(workdir, "checkpoints", variant_name)) if workdir else None
  start_step, elapsed_before = 0, 0.0
  if manager is not None and manager.latest_step() is not None:
    start_step = int(manager.latest_step())
    history = _restore(manager, start_step, model, optimizer)
    elapsed_before = history["elapsed"][-1] if history["elapsed"] else 0.0
  if start_step > config.num_steps:
    raise configs_lib.ConfigError(f"{workdir} holds a checkpoint at step {start_step} > num_steps={config.num_steps}; "
                     "use another --workdir.")

  def evaluate(step: int) -> None:
    history["step"].append(step)
    history["train_loss"].append(float(metric.compute()))
    metric.reset()
    m = eval_step(model, test_images)  # the only host fetches: at evaluation intervals
    history["test_mse"].append(float(m["mse"]))
    history["test_bce_minus_floor"].append(float(m["bce_minus_floor"]))
    history["elapsed"].append(elapsed_before + time.perf_counter() - t_start)

  # cached_partial skips re-walking the (unchanged) object graph on every call.
  steps_fn = nnx.cached_partial(train_steps, model, optimizer, metric)
  bar = _progress_bar(config.num_steps, start_step, variant_name, progress)
  step = start_step
  while step < config.num_steps:
    done = _next_boundary(step, config)
    steps_fn(_chunk(dataset, config, step, done, chunk_sharding))
    if bar is not None:
      bar.update(done - step)
    step = done
    if done % config.eval_every == 0 or done == config.num_steps:
      evaluate(done)
      if bar is not None:
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.4g}", refresh=False)
      if manager is not None and (done == config.num_steps or
                                  (config.checkpoint_every and done % config.checkpoint_every == 0)):
        _save(manager, done, model, optimizer, history)
  if bar is not None:
    bar.close()
  if manager is not None:
    manager.wait_until_finished()
    manager.close()

  final = dict(eval_step(model, test_images))
  examples = np.asarray(final.pop("shown", np.zeros((0, dataset.num_features), np.float32)))
  m = finalize_metrics(final)
  m["seconds"] = elapsed_before + time.perf_counter() - t_start
  m["train_loss"] = history["train_loss"][-1] if history["train_loss"] else float("nan")
  return Result(variant_name, m, history, model, examples)


def _progress_bar(total: int, initial: int, desc: str, enabled: bool):
  if not enabled:
    return None
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  return tqdm(total=total, initial=initial, desc=f"{desc:>28s}", unit="step", leave=True, dynamic_ncols=True)


# ----------------------------------------------------------------------------
# Throughput (for the GPU report)
# ----------------------------------------------------------------------------
def measure_steps_per_second(config: configs_lib.Config, variant_name: str, dataset: input_pipeline.Dataset,
                             *, num_steps: int = 200, warmup: int = 20, mesh: Mesh | None = None) -> dict:
  """Steps per second of the real training loop (host batching + transfer + jitted steps), after warm-up.

  ``num_steps`` is rounded up to whole ``config.steps_per_call`` chunks."""
  variant = VARIANTS[variant_name]
  mesh = make_mesh() if mesh is None else mesh
  model, optimizer, metric = create_train_state(config, dataset.num_features, mesh)
  train_steps = make_train_steps(variant, pixel_max_for(variant, dataset))
  chunk_sharding = NamedSharding(mesh, P(None, "data"))
  steps_fn = nnx.cached_partial(train_steps, model, optimizer, metric)
  spc = max(1, config.steps_per_call)

  def run(first: int, count: int) -> None:
    step = first
    while step < first + count:
      stop = min(first + count, step + spc)
      steps_fn(_chunk(dataset, config, step, stop, chunk_sharding))
      step = stop
    jax.block_until_ready(nnx.state(model))

  warm = -(-max(warmup, spc) // spc) * spc  # whole chunks: compiles the full-chunk call
  num_steps = -(-num_steps // spc) * spc  # timed: whole chunks only, no recompilation
  run(0, warm)
  t0 = time.perf_counter()
  run(warm, num_steps)
  dt = time.perf_counter() - t0
  dev = mesh.devices.flat[0]
  return {"variant": variant_name, "steps_per_second": num_steps / dt,
          "examples_per_second": num_steps * config.batch_size / dt, "batch_size": config.batch_size,
          "steps_per_call": spc,
          "num_features": dataset.num_features, "hidden": list(config.hidden), "timed_steps": num_steps,
          "device_kind": dev.device_kind, "platform": dev.platform, "num_devices": int(mesh.devices.size),
          "jax_version": jax.__version__,
          "final_train_loss": float(metric.compute())}


def to_json(obj: Any) -> str:
  """JSON with non-finite floats written as null (strict JSON has no inf/NaN)."""
  def clean(o):
    if isinstance(o, float) and not math.isfinite(o):
      return None
    if isinstance(o, dict):
      return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
      return [clean(v) for v in o]
    return o
  return json.dumps(clean(obj), indent=2, allow_nan=False)
