"""verdict.py and verdict_tables.py: the verdict of a tune folder from hand-built tune.json
dicts (no training). Four arms, 3 trials each, 6 final seeds, numbers chosen so that the
verdicts are known: plain beats main-only on every seed (the auxiliary loss helps), weighted
beats plain on every seed, reweight-flood equals plain up to noise and has one diverged final
seed scored at chance (not measurable)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from rich.console import Console

from lossbench.errors import DataError
from lossbench.results import verdict, verdict_tables
from lossbench.results.folders import write_json
from lossbench.results.stats import holm, minimal_detectable_effect

SEEDS = [10000, 10001, 10002, 10003, 10004, 10005]
CHANCE = {"n_items": 150, "test_loss": 5.01, "test_acc": 0.0067, "test_hr10": 0.067,
          "test_ndcg10": 0.029, "val_loss": 5.01}
PLAIN = np.array([4.50, 4.52, 4.48, 4.55, 4.51, 4.49])
SHIFT = {"main-only": np.array([0.20, 0.22, 0.19, 0.25, 0.21, 0.18]),  # worse on every seed
         "plain": np.zeros(6),
         "weighted": -np.array([0.05, 0.06, 0.04, 0.05, 0.07, 0.05]),   # better on every seed
         "reweight-flood": np.array([0.010, -0.012, 0.008, 0.0, 0.003, -0.009])}  # noise
SPACES = {"main-only": ["lr"], "plain": ["lr"], "weighted": ["lr", "w"],
          "reweight-flood": ["lr", "b", "detach_theta"]}
PARAM = {"lr": {"kind": "setting", "type": "float", "low": 0.05, "high": 1.0, "log": True,
                "choices": None, "relative_to": 0.5, "range_text": "0.1x..2x of 0.5 (log)"},
         "w": {"kind": "parameter", "type": "float", "low": 0.0, "high": 1.0, "log": False,
               "choices": None, "relative_to": None, "range_text": "0..1"},
         "b": {"kind": "flood level", "type": "float", "low": 4.4, "high": 9.7, "log": False,
               "choices": None, "relative_to": 8.8, "range_text": "0.5x..1.1x of 8.8"},
         "detach_theta": {"kind": "parameter", "type": "bool", "low": None, "high": None,
                          "log": False, "choices": [False, True], "relative_to": None,
                          "range_text": "false, true"}}
TRIAL_PARAMS = [{"lr": 0.23, "w": 0.4, "b": 8.1, "detach_theta": False},
                {"lr": 0.31, "w": 0.7, "b": 8.4, "detach_theta": True},
                {"lr": 0.9, "w": 0.1, "b": 5.0, "detach_theta": True}]


def make_arm(label: str, diverged_seed: int | None = None) -> dict:
    """One arm of the contract: 3 trials (the second the best; weighted's third diverged on
    both tuning seeds), its final runs on SEEDS, test_loss = PLAIN + SHIFT[label], the other
    metrics following it; a diverged seed holds the chance values."""
    space = SPACES[label]
    loss = PLAIN + SHIFT[label]
    per_seed = {"test_loss": loss, "val_loss": loss - 0.1, "test_acc": 0.5 - 0.1 * loss,
                "test_hr10": 0.9 - 0.1 * loss, "test_ndcg10": 0.7 - 0.1 * loss}
    per_seed = {m: [float(v) for v in values] for m, values in per_seed.items()}
    if diverged_seed is not None:
        for m in per_seed:
            per_seed[m][SEEDS.index(diverged_seed)] = CHANCE[m]
    trials = []
    for number, params in enumerate(TRIAL_PARAMS):
        score = [4.6, 4.4, 4.7][number] + SHIFT[label].mean()
        broken = label == "weighted" and number == 2
        trials.append({"number": number, "params": {k: params[k] for k in space},
                       "score": None if broken else score,
                       "per_seed": {"0": 5.01 if broken else score - 0.01,
                                    "1": 5.01 if broken else score + 0.01},
                       "diverged": [0, 1] if broken else [],
                       "runs": [f"synthetic__{label}__s{s}__{number}" for s in (0, 1)]})
    return {"arm": label, "strategy": "plain" if label == "main-only" else label,
            "role": "baseline" if label != "reweight-flood" else "compared",
            "fixed": {"aux": "none"} if label == "main-only" else {},
            "space": [{"name": k, **PARAM[k]} for k in space],
            "trials": trials,
            "chosen": {"trial": 1, "params": trials[1]["params"], "score": trials[1]["score"],
                       "why": "trial 1 has the lowest mean val_loss over the 2 tuning seeds"},
            "final": {"seeds": list(SEEDS), "runs": [f"final__{label}__s{s}" for s in SEEDS],
                      "diverged": [] if diverged_seed is None else [diverged_seed],
                      "per_seed": per_seed},
            "budget": {"trials": 3, "runs": 6, "epochs": 600, "cpu_seconds": 81.25,
                       "gpu_seconds": 0.0, "reference_runs": 2 if "flood" in label else 0}}


def make_tune(labels: tuple[str, ...] = ("main-only", "plain", "weighted",
                                         "reweight-flood")) -> dict:
    """A tune.json dict of the contract (notes/tune_json_spec.md) over the given arms;
    reweight-flood's final seed 10003 diverged."""
    return {"kind": "tune", "lossbench": "0.1.0", "created": "2026-12-07T01:00:00+0000",
            "select": "val_loss", "verdict_metric": "test_loss", "lower_is_better": True,
            "metrics": ["test_loss", "test_acc", "test_hr10", "test_ndcg10"],
            "tuning_seeds": [0, 1], "final_seeds": list(SEEDS), "trials": 3,
            "sampler": {"name": "tpe", "seed": 0}, "tuned_settings": ["lr"],
            "chance": CHANCE, "storage": "journal.log",
            "arms": [make_arm(a, 10003 if a == "reweight-flood" else None) for a in labels]}


