"""A tiny 1-D GAN whose discriminator loss settles at the game's equilibrium value.

Data: x ~ N(2, 0.5^2). Generator: affine, x = a z + b with z ~ N(0, 1) (it
can represent the data exactly). Discriminator: a small MLP (Flax NNX) giving
a logit / score. Both are trained with Adam (optax), alternating one step each.

At the equilibrium the generator matches the data and the best discriminator
outputs D = 1/2 everywhere, so

* minimax / BCE (``jaxloss.gan.minimax_discriminator_loss`` with
  ``non_saturating_generator_loss``): ln 2 = 0.693 per term, 2 ln 2 = 1.386 in
  all (Goodfellow et al. 2014: C(G*) = -log 4);
* least squares (``least_squares_discriminator_loss`` with
  ``least_squares_generator_loss``, Mao et al. 2017 with the 1/2 factors):
  0.125 per term, 0.25 in all;
* plain MSE on the sigmoid output (``jaxloss.squared_error(sigmoid(logit), 1)``
  for real and ``squared_error(sigmoid(logit), 0)`` for fake samples, no 1/2
  factor; the generator minimizes ``squared_error(sigmoid(D(G(z))), 1)``):
  (1/2 - 1)^2 = (1/2)^2 = 0.25 per term, 0.5 in all. This is the number a user
  who "trains the discriminator with MSE" sees; 0.125 is least squares *with*
  the 1/2 factor on raw scores.

The script prints the discriminator loss measured over the last training steps
next to these values, and the learned generator's mean and standard deviation,
and writes ``DIR/gan_equilibrium.png`` and ``DIR/metrics.json`` (per game: the
measured loss, its real and fake terms and the theory; at the top level
``bce_discriminator_per_term``, ``least_squares_discriminator_per_term`` and
``mse_discriminator_per_term``: the mean of the real and fake terms over the
last fifth of the steps).

Run:  python examples/gan_equilibrium.py [--workdir DIR] [--fast] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from flax import nnx

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import jaxloss  # noqa: E402
from jaxloss import gan  # noqa: E402

DATA_MEAN, DATA_STD = 2.0, 0.5


def plain_mse_discriminator_loss(real_logits, fake_logits, *, reduction: str = "mean"):
  """Plain MSE of the sigmoid output against 1 (real) and 0 (fake): mean of each side, summed.

  ``reduction="none"`` gives the concatenated real and fake terms, like the
  two-term losses of ``jaxloss.gan``."""
  real = jaxloss.squared_error(jax.nn.sigmoid(real_logits), jnp.ones_like(real_logits), reduction=reduction)
  fake = jaxloss.squared_error(jax.nn.sigmoid(fake_logits), jnp.zeros_like(fake_logits), reduction=reduction)
  return jnp.concatenate([real, fake]) if reduction == "none" else real + fake


def plain_mse_generator_loss(fake_logits):
  """The generator's side: ``squared_error(sigmoid(D(G(z))), 1)``."""
  return jaxloss.squared_error(jax.nn.sigmoid(fake_logits), jnp.ones_like(fake_logits))


GAMES = {
    # name: (discriminator loss, generator loss, theory per term, metrics.json key)
    "minimax (BCE)": (gan.minimax_discriminator_loss, gan.non_saturating_generator_loss, math.log(2.0), "bce"),
    "least squares": (gan.least_squares_discriminator_loss, gan.least_squares_generator_loss, 0.125,
                      "least_squares"),
    "plain MSE": (plain_mse_discriminator_loss, plain_mse_generator_loss, 0.25, "mse"),
}


class Discriminator(nnx.Module):

  def __init__(self, rngs: nnx.Rngs, width: int = 32):
    self.l1 = nnx.Linear(1, width, rngs=rngs)
    self.l2 = nnx.Linear(width, width, rngs=rngs)
    self.out = nnx.Linear(width, 1, rngs=rngs)

  def __call__(self, x):
    h = jnp.tanh(self.l1(x))
    h = jnp.tanh(self.l2(h))
    return self.out(h)[..., 0]


class Generator(nnx.Module):

  def __init__(self, rngs: nnx.Rngs):
    self.affine = nnx.Linear(1, 1, rngs=rngs)

  def __call__(self, z):
    return self.affine(z)


