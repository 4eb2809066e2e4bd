"""Quality metrics as plugins: the registry, fid and clip on tiny random models against computations by
hand, the default model's evaluator as the `fashion` metric, suites choosing metrics, and the decode
statistics and environment every report carries."""

import json
import sys

import attrs
import numpy as np
import pytest
import scipy.linalg
import torch

from pardecode import ConfigError
from pardecode.adapters.toy import ToyBackbone
from pardecode.benchmarks.metrics import _judge_and_metrics, acceptance_histogram, summarize
from pardecode.benchmarks.quality import FashionJudge
from pardecode.benchmarks.report import build_report
from pardecode.benchmarks.results import ResultsDir
from pardecode.benchmarks.runner import backbone_environment, peak_memory, run_suite
from pardecode.benchmarks.scoring import MetricSpec
from pardecode.benchmarks.suite import Suite
from pardecode.core.errors import UnknownNameError
from pardecode.core.plugins import Plugins, plugins
from pardecode.metrics.clip import CLIPScore
from pardecode.metrics.fid import FID, load_stats, save_stats

torchmetrics = pytest.importorskip("torchmetrics", reason="the fid metric needs the metrics extra (torchmetrics)")


class MeanRGB(torch.nn.Module):
    """A tiny feature model whose features are known by hand: each channel's mean pixel value."""

    def forward(self, x):
        return x.double().mean((2, 3))


class RandomConv(torch.nn.Module):
    """A tiny random feature model (a convolution and global pooling)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 5, stride=4)

    def forward(self, x):
        return torch.tanh(self.conv(x.float() / 255)).mean((2, 3))


def frechet_by_hand(a, b):
    """Fréchet distance of two Gaussians (mean, covariance), with scipy's matrix square root."""
    (m1, s1), (m2, s2) = a, b
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def images(n, seed, size=32):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# --- registry ---------------------------------------------------------------------------------------


def test_builtin_metrics_register_through_the_hook_and_list():
    from pardecode.api import list_plugins

    registry = plugins().metrics
    assert {"fashion", "fid", "clip"} <= set(registry.names())
    assert registry.get("fashion").plugin == "pardecode.fashion.plugin"
    assert registry.get("fid").plugin == "pardecode.metrics.plugin"
    assert {"fashion", "fid", "clip"} <= {e["name"] for e in list_plugins()["metrics"]}


THIRD_PARTY = """
import numpy as np
from pardecode.core.metric import Metric
from pardecode.core.plugins import hookimpl


class Brightness(Metric):
    name = "brightness"
    variant = "mean pixel value / 255"

    def score(self, images, prompts, classes=None):
        return {"brightness": float(np.asarray(images).mean() / 255)}


@hookimpl
def pardecode_register_metrics(register):
    register("brightness", Brightness, "mean brightness")
"""


def test_a_third_party_metric_arrives_through_an_entry_point(tmp_path, monkeypatch):
    (tmp_path / "pd_brightness.py").write_text(THIRD_PARTY)
    info = tmp_path / "pd_brightness-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pd-brightness\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[pardecode]\nbrightness = pd_brightness\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        pm = Plugins()
        entry = pm.metrics.get("brightness")
        assert entry.plugin == "brightness" and entry.factory().score(
            np.full((2, 4, 4, 3), 255, np.uint8), ["a", "b"]
        ) == {"brightness": 1.0}
        with pytest.raises(ConfigError, match="not a subclass"):
            pm.metrics.register_from("brightness")("bad", dict)
    finally:
        sys.modules.pop("pd_brightness", None)


def test_unknown_metric_names_are_refused_in_one_line_listing_the_registered_ones():
    with pytest.raises(UnknownNameError) as err:
        MetricSpec("fidd")
    message = str(err.value)
    assert "\n" not in message and "unknown metric 'fidd'" in message and "clip, fashion, fid" in message


# --- fid ------------------------------------------------------------------------------------------


