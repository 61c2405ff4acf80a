#!/usr/bin/env bash
# The GPU run of the mission, on a CUDA machine: every notebook in the paper profile, then the training and
# s-score benchmarks, and a summary.
#   bash ci/gpu.sh            # dry run of the paper profile (real models at 224 px, sizes capped): minutes
#   FULL=1 bash ci/gpu.sh     # the paper's full setting (real folders via DATA_FOLDERS, ImageNet weights): hours
# OUT (default runs/gpu) receives the executed notebooks, their JSON, the claims report and the benchmark logs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup_env.sh
PY=.venv/bin/python
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "[gpu] no CUDA device visible to torch: this script is for a GPU machine (the CPU dry run is a test)" >&2
  exit 1
fi
"$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'[gpu] {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}')"
MODE=(--dry-run)
[ "${FULL:-0}" = "1" ] && MODE=()
start=$(date +%s)
set +e
PYTHONUNBUFFERED=1 "$PY" -m shortcut_nb run --profile paper "${MODE[@]}" --out "$OUT/notebooks" \
  --runs-root "${RUNS_ROOT:-$OUT/runs}" 2>&1 | tee "$OUT/notebooks.log"
nb_rc=${PIPESTATUS[0]}
PYTHONUNBUFFERED=1 "$PY" benchmarks/bench_train.py $([ "${FULL:-0}" = "1" ] || echo --quick) 2>&1 | tee "$OUT/bench_train.log"
tr_rc=${PIPESTATUS[0]}
PYTHONUNBUFFERED=1 "$PY" benchmarks/bench_sscore.py $([ "${FULL:-0}" = "1" ] || echo --quick) 2>&1 | tee "$OUT/bench_sscore.log"
ss_rc=${PIPESTATUS[0]}
set -e
echo
echo "[gpu] summary ($(( $(date +%s) - start )) s, mode: ${MODE[*]:-full})"
grep -h "\]: \(ok\|FAILED\)\|: ok in\|: FAILED" "$OUT/notebooks.log" || true
grep -h "ratio" "$OUT/bench_train.log" "$OUT/bench_sscore.log" || true
echo "[gpu] claims: $OUT/notebooks/claims.md"
[ "$nb_rc" = 0 ] && [ "$tr_rc" = 0 ] && [ "$ss_rc" = 0 ]
