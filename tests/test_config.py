"""Configs: ranges are enforced, overrides are typed, traced fields become hparams."""

from __future__ import annotations

import dataclasses

import pytest

from agents import ppo
from rlkit.config import config_from_dict, config_to_dict, hparams_of, parse_assignment


def test_out_of_range_values_name_the_field_and_the_range() -> None:
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\], got 1.5"):
        ppo.Config(gamma=1.5)
    with pytest.raises(ValueError, match="activation must be one of"):
        ppo.Config(activation="sigmoid")
    with pytest.raises(ValueError, match=r"adam_eps must be in \(0, inf\]"):
        ppo.Config(adam_eps=0.0)
    with pytest.raises(ValueError, match="num_minibatches"):
        ppo.Config(num_envs=3, rollout_length=5, num_minibatches=4)


def test_overrides_are_parsed_as_yaml_and_coerced_to_the_field_type() -> None:
    assert parse_assignment("learning_rate=3e-4") == ("learning_rate", 3e-4)
    assert parse_assignment("anneal_lr=false") == ("anneal_lr", False)
    assert parse_assignment("hidden=[32, 16]") == ("hidden", [32, 16])
    config = config_from_dict(
        ppo.Config, dict([parse_assignment("hidden=[32, 16]"), parse_assignment("num_envs=8")])
    )
    assert config.hidden == (32, 16) and config.num_envs == 8
    with pytest.raises(ValueError, match="num_envs must be an integer"):
        config_from_dict(ppo.Config, {"num_envs": 2.5})
    with pytest.raises(ValueError, match="anneal_lr must be true or false"):
        config_from_dict(ppo.Config, {"anneal_lr": "maybe"})
    with pytest.raises(
        ValueError, match="unknown hyperparameter 'gama' \\(did you mean gamma\\?\\)"
    ):
        config_from_dict(ppo.Config, {"gama": 0.9})
    with pytest.raises(ValueError, match="expected key=value"):
        parse_assignment("gamma")


def test_traced_fields_become_float32_hparams_and_static_ones_do_not() -> None:
    config = ppo.Config()
    hparams = hparams_of(config)
    traced = {f.name for f in dataclasses.fields(config) if f.metadata["traced"]}
    assert set(hparams) == traced
    assert {"learning_rate", "gamma", "gae_lambda", "clip_eps", "ent_coef"} <= traced
    assert not {"num_envs", "rollout_length", "hidden"} & traced
    assert all(str(v.dtype) == "float32" for v in hparams.values())


def test_config_round_trips_through_a_dict() -> None:
    config = ppo.Config(hidden=(32,), gamma=0.9)
    assert config_from_dict(ppo.Config, config_to_dict(config)) == config


@pytest.mark.parametrize("preset", list(ppo.PRESETS))
def test_every_ppo_preset_is_a_valid_config(preset: str) -> None:
    config_from_dict(ppo.Config, ppo.PRESETS[preset])
