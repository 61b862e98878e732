"""The README stays true: its catalog lists the registry, and CI runs its test command."""

import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load_gen_catalog():
  spec = importlib.util.spec_from_file_location("gen_catalog", ROOT / "docs" / "gen_catalog.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_catalog_table_is_generated_from_registry():
  gen = _load_gen_catalog()
  readme = (ROOT / "README.md").read_text()
  assert gen.render_readme(readme) == readme, "stale catalog: run `python docs/gen_catalog.py --write`"


def test_ci_runs_the_readme_test_block():
  readme = (ROOT / "README.md").read_text()
  blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
  test_block = next(b for b in blocks if "pytest" in b)
  ci = (ROOT / ".ci" / "run").read_text()
  for line in test_block.strip().splitlines():
    assert line in ci.splitlines(), f".ci/run does not run the README line {line!r}"
  # exactly: the block, in order, is what follows .ci/run's marker line
  ci_lines = ci.splitlines()
  start = next(i for i, line in enumerate(ci_lines) if "README Quickstart, block 2" in line) + 1
  block = test_block.strip().splitlines()
  assert ci_lines[start:start + len(block)] == block, ".ci/run and README's test block differ"
  assert "peers" in block[1], "CI must install the peers extra (torch, keras) for tests/test_peers.py"


def test_readme_python_blocks_run(capsys):
  """The README's Python snippets run as written (in order, in one namespace, as a reader pastes them)."""
  readme = (ROOT / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
  assert blocks
  namespace: dict = {}
  for block in blocks:
    exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  out = capsys.readouterr().out
  assert "labels must be class indices in [0, 3)" in out  # the opt-in run-time error example
