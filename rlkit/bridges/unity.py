"""Unity ML-Agents as a host environment: one behaviour of one or several Unity processes (or the
Editor) as one batched environment of rlkit's contract (rlkit.bridges.host).

Built on mlagents_envs 0.28.0's UnityEnvironment (this process is the gRPC server, Unity the
client; shared/reference/ML-AGENTS.md section 5). mlagents_envs is imported lazily, after
rlkit.bridges.unity_messages.install(), so `import rlkit` never needs it.

Slots. Every agent of the behaviour in every worker is a slot: worker 0's agents in the order of
its first DecisionSteps, then worker 1's, ... The slot count N comes from Unity (the agents
that request a decision after the first reset). Unity's agent ids are episode ids: an agent whose
episode ends gets a new id, and the first new id that appears in a worker takes the slot that
waited longest there. Actions go to each worker in its DecisionSteps order, mapped by agent id.

The decision rule. Unity does not wait for an agent: whichever agents ask for a decision at a
Unity step must get an action at that step. One batched step gives every slot one policy action
and lasts until every slot has a fresh decision pending:
  * a slot's action goes to its agent the first time the agent asks in the batched step (at the
    first exchange for the agents that asked at the end of the previous one); an agent that asks
    again before the batched step ends gets the same action again (as Unity's
    TakeActionsBetweenDecisions repeats it), and the successor of an episode that ended inside
    the batched step gets zeros (ML-Agents' empty action);
  * the batched step ends at the first Unity step by which every slot's agent has asked after
    receiving its action, or, for a slot whose episode ended, its successor has asked; the
    observation returned is the one of the slot's latest request;
  * a slot's reward is the sum of what its agent reported over those Unity steps; an episode
    that ends inside the batched step is reported at that step (terminated, or truncated when
    Unity says `interrupted`) with its last observation as final_obs; what the successor earns
    before the batched step ends is added to the successor's first reward; a further episode
    that begins and ends inside the same batched step is not reported;
  * more than `max_unity_steps` Unity steps, or an agent that does not come back: HostFailure.
Agents that decide in step (the same decision period and phase, or every Unity step) are
served exactly: each action is computed from the observation of the step it is applied at, and
one batched step is one decision period. An agent that asks out of step with the others is
served late: its action is applied at its next request, up to one decision period after the
observation it was computed from.
Observations and actions follow rlkit.bridges.unity_specs. Discrete behaviours report masks
(`action_mask_size`); a terminal observation has no mask in ML-Agents, so its final mask is all
allowed.

Failures (Unity does not start, does not answer within the timeout, quits or crashes, speaks
another protocol version, the port is taken) raise HostFailure with one line naming the worker.
`close()` (also registered with atexit) closes every worker and kills a player that does not
quit; it is idempotent.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from flax import struct

from rlkit.bridges.host import HostFailure, HostVectorEnv
from rlkit.bridges.unity_channels import drain_stats
from rlkit.bridges.unity_process import (
    UnitySettings,
    Worker,
    explain,
    mlagents,
    port_is_free,
    resolve_player,
    where,
)
from rlkit.bridges.unity_specs import (
    action_layout,
    action_space,
    decode_actions,
    flatten_observations,
    joint_mask,
    observation_layout,
    observation_space,
)
from rlkit.core.config import ConfigError

__all__ = [
    "UnityHost",
    "UnityParams",
    "UnitySettings",
    "port_is_free",
    "resolve_player",
    "unity_vector_env",
]


@struct.dataclass
class UnityParams:
    """Env params of a Unity environment (its parameters live in Unity).

    max_steps_in_episode: batched steps the final evaluation runs (rlkit.training.evaluation).
    """

    max_steps_in_episode: int = struct.field(pytree_node=False, default=1000)


class UnityHost:
    """The host environment of the module docstring (HostEnvironment of rlkit.bridges.host)."""

    def __init__(self, settings: UnitySettings):
        self.settings = settings
        self.logs_to: Path | None = None  # where close() copies the players' logs
        self._temp_logs = None
        if settings.file_name is not None and settings.log_folder is None:
            self._temp_logs = tempfile.mkdtemp(prefix="rlkit-unity-logs-")
            settings = dataclasses.replace(settings, log_folder=self._temp_logs)
            self.settings = settings
        self._m = mlagents()
        self.workers: list[Worker] = []
        self._closed = False
        self._failed = False  # a worker failed: close() kills before it waits
        atexit.register(self.close)
        count = settings.workers if settings.file_name is not None else 1
        for worker_id in range(count):
            try:
                self.workers.append(Worker(self._m, settings, worker_id))
            except Exception as error:
                self._failed = True
                self.close()
                if type(error).__module__.startswith("mlagents_envs"):
                    line = explain(error, where(settings, worker_id), settings)
                    raise HostFailure(line) from error
                raise
        self._pool = ThreadPoolExecutor(len(self.workers)) if len(self.workers) > 1 else None
        try:
            self._first_reset()
        except BaseException:
            self.close()
            raise

    # -- setup -------------------------------------------------------------------------------

    def _first_reset(self) -> None:
        """Reset every worker, pick the behaviour, read its spec and count the slots."""
        self._each(lambda w: w.env.reset())
        names = sorted(self.workers[0].env.behavior_specs)
        wanted = self.settings.behavior
        if wanted is None:
            if len(names) != 1:
                listed = ", ".join(names) or "none"
                raise ConfigError(
                    f"Unity has several behaviours ({listed}); choose one with --behavior"
                )
            wanted = names[0]
        elif wanted not in names:
            raise ConfigError(
                f"Unity has no behaviour {wanted!r}; it has: {', '.join(names) or 'none'}"
            )
        self.behavior = wanted
        spec = self.workers[0].env.behavior_specs[wanted]
        self.layout = observation_layout(spec.observation_specs)
        self.actions = action_layout(spec.action_spec)
        self.action_mask_size = self.actions.joint_size or None
        self.observation_space = observation_space(self.layout)
        self.action_space = action_space(self.actions)
        for _ in range(self.settings.max_unity_steps):
            if all(len(w.env.get_steps(wanted)[0]) for w in self.workers):
                break
            self._each(lambda w: w.env.step())
        else:
            raise HostFailure(f"Unity: no agent of {wanted} asked for a decision after reset")
        slot = 0
        for w in self.workers:
            count = len(w.env.get_steps(wanted)[0])
            w.slots = list(range(slot, slot + count))
            slot += count
        self.num_envs = slot
        self._obs = np.zeros((slot, self.layout.size), np.float32)
        self._mask = np.ones((slot, self.action_mask_size or 1), bool)
        self._carry = np.zeros(slot, np.float32)
        self._assign_after_reset()

    # -- the host contract ---------------------------------------------------------------------

    def reset(self, seed: int) -> Any:
        """Reset every worker: obs float32[N, D] (and the mask bool[N, A] for a discrete
        behaviour). Unity was seeded when it started; `seed` is not used."""
        self._guard(lambda: self._each(lambda w: w.env.reset()))
        self._assign_after_reset()
        return (
            self._obs.copy()
            if self.action_mask_size is None
            else (self._obs.copy(), self._mask.copy())
        )

    def step(self, actions: Any) -> tuple[np.ndarray, ...]:
        """One batched step (the decision rule): (obs, reward, terminated, truncated, final_obs
        [, mask, final_mask]), batch-first over the N slots."""
        continuous, discrete = decode_actions(actions, self.actions)
        return self._guard(lambda: self._batched_step(continuous, discrete))

    def drain_stats(self) -> dict[str, float]:
        """`unity/<key>` -> value of the statistics Unity sent since the last call."""
        return drain_stats(w.stats for w in self.workers)

    def close(self) -> None:
        """Close every worker (kill a player that does not quit), copy the players' logs to
        `logs_to` when set, remove the temporary log folder. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for w in self.workers:
            if self._failed and w.process is not None and w.process.poll() is None:
                w.process.kill()  # a hung or broken player would only be waited for
            with contextlib.suppress(Exception):
                w.env.close()
            if w.process is not None:
                if w.process.poll() is None:
                    w.process.kill()
                with contextlib.suppress(Exception):
                    w.process.wait(timeout=10)
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)
        if self._temp_logs is not None:
            if self.logs_to is not None:
                shutil.copytree(self._temp_logs, self.logs_to, dirs_exist_ok=True)
            shutil.rmtree(self._temp_logs, ignore_errors=True)

    # -- internals ----------------------------------------------------------------------------

    def _each(self, fn: Any) -> None:
        """fn(worker) for every worker, in threads when there are several; the first
        mlagents_envs error becomes a HostFailure naming its worker."""

        def call(w: Worker) -> None:
            try:
                fn(w)
            except Exception as error:
                self._failed = True
                if type(error).__module__.startswith("mlagents_envs"):
                    raise HostFailure(explain(error, w.where, self.settings)) from error
                raise

        if self._pool is None or len(self.workers) == 1:
            for w in self.workers:
                call(w)
        else:
            for future in [self._pool.submit(call, w) for w in self.workers]:
                future.result()

    def _guard(self, fn: Any) -> Any:
        if self._closed:
            raise HostFailure("Unity: the environment was closed")
        return fn()

    def _assign_after_reset(self) -> None:
        """Map the agents of every worker's current DecisionSteps onto its slots, in order; step
        with empty actions while some slot has no agent (bounded)."""
        for w in self.workers:
            w.slot_of.clear()
            w.vacant = list(w.slots)
        self._carry[:] = 0.0
        n = self.num_envs
        batch = _Batch.empty(n, self.layout.size)
        batch.received[:] = True  # after a reset, an agent that asked has a decision pending
        for _ in range(self.settings.max_unity_steps):
            for w in self.workers:
                self._read(w, batch, count_ends=False)
            if all(len(w.slot_of) == len(w.slots) for w in self.workers):
                return
            self._exchange(None, None, batch)
        raise HostFailure(
            f"Unity: after a reset, not every agent of {self.behavior} asked for a decision"
        )

    def _batched_step(self, continuous: np.ndarray, discrete: np.ndarray) -> tuple[np.ndarray, ...]:
        n = self.num_envs
        batch = _Batch.empty(n, self.layout.size)
        batch.reward += self._carry
        self._carry[:] = 0.0
        for _ in range(self.settings.max_unity_steps):
            self._exchange(continuous, discrete, batch)
            for w in self.workers:
                self._read(w, batch, count_ends=True)
            if batch.asked.all():
                break
        else:
            raise HostFailure(
                f"Unity: some agents of {self.behavior} did not ask for a decision within "
                f"{self.settings.max_unity_steps} Unity steps (the bridge's decision rule)"
            )
        final_obs = np.where(batch.ended[:, None], batch.final_obs, self._obs)
        out = (self._obs.copy(), batch.reward, batch.terminated, batch.truncated, final_obs)
        if self.action_mask_size is None:
            return out
        final_mask = np.where(batch.ended[:, None], True, self._mask)
        return (*out, self._mask.copy(), final_mask)

    def _exchange(self, continuous: Any, discrete: Any, batch: _Batch) -> None:
        """Set every worker's actions for its current DecisionSteps, mapped by agent id (the
        slot's action; zeros for a slot whose episode ended in this batched step, or without
        actions), mark those slots as having received theirs, and step every worker once."""
        m = self._m
        for w in self.workers:
            decisions = w.env.get_steps(self.behavior)[0]
            if len(decisions) == 0:
                continue
            slots = np.array([w.slot_of[int(i)] for i in decisions.agent_id], np.int64)
            cont = np.zeros((len(slots), self.actions.continuous), np.float32)
            disc = np.zeros((len(slots), len(self.actions.branches)), np.int32)
            if continuous is not None:
                keep = ~batch.ended[slots]
                cont[keep], disc[keep] = continuous[slots[keep]], discrete[slots[keep]]
            batch.received[slots] = True
            action = m.base_env.ActionTuple(continuous=cont, discrete=disc)
            w.env.set_actions(self.behavior, action)
        self._each(lambda w: w.env.step())

    def _read(self, w: Worker, batch: _Batch, count_ends: bool) -> None:
        """Fold worker w's latest TerminalSteps, then DecisionSteps, into the batch and the
        current observations and masks (the decision rule of the module docstring)."""
        decisions, terminals = w.env.get_steps(self.behavior)
        just_ended = {}
        if len(terminals):
            final = flatten_observations(terminals.obs, self.layout) if count_ends else None
            for row, agent in enumerate(terminals.agent_id):
                slot = w.slot_of.pop(int(agent), None)
                if slot is None:
                    continue  # an episode that ended before its first decision: nothing to report
                w.vacant.append(slot)
                just_ended[int(agent)] = slot
                if not count_ends or batch.ended[slot]:
                    continue  # a second episode inside one batched step is not reported
                batch.reward[slot] += terminals.reward[row]
                batch.ended[slot] = True
                batch.truncated[slot] = bool(terminals.interrupted[row])
                batch.terminated[slot] = not batch.truncated[slot]
                batch.final_obs[slot] = final[row]
        if len(decisions) == 0:
            return
        obs = flatten_observations(decisions.obs, self.layout)
        masks = None
        if self.action_mask_size is not None:
            masks = joint_mask(decisions.action_mask, self.actions.branches, len(decisions))
        for row, agent in enumerate(decisions.agent_id):
            agent = int(agent)
            slot = w.slot_of.get(agent)
            if slot is None:
                slot = just_ended.get(agent)  # an id kept across episodes: its own slot
                if slot is None and not w.vacant:
                    raise HostFailure(
                        f"Unity ({w.where}): more agents of {self.behavior} than its "
                        f"{len(w.slots)} slots (agents spawned after the first reset)"
                    )
                slot = w.vacant[0] if slot is None else slot
                w.vacant.remove(slot)
                w.slot_of[agent] = slot
            if batch.ended[slot]:
                self._carry[slot] += decisions.reward[row]
            else:
                batch.reward[slot] += decisions.reward[row]
            self._obs[slot] = obs[row]
            if masks is not None:
                self._mask[slot] = masks[row]
            batch.asked[slot] |= batch.ended[slot] or batch.received[slot]


