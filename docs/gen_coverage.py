"""Writes docs/coverage.md: every public loss of optax, Keras 3 and PyTorch, and the jaxloss call that computes it.

``python docs/gen_coverage.py`` prints the table; ``--write`` rewrites docs/coverage.md. The peer lists are data
here (``PEERS``), so regenerating needs neither torch nor keras; ``tests/test_coverage.py`` checks that the
committed file equals the generated one, that every equivalent names a real attribute of ``jaxloss``, and (where
the peers are installed) that ``PEERS`` lists exactly what the installed optax, Keras and PyTorch expose, by the
enumeration rules below, so the table cannot go stale.
"""

from __future__ import annotations

import argparse
import pathlib
import re
from typing import NamedTuple

COVERAGE = pathlib.Path(__file__).resolve().parent / "coverage.md"

VERSIONS = {"optax": "0.2.8", "keras": "3.15", "torch": "2.13"}
LIBRARIES = {"optax": "optax", "keras": "Keras", "torch": "PyTorch"}
PREFIX = {"optax": "optax.losses.", "keras": "keras.losses.", "torch": "torch.nn."}

# Enumeration rules (what tests/test_coverage.py compares PEERS with):
# * optax: every public callable of ``optax.losses``;
# * Keras: every function of ``keras.losses`` except the (de)serialization helpers below;
# * PyTorch: every class of ``torch.nn`` whose name contains "Loss".
KERAS_NOT_LOSSES = ("deserialize", "get", "serialize")


class Peer(NamedTuple):
  library: str  # "optax" | "keras" | "torch"
  name: str  # the peer's public name
  equivalent: str | None  # a call on jaxloss (``dice_loss``, ``compat.torch.nll_loss``, ``f(x, g(y))``) or None
  reason: str  # why there is none; otherwise how the call maps onto the peer (may be empty)


_SAME = ""  # same definition and arguments (up to jaxloss's default mean reduction)

