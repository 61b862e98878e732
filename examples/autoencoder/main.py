r"""Which output activation and loss should an image autoencoder use? Measured, with jaxloss.

Run the whole comparison (11 variants + the mean-image baseline) on scikit-learn's
bundled 8x8 digits, offline, in well under two minutes on a laptop CPU::

  python examples/autoencoder/main.py                      # writes runs/autoencoder/
  python examples/autoencoder/main.py --workdir /tmp/ae    # elsewhere

Real MNIST from a local Keras-format file, or generated data of MNIST shape::

  python examples/autoencoder/main.py --data-path ~/.keras/datasets/mnist.npz
  python examples/autoencoder/main.py --synthetic-mnist --steps-per-second   # throughput only

Outputs in ``--workdir``: ``metrics.json`` (variant -> test psnr, mse, bce,
bce_minus_floor, seconds), ``metrics.md``, ``reconstructions.png``,
``loss_curves.png``, ``config.json`` and orbax checkpoints (a rerun with the
same ``--workdir`` resumes from them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
  sys.path.insert(0, _HERE)

import configs as configs_lib  # noqa: E402
import input_pipeline  # noqa: E402
import keras_question  # noqa: E402
import train  # noqa: E402

# Config fields that must match for a --workdir to be resumed.
_RESUME_KEYS = ("dataset", "data_path", "hidden", "batch_size", "learning_rate", "seed", "test_fraction",
                "max_train_examples", "max_test_examples")


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", default=os.path.join("runs", "autoencoder"),
                 help="output and checkpoint directory (default: runs/autoencoder); an existing one is resumed")
  src = p.add_mutually_exclusive_group()
  src.add_argument("--data-path", default=None, help="local Keras-format mnist.npz (x_train, y_train, x_test, y_test)")
  src.add_argument("--synthetic-mnist", action="store_true", help="generated data of MNIST shape (for timing)")
  p.add_argument("--config", default=None, choices=configs_lib.CONFIG_NAMES,
                 help="base configuration (default: digits, or mnist with --data-path/--synthetic-mnist; "
                      "keras_mnist: the Keras question's own setting, with --data-path)")
  p.add_argument("--variants", default=None,
                 help="comma-separated subset of: " + ",".join(configs_lib.VARIANT_NAMES))
  p.add_argument("--steps", type=int, default=None, help="optimizer steps per variant")
  p.add_argument("--batch-size", type=int, default=None)
  p.add_argument("--learning-rate", type=float, default=None)
  p.add_argument("--seed", type=int, default=None)
  p.add_argument("--eval-every", type=int, default=None)
  p.add_argument("--checkpoint-every", type=int, default=None, help="0: only at the end")
  p.add_argument("--steps-per-call", type=int, default=None,
                 help="optimizer steps per jitted call (lax.scan over batches; 1 = one step per call)")
  p.add_argument("--steps-per-second", action="store_true",
                 help="only measure training throughput (after warm-up) and write timing.json")
  p.add_argument("--timed-steps", type=int, default=500, help="steps timed by --steps-per-second")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> configs_lib.Config:
  name = args.config or ("mnist" if (args.data_path or args.synthetic_mnist) else "digits")
  config = configs_lib.get_config(name)
  overrides = {}
  if name == "keras_mnist" and not (args.data_path or args.synthetic_mnist):
    raise SystemExit("error: --config keras_mnist needs --data-path (a Keras-format mnist.npz) or --synthetic-mnist")
  if args.data_path:
    overrides.update(dataset="mnist", data_path=os.path.abspath(os.path.expanduser(args.data_path)))
  elif args.synthetic_mnist:
    overrides.update(dataset="synthetic_mnist")
  for field, value in (("num_steps", args.steps), ("batch_size", args.batch_size),
                       ("learning_rate", args.learning_rate), ("seed", args.seed),
                       ("eval_every", args.eval_every), ("checkpoint_every", args.checkpoint_every),
                       ("steps_per_call", args.steps_per_call)):
    if value is not None:
      overrides[field] = value
  if args.variants:
    names = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = [v for v in names if v not in configs_lib.VARIANT_NAMES]
    if unknown:
      raise SystemExit(f"error: unknown variant(s) {unknown}; choose from {', '.join(configs_lib.VARIANT_NAMES)}")
    overrides["variants"] = names
  config = config.replace(**overrides)
  if min(config.num_steps, config.eval_every, config.batch_size, config.steps_per_call) < 1:
    raise SystemExit("error: --steps, --eval-every, --batch-size and --steps-per-call must be positive")
  return config


def _check_workdir_config(config: configs_lib.Config, workdir: str) -> None:
  path = os.path.join(workdir, "config.json")
  new = dataclasses.asdict(config)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    diff = [k for k in _RESUME_KEYS if json.dumps(old.get(k)) != json.dumps(new[k])]
    if diff:
      raise SystemExit(f"error: {workdir} was written with a different {', '.join(diff)}; its checkpoints "
                       "cannot be resumed with this configuration. Use another --workdir.")
  with open(path, "w") as f:
    json.dump(new, f, indent=2)


# ----------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------
def _fmt(x: float, spec: str) -> str:
  return format(x, spec) if math.isfinite(x) else ("∞" if x > 0 else "nan")


def metrics_markdown(metrics: dict[str, dict[str, float]], dataset_name: str, config: configs_lib.Config) -> str:
  base = metrics[configs_lib.BASELINE_NAME]
  floor = base["bce_floor"]
  lines = [
      f"Test set of {dataset_name}; {config.num_steps} Adam steps per variant, batch {config.batch_size}, "
      f"learning rate {config.learning_rate:g}, seed {config.seed}.",
      f"The data's binary-entropy floor (BCE of a perfect reconstruction) is {floor:.4f} nats/pixel.",
      "",
      "| variant | output | loss | PSNR (dB) | vs mean image (dB) | MSE | BCE | BCE − floor | final training loss "
      "| seconds |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for name, m in metrics.items():
    if name == configs_lib.BASELINE_NAME:
      output, loss, train_loss = "mean training image", "(none)", "-"
    else:
      v = train.VARIANTS[name]
      output = "CB mean of sigmoid" if v.reconstruction == "cb_mean" else v.activation
      loss = v.loss_label or name.split("_", 1)[1]
      train_loss = _fmt(m["train_loss"], ".4g")
    lines.append(
        f"| `{name}` | {output} | {loss} | {_fmt(m['psnr'], '.2f')} | {_fmt(m['psnr'] - base['psnr'], '+.2f')} | "
        f"{_fmt(m['mse'], '.5f')} | {_fmt(m['bce'], '.4f')} | {_fmt(m['bce_minus_floor'], '.4f')} | {train_loss} | "
        f"{m['seconds']:.1f} |")
  lines += ["", "PSNR = 10 log10(1 / MSE) over all test pixels, reconstructions clipped to [0, 1]. "
            "BCE reads the reconstruction as pixel probabilities (∞: some pixel is predicted exactly 0 or 1 "
            "where the image is not). `*_unscaled` variants see raw pixels as inputs and targets; their "
            "reconstruction (the activated output) is scored against the scaled image."]
  raw = [n for n in metrics if n in train.VARIANTS and train.VARIANTS[n].raw_pixels]
  if raw:
    lines += ["", "jaxloss' own BCE on the raw-pixel targets of the `*_unscaled` variants (trained models, test set):",
              ""]
    for name in raw:
      m = metrics[name]
      lines.append(f"* `{name}`: `{m['jaxloss_loss']}` = {_fmt(m['jaxloss_bce'], '.4g')} by default "
                   f"({100 * m['jaxloss_bce_nan_fraction']:.1f} % of the pixel terms NaN); inside "
                   f"`jaxloss.runtime_checks()` checkify raises: \"{m['jaxloss_error']}\"")
    lines.append(f"* {keras_question.fix_hint(metrics[raw[0]]['pixel_max'])}")
  return "\n".join(lines) + "\n"


def keras_question_report(variant, model, dataset: input_pipeline.Dataset) -> dict:
  """For a Keras variant: how much of its output sits at Keras' clip and how much it depends on the input;
  for a ``raw_pixels`` one also jaxloss' own BCE on its raw targets (NaN; the checkify message) and Keras'
  per-pixel BCE at the brightest raw pixel for growing predicted probability (negative, unbounded but for
  Keras' clipping)."""
  pixel_max = float(dataset.pixel_max)
  inputs = train.model_inputs(variant, dataset.test, pixel_max)
  logits = model(inputs)
  out = keras_question.output_statistics(train.activate(variant.activation, logits), dataset.test)
  if variant.raw_pixels:
    native = keras_question.jaxloss_bce_on_raw_targets(variant.activation, logits, inputs)
    out.update({"pixel_max": pixel_max, "jaxloss_loss": native["loss"], "jaxloss_bce": native["value"],
                "jaxloss_bce_nan_fraction": native["nan_fraction"], "jaxloss_error": native["error"],
                "keras_bce_at_max_pixel": keras_question.keras_bce_at_raw_target(pixel_max)})
  return out


def plot_reconstructions(path: str, dataset: input_pipeline.Dataset, examples: dict[str, Any],
                         metrics: dict[str, dict[str, float]]) -> None:
  """One mosaic: a row of test originals, then one row per variant (and the baseline)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  n = next(iter(examples.values())).shape[0]
  rows = [("original", dataset.test[:n])] + list(examples.items())
  h, w = dataset.image_shape
  gap = max(1, h // 8)
  mosaic = np.ones((len(rows) * (h + gap) - gap, n * (w + gap) - gap), np.float32)  # white gaps
  for r, (_, imgs) in enumerate(rows):
    for c in range(n):
      mosaic[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = np.asarray(imgs[c]).reshape(h, w)
  fig = plt.figure(figsize=(0.6 * n + 2.3, 0.6 * len(rows) + 0.35))
  ax = fig.add_axes((2.2 / fig.get_figwidth(), 0.02, 1 - 2.25 / fig.get_figwidth(), 1 - 0.4 / fig.get_figheight()))
  ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
  ax.set_xticks([])
  ax.set_yticks([r * (h + gap) + h / 2 for r in range(len(rows))])
  ax.set_yticklabels([name if name == "original" else f"{name}\n{metrics[name]['psnr']:.1f} dB" for name, _ in rows],
                     fontsize=7)
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  ax.set_title(f"Test reconstructions ({dataset.name}); PSNR over the whole test set", fontsize=8)
  fig.savefig(path, dpi=90)
  plt.close(fig)


def plot_loss_curves(path: str, histories: dict[str, dict], metrics: dict[str, dict[str, float]]) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  base = metrics[configs_lib.BASELINE_NAME]
  fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
  ax_loss, ax_psnr, ax_kl = axes
  for i, (name, h) in enumerate(histories.items()):
    if not h["step"]:
      continue
    # sigmoid_binary_kl trains exactly like sigmoid_bce (same gradient): dashed, so both show. The Keras
    # variants (the last four) are dash-dotted: sigmoid_bce_scaled retraces sigmoid_bce.
    ls = "-." if name in configs_lib.KERAS_VARIANT_NAMES else ("--" if name == "sigmoid_binary_kl" else "-")
    style = dict(color=f"C{i % 10}", lw=1.3, ls=ls, label=name)
    ax_loss.plot(h["step"], h["train_loss"], **style)
    ax_psnr.plot(h["step"], [-10 * math.log10(m) if m > 0 else float("nan") for m in h["test_mse"]], **style)
    ax_kl.plot(h["step"], h["test_bce_minus_floor"], **style)
  ax_loss.axhline(base["bce_floor"], color="k", ls=":", lw=1, label="binary-entropy floor of the pixels")
  ax_loss.set_yscale("symlog", linthresh=1e-2)
  ax_loss.set_title("training objective, each variant's own loss\n(BCE stays above the floor; binary KL → 0)",
                    fontsize=9)
  ax_psnr.axhline(base["psnr"], color="k", ls="--", lw=1, label="mean-image baseline")
  ax_psnr.set_title("test PSNR (dB), higher is better", fontsize=9)
  ax_kl.set_yscale("log")
  ax_kl.set_title("test BCE − floor (= mean binary KL), 0 is perfect\n(linear_mse: ∞, not drawn)", fontsize=9)
  for ax in axes:
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  handles, labels = [], []
  for ax in (ax_loss, ax_psnr):
    for hnd, lab in zip(*ax.get_legend_handles_labels()):
      if lab not in labels:
        handles.append(hnd)
        labels.append(lab)
  fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=7, frameon=False)
  fig.tight_layout(rect=(0, 0.12, 1, 1))
  fig.savefig(path, dpi=80)
  plt.close(fig)


# ----------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------
def run_comparison(config: configs_lib.Config, workdir: str, *, progress: bool = True) -> dict[str, dict[str, float]]:
  """Trains every variant of ``config``, evaluates the baseline and writes the reports to ``workdir``."""
  os.makedirs(workdir, exist_ok=True)
  _check_workdir_config(config, workdir)
  t0 = time.perf_counter()
  dataset = input_pipeline.load(config)
  mesh = train.make_mesh()
  print(f"{dataset.name}: {len(dataset.train)} train / {len(dataset.test)} test images of "
        f"{dataset.num_features} pixels; {mesh.devices.size} {mesh.devices.flat[0].platform} device(s)", flush=True)
  metrics: dict[str, dict[str, float]] = {}
  histories: dict[str, dict] = {}
  examples = {}
  for name in config.variants:
    result = train.train_and_evaluate(config, name, dataset, workdir=workdir, mesh=mesh, progress=progress)
    metrics[name], histories[name], examples[name] = result.metrics, result.history, result.examples
    if name in configs_lib.KERAS_VARIANT_NAMES:
      metrics[name].update(keras_question_report(train.VARIANTS[name], result.model, dataset))
  metrics[configs_lib.BASELINE_NAME] = train.mean_image_baseline(dataset)
  import numpy as np  # pylint: disable=import-outside-toplevel
  mean_img = np.mean(dataset.train, axis=0)
  examples[configs_lib.BASELINE_NAME] = np.broadcast_to(mean_img, (next(iter(examples.values())).shape[0],
                                                                    dataset.num_features))

  with open(os.path.join(workdir, "metrics.json"), "w") as f:
    f.write(train.to_json(metrics) + "\n")
  table = metrics_markdown(metrics, dataset.name, config)
  with open(os.path.join(workdir, "metrics.md"), "w") as f:
    f.write(table)
  with open(os.path.join(workdir, "history.json"), "w") as f:
    f.write(train.to_json(histories) + "\n")
  plot_reconstructions(os.path.join(workdir, "reconstructions.png"), dataset, examples, metrics)
  plot_loss_curves(os.path.join(workdir, "loss_curves.png"), histories, metrics)
  print(table)
  print(f"total {time.perf_counter() - t0:.1f} s; wrote metrics.json, metrics.md, reconstructions.png, "
        f"loss_curves.png to {workdir}")
  return metrics


def run_timing(config: configs_lib.Config, workdir: str, timed_steps: int) -> list[dict]:
  os.makedirs(workdir, exist_ok=True)
  dataset = input_pipeline.load(config)
  out = []
  for name in config.variants:
    r = train.measure_steps_per_second(config, name, dataset, num_steps=timed_steps)
    out.append(r)
    print(f"{name}: {r['steps_per_second']:.1f} steps/s ({r['examples_per_second']:.0f} examples/s), batch "
          f"{r['batch_size']}, {r['steps_per_call']} steps per call, {r['num_features']}-{'-'.join(map(str, r['hidden']))}-..., on {r['num_devices']} x "
          f"{r['device_kind']}", flush=True)
  with open(os.path.join(workdir, "timing.json"), "w") as f:
    f.write(train.to_json(out) + "\n")
  return out


def main(argv=None) -> int:
  args = parse_args(argv)
  config = build_config(args)
  try:
    if args.steps_per_second:
      if args.variants is None:
        config = config.replace(variants=("sigmoid_bce",))
      run_timing(config, args.workdir, args.timed_steps)
    else:
      run_comparison(config, args.workdir, progress=not args.no_progress)
  except (FileNotFoundError, input_pipeline.DataError, configs_lib.ConfigError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
