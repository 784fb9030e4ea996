"""The contracts everything else is written against: the environment (`env`), spaces,
environment wrappers, the `Algorithm` an agent builds, and configuration fields (`config`,
`fields`). Imports only `rlkit.ops`."""
