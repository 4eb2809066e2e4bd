"""Train the default text-to-image model: a small Chameleon on Fashion-MNIST in the Lumina-mGPT layout.

The result is a real `ChameleonForConditionalGeneration` checkpoint, so the Chameleon adapter and the
decoding strategies exercise the same code path as on Lumina-mGPT weights, at a size a CPU trains in
well under an hour.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import CheckpointError, ConfigError
from . import CLASS_NAMES, data
from . import vocab as V
from .tokenizer import PatchTokenizer

CODEBOOK_FILE = "codebook.safetensors"
STATE_FILE = "state.pt"


def _positive(kind: type, allow_none: bool = False):
    def check(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
            extra = " or None" if allow_none else ""
            raise ConfigError(f"{attribute.name} must be a positive {kind.__name__}{extra}, got {value!r}")

    return check


def _fraction(inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{attribute.name} must be a number in [0, 1), got {value!r}")


@attrs.frozen
class RecipeConfig:
    """Everything that determines the trained weights (plus the wall-clock safety stop)."""

    steps: int = attrs.field(default=3000, validator=_positive(int))
    batch_size: int = attrs.field(default=16, validator=_positive(int))
    lr: float = attrs.field(default=2e-3, validator=_positive(float))
    min_lr_ratio: float = attrs.field(default=0.05, validator=_fraction)
    warmup_steps: int = attrs.field(default=50, validator=_positive(int))
    weight_decay: float = attrs.field(default=0.05, validator=_fraction)
    grad_clip: float = attrs.field(default=1.0, validator=_positive(float))
    hidden_size: int = attrs.field(default=128, validator=_positive(int))
    num_layers: int = attrs.field(default=4, validator=_positive(int))
    num_heads: int = attrs.field(default=4, validator=_positive(int))
    intermediate_size: int = attrs.field(default=352, validator=_positive(int))
    codebook_size: int = attrs.field(default=256, validator=_positive(int))
    codebook_iters: int = attrs.field(default=25, validator=_positive(int))
    uncond_prob: float = attrs.field(default=0.1, validator=_fraction)
    seed: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))
    time_budget_s: float | None = attrs.field(default=2400.0, validator=_positive(float, allow_none=True))
    checkpoint_every: int = attrs.field(default=50, validator=_positive(int))
    limit: int | None = attrs.field(default=None, validator=_positive(int, allow_none=True))
    eval_limit: int | None = attrs.field(default=2000, validator=_positive(int, allow_none=True))
    cfg_scale: float = attrs.field(default=3.0, validator=_positive(float))
    top_k: int = attrs.field(
        default=0, validator=attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.ge(0))
    )
    threads: int = attrs.field(default=2, validator=_positive(int))

    def __attrs_post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.codebook_size < 2:
            raise ConfigError(f"codebook_size must be >= 2, got {self.codebook_size}")

    @property
    def vocab_size(self) -> int:
        return V.IMAGE_TOKEN_LO + self.codebook_size


# ---------------------------------------------------------------- model


def build_model(config: RecipeConfig):
    """A fresh `ChameleonForConditionalGeneration` with a token-free placeholder VQ-VAE (tiny: we decode
    with the patch codebook, as Lumina-mGPT decodes with its own VQGAN outside the model)."""
    from transformers import ChameleonConfig, ChameleonForConditionalGeneration

    cfg = ChameleonConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=512,
        pad_token_id=V.PAD_ID,
        bos_token_id=V.BOS_ID,
        eos_token_id=V.EOS_ID,
        vocabulary_map=V.vocabulary(config.codebook_size),
        vq_config=dict(
            embed_dim=4,
            num_embeddings=4,
            latent_channels=4,
            in_channels=3,
            base_channels=32,
            channel_multiplier=[1],
            num_res_blocks=1,
            resolution=8,
        ),
    )
    torch.manual_seed(config.seed)
    return ChameleonForConditionalGeneration(cfg)


def count_parameters(model) -> int:
    """Parameters of the language model (decoder + lm_head), not the unused placeholder VQ-VAE."""
    return sum(p.numel() for n, p in model.named_parameters() if "vqmodel" not in n)


# ---------------------------------------------------------------- sequences


def _prompt_table() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded prefix ids [P, Lmax] (prompt + separator + image header), their lengths [P], classes [P].

    Row 0 is the unconditional prefix [bos, start-of-image, h, w] (classifier-free guidance branch).
    """
    header = V.image_header(14, 14)
    rows: list[list[int]] = [[V.BOS_ID] + header]
    classes = [-1]
    for c, name in enumerate(CLASS_NAMES):
        for prompt in V.PROMPTS_BY_CLASS[name]:
            rows.append(V.prompt_ids(prompt) + [V.SEPARATOR_ID] + header)
            classes.append(c)
    lengths = torch.tensor([len(r) for r in rows])
    table = torch.full((len(rows), int(lengths.max())), V.PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):  # ~100 rows, once
        table[i, : len(r)] = torch.tensor(r)
    return table, lengths, torch.tensor(classes)


