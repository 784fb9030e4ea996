"""Where rlkit keeps compiled programs, and the stderr filter for XLA's false alarms on loading
them. (That a rerun really loads them is tested in fresh processes in tests/test_cli.py.)"""

from __future__ import annotations

import os
import re

import pytest

from rlkit.compile_cache import cache_dir, drop_false_alarms, host_cpu_key, quiet_cache_loads

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
