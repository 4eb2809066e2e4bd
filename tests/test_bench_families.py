"""The published-family suites end to end on tiny checkpoints, `bench --dry-run` and
`generate --prompts-file`."""

import json
import re
from pathlib import Path

import published_formats as pf
import pytest
import tiny_models
import torch
from test_bench_metrics import tiny_clip

from pardecode.benchmarks.results import ResultsDir
from pardecode.benchmarks.suite import BUILTIN_DIR, load_suite
from pardecode.cli import main

TOY_SUITE = """
prompts_file = "prompts.txt"
seeds = [0, 1]
batch = 2
metrics = ["clip"]

[[backbones]]
name = "toy"
options = { length = 37 }

[[strategies]]
name = "ar"

[[strategies]]
name = "sjd"
params = { window = 16 }
"""
CAPTIONS = {
    "images": [{"id": 2, "file_name": "2.jpg"}, {"id": 1, "file_name": "1.jpg"}],
    "annotations": [
        {"id": 4, "image_id": 2, "caption": "a red fox in the snow"},
        {"id": 3, "image_id": 1, "caption": "a lighthouse at dusk"},
    ],
}


def toy_suite(tmp_path) -> Path:
    (tmp_path / "prompts.txt").write_text("a cat\na dog\na bus\n")
    path = tmp_path / "toy.toml"
    path.write_text(TOY_SUITE)
    return path


