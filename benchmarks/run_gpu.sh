#!/usr/bin/env bash
# The GPU checks and measurements, in one run: the CUDA tests, then bench_performance.py on
# the device, then the behaviour tests with every estimator on the GPU (device='auto').
#
#   SKVAE_MNIST_DIR=/path/to/mnist OUT=/tmp/gpu bash benchmarks/run_gpu.sh
#
# Runs from the repository root with skvae importable (installed, or PYTHONPATH=.). Logs go
# to $OUT (default: the current directory).
set -uo pipefail
out="${OUT:-.}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c "import sys, torch, sklearn, numpy, scipy; print(sys.version.split()[0], 'torch',
torch.__version__, 'sklearn', sklearn.__version__, 'numpy', numpy.__version__, 'scipy',
scipy.__version__, 'CPU threads', torch.get_num_threads())"

# Each step's own exit status (a pipe's is tee's); the script fails if any step did.
failed=0
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 \
    | tee "$out/pytest_cuda.log" | tail -n 30
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
timeout "${BENCH_TIMEOUT:-420}" python3 benchmarks/bench_performance.py --device cuda \
    --epochs 3 --repeats 3 ${BENCH_ONLY:+--only "$BENCH_ONLY"} 2>&1 | tee "$out/bench_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
timeout "${TESTS_TIMEOUT:-180}" python3 -m pytest -q -p no:cacheprovider \
    tests/test_fitting.py tests/test_input_validation.py tests/test_persistence.py \
    tests/test_randomness.py tests/test_families.py tests/test_ecosystem.py \
    tests/test_diagnostics.py tests/test_importance_weighted.py tests/test_missing.py 2>&1 \
    | tee "$out/pytest_gpu_behaviour.log" | tail -n 30
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
exit "$failed"
