"""Command line of the Unity double: `python -m tests.unity_double --scene S --mlagents-port P ...`.

Accepts what mlagents_envs passes a Linux player, `[-nographics -batchmode] --mlagents-port
<port> [-logFile <path>] <additional args>`: `-nographics` and `-batchmode` are ignored,
`-logFile PATH` gets a short log ("-" for stdout), and any other single-dash Unity player option
(`-screen-width 84`, `-force-vulkan`, ...) is ignored together with the value that follows it
(a token not starting with "-", or a number). Every double option may also be spelled
`--double-<option>` (e.g. `--double-agents 4`), so a bridge's extra args can pass them through;
anything else is an error (exit 2). Exit codes: protocol.py's docstring.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from rlkit.training.cpu_compilation import prefer_fast_cpu_compilation

_NUMBER = re.compile(r"^-?\d+(\.\d*)?$")


def split_unity_args(argv: Sequence[str]) -> tuple[list[str], str | None, list[str]]:
    """(the double's own args, -logFile path or None, ignored Unity player args)."""
    own: list[str] = []
    ignored: list[str] = []
    log_file = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.lower() == "-logfile" and i + 1 < len(argv):
            log_file, i = argv[i + 1], i + 2
            continue
        if arg.startswith("-") and not arg.startswith("--") and not _NUMBER.match(arg):
            ignored.append(arg)
            value = argv[i + 1] if i + 1 < len(argv) else None
            if value is not None and (not value.startswith("-") or _NUMBER.match(value)):
                ignored.append(value)
                i += 1
        elif arg.startswith("--double-"):
            own.append("--" + arg[len("--double-") :])
        else:
            own.append(arg)
        i += 1
    return own, log_file, ignored


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.unity_double",
        description="A stand-in Unity player serving rlkit's JAX environments to mlagents_envs.",
    )
    p.add_argument("--scene", choices=("balanceball", "gridworld", "specs"), required=True)
    p.add_argument("--mlagents-port", type=int, required=True, help="Python's gRPC port")
    p.add_argument("--agents", type=int, help="agents (default 12, 4, 3 by scene)")
    p.add_argument(
        "--shuffle-agents", action="store_true", help="AgentInfos in a random order each message"
    )
    p.add_argument("--decision-period", type=int, default=1, help="period of the slow agents")
    p.add_argument("--slow-agents", type=int, default=0, help="agents deciding every period")
    p.add_argument(
        "--keep-agent-ids", action="store_true", help="an agent keeps its id across episodes"
    )
    p.add_argument("--max-steps", type=int, help="EnvParams.max_steps_in_episode (JAX scenes)")
    p.add_argument("--image-compression", choices=("png", "none"), default="png")
    p.add_argument("--communication-version", default=None, help="sent in the handshake")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="seconds")
    p.add_argument("--crash-after-steps", type=int, help="exit 3 at the next STEP")
    p.add_argument("--hang-after-steps", type=int, help="never answer the next STEP")
    p.add_argument("--hang-seconds", type=float, default=600.0, help="longest hang")
    p.add_argument("--no-stats", action="store_true", help="send no StatsSideChannel messages")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    own, log_file, ignored = split_unity_args(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(own)
    prefer_fast_cpu_compilation()  # before JAX's backend starts, as the rlkit command does

    # Imported after the command line is checked: the protocol module installs messages, and
    # the JAX scenes import JAX.
    from tests.unity_double import protocol, scenes

    log = protocol.Log(log_file)
    log(f"scene {args.scene}; ignored Unity args {ignored}")
    options = scenes.Options(
        agents=args.agents,
        shuffle_agents=args.shuffle_agents,
        decision_period=args.decision_period,
        slow_agents=args.slow_agents,
        keep_agent_ids=args.keep_agent_ids,
        max_steps=args.max_steps,
        image_compression=args.image_compression,
    )
    try:
        scene = scenes.make_scene(args.scene, options)
    except ValueError as error:
        print(f"unity_double: {error}", file=sys.stderr)
        return 2
    settings = protocol.Settings(
        port=args.mlagents_port,
        communication_version=args.communication_version or protocol.COMMUNICATION_VERSION,
        connect_timeout=args.connect_timeout,
        crash_after_steps=args.crash_after_steps,
        hang_after_steps=args.hang_after_steps,
        hang_seconds=args.hang_seconds,
        send_stats=not args.no_stats,
    )
    code = protocol.Academy(scene, settings, log).run()
    log(f"exit {code}")
    return code


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Like a player quitting: no interpreter teardown (JAX's takes a second or more).
    os._exit(code)
