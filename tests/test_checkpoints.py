"""Checkpoints: a TrainState comes back bit for bit, placed like the target; damaged, half-written
and foreign checkpoints are told apart (skipped with a warning, never listed, refused)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import logging as absl_logging

import envs
from agents import dqn
from rlkit.core.config import config_from_dict
from rlkit.training.checkpoints import CheckpointError, Checkpoints, checkpoint_bytes
from rlkit.training.runner import Runner

META = {"algo": "dqn", "env": "CartPole-v1", "config": {"hidden": [16]}}
# A tiny prioritised DQN: replay storage, sum/min trees, Adam state, obs stats, keys, counters.
DQN = {
    "total_steps": 600,
    "learning_starts": 64,
    "buffer_size": 256,
    "batch_size": 16,
    "prioritised": True,
    "normalize_obs": True,
    "hidden": [16],
}
CHUNKS = 4  # chunks of 4 iterations (40 env steps) trained before stopping


def host(tree):
    """A numpy copy of every leaf (taken before the state is saved or donated)."""
    return [np.array(x, copy=True) for x in jax.tree.leaves(tree)]


def assert_same(restored, expected: list[np.ndarray]) -> None:
    leaves = jax.tree.leaves(restored)
    assert len(leaves) == len(expected)
    for got, want in zip(leaves, expected, strict=True):
        assert isinstance(got, jax.Array)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got), want)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    """A real DQN run on 2 seeds that saves from `on_chunk`, the way `rlkit train` does: the
    runner donates the state to the next chunk right after each save."""
    env, params = envs.make("CartPole-v1")
    algo = dqn.make(config_from_dict(dqn.Config, DQN), env, params)
    directory = tmp_path_factory.mktemp("run") / "checkpoints"
    checkpoints = Checkpoints(directory, keep=3)
    copies: dict[int, list[np.ndarray]] = {}

    def save(iteration: int, state) -> None:
        copies[iteration] = host(state)
        checkpoints.save(iteration, state, META)

    result = Runner(algo).train(
        num_seeds=2,
        chunk_target=4,
        on_chunk=save,
        should_stop=lambda: len(copies) >= CHUNKS,
        guard=False,
    )
    checkpoints.close()
    return SimpleNamespace(state=result.state, directory=directory, copies=copies)


def synthetic(seeds: int = 2, scale: float = 1.0, size: int = 1000) -> dict:
    rng = np.random.default_rng(int(scale))
    return {
        "params": {"w": jnp.asarray(rng.standard_normal((seeds, size), dtype=np.float32) * scale)},
        "key": jax.random.split(jax.random.PRNGKey(int(scale)), seeds),
        "step": jnp.full((seeds,), int(scale), jnp.int32),
        "done": jnp.asarray(rng.random((seeds, 3)) < 0.5),
        "empty": jnp.zeros((seeds, 0), jnp.float32),
        "nothing": {},
    }


def test_a_run_saved_between_donated_chunks_restores_bit_identical(run) -> None:
    saved = sorted(run.copies)
    assert len(saved) == CHUNKS
    checkpoints = Checkpoints(run.directory, keep=3)
    assert checkpoints.steps() == saved[-3:]  # the newest 3 kept
    assert sorted(p.name for p in run.directory.iterdir()) == sorted(map(str, saved[-3:]))

    iteration, state, warnings = checkpoints.restore_latest(run.state, {"algo": "dqn"})
    assert (iteration, warnings) == (saved[-1], [])
    assert jax.tree.structure(state) == jax.tree.structure(run.state)
    assert_same(state, run.copies[saved[-1]])
    assert int(state.learner.grad_steps[0]) > 0  # past learning_starts: Adam moments, priorities
    assert checkpoints.metadata(saved[-3]) == META

    # Into abstract targets too, and an older checkpoint of the same run is intact.
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), run.state
    )
    _, state, _ = checkpoints.restore_latest(abstract, META)
    assert_same(state, run.copies[saved[-1]])
    assert state.key.sharding == run.state.key.sharding


def test_save_reads_the_state_before_it_returns_so_it_can_be_donated(tmp_path) -> None:
    # Large enough that the background write is still running when the donated program has
    # overwritten the buffers.
    state = {"buffer": jnp.arange(8_000_000, dtype=jnp.float32).reshape(2, -1), "n": jnp.ones(2)}
    before = host(state)
    overwrite = jax.jit(lambda s: jax.tree.map(lambda x: x * 0 - 1, s), donate_argnums=0)
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(1, state, {})
    after = overwrite(state)  # right away, from the main thread
    assert all(x.is_deleted() for x in jax.tree.leaves(state))  # save holds no device buffer
    _, restored, _ = checkpoints.restore_latest(after, {})
    assert_same(restored, before)
    checkpoints.close()


def test_keeps_exactly_the_newest_n(tmp_path) -> None:
    checkpoints = Checkpoints(tmp_path, keep=2)
    for iteration in (5, 10, 15, 20, 25):
        checkpoints.save(iteration, synthetic(scale=iteration), {})
    checkpoints.wait()
    assert checkpoints.steps() == [20, 25]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20", "25"]
    _, state, _ = checkpoints.restore_latest(synthetic(), {})
    assert_same(state, host(synthetic(scale=25)))
    checkpoints.close()


def _largest_data_file(step_dir: Path) -> Path:
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, damage) -> None:
    checkpoints = Checkpoints(tmp_path, keep=3)
    for iteration in (20, 40, 60):
        checkpoints.save(iteration, synthetic(scale=iteration, size=50_000), {"algo": "ppo"})
    checkpoints.close()
    data = _largest_data_file(tmp_path / "60")
    if damage == "truncate":
        os.truncate(data, data.stat().st_size // 2)
    elif damage == "delete":
        data.unlink()
    else:  # one byte in the middle of random floats: zstd stores them raw, so it decodes
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0x40
        data.write_bytes(bytes(raw))

    like = synthetic(size=50_000)
    iteration, state, warnings = Checkpoints(tmp_path).restore_latest(like, {"algo": "ppo"})
    assert iteration == 40
    assert_same(state, host(synthetic(scale=40, size=50_000)))
    assert len(warnings) == 1
    assert warnings[0].startswith("checkpoint 60 is unreadable (") and warnings[0].endswith(
        "); using 40"
    )
    assert "\n" not in warnings[0]


def test_the_next_save_replaces_the_checkpoints_it_fell_back_past(tmp_path) -> None:
    checkpoints = Checkpoints(tmp_path)
    for iteration in (20, 40):
        checkpoints.save(iteration, synthetic(scale=iteration, size=50_000), {})
    checkpoints.wait()
    os.truncate(_largest_data_file(tmp_path / "40"), 10)
    iteration, _, warnings = checkpoints.restore_latest(synthetic(size=50_000), {})
    assert (iteration, len(warnings)) == (20, 1)
    checkpoints.save(40, synthetic(scale=41, size=50_000), {})  # the resumed run's own 40
    assert checkpoints.steps() == [20, 40]
    assert checkpoints.restore_latest(synthetic(size=50_000), {})[2] == []
    checkpoints.close()


def test_no_readable_checkpoint_is_one_line_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"^no checkpoint in "):
        Checkpoints(tmp_path / "missing").restore_latest(synthetic(), {})
    assert not (tmp_path / "missing").exists()  # reading creates nothing
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(7, synthetic(size=50_000), {})
    checkpoints.close()
    _largest_data_file(tmp_path / "7").unlink()
    with pytest.raises(CheckpointError, match=r"^no readable checkpoint in .* \(7: ") as error:
        checkpoints.restore_latest(synthetic(size=50_000), {})
    assert "\n" not in str(error.value)


def test_another_algorithm_or_environment_is_refused_not_skipped(tmp_path) -> None:
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(20, synthetic(), {"algo": "ppo", "env": "CartPole-v1"})
    checkpoints.save(40, synthetic(), {"algo": "dqn", "env": "CartPole-v1"})
    with pytest.raises(CheckpointError) as error:
        checkpoints.restore_latest(synthetic(), {"algo": "ppo", "env": "CartPole-v1"})
    assert str(error.value) == f"checkpoint 40 in {tmp_path} is for algo dqn, not ppo"
    with pytest.raises(CheckpointError, match="is for env CartPole-v1, not Pendulum-v1"):
        checkpoints.restore_latest(synthetic(), {"algo": "dqn", "env": "Pendulum-v1"})
    with pytest.raises(CheckpointError, match="has no seed_count"):
        checkpoints.restore_latest(synthetic(), {"seed_count": 2})
    checkpoints.close()


def test_a_state_of_another_shape_is_refused_naming_the_leaf(run) -> None:
    checkpoints = Checkpoints(run.directory)
    four_seeds = jax.tree.map(lambda x: jax.ShapeDtypeStruct((4, *x.shape[1:]), x.dtype), run.state)
    with pytest.raises(CheckpointError) as error:
        checkpoints.restore_latest(four_seeds, {"algo": "dqn"})
    message = str(error.value)
    first = jax.tree_util.keystr(jax.tree_util.tree_flatten_with_path(run.state)[0][0][0])
    assert f"does not fit this state: {first} is " in message
    assert "(2 seeds in the checkpoint, 4 here)" in message

    # A wider network: the first leaf that differs is named with both shapes.
    env, params = envs.make("CartPole-v1")
    wider = dqn.make(config_from_dict(dqn.Config, {**DQN, "hidden": [32]}), env, params)
    like = jax.eval_shape(
        jax.vmap(wider.init, in_axes=(0, None)),
        jax.random.split(jax.random.PRNGKey(0), 2),
        wider.hparams,
    )
    with pytest.raises(CheckpointError) as error:
        checkpoints.restore_latest(like, {"algo": "dqn"})
    differing = next(
        (jax.tree_util.keystr(path), a.shape, b.shape)
        for (path, a), b in zip(
            jax.tree_util.tree_flatten_with_path(run.state)[0], jax.tree.leaves(like), strict=True
        )
        if a.shape != b.shape
    )
    path, saved, wanted = differing
    dims = lambda shape: ",".join(map(str, shape))  # noqa: E731
    assert (
        f"{path} is float32[{dims(saved)}] in the checkpoint, float32[{dims(wanted)}] here"
        in str(error.value)
    )


def test_orbax_info_lines_are_kept_out_of_the_logs(tmp_path, caplog) -> None:
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        with caplog.at_level(logging.INFO):
            checkpoints = Checkpoints(tmp_path)
            checkpoints.save(1, synthetic(), {})
            checkpoints.restore_latest(synthetic(), {})
            checkpoints.close()
    finally:
        absl_logging.set_verbosity(verbosity)
    chatter = [r for r in caplog.records if "orbax" in r.pathname and r.levelno < logging.WARNING]
    assert chatter == []


def test_metadata_bytes_and_what_cannot_be_saved(tmp_path) -> None:
    checkpoints = Checkpoints(tmp_path)
    state = synthetic(size=50_000)
    checkpoints.save(3, state, {"algo": "ppo", "config": {"hidden": (64, 64)}})
    assert checkpoints.metadata(3) == {"algo": "ppo", "config": {"hidden": [64, 64]}}
    assert checkpoints.restore_latest(state, {"config": {"hidden": (64, 64)}})[0] == 3
    size = checkpoint_bytes(tmp_path, 3)
    assert 2 * 50_000 * 4 * 0.9 < size < 2 * 50_000 * 4 * 1.5  # random floats barely compress
    with pytest.raises(CheckpointError, match="no checkpoint 4 in"):
        checkpoints.metadata(4)
    with pytest.raises(TypeError, match="not JSON-able"):
        checkpoints.save(4, state, {"seed": np.int64(1)})
    with pytest.raises(CheckpointError, match=r"\['key'\] is a typed PRNG key"):
        checkpoints.save(4, {"key": jax.random.key(0)}, {})
    assert checkpoints.steps() == [3]
    checkpoints.close()


# Runs in a fresh interpreter: the device count is fixed when JAX's backend starts.
TWO_DEVICES = textwrap.dedent(
    """
    import json, os, sys
    from rlkit.training.devices import use_cpu_cores
    assert use_cpu_cores(2)
    import jax, numpy as np
    from jax.sharding import SingleDeviceSharding
    from rlkit.training.checkpoints import Checkpoints
    from rlkit.training.devices import seed_sharding

    sharding = seed_sharding(4)
    rng = np.random.default_rng(0)
    state = {
        "w": jax.device_put(rng.standard_normal((4, 3, 5), dtype=np.float32), sharding),
        "key": jax.device_put(rng.integers(0, 2**32, (4, 2), dtype=np.uint32), sharding),
        "n": jax.device_put(np.arange(4, dtype=np.int32), sharding),
    }
    copy = {k: np.array(v) for k, v in state.items()}
    checkpoints = Checkpoints(sys.argv[1])
    checkpoints.save(5, state, {"algo": "x"})
    abstract = lambda place: {
        k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=place(v)) for k, v in state.items()
    }
    _, split, _ = checkpoints.restore_latest(abstract(lambda v: v.sharding), {"algo": "x"})
    one = SingleDeviceSharding(jax.devices()[1])
    _, single, _ = checkpoints.restore_latest(abstract(lambda v: one), {"algo": "x"})
    report = {
        "same_sharding": all(split[k].sharding == state[k].sharding for k in state),
        "devices": [len(split[k].sharding.device_set) for k in state],
        "equal": all(np.array_equal(np.asarray(split[k]), copy[k]) for k in state),
        "single": all(single[k].sharding == one for k in state),
        "single_equal": all(np.array_equal(np.asarray(single[k]), copy[k]) for k in state),
    }
    # Killed in the middle of a save: the process ends while the write is under way.
    big = jax.device_put(rng.standard_normal((4, 10_000_000), dtype=np.float32), sharding)
    checkpoints.save(9, {"w": big}, {"algo": "x"})
    print(json.dumps(report), flush=True)
    os._exit(0)
    """
)


class TwoDeviceRun:
    """The TWO_DEVICES script in its own interpreter, started as the module's tests begin so
    that it runs while this process compiles the DQN run (one core each)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.process = subprocess.Popen(
            [sys.executable, "-c", TWO_DEVICES, str(directory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._report: dict | None = None

    @property
    def report(self) -> dict:
        if self._report is None:
            stdout, stderr = self.process.communicate(timeout=300)
            assert self.process.returncode == 0, stderr[-3000:]
            self._report = json.loads(stdout.strip().splitlines()[-1])
        return self._report


@pytest.fixture(scope="module", autouse=True)
def two_devices(tmp_path_factory) -> Iterator[TwoDeviceRun]:
    started = TwoDeviceRun(tmp_path_factory.mktemp("sharded") / "checkpoints")
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.communicate()


def test_a_state_sharded_over_two_devices_comes_back_sharded_the_same(two_devices) -> None:
    report = two_devices.report
    assert report["devices"] == [2, 2, 2]
    assert report["same_sharding"] and report["equal"]
    assert report["single"] and report["single_equal"]  # saved on 2 devices, resumed on 1


def test_a_save_cut_short_is_never_listed_and_the_next_writer_clears_it(two_devices) -> None:
    assert two_devices.report  # the script has ended (killed itself mid-save)
    directory = two_devices.dir
    leftovers = [p.name for p in directory.iterdir() if ".orbax-checkpoint-tmp" in p.name]
    assert len(leftovers) == 1 and leftovers[0].startswith("9.")
    reader = Checkpoints(directory)
    assert reader.steps() == [5]
    like = {"w": jnp.zeros((4, 3, 5)), "key": jnp.zeros((4, 2), jnp.uint32), "n": jnp.zeros(4, int)}
    iteration, _, warnings = reader.restore_latest(like, {"algo": "x"})
    assert (iteration, warnings) == (5, [])
    assert (directory / leftovers[0]).exists()  # a reader leaves it: it may be a live save
    reader.save(6, like, {"algo": "x"})
    reader.close()
    assert sorted(p.name for p in directory.iterdir()) == ["5", "6"]


_FAILING_WRITE = textwrap.dedent(
    """
    import resource, signal, sys
    import numpy as np
    from rlkit.training.checkpoints import CheckpointError, Checkpoints
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
    state = {"a": np.random.default_rng(0).random((4, 20000))}
    ckpt = Checkpoints(sys.argv[1])
    try:
        ckpt.save(1, state, {})
        ckpt.save(2, state, {})  # the first write's failure surfaces here
        ckpt.close()
    except CheckpointError as e:
        print("CheckpointError:", e, file=sys.stderr)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_failed_background_write_surfaces_only_as_checkpoint_error(tmp_path) -> None:
    # A file-size limit makes tensorstore's writes fail in orbax's background threads the way a
    # full disk does (EFBIG instead of ENOSPC), with the same ERROR records and "Event loop is
    # closed" tracebacks; none of them may reach stderr, only the one CheckpointError.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        [sys.executable, "-c", _FAILING_WRITE, str(tmp_path / "ckpt")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("CheckpointError: writing checkpoint 1 in "), out.stderr
    assert "Traceback" not in out.stderr and "ERROR:absl" not in out.stderr


def test_a_full_disk_is_reported_as_disk_full(tmp_path) -> None:
    from rlkit.training import checkpoints

    tensorstore = ValueError(
        'RESOURCE_EXHAUSTED: Error writing "leaf00000/0.0" in OCDBT database at local file '
        '"/x/": Failed to write 10650 bytes to file 12: No space left on device '
        "[os_error_code='28']"
    )
    assert checkpoints._reason(tensorstore) == "disk full"
    assert checkpoints._reason(OSError(28, "No space left on device")) == "disk full"
    assert checkpoints._reason(OSError(27, "File too large")) == "[Errno 27] File too large"


def test_orbax_errors_stay_visible_when_no_write_is_failing(tmp_path) -> None:
    from rlkit.training import checkpoints

    def record(msg: str) -> logging.LogRecord:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
        path = os.path.join("site-packages", "orbax", "checkpoint", "_src", "futures", "f.py")
        return logging.LogRecord("absl", logging.ERROR, path, 1, msg, (), info)

    reraised = record("[process=%d] _SignalingThread.run() raised an exception: %s")
    other = record("something else went wrong in orbax")
    quiet = checkpoints._QuietOrbax()
    assert not checkpoints._writing()
    assert quiet.filter(reraised) and quiet.filter(other)
    checkpoints._write_started()
    try:
        assert not quiet.filter(reraised)
        assert quiet.filter(other)
    finally:
        checkpoints._write_ended(failed=False)
    assert quiet.filter(reraised)