def test_fid_against_stats_is_the_frechet_distance_of_the_gaussians_by_hand(tmp_path):
    generated = images(12, seed=1)
    features = generated.reshape(12, -1, 3).astype(np.float64).mean(1)  # MeanRGB by hand
    rng = np.random.default_rng(2)
    mixing = rng.normal(size=(3, 3))
    mu, sigma = rng.normal(100, 10, size=3), mixing @ mixing.T * 20
    np.savez(tmp_path / "ref.npz", mu=mu, sigma=sigma)
    metric = FID(stats=tmp_path / "ref.npz", feature=MeanRGB(), size=32)
    expected = frechet_by_hand((features.mean(0), np.cov(features, rowvar=False)), (mu, sigma))
    assert metric.score(generated, ["x"] * 12) == {"fid": pytest.approx(expected, rel=1e-6)}
    assert "torchmetrics" in metric.variant and "MeanRGB" in metric.variant and "32x32" in metric.variant


def test_fid_against_a_folder_equals_stats_saved_from_it_and_the_hand_computation(tmp_path):
    from PIL import Image

    folder = tmp_path / "ref"
    folder.mkdir()
    reference = images(10, seed=3, size=40)
    for i, im in enumerate(reference):
        Image.fromarray(im).save(folder / f"{i:02d}.png")
    generated = images(8, seed=4, size=32)
    by_folder = FID(reference=folder, feature=RandomConv(), size=32)
    save_stats(by_folder, [Image.fromarray(im) for im in reference], tmp_path / "ref.npz")
    by_stats = FID(stats=tmp_path / "ref.npz", feature=RandomConv(), size=32)
    fake, real = by_folder.features(generated), by_folder.features(list(reference))
    expected = frechet_by_hand((fake.mean(0), np.cov(fake, rowvar=False)), load_stats(tmp_path / "ref.npz"))
    assert by_folder.score(generated, [""] * 8)["fid"] == pytest.approx(expected, rel=1e-5)
    assert by_stats.score(generated, [""] * 8)["fid"] == pytest.approx(expected, rel=1e-5)
    assert np.allclose(load_stats(tmp_path / "ref.npz")[0], real.mean(0))


@pytest.mark.parametrize(
    "options, match",
    [
        ({}, "exactly one of reference="),
        ({"reference": "/nonexistent-folder"}, "does not exist"),
        ({"stats": "/nonexistent.npz"}, "does not exist"),
        ({"stats": __file__, "dims": 100}, "dims must be one of"),
    ],
)
def test_fid_refuses_bad_options_in_one_line(options, match):
    with pytest.raises(ConfigError, match=match):
        FID(**options)


# --- clip -----------------------------------------------------------------------------------------


