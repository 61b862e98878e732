"""The all-sigmoid autoencoder "blob": cross-entropy vs MSE, plain gradient descent vs Adam, measured.

The question: an X-100-50-100-X autoencoder with a sigmoid on *every* layer,
inputs in [0, 1], gives a blurry blob with cross-entropy and a sharp image with
MSE, and its first-layer weights converge to a zero matrix. This script trains
exactly that network (Glorot-uniform weights and zero biases, TensorFlow's
``Dense`` defaults) on scikit-learn's bundled 8x8 digits (X = 64) with

* ``ce``:  ``jaxloss.sigmoid_binary_cross_entropy(z, x)`` on the output logits z
  (the cross-entropy of the sigmoid output ``sigmoid(z)``),
* ``mse``: ``jaxloss.squared_error(sigmoid(z), x)``,
* ``ce_double_sigmoid`` (a misuse): the *sigmoid output* passed again as logits,
  ``sigmoid_binary_cross_entropy(sigmoid(z), x)`` (TensorFlow's
  ``tf.nn.sigmoid_cross_entropy_with_logits(logits=output, ...)`` where ``output``
  already went through ``tf.sigmoid``), so the model's probability is
  ``sigmoid(sigmoid(z))``, which never drops below 1/2,

each with plain gradient descent (``optax.sgd``, the optimizer a TensorFlow 1
user had at hand) and with Adam. Along training it records what explains the
result: the first-layer weight norm, the gradient norm of every layer, the
fraction of saturated sigmoid units per layer (output < 0.01 or > 0.99), the
mean output, and how much the reconstruction depends on the input (the
variance across test images of each output pixel over the data's, averaged
over pixels: 0 = the same picture for every input, a blob).

Run:  python examples/sigmoid_blob.py --workdir DIR [--fast]

Writes ``DIR/history.json`` (the diagnostics every ``steps / 60`` steps) and
``DIR/metrics.json`` (variant -> test ``psnr``, final
``first_layer_weight_norm`` and the diagnostics; keys ``ce_sgd``, ``mse_sgd``,
``ce_adam``, ``mse_adam``, ``ce_double_sigmoid_sgd``, ``ce_double_sigmoid_adam``
and the ``mean_image`` baseline) and ``DIR/sigmoid_blob.png`` (test
reconstructions, first-layer weight norm and input dependence over training).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

SIZES = (64, 100, 50, 100, 64)  # X-100-50-100-X with X = 64 (8x8 digits)
SATURATED = 0.01  # a sigmoid unit counts as saturated when its output is < 0.01 or > 0.99


# ----------------------------------------------------------------------------
# Losses: name -> loss(output_logits, x). All loss math is jaxloss.
# ----------------------------------------------------------------------------
def _ce(z, x):
  return jaxloss.sigmoid_binary_cross_entropy(z, x)


def _mse(z, x):
  return jaxloss.squared_error(jax.nn.sigmoid(z), x)


def _ce_double_sigmoid(z, x):
  # The misuse: the network's sigmoid output is handed to a from-logits loss, which applies a second sigmoid.
  return jaxloss.sigmoid_binary_cross_entropy(jax.nn.sigmoid(z), x)


LOSSES = {"ce": _ce, "mse": _mse, "ce_double_sigmoid": _ce_double_sigmoid}
OPTIMIZERS = ("sgd", "adam")
VARIANTS = tuple(f"{loss}_{opt}" for loss in LOSSES for opt in OPTIMIZERS)


# ----------------------------------------------------------------------------
# Data and model
# ----------------------------------------------------------------------------
def load_digits(seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's bundled 8x8 digits, raw 0..16 divided by 16 (inputs in [0, 1]); a seeded split."""
  from sklearn.datasets import load_digits as _load  # pylint: disable=import-outside-toplevel

  raw = _load().data
  assert raw.min() == 0 and raw.max() == 16 and np.all(raw == np.round(raw))
  x = (raw / 16.0).astype(np.float32)
  perm = np.random.default_rng(seed).permutation(len(x))
  n_test = round(len(x) * test_fraction)
  return x[perm[n_test:]], x[perm[:n_test]]


