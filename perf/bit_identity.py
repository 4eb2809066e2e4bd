"""Record or check the exact tokens of today's strategies (same seeds), to prove a loop change
leaves their outputs bit-identical.

    python perf/bit_identity.py record FILE   # before the change
    python perf/bit_identity.py check FILE    # after: exits 1 on any difference
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch

from pardecode import SamplingConfig, decode, get_backbone, get_strategy
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.plugins import plugins

PROMPTS = ["a sneaker", "a dress", "a bag", "an ankle boot"]
SETTINGS = [  # (strategy, options, sampling)
    ("ar", {}, None),
    ("ar", {}, SamplingConfig(temperature=0)),
    ("jacobi", {"window": 16}, SamplingConfig(temperature=0)),
    ("sjd", {"window": 16}, None),
    ("sjd", {"window": 8, "init": "repeat", "coupling": "gumbel"}, None),
]
# the field's strategies and the placed-slot (many fronts) path, on grid spans only
FIELD_SETTINGS = [
    ("sjd", {"window": 8, "coupling": "maximal"}, None),
    ("sjd_pac", {"window": 16}, None),
    ("sjd_pac_tree", {"window": 16}, None),
    ("sjd_pac_tree", {"window": 8, "branches": 3, "siblings": "sampled"}, None),
    ("sjd_reuse", {"window": 16}, None),
    ("sjd_above", {"window": 16}, None),
    ("lantern", {"window": 16}, None),
    ("gsd", {"window": 16}, None),
    ("entropy_sd", {"window": 16}, None),
    ("zipar", {}, None),
    ("zipar", {"window": 99}, None),
    ("pjd", {}, None),
    ("pjd", {"rows": 1}, None),
    ("pjd", {"mask": "causal", "init": "random", "coupling": "independent"}, None),
]


def fingerprints() -> dict[str, str]:
    out = {}
    toys = {
        "toy": ToyBackbone(vocab_size=6, length=40, seed=1),
        "toy-grid": ToyBackbone(vocab_size=6, grid=(4, 5), seed=2),
        "toy-noisy": ToyBackbone(vocab_size=6, grid=(4, 5), seed=2, noise_dim=4),
    }
    runs = [(name, bb) for name, bb in toys.items() if name != "toy-noisy"]
    runs += [("fashion", get_backbone("fashion"))]
    for bname, bb in runs:
        for strat, opts, sampling in SETTINGS:
            for seed in (0, 1):
                res = decode(bb, get_strategy(strat, **opts), PROMPTS, sampling=sampling, seed=seed)
                key = f"{bname}/{strat}/{json.dumps(opts, sort_keys=True)}/{sampling}/{seed}"
                out[key] = hashlib.sha256(res.tokens.numpy().tobytes()).hexdigest()[:16] + f"/{res.forward_passes}"
        if bname == "toy":
            continue
        for strat, opts, sampling in FIELD_SETTINGS:
            if strat in ("lantern", "gsd") and bb.image_codebook() is None:  # latent neighbourhoods
                continue
            for seed in (0, 1):
                res = decode(bb, get_strategy(strat, **opts), PROMPTS, sampling=sampling, seed=seed)
                key = f"{bname}/{strat}/{json.dumps(opts, sort_keys=True)}/{sampling}/{seed}"
                out[key] = hashlib.sha256(res.tokens.numpy().tobytes()).hexdigest()[:16] + f"/{res.forward_passes}"
    sjd2_backbones = [("toy-noisy", toys["toy-noisy"]), ("fashion-sjd2", get_backbone("fashion-sjd2"))]
    for bname, bb in sjd2_backbones:
        for seed in (0, 1):
            # explicit windows: an automatic one depends on the machine's cost profile, not only on the seed
            for opts in ({"window": 64}, {"window": 16, "coupling": "independent"}):
                res = decode(bb, get_strategy("sjd2", **opts), PROMPTS, seed=seed)
                key = f"{bname}/sjd2/{json.dumps(opts, sort_keys=True)}/{seed}"
                out[key] = hashlib.sha256(res.tokens.numpy().tobytes()).hexdigest()[:16] + f"/{res.forward_passes}"
    return out


def canonical(key: str) -> str:
    """`key` with its strategy under its registered name: a file recorded under a former name
    (`sjd-above`) checks against today's (`sjd_above`)."""
    backbone, strategy, rest = key.split("/", 2)
    return f"{backbone}/{plugins().strategies.canonical(strategy)}/{rest}"


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    mode, path = argv
    got = fingerprints()
    if mode == "record":
        with open(path, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
        print(f"recorded {len(got)} fingerprints")
        return 0
    want = {canonical(k): v for k, v in json.load(open(path)).items()}
    bad = [k for k in want if want[k] != got.get(k)]
    for k in bad:
        print(f"DIFFERS {k}: {want[k]} -> {got.get(k)}")
    print(f"{len(want) - len(bad)}/{len(want)} identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