def tiny_clip(root):
    """A random two-layer CLIP with a letters-only tokenizer, saved as a local model directory."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(root)
    torch.manual_seed(0)
    text = dict(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    vision = dict(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(root)
    return root


def test_clip_score_is_100_times_the_clamped_cosine_of_the_embeddings_by_hand(tmp_path):
    from transformers import CLIPModel, CLIPProcessor

    root = tiny_clip(tmp_path)
    generated = images(4, seed=5, size=40)
    prompts = ["a sneaker", "a dress", "a bag", "a shirt"]
    metric = CLIPScore(model=root, prefix="a photo of ")
    model, processor = CLIPModel.from_pretrained(root), CLIPProcessor.from_pretrained(root)
    inputs = processor(
        text=["a photo of " + p for p in prompts], images=list(generated), return_tensors="pt", padding=True
    )
    with torch.no_grad():
        out = model(**inputs)
    a, b = out.image_embeds.double().numpy(), out.text_embeds.double().numpy()
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert metric.per_image(generated, prompts) == pytest.approx(100 * np.maximum(cos, 0), abs=1e-4)
    assert metric.score(generated, prompts)["clip_score"] == pytest.approx(
        float(np.mean(100 * np.maximum(cos, 0))), abs=1e-4
    )
    assert str(root) in metric.variant and "'a photo of '" in metric.variant and "max(cos,0)" in metric.variant


def test_clip_without_a_local_model_says_so_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="neither a local directory nor in the local cache") as err:
        CLIPScore(model=str(tmp_path / "missing")).score(images(2, 0), ["a", "b"])
    assert "\n" not in str(err.value)


# --- the default model's evaluator as a metric ----------------------------------------------------


def test_the_fashion_metric_computes_what_the_suites_judge_computes():
    from pardecode.fashion.evaluator import Evaluator

    evaluator = Evaluator.load()
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    evaluator._reference_cache["test"] = (evaluator.features(reference), torch.zeros(50, dtype=torch.long))
    generated = rng.integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    prompts = ["a sneaker", "a dress", "a bag"] * 2
    metric = plugins().metrics.get("fashion").factory(evaluator=evaluator)
    quality = FashionJudge(evaluator=evaluator).evaluate(generated, prompts)
    assert metric.score(generated, prompts) == {
        "prompt_agreement": quality.prompt_agreement,
        "frechet_distance": quality.frechet_distance,
    }
    assert "Fashion-MNIST classifier" in metric.variant


def test_a_suite_naming_the_fashion_metric_keeps_the_judge_and_other_metrics_are_scored_apart(tmp_path):
    np.savez(tmp_path / "s.npz", mu=np.zeros(3), sigma=np.eye(3))
    base = dict(name="m", prompts=["a sneaker"], seeds=[0], backbones=[{"name": "toy"}], strategies=[{"name": "ar"}])
    plain = Suite.from_dict(base)
    fashion = Suite.from_dict({**base, "metrics": ["fashion"]})
    both = Suite.from_dict({**base, "metrics": ["fashion", {"name": "clip", "options": {"model": "x"}}]})
    assert plain.metrics == () and "metrics" not in plain.to_dict()  # fingerprints of existing suites unchanged
    judge, scorers = _judge_and_metrics(fashion, "fashion", lambda name: FashionJudge())
    assert isinstance(judge, FashionJudge) and scorers == []
    judge, scorers = _judge_and_metrics(both, "fashion", lambda name: FashionJudge())
    assert [m.name for m in scorers] == ["clip"]
    clip_only = Suite.from_dict({**base, "metrics": ["clip"]})
    assert _judge_and_metrics(clip_only, "fashion", lambda name: FashionJudge())[0] is None
    assert Suite.from_dict(both.to_dict()) == both and both.fingerprint != plain.fingerprint


@pytest.mark.parametrize(
    "metrics, match",
    [
        ("fid", "metrics must be a list"),
        ([{"name": "fid", "bogus": 1}], "must be a name or a table with keys name, options"),
        ([{"name": "fid", "options": {"stats": "/no.npz"}}], "suite: metric 'fid': FID statistics file"),
        ([{"name": "clip", "options": {"colour": 1}}], "suite: metric 'clip':.*colour"),
        (["clip", "clip"], "names a metric twice"),
    ],
)
def test_bad_metric_entries_fail_when_the_suite_is_read(metrics, match):
    base = dict(name="m", prompts=["p"], seeds=[0], backbones=[{"name": "toy"}], strategies=[{"name": "ar"}])
    with pytest.raises(ConfigError, match=match):
        Suite.from_dict({**base, "metrics": metrics})


# --- a suite end to end: metrics, decode statistics, environment ----------------------------------


@attrs.define(eq=False)
class ColourToy(ToyBackbone):
    """The toy backbone with an image decoder: one RGB level per token."""

    name = "colourtoy"

    def images(self, tokens, session):
        level = (tokens.float() / (self.vocab_size - 1)).repeat_interleave(2, 1)[:, :32, None].expand(-1, -1, 32)
        return torch.stack([level, 1 - level, level / 2], -1).clamp(0, 1)


def _register_test_plugins():
    if "colourtoy" not in plugins().backbones.names():
        plugins().backbones.register_from("tests")("colourtoy", ColourToy)
    if "meanrgb_fid" not in plugins().metrics.names():
        plugins().metrics.register_from("tests")(
            "meanrgb_fid", lambda **o: _named(FID(feature=MeanRGB(), size=32, **o))
        )


def _named(metric):
    metric.name = "meanrgb_fid"
    return metric


def test_a_suite_scores_its_metrics_and_reports_decode_statistics_and_environment(tmp_path):
    _register_test_plugins()
    np.savez(tmp_path / "ref.npz", mu=np.full(3, 120.0), sigma=np.eye(3) * 400)
    suite = Suite.from_dict(
        {
            "name": "metrics",
            "prompts": ["a", "b"],
            "seeds": [0, 1],
            "batch": 2,
            "backbones": [{"name": "colourtoy", "options": {"length": 24}}],
            "strategies": [{"name": "ar"}, {"name": "sjd", "params": {"window": 4}}],
            "metrics": [{"name": "meanrgb_fid", "options": {"stats": str(tmp_path / "ref.npz")}}],
        }
    )
    out = tmp_path / "out"
    run_suite(suite, out, threads=1, progress=False)
    records = ResultsDir(out).records()
    assert all(r["peak_memory"] > 0 and r["peak_memory_kind"] == "process peak RSS" for r in records)
    [summary] = summarize(suite, records)
    for row in summary.settings:
        mine = [r for r in records if r["key"]["setting"] == row.setting]
        images_ = np.concatenate([unpack(r) for r in mine])
        features = images_.reshape(len(images_), -1, 3).astype(np.float64).mean(1)
        expected = frechet_by_hand(
            (features.mean(0), np.cov(features, rowvar=False)), (np.full(3, 120.0), np.eye(3) * 400)
        )
        [score] = row.scores
        assert score.n == 8 and score.values["fid"] == pytest.approx(expected, rel=1e-6)
        committed = [c for r in mine for rowc in r["committed"] for c in rowc if c]
        assert row.acceptance_histogram == [committed.count(k) for k in range(1, max(committed) + 1)]
        assert sum(k * c for k, c in enumerate(row.acceptance_histogram, 1)) == 24 * 8
        assert row.seconds_per_image == pytest.approx(row.seconds / 2) and row.latency_batch1 is None
    assert summary.settings[0].acceptance_histogram == [24 * 8]  # AR commits one token per pass
    report = build_report(out, with_plots=False).read_text()
    assert "Decode statistics" in report and "process peak RSS" in report and "acceptance lengths" in report
    assert "meanrgb_fid: fid" in report and "torchmetrics" in report and "MeanRGB" in report
    assert "Backbones as loaded" in report and "| `colourtoy` | cpu |" in report
    data = json.loads((out / "report.json").read_text())
    row = data["backbones"][0]["settings"][1]
    assert {"acceptance_histogram", "seconds_per_image", "latency_batch1", "peak_memory", "scores"} <= set(row)
    session = data["sessions"][0]
    assert session["seeds"] == [0, 1] and session["batch"] == 2 and session["torch_threads"] == 1
    assert session["backbones"]["colourtoy"]["attention"] == "n/a"


def unpack(record):
    from pardecode.benchmarks.quality import unpack_images

    return unpack_images(record["images"])


def test_acceptance_histogram_counts_tokens_per_pass_per_image():
    records = [{"committed": [[1, 3, 2, 0], [2, 2, 2, 0]]}, {"committed": [[1, 1, 4]]}]
    assert acceptance_histogram(records) == [3, 4, 1, 1]


def test_environment_of_a_transformers_backbone_names_dtype_and_attention():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=16,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    ).to(torch.bfloat16)

    class Wrapped:
        def __init__(self):
            self.body = model

    env = backbone_environment(Wrapped())
    assert env["dtype"] == "bfloat16" and env["device"] == "cpu" and env["attention"] in ("eager", "sdpa")
    assert env["device_name"]
    assert peak_memory("cpu")[1] == "process peak RSS"


def test_the_cli_lists_metrics_and_takes_them_with_options(tmp_path, capsys):
    from pardecode.cli import main
    from pardecode.cli.bench import with_metrics

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "metrics (options:" in listed and "  fid " in listed and "  clip " in listed
    np.savez(tmp_path / "s.npz", mu=np.zeros(3), sigma=np.eye(3))
    base = dict(name="m", prompts=["p"], seeds=[0], backbones=[{"name": "toy"}], strategies=[{"name": "ar"}])
    base = Suite.from_dict(base)
    suite = with_metrics(base, [f"fid:stats={tmp_path / 's.npz'},size=64", "clip:prefix=a photo of "])
    assert [(m.name, m.options) for m in suite.metrics] == [
        ("fid", {"stats": str(tmp_path / "s.npz"), "size": 64}),
        ("clip", {"prefix": "a photo of "}),
    ]
    with pytest.raises(UnknownNameError, match="unknown metric 'nope'"):
        with_metrics(base, ["nope"])
