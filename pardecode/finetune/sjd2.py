"""Next-clean-token fine-tuning: teach a backbone to read noisy embeddings (SJD2's first half).

Every position's input is its token embedding, except noisy segments of the image span, whose
normalised embeddings are mixed with Gaussian noise at the segment's level and given a learned
level encoding (`NoiseConditioning`). The loss is the ordinary cross-entropy of the next CLEAN
token over the span. Works for any `HFBackbone` (the model must accept `inputs_embeds`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F

from ..core.backbone import NoisyInputs
from ..core.errors import ConfigError
from ..core.noise import NoiseConditioning, vp_coefficients
from ..core.quiet import quiet_loading
from .data import TrainingSet
from .noising import SegmentNoise

STATE_FILE = "finetune-state.pt"


def _positive(kind):
    def check(_, attribute, value):
        if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
            raise ConfigError(f"{attribute.name} must be a positive {kind.__name__}, got {value!r}")

    return check


@attrs.frozen
class FinetuneConfig:
    """The recipe's knobs; defaults are the ones the shipped fashion-sjd2 model was made with."""

    steps: int = attrs.field(default=2000, validator=_positive(int))
    batch_size: int = attrs.field(default=32, validator=_positive(int))
    lr: float = attrs.field(default=2e-4, validator=_positive(float))
    warmup: int = attrs.field(default=50, validator=_positive(int))
    noise: SegmentNoise = SegmentNoise()
    seed: int = 0
    checkpoint_every: int = attrs.field(default=100, validator=_positive(int))
    time_budget_s: float | None = None


def _inputs(backbone, noise: NoiseConditioning, batch: TrainingSet, sigma: torch.Tensor, generator) -> torch.Tensor:
    clean = backbone.body.get_input_embeddings()(batch.ids)
    x0 = noise.normalize(clean.detach())
    a, s = vp_coefficients(sigma.unsqueeze(-1))
    z = a * x0 + s * torch.randn(x0.shape, generator=generator)
    return noise.inputs_embeds(clean, NoisyInputs(z, sigma))


def span_nll(
    backbone, noise: NoiseConditioning | None, batch: TrainingSet, sigma: torch.Tensor | None = None, generator=None
) -> torch.Tensor:
    """Mean cross-entropy of the span's next clean tokens, under noise levels `sigma` (None = clean)."""
    from ..adapters.hf import additive_mask

    if sigma is None or noise is None:
        inputs = backbone.body.get_input_embeddings()(batch.ids)
    else:
        inputs = _inputs(backbone, noise, batch, sigma, generator)
    valid = batch.valid
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)
    mask = additive_mask(valid, valid.shape[1], inputs.dtype) if not bool(valid.all()) else None
    hidden = backbone.body(
        inputs_embeds=inputs, attention_mask=mask, position_ids=positions, use_cache=False
    ).last_hidden_state
    targets = batch.targets
    logits = backbone.head(hidden[:, :-1][:, targets])
    return F.cross_entropy(logits.float().flatten(0, 1), batch.ids[:, 1:][:, targets].flatten())


@torch.no_grad()
def clean_nll(backbone, data: TrainingSet, batch_size: int = 64) -> float:
    """Held-out clean negative log-likelihood per span token."""
    was = backbone.body.training
    backbone.body.eval()
    total = 0.0
    for start in range(0, len(data), batch_size):
        part = data.batch(torch.arange(start, min(start + batch_size, len(data))))
        total += float(span_nll(backbone, None, part)) * len(part)
    backbone.body.train(was)
    return total / len(data)


