"""Planning: Monte Carlo tree search (mctx) with an environment's own step as the model.

A layer beside `rlkit.training`: it imports `rlkit.ops`, `rlkit.core`, `rlkit.nets` and
`rlkit.data`; the search agents (agents/mcts.py, agents/alphazero.py) import it. The wrapper that
shows a planning `act` the environment's state, which evaluation uses, is rlkit.core.env_state.

    rlkit.planning.mcts       the env-as-model recurrent_fn, leaf evaluators, roots, the search
                              (Gumbel MuZero or PUCT) and the config fields the search agents share
"""
