"""pardecode on a CUDA GPU in one command, in under 10 minutes: tests, pass costs, one decode.

    python perf/gpu_check.py [--device cuda] [--tiny] [--no-tests] [--no-compile] [--budget 540] [--out DIR]

1. runs the device-independent tests (tests/test_verify_properties.py, tests/test_on_device.py)
   with PARDECODE_TEST_DEVICE set to the device, under a time cap, and reports pytest's summary line;
2. builds a random-weight model of Lumina-mGPT-7B's published shape in bfloat16 on the device (no
   download; `LUMINA_7B`); `--tiny` builds a few-thousand-parameter model of the same layout instead
   (what the CPU smoke test runs);
3. times passes by window (0 = AR, else SJD drafting that many tokens) at batch 1 and 4 with the
   Lumina default sampling (top-k 2000, guidance 3), without and with the static pass (and its
   compiled forward): ms per pass, the framework's share of a pass (time outside the backbone's
   forward), host synchronisations per pass (tensor-to-Python conversions outside the forward, as
   perf/pass_breakdown.py --syncs counts them) and peak memory;
4. decodes one image with sjd_pac (window auto) and with ar, at the largest size whose estimated time
   fits what is left of the budget (768 px first).

Every step checks the time left; the markdown report (--out, default runs/gpu-check/gpu_check.md) is
rewritten after every measurement, so an interrupted run keeps what it measured, and printed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

import pardecode  # noqa: E402
from pardecode.adapters.chameleon import ChameleonBackbone  # noqa: E402
from pardecode.core.errors import ConfigError  # noqa: E402
from pardecode.core.loop import Decoder  # noqa: E402
from pardecode.planning import SkipAheadThen  # noqa: E402

TEST_FILES = ("tests/test_verify_properties.py", "tests/test_on_device.py")
WINDOWS = (0, 1, 4, 16, 32, 64)
BATCHES = (1, 4)
PROMPT = "a red fox standing in fresh snow at dawn, photorealistic"
#: Lumina-mGPT-7B's shape: the defaults of ChameleonConfig in Lumina-mGPT's own code
#: (lumina_mgpt/model/chameleon/configuration_chameleon.py: the chameleon-7b configuration), which
#: transformers' ChameleonConfig shares; q/k norms per head (the published per-shard rows are
#: repeated on load, pardecode.adapters.chameleon.lumina_norms). The context (4096, the same file's
#: default) fits a 768 px image (2,353 tokens) and its prompt; it does not change what a pass costs.
LUMINA_7B = dict(
    vocab_size=65536,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    hidden_act="silu",
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    attention_bias=False,
    mlp_bias=False,
    swin_norm=False,
    tie_word_embeddings=False,
)
#: the same layout at test size (tests/tiny_models.py's widths), for the CPU smoke test
TINY = dict(
    LUMINA_7B,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
)
TINY_VQ = dict(
    embed_dim=5, num_embeddings=5, latent_channels=5, in_channels=3, base_channels=32, channel_multiplier=[1, 2]
)
#: share of the budget each step may use (the decode gets what is left)
SHARES = {"tests": 0.25, "eager": 0.15, "decode": 0.35, "static": 0.10}  # static+compiled: the rest
SYNCS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "nonzero")


# --- the report ------------------------------------------------------------------------------------
class Report:
    """Markdown sections, rewritten to `path` after every change so an interrupted run keeps them."""

    def __init__(self, path: Path, title: str):
        self.path, self.title = path, title
        self.sections: list[tuple[str, list[str]]] = []
        path.parent.mkdir(parents=True, exist_ok=True)

    def section(self, title: str) -> list[str]:
        lines: list[str] = []
        self.sections.append((title, lines))
        self.write()
        return lines

    def add(self, lines: list[str], *text: str) -> None:
        lines.extend(text)
        self.write()

    def markdown(self) -> str:
        parts = [f"# {self.title}", ""]
        for title, lines in self.sections:
            parts += [f"## {title}", "", *lines, ""]
        return "\n".join(parts)

    def write(self) -> None:
        self.path.write_text(self.markdown())


def progress(text: str) -> None:
    print(f"gpu-check: {text}", file=sys.stderr, flush=True)


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.monotonic(), seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def deadline(self, share: float) -> float:
        """A monotonic time `share` of the whole budget from now, never past the end."""
        return min(time.monotonic() + share * self.seconds, self.start + self.seconds)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


# --- the environment -------------------------------------------------------------------------------
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "CPU"


def environment(device: torch.device) -> list[str]:
    import transformers

    rows = [
        ["device", f"{device} ({device_name(device)})"],
        ["torch", torch.__version__ + (f" (CUDA {torch.version.cuda})" if device.type == "cuda" else "")],
        ["transformers", transformers.__version__],
        ["pardecode", pardecode.__version__],
        ["python", platform.python_version()],
        ["date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
    ]
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        rows.append(["device memory", f"{total / 2**30:.1f} GiB"])
    else:
        rows.append(["torch threads", str(torch.get_num_threads())])
    return table(["", ""], rows)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    """Peak allocated device memory since the last reset; on the CPU the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# --- step 1: the tests on the device ---------------------------------------------------------------
