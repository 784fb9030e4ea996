"""The TensorBoard and W&B sinks, read back with TensorBoard's own reader and wandb's own
offline run file (rlkit/report/tensorboard.py, rlkit/report/wandb_sink.py)."""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.record_writer import masked_crc32c as tensorboardx_masked_crc32c

from rlkit.report import wandb_sink
from rlkit.report.tensorboard import (
    TAGS,
    TensorBoardSink,
    masked_crc32c,
    scalar_event,
    tag,
)
from rlkit.report.wandb_sink import open_wandb

STEPS_PER_ITERATION = 512


def ppo_row(iteration: int, seed: int, **values: float | None) -> dict:
    row = {
        "iteration": iteration,
        "seed": seed,
        "env_steps": (iteration + 1) * STEPS_PER_ITERATION,
        "iterations": 1,
        "episode_return": 20.0 + iteration + 0.1 * seed,
        "episode_length": 21.5,
        "episodes": 230.0,
        "policy_loss": -0.01 * (iteration + 1),
        "value_loss": 30.2 - seed,
        "entropy": 0.69,
        "learning_rate": 0.00025,
        "grad_norm": 6.7,
        "approx_kl": 1e-4,
    }
    row.update(values)
    return row


def read(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of one run's folder, as both of TensorBoard's readers see it:
    EventAccumulator, and plugin_event_accumulator (behind `tensorboard --logdir`, scalars as
    tensors), which differ in how they purge."""
    reader = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    reader.Reload()
    scalars = {
        name: [(event.step, event.value) for event in reader.Scalars(name)]
        for name in reader.Tags()["scalars"]
    }
    server = plugin_event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    server.Reload()
    tensors = {
        name: [
            (e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in server.Tensors(name)
        ]
        for name in server.Tags()["tensors"]
    }
    assert sorted(tensors) == sorted(scalars)
    for name, points in scalars.items():
        np.testing.assert_array_equal(np.array(tensors[name]), np.array(points), err_msg=name)
    return scalars


def f32(x: float) -> float:
    return float(np.float32(x))


# TensorBoard


def test_tags_follow_ml_agents_and_the_rest_go_under_rlkit() -> None:
    assert tag("episode_return") == "Environment/Cumulative Reward"
    assert tag("episode_length") == "Environment/Episode Length"
    assert tag("entropy") == "Policy/Entropy"
    assert tag("learning_rate") == "Policy/Learning Rate"
    assert tag("policy_loss") == tag("actor_loss") == "Losses/Policy Loss"
    assert tag("value_loss") == tag("critic_loss") == "Losses/Value Loss"
    assert tag("grad_norm") == "rlkit/grad_norm"
    assert tag("epsilon") == "rlkit/epsilon"  # DQN's; ML-Agents' Policy/Epsilon is PPO's clip
    assert set(TAGS) == {
        "episode_return",
        "episode_length",
        "entropy",
        "learning_rate",
        "policy_loss",
        "actor_loss",
        "value_loss",
        "critic_loss",
    }


def test_event_encoding_is_protobufs_and_the_crc_tensorboardx() -> None:
    values = [("Environment/Cumulative Reward", 21.5), ("rlkit/grad_norm", -1e-7)]
    expected = Event(wall_time=1.7e9 + 0.25, step=51200)
    expected.summary.value.extend(Summary.Value(tag=t, simple_value=v) for t, v in values)
    assert scalar_event(1.7e9 + 0.25, 51200, values) == expected.SerializeToString()
    rng = np.random.default_rng(0)
    for n in [0, 1, 8, 63, 64, 65, 326, 1024, 1025, 3000]:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert masked_crc32c(data) == tensorboardx_masked_crc32c(data), n


def test_tensorboard_writes_one_run_per_seed(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path, num_seeds=2)
    rows = [ppo_row(i, s) for i in range(3) for s in range(2)]
    rows[0]["episode_return"] = None  # seed 0, iteration 0: no episode finished
    rows[0]["episode_length"] = None
    rows[3]["grad_norm"] = math.nan  # seed 1, iteration 1 diverged
    rows[5]["value_loss"] = math.inf
    sink.write(rows[:2])
    sink.write(rows[2:])
    sink.close()
    sink.close()

    seeds = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
    assert seeds == ["seed_0", "seed_1"]
    for seed in range(2):
        folder = tmp_path / "tensorboard" / f"seed_{seed}"
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        scalars = read(folder)
        mine = [r for r in rows if r["seed"] == seed]
        names = [k for k in mine[0] if k not in ("iteration", "seed", "env_steps", "iterations")]
        assert set(scalars) == {tag(name) for name in names}
        for name in names:
            expected = [(r["env_steps"], f32(r[name])) for r in mine if r[name] is not None]
            got = scalars[tag(name)]
            assert [step for step, _ in got] == [step for step, _ in expected], name
            for (_, value), (_, want) in zip(got, expected, strict=True):
                assert value == want or (math.isnan(value) and math.isnan(want)), name
    seed0 = read(tmp_path / "tensorboard" / "seed_0")
    assert [s for s, _ in seed0["Environment/Cumulative Reward"]] == [1024, 1536]
    seed1 = read(tmp_path / "tensorboard" / "seed_1")
    assert math.isnan(seed1["rlkit/grad_norm"][1][1])
    assert seed1["Losses/Value Loss"][2][1] == math.inf
    for name in [
        "Environment/Cumulative Reward",
        "Environment/Episode Length",
        "Policy/Entropy",
        "Policy/Learning Rate",
        "Losses/Policy Loss",
        "Losses/Value Loss",
    ]:
        assert name in seed1


def test_tensorboard_sac_names(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path, num_seeds=1)
    values = {"critic_loss": 1.5, "actor_loss": -3.0, "alpha_loss": 0.1, "alpha": 0.2}
    sink.write([{"iteration": 0, "seed": 0, "env_steps": 100, **values}])
    sink.close()
    assert read(tmp_path / "tensorboard" / "seed_0") == {
        "Losses/Value Loss": [(100, 1.5)],
        "Losses/Policy Loss": [(100, -3.0)],
        "rlkit/alpha_loss": [(100, f32(0.1))],
        "rlkit/alpha": [(100, f32(0.2))],
    }


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from rlkit.report.tensorboard import TensorBoardSink
sink = TensorBoardSink(Path(sys.argv[1]), num_seeds=2)
for step in range(1, 11):
    sink.write([{"iteration": step - 1, "seed": s, "env_steps": step, "policy_loss": 1.0 * step}
                for s in range(2)])
os.kill(os.getpid(), signal.SIGKILL)  # no close, no exit handlers
"""


def test_resume_purges_what_a_killed_process_wrote_after_the_checkpoint(tmp_path: Path) -> None:
    # The first process logs steps 1..10 and is killed (checkpoint at step 5).
    repo = Path(__file__).resolve().parents[1]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=repo, check=False
    )
    assert killed.returncode == -9
    folder = tmp_path / "tensorboard" / "seed_1"
    assert read(folder)["Losses/Policy Loss"] == [(s, float(s)) for s in range(1, 11)]

    # The resumed process (most likely within the same second) redoes 6..10 with other values.
    sink = TensorBoardSink(tmp_path, num_seeds=2, resume_step=5)
    for step in range(6, 11):
        sink.write(
            [
                {"iteration": step - 1, "seed": s, "env_steps": step, "policy_loss": -1.0 * step}
                for s in range(2)
            ]
        )
    sink.close()
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2 and files[-1].endswith(f".{os.getpid()}")  # read after the old one
    for seed in range(2):
        got = read(tmp_path / "tensorboard" / f"seed_{seed}")["Losses/Policy Loss"]
        assert got == [(s, float(s)) for s in range(1, 6)] + [(s, -float(s)) for s in range(6, 11)]


