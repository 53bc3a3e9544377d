"""benchmarks/gpu_check.sh: here, without a GPU, its CPU fallback runs every check at toy sizes and says so."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs its real sizes (minutes)")
def test_the_gpu_script_falls_back_to_the_cpu_and_passes(tmp_path):
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    out = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # runs from anywhere
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert all(line.startswith("gpu_check: ") for line in lines), out.stdout
    assert "no CUDA GPU here: the CPU fallback" in lines[0]
    assert lines[1].startswith("gpu_check: demo (bf16, fused AdamW): 60 steps in")
    assert [("fp32" in line, "bf16" in line) for line in lines[2:4]] == [(True, False), (False, True)]
    assert all("steps/s" in line and "matmul floor" in line for line in lines[2:4])
    resumed = lines[4:6]
    assert all("exact (every weight and AdamW state bit for bit)" in line for line in resumed), resumed
    assert lines[6].startswith("gpu_check: all checks done in")
    assert (tmp_path / "runs" / "demo" / "report.html").is_file()
