"""Where rlkit keeps compiled programs, and the stderr filter for XLA's false alarms on loading
them: what it drops, that it holds back only the deserialisation of a cache hit, that threads
share it safely, and that it is off for other JAX releases and absent private functions.
(That a rerun really loads programs, quietly, is tested in fresh processes in
tests/test_cli.py.)"""

from __future__ import annotations

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jaxlib
import pytest

from rlkit.training import compile_cache
from rlkit.training.compile_cache import (
    cache_dir,
    drop_false_alarms,
    host_cpu_key,
    quiet_cache_loads,
)

ZEN4 = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
    "flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw\nbogomips\t: 4792.81\n\n"
    "processor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
    "flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw\nbogomips\t: 4801.02\n"
)


def test_cpu_key_names_the_model_and_its_instruction_sets() -> None:
    key = host_cpu_key(ZEN4)
    assert re.fullmatch(r"[\w-]+-[0-9a-f]{12}", key)
    assert host_cpu_key(ZEN4.replace("4792.81", "4000.00")) == key  # clock speed: same CPU
    assert host_cpu_key(ZEN4.replace(" avx512f", "")) != key  # fewer instructions
    assert host_cpu_key(ZEN4.replace("9654 96-Core", "9554 64-Core")) != key  # other model


@pytest.mark.parametrize(
    ("value", "expected"),
    [("off", None), ("OFF", None), ("", None), ("/tmp/x", "/tmp/x"), ("~/c", "HOME/c")],
)
def test_cache_folder_follows_rlkit_cache_dir(monkeypatch, value, expected) -> None:
    monkeypatch.setenv("RLKIT_CACHE_DIR", value)
    monkeypatch.setenv("HOME", "/home/someone")
    folder = cache_dir()
    if expected is None:
        assert folder is None
    else:
        assert str(folder) == expected.replace("HOME", "/home/someone") + "/" + host_cpu_key()


def test_cache_folder_defaults_to_the_user_cache(monkeypatch) -> None:
    monkeypatch.delenv("RLKIT_CACHE_DIR")
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert str(cache_dir()) == f"/home/someone/.cache/rlkit/xla/{host_cpu_key()}"
    monkeypatch.setenv("XDG_CACHE_HOME", "/var/cache/me")
    assert str(cache_dir()) == f"/var/cache/me/rlkit/xla/{host_cpu_key()}"


# The lines XLA 0.9.2 writes for each cached program it loads on an AMD Zen 4 host (shortened).
ALARMS = (
    b"W1124 02:40:22.213977   29077 pjrt_executable.cc:642] Assume version compatibility. "
    b"PjRt-IFRT does not track XLA executable versions.\n"
    b"E1124 02:40:22.245008   29256 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target "
    b"machine feature +prefer-no-gather is not  supported on the host machine. Compile machine "
    b"features: [+avx2,+prefer-no-gather] vs host machine features: [avx2]. This could lead to "
    b"execution errors such as SIGILL.\n"
    b"E1124 02:40:22.245069   29256 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target "
    b"machine feature +prefer-no-scatter is not  supported on the host machine.\n"
)
# A real mismatch (a program compiled for AVX-512 on a host without it) must stay visible.
REAL = (
    b"E1124 02:40:22.245069   29256 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target "
    b"machine feature +avx512f is not  supported on the host machine.\n"
)


def test_only_the_false_alarms_are_dropped() -> None:
    other = b"rlkit: training ppo\n"
    assert drop_false_alarms(other + ALARMS + REAL + b"no newline at the end") == (
        other + REAL + b"no newline at the end"
    )


def test_quiet_cache_loads_filters_what_reaches_file_descriptor_2(capfd) -> None:
    with quiet_cache_loads():
        os.write(2, ALARMS + b"kept 1\n")
        os.write(2, REAL)
    assert capfd.readouterr().err.encode() == b"kept 1\n" + REAL
    os.write(2, ALARMS)  # outside the block nothing is held or dropped
    assert capfd.readouterr().err.encode() == ALARMS


def test_quiet_cache_loads_restores_stderr_when_the_block_fails(capfd) -> None:
    with pytest.raises(RuntimeError, match="compile failed"), quiet_cache_loads():
        os.write(2, b"before the failure\n" + ALARMS)
        raise RuntimeError("compile failed")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before the failure\nafter\n"


def test_nested_blocks_in_one_thread_write_the_held_text_once_at_the_outer_end(capfd) -> None:
    with quiet_cache_loads():
        os.write(2, b"outer\n")
        with quiet_cache_loads():
            os.write(2, ALARMS + b"inner\n")
        os.write(2, b"outer again\n" + ALARMS)
        assert capfd.readouterr().err == ""  # still held: the outer block is open
    assert capfd.readouterr().err == "outer\ninner\nouter again\n"


