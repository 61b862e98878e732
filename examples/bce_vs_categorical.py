"""Binary vs categorical cross-entropy on one-hot targets, native jaxloss next to Keras.

* For y_true = [1, 0, 0], BCE (mean over classes) prefers [0.8, 0.1, 0.1] to
  [0.8, 0.2, 0.0] -- it also scores the wrong classes -- while categorical CE
  only reads the true class and scores them equally (-log 0.8).
* BCE equals categorical CE only when the prediction is one probability
  distribution over classes, e.g. a sigmoid p against the two-class softmax
  [1 - p, p] (single label). For independent sigmoid outputs that do not sum
  to 1 (multi-label, [0.3, 0.8]) they differ.
* For y_true [[0, 1], [1, 0]] and y_pred [[0.5, 0.5], [0.8, 0.2]] the mean
  categorical CE is 0.458 (natively and in Keras).
* Keras normalizes y_pred in categorical CE, so [0.2, 0.8] and [2, 8] score the
  same; its BCE silently clips predictions above 1 (a prediction of 8 costs
  16.12 nats in float64 with zero gradient), where native jaxloss refuses
  them (NaN, and an error under checkify).

Run:  python examples/bce_vs_categorical.py [--workdir DIR] [--fast]
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import matplotlib
from jax.experimental import checkify

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import jaxloss  # noqa: E402
from jaxloss.compat import keras as K  # noqa: E402


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/bce_vs_categorical", help="output folder")
  parser.add_argument("--fast", action="store_true", help="fewer plot points (smoke test)")
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  workdir = pathlib.Path(args.workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  r = {}

  # 1. BCE reads every class, categorical CE only the true one.
  y = jnp.array([1.0, 0.0, 0.0])
  a, b = jnp.array([0.8, 0.1, 0.1]), jnp.array([0.8, 0.2, 0.0])
  r["bce_a"] = float(jaxloss.binary_cross_entropy(a, y))
  r["bce_b"] = float(jaxloss.binary_cross_entropy(b, y))
  r["cce_a"] = float(jaxloss.categorical_cross_entropy(a, y))
  r["cce_b"] = float(jaxloss.categorical_cross_entropy(b, y))
  r["keras_bce_a"] = float(K.binary_crossentropy(y, a))
  r["keras_bce_b"] = float(K.binary_crossentropy(y, b))
  r["keras_cce_a"] = float(K.categorical_crossentropy(y, a))
  r["keras_cce_b"] = float(K.categorical_crossentropy(y, b))
  print("y_true = [1, 0, 0]           native BCE  native CCE   keras BCE   keras CCE")
  for name, s in (("[0.8, 0.1, 0.1]", "a"), ("[0.8, 0.2, 0.0]", "b")):
    print(f"  y_pred = {name}  {r['bce_' + s]:10.4f}  {r['cce_' + s]:10.4f}  {r['keras_bce_' + s]:10.4f}"
          f"  {r['keras_cce_' + s]:10.4f}")
  print("  -> BCE prefers the first; categorical CE scores both -log 0.8 = 0.2231")

  # 2. single label: sigmoid BCE == two-class categorical CE; multi-label outputs: not.
  p, t = jnp.array([0.8]), jnp.array([1.0])
  r["bce_single"] = float(jaxloss.binary_cross_entropy(p, t))
  r["cce_two_class"] = float(jaxloss.categorical_cross_entropy(jnp.array([0.2, 0.8]), jnp.array([0.0, 1.0])))
  q, u = jnp.array([0.3, 0.8]), jnp.array([0.0, 1.0])  # two independent sigmoids, sum 1.1
  r["bce_multilabel"] = float(jaxloss.binary_cross_entropy(q, u))
  r["cce_multilabel"] = float(jaxloss.categorical_cross_entropy(q, u))  # NaN: the row is not a distribution
  r["cce_multilabel_formula"] = float(-jnp.sum(u * jnp.log(q)))  # what the formula would say
  print(f"single label: BCE(0.8, 1) = {r['bce_single']:.6f} = CCE([0.2, 0.8], [0, 1]) = {r['cce_two_class']:.6f}")
  print(f"outputs not summing to 1, [0.3, 0.8] vs [0, 1]: mean BCE {r['bce_multilabel']:.4f}"
        f" != the CCE formula {r['cce_multilabel_formula']:.4f}; jaxloss's CCE refuses the row:"
        f" {r['cce_multilabel']}")

  # 3. the 0.458 example
  yt = jnp.array([[0.0, 1.0], [1.0, 0.0]])
  yp = jnp.array([[0.5, 0.5], [0.8, 0.2]])
  r["cce_mean"] = float(jaxloss.categorical_cross_entropy(yp, yt))
  r["keras_cce_mean"] = float(K.categorical_crossentropy(yt, yp, reduction="sum_over_batch_size"))
  print(f"y_true [[0, 1], [1, 0]], y_pred [[0.5, 0.5], [0.8, 0.2]]: mean CCE native {r['cce_mean']:.4f},"
        f" keras {r['keras_cce_mean']:.4f} (theory (ln 2 - ln 0.8) / 2 = 0.458)")

  # 4. Keras normalizes and clips; native jaxloss refuses values outside [0, 1].
  r["keras_cce_02_08"] = float(K.categorical_crossentropy(u, jnp.array([0.2, 0.8])))
  r["keras_cce_2_8"] = float(K.categorical_crossentropy(u, jnp.array([2.0, 8.0])))
  r["native_cce_2_8"] = float(jaxloss.categorical_cross_entropy(jnp.array([2.0, 8.0]), u))
  with jaxloss.runtime_checks():  # opt-in: by default the value is NaN and nothing else is traced
    err, _ = checkify.checkify(jaxloss.categorical_cross_entropy, errors=checkify.user_checks)(
        jnp.array([2.0, 8.0]), u)
  print(f"Keras CCE [0.2, 0.8] = {r['keras_cce_02_08']:.4f} = [2, 8] = {r['keras_cce_2_8']:.4f};"
        f" native on [2, 8]: {r['native_cce_2_8']} ({err.get()})")
  big = jnp.array([8.0])
  r["keras_bce_clip_f64"] = float(K.binary_crossentropy(jnp.zeros(1), big))
  r["keras_bce_clip_f32"] = float(K.binary_crossentropy(jnp.zeros(1, jnp.float32), big.astype(jnp.float32)))
  r["keras_bce_clip_grad"] = float(jax.grad(lambda v: K.binary_crossentropy(jnp.zeros(1), v).sum())(big)[0])
  r["native_bce_8"] = float(jaxloss.binary_cross_entropy(big, jnp.zeros(1)))
  with jaxloss.runtime_checks():
    err, _ = checkify.checkify(jaxloss.binary_cross_entropy, errors=checkify.user_checks)(big, jnp.zeros(1))
  print(f"BCE of a prediction 8 against 0: Keras {r['keras_bce_clip_f64']:.4f} (f64), {r['keras_bce_clip_f32']:.4f}"
        f" (f32), gradient {r['keras_bce_clip_grad']}; native: {r['native_bce_8']} ({err.get()})")

  # figure: left, the two predictions; right, BCE against label 0 as the prediction passes 1
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  labels = ["native BCE", "native CCE", "Keras BCE", "Keras CCE"]
  va = [r["bce_a"], r["cce_a"], r["keras_bce_a"], r["keras_cce_a"]]
  vb = [r["bce_b"], r["cce_b"], r["keras_bce_b"], r["keras_cce_b"]]
  x = jnp.arange(4.0)
  axes[0].bar(x - 0.2, va, 0.4, label="[0.8, 0.1, 0.1]")
  axes[0].bar(x + 0.2, vb, 0.4, label="[0.8, 0.2, 0.0]")
  axes[0].set_xticks(list(range(4)), labels)
  axes[0].set(title="y_true = [1, 0, 0]", ylabel="nats")
  axes[0].legend()
  n = 60 if args.fast else 600
  pr = jnp.linspace(0.5, 2.0, n)
  zeros = jnp.zeros_like(pr)
  axes[1].plot(pr, K.binary_crossentropy(zeros[:, None], pr[:, None]), label="compat.keras (clips at 1 - 1e-7)")
  axes[1].plot(pr, jaxloss.binary_cross_entropy(pr, zeros, reduction="none"), "--",
               label="native (NaN above 1: not drawn)")
  axes[1].set(title="BCE against label 0", xlabel="prediction", ylabel="nats")
  axes[1].legend()
  fig.tight_layout()
  out = workdir / "bce_vs_categorical.png"
  fig.savefig(out, dpi=100)
  plt.close(fig)
  print(f"wrote {out}")
  r["figure"] = str(out)
  return r


if __name__ == "__main__":
  main()
