#!/usr/bin/env bash
# GPU benchmarks in one script (about 5 minutes on one H200): trainer vs DataLoader, batched vs
# sequential, k-ary vs bisection, and the full MNIST grid of config.yaml extrapolated from a
# measured sample. Installs nothing: it needs only the machine's PyTorch (plus PyYAML/NumPy).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0))"
echo "== milr trainer vs DataLoader loop (MNIST-shaped) =="
python bench/trainer.py --device cuda --repeats 3
echo "== batched K=8 vs 8 sequential; k-ary vs bisection (MNIST-shaped) =="
python bench/batched.py --device cuda --dataset mnist --search-depth 4 --search-width 512
echo "== full MNIST grid, extrapolated =="
python bench/grid_estimate.py --device cuda --trainer batched
python bench/grid_estimate.py --device cuda --trainer plain --sample 1x128,4x512
