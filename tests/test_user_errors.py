"""Every user error is one line on stderr naming the bad value and what is allowed, exit code 2, no
traceback; the Python API raises pardecode's own errors for the same mistakes."""

import shutil

import pytest
import torch

import pardecode
from pardecode import SamplingConfig, decode, get_backbone, get_strategy
from pardecode.adapters import FASHION_DIR
from pardecode.adapters.toy import ToyBackbone
from pardecode.cli import main
from pardecode.core.backbone import Scores
from pardecode.core.errors import BackboneError, CheckpointError, ConfigError


def fails(capsys, *args) -> str:
    """Run the CLI expecting a user error; return its one stderr line."""
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pardecode: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "flag,option,allowed",
    [
        ("-S", "windw=8", "its options: window, init, coupling"),
        ("-B", "pth=/tmp/x", "its options: dtype, device, path, name"),
    ],
)
def test_a_mistyped_option_is_named_with_the_allowed_ones(capsys, flag, option, allowed):
    err = fails(capsys, "generate", "--prompt", "a bag", "--strategy", "sjd", flag, option)
    assert repr(option.split("=")[0]) in err and allowed in err


def test_the_api_refuses_mistyped_options_with_its_own_error():
    with pytest.raises(ConfigError, match="unknown option\\(s\\) 'windw' for strategy 'sjd'; its options: window"):
        get_strategy("sjd", windw=8)
    with pytest.raises(ConfigError, match="'lenght' for backbone 'toy'"):
        get_backbone("toy", lenght=3)
    with pytest.raises(ConfigError, match="'windw' for strategy 'jacobi'"):
        decode(ToyBackbone(length=4), "jacobi", ["a"], strategy_options={"windw": 2})


