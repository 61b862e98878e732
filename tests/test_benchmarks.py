"""Smoke tests of the benchmark scripts (no timing is asserted, ever).

They run the scripts in-process at tiny shapes and check what they write:
fragments with a parseable header, JSON records, ratios present where a peer
exists, and that ``make_results.py`` assembles (and refuses) fragments.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import jaxloss

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import _harness as H  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import bench  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import ce_bandwidth  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import make_results  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import verify_device  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(autouse=True)
def _default_promotion():
  """The scripts run as users run them: standard dtype promotion, x64 off is not required."""
  import jax  # pylint: disable=g-import-not-at-top

  with jax.numpy_dtype_promotion("standard"):
    yield


def _two_losses():
  with_peer = [n for n, s in jaxloss.REGISTRY.items() if s.optax_peer is not None]
  names = with_peer[:1] + [n for n in jaxloss.REGISTRY if n not in with_peer[:1]][:1]
  assert names, "the registry is empty"
  return names


def test_bench_quick_writes_fragment_and_json(tmp_path):
  names = _two_losses()
  out, js = tmp_path / "cpu.md", tmp_path / "b.json"
  rc = bench.main(["--quick", "--names", ",".join(names), "--out", str(out), "--json", str(js)])
  assert rc == 0
  text = out.read_text()
  meta = H.parse_fragment_meta(text)
  assert meta is not None and all(meta.get(k) for k in H.REQUIRED_META)
  assert meta["platform"] == "cpu"
  payload = json.loads(js.read_text())
  recs = {r["loss"]: r for r in payload["records"]}
  assert set(recs) == set(names)
  for name in names:
    rec = recs[name]
    assert not rec["errors"], rec["errors"]
    spec = jaxloss.REGISTRY[name]
    expected = {"jaxloss/value", "jaxloss/value_and_grad"}
    if spec.optax_peer is not None:
      expected |= {"optax/value", "optax/value_and_grad"}
    if spec.naive is not None:
      expected |= {"naive/value", "naive/value_and_grad"}
    assert set(rec["timings"]) == expected
    for t in rec["timings"].values():
      assert t["median_s"] > 0 and t["compile_s"] > 0
    assert f"| {name} |" in text
    # the peers compute the same mean as jaxloss (the comparison is meaningful)
    for peer in ("optax", "naive"):
      if f"value_rel_diff_{peer}" in rec:
        assert rec[f"value_rel_diff_{peer}"] < 1e-3, (name, peer, rec["values"])


def test_verify_device_writes_fragment_and_flags_a_wrong_gradient(tmp_path, monkeypatch):
  out = tmp_path / "verify_cpu.md"
  rc = verify_device.main(["squared_error", "huber_loss", "--dtypes", "f32,f64", "--jobs", "1", "--out", str(out)])
  assert rc == 0
  text = out.read_text()
  meta = H.parse_fragment_meta(text)
  assert meta is not None and meta["platform"] == "cpu" and all(meta.get(k) for k in H.REQUIRED_META)
  assert "every check passed" in text and "| `squared_error` | ok" in text and "| FAIL" not in text
  # a wrong closed form shows up as FAIL in its cells and as a listed row, and the exit status is 1
  import dataclasses  # pylint: disable=g-import-not-at-top

  from jaxloss import _registry  # pylint: disable=g-import-not-at-top
  spec = jaxloss.REGISTRY["squared_error"]
  wrong = dataclasses.replace(spec, grads={0: lambda p, t: 2.01 * (p - t), 1: spec.grads[1]})
  monkeypatch.setattr(_registry, "REGISTRY", {**_registry.REGISTRY, "squared_error": wrong})
  rc = verify_device.main(["squared_error", "--dtypes", "f64", "--jobs", "1", "--out", str(out)])
  text = out.read_text()
  assert rc == 1 and "| `squared_error` | FAIL" in text and "Failing rows:" in text


def test_train_step_small_compares_the_same_objective(tmp_path):
  import train_step  # pylint: disable=g-import-not-at-top

  names = [n for n in ("softmax_cross_entropy_with_integer_labels", "binary_cross_entropy") if n in jaxloss.REGISTRY]
  out, js = tmp_path / "ts.md", tmp_path / "ts.json"
  rc = train_step.main(["--names", *names, "--sizes", "small", "--repeats", "2", "--warmup", "1",
                        "--min-sample-s", "0.0005", "--out", str(out), "--json", str(js)])
  assert rc == 0
  meta = H.parse_fragment_meta(out.read_text())
  assert meta is not None and meta["platform"] == "cpu" and all(meta.get(k) for k in H.REQUIRED_META)
  recs = {r["loss"]: r for r in json.loads(js.read_text())["records"]}
  assert set(recs) == set(names)
  for name, rec in recs.items():
    assert "error" not in rec, rec
    peer = rec["peer"]
    # the two steps minimize the same objective: the same loss value at the same parameters
    np.testing.assert_allclose(rec["value/jaxloss"], rec[f"value/{peer}"], rtol=1e-5)
    assert rec["effects/jaxloss"] is False
    assert rec["ratio"] > 0


def test_bench_rejects_unknown_name():
  with pytest.raises(SystemExit):
    bench.main(["--quick", "--names", "no_such_loss"])


def test_tiling_keeps_arguments_consistent():
  spec = jaxloss.REGISTRY[_two_losses()[0]]
  import jax  # pylint: disable=g-import-not-at-top

  base = spec.sample(jax.random.PRNGKey(0), np.float32)
  tiled = bench._tile(base, 10 * np.size(base[0]))  # pylint: disable=protected-access
  for a, b in zip(base, tiled):
    if np.ndim(a) >= 1:
      assert np.shape(b)[0] == 10 * np.shape(a)[0] and np.shape(b)[1:] == np.shape(a)[1:]
      np.testing.assert_array_equal(np.asarray(b)[: np.shape(a)[0]], np.asarray(a))
  assert bench.target_shape((4, 3), 1000, rowwise=True, classes=10) == (100, 10)
  assert bench.target_shape((4, 3), 1200, rowwise=False, classes=10) == (400, 3)


def test_ce_bandwidth_tiny_shape(tmp_path):
  out, js = tmp_path / "ce.md", tmp_path / "ce.json"
  rc = ce_bandwidth.main(["--shape", "16,64", "--dtypes", "bfloat16", "--options", "label_smoothing", "--repeats", "2", "--warmup", "1", "--min-sample-s", "0.0005",
                          "--out", str(out), "--json", str(js)])
  assert rc == 0
  payload = json.loads(js.read_text())
  cands = {(r["dtype"], r["candidate"]) for r in payload["bandwidth"]}
  for d in ("bfloat16",):  # float32 is covered by the accuracy table and by the CPU fragment
    assert {(d, "copy (-x)"), (d, "optax"), (d, "naive logsumexp")} <= cands
    if ce_bandwidth.jaxloss_ce() is not None:
      assert (d, "jaxloss") in cands
      assert (d, "jaxloss, label_smoothing=0.1") in cands
      assert not any(c.startswith("jaxloss, where") for _, c in cands)
  for r in payload["bandwidth"]:
    if r["candidate"] == "copy (-x)":
      assert r["fraction_of_copy_limit"] == pytest.approx(1.0)
  # accuracy table: the float64 reference is right, and optax's known failure shows
  acc = {(r["case"], r["candidate"]): r for r in payload["accuracy"]}
  r = acc[("[1000, 990] float32, label 0", "optax")]
  assert r["reference"] == pytest.approx(np.log1p(np.exp(-10.0)), rel=1e-14)
  assert r["rel_error"] > 0.1  # optax rounds 1000 + 4.5e-5 to a multiple of the f32 ulp of 1000
  assert acc[("[100, 95] bfloat16, label 0", "optax")]["loss"] == 0.0
  assert "Accuracy on confident rows" in out.read_text()


def test_reference_ce_against_direct_float64():
  x = np.array([0.3, -1.2, 2.0, 0.5])
  for y in range(4):
    loss, grad = ce_bandwidth.reference_ce(x, y)
    lse = np.log(np.sum(np.exp(x)))
    assert loss == pytest.approx(lse - x[y], rel=1e-13)
    p = np.exp(x - lse)
    np.testing.assert_allclose(grad, p - np.eye(4)[y], rtol=1e-12, atol=1e-15)


def _write(path, title, platform, script, body="body"):
  env = {"device": f"dev-{platform}", "platform": platform, "jax": "0.0", "date": "2026-01-01 00:00 UTC"}
  H.write_fragment(path, H.fragment(title, body, env, script=script))


def test_make_results_assembles_orders_and_checks(tmp_path):
  res = tmp_path / "results"
  _write(res / "z_gpu.md", "Bench GPU", "gpu", "benchmarks/bench.py --sizes large", "GPU TABLE")
  _write(res / "a_cpu.md", "Bench CPU", "cpu", "benchmarks/bench.py", "CPU TABLE")
  _write(res / "ce.md", "CE CPU", "cpu", "benchmarks/ce_bandwidth.py --shape 8,8", "CE TABLE")
  out = tmp_path / "RESULTS.md"
  assert make_results.main(["--results-dir", str(res), "--output", str(out)]) == 0
  text = out.read_text()
  assert text.index("CPU TABLE") < text.index("GPU TABLE") < text.index("CE TABLE")
  assert "dev-gpu" in text and "Do not edit by hand" in text
  assert "`ce_bandwidth.py` on GPU: not measured yet" in text
  assert "`bench.py` on GPU" not in text
  assert make_results.main(["--results-dir", str(res), "--output", str(out), "--check"]) == 0
  out.write_text(text.replace("CPU TABLE", "CPU TABLE (edited)"))
  assert make_results.main(["--results-dir", str(res), "--output", str(out), "--check"]) == 1


def test_make_results_refuses_headerless_fragment(tmp_path):
  res = tmp_path / "results"
  res.mkdir()
  (res / "hand.md").write_text("| a | b |\n| 1 | 2 |\n")
  assert make_results.main(["--results-dir", str(res), "--output", str(tmp_path / "R.md")]) == 2
  assert not (tmp_path / "R.md").exists()


def test_committed_results_md_is_generated():
  """benchmarks/RESULTS.md is exactly what make_results.py writes from the committed fragments."""
  if not os.path.exists(os.path.join(BENCH_DIR, "RESULTS.md")):
    pytest.skip("no RESULTS.md yet")
  assert make_results.main(["--check"]) == 0


def test_hlo_summary_counts_ops():
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  x = jnp.ones((8, 5), jnp.float32)
  one = H.hlo_summary(H.compile_fn(lambda a: jnp.sum(jnp.exp(a)), x))
  two = H.hlo_summary(H.compile_fn(lambda a: jnp.sum(jnp.exp(a)) + jnp.max(jnp.log(a + 2.0)), x))
  assert one["transcendental"] >= 1 and one["reduce"] >= 1
  assert two["transcendental"] > one["transcendental"] and two["reduce"] > one["reduce"]
  del jax


def test_verify_time_counts_groups(capsys):
  import verify_time  # pylint: disable=g-import-not-at-top

  assert verify_time.main(["--groups", "--names", "huber_loss", "dice_loss"]) == 0
  out = capsys.readouterr().out
  # huber_loss: 3 configs, each flattened to one group. dice_loss: 4 configs; the default one has the
  # [3, 4, 5] sample and [2, 3], [2, 3], [1, 3] edges (the [1, 3] rows repeated to [2, 3]): 2 groups; smooth=0
  # has the sample and a [2, 3] edge: 2; the two axis configs the sample alone: 1 + 1.
  counts = verify_time.count_groups(["huber_loss", "dice_loss"])
  assert (counts["tasks"], counts["groups"], counts["edge-only groups"]) == (3 + 4, 3 + 6, 2)
  assert f"| groups | {counts['groups']} |" in out
