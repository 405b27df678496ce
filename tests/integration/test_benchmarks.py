"""The benchmark suite (benchmarks/run.py) in its smoke mode, so it never rots.

Runs in a subprocess: the suite sets up Keras' backend and imports the peer
libraries itself, and must not inherit the tests' strict dtype promotion.
Peers that are not installed are skipped by the suite, so this passes with
only jax, keras and numpy.
"""

import json
import re

import pytest
from integration.scripts import ROOT, load_script
from properties import THOROUGH

BENCHMARKS = ROOT / "benchmarks"
DOCS = ROOT / "docs"

# benchmarks/report.py under a private name (it needs only the stdlib), so
# the benchmark modules stay off sys.path.
report = load_script(BENCHMARKS / "report.py", "_benchmarks_report")

# The smoke run compiles every peer library's rows (about 100 s on two
# cores): it runs with the slow set, which CI runs after the default suite.


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, run_script):
    """(results.json contents, the run's output) of ``run.py --smoke``."""
    out = tmp_path_factory.mktemp("benchmarks")
    stdout = run_script(
        BENCHMARKS / "run.py",
        "--smoke",
        "--out",
        out,
        env={"KERAS_BACKEND": "jax"},
        timeout=900,
    )
    return json.loads((out / "results.json").read_text()), stdout, out


@pytest.mark.slow
def test_smoke_rows_pass_their_check_and_are_timed(smoke):
    results, _stdout, _ = smoke
    rows = results["rows"]
    assert rows
    for row in rows:
        name = f"{row['label']} {row['peer']} {row['mode']}"
        assert row["status"] in ("ok", "skipped"), (name, row["reason"])
        if row["status"] == "ok":
            assert max(row["errors"].values()) <= 1e-4, (name, row["errors"])
            assert row["times_s"] and min(row["times_s"]) > 0, name
            assert 1 <= row["calls_per_sample"] <= 64, name
    # Smoke calls last well under the 20 ms a timed sample aims for.
    assert any(row.get("calls_per_sample", 1) > 1 for row in rows)


@pytest.mark.slow
def test_smoke_times_jaxrnn_and_the_reference_everywhere(smoke):
    results, _, _ = smoke
    rows = results["rows"]
    labels = {row["label"] for row in rows}
    for label in labels:
        for peer in ("jaxrnn", "JAX reference (hand-written)"):
            modes = {
                row["mode"]
                for row in rows
                if row["label"] == label
                and row["peer"] == peer
                and row["status"] == "ok"
            }
            assert modes == {"forward", "train"}, (label, peer)


@pytest.mark.slow
def test_smoke_reports_memory_and_writes_the_section(smoke):
    results, stdout, out = smoke
    jaxrnn_train = [
        row
        for row in results["rows"]
        if row["peer"] == "jaxrnn" and row["mode"] == "train"
    ]
    assert all(
        row["temp_bytes"] is not None and row["remat_temp_bytes"] is not None
        for row in jaxrnn_train
    )
    assert "Summary" in stdout
    text = (out / "RESULTS.md").read_text()
    assert report.START in text and report.END in text