PEERS: tuple[Peer, ...] = (
    # ------------------------------------------------------------------ optax 0.2.8, optax.losses
    Peer("optax", "binary_dice_loss", "dice_loss",
         "binary Dice is soft Dice on sigmoid probabilities (optax applies the sigmoid itself, `apply_sigmoid=True`)"),
    Peer("optax", "convex_kl_divergence", "generalized_kl_divergence",
         "optax's deprecated alias of `generalized_kl_divergence`"),
    Peer("optax", "cosine_distance", "cosine_distance", "jaxloss adds an explicit zero-vector rule"),
    Peer("optax", "cosine_similarity", "cosine_similarity", _SAME),
    Peer("optax", "ctc_loss", "ctc_loss", "optax's argument order and shapes; never negative (optax#1771)"),
    Peer("optax", "ctc_loss_with_forward_probs", "ctc_loss",
         "the loss only: the forward (alpha) table optax also returns stays internal"),
    Peer("optax", "dice_loss", "dice_loss", _SAME),
    Peer("optax", "generalized_kl_divergence", "generalized_kl_divergence", _SAME),
    Peer("optax", "hinge_loss", "hinge_loss", "labels in {-1, +1}"),
    Peer("optax", "huber_loss", "huber_loss", _SAME),
    Peer("optax", "kl_divergence", "kl_divergence", "log-predictions, probability targets, as in optax"),
    Peer("optax", "kl_divergence_with_log_targets", "kl_divergence_with_log_targets", _SAME),
    Peer("optax", "l2_loss", "l2_loss", "½(p − y)²; `targets=None` means zeros, as in optax"),
    Peer("optax", "log_cosh", "log_cosh", _SAME),
    Peer("optax", "make_fenchel_young_loss", None,
         "not a loss: a constructor that turns a user's max-function into a Fenchel-Young loss; its instances "
         "for softmax and sparsemax are `softmax_cross_entropy` and `multiclass_sparsemax_loss`"),
    Peer("optax", "multiclass_generalized_dice_loss", "multiclass_generalized_dice_loss", _SAME),
    Peer("optax", "multiclass_hinge_loss", "multiclass_hinge_loss", _SAME),
    Peer("optax", "multiclass_perceptron_loss", "multiclass_perceptron_loss", _SAME),
    Peer("optax", "multiclass_sparsemax_loss", "multiclass_sparsemax_loss", _SAME),
    Peer("optax", "ntxent", "ntxent", _SAME),
    Peer("optax", "perceptron_loss", "perceptron_loss", _SAME),
    Peer("optax", "poly_loss_cross_entropy", "poly_loss_cross_entropy", _SAME),
    Peer("optax", "ranking_softmax_loss", "softmax_cross_entropy",
         "its definition, −Σᵢ yᵢ log softmax(s)ᵢ on unnormalized relevance labels (times `weights`); "
         "optax's `where` is a `-inf` logit on the excluded items"),
    Peer("optax", "safe_softmax_cross_entropy", "softmax_cross_entropy",
         "jaxloss's softmax cross-entropy is already safe on `-inf` (masked) logits: finite value, zero gradient"),
    Peer("optax", "sigmoid_binary_cross_entropy", "sigmoid_binary_cross_entropy", _SAME),
    Peer("optax", "sigmoid_focal_loss", "sigmoid_focal_loss", _SAME),
    Peer("optax", "smooth_labels", None,
         "not a loss: a label transform; the cross-entropies' `label_smoothing=` option applies it"),
    Peer("optax", "softmax_cross_entropy", "softmax_cross_entropy", _SAME),
    Peer("optax", "softmax_cross_entropy_with_integer_labels", "softmax_cross_entropy_with_integer_labels", _SAME),
    Peer("optax", "sparsemax_loss", "sparsemax_loss", _SAME),
    Peer("optax", "squared_error", "squared_error", _SAME),
    Peer("optax", "triplet_margin_loss", "triplet_margin_loss", _SAME),
    # ------------------------------------------------------------------ Keras 3.15, keras.losses functions
    Peer("keras", "binary_crossentropy", "compat.keras.binary_crossentropy",
         "Keras-exact (probabilities clipped to [1e-7, 1 − 1e-7]); native: `binary_cross_entropy`, "
         "`sigmoid_binary_cross_entropy` (`from_logits=True`)"),
    Peer("keras", "binary_focal_crossentropy", "sigmoid_focal_loss",
         "on logits (`from_logits=True`); Keras means over the last axis and weighs by alpha only with "
         "`apply_class_balancing=True` (`alpha=None` here otherwise)"),
    Peer("keras", "categorical_crossentropy", "compat.keras.categorical_crossentropy",
         "Keras-exact (normalizes `y_pred`, then clips); native: `categorical_cross_entropy`, "
         "`softmax_cross_entropy` (`from_logits=True`)"),
    Peer("keras", "categorical_focal_crossentropy", "softmax_focal_loss", _SAME),
    Peer("keras", "categorical_generalized_cross_entropy", "generalized_cross_entropy",
         "(1 − p_y^q) / q (Zhang and Sabuncu, 2018)"),
    Peer("keras", "categorical_hinge", "multiclass_hinge_loss",
         "equal when the best wrong score is ≥ 0; Keras's max over (1 − y)·s counts the true class as a score "
         "of 0, so it is larger when every wrong score is negative (docs/conventions.md)"),
    Peer("keras", "circle", None,
         "not in jaxloss: Circle loss (Sun et al., 2020) over all pairs of a batch of normalized embeddings and "
         "reference embeddings; the batch-pair losses here are `ntxent` and `triplet_margin_loss`"),
    Peer("keras", "cosine_similarity", "cosine_similarity",
         "Keras's loss is the negative: `-cosine_similarity` (= `cosine_distance − 1`)"),
    Peer("keras", "ctc", "ctc_loss",
         "Keras fixes the blank at 0 and reads label lengths from the zeros of `y_true`; build paddings from them"),
    Peer("keras", "dice", "dice_loss",
         "Keras's default `axis=None` pools the whole batch into one Dice (keras#19637); jaxloss is per sample"),
    Peer("keras", "hinge", "hinge_loss(s, 2 * y - 1)",
         "Keras maps 0/1 labels to −1/+1 and means over the last axis"),
    Peer("keras", "huber", "huber_loss", "same definition; Keras means over the last axis"),
    Peer("keras", "kl_divergence", "compat.keras.kl_divergence",
         "Keras-exact (both arguments clipped to [1e-7, 1]); native: `kl_divergence` on log-predictions"),
    Peer("keras", "log_cosh", "log_cosh", "same definition; Keras means over the last axis"),
    Peer("keras", "mean_absolute_error", "compat.keras.mean_absolute_error", "native: `absolute_error`"),
    Peer("keras", "mean_absolute_percentage_error", "compat.keras.mean_absolute_percentage_error",
         "native: `mean_absolute_percentage_error(p, y, epsilon=1e-7)` (both ×100; Keras always floors abs(y) at "
         "1e-7)"),
    Peer("keras", "mean_squared_error", "compat.keras.mean_squared_error", "native: `squared_error`"),
    Peer("keras", "mean_squared_logarithmic_error", "compat.keras.mean_squared_logarithmic_error",
         "native: `mean_squared_logarithmic_error` (no floor at 1e-7: defined above −1)"),
    Peer("keras", "poisson", "compat.keras.poisson",
         "takes the rate and adds 1e-7 in the log; native: `poisson_nll(rate, y, log_input=False)`"),
    Peer("keras", "sparse_categorical_crossentropy", "compat.keras.sparse_categorical_crossentropy",
         "native: `sparse_categorical_cross_entropy` (probabilities), "
         "`softmax_cross_entropy_with_integer_labels` (`from_logits=True`)"),
    Peer("keras", "squared_hinge", "squared_hinge_loss(s, 2 * y - 1)",
         "Keras maps 0/1 labels to −1/+1 and means over the last axis"),
    Peer("keras", "tversky", "tversky_loss",
         "Keras 3.15 swaps alpha and beta (keras PR #23333) and pools the batch by default"),
    # ------------------------------------------------------------------ PyTorch 2.13, torch.nn loss modules
    Peer("torch", "AdaptiveLogSoftmaxWithLoss", None,
         "a module with parameters (a clustered output layer owning its head and tail projections), not a loss "
         "of given inputs; `fused.linear_softmax_cross_entropy` gives the exact softmax CE of a large vocabulary "
         "without its logits"),
    Peer("torch", "BCELoss", "compat.torch.binary_cross_entropy",
         "PyTorch-exact (each log clamped at −100); native: `binary_cross_entropy`"),
    Peer("torch", "BCEWithLogitsLoss", "compat.torch.binary_cross_entropy_with_logits",
         "native: `sigmoid_binary_cross_entropy`"),
    Peer("torch", "CTCLoss", "compat.torch.ctc_loss",
         "PyTorch-exact (`\"mean\"` divides each sequence by its target length); native: `ctc_loss`"),
    Peer("torch", "CosineEmbeddingLoss", "cosine_embedding_loss", _SAME),
    Peer("torch", "CrossEntropyLoss", "compat.torch.cross_entropy",
         "native: `softmax_cross_entropy`, `softmax_cross_entropy_with_integer_labels`"),
    Peer("torch", "GaussianNLLLoss", "compat.torch.gaussian_nll_loss",
         "PyTorch-exact (variance clamped at `eps`); native: `gaussian_nll`"),
    Peer("torch", "HingeEmbeddingLoss", "hinge_embedding_loss", _SAME),
    Peer("torch", "HuberLoss", "compat.torch.huber_loss", "native: `huber_loss`, the same definition"),
    Peer("torch", "KLDivLoss", "compat.torch.kl_div", "native: `kl_divergence` (one value per row)"),
    Peer("torch", "L1Loss", "compat.torch.l1_loss", "native: `absolute_error`"),
    Peer("torch", "LinearCrossEntropyLoss", "fused.linear_softmax_cross_entropy",
         "the module owns its Linear (`weight` `[C, D]`); here the loss of given hidden states and a `[D, V]` "
         "weight"),
    Peer("torch", "MSELoss", "compat.torch.mse_loss", "native: `squared_error`"),
    Peer("torch", "MarginRankingLoss", "margin_ranking_loss", _SAME),
    Peer("torch", "MultiLabelMarginLoss", "multilabel_margin_loss", _SAME),
    Peer("torch", "MultiLabelSoftMarginLoss", "sigmoid_binary_cross_entropy",
         "per sample, the class mean of the sigmoid BCE (`reduction=\"none\"`, then `.mean(-1)`); "
         "PyTorch's `weight` is `weights=`"),
    Peer("torch", "MultiMarginLoss", "multi_margin_loss", "PyTorch's p, margin and class weights"),
    Peer("torch", "NLLLoss", "compat.torch.nll_loss", "native: `nll_loss`"),
    Peer("torch", "NLLLoss2d", "compat.torch.nll_loss", "a deprecated alias of NLLLoss"),
    Peer("torch", "PoissonNLLLoss", "compat.torch.poisson_nll_loss",
         "PyTorch-exact (Stirling's term, `eps`); native: `poisson_nll` (same `log_input=` option)"),
    Peer("torch", "SmoothL1Loss", "compat.torch.smooth_l1_loss", "native: `smooth_l1_loss`, the same definition"),
    Peer("torch", "SoftMarginLoss", "sigmoid_binary_cross_entropy(x, (y + 1) / 2)",
         "log(1 + e^(−y·x)) with y in {−1, +1} is the sigmoid BCE on 0/1 labels"),
    Peer("torch", "TripletMarginLoss", "triplet_margin_loss", "p-norm and swap as in PyTorch"),
    Peer("torch", "TripletMarginWithDistanceLoss", "triplet_margin_loss",
         "the default (Euclidean) distance; a user `distance_function` is a callable: "
         "max(d(a, p) − d(a, n) + margin, 0) in one line"),
)