@pytest.fixture(scope="module")
def summary() -> dict:
    return verdict.summarize_tune(make_tune())


def by_label(entries: list[dict]) -> dict[str, dict]:
    return {e["label"]: e for e in entries}


def test_the_sentences_say_the_known_verdicts(summary):
    sentences = summary["sentences"]
    assert sentences[0].startswith("the auxiliary loss helps: tuned plain beats tuned "
                                   "main-only on test_loss (test_loss: main-only − plain = "
                                   "+0.208 ± 0.0261, Holm t-test p = ")
    assert sentences[1].startswith("weighted beats tuned plain: yes (test_loss: weighted − "
                                   "plain = -0.0533 ± ")
    assert sentences[2].startswith("reweight-flood beats tuned plain: not measurable with 6 "
                                   "seeds: the smallest difference 6 paired seeds can detect "
                                   "here is ")
    d = by_label(summary["paired"]["plain"])["reweight-flood"]["metrics"]["test_loss"]
    assert f"is {d['mde']:.3g}; the measured difference is {d['mean']:+.3g} ± " in sentences[2]
    assert sentences[3].startswith("reweight-flood beats tuned weighted: ")
    assert len(sentences) == 5  # no sentence of main-only or plain against weighted
    assert sentences[4] == (
        "equal budget: every arm had 3 trials (tpe sampler, seed 0) on 2 tuning seeds (0, 1), "
        "scored by val_loss; test metrics come only from the 6 final seeds (10000–10005), "
        "never used to choose a setting")


def test_the_auxiliary_loss_hurts_and_a_worse_arm_says_no():
    tune = make_tune(("main-only", "plain", "weighted"))
    main, weighted = tune["arms"][0]["final"]["per_seed"], tune["arms"][2]["final"]["per_seed"]
    main["test_loss"] = list(PLAIN - SHIFT["main-only"])  # main-only better: the aux hurts
    weighted["test_loss"] = list(PLAIN + 0.1 + SHIFT["reweight-flood"])  # worse on every seed
    sentences = verdict.summarize_tune(tune)["sentences"]
    assert sentences[0].startswith("the auxiliary loss hurts: tuned main-only beats tuned "
                                   "plain on test_loss")
    assert sentences[1].startswith("weighted beats tuned plain: no (worse) (test_loss: "
                                   "weighted − plain = +0.1 ± ")
    same = make_tune(("main-only", "plain"))
    same["arms"][0]["final"]["per_seed"]["test_loss"] = list(
        PLAIN + SHIFT["reweight-flood"])
    assert verdict.summarize_tune(same)["sentences"][0].startswith(
        "the auxiliary loss makes no measurable difference with 6 seeds (differences smaller "
        "than ")


def test_higher_is_better_metrics_turn_the_direction():
    """On test_ndcg10 (0.7 - 0.1 x loss) weighted is higher than plain: it still beats it."""
    tune = {**make_tune(("plain", "weighted")), "verdict_metric": "test_ndcg10",
            "select": "val_ndcg10"}
    summary = verdict.summarize_tune(tune)
    assert summary["sentences"][0].startswith("weighted beats tuned plain: yes (test_ndcg10: "
                                              "weighted − plain = +0.00533")
    d = summary["paired"]["plain"][0]["metrics"]["test_ndcg10"]
    assert d["p_improve"] == 1.0 and not summary["facts"]["lower_is_better"]
    assert verdict.lower_is_better("test_loss") and not verdict.lower_is_better("test_hr10")


