"""Every job kind on a CUDA device, against the CPU: skipped where torch sees no GPU.

`make gpu-check` runs these first on a GPU machine. What is compared, and how closely:
- a probe's record on CUDA against the CPU's: same outcome and epochs for a rate well inside the
  stable range (a GPU rounds differently, so near the edge of stability outcomes may differ;
  far from it they must not), validation accuracies within 1 point;
- the stacked trainer against one-by-one training on CUDA: reported bit for bit where cuBLAS
  keeps the kernel, else within float32 rounding (validation accuracies within 1 point);
- λ1 on CUDA against the exact Hessian's top eigenvalue (1%);
- the range test's suggestions on CUDA against the CPU's (same curve to 1e-3 relative at the
  start of the ramp, before divergence amplifies differences);
- float32 pinned to IEEE in the result;
- `milr together` (λ1 and range tests in one process) writing what the commands write alone.
"""

from __future__ import annotations

import math

import pytest
import torch
from milr.batched import Member, train_batched
from milr.data import make_gaussian, payload_to_dataset
from milr.measure import measure_eta_star
from milr.model import build_model
from milr.range_test import lr_range_test
from milr.records import RangeTestInputs, SearchInputs
from milr.settings import GaussianSpec, Network, RangeTestSettings, TrainSettings
from milr.sharpness import top_eigenvalue, training_subset

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
SPEC = GaussianSpec(dim=16, train_per_class=2000, val_per_class=500)
SETTINGS = TrainSettings(threshold=0.85, epochs=4, input_lr_scale=0.1)


@pytest.fixture(scope="module")
def data():
    payload = make_gaussian(SPEC)
    return {"cpu": payload_to_dataset(payload, "cpu"), "cuda": payload_to_dataset(payload, "cuda")}


def test_a_stable_probe_has_the_same_outcome_on_cuda(data):
    records = {}
    for device in ("cpu", "cuda"):
        init = build_model(SPEC.dim, 64, 3, 2, seed=0, device=device)
        records[device] = train_batched([Member(init, 0.05, 0)], data[device], SETTINGS)[0]
    cpu, gpu = records["cpu"], records["cuda"]
    assert (cpu.success, cpu.diverged, cpu.epochs_run) == (gpu.success, gpu.diverged,
                                                             gpu.epochs_run)  # fmt: skip
    for a, b in zip(cpu.val_accuracy, gpu.val_accuracy, strict=True):
        assert abs(a - b) <= 0.01


def test_stacked_and_one_by_one_agree_on_cuda(data, capsys):
    inits = [build_model(SPEC.dim, 64, 3, 2, seed=s, device="cuda") for s in (0, 1, 2)]
    members = [Member(m, lr, s) for m, lr, s in zip(inits, (0.05, 0.5, 2.0), (0, 1, 2),
                                                     strict=True)]  # fmt: skip
    stacked = train_batched(members, data["cuda"], SETTINGS)
    alone = [train_batched([m], data["cuda"], SETTINGS)[0] for m in members]
    same = all(a.val_accuracy == b.val_accuracy and repr(a.final_train_loss) ==
               repr(b.final_train_loss) for a, b in zip(alone, stacked, strict=True))  # fmt: skip
    with capsys.disabled():
        print(f"\nCUDA: stacked == one by one, bit for bit: {same}")
    assert (alone[0].success, alone[0].epochs_run) == (stacked[0].success, stacked[0].epochs_run)
    for a, b in zip(alone[0].val_accuracy, stacked[0].val_accuracy, strict=True):
        assert abs(a - b) <= 0.01


@pytest.mark.parametrize("trainer", ["plain", "batched"])
def test_a_search_runs_on_cuda_in_ieee_float32(data, trainer):
    inputs = SearchInputs.of(dataset="gaussian", depth=2, width=32, seed=0, threshold=0.85,
                             epochs=4, upper="auto", start=2.0, iterations=3,
                             input_lr_scale=0.1, trainer=trainer)  # fmt: skip
    result = measure_eta_star(inputs, data["cuda"])
    assert result.eta_star > 0 and result.provenance.device.startswith("cuda")
    assert result.provenance.numerics["float32_precision"] == "ieee"
    assert result.provenance.numerics["cuda"]


def test_lambda1_on_cuda_matches_the_exact_eigenvalue(data):
    from test_sharpness import exact_top_eigenvalue

    model = build_model(SPEC.dim, 5, 2, 2, seed=1)
    x, y = training_subset(data["cpu"], 256, seed=0)
    exact = exact_top_eigenvalue(model, x, y)
    estimate = top_eigenvalue(model.cuda(), x.cuda(), y.cuda(), seed=0, max_iter=500, tol=1e-7)
    assert estimate == pytest.approx(exact, rel=0.01)


def test_the_range_test_on_cuda_follows_the_cpus(data):
    inputs = RangeTestInputs(Network("gaussian", depth=2, width=32, seed=0),
                             RangeTestSettings(steps=60), input_lr_scale=0.1)  # fmt: skip
    cpu, gpu = (lr_range_test(inputs, data[d]) for d in ("cpu", "cuda"))
    assert cpu.lrs[:20] == gpu.lrs[:20]
    for a, b in zip(cpu.losses[:20], gpu.losses[:20], strict=True):
        assert math.isclose(a, b, rel_tol=1e-3)


def test_together_on_cuda_writes_what_the_commands_write_alone(tmp_path):
    """`milr together` (config.yaml's way on a GPU: λ1 and range tests in one process) against
    the same commands run one by one, both on CUDA."""
    from milr.cli import main
    from test_cli import RANGE, SHARPNESS, numbers, outs

    alone, together = tmp_path / "alone", tmp_path / "together"
    for kind, argv in (("sharpness", SHARPNESS), ("range", RANGE)):
        assert main([*argv, *outs(alone, kind), "--device", "cuda"]) == 0
    argv = ["together", "--device", "cuda", "::", *SHARPNESS, *outs(together, "sharpness")]
    assert main([*argv, "::", *RANGE, *outs(together, "range")]) == 0
    for path in sorted(alone.iterdir()):
        assert numbers(together / path.name) == numbers(path), path.name