def tokenise(
    codes: torch.Tensor, labels: torch.Tensor, uncond_prob: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded sequences Long[N, L] and the start index of each image body Long[N].

    Each image gets a random phrasing of its class, or the unconditional prefix with probability
    `uncond_prob`. Padding sits at the end, so plain causal attention never sees it and positions
    start at 0 exactly as at inference; padded targets are excluded from the loss.
    """
    table, lengths, classes = _prompt_table()
    span = V.image_span(codes)
    n, s = span.shape
    # choose a phrasing of each image's class: rows of class c are contiguous in the table
    per_class = torch.bincount(classes[1:], minlength=len(CLASS_NAMES))
    first = 1 + torch.cumsum(per_class, 0) - per_class
    lab = labels.long()
    pick = first[lab] + (torch.rand(n, generator=gen) * per_class[lab]).long()
    pick = torch.where(torch.rand(n, generator=gen) < uncond_prob, torch.zeros_like(pick), pick)
    plen = lengths[pick]
    total = table.shape[1] + s
    j = torch.arange(total).unsqueeze(0)
    from_prefix = table[pick].gather(1, j.clamp(max=table.shape[1] - 1).expand(n, -1))
    from_span = span.gather(1, (j - plen.unsqueeze(1)).clamp(0, s - 1))
    seq = torch.where(j < plen.unsqueeze(1), from_prefix, from_span)
    seq = torch.where(j >= (plen + s).unsqueeze(1), torch.full_like(seq, V.PAD_ID), seq)
    return seq, plen


def _span_len() -> int:
    return 14 * 15 + 1


def image_span_loss(model, seq: torch.Tensor, body_start: torch.Tensor, reduction: str = "mean"):
    """Cross-entropy of the image-span targets (image tokens, end-of-lines, end-of-image).

    Uses the decoder and `lm_head` directly: `ChameleonForConditionalGeneration.forward` masks image
    logits, which a text-to-image model must predict.
    """
    hidden = model.model(input_ids=seq, use_cache=False).last_hidden_state
    pos = torch.arange(seq.shape[1] - 1).unsqueeze(0)
    tgt_pos = pos + 1
    mask = (tgt_pos >= body_start.unsqueeze(1)) & (tgt_pos < (body_start + _span_len()).unsqueeze(1))
    logits = model.lm_head(hidden[:, :-1][mask])
    targets = seq[:, 1:][mask]
    return F.cross_entropy(logits.float(), targets, reduction=reduction), targets


# ---------------------------------------------------------------- checkpoint formats


def write_model_dir(model, tokenizer: PatchTokenizer, config: RecipeConfig, directory: Path) -> Path:
    """The shipped checkpoint: HF weights + text tokenizer + pardecode.json + codebook."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    V.save_text_tokenizer(directory, config.codebook_size)
    tokenizer.save(directory / CODEBOOK_FILE)
    meta = {
        "family": "chameleon",
        "bos_id": V.BOS_ID,
        "separator_id": V.SEPARATOR_ID,
        "start_of_image_id": V.START_OF_IMAGE_ID,
        "end_of_image_id": V.END_OF_IMAGE_ID,
        "end_of_line_id": V.END_OF_LINE_ID,
        "size_token_base": V.SIZE_TOKEN_BASE,
        "tokens_per_grid_unit": V.TOKENS_PER_GRID_UNIT,
        "pixels_per_token": V.PIXELS_PER_TOKEN,
        "image_token_range": [V.IMAGE_TOKEN_LO, V.IMAGE_TOKEN_LO + tokenizer.size],
        "prompt_template": V.PROMPT_TEMPLATE,
        "default_size": list(V.DEFAULT_SIZE),
        "cfg_scale": config.cfg_scale,
        "top_k": config.top_k,
        "image_decoder": CODEBOOK_FILE,
    }
    (directory / "pardecode.json").write_text(json.dumps(meta, indent=2) + "\n")
    return directory


_RESUMABLE_CHANGES = frozenset({"steps", "time_budget_s", "checkpoint_every", "eval_limit", "threads"})


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """The config fields a resumed run must share (it may run longer or checkpoint more often)."""
    return {k: v for k, v in config.items() if k not in _RESUMABLE_CHANGES}


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _save_state(path: Path, model, optim, step: int, elapsed: float, config: RecipeConfig, train_loss: float) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (STATE_FILE + ".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optim": optim.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "rng": _rng_state(),
            "config": attrs.asdict(config),
            "train_loss": train_loss,
        },
        tmp,
    )
    os.replace(tmp, path / STATE_FILE)  # atomic: an interrupt mid-write keeps the previous state


