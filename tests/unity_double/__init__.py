"""A test double of the Unity side of ML-Agents (release_19, communication API 1.5.0).

A process that behaves like a Unity player: the gRPC client of mlagents_envs' UnityEnvironment
(the server), serving rlkit's JAX environments (and a synthetic scene) behind the real protocol,
so the Unity bridge is tested for real with no Unity install. `protocol` is the client loop and
the side-channel wire format, `scenes` turns environments into AgentInfoProtos, `__main__` is
the command line (`python -m tests.unity_double --help`), `bin/` holds launchers that mlagents_envs
starts as if they were Linux players.
"""