def test_a_truncated_checkpoint_is_a_checkpoint_error(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(FASHION_DIR, ckpt)
    with open(ckpt / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    err = fails(capsys, "generate", "--prompt", "a bag", "-B", f"path={ckpt}")
    assert "cannot read weights file" in err and str(ckpt) in err
    with pytest.raises(CheckpointError):
        get_backbone("fashion", path=ckpt)


def test_a_truncated_codebook_is_a_checkpoint_error(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(FASHION_DIR, ckpt)
    (ckpt / "codebook.safetensors").write_bytes(b"not a safetensors file")
    err = fails(
        capsys,
        "generate",
        "--prompt",
        "a bag",
        "--strategy",
        "ar",
        "-B",
        f"path={ckpt}",
        "--out",
        str(tmp_path / "g.png"),
    )
    assert "cannot read codebook file" in err


@pytest.mark.parametrize("prompt", ["a cat", "a trouser"])
def test_the_default_model_refuses_prompts_it_does_not_know(capsys, prompt):
    err = fails(capsys, "generate", "--prompt", prompt, "--strategy", "ar")
    assert repr(prompt) in err and "'a sneaker'" in err and "'trousers'" in err
    with pytest.raises(ConfigError, match="does not know the prompt"):
        decode(get_backbone("fashion"), "ar", ["a sneaker", prompt])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--strategy", "ar", "--window", "8"], "--window 8 does not apply: strategy 'ar' takes no window"),
        (["--strategy", "sjd", "-S", "window=8", "--window", "32"], "window given twice: -S window=8 and --window 32"),
        (["--window", "8"], "-S and --window need --strategy: without one the strategy and its window are chosen"),
    ],
)
def test_flags_are_never_silently_ignored_or_overridden(capsys, args, message):
    assert message in fails(capsys, "generate", "--prompt", "a bag", *args)


def test_overhead_keeps_its_default_window_for_strategies_that_take_one(capsys):
    assert main(["overhead", "--strategy", "ar", "--repeats", "1", "--batch", "1", "--json"]) == 0
    assert '"window": 0' in capsys.readouterr().out
    assert main(["overhead", "--strategy", "sjd", "--repeats", "1", "--batch", "1", "--json"]) == 0
    assert '"window": 32' in capsys.readouterr().out


@pytest.mark.parametrize("seed", ["x", 1.5, -1, True])
def test_a_bad_seed_is_a_config_error(seed):
    with pytest.raises(ConfigError, match="seed must be an integer"):
        decode(ToyBackbone(length=4), "ar", ["a"], seed=seed)


@pytest.mark.parametrize("where", [0, -1])
def test_debug_shows_the_traceback(where):
    args = ["generate", "--prompt", "a bag", "--strategy", "sjd", "-S", "windw=8"]
    args.insert(len(args) if where else 0, "--debug")
    with pytest.raises(ConfigError):
        main(args)


class _GuidanceSession:
    """Wraps a toy session and breaks its unconditional branch."""

    def __init__(self, session, uncond):
        self.session, self.uncond = session, uncond
        self.batch, self.layout = session.batch, session.layout

    def forward(self, window):
        scores = self.session.forward(window)
        return Scores(scores.cond, self.uncond(scores))

    def crop(self, n):
        self.session.crop(n)

    def compact(self, index):
        return self.session.compact(index)


@pytest.mark.parametrize(
    "uncond,message",
    [
        (lambda s: None, "returned no unconditional logits"),
        (lambda s: s.uncond[:, :1], "returned unconditional logits (2, 1, 8), expected (2, 5, 8)"),
    ],
)
def test_guidance_without_a_proper_unconditional_branch_is_refused(uncond, message):
    class Broken(ToyBackbone):
        name = "half-guided"

        def start(self, prompts, sampling, **options):
            return _GuidanceSession(super().start(prompts, sampling, **options), uncond)

    with pytest.raises(
        BackboneError, match=f"backbone 'half-guided' {message}".replace("(", "\\(").replace(")", "\\)")
    ):
        decode(
            Broken(length=8), "sjd", ["a", "b"], sampling=SamplingConfig(cfg_scale=2.0), strategy_options={"window": 4}
        )


def test_guidance_off_needs_no_unconditional_branch():
    result = decode(
        ToyBackbone(length=6), "sjd", ["a"], sampling=SamplingConfig(cfg_scale=1.0), strategy_options={"window": 3}
    )
    assert result.tokens.shape == (1, 6)


def test_the_package_exports_the_grid_types():
    assert {"Grid", "GridLayout", "ImageGridLayout"} <= set(pardecode.__all__)
    assert torch.equal(
        pardecode.ImageGridLayout(2, 3, torch.arange(4), 4).image_grid().cells, torch.ones(6, dtype=torch.bool)
    )


def test_a_mistyped_style_option_lists_the_style_options():
    import tiny_models

    with pytest.raises(
        ConfigError, match="unknown option\\(s\\) 'negative' for backbone 'emu3'; its options: path, .*negative_prompt"
    ):
        get_backbone("emu3", path=tiny_models.emu3_dir(), negative="blurry")


def test_a_plugin_backbone_loads_as_quietly_as_the_built_ins(monkeypatch):
    from transformers.utils import logging

    from pardecode.core.plugins import plugins

    seen = []

    def load_mine():
        seen.append(logging.is_progress_bar_enabled())
        return ToyBackbone(length=4)

    registry = plugins().backbones
    registry.register_from("mine")("mine", load_mine, "a plugin backbone that loads with transformers")
    get_backbone("mine")
    assert seen == [False] and logging.is_progress_bar_enabled()


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["generate", "--prompt", "a bag", "--seed", "x"],
            "argument --seed: invalid int value: 'x' (see `pardecode generate --help`)",
        ),
        (
            ["generate", "--prompt", "a bag", "--temperature", "hot"],
            "argument --temperature: invalid float value: 'hot'",
        ),
        (["generat"], "argument command: invalid choice: 'generat'"),
    ],
)
def test_a_malformed_command_line_is_one_line_too(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("pardecode: error: ") and message in err, (
        err
    )