def run_tests(device: torch.device, cap: float, log: Path) -> str:
    """pytest's summary line for TEST_FILES on `device` (or why there is none); output in `log`."""
    env = dict(os.environ, PARDECODE_TEST_DEVICE=str(device), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *TEST_FILES]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=max(1.0, cap))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            words = [(line.rsplit("[", 1)[0].split() or [""])[-1] for line in log.read_text().splitlines()]
            progress_marks = "".join(w for w in words if w and set(w) <= set(".FEsxX"))  # "..F.s   [ 40%]"
            done = {mark: progress_marks.count(mark) for mark in ".FEs"}
            return (
                f"stopped at the time cap ({cap:.0f} s) after {done['.']} passed, {done['F']} failed, "
                f"{done['E']} errors, {done['s']} skipped; output so far in {log.name}"
            )
        except KeyboardInterrupt:
            proc.kill()
            raise
    lines = [line.strip() for line in log.read_text().splitlines() if line.strip()]
    summary = next(
        (
            line
            for line in reversed(lines)
            if " in " in line and any(word in line for word in ("passed", "failed", "error", "skipped", "no tests"))
        ),
        None,
    )
    return f"{summary or (lines[-1] if lines else 'no output')} (exit code {code})"


# --- step 2: the model -----------------------------------------------------------------------------
def vocabulary(size: int | None) -> dict[str, int]:
    """Lumina-mGPT's token ids as the tests' published-format checkpoints spell them
    (tests/published_formats.py), padded with reserved names to `size` entries."""
    from published_formats import lumina_vocabulary

    vocab = lumina_vocabulary()
    for tid in range(len(vocab), size or 0):
        vocab[f"<reserved{tid - 4:05d}>"] = tid
    return vocab