def init_params(key: jax.Array, sizes=SIZES) -> list[dict[str, jax.Array]]:
  """Glorot-uniform weights and zero biases (the defaults of TensorFlow's/Keras' ``Dense``)."""
  init = jax.nn.initializers.glorot_uniform()
  keys = jax.random.split(key, len(sizes) - 1)
  return [{"w": init(k, (a, b), jnp.float32), "b": jnp.zeros((b,), jnp.float32)}
          for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def forward(params, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
  """Output logits and every layer's sigmoid activations (the last one is the reconstruction)."""
  acts = []
  h = x
  for layer in params:
    z = h @ layer["w"] + layer["b"]
    h = jax.nn.sigmoid(z)
    acts.append(h)
  return z, acts


def make_optimizer(name: str, sgd_lr: float, adam_lr: float) -> optax.GradientTransformation:
  if name == "sgd":
    return optax.sgd(sgd_lr)
  if name == "adam":
    return optax.adam(adam_lr)
  raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}.")


# ----------------------------------------------------------------------------
# Diagnostics
# ----------------------------------------------------------------------------
def psnr(mse) -> float:
  return float("inf") if mse == 0 else -10.0 * math.log10(float(mse))


def diagnostics(params, grads, x_test: jax.Array, data_var: jax.Array) -> dict[str, jax.Array]:
  """What the network does on the test set (all on device; fetched at the end)."""
  _, acts = forward(params, x_test)
  recon = acts[-1]
  sat = jnp.stack([jnp.mean((a < SATURATED) | (a > 1 - SATURATED)) for a in acts])
  return {
      "first_layer_weight_norm": jnp.linalg.norm(params[0]["w"]),
      "grad_norm": jnp.stack([jnp.linalg.norm(g["w"]) for g in grads]),
      "saturated_fraction": sat,
      "output_mean": jnp.mean(recon),
      # 0: the reconstruction does not depend on the input (a blob), 1: it varies as much as the data
      "input_dependence": jnp.mean(jnp.var(recon, axis=0)) / jnp.mean(data_var),
      "test_mse": jaxloss.squared_error(recon, x_test),
  }


@functools.partial(jax.jit, static_argnames=("names", "steps", "batch_size", "record_every", "sgd_lr", "adam_lr"))
def _train_all(key, x_train, x_test, *, names, steps, batch_size, record_every, sgd_lr, adam_lr):
  """Trains every variant in one compiled ``lax.scan``: the same initial parameters and the same batches for all,
  so the variants differ only in their loss and optimizer (and one compilation serves them all)."""
  split = [name.rsplit("_", 1) for name in names]
  loss_fns = [LOSSES[loss] for loss, _ in split]
  opts = [make_optimizer(opt, sgd_lr, adam_lr) for _, opt in split]
  k_init, k_batches = jax.random.split(key)
  params0 = init_params(k_init)
  data_var = jnp.var(x_test, axis=0)

  def objective(loss_fn, p, xb):
    z, _ = forward(p, xb)
    return loss_fn(z, xb)

  def step(carry, k):
    idx = jax.random.randint(k, (batch_size,), 0, x_train.shape[0])
    xb = x_train[idx]
    new_carry, out = [], []
    for (p, s), loss_fn, opt in zip(carry, loss_fns, opts):
      loss, g = jax.value_and_grad(functools.partial(objective, loss_fn))(p, xb)
      updates, s = opt.update(g, s, p)
      new_carry.append((optax.apply_updates(p, updates), s))
      out.append((loss, g, jnp.linalg.norm(updates[0]["w"])))
    return new_carry, out

  def block(carry, keys):
    carry, out = jax.lax.scan(step, carry, keys)
    records = []
    for (p, _), (losses, grads, upd) in zip(carry, out):
      last_grads = jax.tree.map(lambda a: a[-1], grads)
      records.append({"train_loss": jnp.mean(losses), "first_layer_update_norm": upd[-1],
                      **diagnostics(p, last_grads, x_test, data_var)})
    return carry, records

  xb0 = x_train[:batch_size]
  at_init = []
  for loss_fn in loss_fns:
    loss0, g0 = jax.value_and_grad(functools.partial(objective, loss_fn))(params0, xb0)
    at_init.append({"train_loss": loss0, "first_layer_update_norm": jnp.zeros((), jnp.float32),
                    **diagnostics(params0, g0, x_test, data_var)})
  keys = jax.random.split(k_batches, steps).reshape(steps // record_every, record_every)
  carry0 = [(params0, opt.init(params0)) for opt in opts]
  carry, trace = jax.lax.scan(block, carry0, keys)
  traces = [jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), i, t) for i, t in zip(at_init, trace)]
  recons = [forward(p, x_test)[1][-1] for p, _ in carry]
  return traces, recons