def test_dry_run_without_a_profile_says_it_would_measure_one(tmp_path, capsys):
    assert main(["bench", str(toy_suite(tmp_path)), "--dry-run", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "suite toy: 12 runs, 3 prompts" in out and "metrics clip" in out
    assert "no stored cost profile: it would measure one first (`pardecode profile --backbone toy" in out
    assert re.search(r"^  ar +6 +12 +37\.0 +\?$", out, re.M)
    assert re.search(r"^  sjd window=16 +6 +12 +\? +\?$", out, re.M)
    assert "estimated device-hours: unknown" in out


def test_dry_run_estimates_from_the_stored_profile_and_decodes_nothing(tmp_path, capsys, monkeypatch):
    from pardecode.api import get_backbone
    from pardecode.core.cost import CostProfile
    from pardecode.planning import profile_key

    torch.set_num_threads(1)
    backbone = get_backbone("toy", length=37)
    key = profile_key(backbone, backbone.default_sampling, {})
    CostProfile(key, batches=[2], windows=[0, 16], seconds=[[0.5, 1.0]], tokens=[1.0, 3.7]).save()
    monkeypatch.setattr("pardecode.api.decode", lambda *a, **k: pytest.fail("a dry run decoded"))
    monkeypatch.setattr("pardecode.core.loop.decode", lambda *a, **k: pytest.fail("a dry run decoded"))
    assert main(["bench", str(toy_suite(tmp_path)), "--dry-run", "--threads", "1", "--shard", "0/2"]) == 0
    out = capsys.readouterr().out
    assert f"cost profile {CostProfile.path_for(key)} (cpu)" in out
    # AR: 6 runs x 37 passes x 0.5 s = 111 s; sjd: 6 runs x 37 / 3.7 passes x 1.0 s = 60 s
    assert re.search(r"^  ar +6 +12 +37\.0 +1\.9 min$", out, re.M)
    assert re.search(r"^  sjd window=16 +6 +12 +10\.0 +1\.0 min$", out, re.M)
    assert "estimated device-hours: 0.05 (2.9 min;" in out and "over 2 process(es): 1.4 min" in out
    assert not (tmp_path / "runs").exists()


def test_generate_prompts_file_writes_one_image_per_prompt(tmp_path, capsys):
    (tmp_path / "p.jsonl").write_text(
        '{"prompt": "a sneaker", "tag": "shoe"}\n{"prompt": "a dress"}\n{"prompt": "a bag"}\n'
    )
    out = tmp_path / "images"
    assert (
        main(
            [
                "generate",
                "--prompts-file",
                str(tmp_path / "p.jsonl"),
                "--batch",
                "2",
                "--strategy",
                "sjd",
                "--window",
                "16",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"] == 3 and report["image_tokens"] == 3 * 211 and report["forward_passes"] > 0
    index = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert index == [
        {"index": 0, "prompt": "a sneaker", "tag": "shoe", "file": "00000.png"},
        {"index": 1, "prompt": "a dress", "file": "00001.png"},
        {"index": 2, "prompt": "a bag", "file": "00002.png"},
    ]
    from PIL import Image

    assert Image.open(out / "00002.png").size == (28, 28)
    # the toy backbone has no image decoder: prompts.jsonl still says what was decoded
    assert (
        main(
            [
                "generate",
                "--prompts-file",
                str(tmp_path / "p.jsonl"),
                "--backbone",
                "toy",
                "--batch",
                "3",
                "--out",
                str(tmp_path / "toy"),
            ]
        )
        == 0
    )
    assert "no image decoder; no PNG written" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["generate", "--prompts-file", str(tmp_path / "p.jsonl"), "--prompt", "a bag"])


def family_suite_without(name: str, strategy: str, tmp_path: Path, **replace: str) -> Path:
    """A built-in family suite as a file, one strategy's block left out, some text replaced."""
    text = (BUILTIN_DIR / f"{name}.toml").read_text()
    blocks = text.split("[[strategies]]")
    text = "[[strategies]]".join(b for b in blocks if f'name = "{strategy}"' not in b)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_family_suites_run_end_to_end_on_tiny_checkpoints(tmp_path, monkeypatch, capsys):
    captions = tmp_path / "captions_val2017.json"
    captions.write_text(json.dumps(CAPTIONS))
    monkeypatch.setenv("PARDECODE_COCO_CAPTIONS", str(captions))
    emu3 = tiny_models.save_tiny_emu3(tmp_path / "emu3")
    out = tmp_path / "emu3-coco"
    clip = tmp_path / "clip"
    clip.mkdir()
    tiny_clip(clip)  # the suite's CLIP score, on a tiny random CLIP (nothing downloads)
    args = [
        "bench",
        "emu3-coco",
        "--backbone",
        "emu3",
        "-B",
        f"path={emu3}",
        "-B",
        "default_size=[16,16]",
        "--threads",
        "1",
        "--no-progress",
        "--metric",
        f"clip:model={clip}",
    ]
    assert main([*args, "--dry-run"]) == 0
    assert "suite emu3-coco: 8 runs, 2 prompts (coco2017-5k" in capsys.readouterr().out
    assert main([*args, "--out", str(out)]) == 0
    suite = ResultsDir(out).suite()
    assert [m.name for m in suite.metrics] == ["clip"] and [m["image_id"] for m in suite.prompt_metadata] == [1, 2]
    records = ResultsDir(out).records()
    assert len(records) == 8 and {r["key"]["strategy"] for r in records} == {"ar", "sjd", "sjd_pac_tree", "lantern"}
    assert "# Benchmark `emu3-coco`" in (out / "report.md").read_text()

    # Lumina-mGPT in its published layout with the VQGAN beside it, on a tiny prompt file; the tiny
    # VQGAN's codebook is smaller than the image vocabulary, so LANTERN (which needs it) is left out
    lumina = pf.save_lumina(tmp_path / "Lumina-mGPT-7B-128")[0]
    suite_file = family_suite_without(
        "lumina-mgpt-768-parti",
        "lantern",
        tmp_path,
        **{"ckpts/Lumina-mGPT-7B-768": str(lumina), 'vqgan = "ckpts/chameleon/tokenizer"': f'vqgan = "{lumina}"'},
    )
    (tmp_path / "few.txt").write_text("a red fox\na lighthouse\n")
    out = tmp_path / "lumina-parti"
    assert (
        main(
            [
                "bench",
                str(suite_file),
                "--prompts-file",
                str(tmp_path / "few.txt"),
                "--out",
                str(out),
                "--threads",
                "1",
                "--no-progress",
                "--shard",
                "0/1",
                "--metric",
                f"clip:model={clip}",
            ]
        )
        == 0
    )
    records = ResultsDir(out).records()
    assert len(records) == 6 and all(r["key"]["backbone"] == "lumina-mgpt-768" for r in records)
    assert [m.name for m in load_suite("lumina-mgpt-768-parti").metrics] == ["clip"]


def test_device_auto_is_this_processs_gpu_under_torchrun(monkeypatch):
    from pardecode.adapters.hf_loading import parse_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert parse_device("auto") == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert parse_device("auto") == torch.device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "5")  # more processes than GPUs: they share
    assert parse_device("auto") == torch.device("cuda:1")
