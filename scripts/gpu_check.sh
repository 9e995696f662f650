#!/usr/bin/env bash
# The GPU check on a lent machine that has PyTorch with CUDA but not Hydra: install the
# wheels that ../shared/tools/gpu-wheels.sh put into .whl/ (carry .whl with the command),
# then run every check (scripts/gpu_check.py; its header gives the budget of each part).
#   bash scripts/gpu_check.sh                  # results in $OUT (or ./gpu-check)
#   bash scripts/gpu_check.sh --device cpu --tiny
set -eu
cd "$(dirname "$0")/.."
SITE=${SITE:-/tmp/animegan-site}
if ! python3 -c "import hydra, omegaconf, torch_fidelity" 2>/dev/null; then
  ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu_check: no wheels in .whl/: run ../shared/tools/gpu-wheels.sh here first and carry .whl" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --target "$SITE" .whl/*.whl
fi
# what animegan imports beyond PyTorch and the carried wheels (gpu-wheels.sh takes pure-Python
# extras as arguments, e.g. tqdm): say what is missing in one line rather than fail every check
missing=$(PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" python3 -c "
import importlib.util as u
print(' '.join(m for m in ('torch', 'torchvision', 'numpy', 'PIL', 'tqdm', 'matplotlib', 'hydra', 'omegaconf', 'torch_fidelity') if u.find_spec(m) is None))")
[ -z "$missing" ] || { echo "gpu_check: missing Python packages: $missing (carry their wheels in .whl/)" >&2; exit 2; }
# animegan itself, laid out as its wheel installs it (configs/ and checkpoints/ inside the package)
rm -rf "$SITE/animegan" && mkdir -p "$SITE" && cp -r src/animegan "$SITE/animegan"
cp -r configs "$SITE/animegan/configs" && cp -r checkpoints "$SITE/animegan/checkpoints"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
exec python3 scripts/gpu_check.py "$@"
