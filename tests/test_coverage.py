"""docs/coverage.md stays true: generated from docs/gen_coverage.py, its peer lists match the installed peers,
and every jaxloss equivalent it names exists."""

import importlib
import importlib.util
import inspect
import pathlib
import re

import pytest

import jaxloss

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load_gen_coverage():
  spec = importlib.util.spec_from_file_location("gen_coverage", ROOT / "docs" / "gen_coverage.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


GEN = _load_gen_coverage()


def _listed(library):
  return sorted(p.name for p in GEN.PEERS if p.library == library)


def test_committed_coverage_is_generated():
  committed = (ROOT / "docs" / "coverage.md").read_text()
  assert committed == GEN.coverage_markdown(), "stale docs/coverage.md: run `python docs/gen_coverage.py --write`"


def test_every_peer_has_an_equivalent_or_a_reason_and_appears_once():
  keys = [(p.library, p.name) for p in GEN.PEERS]
  assert len(keys) == len(set(keys)), "a peer loss is listed twice"
  for p in GEN.PEERS:
    assert p.library in GEN.LIBRARIES
    if p.equivalent is None:
      assert len(p.reason.split()) >= 5, f"{p.library} {p.name}: no equivalent and no reason in words"
    assert "|" not in p.reason and "\n" not in p.reason, p.name


def test_every_equivalent_is_an_attribute_of_jaxloss():
  """Checks every name the table calls (jaxloss.X, jaxloss.compat.torch.Y, ...); the failure lists the missing ones.

  The names added in parallel by other branches (issue 15: dice_loss, ctc_loss, ...) exist only after the merge.
  """
  missing: dict[str, list[str]] = {}
  for p in GEN.PEERS:
    for path in _named_calls(p):
      _check_attribute(path, p, missing)
  assert not missing, f"{len(missing)} equivalents named in docs/coverage.md are not in jaxloss: " + "; ".join(
      f"{name} (for {', '.join(peers)})" for name, peers in sorted(missing.items()))


def _named_calls(p):
  """The equivalent's dotted name, and the native losses its reason names (``native: `a`, `b(...)` ``)."""
  names = [GEN.attribute_path(p.equivalent)] if p.equivalent else []
  native = re.search(r"native: ((?:`[^`]+`(?: \([^)]*\))?(?:, )?)+)", p.reason)
  if native:
    listed = re.sub(r" \([^)]*\)", "", native.group(1))  # drop "(`from_logits=True`)"-style notes
    names += [GEN.attribute_path(n) for n in re.findall(r"`([^`]+)`", listed)]
  return names


def _check_attribute(path, p, missing):
  obj = jaxloss
  for part in path.split("."):
    obj = getattr(obj, part, None)
    if obj is None:
      break
  if obj is None or not callable(obj):
    missing.setdefault(f"jaxloss.{path}", []).append(f"{p.library} {p.name}")


def test_attribute_path_of_a_call():
  assert GEN.attribute_path("compat.torch.nll_loss") == "compat.torch.nll_loss"
  assert GEN.attribute_path("hinge_loss(s, 2 * y - 1)") == "hinge_loss"
  keras_bce = next(p for p in GEN.PEERS if p.library == "keras" and p.name == "binary_crossentropy")
  assert _named_calls(keras_bce) == ["compat.keras.binary_crossentropy", "binary_cross_entropy",
                                     "sigmoid_binary_cross_entropy"]


# --------------------------------------------------------------------------
# the data lists against the installed peers (skipped where a peer is missing)
# --------------------------------------------------------------------------
def test_optax_list_is_what_optax_losses_exposes():
  optax = pytest.importorskip("optax")
  exposed = sorted(n for n in dir(optax.losses) if not n.startswith("_") and callable(getattr(optax.losses, n)))
  assert _listed("optax") == exposed, f"optax {optax.__version__}: update PEERS in docs/gen_coverage.py"


def test_keras_list_is_what_keras_losses_exposes():
  pytest.importorskip("keras")
  losses = importlib.import_module("keras.losses")
  exposed = sorted(n for n in dir(losses) if not n.startswith("_") and inspect.isfunction(getattr(losses, n))
                   and n not in GEN.KERAS_NOT_LOSSES)
  assert _listed("keras") == exposed, "installed Keras differs: update PEERS in docs/gen_coverage.py"


def test_torch_list_is_what_torch_nn_exposes():
  torch = pytest.importorskip("torch")
  exposed = sorted(n for n in dir(torch.nn) if "Loss" in n and inspect.isclass(getattr(torch.nn, n)))
  assert _listed("torch") == exposed, f"torch {torch.__version__}: update PEERS in docs/gen_coverage.py"