def _fd2() -> tuple[int, int]:
    """What file descriptor 2 points at (device, inode)."""
    stat = os.fstat(2)
    return stat.st_dev, stat.st_ino


def test_overlapping_blocks_in_two_threads_lose_no_line_and_restore_stderr(capfd) -> None:
    # A enters, B enters, A leaves, B leaves: the order in which a block that saved and
    # restored fd 2 on its own would hand B the temporary file A had redirected fd 2 to.
    real = _fd2()
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with quiet_cache_loads():
            os.write(2, ALARMS + b"a\n")
            a_inside.set()
            assert b_inside.wait(10)
        a_left.set()

    def b() -> None:
        assert a_inside.wait(10)
        with quiet_cache_loads():
            os.write(2, b"b\n" + ALARMS)
            b_inside.set()
            assert a_left.wait(10)
            os.write(2, b"b after a left\n")

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(a), pool.submit(b)]:
            done.result()  # re-raises a thread's failure here
    assert _fd2() == real
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "a\nb\nb after a left\nafter\n"


@pytest.fixture
def jax_cache(monkeypatch):
    """JAX's private cache module, which the filter wraps, seen as the release the filter was
    written for (so that these tests check the mechanism whatever jax is installed)."""
    for module in (jax, jaxlib):
        monkeypatch.setattr(module, "__version__", compile_cache._QUIET_LOADS_FOR)
    return pytest.importorskip("jax._src.compilation_cache")


class _Backend:
    """Stands in for an XLA client: deserialising logs what XLA 0.9.2 logs on a Zen 4 host."""

    runtime_type = "fake"

    def __init__(self) -> None:
        self.fd2_while_deserialising: tuple[int, int] | None = None

    def deserialize_executable(self, serialized: bytes, devices: object, options: object) -> str:
        self.fd2_while_deserialising = _fd2()
        os.write(2, ALARMS + b"deserialised\n")
        return "executable"


def _reader(fd2_seen: list) -> object:
    """A stand-in for jax's `get_executable_and_time`, with its shape: look up (and log), then,
    on a hit only, deserialise through the backend."""

    def read(cache_key, compile_options, backend, executable_devices):
        fd2_seen.append(_fd2())
        os.write(2, b"looked up " + cache_key.encode() + b"\n")
        if cache_key == "miss":
            return None, None
        return backend.deserialize_executable(b"", executable_devices, compile_options), 1.5

    return read


def test_only_the_deserialisation_of_a_cache_hit_is_held_back(
    monkeypatch, capfd, jax_cache
) -> None:
    fd2_seen: list = []
    monkeypatch.setattr(jax_cache, "get_executable_and_time", _reader(fd2_seen))
    compile_cache._install_quiet_loads()
    read = jax_cache.get_executable_and_time
    real, backend = _fd2(), _Backend()

    assert read("miss", None, backend, None) == (None, None)
    assert read("hit", None, backend, None) == ("executable", 1.5)
    assert fd2_seen == [real, real]  # the lookups wrote to the real stderr
    assert backend.fd2_while_deserialising not in (None, real)  # the load was held back
    assert _fd2() == real
    assert capfd.readouterr().err == "looked up miss\nlooked up hit\ndeserialised\n"


@pytest.mark.parametrize("module", [jax, jaxlib], ids=["jax", "jaxlib"])
def test_other_jax_releases_get_no_filter(monkeypatch, capfd, jax_cache, module) -> None:
    reader = _reader([])
    monkeypatch.setattr(jax_cache, "get_executable_and_time", reader)
    monkeypatch.setattr(module, "__version__", "0.9.3")
    compile_cache._install_quiet_loads()
    assert jax_cache.get_executable_and_time is reader
    jax_cache.get_executable_and_time("hit", None, _Backend(), None)
    assert capfd.readouterr().err.encode() == b"looked up hit\n" + ALARMS + b"deserialised\n"


def test_a_jax_without_the_private_reader_is_left_as_it_is(monkeypatch, jax_cache) -> None:
    monkeypatch.delattr(jax_cache, "get_executable_and_time")
    compile_cache._install_quiet_loads()
    assert not hasattr(jax_cache, "get_executable_and_time")


def test_the_filter_is_written_for_the_jax_release_the_project_pins() -> None:
    # The filter switches itself off on any other release; moving the pin must be a decision to
    # re-check XLA's false alarms (and this constant), not a silent loss of the filter.
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    pins = dict(re.findall(r'"(jax|jaxlib)==([\d.]+)"', pyproject))
    assert pins == {"jax": compile_cache._QUIET_LOADS_FOR, "jaxlib": compile_cache._QUIET_LOADS_FOR}
