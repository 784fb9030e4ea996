"""Flax networks: torsos, heads, the on-policy actor-critic, Q networks and the off-policy
actors. Imports `rlkit.ops` and `rlkit.core`."""
