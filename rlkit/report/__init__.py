"""What a run leaves behind and prints: the run directory and its sinks, benchmark tables.
Imports the layers below it, up to `rlkit.training`."""
