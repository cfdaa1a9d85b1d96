"""`lossbench run` as a user runs it: files on disk, paired runs, bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import metrics_rows, run_folders, task_of

from lossbench import api
from lossbench.cli.app import app
from lossbench.config import load_config
from lossbench.events import Events
from lossbench.results.folders import COLUMNS
from lossbench.training.models import attention_dropout, build_model
from lossbench.training.trainer import epoch_lr, init_model, warmup_factor

SUMMARY_KEYS = {"status", "best_epoch", "test_loss", "test_acc", "test_hr10", "test_ndcg10",
                "final_val_loss", "final_train_loss", "wall_seconds"}
CONFIG_KEYS = {"strategy", "b", "params", "seed", "task", "seeds", "versions", "device_used"}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_flood_writes_the_three_files(runner, tiny, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tiny), "--strategy", "flood",
                                 "--b", "0.1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "results:" in result.stdout and "flood" in result.stdout
    (folder,) = run_folders(tmp_path)
    assert folder.name.startswith("synthetic__flood__b0.1__s0__")
    config = json.loads((folder / "config.json").read_text())
    assert CONFIG_KEYS <= set(config)
    assert (config["strategy"], config["b"], config["seed"]) == ("flood", 0.1, 0)
    assert config["params"] == {}  # flood = plain weighting: no parameters
    assert config["seeds"] == {"data": 0, "init": 10_000, "batch": 20_000}
    assert set(config["versions"]) == {"lossbench", "torch", "python"}
    rows = read_csv(folder / "metrics.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for row in rows:
        assert float(row["train_objective"]) >= 0.1 - 1e-6  # a flooded objective is >= b
        assert 0.0 <= float(row["flood_frac"]) <= 1.0
    summary = json.loads((folder / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["status"] == "complete"
    assert 1 <= summary["best_epoch"] <= 3
    assert summary["val_loss"] == min(float(r["val_loss"]) for r in rows)


def test_strategy_all_with_seeds_makes_every_pair(runner, tiny, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tiny), "--strategy", "all",
                                 "--seeds", "2", "--b", "0.5", "--b-reweight", "0.25",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = [p.name.split("__")[1:4] for p in run_folders(tmp_path)]
    level = {"plain": 0, "reweight": 0, "flood": 0.5, "reweight-flood": 0.25}
    expected = {(s, f"b{b:g}", f"s{seed}") for s, b in level.items() for seed in (0, 1)}
    assert {tuple(n) for n in names} == expected
    assert len(list(tmp_path.iterdir())) == 1  # one experiment folder for the comparison


def test_repeated_strategy_option_and_rerun_skips_complete_runs(runner, tiny, tmp_path):
    args = ["run", "--config", str(tiny), "-s", "plain", "-s", "reweight", "--alpha", "0.5",
            "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    stamps = {p: (p / "summary.json").stat().st_mtime_ns for p in run_folders(tmp_path)}
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.stdout.count("skipped (already complete)") == 2
    assert stamps == {p: (p / "summary.json").stat().st_mtime_ns for p in run_folders(tmp_path)}


def test_reweight_records_theta_and_detach_switch(tiny, tmp_path):
    runs = {}
    for detach in (False, True):
        comparison = api.run(strategy="reweight", config=tiny, detach_theta=detach,
                             out=tmp_path)
        (run,) = comparison.runs
        runs[detach] = read_csv(run.dir / "metrics.csv")
        params = json.loads((run.dir / "config.json").read_text())["params"]
        assert params["detach_theta"] is detach and params["alpha"] == 0.1
    thetas = [float(r["theta"]) for r in runs[False]]
    assert all(0.0 < t < 1.0 for t in thetas)
    assert runs[False] != runs[True]


def test_paired_runs_share_data_initial_weights_and_batch_order(tiny):
    cfg_plain = load_config(tiny, {"strategy": "plain", "seed": 3})
    cfg_flood = load_config(tiny, {"strategy": "flood", "b": 0.7, "seed": 3})
    task_a, task_b = task_of(cfg_plain), task_of(cfg_flood)
    assert torch.equal(task_a.train.targets, task_b.train.targets)
    assert torch.equal(task_a.val.inputs, task_b.val.inputs)
    weights_a = init_model(task_a, cfg_plain, torch.device("cpu")).state_dict()
    weights_b = init_model(task_b, cfg_flood, torch.device("cpu")).state_dict()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    other_seed = task_of(load_config(tiny, {"seed": 4}))
    assert not torch.equal(task_a.train.targets, other_seed.train.targets)


def test_paired_runs_train_on_the_same_batches(tiny, tmp_path, monkeypatch):
    """Spy on what the trainer feeds the model: every strategy of a seed must see the same
    batches, in the same order, with the same augmentations; another seed other batches."""
    import lossbench.training.trainer as trainer

    seen: dict[tuple, list] = {}
    run: list[tuple] = []  # the (strategy, seed) in training
    real_losses, real_epoch = trainer.compute_losses, trainer.SingleModel.train_epoch

    def epoch_spy(self, epoch):
        cfg = self.runs[0].cfg
        run[:] = [(cfg.strategy.name, cfg.seed)]
        return real_epoch(self, epoch)

    def losses_spy(model, inputs, targets, cfg, epoch, generator):
        state = generator.get_state().clone()  # the augmentation draw comes next
        seen.setdefault(run[0], []).append((inputs.clone(), state))
        return real_losses(model, inputs, targets, cfg, epoch, generator)

    monkeypatch.setattr(trainer.SingleModel, "train_epoch", epoch_spy)
    monkeypatch.setattr(trainer, "compute_losses", losses_spy)
    api.run(strategy=["plain", "flood", "reweight"], config=tiny, b=3.0, seeds=2,
            out=tmp_path)
    plain, flood, reweight = (seen[s, 0] for s in ("plain", "flood", "reweight"))
    assert len(plain) == 3 * 2  # 3 epochs x 2 batches of tiny.toml
    for a, b, c in zip(plain, flood, reweight, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[0], c[0])
        assert torch.equal(a[1], b[1]) and torch.equal(a[1], c[1])
    assert not torch.equal(plain[0][0], seen["plain", 1][0][0])
    assert not torch.equal(plain[0][0], plain[2][0])  # a new order every epoch


def test_flood_with_b_zero_reproduces_plain_exactly(tiny, tmp_path):
    """End to end: same data, weights and batches, and |L - 0| + 0 = L, so every number of
    the two runs must match. Any unpaired randomness would break this."""
    comparison = api.run(strategy=["plain", "flood", "reweight", "reweight-flood"],
                         config=tiny, b=0.0, b_reweight=-1.0, out=tmp_path)
    metrics = {r.cfg.strategy.name: metrics_rows(r.dir) for r in comparison.runs}
    assert metrics["plain"] == metrics["flood"]
    assert metrics["reweight"] == metrics["reweight-flood"]
    assert metrics["plain"] != metrics["reweight"]


def test_aux_none_gives_zero_aux_loss(runner, tiny, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tiny), "--aux", "none",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (folder,) = run_folders(tmp_path)
    rows = read_csv(folder / "metrics.csv")
    assert all(float(r["train_aux_loss"]) == 0.0 for r in rows)
    assert all(float(r["train_loss"]) == float(r["train_main_loss"]) for r in rows)


def test_experiment_toml_loads_and_cli_overrides_it(tmp_path):
    default = load_config(Path(__file__).parents[1] / "experiments" / "synthetic.toml")
    assert default.task.name == "synthetic" and default.strategy.b > 0
    cfg = load_config(Path(__file__).parents[1] / "experiments" / "synthetic.toml",
                      {"strategy": "reweight", "alpha": "0.3", "lam": 2})
    strategy = cfg.strategy
    assert (strategy.name, strategy.params["alpha"], strategy.params["lam"]) == ("reweight", 0.3,
                                                                                 2.0)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("args, message", [
    (["--strategy", "bogus"], "unknown strategy 'bogus'"),
    (["--strategy", "flood", "--b", "-0.5"], "b must be >= 0"),
    (["--alpha", "0"], "alpha must be in (0, 1]"),
    (["--alpha", "1.01"], "alpha must be in (0, 1]"),
    (["--lam", "-1"], "lam must be >= 0"),
    (["--config", "no/such/file.toml"], "config file not found"),
    (["--set", "nonsense=1"], "unknown setting 'nonsense'"),
    (["--set", "epochs=many"], "setting 'epochs' in the command line must be int"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--set", "lr_schedule=step"], "unknown lr_schedule 'step'"),
    (["--set", "lr_warmup=-1"], "lr_warmup must be >= 0"),
    (["--set", "attn_dropout=1.5"], "attn_dropout must be <= 1"),
    (["--set", "label_smoothing=1.5"], "label_smoothing must be in [0, 1]"),
    (["--no-such-option"], "No such option"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(runner, tiny, tmp_path, args, message):
    out = tmp_path / "results"
    config = [] if "--config" in args else ["--config", str(tiny)]
    result = runner.invoke(app, ["run", *config, *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unknown_key_in_config_file_names_key_and_file(runner, tmp_path):
    bad = write(tmp_path / "bad.toml", "epochs = 2\nlearning_rate = 0.1\n")
    result = runner.invoke(app, ["run", "--config", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "unknown setting 'learning_rate'" in result.stderr and str(bad) in result.stderr
    assert not (tmp_path / "r").exists()


def test_malformed_toml_is_one_line(runner, tmp_path):
    bad = write(tmp_path / "bad.toml", "epochs = = 2\n")
    result = runner.invoke(app, ["run", "--config", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not valid TOML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unwritable_out_is_exit_2_and_nothing_written(runner, tiny, tmp_path):
    blocker = write(tmp_path / "a-file", "not a folder")
    result = runner.invoke(app, ["run", "--config", str(tiny), "--out", str(blocker / "x")])
    assert result.exit_code == 2
    assert "cannot write results to" in result.stderr
    assert blocker.read_text() == "not a folder"


def test_every_command_has_help(runner):
    for command in (["--help"], ["run", "--help"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_gru_model_runs_and_differs_from_sasrec(tiny, tmp_path):
    runs = {model: api.run(config=tiny, model=model, out=tmp_path).runs[0]
            for model in ("sasrec", "gru")}
    for run in runs.values():
        assert run.summary["status"] == "complete"
        assert json.loads((run.dir / "config.json").read_text())["model"] == run.cfg.model.name
    assert runs["gru"].summary["test_loss"] != runs["sasrec"].summary["test_loss"]


def test_attention_dropout_follows_dropout_unless_set(tiny):
    """attn_dropout < 0 means `dropout`; set, it drops attention probabilities alone."""
    history = torch.tensor([[0, 3, 5, 7, 2, 9]])

    def two_passes(**settings) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = load_config(tiny, settings)
        model = build_model(30, cfg.task.max_len, cfg.model).train()
        return model(history), model(history)

    assert attention_dropout(load_config(tiny, {"dropout": 0.3}).model) == 0.3
    assert attention_dropout(load_config(tiny, {"dropout": 0.3,
                                                "attn_dropout": 0.0}).model) == 0.0
    first, second = two_passes(dropout=0.0, attn_dropout=0.0)
    assert torch.equal(first, second)  # no dropout anywhere: training passes agree
    first, second = two_passes(dropout=0.0, attn_dropout=0.5)
    assert not torch.equal(first, second)  # the attention probabilities were dropped


def test_item_bias_adds_a_learned_score_per_item(tiny):
    """`item_bias`: scores = h . e_i + c_i, c starts at zero (so the scores equal the plain
    model's) and is a trained parameter of both models; off, the model has no such parameter."""
    history = torch.tensor([[0, 3, 5, 7, 2, 9]])
    for model_name in ("sasrec", "gru"):
        torch.manual_seed(0)
        plain = build_model(30, 50, load_config(tiny, {"model": model_name}).model).eval()
        torch.manual_seed(0)
        biased = build_model(30, 50, load_config(tiny, {"model": model_name,
                                                        "item_bias": True}).model)
        biased.eval()
        assert plain.item_bias is None
        assert not any("item_bias" in name for name, _ in plain.named_parameters())
        hidden = biased(history)[:, -1]
        assert torch.equal(biased.logits(hidden), plain.logits(plain(history)[:, -1]))
        with torch.no_grad():
            biased.item_bias[4] = 2.5
        shift = biased.logits(hidden) - plain.logits(hidden)
        assert shift[0, 4] == 2.5 and bool((shift[0, 1:4] == 0).all())
        assert biased.logits(hidden)[0, 0] == -math.inf  # padding is never recommended
        assert any(p is biased.item_bias for p in biased.parameters())


def test_label_smoothing_is_torch_cross_entropy_on_the_real_items():
    """L_main with eps: torch's label-smoothed cross-entropy over items 1..n (the padding
    column takes no mass); eps = 0 is the plain cross-entropy, bit for bit."""
    from lossbench.training.losses import next_item_ce
    from lossbench.training.models import score_items

    generator = torch.Generator().manual_seed(0)
    logits = score_items(torch.randn(7, 4, generator=generator),
                         torch.randn(12, 4, generator=generator))
    targets = torch.randint(1, 12, (7,), generator=generator)
    smoothed = next_item_ce(logits, targets, 0.2)
    log_probs = torch.log_softmax(logits[:, 1:], dim=1)  # the formula, written out
    expected = (0.8 * -log_probs.gather(1, targets[:, None] - 1).squeeze(1)
                - 0.2 * log_probs.mean(1))
    torch.testing.assert_close(smoothed.per_example, expected)
    torch.testing.assert_close(smoothed.mean, expected.mean())
    plain = next_item_ce(logits, targets)
    assert torch.equal(plain.mean, F.cross_entropy(logits, targets))
    assert torch.equal(next_item_ce(logits, targets, 0.0).per_example, plain.per_example)
    assert bool((smoothed.per_example != plain.per_example).all())


def test_label_smoothing_reaches_the_training_loss(tiny, tmp_path):
    """`label_smoothing` (API keyword, like --set) changes L_main from the first step on: same
    data, weights and batches, another training loss; the config records it."""
    runs = {eps: api.run(config=tiny, aux="none", epochs=1, label_smoothing=eps,
                         out=tmp_path / str(eps)).runs[0] for eps in (0.0, 0.3)}
    main = {eps: float(read_csv(run.dir / "metrics.csv")[0]["train_main_loss"])
            for eps, run in runs.items()}
    assert runs[0.3].summary["status"] == "complete"
    assert json.loads((runs[0.3].dir / "config.json").read_text())["label_smoothing"] == 0.3
    assert main[0.3] > main[0.0]  # the smoothed targets are harder to fit than one-hot


def test_metrics_csv_follows_the_rows_it_is_given(tmp_path):
    """The recorder renders each row once; what it writes must still be exactly the rows of
    the latest call, also when a resumed run hands it fewer rows than before."""
    from lossbench.results.folders import RunRecorder, read_metrics

    rows = [{c: float(i) + 0.125 for c in COLUMNS} | {"epoch": i} for i in range(1, 6)]
    recorder = RunRecorder(tmp_path)
    recorder.start({"seed": 0})
    for n in (1, 2, 5, 2, 3):
        recorder.epoch(rows[:n])
        assert read_metrics(tmp_path / "metrics.csv") == rows[:n]


def test_flood_that_never_acts_says_so_in_one_line(runner, tiny, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tiny), "--strategy", "flood",
                                 "--b", "0.1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (folder,) = run_folders(tmp_path)
    rows = read_csv(folder / "metrics.csv")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["flood_acted"] is False and summary["flood_from_start"] is False
    lowest = min(float(r["train_loss"]) for r in rows)
    assert summary["lowest_train_loss"] == lowest
    at_best = float(rows[summary["best_epoch"] - 1]["train_loss"])
    line = next(x for x in result.stdout.splitlines() if "never acted" in x)
    assert line.startswith(f"flood b=0.1 never acted: the training loss stayed above b "
                           f"(lowest {lowest:.3g}); this run equals plain.")
    assert f"(≈ {0.9 * at_best:.3g} here) or run lossbench sweep-b" in line


def test_flood_above_the_loss_from_the_start_says_so(runner, tiny, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tiny), "-s", "plain", "-s", "flood",
                                 "--b", "50", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(next(tmp_path.glob("*/*__flood__*/summary.json")).read_text())
    assert summary["flood_acted"] is True and summary["flood_from_start"] is True
    (line,) = [x for x in result.stdout.splitlines() if "acted from the first epoch" in x]
    assert line.startswith("flood b=50 acted from the first epoch")
    plain = json.loads(next(tmp_path.glob("*/*__plain__*/summary.json")).read_text())
    rows = read_csv(next(tmp_path.glob("*/*__plain__*/metrics.csv")))
    level = float(rows[plain["best_epoch"] - 1]["train_loss"])
    assert f"(≈ {0.9 * level:.3g} here)" in line
    assert plain["flood_acted"] is None  # plain does not flood


def test_flood_that_acts_normally_prints_no_advice(runner, tiny, tmp_path):
    first = runner.invoke(app, ["run", "--config", str(tiny), "--out", str(tmp_path)])
    rows = read_csv(run_folders(tmp_path)[0] / "metrics.csv")
    b = (float(rows[0]["train_loss"]) + float(rows[-1]["train_loss"])) / 2  # crossed mid-run
    result = runner.invoke(app, ["run", "--config", str(tiny), "--strategy", "flood", "--b",
                                 f"{b:.4f}", "--out", str(tmp_path)])
    assert first.exit_code == 0 and result.exit_code == 0, result.output
    assert "never acted" not in result.stdout and "first epoch" not in result.stdout


def test_one_torch_thread_per_run_whatever_the_core_count(tiny, tmp_path, monkeypatch):
    """CPU results must not depend on the machine: the default is one thread per run, so
    the numbers are the same on 2 and on 64 cores."""
    import lossbench.runner.workers as workers
    from lossbench.events import Events

    threads = []

    class Spy(Events):
        def epoch_done(self, cfg, row):
            threads.append(torch.get_num_threads())

    monkeypatch.setattr(workers.os, "cpu_count", lambda: 64)
    assert workers.resolve_jobs("auto", 3) == 3 and workers.resolve_jobs("auto", 200) == 64
    api.run(config=tiny, out=tmp_path, events=Spy())
    assert threads == [1, 1, 1]


def test_restart_starts_an_unfinished_run_afresh(tiny, tmp_path):
    class StopAfterTwo(Events):
        def __init__(self):
            self.epochs = []

        def epoch_done(self, cfg, row):
            self.epochs.append(row["epoch"])
            if row["epoch"] == 2 and len(self.epochs) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.run(config=tiny, out=tmp_path, events=StopAfterTwo())
    (folder,) = run_folders(tmp_path)
    assert (folder / "checkpoint.pkl").exists()
    resumed = StopAfterTwo()
    resumed.epochs = [0, 0]  # do not stop again
    api.run(config=tiny, out=tmp_path, events=resumed)
    assert resumed.epochs[2:] == [2, 3]  # the restored epoch 2, then epoch 3
    (folder / "summary.json").unlink()  # make it unfinished again, with a checkpoint
    (folder / "checkpoint.pkl").write_bytes(b"not a checkpoint")
    fresh = StopAfterTwo()
    fresh.epochs = [0, 0]
    api.run(config=tiny, out=tmp_path, events=fresh, restart=True)
    assert fresh.epochs[2:] == [1, 2, 3]


@pytest.fixture
def used_lrs(monkeypatch) -> list[float]:
    """The learning rate of every SGD step taken while the test runs, in order."""
    used = []
    step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    return used


def test_cosine_schedule_trains_each_epoch_at_its_rate(tiny, tmp_path, used_lrs):
    """`lr_schedule = cosine`: every step of epoch e uses lr * (1 + cos(pi (e-1)/epochs)) / 2;
    the default keeps lr."""
    assert epoch_lr(0.4, "constant", 3, 4) == 0.4
    assert [epoch_lr(0.4, "cosine", e, 4) for e in (1, 3)] == [0.4, pytest.approx(0.2)]
    rates = [epoch_lr(0.4, "cosine", e, 4) for e in (1, 2, 3, 4)]
    assert rates == sorted(rates, reverse=True) and rates[-1] > 0
    api.run(config=tiny, out=tmp_path, lr_schedule="cosine", lr=0.4)
    steps = len(used_lrs) // 3  # tiny: 3 epochs, the same steps each
    assert used_lrs == [epoch_lr(0.4, "cosine", e, 3) for e in (1, 2, 3) for _ in range(steps)]
    used_lrs.clear()
    api.run(config=tiny, out=tmp_path, lr=0.4, epochs=1)
    assert set(used_lrs) == {0.4}


def test_warmup_climbs_linearly_over_its_epochs_then_follows_the_schedule(tiny, tmp_path,
                                                                          used_lrs):
    """`lr_warmup = W`: step k of the run trains at the epoch's rate times min(1, k / (W *
    steps per epoch)) -- a straight line from lr / (W * steps) to lr, then the schedule."""
    assert [warmup_factor(k, 4) for k in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0]
    assert warmup_factor(1, 0) == 1.0
    api.run(config=tiny, out=tmp_path, lr=0.4, lr_warmup=2)
    n = len(used_lrs) // 3  # tiny: 3 epochs, the same steps each
    assert n > 1
    assert used_lrs[:2 * n] == [pytest.approx(0.4 * k / (2 * n)) for k in range(1, 2 * n + 1)]
    assert used_lrs[2 * n:] == [0.4] * n
    used_lrs.clear()
    api.run(config=tiny, out=tmp_path, lr=0.4, lr_warmup=1, lr_schedule="cosine")
    cosine = [epoch_lr(0.4, "cosine", e, 3) for e in (1, 2, 3) for _ in range(n)]
    assert used_lrs == [pytest.approx(c * min(1.0, k / n)) for k, c in enumerate(cosine, 1)]


def test_every_imported_package_is_declared():
    """pyproject.toml declares every third-party package that lossbench imports (the
    optional ones in an extra: ray, mlflow, tensorboard)."""
    import ast
    import sys
    import tomllib

    root = Path(__file__).parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"],
                    *(d for extra in project.get("optional-dependencies", {}).values()
                      for d in extra)]
    declared = {dep.split(">")[0].split("=")[0].split("[")[0].strip().lower()
                for dep in requirements}
    imported = set()
    for path in (root / "lossbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"lossbench", "__future__"}
    distribution = {"sklearn": "scikit-learn"}
    missing = {distribution.get(m, m) for m in third_party} - declared
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
