"""Prompt sets as data: the shipped sets, COCO's one-caption-per-image rule, files, seeded subsets,
and suites that name them."""

import json

import pytest

from pardecode import ConfigError
from pardecode.benchmarks.prompt_sets import PROMPT_SETS, coco_captions, prompt_set, read_prompts_file
from pardecode.benchmarks.suite import load_suite

PARTI_3_SEED_0 = (
    "A punk rock frog in a studded leather jacket shouting into a microphone while standing on a stump",
    "a macro photograph of brain coral",
    "Downtown Istanbul at sunrise. detailed ink wash.",
)
COCO = {  # the layout of captions_val2017.json, shuffled: the rule must sort by id
    "info": {},
    "licenses": [],
    "images": [
        {"id": 30, "file_name": "c.jpg"},
        {"id": 10, "file_name": "a.jpg"},
        {"id": 20, "file_name": "b.jpg"},
        {"id": 40, "file_name": "d.jpg"},
    ],
    "annotations": [
        {"id": 7, "image_id": 10, "caption": "A cat  on a mat.\n"},
        {"id": 2, "image_id": 10, "caption": "A cat asleep."},
        {"id": 3, "image_id": 20, "caption": "A cat asleep."},  # taken by image 10: its next caption
        {"id": 9, "image_id": 20, "caption": "Two dogs."},
        {"id": 1, "image_id": 30, "caption": " A red bus. "},
        {"id": 4, "image_id": 40, "caption": "A red bus."},  # every caption taken: the image is skipped
    ],
}

SUITE = """
{prompts}
seeds = [0]

[[backbones]]
name = "toy"

[[strategies]]
name = "ar"
"""


def write_coco(tmp_path):
    path = tmp_path / "captions_val2017.json"
    path.write_text(json.dumps(COCO))
    return path


def test_coco_rule_one_distinct_caption_per_image_in_id_order(tmp_path):
    found = coco_captions(write_coco(tmp_path))
    assert found.prompts == ("A cat asleep.", "Two dogs.", "A red bus.")
    assert [m["image_id"] for m in found.metadata] == [10, 20, 30]
    assert [m["annotation_id"] for m in found.metadata] == [2, 9, 1]
    assert coco_captions(write_coco(tmp_path), size=2).prompts == ("A cat asleep.", "Two dogs.")


def test_coco_5k_reads_the_users_file_and_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PARDECODE_COCO_CAPTIONS", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="captions_val2017.json.*cocodataset.org.*PARDECODE_COCO_CAPTIONS"):
        prompt_set("coco2017-5k")
    monkeypatch.setenv("PARDECODE_COCO_CAPTIONS", str(write_coco(tmp_path)))
    assert len(prompt_set("coco2017-5k")) == 3
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a COCO captions file"):
        coco_captions(tmp_path / "bad.json")


def test_shipped_sets_load_with_their_metadata():
    parti = prompt_set("partiprompts")
    assert len(parti) == 1632 and len(set(parti.prompts)) == 1632
    assert parti.prompts[0] == "bond" and parti.metadata[0]["category"] == "Abstract"
    assert any('"' in p for p in parti.prompts)  # quotes inside prompts survive (no CSV quoting)
    geneval = prompt_set("geneval")
    assert len(geneval) == 553 and geneval.prompts[0] == "a photo of a bench"
    assert geneval.metadata[0] == {"tag": "single_object", "include": [{"class": "bench", "count": 1}]}


def test_unknown_set_is_refused_in_one_line_listing_the_known_ones():
    with pytest.raises(ConfigError) as err:
        prompt_set("drawbench")
    assert "\n" not in str(err.value) and all(name in str(err.value) for name in PROMPT_SETS)


def test_prompt_files_txt_and_jsonl(tmp_path):
    (tmp_path / "p.txt").write_text("a cat\n\n  a dog  \na cat\n")
    assert read_prompts_file(tmp_path / "p.txt").prompts == ("a cat", "a dog", "a cat")
    (tmp_path / "p.jsonl").write_text('{"prompt": "a cat", "tag": "x"}\n\n{"prompt": "a dog"}\n')
    found = read_prompts_file(tmp_path / "p.jsonl")
    assert found.prompts == ("a cat", "a dog") and found.metadata == ({"tag": "x"}, {})
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a cat"}\n{"text": "a dog"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: needs a non-empty string field 'prompt'"):
        read_prompts_file(tmp_path / "bad.jsonl")
    with pytest.raises(ConfigError, match="does not exist"):
        read_prompts_file(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ConfigError, match="holds no prompt"):
        read_prompts_file(tmp_path / "empty.txt")


