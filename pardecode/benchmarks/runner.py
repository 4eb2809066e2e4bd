"""Running a suite: warm-ups, timed decodes, one durable record per run, resumable and shardable.

Latency is the wall-clock of one `decode` call (prompt encoding and prefill included, image
decoding excluded). Each process pins torch's thread count and first runs `warmup` untimed decodes
of every setting it still has work for, so no timed run pays for first-call costs and a setting
that cannot run (e.g. jacobi at a sampling temperature) fails before any timed run.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch

from ..api import decode
from .quality import Judge, judge_for, pack_images
from .results import ResultsDir, Shard
from .suite import BackboneSpec, Run, Suite


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version() -> str | None:
    try:
        return importlib.metadata.version("pardecode")
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(shard: Shard) -> dict[str, Any]:
    """What the timings depend on, stated in the report."""
    import transformers

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "shard": str(shard),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "pardecode": _version(),
        "commit": _commit(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def _model_of(backbone: Any) -> torch.nn.Module | None:
    """The backbone's network: the first torch module among its attributes (adapters keep it as `body` or `model`)."""
    for name in ("body", "model"):
        if isinstance(getattr(backbone, name, None), torch.nn.Module):
            return getattr(backbone, name)
    fields = vars(backbone).values() if hasattr(backbone, "__dict__") else ()
    return next((v for v in fields if isinstance(v, torch.nn.Module)), None)


def device_name(device: torch.device | str | None) -> str:
    """The GPU's name on CUDA (torch.cuda.get_device_name), else the CPU model."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return cpu_model() if device.type == "cpu" else device.type


def backbone_environment(backbone: Any) -> dict[str, Any]:
    """Device, its name, dtype and attention implementation of a loaded backbone ("n/a" where it has none)."""
    model = _model_of(backbone)
    parameter = next(model.parameters(), None) if model is not None else None
    device = getattr(backbone, "device", None) or (parameter.device if parameter is not None else torch.device("cpu"))
    config = getattr(model, "config", None)
    return {
        "device": str(device),
        "device_name": device_name(device),
        "dtype": str(parameter.dtype).removeprefix("torch.") if parameter is not None else "n/a",
        "attention": getattr(config, "_attn_implementation", None) or "n/a",
    }


def peak_memory(device: torch.device | str | None) -> tuple[int, str]:
    """(bytes, what they measure): torch.cuda.max_memory_allocated on CUDA, else the process's peak RSS."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated(device)), "cuda max_memory_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return int(rss if sys.platform == "darwin" else rss * 1024), "process peak RSS"


def _reset_peak(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(device)


def default_threads(shard: Shard) -> int:
    """The cores of this machine shared out between the shards running on it."""
    return max(1, (os.cpu_count() or 1) // shard.count)


@attrs.frozen
class Outcome:
    """What one process did: runs assigned to it, skipped as already recorded, and run now."""

    assigned: int
    skipped: int
    ran: int
    seconds: float


def _timed_decode(run: Run, backbone: Any, spec: BackboneSpec, batch: int):
    strategy = run.setting.build()
    sampling = run.setting.sampling_for(backbone)
    start = time.perf_counter()
    result = decode(backbone, strategy, [run.prompt] * batch, sampling=sampling, seed=run.seed, **spec.start)
    return result, strategy, sampling, time.perf_counter() - start


def execute(
    run: Run, backbone: Any, spec: BackboneSpec, batch: int, judge: Judge | None, keep_images: bool = False
) -> dict[str, Any]:
    """Decode one run and return its record (images only on repeat 0: repeats share their seed, and only
    for a judge or `keep_images`, the suite's metrics)."""
    device = getattr(backbone, "device", None)
    _reset_peak(device)
    result, strategy, sampling, seconds = _timed_decode(run, backbone, spec, batch)
    memory, memory_kind = peak_memory(device)
    trace = result.trace
    record: dict[str, Any] = {
        "key": run.key,
        "backbone_name": spec.name,
        "lossless": bool(strategy.lossless),
        "effective_sampling": attrs.asdict(sampling),
        "batch": batch,
        "length": int(result.tokens.shape[1]),
        "forward_passes": trace.forward_passes,
        "tokens": int(trace.committed.sum()),
        "tokens_per_pass": trace.tokens_per_pass,
        "widths": trace.widths,
        "committed": trace.committed.T.tolist(),  # [B][passes]
        "seconds": seconds,
        "loop_seconds": trace.seconds,
        "forward_seconds": float(sum(trace.forward_seconds)),
        "torch_threads": torch.get_num_threads(),
        "peak_memory": memory,
        "peak_memory_kind": memory_kind,
        "images": None,
    }
    if "tv_bound" in trace.diagnostics:  # lossy strategies: per image, the summed per-pass TV bound
        record["tv_bound"] = trace.diagnostics["tv_bound"].sum(0).tolist()
    if (judge is not None or keep_images) and run.repeat == 0:
        images = backbone.images(result.tokens, result.session)
        record["images"] = pack_images(images) if images is not None else None
    return record


def run_suite(
    suite: Suite,
    out: str | Path,
    *,
    shard: Shard = Shard(),
    threads: int | None = None,
    progress: bool = True,
    judges: Callable[[str], Judge | None] = judge_for,
) -> Outcome:
    """Run this shard's share of `suite` into `out`, skipping runs already recorded there."""
    began = time.perf_counter()
    results = ResultsDir(out)
    results.claim(suite)
    torch.set_num_threads(threads or default_threads(shard))
    mine = [run for i, run in enumerate(suite.runs()) if shard.takes(i)]
    done = results.done()
    todo = [run for run in mine if run.id not in done]
    if not todo:
        return Outcome(len(mine), len(mine), 0, time.perf_counter() - began)
    specs = {b.label: b for b in suite.backbones}
    loaded = {label: specs[label].load() for label in dict.fromkeys(run.backbone for run in todo)}
    results.note_session(
        shard,
        {
            **environment(shard),
            "seeds": list(suite.seeds),
            "batch": suite.batch,
            "backbones": {label: backbone_environment(backbone) for label, backbone in loaded.items()},
        },
    )
    judged = {label: judges(specs[label].name) for label in loaded}
    for run in {(run.backbone, run.setting.label): run for run in todo}.values():  # one per setting
        for _ in range(suite.warmup):
            _timed_decode(run, loaded[run.backbone], specs[run.backbone], suite.batch)

    from tqdm import tqdm

    with tqdm(
        total=len(mine),
        initial=len(mine) - len(todo),
        disable=not progress,
        unit="run",
        desc=f"{suite.name} {shard}" if shard.count > 1 else suite.name,
    ) as bar:
        for run in todo:
            record = execute(
                run,
                loaded[run.backbone],
                specs[run.backbone],
                suite.batch,
                judged[run.backbone],
                keep_images=bool(suite.metrics),
            )
            results.append(shard, record)
            bar.set_postfix_str(run.setting.label, refresh=False)
            bar.update()
    return Outcome(len(mine), len(mine) - len(todo), len(todo), time.perf_counter() - began)
