"""perf/gpu_check.py, smoke-tested on the CPU with its tiny model: it runs in well under a minute and
its report holds every section (the GPU run is the same code with the 7B shape)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "## Environment",
    "## Tests on the device",
    "## Model",
    "## Pass seconds by window",
    "ms per pass (median)",
    "framework share of a pass",
    "host synchronisations per pass",
    "peak memory (GiB)",
    "## Decode: sjd_pac (window auto) vs ar",
    "## Static pass",
]


def test_gpu_check_runs_on_the_cpu_with_the_tiny_model(tmp_path):
    command = [sys.executable, str(ROOT / "perf" / "gpu_check.py"), "--device", "cpu", "--tiny", "--no-tests"]
    command += ["--no-compile", "--out", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (tmp_path / "gpu_check.md").read_text()
    assert report.strip() == proc.stdout.strip()  # the same markdown on stdout and in the file
    for section in SECTIONS:
        assert section in report, section
    assert "| eager | 1 |" in report and "| eager | 4 |" in report
    assert "| ar |" in report and "| sjd_pac (window auto) |" in report
    assert "error:" not in report
    static = report.split("## Static pass", 1)[1]
    assert "static pass: not available in this version" in static or "| static | 1 |" in report
    assert "gpu-check: done" in proc.stderr


def test_gpu_check_refuses_the_7b_shape_on_the_cpu(tmp_path):
    command = [sys.executable, str(ROOT / "perf" / "gpu_check.py"), "--device", "cpu", "--out", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--tiny" in proc.stderr