def test_diverged_final_seed_is_counted_at_chance(summary):
    from scipy import stats  # slow to import: here, not when every worker collects

    arms = by_label(summary["arms"])
    flood = arms["reweight-flood"]
    assert (flood["failed"], flood["n_seeds"], flood["diverged_seeds"]) == (1, 6, [10003])
    loss = PLAIN + SHIFT["reweight-flood"]
    loss[3] = CHANCE["test_loss"]
    stat = flood["metrics"]["test_loss"]
    assert stat["n"] == 6 and stat["mean"] == pytest.approx(loss.mean())
    assert stat["per_seed"][3] == CHANCE["test_loss"]
    assert stat["iqm"] == pytest.approx(stats.trim_mean(loss, 0.25))
    assert stat["iqm_lo"] <= stat["iqm"] <= stat["iqm_hi"]
    assert any("1 of 6 final runs diverged (seed 10003)" in n for n in summary["notes"])
    assert any("weighted: 1 of 3 tuning trials had a diverged run" in n
               for n in summary["notes"])
    (table,) = [s for s in verdict_tables.verdict_specs(summary) if s[0].startswith("chosen")]
    assert [row[-1] for row in table[2]] == ["0/6", "0/6", "0/6", "1/6"]
    assert [row[1] for row in table[2]] == ["lr=0.31", "lr=0.31", "lr=0.31 w=0.7",
                                            "lr=0.31 b=8.4 detach_theta=true"]


