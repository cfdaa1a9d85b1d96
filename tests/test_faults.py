"""Runs that survive kills, Ctrl-C/SIGTERM and divergence, and repeat exactly."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from helpers import Command, EventLog, metrics_rows, only_run

from lossbench import api
from lossbench.cli.app import app

LONG = ["--set", "epochs=6", "--set", "n_train_users=256", "--set", "batch_size=64"]


def start(tiny: Path, out: Path, epochs: int = 6) -> Command:
    """A reweight-flood run of `epochs` epochs in its own process (LONG's other settings)."""
    return Command(["run", "--config", str(tiny), "--strategy", "reweight-flood", "--b", "3.3",
                    *LONG, "--set", f"epochs={epochs}", "--out", str(out)],
                   out.with_name(out.name + "-log"))


def wait_for_epochs(out: Path, n: int, proc: Command, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        folders = [p for p in out.glob("*/*") if (p / "checkpoint.pkl").exists()]
        if folders and len(metrics_rows(folders[0])) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run did not reach {n} epochs in time (rc {proc.poll()})")


def test_killed_run_resumes_to_identical_metrics(runner, tiny, tmp_path):
    proc = start(tiny, tmp_path / "killed")
    wait_for_epochs(tmp_path / "killed", 2, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    folder = only_run(tmp_path / "killed")
    assert not (folder / "summary.json").exists()
    done_before = len(metrics_rows(folder))
    assert 2 <= done_before < 6
    resumed = runner.invoke(app, ["run", "--config", str(tiny), "--strategy", "reweight-flood",
                                  "--b", "3.3", *LONG, "--out", str(tmp_path / "killed"),
                                  "--resume"])
    assert resumed.exit_code == 0, resumed.output
    straight = runner.invoke(app, ["run", "--config", str(tiny), "--strategy", "reweight-flood",
                                   "--b", "3.3", *LONG, "--out", str(tmp_path / "straight")])
    assert straight.exit_code == 0, straight.output
    resumed_rows = metrics_rows(folder)
    assert len(resumed_rows) == 6
    assert resumed_rows == metrics_rows(only_run(tmp_path / "straight"))
    assert not (folder / "checkpoint.pkl").exists()
    summary = json.loads((folder / "summary.json").read_text())
    straight_summary = json.loads((only_run(tmp_path / "straight") / "summary.json").read_text())
    assert summary["status"] == "complete"
    for key in ("best_epoch", "test_loss", "test_ndcg10", "final_val_loss"):
        assert summary[key] == straight_summary[key]


def test_signals_mark_interrupted_and_exit_130_or_143(tiny, tmp_path):
    """SIGINT (Ctrl-C) and SIGTERM, each to its own process, started together."""
    procs = {signum: start(tiny, tmp_path / str(code), epochs=500)  # interrupted long before
             for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130))}
    for signum, proc in procs.items():
        wait_for_epochs(tmp_path / str(143 if signum == signal.SIGTERM else 130), 3, proc)
        proc.send_signal(signum)
    for signum, proc in procs.items():
        code = 143 if signum == signal.SIGTERM else 130
        assert proc.wait() == code
        stderr = proc.stderr()
        assert "Traceback" not in stderr and "run the same command again" in stderr
        summary = json.loads((only_run(tmp_path / str(code)) / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["epochs_run"] >= 3


def test_same_command_twice_gives_identical_metrics(runner, tiny, tmp_path):
    for out in ("a", "b"):
        result = runner.invoke(app, ["run", "--config", str(tiny), "--strategy", "all",
                                     "--b", "3.0", "--jobs", "1", "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    for folder in (tmp_path / "a").glob("*/*"):
        twin = tmp_path / "b" / folder.relative_to(tmp_path / "a")
        assert metrics_rows(folder) == metrics_rows(twin)


def test_divergence_is_recorded_and_the_comparison_goes_on(tiny, tmp_path):
    comparison = api.run(strategy=["plain", "reweight"], config=tiny, seeds=2, lr=1e12,
                         out=tmp_path)
    assert len(comparison.runs) == 4
    statuses = {r.summary["status"] for r in comparison.runs}
    assert statuses == {"diverged"}
    for run in comparison.runs:
        assert run.summary["diverged_at"]["epoch"] >= 1
        assert run.summary["diverged_at"]["step"] >= 1
        assert json.loads((run.dir / "summary.json").read_text())["status"] == "diverged"


def test_default_parallel_jobs_give_the_same_results_as_sequential(runner, tiny, tmp_path,
                                                                   monkeypatch):
    """Without --jobs (and without LOSSBENCH_JOBS) the CLI runs one worker per core; with one
    torch thread per run the numbers equal a sequential execution."""
    monkeypatch.delenv("LOSSBENCH_JOBS")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    base = ["run", "--config", str(tiny), "-s", "plain", "-s", "flood", "--b", "3.0"]
    parallel = runner.invoke(app, [*base, "--out", str(tmp_path / "p")])
    assert parallel.exit_code == 0, parallel.output
    sequential = runner.invoke(app, [*base, "--jobs", "1", "--out", str(tmp_path / "s")])
    assert sequential.exit_code == 0, sequential.output
    folders = sorted((tmp_path / "p").glob("*/*"))
    assert len(folders) == 2
    for folder in folders:
        twin = tmp_path / "s" / folder.relative_to(tmp_path / "p")
        assert metrics_rows(folder) == metrics_rows(twin)


def test_parallel_workers_report_each_epoch_to_the_parent(tiny, tmp_path):
    """With --jobs 2 every run's epochs reach the command's events as they happen, between
    its start and its finish (what the progress bars draw)."""
    events = EventLog()
    api.run(strategy=["plain", "flood"], config=tiny, seeds=2, b=3.0, jobs=2, out=tmp_path,
            events=events)
    assert events.planned == 4 and len(events.by_run) == 4
    assert events.every_run_was("started", "epoch 1", "epoch 2", "epoch 3", "finished")


def test_two_processes_on_the_same_out_never_share_a_run(tiny, tmp_path):
    command = ["run", "--config", str(tiny), "-s", "plain", "-s", "flood", "--seeds", "2",
               "--b", "3.0", "--set", "epochs=3", "--jobs", "1", "--out", str(tmp_path / "out")]
    procs = [Command(command, tmp_path / f"log{i}") for i in range(2)]
    assert [p.wait() for p in procs] == [0, 0], [p.stderr() for p in procs]
    folders = [p for p in (tmp_path / "out").glob("*/*") if p.is_dir()]
    assert len(folders) == 4
    trained = sum(p.stdout().count("skipped (already complete)") for p in procs)
    assert trained == 4  # each run trained by one process and read back by the other
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "complete"
        assert len(metrics_rows(folder)) == 3


def live_forkserver_children() -> list[int]:
    """Pids of the live (not zombie) processes forked by multiprocessing's forkserver: the
    `--jobs` workers and `Command`s of this test process (Linux /proc)."""
    from multiprocessing import forkserver

    server = forkserver._forkserver._forkserver_pid
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or it ended while we read
        if int(fields[1]) == server and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def test_sigterm_stops_parallel_workers_too(runner, tiny, tmp_path):
    """SIGTERM to a `--jobs 2` command: it exits 143, each run in flight is marked
    interrupted, and no worker goes on to the queued runs after the command has stopped.
    (In this process, so the workers fork from the server the tests above started.) The
    signal is sent once both runs in flight have checkpointed two epochs: a condition, not
    a time, so a loaded machine that starts the second worker late changes nothing."""
    out = tmp_path / "out"

    def both_workers_training() -> bool:
        training = [p for p in out.glob("*/*") if (p / "checkpoint.pkl").exists()]
        return len(training) == 2 and all(len(metrics_rows(p)) >= 2
                                          for p in training)

    returned = threading.Event()

    def terminate_when_both_train() -> None:
        while not returned.is_set():
            if both_workers_training():
                os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler is installed
                return
            time.sleep(0.02)

    threading.Thread(target=terminate_when_both_train, daemon=True).start()
    result = runner.invoke(app, ["run", "--config", str(tiny), "-s", "plain", "-s", "flood",
                                 "--b", "3.3", "--seeds", "3", *LONG, "--set", "epochs=100",
                                 "--jobs", "2", "--out", str(out)])
    returned.set()
    assert result.exit_code == 143, result.output
    assert live_forkserver_children() == []  # every worker has ended: nothing trains on
    folders = [p for p in out.glob("*/*") if p.is_dir()]
    assert len(folders) == 2  # only the two runs in flight were ever started
    statuses = [json.loads((p / "summary.json").read_text())["status"] for p in folders]
    assert statuses == ["interrupted", "interrupted"]
