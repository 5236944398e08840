"""Tests of the zero-shot prompt suite (mm_jax/eval/prompts.py, data/prompts/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mm_jax.errors import DataError
from mm_jax.eval.prompts import CATEGORIES, TAGS, Prompt, load_suite, prompt_words, suite_summary
from mm_jax.motion.synth import HELDOUT_COMBINATIONS, ZERO_SHOT_WORDS, generator_vocabulary
from mm_jax.motion.synth.heldout import HELDOUT_FORMS

SUITE = Path(__file__).resolve().parents[1] / "data" / "prompts" / "motionmillion_eval_v1.jsonl"


@pytest.fixture(scope="module")
def suite() -> list[Prompt]:
    return load_suite(SUITE)


@pytest.fixture(scope="module")
def vocab() -> frozenset[str]:
    return generator_vocabulary()


def test_suite_size_and_categories(suite):
    summary = suite_summary(suite)
    assert summary["total"]["all"] == len(suite) >= 126
    assert set(summary["category"]) == set(CATEGORIES)
    assert min(summary["category"].values()) >= 12, summary["category"]
    assert set(summary["tag"]) == set(TAGS)
    assert min(summary["tag"].values()) >= 30, summary["tag"]
    assert sum(summary["category/tag"].values()) == len(suite)


def test_ids_unique(suite):
    assert len({p.id for p in suite}) == len(suite)


def test_seen_prompts_use_only_train_caption_words(suite, vocab):
    for p in (p for p in suite if p.tag == "seen"):
        words = prompt_words(p.prompt)
        assert not [w for w in words if w not in vocab], p
        assert not [w for w in words if w in HELDOUT_FORMS], p  # val/test-only words are not "seen"
        assert p.primitives, p


def test_paraphrase_prompts_have_a_new_word(suite, vocab):
    paraphrases = [p for p in suite if p.tag == "paraphrase"]
    for p in paraphrases:
        assert [w for w in prompt_words(p.prompt) if w not in vocab], p
    used = {w for p in paraphrases for w in prompt_words(p.prompt)}
    assert used & set(ZERO_SHOT_WORDS), "the suite should use some of heldout.ZERO_SHOT_WORDS"


def test_composition_prompts_are_heldout_combinations(suite, vocab):
    pairs = {(a, b) for _, a, b in HELDOUT_COMBINATIONS}
    compositions = [p for p in suite if p.tag == "composition"]
    for p in compositions:
        assert p.primitives in pairs, p
        words = prompt_words(p.prompt)
        assert not [w for w in words if w not in vocab or w in HELDOUT_FORMS], p
    assert {p.primitives for p in compositions} == pairs, "every held-out combination is probed"


def test_empty_primitives_only_for_noted_paraphrases(suite):
    for p in suite:
        if not p.primitives:
            assert p.tag == "paraphrase" and p.note, p
        assert 2 <= p.seconds <= 10


def test_prompt_words_matches_generator_tokenizer():
    assert prompt_words("A one-two Combo, 3 times!") == ["a", "one", "two", "combo", "3", "times"]


GOOD = {
    "id": "x-001",
    "category": "sports",
    "tag": "seen",
    "prompt": "a man runs",
    "primitives": ["run"],
    "seconds": 3,
}


def _write(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "suite.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_good_file_loads(tmp_path):
    (p,) = load_suite(_write(tmp_path, [GOOD]))
    assert p == Prompt(
        id="x-001", category="sports", tag="seen", prompt="a man runs", primitives=("run",), seconds=3.0
    )


@pytest.mark.parametrize("steps", [["walk", "jump_forward"], ["walk", "jump_forward", "wave"],
                                   ["run", "walk", "jump_forward", "wave"]])
def test_composition_of_two_or_more_steps_loads(tmp_path, steps):
    row = {**GOOD, "tag": "composition", "prompt": "a person " + ", then ".join(steps), "primitives": steps}
    (p,) = load_suite(_write(tmp_path, [row]))
    assert p.tag == "composition" and p.primitives == tuple(steps)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({**GOOD, "category": "cooking"}, "unknown category 'cooking'"),
        ({**GOOD, "tag": "novel"}, "unknown tag 'novel'"),
        ({k: v for k, v in GOOD.items() if k != "prompt"}, "missing field(s) ['prompt']"),
        ({**GOOD, "prompt": "   "}, "empty prompt"),
        ({**GOOD, "primitives": ["moonwalk"]}, "unknown primitive(s) ['moonwalk']"),
        ({**GOOD, "primitives": []}, "empty 'primitives'"),
        ({**GOOD, "seconds": 30}, "'seconds'"),
        ({**GOOD, "tag": "composition"}, "at least 2 primitives"),
        ({**GOOD, "extra": 1}, "unknown field(s) ['extra']"),
        ("{not json", "invalid JSON"),
    ],
)
def test_bad_line_raises_data_error_naming_the_line(tmp_path, bad, message):
    other = {**GOOD, "id": "x-002"}
    path = _write(tmp_path, [GOOD, other, bad])
    with pytest.raises(DataError) as err:
        load_suite(path)
    assert f"{path}:3:" in str(err.value)
    assert message in str(err.value)


def test_duplicate_id_names_both_lines(tmp_path):
    path = _write(tmp_path, [GOOD, "", GOOD])
    with pytest.raises(DataError, match=r":3: duplicate id 'x-001' \(first on line 1\)"):
        load_suite(path)


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no prompts"):
        load_suite(_write(tmp_path, [""]))
