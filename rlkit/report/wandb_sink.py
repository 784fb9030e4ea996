"""Weights & Biases for a run: opt-in (`rlkit train --wandb`), and never in the way of training.

    <run folder>/wandb/rlkit-run-id              the W&B run id: a resumed run continues it
    <run folder>/wandb/run-<time>-<id>/          wandb's own files (online)
    <run folder>/wandb/offline-run-<time>-<id>/  the same with WANDB_MODE=offline (then
                                                 `wandb sync` uploads them), run-<id>.wandb

`open_wandb` imports wandb only when asked. When wandb is not installed, or fails to import,
or `wandb.init` fails (no API key in online mode, no network within the timeout, ...), it prints
one line to stderr saying so and returns None, and the run goes on without it. wandb's own
console output is kept off: silent, no console capture, unless WANDB_SILENT / WANDB_CONSOLE
say otherwise; `init_timeout` and `login_timeout` are 30 s (wandb: 90 s and none) unless
WANDB_INIT_TIMEOUT / WANDB_LOGIN_TIMEOUT say otherwise. After a failed init the wandb-core
service it started is ended: it would go on retrying the server for many minutes, and wandb's
exit hook waits for it, so the training process would not exit when done. The project is
WANDB_PROJECT, else "rlkit"; the entity wandb's default. wandb's reports of its own errors to
its developers are off (WANDB_ERROR_REPORTING=false) unless the user's environment says
otherwise: without a network they print a warning per retry.

What is logged, at W&B step `env_steps` (environment steps per seed), per log interval: for
every metric, the mean over the seeds that have a finite value, under the TensorBoard tag
(`rlkit.report.tensorboard.tag`: ML-Agents' names where they mean the same). Across seeds, only
what a dashboard needs to show the spread without one chart per seed (rlkit runs may have
hundreds; every seed's own curves are in TensorBoard): "Seeds/Cumulative Reward min" and
"... max" (with more than one seed), and "Seeds/Non-finite" (how many seeds have a nan or inf
metric in that interval, the ones the means leave out: a diverged seed). About M + 3 numbers a
step for M metrics.

Resuming: `wandb.init(id=<stored id>, resume="allow")` continues the W&B run. W&B history
cannot be rewritten: steps the killed process had already logged (after the checkpoint the run
restarts from) stay as they were, and the resumed run's rows for those steps are left out
(W&B would drop them anyway). In offline mode wandb ignores `resume` (it is not passed; each
process writes its own offline-run folder with the same id).

Closing: `close()` returns once everything logged is in the run file (run-<id>.wandb).
`run.finish()` alone does not promise that: wandb-core keeps a run's records in memory (the file
holds only its 7-byte header until then) and writes and closes the file when it ends the run's
stream, which it does on the "finish" message that `run.finish()` sends last and does not wait
for. So the sink then ends wandb's session (`wandb.teardown()`): the service handles the finish
before the teardown, and teardown waits for the service process to exit. That is the session
`open_wandb` configured with `wandb.setup`; a next `open_wandb` (or `wandb.init`) starts a new
one.

A failure while logging (the wandb service gone, ...) is reported in one line and turns the
sink off; training goes on.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any

from rlkit.report.tensorboard import metric_values, tag

__all__ = ["ID_FILE", "WandbSink", "open_wandb"]

ID_FILE = "rlkit-run-id"
"""Under <run folder>/wandb/: the W&B run id, kept so that a resumed run continues it."""

_TIMEOUT_S = 30.0
_RETURN_TAG = tag("episode_return")


def _say(message: str) -> None:
    print(f"rlkit: --wandb: {message}", file=sys.stderr, flush=True)


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _run_id(folder: Path, resume: bool) -> str:
    """The stored id when resuming (a new one if there is none), else a new one, stored."""
    path = folder / "wandb" / ID_FILE
    if resume and path.is_file():
        stored = path.read_text().strip()
        if stored:
            return stored
    alphabet = string.ascii_lowercase + string.digits
    run_id = "".join(secrets.choice(alphabet) for _ in range(8))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{ID_FILE}.tmp")
    tmp.write_text(run_id + "\n")
    os.replace(tmp, path)
    return run_id


def _settings() -> dict[str, Any]:
    """rlkit's defaults for what the user's WANDB_* variables do not set."""
    defaults = {
        "silent": ("WANDB_SILENT", True),
        "console": ("WANDB_CONSOLE", "off"),
        "init_timeout": ("WANDB_INIT_TIMEOUT", _TIMEOUT_S),
        "login_timeout": ("WANDB_LOGIN_TIMEOUT", _TIMEOUT_S),
    }
    return {key: value for key, (env, value) in defaults.items() if env not in os.environ}


def open_wandb(folder: Path, name: str, config: dict, resume: bool) -> WandbSink | None:
    """A W&B sink for the run in `folder` (module docstring), or None (one line on stderr) when
    wandb is not installed or cannot start."""
    # wandb reports its own errors to its Sentry project over the network, which prints a
    # warning per retry where there is none; the user's WANDB_ERROR_REPORTING wins.
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    try:
        import wandb
    except ImportError as error:
        if isinstance(error, ModuleNotFoundError) and error.name != "wandb":
            _say(f"wandb failed to import ({_reason(error)}); training goes on without it")
        else:
            _say('wandb is not installed (pip install "rlkit[wandb]"); training goes on without it')
        return None
    except Exception as error:
        _say(f"wandb failed to import ({_reason(error)}); training goes on without it")
        return None

    folder = Path(folder)
    offline = os.environ.get("WANDB_MODE", "").strip().lower() in ("offline", "dryrun")
    run = None
    try:
        run_id = _run_id(folder, resume)
        settings = wandb.Settings(**_settings())
        wandb.setup(settings=settings)  # silences wandb's login messages too
        run = wandb.init(
            dir=str(folder),
            name=name,
            config=config,
            id=run_id,
            resume="allow" if resume and not offline else None,
            project=None if "WANDB_PROJECT" in os.environ else "rlkit",
            settings=settings,
        )
        if run.disabled or run.settings.mode == "disabled":
            run.finish()
            _say("W&B is disabled (WANDB_MODE=disabled); training goes on without it")
            return None
    except Exception as error:
        if run is not None:
            with contextlib.suppress(Exception):
                run.finish()
        _say(f"wandb.init failed ({_reason(error)}); training goes on without it")
        _end_service(wandb)
        return None
    return WandbSink(run)


def _end_service(wandb: Any) -> None:
    """Stop the wandb-core service after a failed init, and wandb's session with it (module
    docstring). The service is this process's child, started for this init; wandb (0.25.0 and
    0.31.0) keeps its Popen at wandb_setup._singleton._connection._proc._process."""
    with contextlib.suppress(Exception):
        from wandb.sdk import wandb_setup

        connection = getattr(getattr(wandb_setup, "_singleton", None), "_connection", None)
        process = getattr(getattr(connection, "_proc", None), "_process", None)
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except Exception:
                process.kill()
                process.wait(timeout=5)
    # teardown reports the service's exit code with sys.exit: not an error here.
    with contextlib.suppress(Exception, SystemExit):
        wandb.teardown()


class WandbSink:
    """Runner sink logging to a started W&B run (module docstring); `open_wandb` makes one."""

    def __init__(self, run: Any):
        self.run = run

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Log each env_steps step of `rows` (all seeds of a step in one call)."""
        if self.run is None:
            return
        steps: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            steps.setdefault(int(row["env_steps"]), []).append(row)
        try:
            for step, group in steps.items():
                if step < self.run.step:  # the killed process logged it: W&B keeps that
                    continue
                data = self._step_data(group)
                if data:
                    self.run.log(data, step=step)
        except Exception as error:
            self._fail(error)

    @staticmethod
    def _step_data(group: list[dict[str, Any]]) -> dict[str, float]:
        finite: dict[str, list[float]] = {}
        nonfinite_seeds = set()
        for row in group:
            for name, value in metric_values(row):
                if math.isfinite(value):
                    finite.setdefault(tag(name), []).append(value)
                else:
                    nonfinite_seeds.add(row["seed"])
        data = {key: math.fsum(values) / len(values) for key, values in finite.items()}
        returns = finite.get(_RETURN_TAG, [])
        if returns and len({row["seed"] for row in group}) > 1:
            data["Seeds/Cumulative Reward min"] = min(returns)
            data["Seeds/Cumulative Reward max"] = max(returns)
        if data or nonfinite_seeds:
            data["Seeds/Non-finite"] = float(len(nonfinite_seeds))
        return data

    def _fail(self, error: BaseException) -> None:
        _say(f"logging to W&B failed ({_reason(error)}); training goes on without it")
        run, self.run = self.run, None
        _finish(run, exit_code=1)

    def close(self) -> None:
        """Finish the W&B run, and return once its run file is complete (module docstring; one
        line on stderr when it cannot be); again: nothing."""
        run, self.run = self.run, None
        if run is not None:
            _finish(run, exit_code=None)


def _finish(run: Any, exit_code: int | None) -> None:
    """Finish `run`, then end wandb's session so that its run file is complete (module
    docstring); a failure is one line on stderr."""
    import wandb

    try:
        run.finish(exit_code=exit_code)
    except Exception as error:
        _say(f"finishing the W&B run failed ({_reason(error)})")
    try:
        wandb.teardown()
    except SystemExit as error:  # teardown reports the service's exit code with sys.exit
        _say(f"the W&B service exited with code {error.code}; the run file may be incomplete")
    except Exception as error:
        _say(f"ending the W&B session failed ({_reason(error)}); the run file may be incomplete")
