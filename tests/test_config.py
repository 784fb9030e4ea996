"""Configs: ranges are enforced, overrides are typed, traced fields become hparams."""

from __future__ import annotations

import dataclasses

import pytest

from agents import a2c, dqn, ppo, reinforce, sac
from rlkit.core import fields
from rlkit.core.config import (
    RENAMED,
    config_from_dict,
    config_to_dict,
    hparams_of,
    load_presets,
    parse_assignment,
)
from rlkit.nets.layers import ACTIVATIONS

AGENTS = (reinforce, a2c, ppo, dqn, sac)


def test_out_of_range_values_name_the_field_and_the_range() -> None:
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\], got 1.5"):
        ppo.Config(gamma=1.5)
    with pytest.raises(ValueError, match="activation must be one of"):
        ppo.Config(activation="sigmoid")
    with pytest.raises(ValueError, match=r"optimiser_eps must be in \(0, inf\]"):
        ppo.Config(optimiser_eps=0.0)
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


def test_a_field_shared_by_agents_means_the_same_in_each_only_its_default_differs() -> None:
    # Every name declared in rlkit.core.fields has one help text (up to the default's source in
    # parentheses), one range and one kind wherever an agent has it.
    shared = set(fields.__all__) - {"ACTIVATIONS"}
    seen = set()
    for agent in AGENTS:
        for f in dataclasses.fields(agent.Config):
            if f.name not in shared:
                continue
            declared = getattr(fields, f.name)(f.default, "\0").metadata
            before, after = declared["help"].split("\0")
            assert f.metadata["help"].startswith(before), (agent.__name__, f.name)
            assert f.metadata["help"].endswith(after), (agent.__name__, f.name)
            rest = lambda meta: {k: v for k, v in meta.items() if k != "help"}  # noqa: E731
            assert rest(f.metadata) == rest(declared), (agent.__name__, f.name)
            seen.add(f.name)
    assert {"learning_rate", "gamma", "optimiser_eps", "hidden", "total_steps"} <= set(seen)


def test_no_agent_has_an_old_name_and_an_old_name_says_the_new_one() -> None:
    for agent in AGENTS:
        names = {f.name for f in dataclasses.fields(agent.Config)}
        assert not set(RENAMED) & names, agent.__name__
    with pytest.raises(ValueError, match="'adam_eps' is now called 'optimiser_eps'"):
        config_from_dict(ppo.Config, {"adam_eps": 1e-5})
    with pytest.raises(ValueError, match="'train_freq' is now called 'train_frequency'"):
        config_from_dict(sac.Config, {"train_freq": 2})


def test_the_activation_choices_are_the_networks_activations() -> None:
    assert tuple(ACTIVATIONS) == fields.ACTIVATIONS


def test_presets_read_from_yaml_are_typed_and_templates_are_not_presets(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "_base: &base\n  learning_rate: 3e-4\n  hidden: [8, 8]\none:\n  <<: *base\n  num_envs: 2\n"
    )
    presets = load_presets(path, ppo.Config)
    assert presets == {"one": {"learning_rate": 3e-4, "hidden": (8, 8), "num_envs": 2}}
    path.write_text("bad:\n  gama: 0.9\n")
    with pytest.raises(ValueError, match="unknown fields: \\['gama'\\]"):
        load_presets(path, ppo.Config)
