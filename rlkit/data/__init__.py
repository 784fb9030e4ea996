"""Experience: the rollout of a policy over a vectorised environment, replay buffers, and what
the on-policy and the off-policy agents share when they collect and store it. Imports
`rlkit.ops`, `rlkit.core` and `rlkit.nets`."""
