"""The package builds and installs as users get it: a wheel with py.typed and no tests; a non-editable install imports."""

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  out = tmp_path_factory.mktemp("wheel")
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)], check=True,
                 cwd=out)
  (path,) = out.glob("jaxloss-*.whl")
  return path


def test_wheel_holds_py_typed_and_no_tests(wheel):
  names = zipfile.ZipFile(wheel).namelist()
  assert "jaxloss/py.typed" in names
  assert "jaxloss/compat/torch.py" in names and "jaxloss/verify.py" in names
  assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/", "docs/"))], names


def test_non_editable_install_imports(wheel, tmp_path):
  target = tmp_path / "site"
  subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                 check=True)
  env = dict(os.environ, PYTHONPATH=str(target), JAX_PLATFORMS="cpu")
  code = "import jaxloss, pathlib; print(pathlib.Path(jaxloss.__file__).parent); print(len(jaxloss.REGISTRY))"
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
  location, count = out.stdout.split()
  assert pathlib.Path(location).parent == target
  assert int(count) > 0
