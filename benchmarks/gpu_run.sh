#!/usr/bin/env bash
# The GPU check of issue 5 in one command, for a machine with an NVIDIA GPU
# and JAX with CUDA (docs/performance.md, "On a GPU"): prints the versions,
# runs the benchmark suite on the GPU (jaxrnn, whose LSTM takes cuDNN by
# default, and its scan as "jaxrnn use_cudnn=False", beside Flax, Equinox,
# Keras, which takes cuDNN for an unmasked LSTM, jax.experimental.rnn's
# cuDNN LSTM and PyTorch on CUDA), the parallel-in-time cells against their
# sequential run, then the parity tests at float32 ("highest") precision,
# the real cuDNN kernel's included. Everything it writes goes to $OUT (default /tmp/jaxrnn-gpu):
# results-gpu.json/.png/.svg, RESULTS.md, bench.log, tests.log.
#
#   bash benchmarks/gpu_run.sh                 # the sizes of the GPU target
#   SIZES=mid CELLS=LSTM bash benchmarks/gpu_run.sh
#
# Back on the CPU machine, `python benchmarks/run.py --report --results
# results-gpu --out DIR` re-renders DIR/results-gpu.json; copy the section
# into benchmarks/RESULTS.md with the files beside it.
#
# Wheels in .whl/ (packages the GPU machine lacks: keras, dm-haiku and what
# they need) are installed first into /tmp/site.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/jaxrnn-gpu}
SIZES=${SIZES:-mid,large,bidirectional}
CELLS=${CELLS:-LSTM,GRU}
BENCH_SECONDS=${BENCH_SECONDS:-330}
TEST_SECONDS=${TEST_SECONDS:-180}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
# Several processes share the GPU (pytest's workers): without this each
# JAX process takes 75 % of its memory at start.
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

"$PYTHON" - <<'EOF' 2>&1 | tee "$OUT/versions.txt"
import importlib.metadata as metadata
import jax
print("devices:", jax.devices())
for name in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin",
             "flax", "equinox", "dm-haiku", "keras", "torch", "numpy"):
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        print(name, "not installed")
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv \
    2>&1 | tee -a "$OUT/versions.txt"

# run.py writes its results after each workload, so a run cut short by
# the timeout keeps the workloads before it. Fewer repetitions than on the
# CPU: a GPU call takes milliseconds, and a lease is short.
timeout "$BENCH_SECONDS" "$PYTHON" benchmarks/run.py --sizes "$SIZES" \
    --cells "$CELLS" --repeats 7 --budget 3 --out "$OUT" 2>&1 \
    | tee "$OUT/bench.log"
echo "benchmarks: exit ${PIPESTATUS[0]}" | tee -a "$OUT/bench.log"

# Parallel-in-time cells against their sequential run (issue 24's target:
# 10x at T=4096; exits 1 below it).
timeout 240 "$PYTHON" benchmarks/parallel_scan.py --steps 1024 4096 \
    --min-speedup 10 --at 4096 2>&1 | tee "$OUT/parallel.log"
echo "parallel: exit ${PIPESTATUS[0]}" | tee -a "$OUT/parallel.log"

# tests/test_cudnn.py runs the real cuDNN kernel against the scan here.
timeout "$TEST_SECONDS" "$PYTHON" -m pytest -q -x -n 8 -p no:cacheprovider \
    tests/test_cudnn.py tests/test_rnn.py tests/test_fused.py tests/cells tests/layers \
    tests/integration/test_keras_reference.py > "$OUT/tests.log" 2>&1
echo "tests: exit $?" | tee -a "$OUT/tests.log"
tail -n 25 "$OUT/tests.log"