def test_subsets_are_seeded_sized_and_keep_the_sets_order():
    parti = prompt_set("partiprompts")
    a, b, c = parti.subset(50, 0), parti.subset(50, 0), parti.subset(50, 1)
    assert len(a) == 50 and a.prompts == b.prompts and a.prompts != c.prompts
    positions = [parti.prompts.index(p) for p in a.prompts]
    assert positions == sorted(positions)
    assert a.metadata == tuple(parti.metadata[i] for i in positions)
    assert parti.subset(5000, 3) is parti
    # fixed across machines and Python versions: sha256 of (seed, index), not `random`
    assert parti.subset(3, 0).prompts == PARTI_3_SEED_0
    with pytest.raises(ConfigError, match="prompt_subset must be an integer >= 1"):
        parti.subset(0)


def test_suites_take_named_sets_files_subsets_and_metrics(tmp_path, monkeypatch):
    def suite(prompts, name="s.toml"):
        path = tmp_path / name
        path.write_text(SUITE.format(prompts=prompts))
        return load_suite(path)

    s = suite('prompts = "geneval"\nprompt_subset = 20\nprompt_seed = 3\nmetrics = ["clip"]')
    assert len(s.prompts) == 20 and len(s.runs()) == 20 and [m.name for m in s.metrics] == ["clip"]
    assert "geneval" in s.prompt_source and "seed 3" in s.prompt_source
    assert len(s.prompt_metadata) == 20 and s.prompt_metadata[0]["tag"]
    assert s.to_dict()["metrics"] == [{"name": "clip", "options": {}}]
    same = 'prompts = "geneval"\nprompt_subset = 20\nprompt_seed = 3\nmetrics = ["clip"]'
    assert s.fingerprint == suite(same, "t.toml").fingerprint  # prompt notes are not in it
    assert s.fingerprint != suite(same.replace("seed = 3", "seed = 4"), "u.toml").fingerprint

    (tmp_path / "mine.txt").write_text("a cat\na dog\na cat\n")
    s = suite('prompts_file = "mine.txt"')  # relative to the suite's directory; repeats keep the first
    assert s.prompts == ("a cat", "a dog") and s.prompt_metadata == ()

    monkeypatch.setenv("PARDECODE_COCO_CAPTIONS", str(write_coco(tmp_path)))
    s = suite('prompts = "coco2017-5k"')
    assert s.prompts == ("A cat asleep.", "Two dogs.", "A red bus.") and s.prompt_metadata[1]["image_id"] == 20

    inline = suite('prompts = ["a", "b"]')
    assert inline.to_dict().keys() == suite('prompts = ["a", "b"]', "v.toml").to_dict().keys()
    assert "metrics" not in inline.to_dict() and "prompt_source" not in inline.to_dict()


@pytest.mark.parametrize(
    "prompts, message",
    [
        (
            'prompts = "drawbench"',
            "unknown prompt set 'drawbench'; known prompt sets: coco2017-5k, partiprompts, geneval",
        ),
        ('prompts = ["a"]\nprompts_file = "x.txt"', "give exactly one of prompts"),
        ('prompts_file = "missing.txt"', "prompts file .*missing.txt' does not exist"),
        ('prompts = "geneval"\nprompt_seed = 1', "prompt_seed needs prompt_subset"),
        ('prompts = "geneval"\nprompt_subset = -1', "prompt_subset must be an integer >= 1"),
        ("prompts = 3", "prompts must be a list of prompts or a prompt set's name"),
        ('prompts = ["a"]\nmetrics = "clip"', "metrics must be a list of metric names"),
        ('prompts = ["a"]\nmetrics = ["clip", "clip"]', "metrics names a metric twice"),
    ],
)
def test_bad_prompt_fields_fail_in_one_line(tmp_path, prompts, message):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(prompts=prompts))
    with pytest.raises(ConfigError, match=message) as err:
        load_suite(path)
    assert "\n" not in str(err.value)


def test_stored_suite_reads_back_with_its_prompt_notes(tmp_path):
    from pardecode.benchmarks.suite import Suite

    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(prompts='prompts = "geneval"\nprompt_subset = 4\nmetrics = ["clip"]'))
    s = load_suite(path)
    back = Suite.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.fingerprint == s.fingerprint and back.prompt_metadata == s.prompt_metadata