def test_paired_statistics_recomputed_by_hand(summary):
    from scipy import stats  # slow to import: here, not when every worker collects

    plain = by_label(summary["paired"]["plain"])
    assert list(plain) == ["main-only", "weighted", "reweight-flood"]
    assert list(summary["paired"]) == ["plain", "weighted"]
    assert list(by_label(summary["paired"]["weighted"])) == ["main-only", "plain",
                                                             "reweight-flood"]
    arms = {a["arm"]: np.array(a["final"]["per_seed"]["test_loss"])
            for a in make_tune()["arms"]}
    raw = [stats.ttest_rel(arms[a], arms["plain"]).pvalue for a in plain]
    adjusted = holm(raw)
    for (label, e), p, p_holm in zip(plain.items(), raw, adjusted, strict=True):
        d = e["metrics"]["test_loss"]
        diffs = arms[label] - arms["plain"]
        assert d["diffs"] == pytest.approx(diffs.tolist())
        assert d["t_p"] == pytest.approx(p) and d["t_p_holm"] == pytest.approx(p_holm)
        assert d["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
        assert d["mde"] == pytest.approx(minimal_detectable_effect(diffs.std(ddof=1), 6))
        wins = np.mean((diffs < 0) + 0.5 * (diffs == 0))
        assert d["p_improve"] == pytest.approx(wins)
    assert plain["main-only"]["metrics"]["test_loss"]["p_improve"] == 0.0
    assert plain["weighted"]["metrics"]["test_loss"]["p_improve"] == 1.0
    assert plain["weighted"]["metrics"]["test_loss"]["p_improve_lo"] == 1.0
    assert plain["weighted"]["metrics"]["test_acc"]["p_improve"] == 1.0  # higher is better


def test_summary_is_strict_json_and_heads_a_report(summary):
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    facts = summary["facts"]
    assert facts["select"] == "val_loss" and facts["verdict_metric"] == "test_loss"
    assert facts["trials"] == 3 and facts["tuning_seeds"] == [0, 1]
    assert facts["sampler"] == {"name": "tpe", "seed": 0} and facts["tuned_settings"] == ["lr"]
    arm = by_label(summary["arms"])["weighted"]
    assert arm["params"] == {"lr": 0.31, "w": 0.7}
    assert arm["score"] == pytest.approx(4.4 + SHIFT["weighted"].mean())  # trial 1's
    assert arm["role"] == "baseline" and arm["strategy"] == "weighted"
    assert summary["budget"][3] == {"arm": "reweight-flood", "trials": 3, "runs": 6,
                                    "epochs": 600, "cpu_seconds": 81.25, "gpu_seconds": 0.0,
                                    "reference_runs": 2}


def test_one_final_seed_gives_none_not_nan():
    tune = make_tune(("plain", "weighted"))
    tune["final_seeds"] = SEEDS[:1]
    for arm in tune["arms"]:
        arm["final"]["seeds"] = SEEDS[:1]
        arm["final"]["per_seed"] = {m: v[:1] for m, v in arm["final"]["per_seed"].items()}
    summary = verdict.summarize_tune(tune)
    json.dumps(summary, allow_nan=False)
    d = summary["paired"]["plain"][0]["metrics"]["test_loss"]
    assert d["t_p"] is None and d["mde"] is None and d["p_improve_lo"] is None
    assert summary["sentences"][0] == ("weighted beats tuned plain: not measurable with 1 "
                                       "seed: too few seeds for a test (n = 1; need >= 2)")
    verdict_tables.verdict_markdown(summary)  # renders with the gaps


def test_tables_and_files(summary, tmp_path):
    tables = verdict_tables.verdict_tables(summary)
    titles = [t.title for t in tables]
    assert titles[0].startswith("chosen settings")
    assert titles[1].startswith("paired against tuned plain")
    assert titles[2].startswith("paired against tuned weighted")
    assert titles[3].startswith("budget")
    assert len(verdict_tables.verdict_tables(summary, full=True)) == 8
    console = Console(width=100, record=True)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert "1/6" in text and "lr=0.31 w=0.7" in text
    paths = verdict_tables.write_verdict(summary, tmp_path)
    assert [p.name for p in paths] == ["report.json", "report.md"]
    assert json.loads(paths[0].read_text()) == summary
    md = paths[1].read_text()
    assert md.startswith("# lossbench tune: verdict\n\ntuned on val_loss (lower is better) · "
                         "3 trials per arm · tpe sampler, seed 0 · tuning seeds 0, 1 · final "
                         "seeds 10000–10005 · tuned: lr · verdict on test_loss.")
    assert "\n- the auxiliary loss helps: " in md
    assert "## paired against tuned plain" in md and "## budget" in md
    assert not list(tmp_path.glob(".*"))


def test_arms_without_plain_or_weighted_have_no_paired_section():
    tune = make_tune(("main-only", "reweight-flood"))
    tune["arms"][1]["arm"] = "mine"
    summary = verdict.summarize_tune(tune)
    assert summary["paired"] == {}
    assert len(summary["sentences"]) == 1 and summary["sentences"][0].startswith(
        "equal budget")
    titles = [t.title for t in verdict_tables.verdict_tables(summary)]
    assert len(titles) == 2 and not any(t.startswith("paired") for t in titles)
    verdict_tables.verdict_markdown(summary)


def test_unequal_budget_is_said():
    tune = make_tune(("plain", "weighted"))
    tune["arms"][1]["budget"]["trials"] = 2
    assert verdict.summarize_tune(tune)["sentences"][-1].startswith(
        "unequal budget: trials per arm differ (plain 3, weighted 2; ")


def test_load_tune(tmp_path):
    assert verdict.load_tune(tmp_path) is None
    write_json(tmp_path / "tune.json", make_tune())
    assert verdict.load_tune(tmp_path) == json.loads(json.dumps(make_tune()))
    assert verdict.load_tune(tmp_path / "tune.json")["trials"] == 3
    (tmp_path / "tune.json").write_text("{ not json")
    with pytest.raises(DataError, match="cannot read .*tune.json"):
        verdict.load_tune(tmp_path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.pop("arms"), "lacks arms"),
    (lambda t: t.pop("verdict_metric"), "lacks verdict_metric"),
    (lambda t: t["arms"][1].pop("chosen"), "arm plain lacks chosen"),
    (lambda t: t["arms"][0]["final"].pop("per_seed"), "arm main-only lacks final.per_seed"),
    (lambda t: t["arms"][2]["final"]["per_seed"].pop("test_hr10"),
     "arm weighted: final.per_seed.test_hr10 is not a list of 6 values"),
    (lambda t: t.update(arms=[]), "'arms' is not a non-empty list"),
    (lambda t: t["arms"][3].update(final=[]), "arm reweight-flood lacks final.seeds"),
    (lambda t: t["arms"][3].update(trials={}), "arm reweight-flood: 'trials' is not a list"),
    (lambda t: t.update(kind="sweep"), "kind is 'sweep'"),
])
def test_missing_keys_are_a_data_error(tmp_path, change, message):
    tune = copy.deepcopy(make_tune())
    change(tune)
    with pytest.raises(DataError, match=message):
        verdict.summarize_tune(tune)
    write_json(tmp_path / "tune.json", tune)
    with pytest.raises(DataError, match=f"{tmp_path}.*tune.json is not a valid tune.json: "):
        verdict.load_tune(tmp_path)
