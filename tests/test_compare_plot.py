"""`rlkit compare` and `rlkit plot` on run and sweep directories written by hand in the layout
`rlkit train` and `rlkit sweep` write (no training): the table's numbers against
rlkit.report.stats and hand counts, real image files, and one-line usage errors."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlkit.cli.main import main
from rlkit.report import plots, stats
from rlkit.report.results import load

# --- fixtures: the files a run and a sweep leave ---------------------------------------------


def _rows(curves, point=None):
    """metrics.jsonl rows of curves [seeds, T] at env_steps 1000, 2000, ...; None -> null."""
    rows = []
    for t in range(len(curves[0])):
        for seed, curve in enumerate(curves):
            row = {"iteration": t, "seed": seed, "env_steps": 1000 * (t + 1), "iterations": 1}
            row |= {"episode_return": curve[t], "episodes": 3.0, "value_loss": 0.5}
            if point is not None:
                row["point"] = point
            rows.append(row)
    return rows


def write_run(root, name, finals, algo="ppo", env="CartPole-v1", curves=None, finished=True):
    path = Path(root) / name
    path.mkdir(parents=True)
    config = {"algo": algo, "env": env, "seeds": len(finals), "seed": 0, "config": {}}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    curves = curves or [[10.0 + s, None, 30.0 + 2 * s, 40.0 + s] for s in range(len(finals))]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(curves)))
    if finished:
        evaluation = {"deterministic": True, "per_seed_mean_return": finals}
        (path / "summary.json").write_text(json.dumps({"evaluation": evaluation}))
    return path


def write_sweep(root, name, finals_by_lr, algo="ppo", env="CartPole-v1", seeds=3):
    """A sweep over learning_rate: one point per entry, two points per group."""
    path = Path(root) / name
    path.mkdir(parents=True)
    grid = {"learning_rate": list(finals_by_lr)}
    spec = {"algo": algo, "env": env, "seeds": seeds, "seed": 0, "grid": grid, "config": {}}
    (path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    points = []
    for i, (lr, finals) in enumerate(finals_by_lr.items()):
        group = i // 2
        points.append(
            {
                "point": i,
                "group": group,
                "values": {"learning_rate": lr},
                "per_seed_mean_return": finals,
                "mean": 0.0,
                "iqm": 0.0,
                "ci95": {},
                "diverged_seeds": 0,
            }
        )
        folder = path / f"group_{group}"
        folder.mkdir(exist_ok=True)
        curves = [[5.0 * i + s, 7.0 * i + s] for s in range(seeds)]
        with open(folder / "metrics.jsonl", "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in _rows(curves, point=i))
    summary = {"kind": "sweep", "algo": algo, "env": env, "seeds": seeds, "grid": grid}
    (path / "summary.json").write_text(json.dumps(summary | {"points": points}))
    return path


def _compare_json(tmp_path, *args):
    out = tmp_path / "compare.json"
    assert main(["compare", *map(str, args), "--reps", "500", "--json", str(out)]) == 0
    return json.loads(out.read_text())


# --- loading ---------------------------------------------------------------------------------


def test_a_run_loads_its_finals_and_curves_with_null_as_nan(tmp_path):
    path = write_run(tmp_path, "a", [100.0, 120.0])
    (r,) = load(path)
    assert (r.label, r.algo, r.env, r.kind, r.values) == ("a", "ppo", "CartPole-v1", "run", {})
    np.testing.assert_array_equal(r.final, [100.0, 120.0])
    np.testing.assert_array_equal(r.curve_steps, [1000, 2000, 3000, 4000])
    np.testing.assert_array_equal(r.curve[1], [11.0, np.nan, 32.0, 41.0])


def test_a_sweep_gives_one_result_per_point_with_its_own_rows(tmp_path):
    path = write_sweep(tmp_path, "s", {0.001: [1.0, 2.0, 3.0], 0.01: [4.0, "nan", 6.0]})
    low, high = load(path)
    assert low.label == "ppo[learning_rate=0.001]" and high.values == {"learning_rate": 0.01}
    assert high.kind == "sweep point"
    np.testing.assert_array_equal(high.final, [4.0, np.nan, 6.0])
    # point 1's rows only: 5 * 1 + seed, 7 * 1 + seed
    np.testing.assert_array_equal(high.curve, [[5.0, 7.0], [6.0, 8.0], [7.0, 9.0]])


def test_an_unfinished_run_loads_for_curves_only(tmp_path):
    path = write_run(tmp_path, "u", [1.0, 2.0], finished=False)
    (r,) = load(path, finished=False)
    assert not r.finished and r.curve.shape == (2, 4)


# --- compare ---------------------------------------------------------------------------------


def test_compare_reports_the_stats_of_each_entry_and_improvement_over_the_first(tmp_path, capsys):
    a_finals = [100.0, 120.0, 140.0, 160.0, 500.0]
    a = write_run(tmp_path, "a", a_finals)
    b = write_run(tmp_path, "b", [150.0, 150.0, 200.0, 90.0])
    report = _compare_json(tmp_path, a, b)
    block = report["envs"]["CartPole-v1"]
    assert block["baseline"] == "a"
    # threshold: the best observed score in the env (500), no --normalise
    assert block["optimality_gap_threshold"] == 500.0
    ea, eb = block["entries"]
    assert ea["mean"] == pytest.approx(204.0) and ea["median"] == 140.0
    # 5 values, floor(1.25) = 1 per end: mean(120, 140, 160) = 140
    assert ea["iqm"] == pytest.approx(140.0)
    ci = stats.stratified_bootstrap_ci(np.array(a_finals), stats.iqm, reps=500)
    assert ea["iqm_ci95"] == pytest.approx(list(ci))
    # gaps 500 - x: 400 + 380 + 360 + 340 + 0 = 1480 -> 296
    assert ea["optimality_gap"] == pytest.approx(296.0)
    assert ea["probability_of_improvement"] is None
    # P(b > a): b's 150 beats 100, 120, 140 (3); 150 again (3); 200 beats four (4); 90 none:
    # 10 of 4 * 5 = 20 pairs -> 0.5
    assert eb["probability_of_improvement"]["point"] == pytest.approx(0.5)
    text = capsys.readouterr().out
    assert "baseline a" in text and "best observed" in text
    assert f"140.0 [{ci[0]:.1f}, {ci[1]:.1f}]" in text  # returns in the hundreds: 1 decimal


def test_compare_drops_and_counts_non_finite_seeds_of_a_sweep_point(tmp_path, capsys):
    s = write_sweep(tmp_path, "s", {0.001: [1.0, 2.0, 3.0], 0.01: [4.0, "nan", 6.0]})
    report = _compare_json(tmp_path, s)
    low, high = report["envs"]["CartPole-v1"]["entries"]
    assert low["label"] == "ppo[learning_rate=0.001]" and low["mean"] == pytest.approx(2.0)
    assert (high["seeds"], high["non_finite"], high["mean"]) == (2, 1, pytest.approx(5.0))
    # 4 and 6 against 1 2 3: all 6 pairs won
    assert high["probability_of_improvement"]["point"] == 1.0
    assert "2 (+1 non-finite)" in capsys.readouterr().out


def test_compare_baseline_flag_changes_the_reference(tmp_path):
    a = write_run(tmp_path, "a", [1.0, 2.0])
    b = write_run(tmp_path, "b", [3.0, 4.0])
    report = _compare_json(tmp_path, a, b, "--baseline", "b")
    ea, eb = report["envs"]["CartPole-v1"]["entries"]
    assert eb["probability_of_improvement"] is None
    assert ea["probability_of_improvement"]["point"] == 0.0


def test_compare_aggregates_normalised_scores_over_envs(tmp_path, capsys):
    # arms ppo and dqn on two envs; CartPole normalised by --normalise 0:500, Acrobot by the
    # observed min and max (-500 .. -100)
    runs = [
        write_run(tmp_path, "p1", [250.0, 500.0], algo="ppo"),
        write_run(tmp_path, "d1", [0.0, 100.0], algo="dqn"),
        write_run(tmp_path, "p2", [-100.0, -200.0], algo="ppo", env="Acrobot-v1"),
        write_run(tmp_path, "d2", [-500.0, -300.0], algo="dqn", env="Acrobot-v1"),
    ]
    report = _compare_json(tmp_path, *runs, "--normalise", "CartPole-v1=0:500")
    aggregate = report["aggregate"]
    assert aggregate["normalisation"]["Acrobot-v1"]["source"] == "observed min:max"
    assert aggregate["normalisation"]["Acrobot-v1"]["low"] == -500.0
    ppo, dqn = aggregate["entries"]
    # ppo: CartPole 0.5, 1.0; Acrobot (-100 + 500) / 400 = 1.0, 300 / 400 = 0.75 -> mean 0.8125
    assert ppo["label"] == "ppo" and ppo["mean"] == pytest.approx(0.8125)
    # dqn: 0, 0.2; 0, 0.5 -> mean 0.175; every ppo score beats every dqn score in each env
    assert dqn["mean"] == pytest.approx(0.175)
    assert dqn["probability_of_improvement"]["point"] == 0.0
    assert "observed min:max" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: d, "not a run or sweep directory"),
        (lambda d: write_run(d, "u", [1.0], finished=False), "has not finished (no summary.json)"),
        (
            lambda d: (
                (write_run(d, "c", [1.0]) / "summary.json").write_text("{not json") and d / "c"
            ),
            "is corrupt",
        ),
    ],
    ids=["missing", "not-a-run", "unfinished", "corrupt-summary"],
)
def test_compare_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert main(["compare", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("rlkit: error:")


@pytest.mark.parametrize(
    "flags", [["--normalise", "CartPole-v1=5"], ["--normalise", "Nope=0:1"], ["--baseline", "z"]]
)
def test_compare_bad_flags_are_one_line_and_exit_2(tmp_path, capsys, flags):
    path = write_run(tmp_path, "a", [1.0, 2.0])
    assert main(["compare", str(path), *flags]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# --- plot ------------------------------------------------------------------------------------


def _assert_images(paths):
    for path in paths:
        data = Path(path).read_bytes()
        assert len(data) > 5000, path
        if path.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert ET.fromstring(data).tag.endswith("svg")


def test_plot_of_a_run_writes_curves_and_profile_into_the_run(tmp_path, capsys):
    path = write_run(tmp_path, "a", [100.0, 120.0, 130.0])
    assert main(["plot", str(path)]) == 0
    written = capsys.readouterr().out.split()
    names = sorted(Path(p).name for p in written)
    assert names == ["curves.png", "curves.svg", "profile.png", "profile.svg"]
    assert all(Path(p).parent == path / "plots" for p in written)
    _assert_images(written)


def test_plot_of_a_sweep_and_an_unfinished_run_writes_every_kind(tmp_path, capsys):
    finals = {0.0001: [1.0, 2.0, 3.0], 0.001: [2.0, 3.0, 4.0], 0.01: [5.0, 5.5, 7.0]}
    s = write_sweep(tmp_path, "s", finals)
    u = write_run(tmp_path, "u", [0.0, 0.0, 0.0], finished=False)
    out = tmp_path / "figs"
    assert main(["plot", str(s), str(u), "--out", str(out), "--per-seed"]) == 0
    written = capsys.readouterr().out.split()
    assert {Path(p).name for p in written} == {
        f"{n}.{e}" for n in ("curves", "sweep_learning_rate", "profile") for e in ("png", "svg")
    }
    _assert_images(written)


def test_sweep_axis_is_logarithmic_only_beyond_a_decade():
    assert plots.spans_decades([1e-4, 1e-3, 1e-2])
    assert not plots.spans_decades([0.1, 0.5, 0.9])
    assert not plots.spans_decades([0, 1, 100])


def test_plot_sweep_of_a_plain_run_is_a_usage_error(tmp_path, capsys):
    path = write_run(tmp_path, "a", [1.0, 2.0])
    assert main(["plot", str(path), "--kind", "sweep"]) == 2
    assert "needs a sweep" in capsys.readouterr().err


def test_curves_join_the_rows_that_have_a_value(tmp_path, monkeypatch):
    # Each value sits between rows where no episode ended (null): matplotlib breaks a line at
    # nan, so drawn as is nothing would show; the curve goes through the finite rows instead.
    sparse = [[None, 50.0, None, 100.0, None, 100.0] for _ in range(4)]
    path = write_run(tmp_path, "a", [100.0] * 4, curves=sparse)
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, stem: figures.append(fig) or [])
    plots.learning_curves(load(path), tmp_path / "curves", per_seed=True)
    ax = figures[0].axes[0]
    for line in ax.lines:  # the IQM, then the per-seed lines
        np.testing.assert_array_equal(line.get_xdata(), [2000, 4000, 6000])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [50.0, 100.0, 100.0])
    steps, values = plots.finite_points(np.arange(3), np.array([np.nan, 1.0, np.inf]))
    np.testing.assert_array_equal(steps, [1])
    np.testing.assert_array_equal(values, [1.0])
