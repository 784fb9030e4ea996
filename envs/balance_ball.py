"""BalanceBall: a JAX model of Unity ML-Agents' 3DBall (release_19) and its Hard variant.

An agent tilts a 5x5x5 platform (about its local Z and X axes) to keep a ball of radius
0.5*scale on top. Facts (from /work/shared/reference/ML-AGENTS.md §1):

- A decision is 5 physics steps of dt = 0.02 s. On each physics step the platform turns by
  2 degrees * action about local Z (action[0]), then about local X (action[1]), unless the
  quaternion component z (resp. x) is already past +-0.25 in the direction of the turn (the X
  check reads the rotation after the Z turn, as the C# does), i.e. a tilt clamp of about 29 deg.
- Reward +0.1 per decision (SetReward overwrites, so not 0.5); on failure exactly -1 and the
  episode terminates. Failure: ball centre below the platform centre by more than 2, or more
  than 3 away along world X or Z. Episodes are truncated at 1000 decisions (MaxStep 5000).
- Observation `[q.z, q.x, dx, dy, dz, vx, vy, vz]`: quaternion components (not angles), ball
  position relative to the platform centre and ball velocity, both in world axes.
- Reset: tilt U(-10, 10) deg about local X, then about local Z; ball at (U(-1.5, 1.5), 4,
  U(-1.5, 1.5)) relative to the platform centre, at rest.

Physics (one physics step, in the platform's frame: unit axes e_x, n = e_y, e_z in world axes):
the platform is a static collider teleported by each turn, so it imparts no velocity. The ball
is in contact when its centre is above the top face (|p.e_x|, |p.e_z| <= 2.5 and p.n > 2.5 - r)
and the free-falling ball would end the step within `contact_offset` of the face. In contact, a
solid sphere (I = 2/5 m r^2) rolling without slipping accelerates along the face at (5/7) g_t,
g_t the tangential part of gravity; the normal velocity may close the gap to the face but not
go through it (no bounce), and a penetrating ball is pushed out along n without gaining
velocity. Otherwise the ball falls freely. Integration is semi-implicit Euler (v, then p).
Mass cancels out of every equation: it is a parameter only because ML-Agents exposes it.

Left out (as in the reference recipe): rolling over the rim (past the edge the ball falls
freely), PhysX's depenetration velocity, spin carried across landings and episodes, and the
one-physics-step lag of ML-Agents' failure check (here it reads the ball after the step; the
ball is frozen from the physics step on which it fails, so `final_observation` shows the
failure).

Performance: the physics is written as scalar arithmetic on vector components (no 3x3 matmuls,
which become slow tiny batched matmuls under vmap on CPU), so XLA fuses each physics step into
one loop over the batch; the physics steps of a decision run in a rolled `fori_loop`.

BalanceBallHard (3DBallHard): same dynamics; the observation has no velocity and stacks the
last 9 decisions' frames of PositionDelta (3) and Rotation (q.z, q.x) (2): one flat (45,) array,
the PositionDelta stack (27,) then the Rotation stack (18,) (ML-Agents sorts sensors by name),
each oldest frame first, zero-filled at reset before the reset frame is appended.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlkit.core.config import ConfigError
from rlkit.core.env import Environment
from rlkit.core.spaces import Box

__all__ = [
    "BalanceBall",
    "BalanceBallHard",
    "EnvParams",
    "EnvState",
    "HardEnvState",
]

# Rolling without slipping of a solid sphere: a = g_t / (1 + I/(m r^2)) = g_t / (1 + 2/5).
_ROLLING_FACTOR = 5.0 / 7.0
_DEG = math.pi / 180.0
_STACK = 9  # 3DBallHard's numStackedObservations


@struct.dataclass
class EnvParams:
    """Physical constants and limits of 3DBall; a pytree, so they can be sampled per episode."""

    mass: float = 1.0
    """Ball mass (ML-Agents parameter "mass"). Physically irrelevant: it cancels out."""
    scale: float = 1.0
    """Ball scale (ML-Agents parameter "scale"); the ball radius is 0.5 * scale."""
    gravity: float = 9.81
    """Magnitude of gravity along world -Y (ML-Agents parameter "gravity"), m/s^2."""
    dt: float = 0.02
    """Physics time step (Unity's Fixed Timestep), s."""
    max_steps_in_episode: int = 1000
    """Decisions per episode before truncation (MaxStep 5000 physics steps / DecisionPeriod 5)."""
    platform_half_extent: float = 2.5
    """Half the platform's edge: the top face spans [-2.5, 2.5]^2 at height 2.5 (5x5x5 cube)."""
    max_rotation_deg: float = 2.0
    """Platform turn per physics step at |action| = 1, degrees."""
    rotation_clamp: float = 0.25
    """No further turn once quaternion component z (or x) is past +-0.25 in that direction."""
    contact_offset: float = 0.01
    """Predicted gap to the top face within which the ball touches it (PhysX default offset)."""
    fail_below: float = -2.0
    """Failure when the ball centre is lower than this relative to the platform centre (world Y)."""
    fail_distance: float = 3.0
    """Failure when |dx| or |dz| of the ball centre (world axes) exceeds this."""
    alive_reward: float = 0.1
    """Reward of every decision that does not fail."""
    fail_reward: float = -1.0
    """Reward of the decision on which the ball fails (overwrites the alive reward)."""
    reset_max_tilt_deg: float = 10.0
    """Reset tilts about local X and then local Z are drawn from U(-10, 10) degrees."""
    spawn_height: float = 4.0
    """Height of the ball centre above the platform centre at reset (world Y)."""
    spawn_half_range: float = 1.5
    """Reset dx and dz of the ball are drawn from U(-1.5, 1.5)."""


@struct.dataclass
class EnvState:
    """Platform rotation, ball position and velocity (world axes), decision counter."""

    quaternion: jax.Array  # (4,) platform rotation (w, x, y, z), unit norm
    ball_position: jax.Array  # (3,) ball centre minus platform centre, world axes
    ball_velocity: jax.Array  # (3,) world axes
    time: jax.Array  # () int32, decisions taken in this episode


@struct.dataclass
class HardEnvState(EnvState):
    """EnvState plus the observation stacks of BalanceBallHard."""

    position_stack: jax.Array  # (27,) last 9 ball positions (3 each), oldest first
    rotation_stack: jax.Array  # (18,) last 9 (q.z, q.x), oldest first


def _turn_z(q: tuple, c: jax.Array, s: jax.Array) -> tuple:
    """q (w, x, y, z) times (c, 0, 0, s): a turn about the local Z axis (Space.Self)."""
    w, x, y, z = q
    return (w * c - z * s, x * c + y * s, y * c - x * s, z * c + w * s)


def _turn_x(q: tuple, c: jax.Array, s: jax.Array) -> tuple:
    """q (w, x, y, z) times (c, s, 0, 0): a turn about the local X axis (Space.Self)."""
    w, x, y, z = q
    return (w * c - x * s, x * c + w * s, y * c + z * s, z * c - y * s)


def _select(cond: jax.Array, a: tuple, b: tuple) -> tuple:
    return tuple(jnp.where(cond, u, v) for u, v in zip(a, b, strict=True))


def _may_turn(component: jax.Array, angle: jax.Array, clamp: jax.Array) -> jax.Array:
    """The C# clamp: turn if (c < clamp and angle > 0) or (c > -clamp and angle < 0)."""
    return ((component < clamp) & (angle > 0)) | ((component > -clamp) & (angle < 0))


def _platform_axes(q: tuple) -> tuple[tuple, tuple, tuple]:
    """World directions of the platform's local X, Y (normal n) and Z axes: columns of R(q)."""
    w, x, y, z = q
    ex = (1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y))
    n = (2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x))
    ez = (2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y))
    return ex, n, ez