def summarize(trace: dict[str, np.ndarray]) -> dict:
  """The final numbers of one variant (and the gradient norms at initialization)."""
  last = {k: v[-1] for k, v in trace.items()}
  return {
      "psnr": psnr(last["test_mse"]),
      "first_layer_weight_norm": float(last["first_layer_weight_norm"]),
      "first_layer_weight_norm_init": float(trace["first_layer_weight_norm"][0]),
      "first_layer_update_norm": float(last["first_layer_update_norm"]),
      "first_layer_update_norm_first_block": float(trace["first_layer_update_norm"][1]),
      "input_dependence": float(last["input_dependence"]),
      "output_mean": float(last["output_mean"]),
      "saturated_fraction": [float(v) for v in last["saturated_fraction"]],
      "grad_norm_init": [float(v) for v in trace["grad_norm"][0]],
      "grad_norm_final": [float(v) for v in last["grad_norm"]],
      "train_loss": float(last["train_loss"]),
  }


def train_variants(names: tuple[str, ...], x_train: np.ndarray, x_test: np.ndarray, *, steps: int, batch_size: int,
                   record_every: int, sgd_lr: float, adam_lr: float, seed: int):
  traces, recons = _train_all(jax.random.key(seed), jnp.asarray(x_train), jnp.asarray(x_test), names=names,
                              steps=steps, batch_size=batch_size, record_every=record_every, sgd_lr=sgd_lr,
                              adam_lr=adam_lr)
  traces = [{k: np.asarray(v) for k, v in t.items()} for t in traces]
  return ({n: summarize(t) for n, t in zip(names, traces)}, dict(zip(names, traces)),
          {n: np.asarray(r) for n, r in zip(names, recons)})


