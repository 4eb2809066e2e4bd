"""Noise conditioning for denoising strategies (SJD2): the schedule and the input module.

A noise-conditioned model reads, at a noisy position, the normalised token embedding mixed with
Gaussian noise in variance-preserving form, z = a(sigma) x0 + s(sigma) eps with
a = 1/sqrt(1+sigma^2), s = sigma/sqrt(1+sigma^2), de-normalised back to the embedding scale, plus
a learned encoding of sigma. Normalising first matters: raw embedding tables have per-dimension
scales far from the noise's, and denoising in that space fails. Positions at sigma 0 are fed the
clean token embedding itself, so a noise-conditioned model decodes exactly as before with every
other strategy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import attrs
import torch
from torch import nn

from .backbone import NoisyInputs
from .errors import CheckpointError, ConfigError


def _positive(_, attribute, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{attribute.name} must be a finite number > 0, got {value!r}")


@attrs.frozen
class NoiseSchedule:
    """Karras-style noise levels: sigma_k for k = 1..steps, from sigma_min (k=1) to sigma_max (k=steps).

    Index k counts the denoising steps a position still needs; sigma_0 = 0 is the clean input.
    """

    steps: int = attrs.field(default=8)
    sigma_min: float = attrs.field(default=0.1, validator=_positive)
    sigma_max: float = attrs.field(default=10.0, validator=_positive)
    rho: float = attrs.field(default=7.0, validator=_positive)

    def __attrs_post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}")
        if self.sigma_min >= self.sigma_max:
            raise ConfigError(f"sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})")

    def sigmas(self) -> torch.Tensor:
        """Float[steps + 1]: sigma_0 = 0, then increasing levels up to sigma_max."""
        if self.steps == 1:
            levels = torch.tensor([self.sigma_max])
        else:
            ramp = torch.linspace(0, 1, self.steps, dtype=torch.float64)
            lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
            levels = (lo + ramp * (hi - lo)) ** self.rho
        return torch.cat([torch.zeros(1, dtype=torch.float64), levels.double()]).float()


def vp_coefficients(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, s): signal and noise scales of z = a x0 + s eps at level sigma (a^2 + s^2 = 1)."""
    a = torch.rsqrt(1 + sigma**2)
    return a, sigma * a


def ddim_step(z: torch.Tensor, x0: torch.Tensor, sigma_from: torch.Tensor, sigma_to: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step from level sigma_from to sigma_to toward the clean estimate x0.

    z' = (s'/s) z + a (a'/a - s'/s) x0; at sigma_to = 0 this is exactly x0. Levels broadcast
    against z's leading dims (z: [..., D], sigmas: [...]).
    """
    a, s = vp_coefficients(sigma_from.unsqueeze(-1))
    a2, s2 = vp_coefficients(sigma_to.unsqueeze(-1))
    ratio = s2 / s.clamp_min(torch.finfo(z.dtype).tiny)
    return ratio * z + (a2 - a * ratio) * x0


class NoiseConditioning(nn.Module):
    """Turns noisy normalised embeddings into model inputs: de-normalise, add a sigma encoding."""

    def __init__(self, dim: int, mean: torch.Tensor, std: torch.Tensor, frequencies: int = 16, hidden: int = 128):
        super().__init__()
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ConfigError(f"mean and std must have shape ({dim},), got {tuple(mean.shape)} and {tuple(std.shape)}")
        self.dim, self.frequencies, self.hidden = dim, frequencies, hidden
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("std", std.detach().float().clamp_min(1e-6).clone())
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(64.0), frequencies)))
        self.time = nn.Sequential(nn.Linear(2 * frequencies, hidden), nn.SiLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.time[-1].weight)  # starts as the identity on the base model
        nn.init.zeros_(self.time[-1].bias)

    @classmethod
    def for_embeddings(cls, table: torch.Tensor, **kwargs) -> NoiseConditioning:
        """A module normalising with the per-dimension mean and std of `table` [N, D] (image tokens)."""
        table = table.detach().float()
        return cls(table.shape[1], table.mean(0), table.std(0), **kwargs)

    def normalize(self, embeds: torch.Tensor) -> torch.Tensor:
        return (embeds.float() - self.mean) / self.std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean

    def encode_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """Float[..., D] learned encoding of log sigma (sigma > 0)."""
        c = torch.log(sigma.float().clamp_min(1e-4)).unsqueeze(-1) / 4
        angles = c * self.freqs.to(c.device)
        return self.time(torch.cat([angles.sin(), angles.cos()], -1))

    def inputs_embeds(self, clean: torch.Tensor, noisy: NoisyInputs | None) -> torch.Tensor:
        """Model inputs: `clean` token embeddings [R, q, D] where the level is 0, noisy ones elsewhere."""
        if noisy is None:
            return clean
        level = noisy.level.to(clean.device)
        mixed = self.denormalize(noisy.embeds.to(clean.device).float()) + self.encode_level(level)
        return torch.where((level > 0).unsqueeze(-1), mixed.to(clean.dtype), clean)

    def config(self) -> dict:
        return {"dim": self.dim, "frequencies": self.frequencies, "hidden": self.hidden}

    def save(self, directory: str | Path, name: str = "noise_conditioning") -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, directory / f"{name}.safetensors")
        (directory / f"{name}.json").write_text(json.dumps(self.config(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path, name: str = "noise_conditioning") -> NoiseConditioning | None:
        """The module saved in `directory`, or None if the checkpoint has none."""
        from safetensors.torch import load_file

        directory = Path(directory)
        weights, config = directory / f"{name}.safetensors", directory / f"{name}.json"
        if not weights.exists():
            return None
        try:
            cfg = json.loads(config.read_text())
            state = load_file(str(weights))
            module = cls(cfg["dim"], state["mean"], state["std"], cfg["frequencies"], cfg["hidden"])
            module.load_state_dict(state)
        except Exception as err:  # a truncated file is a SafetensorError; a foreign one a KeyError, ...
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            raise CheckpointError(f"cannot load the noise conditioning in {directory}: {reason}") from None
        return module
