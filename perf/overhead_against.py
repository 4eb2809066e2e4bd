"""Framework time per pass of this tree against another git ref, side by side in one run.

Each round runs `pardecode overhead --json` once per setting and tree, alternating the trees, one
torch thread each; the medians over rounds and their ratios are printed. The other tree is a
temporary worktree of REF.

    python perf/overhead_against.py REF [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SETTINGS = [  # (backbone, strategy, extra arguments)
    ("fashion", "ar", ["--batch", "1"]),
    ("fashion", "ar", ["--batch", "8"]),
    # the default setting at the windows its automatic sizing takes at batch 1 and 8 (fixed here: an
    # automatic window follows each tree's cost profile, which need not be the same)
    ("fashion", "sjd_pac", ["--batch", "1", "--window", "16"]),
    ("fashion", "sjd_pac", ["--batch", "8", "--window", "4"]),
    ("fashion", "sjd", ["--batch", "1", "--window", "16"]),
    ("fashion", "sjd", ["--batch", "8", "--window", "4"]),
    ("fashion", "pjd", ["--batch", "4"]),
    ("toy", "sjd", ["--batch", "8", "--window", "32"]),
]


def overhead(tree: Path, backbone: str, strategy: str, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "pardecode.cli",
        "overhead",
        "--backbone",
        backbone,
        "--strategy",
        strategy,
        "--repeats",
        "3",
        "--json",
        *extra,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=tree).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="git ref to compare against (e.g. main~3)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "ref"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), args.ref], cwd=HERE, check=True)
        try:
            rows: dict[tuple, dict[str, list[tuple[float, float]]]] = {}
            for r in range(args.rounds):
                for setting in SETTINGS:
                    trees = [("ref", other), ("this", HERE)]
                    for label, tree in trees if r % 2 == 0 else trees[::-1]:
                        got = overhead(tree, *setting)
                        print(
                            f"round {r} {label:>4} {' '.join(setting[:2] + tuple(setting[2]))}: framework "
                            f"{got['overhead_ms_median']:.3f} ms, forward {got['forward_ms_median']:.3f} ms",
                            flush=True,
                        )
                        rows.setdefault(setting[:2] + tuple(setting[2]), {}).setdefault(label, []).append(
                            (got["overhead_ms_median"], got["forward_ms_median"])
                        )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=HERE, check=False)
    print(f"framework ms per pass (median of {args.rounds} rounds; forward ms in brackets), {args.ref} -> this tree")
    for key, by in rows.items():
        ref_fw, this_fw = (statistics.median(x[0] for x in by[k]) for k in ("ref", "this"))
        ref_f, this_f = (statistics.median(x[1] for x in by[k]) for k in ("ref", "this"))
        print(
            f"  {' '.join(map(str, key)):<40} {ref_fw:7.3f} [{ref_f:6.2f}] -> {this_fw:7.3f} [{this_f:6.2f}]"
            f"   ratio {this_fw / ref_fw:5.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
