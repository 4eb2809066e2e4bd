"""Bad input gets a clear pardecode error that names the bad value and what is allowed."""

from __future__ import annotations

import json
import shutil

import pytest
import tiny_models

from pardecode.core.config import SamplingConfig
from pardecode.core.errors import CheckpointError, ConfigError
from pardecode.core.plugins import plugins


def factory(name: str):
    return plugins().backbones.get(name).factory


@pytest.mark.parametrize("family", ["chameleon", "emu3", "janus"])
def test_missing_checkpoint_directory(family, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        factory(family)(str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match="no config.json"):
        factory(family)(str(tmp_path))


def test_checkpoint_of_another_family():
    with pytest.raises(CheckpointError, match=r"holds a 'chameleon' model.*janus"):
        factory("janus")(str(tiny_models.chameleon_dir()))
    with pytest.raises(
        CheckpointError, match=r"holds a 'emu3' model, but the chameleon adapter reads model_type 'chameleon'"
    ):
        factory("chameleon")(str(tiny_models.emu3_dir()))
    with pytest.raises(CheckpointError, match=r"holds a 'chameleon' model.*emu3"):
        factory("emu3")(str(tiny_models.chameleon_dir()))


def test_pardecode_json_of_another_family_or_with_bad_ids(tmp_path):
    root = tmp_path / "ckpt"
    shutil.copytree(tiny_models.chameleon_dir(), root)
    spec = dict(tiny_models.CHAMELEON_JSON)
    (root / "pardecode.json").write_text(json.dumps({**spec, "family": "emu3"}))
    with pytest.raises(CheckpointError, match="family must be 'chameleon'.*'emu3'"):
        factory("chameleon")(str(root))
    (root / "pardecode.json").write_text(json.dumps({**spec, "end_of_line_id": 999}))
    with pytest.raises(CheckpointError, match=r"end_of_line_id.*999.*vocabulary of 128"):
        factory("chameleon")(str(root))
    (root / "pardecode.json").write_text(json.dumps({k: v for k, v in spec.items() if k != "bos_id"}))
    with pytest.raises(ConfigError, match="bos_id"):
        factory("chameleon")(str(root))
    (root / "pardecode.json").write_text(json.dumps({**spec, "prompt_template": "no placeholder"}))
    with pytest.raises(ConfigError, match=r"must contain '\{prompt\}'"):
        factory("chameleon")(str(root))


@pytest.mark.parametrize("family", ["chameleon", "emu3", "janus"])
def test_source_must_be_path_or_config(family):
    with pytest.raises(ConfigError, match="exactly one of path= .* or config="):
        factory(family)()


@pytest.mark.parametrize("family", ["chameleon", "emu3", "janus"])
@pytest.mark.parametrize(
    "option, value, message",
    [
        ("dtype", "float64", r"dtype must be 'auto' or one of \['bfloat16', 'float16', 'float32'\], got 'float64'"),
        ("dtype", "int8", "dtype must be 'auto' or one of"),
        ("device", "gpu", r"device must be like 'auto', 'cpu'.*got 'gpu'"),
        ("device", "cuda:7", "not available here"),
    ],
)
def test_unknown_dtype_or_device(family, option, value, message):
    path = str(tiny_models.DIRS[family]())
    with pytest.raises(ConfigError, match=message):
        factory(family)(path, **{option: value})


@pytest.mark.parametrize("family", ["chameleon", "emu3", "janus"])
@pytest.mark.parametrize("prompts", [[""], ["   "], [], ["ok", ""]])
def test_empty_prompt(family, prompts):
    bb = tiny_models.backbone(family)
    with pytest.raises(ConfigError, match="prompt"):
        bb.start(prompts, SamplingConfig(), size=tiny_models.SMALL_SIZE[family])


@pytest.mark.parametrize(
    "family, size, message",
    [
        ("chameleon", (6, 8), r"size 6x8 is not producible: .* multiples of 4 px \(2 tokens of 2 px\)"),
        ("chameleon", (8, 0), r"size must be \(width, height\) in pixels"),
        ("emu3", (18, 16), r"size 18x16 is not producible: .* multiples of the 4-pixel token size"),
        ("emu3", "16x16", r"size must be \(width, height\)"),
        ("chameleon", (32, 32), r"16x16-token image needs size token 17, which is not a size token"),
        ("emu3", (720, 720), r"the image needs 32583 tokens .* more than the context of 512 positions"),
        ("janus", (16, 16), r"size \(16, 16\) is not producible: this Janus checkpoint generates 8x8 images only"),
    ],
)
def test_size_the_model_cannot_produce(family, size, message):
    bb = tiny_models.backbone(family)
    with pytest.raises(ConfigError, match=message):
        bb.start(["boot"], SamplingConfig(), size=size)


def test_chameleon_grid_beyond_the_size_tokens():
    bb = tiny_models.chameleon_backbone()
    with pytest.raises(ConfigError, match="outside the vocabulary of 128"):
        bb.start(["boot"], SamplingConfig(), size=(8, 480))  # 240 rows -> size token 129


def test_emu3_default_size_too_large_for_a_tiny_context():
    """The reference 720x720 default is 32k tokens: the tiny model says so instead of failing later."""
    bb = tiny_models.emu3_backbone()
    with pytest.raises(ConfigError, match="request a smaller size"):
        bb.start(["boot"], SamplingConfig())


@pytest.mark.parametrize("family, fits", [("chameleon", 440), ("emu3", 460), ("janus", 495)])
def test_prompt_longer_than_the_context(family, fits):
    """Character-level tiny tokenizers: `fits` characters leave less room than the 4x4 image needs."""
    bb = tiny_models.backbone(family)
    size = tiny_models.SMALL_SIZE[family]
    with pytest.raises(ConfigError, match=r"a prompt of \d+ tokens does not fit the context of 512 positions"):
        bb.start(["b" * 600], SamplingConfig(), size=size)
    with pytest.raises(ConfigError, match=r"the image needs [12]\d tokens after a [45]\d\d-token prompt"):
        bb.start(["b" * fits], SamplingConfig(), size=size)


@pytest.mark.parametrize("family", ["chameleon", "emu3", "janus"])
def test_unknown_start_option(family):
    bb = tiny_models.backbone(family)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['colour'\] for backbone .*; allowed: size"):
        bb.start(["boot"], SamplingConfig(), colour="red")


def test_fashion_assets_missing(tmp_path):
    with pytest.raises(CheckpointError, match="the 'fashion' model is missing"):
        factory("fashion")(path=tmp_path)


def test_unknown_emu3_style_option():
    with pytest.raises(ConfigError, match="colour"):
        factory("emu3")(str(tiny_models.emu3_dir()), colour="red")


def test_checkpoint_without_a_tokenizer_needs_one_given(tmp_path):
    root = tmp_path / "ckpt"
    shutil.copytree(tiny_models.chameleon_dir(), root)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (root / name).unlink()
    with pytest.raises(CheckpointError, match="cannot load a tokenizer from"):
        factory("chameleon")(str(root))
    bb = factory("chameleon")(str(root), tokenizer=str(tiny_models.chameleon_dir()))
    assert bb.start(["boot"], SamplingConfig(), size=(8, 8)).layout.length == 21
