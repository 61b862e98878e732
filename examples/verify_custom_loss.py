"""Verify your own loss and its hand-derived derivative with jaxloss.verify.

The loss: logistic loss on logits, ``l(z, y) = softplus(z) - y z`` (binary
cross-entropy with a logit input), written stably with ``logaddexp``. Its
derivative by hand: ``dl/dz = sigmoid(z) - y``; second derivative
``sigmoid(z) (1 - sigmoid(z))``.

The planted mistake: the derivative written as ``exp(z) / (1 + exp(z)) - y``.
It is the same function on paper and agrees with autodiff on every ordinary
input, but at a saturated logit (z = 1000) it is inf / inf = NaN. A check at
random points (``jax.test_util.check_grads``) never sees it; jaxloss.verify
checks the edge points you give it, in every dtype, and reports where.

Run:  python examples/verify_custom_loss.py --workdir /tmp/verify_demo
Writes ``verify_report.json`` (both reports) into the workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import verify


def logistic_loss(z, y):
  """softplus(z) - y z, elementwise (stable for any z)."""
  return jnp.logaddexp(jnp.zeros((), z.dtype), z) - y.astype(z.dtype) * z


def logistic_grad_buggy(z, y):
  e = jnp.exp(z)
  return e / (1.0 + e) - y  # inf / inf = NaN once exp(z) overflows


def logistic_grad(z, y):
  return jax.nn.sigmoid(z) - y  # 1 / (1 + exp(-z)): no overflow


def logistic_hessian(z, y):
  del y
  s = jax.nn.sigmoid(z)
  return jnp.diag(s * (1.0 - s))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="verify_demo", help="where to write verify_report.json")
  args = parser.parse_args(argv)
  os.makedirs(args.workdir, exist_ok=True)

  z = np.array([-2.0, -0.3, 0.0, 0.7, 3.0])
  y = np.array([0.0, 1.0, 0.5, 1.0, 0.2])
  edges = [(np.array([1000.0, -1000.0, 40.0, -40.0]), np.array([1.0, 0.0, 0.3, 0.7]))]
  dtypes = ["bf16", "f16", "f32", "f64"]

  buggy = verify.check_gradient(logistic_loss, logistic_grad_buggy, (z, y), points=edges, dtypes=dtypes,
                                arg_names=("logits", "labels"), name="logistic_loss (buggy derivative)")
  fixed = verify.check_gradient(logistic_loss, logistic_grad, (z, y), points=edges, dtypes=dtypes,
                                arg_names=("logits", "labels"), name="logistic_loss (corrected)")
  # The Hessian on ordinary inputs. (At |z| = 40 jax's autodiff of logaddexp
  # loses the second derivative, ~4e-18, to cancellation, and verify says so.)
  hess = verify.check_hessian(logistic_loss, logistic_hessian, (z, y), dtypes=dtypes,
                              arg_names=("logits", "labels"), name="logistic_loss Hessian")
  print(buggy.table(buggy.failures))
  if not buggy.ok:
    worst = buggy.failures[0]
    print(f"\nplanted mistake found: {worst.check} in {worst.dtype} at {worst.worst}\n")
  print(fixed)
  print(hess)
  path = os.path.join(args.workdir, "verify_report.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"buggy": buggy.to_dict(), "fixed": fixed.to_dict(), "hessian": hess.to_dict()}, f, indent=1)
  print(f"\nreports written to {path}")
  return 0 if (not buggy.ok and fixed.ok and hess.ok) else 1


if __name__ == "__main__":
  sys.exit(main())
