"""Pure math on arrays, with no knowledge of environments or networks: returns and advantage
estimators, losses and TD targets, distributions, optimiser steps and schedules, running
statistics, permutations, value and policy iteration on tabular models, fast-compiling PRNG
keys. The bottom layer: imports nothing else of rlkit."""