def test_write_section_keeps_the_rest_of_the_file(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## Chunk sizes\n\nkept\n")
    for body in ("first", "second"):
        report.write_section(path, f"{report.START}\n{body}\n{report.END}\n")
    text = path.read_text()
    assert text.startswith("# Benchmark results\n")
    assert "second" in text and "first" not in text
    assert text.count(report.START) == 1
    assert text.rstrip().endswith("## Chunk sizes\n\nkept")


def test_a_gpu_run_writes_its_own_section_after_the_cpus(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(
        f"# Benchmark results\n\n{report.START}\ncpu\n"
        f"{report.END}\n\n## Chunk sizes\n\nkept\n"
    )
    start, end = report.markers("gpu")
    for body in ("first", "second"):
        report.write_section(path, f"{start}\n{body}\n{end}\n", "gpu")
    text = path.read_text()
    assert "second" in text and "first" not in text and "\ncpu\n" in text
    assert text.count(start) == 1 and text.count(report.START) == 1
    assert text.index(report.END) < text.index(start) < text.index("kept")


def test_cudnn_lstm_weights_are_what_jax_experimental_rnn_reads(run_script):
    # jax.experimental.rnn.lstm runs only on a CUDA GPU; its reference
    # implementation reads the same flat weights, so the layout conversion
    # of the cuDNN peer is checked here against jaxrnn on any machine.
    script = """
import sys
sys.path.insert(0, sys.argv[1])
import jax, jax.numpy as jnp
from jax.experimental import rnn as jax_rnn
import jaxrnn, layouts
B, T, D, H = 3, 7, 5, 4
x = jax.random.normal(jax.random.key(0), (B, T, D))
lengths = jnp.array([7, 4, 1], jnp.int32)
valid = (jnp.arange(T)[None] < lengths[:, None])[..., None]
for bidirectional in (False, True):
    if bidirectional:
        layer = jaxrnn.Bidirectional(jaxrnn.LSTM(H, return_sequences=True))
        params = layer.init(jax.random.key(1), (B, T, D))
        # Distinct biases per direction, so a swap of the two shows.
        params = {name: {**p, "bias": jax.random.normal(
                      jax.random.key(3 + i), (4 * H,))}
                  for i, (name, p) in enumerate(sorted(params.items()))}
        want = layer(params, x, mask=jaxrnn.lengths_to_mask(lengths, T))
    else:
        cell = jaxrnn.LSTMCell(H)
        params = {**cell.init(jax.random.key(1), D),
                  "bias": jax.random.normal(jax.random.key(2), (4 * H,))}
        want = jaxrnn.rnn(cell, params, x, seq_lengths=lengths)[0]
    flat = layouts.cudnn_lstm_weights(params)
    assert flat.size == jax_rnn.get_num_params_in_lstm(D, H, 1, bidirectional)
    unpacked = jax_rnn.unpack_lstm_weights(flat, D, H, 1, bidirectional)
    h0 = jnp.zeros((2 if bidirectional else 1, B, H))
    got = jax_rnn.lstm_ref(x, h0, h0, *unpacked, lengths, D, H, 1, 0.0,
                           bidirectional)[0]
    error = float(jnp.max(jnp.abs(jnp.where(valid, got - want, 0))))
    assert error < 1e-5, (bidirectional, error)
print("ok")
"""
    out = run_script("-c", script, BENCHMARKS, timeout=300)
    assert out.strip() == "ok"


def test_repetitions_column_names_calls_per_sample():
    row = {"reps": 10, "calls_per_sample": 21}
    assert report._reps(row) == "10x21"
    assert report._reps({"reps": 7, "calls_per_sample": 1}) == "7"
    assert report._reps({"reps": 7}) == "7"  # results from older runs


@pytest.mark.slow
def test_options_script_runs_every_variant(run_script):
    out = run_script(
        BENCHMARKS / "options.py",
        "--batch",
        "2",
        "--steps",
        "9",
        "--units",
        "4",
        "--repeats",
        "1",
        timeout=600,
    )
    lines = out.strip().splitlines()
    for variant in (
        "default",
        "time_major=True",
        "precision=highest",
        "unroll=4",
        "mask, right-padded",
        "seq_lengths",
        "remat=True",
    ):
        row = next(line for line in lines if line.startswith(variant))
        forward, train = (float(v) for v in row[20:].split())
        assert forward > 0 and train > 0, row


@pytest.mark.slow
def test_parallel_crossover_script_runs(run_script):
    """benchmarks/parallel_crossover.py (docs/parallel-cells.md's figures)."""
    out = run_script(
        BENCHMARKS / "parallel_crossover.py", "--smoke", timeout=600
    )
    assert "min_gru" in out and "lru" in out, out


@pytest.mark.slow
def test_reference_cells_script_runs(run_script):
    """benchmarks/reference_cells.py: a row per cell and reference (the
    thorough pass installs every reference; elsewhere the missing ones are
    named as skipped)."""
    out = run_script(
        BENCHMARKS / "reference_cells.py",
        "--smoke",
        env={"KERAS_BACKEND": "jax"},
        timeout=600,
    )
    for cell in ("rg_lru", "griffin", "slstm", "slstm_flashrnn", "mlstm"):
        assert f"| {cell} | 16 |" in out or f"{cell} (" in out, out
    if THOROUGH:
        assert "skipped" not in out, out


def _summary():
    """The summary of the committed CPU results, which the docs show."""
    results = json.loads((BENCHMARKS / "results.json").read_text())
    return report.summarise(results["rows"])


def _ratio(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.3g}"


def test_docs_chart_rows_are_the_performance_pages_table():
    # The chart on docs/performance.md must say what the table above it
    # says: same workloads, peers and ratios, † where the maths differ.
    page = (DOCS / "performance.md").read_text().splitlines()
    start = next(
        i for i, line in enumerate(page) if line.startswith("| workload |")
    )
    header = [c.strip() for c in page[start].strip("|").split("|")]
    assert header[1:] == list(report.DOCS_PEERS)
    table = {}
    for line in page[start + 2 :]:
        if not line.startswith("|"):
            break
        label, *cells = (c.strip() for c in line.strip("|").split("|"))
        for name, cell in zip(header[1:], cells):
            if cell != "\N{EN DASH}":  # the table's blank
                table[label, name] = cell
    chart = {}
    for row in report.docs_rows(_summary()):
        chart.setdefault((row["label"], row["key"]), {})[row["mode"]] = row
    assert set(chart) == set(table)
    for key, modes in chart.items():
        other = "" if all(r["comparable"] for r in modes.values()) else " †"
        cell = " / ".join(
            _ratio(modes[m]["vs_jaxrnn"]) for m in ("forward", "train")
        )
        assert table[key] == cell + other, key


def test_docs_chart_is_drawn_for_the_content_column(tmp_path):
    pytest.importorskip("matplotlib")
    summary = _summary()
    first, second = tmp_path / "first.svg", tmp_path / "second.svg"
    assert report.docs_chart(summary, first)
    assert report.docs_chart(summary, second)
    assert first.read_bytes() == second.read_bytes()  # no dates, no salt
    width = (
        float(
            re.search(
                r'<svg [^>]*width="([\d.]+)pt"', first.read_text()
            ).group(1)
        )
        * 96
        / 72
    )
    # The site's column is 656 px wide: shown near 1:1, with no text under
    # 12 px once scaled to fit it.
    assert 600 <= width <= 656, width
    assert report.DOCS_FONT * 96 / 72 * 656 / width >= 12