def attribute_path(equivalent: str) -> str:
  """The dotted name a table entry calls (``compat.torch.nll_loss`` of ``compat.torch.nll_loss(x, y)``)."""
  match = re.match(r"[A-Za-z_][\w.]*", equivalent)
  if match is None:
    raise ValueError(f"not a call on jaxloss: {equivalent!r}")
  return match.group(0)


def _row(peer: Peer) -> str:
  equivalent = f"`jaxloss.{peer.equivalent}`" if peer.equivalent else "—"
  return f"| {LIBRARIES[peer.library]} | `{PREFIX[peer.library]}{peer.name}` | {equivalent} | {peer.reason} |"


def coverage_markdown() -> str:
  n = len(PEERS)
  missing = sum(p.equivalent is None for p in PEERS)
  counts = ", ".join(f"{sum(p.library == lib for p in PEERS)} from {LIBRARIES[lib]} {VERSIONS[lib]}"
                     for lib in LIBRARIES)
  lines = [
      "# Coverage: the losses of optax, Keras and PyTorch in jaxloss",
      "",
      "<!-- generated by `python docs/gen_coverage.py --write`; tests/test_coverage.py fails when it is stale -->",
      "",
      f"One row per public loss of optax {VERSIONS['optax']} `optax.losses` (every public callable), Keras "
      f"{VERSIONS['keras']} `keras.losses` (every function but `{'`, `'.join(KERAS_NOT_LOSSES)}`) and PyTorch "
      f"{VERSIONS['torch']} `torch.nn` (every class named `*Loss*`): {n} rows ({counts}). The equivalent is the "
      f"jaxloss call that computes the peer's loss; {missing} rows have none, and say why. jaxloss reduces to a "
      "mean by default: `reduction=\"none\"` gives the unreduced array the optax functions return. "
      "`compat.keras` / `compat.torch` reproduce the peer exactly (clipping and all); the reason column names "
      "the native loss and what differs, which [conventions.md](conventions.md) details.",
      "",
      "| library | peer loss | jaxloss equivalent | reason |",
      "| --- | --- | --- | --- |",
  ]
  lines += [_row(p) for p in PEERS]
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--write", action="store_true", help="rewrite docs/coverage.md")
  args = parser.parse_args()
  if args.write:
    COVERAGE.write_text(coverage_markdown())
  else:
    print(coverage_markdown(), end="")


if __name__ == "__main__":
  main()
