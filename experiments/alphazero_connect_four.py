"""AlphaZero by self-play on Connect Four (ConnectFour-v0), measured against the reference
opponents of envs/connect_four.py as it learns.

Seeds train together, vmapped (seed i starts from fold_in(PRNGKey(0), i)). After every `--every`
iterations each seed's search-guided play (deterministic: no root noise) meets the random
player and the depth-limited minimax player (`--depth`), `--games` games as the first player and
as many as the second (envs.match.play_match), and the learning curve is the mean over seeds.
Writes experiments/results/alphazero_connect_four/ (table.md: the curve, per seed at the end;
curves.png, .svg: win and non-loss rates over iterations; policy.pkl: the trained networks):

    PYTHONPATH=. python experiments/alphazero_connect_four.py [--seeds 2] [--iterations 800]
        [--every 200] [--games 100] [--depth 4] [--final-simulations 512] [--set key=value ...]
        [--quick]

The settings are alphazero.Config's defaults with `--set` overrides, those below first.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import yaml

import envs
from agents import alphazero
from envs import connect_four, match
from rlkit.core.config import config_from_dict

RESULTS = Path(__file__).resolve().parent / "results" / "alphazero_connect_four"

#: Settings for Connect Four, chosen here (single-seed probes, 300-1500 iterations): games of up
#: to 42 moves outlast a rollout of 16, so the value target bootstraps from the network where
#: the rollout cuts a game; a deeper, wider torso; 32 gradient steps per iteration over the
#: last 64 iterations' positions (the defaults' 8 over 8 plateaued near 60% non-losses).
SETTINGS: dict[str, Any] = {
    "value_target": "bootstrap",
    "hidden": (256, 256, 256),
    "gradient_steps": 32,
    "buffer_size": 65_536,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--every", type=int, default=200, help="iterations between matches")
    parser.add_argument("--games", type=int, default=100, help="games a side per match")
    parser.add_argument("--depth", type=int, default=4, help="the minimax player's plies")
    parser.add_argument(
        "--final-simulations",
        type=int,
        default=512,
        help="simulations per move in the final matches (the curve: the training search's)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quick", action="store_true", help="a smoke test, not a result")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.iterations, args.every, args.games, args.depth = 1, 2, 1, 4, 1
        args.final_simulations = 8
    return args


def main(argv: list[str] | None = None) -> dict[str, np.ndarray]:
    args = arguments(argv)
    env, params = envs.make("ConnectFour-v0")
    values = dict(SETTINGS)
    for item in args.set:
        key, _, value = item.partition("=")
        values[key] = yaml.safe_load(value)
    if args.quick:
        values.update(num_envs=4, rollout_length=8, num_simulations=4, hidden=(8,))
        values.update(buffer_size=64, batch_size=8, gradient_steps=1)
    defaults = alphazero.Config()
    num_envs = values.get("num_envs", defaults.num_envs)
    steps = num_envs * values.get("rollout_length", defaults.rollout_length) * args.iterations
    config = config_from_dict(alphazero.Config, {**values, "total_steps": steps})
    algo = alphazero.make(config, env, params)
    minimax = connect_four.minimax_player(args.depth)

    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(jnp.arange(args.seeds))
    states = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(keys, algo.hparams)

    def chunk(states: Any) -> Any:
        def body(s: Any, _: Any) -> tuple:
            return jax.vmap(algo.update)(s)[0], None

        return jax.lax.scan(body, states, None, length=args.every)[0]

    def matches_of(searcher: Any) -> Any:
        """Jitted (states [seeds], key) -> the match rates [seeds] of searcher's act (the same
        network, its own number of simulations) against random and minimax."""

        def matches(state: Any, key: jax.Array) -> tuple[dict, dict]:
            policy = algo.policy_params(state)

            def player(key, states, obs, masks):
                return searcher.act(policy, obs, key, True, masks, env_state=states)

            a, b = jax.random.split(key)
            return (
                match.play_match(env, params, player, match.random_player, a, args.games),
                match.play_match(env, params, player, minimax, b, args.games),
            )

        return jax.jit(jax.vmap(matches, in_axes=(0, None)))

    chunk = jax.jit(chunk, donate_argnums=0)
    matches = matches_of(algo)
    rows, start = [], time.time()
    for done in range(0, args.iterations + 1, args.every):
        if done:
            states = chunk(states)
        against_random, against_minimax = matches(states, jax.random.PRNGKey(done))
        row = {
            **as_row(against_random, against_minimax, done),
            "minutes": (time.time() - start) / 60,
        }
        rows.append(row)
        print_row(row, args.depth)
    final_config = dataclasses.replace(config, num_simulations=args.final_simulations)
    final = matches_of(alphazero.make(final_config, env, params))(states, jax.random.PRNGKey(1))
    final_row = {**as_row(*final, done), "minutes": (time.time() - start) / 60}
    print(f"with {args.final_simulations} simulations per move:")
    print_row(final_row, args.depth)
    write(args, config, rows, final_row)
    with open(args.out / "policy.pkl", "wb") as f:  # the trained networks [seeds], for replays
        pickle.dump(jax.device_get(algo.policy_params(states)), f)
    return {key: np.stack([r[key] for r in rows]) for key in rows[0]}


def as_row(against_random: dict, against_minimax: dict, iteration: int) -> dict:
    """The rates [seeds] of one round of matches."""
    return {
        "iteration": iteration,
        "wins_random": np.asarray(against_random["win"]),
        "losses_random": np.asarray(against_random["loss"]),
        "wins_minimax": np.asarray(against_minimax["win"]),
        "holds_minimax": 1.0 - np.asarray(against_minimax["loss"]),
        "holds_minimax_first": 1.0 - np.asarray(against_minimax["loss_first"]),
        "holds_minimax_second": 1.0 - np.asarray(against_minimax["loss_second"]),
    }


def print_row(row: dict, depth: int) -> None:
    print(
        f"iteration {row['iteration']:5d}  vs random: wins {row['wins_random'].mean():.3f} "
        f"losses {row['losses_random'].mean():.3f}  vs minimax-{depth}: wins "
        f"{row['wins_minimax'].mean():.3f} non-losses {row['holds_minimax'].mean():.3f} "
        f"(first {row['holds_minimax_first'].mean():.3f}, second "
        f"{row['holds_minimax_second'].mean():.3f})  ({row['minutes']:.1f} min)",
        flush=True,
    )


def table_row(r: dict) -> str:
    return (
        f"| {r['iteration']} | {r['wins_random'].mean():.3f} | {r['losses_random'].mean():.3f}"
        f" | {r['wins_minimax'].mean():.3f} | {r['holds_minimax'].mean():.3f} "
        f"({r['holds_minimax_first'].mean():.3f} / {r['holds_minimax_second'].mean():.3f}) "
        f"| {r['minutes']:.1f} |"
    )


def write(args: argparse.Namespace, config: Any, rows: list[dict], final: dict) -> None:
    """table.md and the curves under args.out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    depth = args.depth
    header = [
        f"| iteration | wins vs random | losses vs random | wins vs minimax-{depth} "
        f"| non-losses vs minimax-{depth} (first / second) | minutes |",
        "|---|---|---|---|---|---|",
    ]
    lines = [
        f"# AlphaZero on ConnectFour-v0: {args.seeds} seeds, {args.games} games a side per match",
        "",
        f"Settings: {SETTINGS} and --set {args.set or 'nothing'}; "
        f"{config.num_simulations} simulations ({config.search}), q_scaling {config.q_scaling}.",
        "",
        f"Learning curve (mean over seeds; {config.num_simulations} simulations per move):",
        "",
        *header,
        *[table_row(r) for r in rows],
        "",
        f"After training, {args.final_simulations} simulations per move:",
        "",
        *header,
        table_row(final),
        "",
        "Per seed after training (wins vs random, non-losses vs minimax):",
        "",
    ]
    for seed in range(args.seeds):
        lines.append(
            f"- seed {seed}: {final['wins_random'][seed]:.3f}, {final['holds_minimax'][seed]:.3f}"
        )
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    iterations = np.array([r["iteration"] for r in rows])
    curves = {
        "wins vs random": np.stack([r["wins_random"] for r in rows], 1),
        f"non-losses vs minimax-{depth}": np.stack([r["holds_minimax"] for r in rows], 1),
        f"wins vs minimax-{depth}": np.stack([r["wins_minimax"] for r in rows], 1),
    }
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, rates) in enumerate(curves.items()):
        ax.plot(iterations, rates.mean(0), color=f"C{i}", label=f"{label} (mean of seeds)")
        for seed_rates in rates:
            ax.plot(iterations, seed_rates, color=f"C{i}", alpha=0.3, lw=0.6)
    ax.set(xlabel="iteration", ylabel="rate", ylim=(0, 1), title="AlphaZero on ConnectFour-v0")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(args.out / f"curves.{ext}", dpi=120)
    plt.close(fig)
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    main()