def test_a_second_resume_purges_again(tmp_path: Path) -> None:
    def write(sink: TensorBoardSink, steps: range, value: float) -> TensorBoardSink:
        sink.write([{"seed": 0, "env_steps": s, "policy_loss": value} for s in steps])
        return sink

    killed = [
        write(TensorBoardSink(tmp_path, 1), range(1, 11), 1.0),  # killed at 10, checkpoint 5
        write(TensorBoardSink(tmp_path, 1, resume_step=5), range(6, 9), 2.0),  # killed at 8: 7
    ]
    write(TensorBoardSink(tmp_path, 1, resume_step=7), range(8, 11), 3.0).close()
    got = read(tmp_path / "tensorboard" / "seed_0")["Losses/Policy Loss"]
    assert got == [(s, 1.0) for s in range(1, 6)] + [(6, 2.0), (7, 2.0)] + [
        (8, 3.0),
        (9, 3.0),
        (10, 3.0),
    ]
    for sink in killed:
        sink.close()


def test_a_new_event_file_is_named_after_the_existing_ones(tmp_path: Path) -> None:
    """The readers take a folder's files in name order; a clock behind, another host or a
    smaller pid must not put the resumed run's file first."""
    folder = tmp_path / "tensorboard" / "seed_0"
    folder.mkdir(parents=True)
    later = int(time.time()) + 100
    (folder / f"events.out.tfevents.{later}.zzz-other-host.99999").write_bytes(b"")
    sink = TensorBoardSink(tmp_path, 1, resume_step=0)
    sink.close()
    names = sorted(p.name for p in folder.iterdir())
    assert names[-1].startswith(f"events.out.tfevents.{later + 1}.")


