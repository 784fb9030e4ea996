"""Gymnasium both ways (rlkit.bridges.gymnasium_env, envs/gymnasium_registry.py): rlkit's
environments pass gymnasium's own checker and step exactly as the JAX environment does; `--env
gym:ENV_ID` trains from the command line, and what a host environment cannot do is one line."""

from __future__ import annotations

import json
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

import envs
import envs.gymnasium_registry as gym_registry
from rlkit.cli import main

IDS = [f"rlkit/{name}" for name in envs.RLKIT_ENVS]

# check_env's warnings that remain, each for a reason that is not a fault of the environment:
# BalanceBall's observations are unbounded physical quantities (velocities; ML-Agents declares
# no bounds either), and check_env recommends checking `env.unwrapped` when it is given the
# wrapped environment gymnasium.make returns (which the second check does on purpose).
UNBOUNDED = ("minimum value is -infinity", "maximum value is infinity")
WRAPPED = ("is different from the unwrapped version",)
EXPECTED_WARNINGS = {
    "rlkit/BalanceBall-v0": UNBOUNDED,
    "rlkit/BalanceBallHard-v0": UNBOUNDED,
}


def test_importing_the_bridge_registers_every_rlkit_env_under_the_rlkit_namespace() -> None:
    # Every rlkit-native environment of the registry, none of gymnax's (gymnasium has those).
    assert IDS == [
        "rlkit/BalanceBall-v0",
        "rlkit/BalanceBallHard-v0",
        "rlkit/ConnectFour-v0",
        "rlkit/GridWorld-v0",
        "rlkit/TicTacToe-v0",
    ]
    assert all(env_id in gymnasium.registry for env_id in IDS)
    assert not any(env_id.startswith("rlkit/CartPole") for env_id in gymnasium.registry)
    specs = [gymnasium.registry[env_id] for env_id in IDS]
    assert gym_registry.register_gymnasium_envs() == IDS  # idempotent: the same entries stay
    assert [gymnasium.registry[env_id] for env_id in IDS] == specs


def _warnings_of_check_env(env: gymnasium.Env) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    return [str(w.message) for w in caught]


def _unexpected(messages: list[str], expected: tuple[str, ...]) -> list[str]:
    return [m for m in messages if not any(text in m for text in expected)]


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [(env_id, {}) for env_id in IDS] + [("rlkit/GridWorld-v0", {"obs_mode": "image"})],
)
def test_every_registered_env_passes_gymnasium_check_env(env_id: str, kwargs: dict) -> None:
    expected = EXPECTED_WARNINGS.get(env_id, ())
    env = gymnasium.make(env_id, **kwargs)
    assert _unexpected(_warnings_of_check_env(env.unwrapped), expected) == []
    assert _unexpected(_warnings_of_check_env(env), expected + WRAPPED) == []
    env.close()


def test_spaces_are_the_jax_envs_spaces_exactly() -> None:
    ball = gymnasium.make("rlkit/BalanceBall-v0")
    assert ball.observation_space == gymnasium.spaces.Box(-np.inf, np.inf, (8,), np.float32)
    assert ball.action_space == gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    image = gymnasium.make("rlkit/GridWorld-v0", obs_mode="image")
    unit = dict(low=0.0, high=1.0, dtype=np.float32)
    assert image.observation_space == gymnasium.spaces.Dict(
        {
            "image": gymnasium.spaces.Box(shape=(64, 84, 3), **unit),
            "goal": gymnasium.spaces.Box(shape=(2,), **unit),
        }
    )
    assert image.action_space == gymnasium.spaces.Discrete(5)
    obs, _ = image.reset(seed=0)
    assert set(obs) == {"image", "goal"} and obs["image"].dtype == np.float32


def _jax_trajectory(env_name: str, overrides: dict, seed: int, actions: list) -> dict:
    """The JAX env's own reset and steps under the key chain of the module docstring, until
    the first episode ends; then the next reset from the chain's next key."""
    env, params = envs.make(env_name, **overrides)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    key, k = jax.random.split(jax.random.PRNGKey(seed))
    obs, state = reset(k, params)
    out: dict = {"obs": [obs], "reward": [], "terminated": [], "truncated": [], "mask": []}
    out["mask"].append(env.action_mask(state, params))
    for action in actions:
        key, k = jax.random.split(key)
        _, state, reward, terminated, truncated, info = step(k, state, action, params)
        out["obs"].append(info["final_observation"])
        out["mask"].append(info.get("final_action_mask"))
        out["reward"].append(reward)
        out["terminated"].append(bool(terminated))
        out["truncated"].append(bool(truncated))
        if terminated or truncated:
            break
    key, k = jax.random.split(key)
    out["next_reset"] = reset(k, params)[0]
    return out


def _gymnasium_trajectory(env_id: str, overrides: dict, seed: int, actions: list) -> dict:
    env = gymnasium.make(env_id, **overrides)
    obs, info = env.reset(seed=seed)
    out: dict = {"obs": [obs], "reward": [], "terminated": [], "truncated": [], "mask": []}
    out["mask"].append(info.get("action_mask"))
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out["obs"].append(obs)
        out["mask"].append(info.get("action_mask"))
        out["reward"].append(reward)
        out["terminated"].append(terminated)
        out["truncated"].append(truncated)
        if terminated or truncated:
            break
    out["next_reset"] = env.reset()[0]  # no seed: the key chain goes on
    return out