def train(d_loss_fn, g_loss_fn, *, steps: int, batch: int, seed: int):
  """Alternating Adam steps, the whole loop in one jitted lax.scan."""
  rngs = nnx.Rngs(seed)
  disc, gen = Discriminator(rngs), Generator(rngs)
  d_def, d_params = nnx.split(disc)
  g_def, g_params = nnx.split(gen)
  d_opt = optax.adam(2e-3, b1=0.5)
  g_opt = optax.adam(2e-3, b1=0.5)

  def d_apply(p, x):
    return nnx.merge(d_def, p)(x[:, None])

  def g_apply(p, z):
    return nnx.merge(g_def, p)(z[:, None])[:, 0]

  def step(carry, key):
    dp, gp, ds, gs = carry
    kx, kz = jax.random.split(key)
    real = DATA_MEAN + DATA_STD * jax.random.normal(kx, (batch,), jnp.float32)
    z = jax.random.normal(kz, (batch,), jnp.float32)
    fake = g_apply(gp, z)

    def d_scalar(p):
      real_out, fake_out = d_apply(p, real), d_apply(p, jax.lax.stop_gradient(fake))
      # the default reduction: mean of the real terms + mean of the fake terms; "none" gives
      # the concatenated terms, recorded per side.
      return d_loss_fn(real_out, fake_out), d_loss_fn(real_out, fake_out, reduction="none")

    (d_value, terms), d_grads = jax.value_and_grad(d_scalar, has_aux=True)(dp)
    updates, ds = d_opt.update(d_grads, ds, dp)
    dp = optax.apply_updates(dp, updates)

    def g_objective(p):
      return g_loss_fn(d_apply(dp, g_apply(p, z)))

    g_grads = jax.grad(g_objective)(gp)
    updates, gs = g_opt.update(g_grads, gs, gp)
    gp = optax.apply_updates(gp, updates)
    return (dp, gp, ds, gs), (d_value, jnp.mean(terms[:batch]), jnp.mean(terms[batch:]))

  @jax.jit
  def run(dp, gp, keys):
    carry = (dp, gp, d_opt.init(dp), g_opt.init(gp))
    (dp, gp, _, _), trace = jax.lax.scan(step, carry, keys)
    return dp, gp, trace

  keys = jax.random.split(jax.random.key(seed + 1), steps)
  d_params, g_params, trace = run(d_params, g_params, keys)
  z = jax.random.normal(jax.random.key(seed + 2), (4096,), jnp.float32)
  samples = g_apply(g_params, z)
  return [np.asarray(t) for t in trace], np.asarray(samples)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/gan_equilibrium", help="output folder")
  parser.add_argument("--fast", action="store_true", help="1500 steps instead of 3000 (smoke test)")
  parser.add_argument("--steps", type=int, default=None, help="training steps per game")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  workdir = pathlib.Path(args.workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  steps = args.steps or (1500 if args.fast else 3000)
  batch = 256
  window = max(steps // 5, 1)

  results = {}
  summary = {"steps": steps, "window": window}
  fig, axes = plt.subplots(1, len(GAMES) + 1, figsize=(5 * (len(GAMES) + 1), 4))
  for i, (name, (d_loss_fn, g_loss_fn, per_term, key)) in enumerate(GAMES.items()):
    (total, real_term, fake_term), samples = train(d_loss_fn, g_loss_fn, steps=steps, batch=batch, seed=args.seed)
    measured = float(np.mean(total[-window:]))
    res = {
        "measured": measured,
        "theory": 2 * per_term,
        "real_term": float(np.mean(real_term[-window:])),
        "fake_term": float(np.mean(fake_term[-window:])),
        "theory_per_term": per_term,
        "generator_mean": float(samples.mean()),
        "generator_std": float(samples.std()),
    }
    results[name] = res
    summary[f"{key}_discriminator_per_term"] = (res["real_term"] + res["fake_term"]) / 2
    summary[f"{key}_theory_per_term"] = per_term
    summary[f"{key}_discriminator_loss"] = measured
    print(f"{name:14s}: discriminator loss over the last {window} steps {measured:.4f} (theory {2 * per_term:.4f});"
          f" per term real {res['real_term']:.4f} / fake {res['fake_term']:.4f} (theory {per_term:.4f});"
          f" generator N({res['generator_mean']:.3f}, {res['generator_std']:.3f}^2) vs data"
          f" N({DATA_MEAN}, {DATA_STD}^2)")
    ax = axes[i]
    ax.plot(total, lw=0.6, label="discriminator loss")
    ax.axhline(2 * per_term, color="k", ls="--", label=f"theory {2 * per_term:.3f}")
    ax.set(title=name, xlabel="step", ylim=(0, 4 * per_term))
    ax.legend()
    axes[-1].hist(samples, bins=60, density=True, histtype="step", label=f"generator ({name})")
  xs = np.linspace(0, 4, 200)
  axes[-1].plot(xs, np.exp(-0.5 * ((xs - DATA_MEAN) / DATA_STD) ** 2) / (DATA_STD * math.sqrt(2 * math.pi)),
               "k--", label="data")
  axes[-1].set(title="samples after training", xlabel="x")
  axes[-1].legend(fontsize=8)
  fig.tight_layout()
  out = workdir / "gan_equilibrium.png"
  fig.savefig(out, dpi=90)
  plt.close(fig)
  summary["games"] = results
  (workdir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
  print("per term over the last steps: " + ", ".join(
      f"{key} {summary[f'{key}_discriminator_per_term']:.4f} (theory {summary[f'{key}_theory_per_term']:.4f})"
      for *_, key in GAMES.values()))
  print(f"wrote {out} and {workdir / 'metrics.json'}")
  results = dict(results, **{k: v for k, v in summary.items() if k != "games"})
  results["figure"] = str(out)
  return results


if __name__ == "__main__":
  main()
