"""The contracts everything else is written against: the environment (`env`), spaces,
environment wrappers, the `Algorithm` an agent builds, and configuration fields (`config`,
`fields`), finite-state environments (`tabular`), and the wrapper that shows a planner the
environment's state (`env_state`). Imports only `rlkit.ops`."""