@dataclasses.dataclass
class _Batch:
    """One batched step in progress, per slot: reward, how the episode ended (terminated,
    truncated, ended, final_obs), whether the slot's agent has received the step's action
    (`received`), and whether the slot has a fresh decision pending (`asked`: its agent asked
    after receiving the action, or the successor of an episode that ended asked)."""

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    ended: np.ndarray
    final_obs: np.ndarray
    received: np.ndarray
    asked: np.ndarray

    @classmethod
    def empty(cls, n: int, size: int) -> _Batch:
        def flags() -> np.ndarray:
            return np.zeros(n, bool)

        final_obs = np.zeros((n, size), np.float32)
        return cls(np.zeros(n, np.float32), flags(), flags(), flags(), final_obs, flags(), flags())


def unity_vector_env(
    settings: UnitySettings, max_steps_in_episode: int = 1000
) -> tuple[Any, UnityParams]:
    """The behaviour of `settings` as a vectorised env with episode statistics (and action
    clipping for continuous actions), and its params; its num_envs is Unity's agent count.
    HostFailure when Unity cannot be reached, ConfigError for a behaviour it does not have."""
    from rlkit.core.spaces import Box
    from rlkit.core.wrappers import ClipAction, EpisodeStatistics

    host = UnityHost(settings)
    venv: Any = HostVectorEnv(host, host.observation_space, host.action_space)
    if isinstance(host.action_space, Box):
        venv = ClipAction(venv)
    return EpisodeStatistics(venv), UnityParams(max_steps_in_episode=max_steps_in_episode)
