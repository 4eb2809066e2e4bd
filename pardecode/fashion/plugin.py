"""The default model as a plugin: `fashion` and `fashion-sjd2` arrive through the same
`pardecode_register_backbones` hook a third-party package implements, and its evaluator as the
`fashion` metric through `pardecode_register_metrics`.

The factories import the model code (transformers) only when called, so building the registry stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CheckpointError
from ..core.plugins import hookimpl

#: where the project's default model ships (written by the Fashion-MNIST training recipe)
FASHION_DIR = Path(__file__).resolve().parent / "assets" / "fashion-t2i"
#: the same model fine-tuned for noisy inputs (`pardecode finetune-sjd2`)
FASHION_SJD2_DIR = FASHION_DIR.with_name("fashion-t2i-sjd2")
#: the cost profile shipped beside a checkpoint: where a first decode's window planner starts
PRIOR_FILE = "cost_prior.json"


def load_fashion(
    *,
    dtype: str = "float32",
    device: str = "cpu",
    path: str | Path | None = None,
    name: str = "fashion",
    static: bool = False,
):
    """The project's default Fashion-MNIST text-to-image model (Chameleon architecture), loaded on call;
    `static`: the static pass (fixed shapes after the prompt, for `--compile`; `pardecode.adapters.hf_static`)."""
    from .backbone import FashionBackbone

    root = Path(path) if path is not None else FASHION_DIR
    if not (root / "config.json").is_file():
        raise CheckpointError(
            f"the {name!r} model is missing: no checkpoint at {str(root)!r}. It ships with the "
            "package once trained; until then use another backbone or pass path= to a trained copy."
        )
    backbone = FashionBackbone.from_pretrained(root, dtype=dtype, device=device, name=name, static=static)
    backbone.prior_file = root / PRIOR_FILE
    return backbone


def load_fashion_sjd2(
    *, dtype: str = "float32", device: str = "cpu", path: str | Path | None = None, static: bool = False
):
    """The default model after next-clean-token fine-tuning: reads noisy inputs, so `sjd2` runs on it."""
    return load_fashion(
        dtype=dtype,
        device=device,
        path=path if path is not None else FASHION_SJD2_DIR,
        name="fashion-sjd2",
        static=static,
    )


@hookimpl
def pardecode_register_backbones(register):
    register("fashion", load_fashion, "The project's small Fashion-MNIST text-to-image model (Chameleon architecture)")
    register("fashion-sjd2", load_fashion_sjd2, "The default model fine-tuned to read noisy inputs (for sjd2)")


@hookimpl
def pardecode_register_metrics(register):
    from .metric import FashionMetric

    register("fashion", FashionMetric, "The default model's evaluator: prompt agreement and Fréchet distance")
