"""Running algorithms: the runner (compiled chunks of iterations, vmapped over seeds), devices,
the on-disk compilation cache, evaluation, checkpoints of the whole TrainState and the
divergence guard. Imports the layers below it (`ops`, `core`, `nets`, `data`)."""
