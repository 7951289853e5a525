"""Training in several processes: the caller's side (`train_in_processes`), and the entry points torchrun
starts (`python -m training.engine.launch agent|rank SPEC`).

The caller (a gpu worker) starts one child, the agent, which runs torchrun's launcher in-process; it
starts one rank per process, each running `trainer.train`. They talk through files in
`<output_dir>/launch/`, so the engine needs nothing from the caller's framework:

    spec.json          what to train: config, model, where the samples are, the checkpoint to resume
    progress.jsonl     rank 0 appends one JSON line per step and per evaluation (with its wall-clock
                       time, `at`); the caller tails it
    STOP               the caller creates it to cancel; rank 0 reads it before each step and tells the
                       other ranks, so all stop at the same step and save one checkpoint
    result.json        rank 0's TrainResult; errors/rank-N.json a rank's exception; launch.log the output

Every child dies with its parent (`distributed.die_with_parent`): a worker killed mid-run takes its
ranks with it, and the run resumes from its checkpoint elsewhere with nobody writing beside it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from .config import TrainConfig, UnsupportedSetting

POLL_S = 0.2  # how often the caller reads progress and asks should_stop
_REPO_ROOT = Path(__file__).resolve().parents[2]  # holds the training package the ranks import


class TrainingProcessError(RuntimeError):
    """A rank failed; the message is its exception, or the end of the launch log."""


def launch_dir(config: TrainConfig) -> Path:
    return Path(config.output_dir) / "launch"


def devices_check(config: TrainConfig) -> str:
    """The device type the ranks will train on, or UnsupportedSetting naming the setting it cannot meet.
    Checked by the caller before it starts anything."""
    import torch

    from . import precision

    wanted = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    kind = torch.device(wanted).type
    if kind == "cuda":
        have = torch.cuda.device_count()
        if config.num_processes > have:
            raise UnsupportedSetting(
                f"num_processes: {config.num_processes} processes need as many GPUs; this worker has {have}."
            )
    elif kind != "cpu":
        raise UnsupportedSetting(f"num_processes: several processes train on CUDA or the CPU, not {kind}.")
    probe = torch.device(kind, 0) if kind == "cuda" else torch.device("cpu")
    precision.autocast_dtype(config, probe)
    precision.qlora_check(config, probe)
    return kind


def train_in_processes(
    config: TrainConfig,
    model_dir: str | Path,
    train_samples: Sequence[Mapping],
    *,
    eval_samples: Sequence[Mapping] = (),
    on_progress: Callable | None = None,
    on_eval: Callable | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume_from: str | Path | None = None,
):
    """`trainer.train` across `config.num_processes` processes under torchrun, with the same callbacks
    and result, called here in the caller's process as rank 0 reports."""
    from .trainer import TrainResult

    kind = devices_check(config)
    work = launch_dir(config)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("progress.jsonl", "STOP", "result.json"):
        (work / name).unlink(missing_ok=True)
    for old in (work / "errors").glob("rank-*.json"):
        old.unlink()
    _jsonl_write(work / "train.jsonl", train_samples)
    _jsonl_write(work / "eval.jsonl", eval_samples)
    spec = {
        "config": asdict(config),
        "model_dir": str(model_dir),
        "device": kind,
        "resume_from": str(resume_from) if resume_from else None,
    }
    (work / "spec.json").write_text(json.dumps(spec, indent=2))

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "HANDOVER_PARENT_PID": str(os.getpid()),
        # torchrun would give every rank one thread; on a CPU the cores are the ranks' to share.
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // config.num_processes)),
    }
    with open(work / "launch.log", "ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "training.engine.launch", "agent", str(work / "spec.json")],
            env=env,
            cwd=_REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    progress, offset, stop_sent = work / "progress.jsonl", 0, False
    try:
        while True:
            done = agent.poll() is not None
            offset = _relay(progress, offset, on_progress, on_eval)
            if done:
                break
            if not stop_sent and should_stop is not None and should_stop():
                (work / "STOP").touch()
                stop_sent = True
            time.sleep(POLL_S)
    except BaseException:
        _stop(agent)
        raise
    if agent.returncode != 0:
        raise _failure(work, agent.returncode)
    values = json.loads((work / "result.json").read_text())
    for key in ("model_dir", "checkpoint_dir"):
        values[key] = Path(values[key]) if values[key] else None
    return TrainResult(**values)


def _jsonl_write(path: Path, rows: Sequence[Mapping]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _jsonl_read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _relay(path: Path, offset: int, on_progress, on_eval) -> int:
    """Hand every complete line rank 0 appended since `offset` to the callbacks; the new offset."""
    if not path.exists():
        return offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next poll
    for line in chunk[:end].splitlines():
        event = json.loads(line)
        kind = event.pop("event")
        if kind == "step" and on_progress is not None:
            on_progress(*(event[k] for k in ("step", "total", "loss", "lr", "tokens_per_s", "eta_s")))
        elif kind == "eval" and on_eval is not None:
            on_eval(*(event[k] for k in ("step", "eval_loss", "best_step", "best_eval_loss")))
    return offset + end


def _stop(agent: subprocess.Popen) -> None:
    """SIGTERM lets torchrun stop its ranks; SIGKILL if it has not within the grace."""
    if agent.poll() is not None:
        return
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()


def _failure(work: Path, returncode: int) -> Exception:
    """The first rank's own error (a setting it refused keeps its type), else the log's last lines."""
    errors = sorted((work / "errors").glob("rank-*.json"))
    if errors:
        error = json.loads(errors[0].read_text())
        message = error["message"]
        if error["type"] == "UnsupportedSetting":
            return UnsupportedSetting(message)
        if error["type"] == "ModelFilesError":
            from .model_files import ModelFilesError

            return ModelFilesError(message)
        return TrainingProcessError(f"{error['type']} in rank {errors[0].stem.split('-')[1]}: {message}")
    tail = (work / "launch.log").read_text(errors="replace")[-1500:]
    return TrainingProcessError(f"the training processes exited with status {returncode}: …{tail}")


# The children -----------------------------------------------------------------------------------------


def _agent(spec_path: Path) -> None:
    """torchrun's launcher, in this process: one rank per process, all on this machine."""
    from torch.distributed.run import main as torchrun

    from .distributed import die_with_parent

    die_with_parent(int(os.environ["HANDOVER_PARENT_PID"]))
    spec = json.loads(spec_path.read_text())
    os.environ["HANDOVER_PARENT_PID"] = str(os.getpid())  # the ranks' parent is this process
    torchrun(
        [
            "--standalone",
            "--nnodes=1",
            f"--nproc-per-node={spec['config']['num_processes']}",
            "--module",
            "training.engine.launch",
            "rank",
            str(spec_path),
        ]
    )


def _rank(spec_path: Path) -> None:
    import torch

    from . import distributed
    from .trainer import train

    distributed.die_with_parent(int(os.environ["HANDOVER_PARENT_PID"]))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = spec_path.parent
    spec = json.loads(spec_path.read_text())
    cluster = distributed.init_from_env(spec["device"])
    try:
        config = TrainConfig.from_dict(spec["config"])

        def report(event: str, **values) -> None:  # only rank 0 reports (train calls back there alone)
            line = json.dumps({"event": event, **values, "at": time.time()})
            with open(work / "progress.jsonl", "a", encoding="utf-8") as progress:
                progress.write(line + "\n")

        result = train(
            config,
            spec["model_dir"],
            _jsonl_read(work / "train.jsonl"),
            eval_samples=_jsonl_read(work / "eval.jsonl"),
            on_progress=lambda step, total, loss, lr, tps, eta: report(
                "step", step=step, total=total, loss=loss, lr=lr, tokens_per_s=tps, eta_s=eta
            ),
            on_eval=lambda step, loss, best_step, best: report(
                "eval", step=step, eval_loss=loss, best_step=best_step, best_eval_loss=best
            ),
            should_stop=lambda: (work / "STOP").exists(),
            resume_from=spec["resume_from"],
        )
        if cluster.is_main:
            values = asdict(result)
            values["model_dir"] = str(result.model_dir)
            values["checkpoint_dir"] = str(result.checkpoint_dir) if result.checkpoint_dir else None
            tmp = work / "result.json.tmp"
            tmp.write_text(json.dumps(values))
            tmp.rename(work / "result.json")
    except BaseException as exc:
        (work / "errors").mkdir(exist_ok=True)
        error = {"type": type(exc).__name__, "message": str(exc)[:2000]}
        (work / "errors" / f"rank-{cluster.rank}.json").write_text(json.dumps(error))
        raise
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    role, spec_file = sys.argv[1], Path(sys.argv[2])
    {"agent": _agent, "rank": _rank}[role](spec_file)