def _dot(a: tuple, b: tuple) -> jax.Array:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _ball_step(
    p: tuple, v: tuple, q: tuple, params: EnvParams, radius: jax.Array
) -> tuple[tuple, tuple]:
    """One physics step of the ball against the (already turned) platform q.

    p, v: ball position relative to the platform centre and velocity, world axes (scalar
    components). With n the platform normal, g = (0, -g, 0), g_n = g.n, g_t = g - g_n n and
    gap = p.n - (2.5 + r):

        contact = |p.e_x|, |p.e_z| <= 2.5, p.n > 2.5 - r, gap + (v.n + g_n dt) dt <= offset
        free:     v' = v + g dt
        contact:  v' = v + (5/7) g_t dt + (v_n' - v.n) n,  v_n' = max(v.n + g_n dt, -max(gap, 0)/dt)
                  p <- p + max(-gap, 0) n                  (push out, no velocity gained)
        p' = p + v' dt                                     (semi-implicit Euler)

    Returns (p', v').
    """
    dt, g, h = params.dt, params.gravity, params.platform_half_extent
    ex, n, ez = _platform_axes(q)
    height = _dot(p, n)  # ball centre above the platform centre, along the normal
    gap = height - (h + radius)  # distance from the ball's surface to the top face
    v_normal = _dot(v, n)
    g_normal = -g * n[1]  # gravity (0, -g, 0) along n
    v_normal_free = v_normal + g_normal * dt
    above_face = (jnp.abs(_dot(p, ex)) <= h) & (jnp.abs(_dot(p, ez)) <= h) & (height > h - radius)
    contact = above_face & (gap + v_normal_free * dt <= params.contact_offset)

    # Tangential acceleration: (5/7) g_t rolling, g_t in free fall; the normal part is
    # g_n in free fall and, in contact, whatever stops the ball at the face.
    tangential = jnp.where(contact, _ROLLING_FACTOR, 1.0) * dt
    g_t = (-g_normal * n[0], -g - g_normal * n[1], -g_normal * n[2])
    v_normal_new = jnp.where(
        contact, jnp.maximum(v_normal_free, -jnp.maximum(gap, 0.0) / dt), v_normal_free
    )
    push_out = jnp.where(contact, jnp.maximum(-gap, 0.0), 0.0)
    dv_normal = v_normal_new - v_normal
    v_new = tuple(v[i] + tangential * g_t[i] + dv_normal * n[i] for i in range(3))
    p_new = tuple(p[i] + push_out * n[i] + v_new[i] * dt for i in range(3))
    return p_new, v_new


