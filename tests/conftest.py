"""Test configuration: float64 on, strict dtype promotion inside every test, Keras (a peer) on the JAX backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras (else it looks for TensorFlow)

import jax  # noqa: E402
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def _strict_dtype_promotion():
  with jax.numpy_dtype_promotion("strict"):
    yield


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "runtime_checks: run the test inside jaxloss.runtime_checks() (checkify errors opt-in)")


@pytest.fixture(autouse=True)
def _runtime_checks_marker(request):
  """Tests marked ``runtime_checks`` run with jaxloss's opt-in checkify checks on; all others with the default (off)."""
  import jaxloss  # pylint: disable=g-import-not-at-top

  with jaxloss.runtime_checks(request.node.get_closest_marker("runtime_checks") is not None):
    yield