def test_without_the_purge_marker_the_reader_shows_steps_twice(tmp_path: Path) -> None:
    """What resume_step is for: the readers keep both copies of steps 6..10 otherwise (and a
    sink opened without it on a folder with files hides nothing)."""
    for resume_step, sign in [(None, 1.0), (None, -1.0)]:
        sink = TensorBoardSink(tmp_path, num_seeds=1, resume_step=resume_step)
        first = 1 if sign > 0 else 6
        sink.write(
            [
                {"iteration": s - 1, "seed": 0, "env_steps": s, "policy_loss": sign * s}
                for s in range(first, 11)
            ]
        )
        sink.close()
    steps = [s for s, _ in read(tmp_path / "tensorboard" / "seed_0")["Losses/Policy Loss"]]
    assert steps == list(range(1, 11)) + list(range(6, 11))


# Weights & Biases

# wandb 0.25.0 warns about itself (its sentry tags read a deprecated setting); 0.31.0 does not.
WANDB_DEPRECATION = pytest.mark.filterwarnings("ignore:Read the `app_url`:DeprecationWarning")


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline W&B with every file of its under tmp_path, no user settings or credentials."""
    wandb = pytest.importorskip("wandb")
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("WANDB_") or name == "NETRC":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / "data"))
    wandb.teardown()  # settings are read once per wandb session
    yield tmp_path
    wandb.teardown()


def run_records(run_file: Path) -> list[bytes]:
    """The records of a .wandb file: wandb's leveldb-log format (a 7-byte header ":W&B", magic
    0xBEE1, version 0; 32 KiB blocks of records `crc32 (seeded with the type byte) | length |
    type | data`, FULL or FIRST/MIDDLE.../LAST, a block's tail under 7 bytes zero-padded).
    Read here: wandb's Python reader (wandb.sdk.internal.datastore) is gone from 0.26 on, where
    wandb-core (Go) reads the file."""
    data = run_file.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    records, parts, at = [], [], 7
    while at < len(data):
        if 32768 - at % 32768 < 7:  # the block's tail: padding
            assert data[at : at + 32768 - at % 32768].strip(b"\0") == b""
            at += 32768 - at % 32768
            continue
        checksum, length, kind = struct.unpack("<IHB", data[at : at + 7])
        payload = data[at + 7 : at + 7 + length]
        assert len(payload) == length, "a truncated record"
        assert checksum == zlib.crc32(payload, zlib.crc32(bytes([kind]))), "a bad checksum"
        at += 7 + length
        parts.append(payload)
        assert (kind in (1, 2)) == (len(parts) == 1), f"record type {kind} out of order"
        if kind in (1, 4):  # FULL, LAST
            records.append(b"".join(parts))
            parts = []
    assert not parts, "a record left unfinished"
    return records


def history(run_file: Path) -> list[dict]:
    """The history rows of an offline run's .wandb file, as wandb sync would upload them."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for data in run_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            item = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json)
                for i in record.history.item
            }
            rows.append(item)
    return rows