def _failed(p: tuple, params: EnvParams) -> jax.Array:
    """3DBall's failure test on the ball centre relative to the platform centre (world axes)."""
    return (
        (p[1] < params.fail_below)
        | (jnp.abs(p[0]) > params.fail_distance)
        | (jnp.abs(p[2]) > params.fail_distance)
    )


class BalanceBall(Environment):
    """3DBall: tilt the platform to keep the ball on it (ML-Agents release_19, vector obs).

    Observation (8,) float32 `[q.z, q.x, dx, dy, dz, vx, vy, vz]`; action (2,) in [-1, 1]
    (clamped inside): turn rates about local Z and X, `params.max_rotation_deg` per physics step.
    """

    def __init__(self, physics_steps_per_decision: int = 5):
        """physics_steps_per_decision: ML-Agents' DecisionPeriod (static: it is a loop count)."""
        super().__init__()
        if physics_steps_per_decision < 1:
            raise ConfigError(
                f"physics_steps_per_decision must be >= 1, got {physics_steps_per_decision}"
            )
        self.physics_steps_per_decision = int(physics_steps_per_decision)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def check_params(self, params: EnvParams) -> None:
        """ConfigError for physically meaningless parameters (envs.make calls it)."""
        positive = ("mass", "scale", "dt", "platform_half_extent", "fail_distance")
        for name in positive:
            if not getattr(params, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(params, name)!r}")
        for name in ("gravity", "max_rotation_deg", "contact_offset", "reset_max_tilt_deg"):
            if not getattr(params, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(params, name)!r}")
        if not 0 < params.rotation_clamp <= 1:
            raise ConfigError(f"rotation_clamp must be in (0, 1], got {params.rotation_clamp!r}")

    @property
    def name(self) -> str:
        return "BalanceBall-v0"

    def step_env(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        """One decision: reward +0.1, or -1 and terminated if the ball fell off."""
        state, failed = self._advance(state, action, params)
        reward = jnp.where(failed, params.fail_reward, params.alive_reward).astype(jnp.float32)
        return self.observe(key, state, None, params), state, reward, failed, {}

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        state = self._initial_state(key, params)
        return self.observe(key, state, None, params), state

    def _advance(
        self, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[EnvState, jax.Array]:
        """`physics_steps_per_decision` turns + physics steps; returns (state', failed)."""
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        half_angle_z = 0.5 * _DEG * params.max_rotation_deg * action[0]
        half_angle_x = 0.5 * _DEG * params.max_rotation_deg * action[1]
        cz, sz = jnp.cos(half_angle_z), jnp.sin(half_angle_z)
        cx, sx = jnp.cos(half_angle_x), jnp.sin(half_angle_x)
        radius = 0.5 * params.scale
        clamp = params.rotation_clamp

        def physics_step(_, carry):
            q, p, v, failed = carry
            live = ~failed  # a failed ball is frozen where it failed
            q = _select(live & _may_turn(q[3], half_angle_z, clamp), _turn_z(q, cz, sz), q)
            q = _select(live & _may_turn(q[1], half_angle_x, clamp), _turn_x(q, cx, sx), q)
            p_new, v_new = _ball_step(p, v, q, params, radius)
            p, v = _select(live, p_new, p), _select(live, v_new, v)
            return q, p, v, failed | _failed(p, params)

        carry = (
            tuple(state.quaternion[i] for i in range(4)),
            tuple(state.ball_position[i] for i in range(3)),
            tuple(state.ball_velocity[i] for i in range(3)),
            jnp.zeros((), bool),
        )
        # A rolled loop, not unrolled: unrolling makes XLA duplicate the shared subexpressions
        # of the chained steps into every fused consumer, and compiling the vmapped step then
        # takes minutes; the rolled loop compiles in seconds and runs > 3M decisions/s.
        q, p, v, failed = jax.lax.fori_loop(0, self.physics_steps_per_decision, physics_step, carry)

        # Each turn multiplies two unit quaternions; renormalise once per decision so float32
        # rounding cannot accumulate over an episode's 5000 turns.
        norm = jax.lax.rsqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
        state = state.replace(
            quaternion=jnp.stack(q) * norm,
            ball_position=jnp.stack(p),
            ball_velocity=jnp.stack(v),
            time=state.time + 1,
        )
        return state, failed

    def _initial_state(self, key: jax.Array, params: EnvParams) -> EnvState:
        """Tilt U(-10,10) deg about local X then Z; ball at rest at (U(+-1.5), 4, U(+-1.5))."""
        u = jax.random.uniform(key, (4,), jnp.float32, -1.0, 1.0)
        half_x = 0.5 * _DEG * params.reset_max_tilt_deg * u[0]
        half_z = 0.5 * _DEG * params.reset_max_tilt_deg * u[1]
        # (cos a, sin a, 0, 0) * (cos b, 0, 0, sin b), the product of the two turns.
        ca, sa, cb, sb = jnp.cos(half_x), jnp.sin(half_x), jnp.cos(half_z), jnp.sin(half_z)
        quaternion = jnp.stack([ca * cb, sa * cb, -sa * sb, ca * sb])
        spread = params.spawn_half_range
        position = jnp.stack([spread * u[2], jnp.full((), params.spawn_height), spread * u[3]])
        return EnvState(
            quaternion=quaternion,
            ball_position=position.astype(jnp.float32),
            ball_velocity=jnp.zeros(3, jnp.float32),
            time=jnp.zeros((), jnp.int32),
        )

    def observe(self, key: jax.Array, state: EnvState, action: Any, params: EnvParams) -> jax.Array:
        """(8,) `[q.z, q.x, dx, dy, dz, vx, vy, vz]`."""
        q = state.quaternion
        return jnp.concatenate([q[3:4], q[1:2], state.ball_position, state.ball_velocity])

    def observation_space(self, params: EnvParams) -> Box:
        return Box(-jnp.inf, jnp.inf, (8,), jnp.float32)

    def action_space(self, params: EnvParams | None = None) -> Box:
        return Box(-1.0, 1.0, (2,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return 2


def _frame(state: EnvState) -> tuple[jax.Array, jax.Array]:
    """3DBallHard's per-decision observables: PositionDelta (3,) and Rotation (q.z, q.x) (2,)."""
    q = state.quaternion
    return state.ball_position, jnp.stack([q[3], q[1]])


class BalanceBallHard(BalanceBall):
    """3DBallHard: BalanceBall's dynamics, observed through 9 stacked frames without velocity.

    Observation (45,) float32: the PositionDelta stack (27,) then the Rotation stack (18,),
    each oldest frame first; a frame is pushed once per decision.
    """

    @property
    def name(self) -> str:
        return "BalanceBallHard-v0"

    def _advance(
        self, state: HardEnvState, action: jax.Array, params: EnvParams
    ) -> tuple[HardEnvState, jax.Array]:
        """BalanceBall's decision, then the new frame pushed onto the stacks (oldest dropped)."""
        state, failed = super()._advance(state, action, params)
        position, rotation = _frame(state)
        state = state.replace(
            position_stack=jnp.concatenate([state.position_stack[3:], position]),
            rotation_stack=jnp.concatenate([state.rotation_stack[2:], rotation]),
        )
        return state, failed

    def _initial_state(self, key: jax.Array, params: EnvParams) -> HardEnvState:
        """BalanceBall's reset; stacks of zeros with the reset frame as the newest."""
        base = super()._initial_state(key, params)
        position, rotation = _frame(base)
        return HardEnvState(
            quaternion=base.quaternion,
            ball_position=base.ball_position,
            ball_velocity=base.ball_velocity,
            time=base.time,
            position_stack=jnp.concatenate([jnp.zeros(3 * (_STACK - 1), jnp.float32), position]),
            rotation_stack=jnp.concatenate([jnp.zeros(2 * (_STACK - 1), jnp.float32), rotation]),
        )

    def observe(
        self, key: jax.Array, state: HardEnvState, action: Any, params: EnvParams
    ) -> jax.Array:
        """(45,): PositionDelta stack (27,) then Rotation stack (18,), oldest frame first."""
        return jnp.concatenate([state.position_stack, state.rotation_stack])

    def observation_space(self, params: EnvParams) -> Box:
        return Box(-jnp.inf, jnp.inf, (5 * _STACK,), jnp.float32)