def tokenizer_of(vocab: dict[str, int]) -> Any:
    from published_formats import LUMINA_SPECIALS
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(LUMINA_SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def model_config(tiny: bool) -> tuple[Any, Any]:
    """(ChameleonConfig, tokenizer) of the 7B shape, or of the tiny one with a vocabulary just wide
    enough for Lumina-mGPT's ids."""
    from transformers import ChameleonConfig

    vocab = vocabulary(None if tiny else LUMINA_7B["vocab_size"])
    shape = dict(TINY, vocab_size=len(vocab)) if tiny else LUMINA_7B
    extra = {"vq_config": TINY_VQ} if tiny else {}
    config = ChameleonConfig(**shape, vocabulary_map=vocab, pad_token_id=0, bos_token_id=1, eos_token_id=2, **extra)
    return config, tokenizer_of(vocab)


def build(config: Any, tokenizer: Any, device: torch.device, dtype: str, **options: Any) -> ChameleonBackbone:
    """The random model, seeded (every variant gets the same weights); `options` may be refused."""
    torch.manual_seed(0)
    return ChameleonBackbone.from_config(config, tokenizer=tokenizer, dtype=dtype, device=device, **options)


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --- step 3: pass costs ----------------------------------------------------------------------------
class SyncCounter:
    """Counts tensor-to-Python conversions (host synchronisations on a GPU) while `counting`,
    except inside the backbone's forward."""

    def __init__(self):
        self.count, self.active, self.paused = 0, False, 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        originals = {name: getattr(torch.Tensor, name) for name in SYNCS}

        def counted(original: Callable) -> Callable:
            def call(tensor, *a, **k):
                if self.active and not self.paused:
                    self.count += 1
                return original(tensor, *a, **k)

            return call

        for name, original in originals.items():
            setattr(torch.Tensor, name, counted(original))
        self.count, self.active = 0, True
        try:
            yield
        finally:
            self.active = False
            for name, original in originals.items():
                setattr(torch.Tensor, name, original)


class Cell:
    def __init__(self, ms: float, share: float, syncs: float | None, passes: int):
        self.ms, self.share, self.syncs, self.passes = ms, share, syncs, passes


def time_cell(backbone: ChameleonBackbone, device: torch.device, batch: int, window: int, size, passes: int) -> Cell:
    """Passes of SJD at `window` (AR at 0) after a first pass that skips to mid-span (a cache as long
    as a decode's average) and one warm-up pass: ms per pass, forward share, syncs of one more pass."""
    sampling = backbone.default_sampling
    session = backbone.start([PROMPT] * batch, sampling, size=size)
    timed = pardecode.get_strategy("sjd", window=window) if window else pardecode.get_strategy("ar")
    decoder = Decoder(backbone, session, SkipAheadThen(timed), sampling, seed=0)
    counter, forward_s = SyncCounter(), [0.0]
    forward = session.forward

    def timed_forward(win):
        counter.paused += 1
        sync(device)
        t = time.perf_counter()
        try:
            return forward(win)
        finally:
            sync(device)
            forward_s[0] += time.perf_counter() - t
            counter.paused -= 1

    session.forward = timed_forward
    decoder.start()
    for _ in range(2):
        if max(decoder.remaining) > 0:
            decoder.step()
    totals, forwards = [], []
    while len(totals) < passes and max(decoder.remaining) > 0:
        sync(device)
        forward_s[0], t = 0.0, time.perf_counter()
        decoder.step()
        sync(device)
        totals.append(time.perf_counter() - t)
        forwards.append(forward_s[0])
    syncs = None
    if max(decoder.remaining) > 0:
        with counter.counting():
            decoder.step()
        syncs = float(counter.count)
    if not totals:
        raise ConfigError(f"size {size} leaves no pass to time after the warm-up")
    ms = statistics.median(totals) * 1e3
    share = 1 - sum(forwards) / sum(totals)
    return Cell(ms, share, syncs, len(totals))


def pass_tables(
    report: Report, lines: list[str], label: str, backbone, device, size, passes: int, deadline: float, results: dict
) -> None:
    """Fill `results[label, batch]` = {window: Cell | reason} cell by cell, rewriting the tables."""
    for batch in BATCHES:
        reset_peak(device)
        row: dict[int, Any] = {}
        results[label, batch] = row
        for window in WINDOWS:
            if time.monotonic() > deadline:
                row[window] = "time cap"
                continue
            t = time.perf_counter()
            try:
                row[window] = time_cell(backbone, device, batch, window, size, passes)
            except torch.cuda.OutOfMemoryError:
                row[window] = "out of memory"
                release(device)
            except Exception as err:  # one failing cell is reported, the others still run
                row[window] = failure(err)
            progress(
                f"{label} batch {batch} window {window}: {describe(row[window])} ({time.perf_counter() - t:.1f} s)"
            )
            render_passes(report, lines, results)
        results[label, batch, "peak"] = peak_gib(device)
        render_passes(report, lines, results)


def failure(err: BaseException) -> str:
    from pardecode.adapters.hf_loading import one_line

    return "error: " + one_line(err, 160).replace("|", "/")


def describe(cell: Any) -> str:
    return f"{cell.ms:.2f} ms, framework {cell.share:.0%}" if isinstance(cell, Cell) else str(cell)


def render_passes(report: Report, lines: list[str], results: dict) -> None:
    header = ["setting", "batch", *(f"W={w}" for w in WINDOWS)]
    keys = [k for k in results if len(k) == 2]

    def grid(fmt: Callable[[Cell], str]) -> list[str]:
        rows = []
        for label, batch in keys:
            cells = results[label, batch]
            rows.append(
                [label, str(batch)]
                + [fmt(cells[w]) if isinstance(cells.get(w), Cell) else str(cells.get(w, "")) for w in WINDOWS]
            )
        return table(header, rows)

    peak = "peak memory (GiB): " + ", ".join(
        f"{label} batch {batch} {results[label, batch, 'peak']:.2f}"
        for label, batch in keys
        if (label, batch, "peak") in results
    )
    lines[:] = [
        "ms per pass (median), by window (0: AR; W > 0: SJD drafting W tokens), Lumina default sampling "
        "(guidance rows included in the batch's forward):",
        "",
        *grid(lambda c: f"{c.ms:.2f}"),
        "",
        "framework share of a pass (time outside the backbone's forward):",
        "",
        *grid(lambda c: f"{c.share:.0%}"),
        "",
        "host synchronisations per pass outside the forward (tensor-to-Python conversions):",
        "",
        *grid(lambda c: "n/a" if c.syncs is None else f"{c.syncs:.0f}"),
        "",
        peak,
    ]
    report.write()


# --- step 4: one decode ----------------------------------------------------------------------------
def span_tokens(backbone: ChameleonBackbone, size) -> int:
    rows, cols = backbone.spec.grid(size)
    return rows * (cols + 1) + 1


def decode_once(backbone, device, strategy: str, options: dict, size) -> tuple[float, int, int]:
    """(seconds, passes, span tokens) of one batch-1 decode."""
    sync(device)
    t = time.perf_counter()
    result = pardecode.decode(backbone, pardecode.get_strategy(strategy, **options), [PROMPT], seed=0, size=size)
    sync(device)
    return time.perf_counter() - t, result.forward_passes, result.tokens.shape[1]


# --- the run -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1 or cpu (default: %(default)s)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model of the same layout (CPU smoke test)")
    parser.add_argument("--no-tests", action="store_true", help="skip the pytest step")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled static forward")
    parser.add_argument("--budget", type=float, help="seconds after start-up (default: 540, with --tiny 45)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu-check", help="report directory")
    args = parser.parse_args(argv)
    from pardecode.adapters.hf_loading import parse_device

    try:
        device = parse_device(args.device)
    except ConfigError as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    if device.type == "cpu" and not args.tiny:
        print("gpu_check: the 7B shape needs a GPU (28 GB in float32 here); on the CPU pass --tiny", file=sys.stderr)
        return 2
    budget = Budget(args.budget or (45.0 if args.tiny else 540.0))
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PARDECODE_CACHE", str(args.out / "cache"))  # auto-window profiles stay here
    model = "a tiny model of Lumina-mGPT-7B's layout" if args.tiny else "Lumina-mGPT-7B's shape, random weights"
    report = Report(args.out / "gpu_check.md", f"pardecode GPU check: {model} on {device}")
    try:
        run(args, device, budget, report)
    except KeyboardInterrupt:
        report.add(report.section("Interrupted"), f"stopped by the user after {time.monotonic() - budget.start:.0f} s")
        print(report.markdown())
        return 130
    except Exception as err:  # the measurements so far stay in the report, with what stopped the run
        report.add(report.section("Failed"), failure(err))
        print(report.markdown())
        raise
    print(report.markdown())
    progress(f"done in {time.monotonic() - budget.start:.0f} s; report: {report.path}")
    return 0


def run(args, device: torch.device, budget: Budget, report: Report) -> None:
    report.add(report.section("Environment"), *environment(device))
    progress(f"device {device} ({device_name(device)})")

    tests = report.section("Tests on the device")
    if args.no_tests:
        report.add(tests, "skipped (--no-tests)")
    else:
        files = ", ".join(TEST_FILES)
        progress(f"pytest {files} with PARDECODE_TEST_DEVICE={device}")
        cap = budget.deadline(SHARES["tests"]) - time.monotonic()
        summary = run_tests(device, cap, args.out / "tests.log")
        report.add(tests, f"`PARDECODE_TEST_DEVICE={device} pytest {' '.join(TEST_FILES)}`:", "", summary)
        progress(f"tests: {summary}")

    config, tokenizer = model_config(args.tiny)
    dtype = "bfloat16"
    section = report.section("Model")
    t = time.perf_counter()
    reset_peak(device)
    backbone = build(config, tokenizer, device, dtype)
    params = sum(p.numel() for p in backbone.model.parameters())
    count = f"{params / 1e9:.2f} B" if params >= 1e8 else f"{params / 1e6:.2f} M"
    shape = ", ".join(
        f"{k} {config.to_dict().get(k)}"
        for k in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "max_position_embeddings",
            "rms_norm_eps",
        )
    )
    size = (128, 128) if args.tiny else backbone.spec.default_size
    report.add(
        section,
        f"ChameleonConfig: {shape}; {count} parameters in {dtype}, built on {device} in "
        f"{time.perf_counter() - t:.1f} s (peak {peak_gib(device):.2f} GiB). Tokenizer: Lumina-mGPT's ids "
        f"(tests/published_formats.py), {len(tokenizer)} entries. Image size of the pass timings: "
        f"{size[0]}x{size[1]} px ({span_tokens(backbone, size)} span tokens).",
    )
    progress(f"model: {count} parameters")

    passes = 3 if args.tiny else 5
    results: dict = {}
    lines = report.section("Pass seconds by window")
    pass_tables(report, lines, "eager", backbone, device, size, passes, budget.deadline(SHARES["eager"]), results)
    try:
        decode_step(args, report, backbone, device, budget, results)
    except Exception as err:  # reported; the static pass still runs
        report.add(report.sections[-1][1], "", failure(err))
        progress(failure(err))

    static_note = report.section("Static pass")
    del backbone
    release(device)
    try:
        static = build(config, tokenizer, device, dtype, static=True)
    except (TypeError, ConfigError) as err:
        report.add(static_note, f"static pass: not available in this version ({type(err).__name__}: {err})")
        progress("static pass: not available in this version")
        return
    try:
        static_passes(args, report, static_note, lines, static, device, size, passes, budget, results)
    except Exception as err:
        report.add(static_note, failure(err))
        progress(failure(err))