@WANDB_DEPRECATION
def test_wandb_offline_logs_seed_means_under_the_tensorboard_tags(
    wandb_env: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run_folder = wandb_env / "run"
    run_folder.mkdir()
    sink = open_wandb(run_folder, "ppo-cartpole", {"algo": "ppo", "seeds": 2}, resume=False)
    assert sink is not None
    rows = [ppo_row(i, s) for i in range(3) for s in range(2)]
    rows[0]["episode_return"] = None
    rows[3]["grad_norm"] = math.nan
    sink.write(rows[:2])
    sink.write(rows[2:])
    sink.close()
    sink.close()

    run_id = (run_folder / "wandb" / wandb_sink.ID_FILE).read_text().strip()
    run_files = list((run_folder / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(run_files) == 1
    logged = history(run_files[0])
    assert [row["_step"] for row in logged] == [512, 1024, 1536]
    first, second = logged[0], logged[1]
    assert first["Environment/Cumulative Reward"] == pytest.approx(20.1)  # seed 1 only
    assert first["Seeds/Cumulative Reward max"] == pytest.approx(20.1)  # over seeds with one
    assert first["Losses/Value Loss"] == pytest.approx(29.7)
    assert second["Seeds/Cumulative Reward min"] == pytest.approx(21.0)
    assert second["Seeds/Cumulative Reward max"] == pytest.approx(21.1)
    assert second["rlkit/grad_norm"] == pytest.approx(6.7)  # seed 1's nan left out
    assert second["Seeds/Non-finite"] == 1 and first["Seeds/Non-finite"] == 0
    assert not any(key.startswith("seed_") for row in logged for key in row)
    out, err = capfd.readouterr()
    assert out == "" and err == ""

    # A resumed run continues the same W&B run id, and offline that is no warning either.
    sink = open_wandb(run_folder, "ppo-cartpole", {"algo": "ppo"}, resume=True)
    assert sink is not None and sink.run.id == run_id
    sink.write([ppo_row(3, s) for s in range(2)])
    sink.close()
    assert capfd.readouterr() == ("", "")
    # (a second offline run of an id in the same second gets a folder ...-<id>-1)
    assert len(list((run_folder / "wandb").glob(f"offline-run-*-{run_id}*/run-*.wandb"))) == 2


@WANDB_DEPRECATION
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP/SIGCONT")
def test_wandb_close_returns_once_the_run_file_is_complete(
    wandb_env: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """wandb-core writes the run file when it ends the run's stream, on the finish message
    that `run.finish()` sends last without waiting (wandb_sink's docstring). Here the service
    is stopped before that message and resumed a second later: close() must wait for it (on
    a loaded machine the service is as late by itself)."""
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib.service import service_connection

    inform_finish = service_connection.ServiceConnection.inform_finish
    resumed = []

    def stop_then_inform_finish(self: object, run_id: str) -> None:
        process = self._proc._process  # wandb 0.25.0, 0.31.0 (as wandb_sink._end_service)
        os.kill(process.pid, signal.SIGSTOP)
        timer = threading.Timer(1.0, os.kill, (process.pid, signal.SIGCONT))
        timer.start()
        resumed.append(timer)
        inform_finish(self, run_id)

    run_folder = wandb_env / "run"
    sink = open_wandb(run_folder, "ppo-cartpole", {"algo": "ppo"}, resume=False)
    assert sink is not None
    service = wandb_setup._singleton._connection._proc._process
    monkeypatch.setattr(
        service_connection.ServiceConnection, "inform_finish", stop_then_inform_finish
    )
    sink.write([ppo_row(i, 0) for i in range(3)])
    sink.close()
    assert len(resumed) == 1
    (run_file,) = (run_folder / "wandb").glob("offline-run-*/run-*.wandb")
    assert [row["_step"] for row in history(run_file)] == [512, 1024, 1536]
    assert service.poll() == 0  # the service has ended, and cleanly
    resumed[0].join()
    assert capfd.readouterr() == ("", "")


def test_wandb_missing_is_one_line_and_no_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    assert open_wandb(tmp_path, "run", {}, resume=False) is None
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "wandb is not installed" in err
    assert 'pip install "rlkit[wandb]"' in err and "training goes on" in err


def test_wandb_init_failure_is_one_line_and_no_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("wandb")
    fake.Settings = dict
    fake.setup = lambda settings: None

    def init(**kwargs: object) -> None:
        raise TimeoutError("Run initialization has timed out after 30.0 sec.\nPlease retry")

    fake.init = init
    monkeypatch.setitem(sys.modules, "wandb", fake)
    assert open_wandb(tmp_path, "run", {}, resume=False) is None
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "wandb.init failed (TimeoutError: Run initialization has timed out" in err


@WANDB_DEPRECATION
def test_wandb_online_without_an_api_key_is_one_line_and_no_sink(
    wandb_env: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_SILENT")  # rlkit's own settings keep wandb quiet
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing leaves the machine
    assert open_wandb(wandb_env, "run", {}, resume=False) is None
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("rlkit: --wandb: wandb.init failed (") and "API key" in err


@WANDB_DEPRECATION
@pytest.mark.timeout(60)
def test_wandb_unreachable_server_times_out_in_one_line(
    wandb_env: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """With an API key and no server: init times out, and the process can still exit (wandb's
    teardown, here the fixture's, as at exit, waits for its service otherwise: minutes)."""
    monkeypatch.setattr(wandb_sink, "_TIMEOUT_S", 1.0)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_SILENT")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # not a key: the server is never reached
    start = time.monotonic()
    assert open_wandb(wandb_env, "run", {}, resume=False) is None
    assert time.monotonic() - start < 20
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1, err
    # wandb 0.31: "CommError: Timed out while retrying: Post ..." (0.25: "CommError: Run
    # initialization has timed out ...").
    assert "wandb.init failed (CommError: " in err and "timed out" in err.lower()
