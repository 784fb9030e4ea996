"""The divergence guard: a non-finite loss, gradient norm or parameter stops the run at the chunk
where it appears, naming the metric, the iteration and the seed."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlkit.training.guard import Diverged, check_metrics, guarded_metric, params_finite


def test_the_guard_checks_losses_and_gradient_norms_only() -> None:
    assert guarded_metric("policy_loss") and guarded_metric("loss") and guarded_metric("grad_norm")
    # NaN by design: no episode ended; constant targets.
    assert not guarded_metric("episode_return") and not guarded_metric("explained_variance")


def test_the_first_non_finite_value_is_named_by_iteration_then_seed() -> None:
    ok = np.ones((3, 4), np.float32)
    value_loss = ok.copy()
    value_loss[2, 1] = np.inf  # seed 2, iteration 10 + 1
    grad_norm = ok.copy()
    grad_norm[0, 3] = np.nan  # later
    episode_return = np.full((3, 4), np.nan, np.float32)  # not guarded
    metrics = {
        "value_loss": value_loss,
        "grad_norm": grad_norm,
        "episode_return": episode_return,
    }
    with pytest.raises(Diverged) as caught:
        check_metrics(10, metrics)
    error = caught.value
    assert (error.what, error.iteration, error.seed) == ("value_loss", 11, 2)
    assert str(error) == "value_loss is not finite (inf) at iteration 11, seed 2"
    check_metrics(10, {"policy_loss": ok, "episode_return": episode_return})  # no raise


def test_parameters_are_checked_per_seed() -> None:
    state = {"w": jnp.array([[1.0, 2.0], [1.0, jnp.nan]]), "step": jnp.array([3, 3])}
    finite = jax.vmap(params_finite(lambda s: s))(state)
    assert finite.tolist() == [True, False]


def test_a_diverging_run_stops_in_its_first_chunk_with_one_line_and_exit_1(tmp_path, capsys):
    from rlkit.cli import main

    argv = ["train", "ppo", "--env", "CartPole-v1", "--set", "learning_rate=1e30"]
    argv += ["--steps", "40960", "--set", "num_envs=4", "--set", "rollout_length=64"]
    argv += ["--runs-dir", str(tmp_path), "--name", "boom", "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rlkit: error: training diverged: ")
    assert "is not finite" in err[-1] and "no checkpoint was saved" in err[-1]
    # 160 iterations in chunks of 8: it stopped in the first chunk, and its rows say "nan".
    lines = (tmp_path / "boom" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert max(r["iteration"] for r in rows) < 8
    assert any(value in ("nan", "inf", "-inf") for r in rows for value in r.values())
    assert not (tmp_path / "boom" / "summary.json").exists()