# ---------------------------------------------------------------- training


def _lr_at(step: int, config: RecipeConfig, elapsed: float = 0.0) -> float:
    """Linear warm-up then cosine decay to min_lr_ratio * lr.

    With a time budget the decay follows whichever of steps or wall-clock runs out first, so a run on
    a busy machine still ends with a decayed learning rate instead of being cut mid-schedule.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    if config.time_budget_s is not None:
        t = max(t, elapsed / config.time_budget_s)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _fit_or_load_codebook(out_dir: Path, config: RecipeConfig, train_images: np.ndarray) -> PatchTokenizer:
    path = out_dir / CODEBOOK_FILE
    if path.exists():
        tok = PatchTokenizer.load(path)
        if tok.size == config.codebook_size:
            return tok
    tok = PatchTokenizer.fit(train_images, size=config.codebook_size, iters=config.codebook_iters, seed=config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(path)
    return tok


@torch.no_grad()
def evaluate(model, codes: torch.Tensor, labels: torch.Tensor, seed: int, batch: int = 250) -> dict[str, float]:
    """Teacher-forced held-out NLL (nats) per image token (codebook ids only) and per span token."""
    model.eval()
    seq, start = tokenise(codes, labels, 0.0, torch.Generator().manual_seed(seed + 7))
    img_nll, img_n, span_nll, span_n = 0.0, 0, 0.0, 0
    for i in range(0, len(seq), batch):
        nll, targets = image_span_loss(model, seq[i : i + batch], start[i : i + batch], reduction="none")
        is_img = targets >= V.IMAGE_TOKEN_LO
        img_nll += float(nll[is_img].sum())
        img_n += int(is_img.sum())
        span_nll += float(nll.sum())
        span_n += nll.numel()
    model.train()
    return {
        "test_nll_per_image_token": img_nll / img_n,
        "test_nll_per_span_token": span_nll / span_n,
        "test_images": len(seq),
    }


def train_default_model(
    out_dir: str | os.PathLike,
    config: RecipeConfig | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    resume: bool = True,
) -> Path:
    """Fit the codebook, train the model (resumable from `out_dir/checkpoint/`), write `out_dir/model/`
    and `out_dir/metrics.json`; returns the model directory."""
    from tqdm.auto import tqdm

    config = config or RecipeConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    ckpt_dir = out / "checkpoint"

    train_x, train_y = data.load("train", data_dir)
    test_x, test_y = data.load("test", data_dir)
    if config.limit:
        train_x, train_y = train_x[: config.limit], train_y[: config.limit]
    if config.eval_limit:
        test_x, test_y = test_x[: config.eval_limit], test_y[: config.eval_limit]
    codebook = _fit_or_load_codebook(out, config, train_x)
    recon = codebook.reconstruction_error(test_x)
    train_codes, train_labels = codebook.encode(train_x), torch.tensor(np.asarray(train_y)).long()

    model = build_model(config)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "vqmodel" not in n]
    other = [p for n, p in model.named_parameters() if p.ndim < 2 and "vqmodel" not in n]
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    step, elapsed, ema = 0, 0.0, float("nan")
    state_path = ckpt_dir / STATE_FILE
    if resume and state_path.exists():
        state = torch.load(state_path, weights_only=False)
        saved, now = (_identity(c) for c in (state["config"], attrs.asdict(config)))
        if saved != now:
            diff = {k: (saved.get(k), now.get(k)) for k in set(saved) | set(now) if saved.get(k) != now.get(k)}
            raise CheckpointError(
                f"{state_path} was written with another RecipeConfig (saved, given: {diff}); "
                "pass the same config, resume=False, or another out_dir"
            )
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        step, elapsed, ema = state["step"], state["elapsed"], state["train_loss"]
        _set_rng_state(state["rng"])
    else:
        torch.manual_seed(config.seed)

    n = len(train_codes)
    per_epoch = max(1, n // config.batch_size)
    epoch_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def batch_at(s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch of step s; a function of (seed, step) only, so a resumed run sees the same data."""
        epoch, k = divmod(s, per_epoch)
        if epoch not in epoch_cache:
            epoch_cache.clear()
            gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)
            perm = torch.randperm(n, generator=gen)
            seq, start = tokenise(train_codes[perm], train_labels[perm], config.uncond_prob, gen)
            epoch_cache[epoch] = (seq, start)
        seq, start = epoch_cache[epoch]
        sl = slice(k * config.batch_size, (k + 1) * config.batch_size)
        return seq[sl], start[sl]

    model.train()
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="train", dynamic_ncols=True)
    t0 = time.perf_counter() - elapsed
    tokens_seen = 0
    t_run = time.perf_counter()
    try:
        while step < config.steps:
            if config.time_budget_s is not None and time.perf_counter() - t0 >= config.time_budget_s:
                break
            seq, start = batch_at(step)
            for g in optim.param_groups:
                g["lr"] = _lr_at(step, config, time.perf_counter() - t0)
            loss, _ = image_span_loss(model, seq, start)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optim.step()
            step += 1
            tokens_seen += seq.numel()
            value = loss.item()
            ema = value if math.isnan(ema) else 0.98 * ema + 0.02 * value
            bar.update(1)
            if step % 10 == 0 or step == config.steps:
                rate = tokens_seen / max(1e-9, time.perf_counter() - t_run)
                bar.set_postfix(loss=f"{ema:.3f}", lr=f"{optim.param_groups[0]['lr']:.1e}", tok_s=f"{rate:.0f}")
            if step % config.checkpoint_every == 0:
                _save_state(ckpt_dir, model, optim, step, time.perf_counter() - t0, config, ema)
    except KeyboardInterrupt:
        _save_state(ckpt_dir, model, optim, step, time.perf_counter() - t0, config, ema)
        bar.close()
        raise
    bar.close()
    elapsed = time.perf_counter() - t0
    _save_state(ckpt_dir, model, optim, step, elapsed, config, ema)

    model_dir = write_model_dir(model, codebook, config, out / "model")
    metrics = {
        "steps": step,
        "steps_planned": config.steps,
        "train_seconds": elapsed,
        "train_loss_ema": ema,
        "tokens_per_second": tokens_seen / max(1e-9, time.perf_counter() - t_run) if tokens_seen else None,
        "parameters": count_parameters(model),
        "codebook_size": codebook.size,
        "codebook_test_mse": recon["mse"],
        "codebook_test_psnr_db": recon["psnr_db"],
        "config": attrs.asdict(config),
    }
    metrics.update(evaluate(model, codebook.encode(test_x), torch.tensor(np.asarray(test_y)).long(), config.seed))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return model_dir


if __name__ == "__main__":  # python -m pardecode.fashion.recipe OUT_DIR
    import sys

    print(train_default_model(sys.argv[1] if len(sys.argv) > 1 else "runs/fashion"))