def static_passes(args, report, static_note, lines, static, device, size, passes, budget, results) -> None:
    """The static pass's cells, then (time permitting) its compiled forward's."""
    pass_tables(report, lines, "static", static, device, size, passes, budget.deadline(SHARES["static"]), results)
    if args.no_compile:
        report.add(static_note, "static+compiled: skipped (--no-compile)")
    elif budget.left() < 0.15 * budget.seconds:
        report.add(static_note, "static+compiled: skipped (time cap)")
    else:
        t = time.perf_counter()
        static.compile()
        # a cell starts only with room for one more compilation (each new shape compiles once)
        end = budget.start + budget.seconds - (5.0 if args.tiny else 90.0)
        pass_tables(report, lines, "static+compiled", static, device, size, passes, end, results)
        report.add(static_note, f"static+compiled: compile() and its cells took {time.perf_counter() - t:.1f} s")


def decode_step(args, report: Report, backbone, device: torch.device, budget: Budget, results: dict) -> None:
    """sjd_pac (window auto) and ar on one prompt, at the largest size whose estimate fits its share."""
    section = report.section("Decode: sjd_pac (window auto) vs ar, batch 1")
    ar_cell = results.get(("eager", 1), {}).get(0)
    ar_ms = ar_cell.ms if isinstance(ar_cell, Cell) else None
    sizes = [(128, 128), (64, 64)] if args.tiny else [backbone.spec.default_size, (512, 512), (256, 256)]
    room = budget.deadline(SHARES["decode"]) - time.monotonic()
    chosen = None
    for candidate in sizes:
        estimate = 2.5 * span_tokens(backbone, candidate) * (ar_ms or 0.0) / 1e3  # ar, then sjd_pac (wider passes)
        if ar_ms is not None and estimate < room:
            chosen = candidate
            break
    if chosen is None:
        report.add(section, "skipped: no image size fits the time left")
        return
    if chosen != sizes[0]:
        report.add(section, f"{sizes[0][0]} px did not fit the time left: decoded at {chosen[0]} px instead.", "")
    head = list(section)
    rows = []
    for strategy, options in (("ar", {}), ("sjd_pac", {"window": "auto"})):
        progress(f"decode {strategy} at {chosen[0]}x{chosen[1]} px")
        seconds, n, span = decode_once(backbone, device, strategy, options, chosen)
        rows.append([strategy + (" (window auto)" if options else ""), f"{seconds:.2f}", str(n), f"{span / n:.2f}"])
        section[:] = head + table(["strategy", "seconds", "passes", "tokens per pass"], rows)
        report.write()
    speedup = float(rows[0][1]) / float(rows[1][1])
    report.add(
        section,
        "",
        f"{chosen[0]}x{chosen[1]} px ({span} tokens), one prompt with guidance, seed 0, the eager model: sjd_pac "
        f"{speedup:.2f}x AR's speed. Random weights: acceptance, and so tokens per pass, says nothing about a "
        "trained model.",
    )


if __name__ == "__main__":
    sys.exit(main())
