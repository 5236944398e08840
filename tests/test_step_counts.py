"""Step counts and config values that would train nothing (issue 13, item 4): ``--steps 0``, ``--until 0``
and negative values are ConfigErrors naming the flag and value, never the preset's default or a no-op; the
configs refuse counts of 0 (division by zero at the first log) and NaN rates.

Before the fix ``mm-jax train --steps 0`` trained the preset's 300 steps (a falsy check) and ``evaluator train
--steps 0`` saved an untrained evaluator with exit code 0.
"""

from __future__ import annotations

import pytest

from mm_jax.cli import main
from mm_jax.errors import ConfigError


def _error_lines(err: str) -> list[str]:
    """The CLI's one-line named errors in ``err`` (progress bars and log lines aside)."""
    return [line for line in err.splitlines() if line.startswith("mm-jax: error: ")]


@pytest.fixture
def fake_train(monkeypatch):
    """Records the ExperimentConfig ``mm-jax train`` would run, and trains nothing."""
    from mm_jax.train import loop

    calls = []
    monkeypatch.setattr(loop, "run", lambda exp, workdir, **kw: calls.append((exp, kw)) or {"steps": 0})
    return calls


@pytest.mark.parametrize("flag, value", [("--steps", 0), ("--steps", -3), ("--until", 0), ("--until", -1)])
def test_train_zero_or_negative_steps_is_a_config_error(tmp_path, fake_train, capsys, flag, value):
    argv = ["train", "--shards", str(tmp_path / "shards"), "--workdir", str(tmp_path / "run"), flag, str(value)]
    assert main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == f"mm-jax: error: ConfigError: {flag} {value}: must be a positive number of steps (>= 1)"
    assert fake_train == [] and not (tmp_path / "run").exists()


def test_train_steps_and_until_do_what_they_say(tmp_path, fake_train):
    argv = ["train", "--shards", str(tmp_path), "--workdir", str(tmp_path / "run"), "--steps", "7", "--until", "3"]
    assert main(argv) == 0
    ((exp, kw),) = fake_train
    assert exp.train.steps == 7 and kw["until"] == 3


@pytest.mark.parametrize("argv", [
    ["tokenizer", "train", "--data", "D", "--out", "O", "--steps", "0"],
    ["tokenizer", "train", "--data", "D", "--out", "O", "--steps", "-2"],
    ["tokenizer", "ablate", "--data", "D", "--steps", "0"],
])
def test_tokenizer_zero_steps_names_the_flag(argv, capsys):
    assert main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"mm-jax: error: ConfigError: --steps {argv[-1]}: ")


def test_tokenizer_ablate_bad_levels_is_a_config_error(capsys):
    assert main(["tokenizer", "ablate", "--data", "D", "--levels", "0,x"]) == 2
    assert "ConfigError: --levels '0,x'" in capsys.readouterr().err


def test_evaluator_train_zero_steps_is_an_error_not_an_untrained_evaluator(tmp_path, monkeypatch, capsys):
    from mm_jax.eval import train as etrain

    calls = []
    monkeypatch.setattr(etrain, "train_evaluator", lambda cfg, data, out, *, steps, **kw: calls.append(steps) or {})
    for steps in ("0", "-1"):
        assert main(["evaluator", "train", "--data", "D", "--out", str(tmp_path / "ev"), "--steps", steps]) == 2
        assert f"ConfigError: --steps {steps}:" in capsys.readouterr().err
    assert calls == []
    assert main(["evaluator", "train", "--data", "D", "--out", str(tmp_path / "ev"), "--steps", "5"]) == 0
    assert calls == [5]


@pytest.mark.parametrize("field, value", [
    ("log_every", 0), ("val_every", 0), ("ckpt_every", 0), ("keep_checkpoints", 0), ("val_batches", 0),
    ("warmup_steps", -1), ("seed", -1), ("lr", float("nan")), ("grad_clip", 0.0), ("w_vel", -1.0),
    ("weight_decay", float("nan")),
])
def test_tokenizer_train_config_refuses_counts_that_train_nothing_or_divide_by_zero(field, value):
    from mm_jax.tokenizer.config import TokenizerTrainConfig

    with pytest.raises(ConfigError, match=rf"TokenizerTrainConfig\.{field}="):
        TokenizerTrainConfig(**{field: value})


@pytest.mark.parametrize("cls, field, value", [
    ("evaluator", "learning_rate", 0.0), ("evaluator", "weight_decay", float("nan")),
    ("evaluator", "negative_filter", -1.0), ("evaluator", "seed", -1),
    ("train", "weight_decay", float("nan")), ("train", "grad_clip", float("nan")),
    ("train", "steps", 0), ("train", "steps", -1),
])
def test_configs_refuse_nan_and_out_of_range(cls, field, value):
    from mm_jax.eval.evaluator import EvaluatorConfig
    from mm_jax.train.config import TrainConfig

    with pytest.raises(ConfigError, match=field):
        {"evaluator": EvaluatorConfig, "train": TrainConfig}[cls](**{field: value})
