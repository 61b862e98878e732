"""Binary cross-entropy against a soft target: minimum H(y) at p = y, not 0.

For a soft label y in (0, 1), BCE(p, y) = -y log p - (1 - y) log(1 - p) is
minimized at p = y, where its derivative -y/p + (1 - y)/(1 - p) vanishes, and
its minimum value is the label's binary entropy H(y) (y = 0.8: 0.5004024235
nats), not 0. ``jaxloss.binary_kl_divergence`` is the same curve shifted down
by H(y): it reaches exactly 0 at p = y and has the same gradient.

Run:  python examples/soft_targets.py [--workdir DIR] [--fast]
Writes DIR/soft_targets.png and prints the numbers.
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import jaxloss  # noqa: E402

TARGETS = (0.1, 0.3, 0.5, 0.8, 0.95)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/soft_targets", help="output folder")
  parser.add_argument("--fast", action="store_true", help="coarse grid (smoke test)")
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  workdir = pathlib.Path(args.workdir)
  workdir.mkdir(parents=True, exist_ok=True)

  n = 201 if args.fast else 4001
  p = jnp.linspace(0.0, 1.0, n)[1:-1]  # open interval (0, 1)

  def bce(probs, y):
    return jaxloss.binary_cross_entropy(probs, jnp.full_like(probs, y), reduction="none")

  def kl(probs, y):
    return jaxloss.binary_kl_divergence(probs, jnp.full_like(probs, y), reduction="none")

  curves = {y: (bce(p, y), kl(p, y)) for y in TARGETS}

  # the seed case y = 0.8, evaluated exactly at p = y
  y = 0.8
  at = jnp.array([y])
  bce_at = float(bce(at, y)[0])
  entropy = float(jaxloss.binary_entropy(at, reduction="none")[0])
  grad_at = float(jax.grad(lambda q: jaxloss.binary_cross_entropy(q, jnp.full_like(q, y), reduction="sum"))(at)[0])
  kl_grad_at = float(jax.grad(lambda q: jaxloss.binary_kl_divergence(q, jnp.full_like(q, y), reduction="sum"))(at)[0])
  kl_at = float(kl(at, y)[0])
  b08, k08 = curves[y]
  grid_argmin = float(p[jnp.argmin(b08)])
  shift_error = max(float(jnp.max(jnp.abs(b - k - jaxloss.binary_entropy(jnp.full((1,), t), reduction="none")[0])))
                    for t, (b, k) in curves.items())

  print(f"y = {y}: BCE(p = y) = {bce_at:.10f} nats, H(y) = {entropy:.10f} nats (theory 0.5004024235)")
  print(f"  grid argmin of BCE: p = {grid_argmin:.4f} (theory {y})")
  print(f"  dBCE/dp at p = y: {grad_at:.2e} (theory -y/p + (1-y)/(1-p) = 0)")
  print(f"  binary_kl_divergence at p = y: {kl_at:.2e} (theory 0), its gradient {kl_grad_at:.2e}")
  print(f"  max |BCE - KL - H(y)| over the grid and {len(TARGETS)} targets: {shift_error:.2e}")

  fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
  for t, (b, k) in curves.items():
    (line,) = axes[0].plot(p, b, label=f"y = {t}")
    axes[0].plot([t], [float(bce(jnp.array([t]), t)[0])], "o", color=line.get_color())
    axes[1].plot(p, k, color=line.get_color(), label=f"y = {t}")
  axes[0].set(title="binary_cross_entropy(p, y): minimum H(y) at p = y", xlabel="prediction p", ylabel="nats",
              ylim=(0, 3))
  axes[1].set(title="binary_kl_divergence(p, y) = BCE - H(y): minimum 0", xlabel="prediction p", ylim=(0, 3))
  axes[0].legend()
  fig.tight_layout()
  out = workdir / "soft_targets.png"
  fig.savefig(out, dpi=100)
  plt.close(fig)
  print(f"wrote {out}")
  return {"bce_at_target": bce_at, "entropy": entropy, "grad_at_target": grad_at, "kl_at_target": kl_at,
          "kl_grad_at_target": kl_grad_at, "grid_argmin": grid_argmin, "shift_error": shift_error,
          "figure": str(out)}


if __name__ == "__main__":
  main()
