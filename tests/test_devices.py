"""Seeds split over devices: the same numbers as on one device, spread over the CPU cores."""

import json
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from jax._src import xla_bridge

import envs
from agents import ppo
from rlkit.core.config import config_from_dict
from rlkit.training.devices import seed_sharding, use_cpu_cores
from rlkit.training.runner import train

SETTINGS = {**ppo.PRESETS["rejax/CartPole"], "total_steps": 5_000}

# Runs in a fresh interpreter: the device count is fixed when JAX's backend starts.
TWO_DEVICE_RUN = textwrap.dedent(
    """
    import json, sys
    from rlkit.training.devices import use_cpu_cores
    assert use_cpu_cores(2)
    from rlkit.training.devices import seed_sharding
    assert seed_sharding(1) is None and seed_sharding(3) is None  # 3 seeds do not split in 2
    import envs
    from agents import ppo
    from rlkit.core.config import config_from_dict
    from rlkit.training.runner import train
    env, params = envs.make("CartPole-v1")
    algo = ppo.make(config_from_dict(ppo.Config, json.loads(sys.argv[1])), env, params)
    result = train(algo, num_seeds=4, eval_episodes=4)
    print(json.dumps({
        "devices": result.timing["devices"],
        "shards": len(result.state.key.sharding.device_set),
        "metrics": {k: v.tolist() for k, v in result.metrics.items()},
        "returns": result.evaluation["returns"].tolist(),
    }))
    """
)


def test_one_device_means_no_sharding_and_a_started_backend_is_left_alone():
    assert len(jax.local_devices()) == 1  # pytest's own process: JAX already started
    assert seed_sharding(8) is None
    assert use_cpu_cores(2) is False


@pytest.mark.parametrize("missing", ["function", "module"])
def test_a_jax_without_the_private_backend_check_is_left_alone(monkeypatch, missing):
    # As a jax would be where `use_cpu_cores` cannot tell whether the backend has started:
    # it must change nothing rather than raise (or set an option JAX may refuse).
    if missing == "function":
        monkeypatch.delattr(xla_bridge, "backends_are_initialized")
    else:
        monkeypatch.setitem(sys.modules, "jax._src.xla_bridge", None)  # import fails
    before = jax.config.jax_num_cpu_devices
    assert use_cpu_cores(2) is False
    assert jax.config.jax_num_cpu_devices == before


def test_seeds_split_over_two_cpu_devices_give_the_one_device_numbers():
    env, params = envs.make("CartPole-v1")
    algo = ppo.make(config_from_dict(ppo.Config, SETTINGS), env, params)
    single = train(algo, num_seeds=4, eval_episodes=4)
    assert single.timing["devices"] == 1

    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in SETTINGS.items()}
    out = subprocess.run(
        [sys.executable, "-c", TWO_DEVICE_RUN, json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    split = json.loads(out.stdout.strip().splitlines()[-1])
    assert split["devices"] == 2 and split["shards"] == 2
    for name, values in single.metrics.items():
        np.testing.assert_allclose(
            np.asarray(split["metrics"][name], dtype=np.float64),
            np.asarray(values, dtype=np.float64),
            rtol=1e-5,
            atol=1e-6,
            err_msg=name,
        )
    np.testing.assert_array_equal(split["returns"], single.evaluation["returns"])
