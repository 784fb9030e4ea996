"""What a run leaves behind and prints: its folder (`runs`, `rundir`), metrics rows
(`metrics`), TensorBoard event files (`tensorboard`), Weights & Biases (`wandb_sink`), benchmark
tables. Imports the layers below it, up to `rlkit.training`."""