def attach_noise(backbone) -> NoiseConditioning:
    """The backbone's noise module, created from its image-token embedding statistics if it has none."""
    if backbone.noise is None:
        with torch.no_grad():
            table = backbone.span_embedding(backbone.image_tokens)
        backbone.noise = NoiseConditioning.for_embeddings(table).to(table.device)
    return backbone.noise


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed run must share with the run that saved the state."""
    return {k: v for k, v in config.items() if k not in ("steps", "time_budget_s", "checkpoint_every")}


def _lr(step: int, config: FinetuneConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def save_checkpoint(backbone, out: Path) -> Path:
    """The fine-tuned checkpoint: the source directory's files, new weights, the noise module."""
    out.mkdir(parents=True, exist_ok=True)
    backbone.tokenizer.save_pretrained(str(out))
    root = getattr(backbone, "root", None)
    if root is not None:
        for item in Path(root).iterdir():
            keep = not item.name.startswith(("model", "noise_conditioning", "tokenizer", "config.json", "finetune"))
            if item.is_file() and keep:
                shutil.copy2(item, out / item.name)
    with quiet_loading():  # no "Writing model shards" bar
        backbone.model.save_pretrained(str(out))
    backbone.noise.save(out)
    return out


def finetune_sjd2(
    backbone,
    train: TrainingSet,
    out_dir: str | Path,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    held_out: TrainingSet | None = None,
    progress: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Fine-tune `backbone` in place for noisy inputs; write `out_dir/model` and `out_dir/metrics.json`.

    A resumable state (weights, optimiser, step, RNG) is saved every `checkpoint_every` steps and
    on interruption, so re-running the same call continues where it stopped.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    noise = attach_noise(backbone).train()
    params = list(backbone.model.parameters()) + list(noise.parameters())
    optim = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    base_nll = clean_nll(backbone, held_out) if held_out is not None else None
    step, elapsed, losses = 0, 0.0, []
    state_path = out / STATE_FILE
    if resume and state_path.exists():
        state = torch.load(state_path, weights_only=False)
        if _identity(state["config"]) != _identity(attrs.asdict(config, recurse=True)):
            raise ConfigError(f"{state_path} was made with another recipe; use another out_dir or resume=False")
        backbone.model.load_state_dict(state["model"])
        noise.load_state_dict(state["noise"])
        optim.load_state_dict(state["optim"])
        generator.set_state(state["generator"])
        step, elapsed, losses, base_nll = state["step"], state["elapsed"], state["losses"], state["base_nll"]

    def save_state():
        torch.save(
            {
                "model": backbone.model.state_dict(),
                "noise": noise.state_dict(),
                "optim": optim.state_dict(),
                "generator": generator.get_state(),
                "step": step,
                "elapsed": elapsed,
                "losses": losses,
                "base_nll": base_nll,
                "config": attrs.asdict(config, recurse=True),
            },
            state_path,
        )

    backbone.body.train()
    bar = tqdm(total=config.steps, initial=step, desc="finetune-sjd2", disable=not progress)
    try:
        while step < config.steps and (config.time_budget_s is None or elapsed < config.time_budget_s):
            started = time.perf_counter()
            index = torch.randint(len(train), (config.batch_size,), generator=generator)
            batch = train.batch(index)
            sigma = config.noise.levels(batch.noisable, len(batch), generator)
            loss = span_nll(backbone, noise, batch, sigma, generator)
            for group in optim.param_groups:
                group["lr"] = _lr(step, config)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            step += 1
            elapsed += time.perf_counter() - started
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
            if step % config.checkpoint_every == 0:
                save_state()
    except KeyboardInterrupt:
        save_state()
        raise
    finally:
        bar.close()
    save_state()
    backbone.body.eval()
    backbone.attach_noise(noise)
    metrics = {
        "steps": step,
        "train_seconds": round(elapsed, 1),
        "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
        "first_loss": round(sum(losses[:20]) / max(1, len(losses[:20])), 4),
        "config": attrs.asdict(config, recurse=True),
    }
    if held_out is not None:
        tuned = clean_nll(backbone, held_out)
        metrics |= {
            "held_out_sequences": len(held_out),
            "base_clean_nll": round(base_nll, 5),
            "tuned_clean_nll": round(tuned, 5),
            "relative_change": round(tuned / base_nll - 1, 5),
        }
    save_checkpoint(backbone, out / "model")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
