"""Loss landscapes: CE vs MSE against the output, through a sigmoid, and in softmax logits.

1. Against the output p for a target 0.8, both normalized to minimum 0:
   cross-entropy (binary_kl_divergence = BCE - H(0.8)) is asymmetric and
   unbounded towards the wrong end; squared error is symmetric and bounded.
2. Through a sigmoid p = sigma(z) with target 1: the gradient of squared error
   with respect to z is 2 (p - 1) p (1 - p), which vanishes when the sigmoid
   saturates on the wrong side (z -> -inf); sigmoid BCE's gradient is p - 1
   -> -1, so a confidently wrong unit still learns.
3. In the logits of a 3-class softmax (one-hot target): softmax cross-entropy
   is convex (Hessian diag(p) - p p^T, eigenvalues >= 0 everywhere), squared
   error on the softmax outputs is not (negative Hessian eigenvalues on part
   of the grid). The Hessians are evaluated numerically (jax.hessian) on a grid
   of (z0, z1) with z2 = 0, restricted to the plane orthogonal to (1, 1, 1)
   (the shift along which softmax, hence both losses, is constant).

Run:  python examples/loss_landscape.py [--workdir DIR] [--fast]
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


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/loss_landscape", help="output folder")
  parser.add_argument("--fast", action="store_true", help="coarse grids (smoke test)")
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  workdir = pathlib.Path(args.workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  r = {}

  # 1. loss against the output, target 0.8
  y = 0.8
  p = jnp.linspace(0.0, 1.0, 201 if args.fast else 2001)[1:-1]
  full = jnp.full_like(p, y)
  ce = jaxloss.binary_kl_divergence(p, full, reduction="none")  # BCE - H(y): minimum 0 at p = y
  mse = jaxloss.squared_error(p, full, reduction="none")
  d = 0.15
  pts = jnp.array([y - d, y + d])
  ce_pts = jaxloss.binary_kl_divergence(pts, jnp.full_like(pts, y), reduction="none")
  mse_pts = jaxloss.squared_error(pts, jnp.full_like(pts, y), reduction="none")
  r["ce_below"], r["ce_above"] = float(ce_pts[0]), float(ce_pts[1])
  r["mse_below"], r["mse_above"] = float(mse_pts[0]), float(mse_pts[1])
  print(f"target 0.8, output 0.8 -/+ 0.15: CE (min 0) {r['ce_below']:.4f} / {r['ce_above']:.4f} (asymmetric),"
        f" MSE {r['mse_below']:.4f} / {r['mse_above']:.4f} (symmetric)")

  # 2. sigmoid saturation, target 1
  z = jnp.linspace(-10.0, 10.0, 81 if args.fast else 801)

  def mse_through_sigmoid(zz):
    return jaxloss.squared_error(jax.nn.sigmoid(zz), jnp.ones_like(zz), reduction="sum")

  def bce_on_logits(zz):
    return jaxloss.sigmoid_binary_cross_entropy(zz, jnp.ones_like(zz), reduction="sum")

  g_mse = jax.grad(mse_through_sigmoid)(z)
  g_bce = jax.grad(bce_on_logits)(z)
  r["grad_mse_at_minus10"] = float(g_mse[0])
  r["grad_bce_at_minus10"] = float(g_bce[0])
  print(f"target 1, logit -10 (confidently wrong): d/dz MSE(sigmoid(z)) = {r['grad_mse_at_minus10']:.3e},"
        f" d/dz sigmoid BCE = {r['grad_bce_at_minus10']:.6f}")

  # 3. convexity in softmax logits
  n = 9 if args.fast else 41
  grid = jnp.linspace(-6.0, 6.0, n)
  z0, z1 = jnp.meshgrid(grid, grid, indexing="ij")
  logits = jnp.stack([z0.ravel(), z1.ravel(), jnp.zeros(n * n)], axis=-1)
  target = jnp.array([1.0, 0.0, 0.0])

  def ce_row(zrow):
    return jaxloss.softmax_cross_entropy(zrow, target)

  def mse_row(zrow):
    return jaxloss.squared_error(jax.nn.softmax(zrow), target, reduction="sum")

  # Both losses are constant along (1, 1, 1) (softmax is shift-invariant), so every Hessian has
  # the eigenvalue 0 there; restrict it to the plane orthogonal to (1, 1, 1), the directions that
  # change the prediction.
  basis = jnp.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / jnp.sqrt(jnp.array([[2.0], [6.0]]))

  def min_eig(f):
    hess = jax.jit(jax.vmap(jax.hessian(f)))(logits)
    restricted = jnp.einsum("ai,nij,bj->nab", basis, hess, basis)
    return jnp.linalg.eigvalsh(restricted)[:, 0].reshape(n, n)

  ce_min, mse_min = min_eig(ce_row), min_eig(mse_row)
  r["ce_min_eigenvalue"] = float(jnp.min(ce_min))
  r["mse_min_eigenvalue"] = float(jnp.min(mse_min))
  r["mse_nonconvex_fraction"] = float(jnp.mean(mse_min < -1e-9))
  print(f"3-class softmax, {n}x{n} grid: smallest Hessian eigenvalue CE {r['ce_min_eigenvalue']:.2e} (convex),"
        f" MSE {r['mse_min_eigenvalue']:.4f} (negative on {100 * r['mse_nonconvex_fraction']:.0f}% of the grid)")

  fig, axes = plt.subplots(1, 4, figsize=(18, 4))
  axes[0].plot(p, ce, label="CE (BCE - H(0.8))")
  axes[0].plot(p, mse, label="squared error")
  axes[0].set(title="target 0.8, normalized to minimum 0", xlabel="output p", ylim=(0, 1))
  axes[0].legend()
  axes[1].plot(z, g_mse, label="d/dz MSE(sigmoid(z), 1)")
  axes[1].plot(z, g_bce, label="d/dz sigmoid BCE(z, 1)")
  axes[1].set(title="gradient through a sigmoid, target 1", xlabel="logit z")
  axes[1].legend()
  ext = (-6, 6, -6, 6)
  for ax, m, title in ((axes[2], ce_min, "softmax CE: min Hessian eigenvalue"), (axes[3], mse_min, "MSE on softmax")):
    im = ax.imshow(m.T, origin="lower", extent=ext, cmap="coolwarm", vmin=-0.2, vmax=0.2)
    ax.contour(grid, grid, m.T, levels=[0.0], colors="k")
    ax.set(title=title, xlabel="z0 (true class)", ylabel="z1")
    fig.colorbar(im, ax=ax)
  fig.tight_layout()
  out = workdir / "loss_landscape.png"
  fig.savefig(out, dpi=90)
  plt.close(fig)
  print(f"wrote {out}")
  r["figure"] = str(out)
  return r


if __name__ == "__main__":
  main()
