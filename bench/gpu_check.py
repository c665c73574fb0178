"""Prove a GPU machine in one command (`make gpu-check`), into one report file.

Every job kind on CUDA against the CPU, the quick preset end to end on the GPU, and the
benchmarks.

Steps, each with its command, wall time and exit status in the report:
1. the machine: nvidia-smi, torch and CUDA versions, the float32 precision a job pins;
2. tests/test_cuda.py (bisect with each trainer, λ1 against the exact eigenvalue, the range
   test, CUDA against CPU within the tolerances the file states);
3. the benchmarks on CUDA (trainer vs DataLoader, stacked vs one by one, k-ary vs bisection, the
   MNIST grid estimate, λ1 and range tests as three processes vs one `milr together`);
4. presets/quick.yaml with device: cuda through Snakemake, and its summary.

Steps 1-3 hold one GPU slot (milr.gpu, as every job does); step 4's jobs take their own.
Usage: .venv/bin/python bench/gpu_check.py [--report results/gpu-check/report.txt] [--skip-preset]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

BIN = Path(sys.executable).parent


def step(report, title: str, cmd: list[str], env: dict[str, str]) -> bool:
    """Run one step, copy its output to the report and the terminal; True when it passed."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    text = (f"\n== {title} ==\n$ {' '.join(cmd)}\n{done.stdout}{done.stderr}"
            f"-- exit {done.returncode}, {took:.0f} s\n")  # fmt: skip
    report.write(text)
    report.flush()
    print(text, end="", flush=True)
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=ROOT / "results/gpu-check/report.txt")
    parser.add_argument("--skip-preset", action="store_true", help="leave out step 4")
    args = parser.parse_args()
    import torch  # after argparse: --help works anywhere

    if not torch.cuda.is_available():
        print("milr: error: gpu-check needs a CUDA device; torch sees none here", file=sys.stderr)
        return 2
    from milr.gpu import _held, acquire_gpu_slot

    args.report.parent.mkdir(parents=True, exist_ok=True)
    python, env = str(BIN / "python"), dict(os.environ, PYTHONPATH=str(ROOT / "workflow"))
    slot = acquire_gpu_slot(timeout_s=600)
    env.update(CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", "0"))
    machine = ("import torch, milr.numerics as n; n.pin_float32(); "
               "print(torch.cuda.get_device_name(0), n.numerics('cuda'))")  # fmt: skip
    steps = [
        ("machine: nvidia-smi", ["nvidia-smi"]),
        ("machine: torch, CUDA, numerics", [python, "-c", machine]),
        ("CUDA tests", [python, "-m", "pytest", "-q", "-m", "cuda", "-rA", "tests/test_cuda.py"]),
        ("bench: trainer vs DataLoader", [python, "bench/trainer.py", "--device", "cuda"]),
        ("bench: stacked vs one by one, k-ary vs bisection",
         [python, "bench/batched.py", "--device", "cuda", "--dataset", "mnist",
          "--search-depth", "4", "--search-width", "512"]),
        ("bench: MNIST grid estimate", [python, "bench/grid_estimate.py", "--device", "cuda"]),
        ("bench: λ1 and range tests, three jobs vs one",
         [python, "bench/together.py", "--device", "cuda"]),
    ]  # fmt: skip
    ok = True
    with open(args.report, "w", encoding="utf-8") as report:
        report.write(f"milr gpu-check, slot {slot.gpu_id}, {time.strftime('%Y-%m-%d %H:%M')}\n")
        for title, cmd in steps:
            ok &= step(report, title, cmd, env)
        for fd in _held:  # step 4's jobs take GPU slots of their own
            os.close(fd)
        _held.clear()
        if not args.skip_preset:
            env.pop("CUDA_VISIBLE_DEVICES", None)
            if slot.gpu_id is None:  # the visible devices were chosen for us: keep them
                env["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
            out = "results/gpu-check/quick"
            ok &= step(report, "quick preset on CUDA",
                       [str(BIN / "snakemake"), "--cores", "4", "--resources", "gpu=1",
                        "--configfile", "presets/quick.yaml", "--config", "device=cuda",
                        f"results={out}", "--profile", "profiles/default"], env)  # fmt: skip
            summary = [str(BIN / "milr"), "summary", "--tables", f"{out}/tables"]
            ok &= step(report, "quick preset: summary", summary, env)
        report.write(f"\ngpu-check {'passed' if ok else 'FAILED'}\n")
    print(f"gpu-check {'passed' if ok else 'FAILED'}: {args.report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