def mean_image_baseline(x_train: np.ndarray, x_test: np.ndarray) -> dict:
  mean = x_train.astype(np.float64).mean(0)
  return {"psnr": psnr(np.mean((x_test - mean) ** 2)), "input_dependence": 0.0, "output_mean": float(mean.mean())}


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def plot(path: pathlib.Path, x_test: np.ndarray, recons: dict[str, np.ndarray], traces: dict[str, dict],
         metrics: dict[str, dict], record_every: int, n_shown: int = 10) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  rows = [("original", x_test[:n_shown])] + [(k, v[:n_shown]) for k, v in recons.items()]
  fig = plt.figure(figsize=(16, 0.62 * len(rows) + 0.8))
  grid = fig.add_gridspec(len(rows), n_shown, left=0.1, right=0.42, top=0.93, bottom=0.08, wspace=0.05, hspace=0.08)
  for r, (name, imgs) in enumerate(rows):
    for c in range(n_shown):
      ax = fig.add_subplot(grid[r, c])
      ax.imshow(imgs[c].reshape(8, 8), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if c == 0:
        label = name if name == "original" else f"{name}\n{metrics[name]['psnr']:.1f} dB"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
  plots = fig.add_gridspec(1, 3, left=0.46, right=0.99, top=0.88, bottom=0.08, wspace=0.3)
  ax_w, ax_g, ax_d = (fig.add_subplot(plots[0, i]) for i in range(3))
  for i, (name, t) in enumerate(traces.items()):
    steps = np.arange(len(t["first_layer_weight_norm"])) * record_every
    style = {"color": f"C{i // 2}", "ls": "-" if name.endswith("sgd") else "--", "lw": 1.3, "label": name}
    ax_w.plot(steps, t["first_layer_weight_norm"], **style)
    ax_g.plot(steps, t["grad_norm"][:, 0], **style)
    ax_d.plot(steps, t["input_dependence"], **style)
  ax_w.set(title="first-layer weight norm ||W1||", xlabel="step")
  ax_g.set(title="first-layer gradient norm ||dL/dW1||", xlabel="step", yscale="log")
  ax_d.set(title="input dependence of the output\n(0 = same picture for every input)", xlabel="step")
  for ax in (ax_w, ax_g, ax_d):
    ax.grid(alpha=0.3)
    ax.title.set_fontsize(8)
    ax.tick_params(labelsize=7)
  ax_w.legend(fontsize=7)
  fig.suptitle("All-sigmoid 64-100-50-100-64 autoencoder on 8x8 digits: test reconstructions (PSNR over the test "
               "set) and training diagnostics", fontsize=9)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/sigmoid_blob", help="output folder")
  parser.add_argument("--fast", action="store_true", help="a few hundred steps (smoke test)")
  parser.add_argument("--steps", type=int, default=None, help="optimizer steps per variant (default 6000)")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--sgd-lr", type=float, default=5.0,
                      help="plain gradient descent step size on the pixel-mean loss (default 5: about 0.08 on a loss "
                           "summed over the 64 pixels, the usual TensorFlow 1 form)")
  parser.add_argument("--adam-lr", type=float, default=1e-3)
  parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  names = [v.strip() for v in args.variants.split(",") if v.strip()]
  unknown = sorted(set(names) - set(VARIANTS))
  if unknown:
    parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
  steps = args.steps or (300 if args.fast else 6000)
  record_every = max(steps // 60, 1)
  steps = steps // record_every * record_every
  workdir = pathlib.Path(args.workdir)
  workdir.mkdir(parents=True, exist_ok=True)

  t0 = time.perf_counter()
  x_train, x_test = load_digits(args.seed)
  metrics, traces, recons = train_variants(tuple(names), x_train, x_test, steps=steps, batch_size=args.batch_size,
                                           record_every=record_every, sgd_lr=args.sgd_lr, adam_lr=args.adam_lr,
                                           seed=args.seed)
  for name, m in metrics.items():
    print(f"{name:24s} PSNR {m['psnr']:6.2f} dB  |W1| {m['first_layer_weight_norm_init']:.2f} -> "
          f"{m['first_layer_weight_norm']:.2f} (last step {m['first_layer_update_norm']:.1e})  "
          f"input dependence {m['input_dependence']:.3f}  output mean {m['output_mean']:.3f}  "
          f"saturated {np.round(m['saturated_fraction'], 2).tolist()}  grad norms init "
          f"{' '.join(f'{g:.1e}' for g in m['grad_norm_init'])} final "
          f"{' '.join(f'{g:.1e}' for g in m['grad_norm_final'])}", flush=True)
  metrics["mean_image"] = mean_image_baseline(x_train, x_test)
  metrics["config"] = {"sizes": list(SIZES), "steps": steps, "batch_size": args.batch_size, "sgd_lr": args.sgd_lr,
                       "adam_lr": args.adam_lr, "seed": args.seed, "data": "sklearn digits 8x8 / 16",
                       "saturation_threshold": SATURATED, "seconds": time.perf_counter() - t0}
  print(f"{'mean_image':24s} PSNR {metrics['mean_image']['psnr']:6.2f} dB")
  (workdir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
  history = {name: {k: v.tolist() for k, v in t.items()} for name, t in traces.items()}
  (workdir / "history.json").write_text(json.dumps({"record_every": record_every, **history}) + "\n")
  figure = workdir / "sigmoid_blob.png"
  recons["mean_image"] = np.broadcast_to(x_train.mean(0), x_test.shape)
  plot(figure, x_test, recons, traces, metrics, record_every)
  print(f"total {time.perf_counter() - t0:.1f} s; wrote {workdir / 'metrics.json'} and {figure}")
  return {**metrics, "figure": str(figure)}


if __name__ == "__main__":
  main()
