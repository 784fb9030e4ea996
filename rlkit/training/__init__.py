"""Running algorithms: the runner (compiled chunks of iterations, vmapped over seeds), devices,
the on-disk compilation cache and evaluation. Imports the layers below it (`ops`, `core`,
`nets`, `data`)."""