# (registry name, overrides, seed, actions, how the episode ends, after how many steps): a
# constant full tilt drops BalanceBall's ball off the platform (a termination); GridWorld's
# action 0 (stay) never reaches a goal, so the time limit of 100 cuts it (a truncation);
# TicTacToe's moves 0..6 give X the diagonal 2-4-6 on the 7th move (a win, reward 1).
TRAJECTORIES = [
    ("BalanceBall-v0", {}, 3, [np.array([1.0, 1.0], np.float32)] * 200, "terminated", None),
    ("GridWorld-v0", {}, 5, [0] * 120, "truncated", 100),
    ("TicTacToe-v0", {}, 0, list(range(9)), "terminated", 7),
]


@pytest.mark.parametrize(("name", "overrides", "seed", "actions", "end", "length"), TRAJECTORIES)
def test_a_gymnasium_trajectory_is_the_jax_envs_own(
    name: str, overrides: dict, seed: int, actions: list, end: str, length: int | None
) -> None:
    expected = _jax_trajectory(name, overrides, seed, [jnp.asarray(a) for a in actions])
    seen = _gymnasium_trajectory(f"rlkit/{name}", overrides, seed, actions)
    steps = len(expected["reward"])
    assert len(seen["reward"]) == steps and steps < len(actions)
    if length is not None:
        assert steps == length
    for got, want in zip(seen["obs"], expected["obs"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(seen["reward"], expected["reward"], rtol=1e-6, atol=1e-6)
    assert seen["terminated"] == expected["terminated"]
    assert seen["truncated"] == expected["truncated"]
    # Gymnasium's semantics: only the last step ends the episode, and by `end` alone.
    other = "truncated" if end == "terminated" else "terminated"
    assert seen[end] == [False] * (steps - 1) + [True] and not any(seen[other])
    for got, want in zip(seen["mask"], expected["mask"], strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(seen["next_reset"], expected["next_reset"], rtol=1e-6, atol=1e-6)
    if name == "TicTacToe-v0":
        assert seen["reward"][-1] == 1.0  # X's win, to the player who moved
        assert seen["mask"][1].tolist() == [False] + [True] * 8  # X took cell 0


def test_reset_with_a_seed_is_reproducible_and_seeds_differ() -> None:
    env = gymnasium.make("rlkit/BalanceBall-v0").unwrapped
    first, _ = env.reset(seed=7)
    env.step(env.action_space.sample())
    again, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # The seed is the JAX key's: PRNGKey(7), split once for the reset.
    jax_env, params = envs.make("BalanceBall-v0")
    expected = jax_env.reset(jax.random.split(jax.random.PRNGKey(7))[1], params)[0]
    np.testing.assert_allclose(first, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=2**32)  # PRNGKey would alias it with seed 0


def test_copies_of_a_gymnasium_vector_env_share_one_environment_and_compilation() -> None:
    vector = gymnasium.make_vec("rlkit/GridWorld-v0", num_envs=3, vectorization_mode="sync")
    assert len({id(env.unwrapped.env) for env in vector.envs}) == 1
    obs, info = vector.reset(seed=0)
    assert obs.shape == (3, 77) and info["action_mask"].shape == (3, 5)
    assert not np.array_equal(obs[0], obs[1])  # gymnasium seeds copy i with seed + i
    vector.close()


def test_rendering_and_out_of_space_actions_are_refused() -> None:
    with pytest.raises(ValueError, match="render"):
        gym_registry.make_registered("GridWorld-v0", render_mode="human")
    env = gymnasium.make("rlkit/GridWorld-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        env.step(5)


# -- the command line: --env gym:ENV_ID ----------------------------------------------------------


def test_ppo_trains_on_gymnasium_cartpole_from_the_command_line(tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    args = ["train", "ppo", "--env", "gym:CartPole-v1", "--steps", "1024"]
    args += ["--set", "rollout_length=64", "--runs-dir", str(runs)]
    args += ["--no-progress", "--eval-episodes", "6"]
    assert main(args) == 0
    (run,) = runs.iterdir()
    assert run.name.startswith("ppo-gym-CartPole-v1-")  # the default name is a plain folder name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["env"], config["seeds"], config["config"]["num_envs"]) == (
        "gym:CartPole-v1",
        1,
        4,
    )
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # 1024 steps / (4 copies x 64 steps) = 4 iterations, one row (log every 1000 steps).
    assert rows[-1]["env_steps"] == 1024 and rows[-1]["episodes"] > 0
    summary = json.loads((run / "summary.json").read_text())
    evaluation = summary["evaluation"]
    # 6 episodes from 4 host copies: two rounds of 4, the first 6 kept; each episode ends by
    # gymnasium's own time limit of 500 steps at the latest.
    assert evaluation["episodes_per_seed"] == 6 and len(evaluation["per_seed_mean_return"]) == 1
    assert 8 <= evaluation["mean_length"] <= 500
    # The run cannot be resumed (the host env's state was never checkpointed): one line.
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume cannot use it" in err[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "ppo", "--env", "gym:CartPole-v1", "--seeds", "2"], "trains 1 seed, not 2"),
        (["train", "ppo", "--env", "gym:CartPol-v1"], "unknown gymnasium environment"),
        (["train", "mcts", "--env", "gym:CartPole-v1"], "mcts cannot train on gym:CartPole-v1"),
        (
            ["sweep", "ppo", "--env", "gym:CartPole-v1", "--grid", "learning_rate=1e-3,1e-4"],
            "rlkit sweep cannot use it",
        ),
        (
            [
                "tune",
                "ppo",
                "--env",
                "gym:CartPole-v1",
                "--param",
                "learning_rate=loguniform:1e-5:1e-2",
            ],
            "rlkit tune cannot use it",
        ),
    ],
)
def test_what_a_host_env_cannot_do_is_one_line_and_writes_nothing(
    tmp_path, capsys, argv: list[str], message: str
) -> None:
    runs = tmp_path / "runs"
    assert main([*argv, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlkit: error: ") and message in err[0]
    assert not runs.exists()
