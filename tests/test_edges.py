"""The edges, as a new user and a hostile user would meet them (issue 15): every bad input a clear error or the
right behaviour, secrets only where they belong, nothing lost and nothing duplicated.

Each section replays one class of the issue's probes; all of it is fast (no model training, loopback only).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from valueflow.io import ConfigError, InputError

KEY = "sk-test-secret-0123456789"


def anchor_table(seed_dir: Path, path: Path, value: str = "benevolence") -> Path:
    """An anchor panel table (text, value, intensity) from the seed corpus' reference intensities."""
    import pandas as pd

    seed = pd.read_csv(seed_dir / "pvq.csv")
    rows = seed[(seed["value"] == value) & seed["reference_intensity"].notna()]
    rows.rename(columns={"reference_intensity": "intensity"})[["text", "value", "intensity"]].to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------------------------------------------
# secrets: a key goes only to the endpoint it is configured for


class HeaderRecorder:
    """A loopback OpenAI-compatible server that records every request's Authorization header."""

    def __init__(self) -> None:
        self.auth: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                recorder.auth.append(self.headers.get("Authorization"))
                prompt = body["messages"][-1]["content"]
                found = re.search(r"Below are (\d+) texts", prompt)
                content = "[" + ", ".join(str(i + 1) for i in range(int(found.group(1)))) + "]" if found else "ok"
                data = json.dumps({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def recorder():
    r = HeaderRecorder()
    yield r
    r.close()


def _rank(judge) -> None:
    answers = judge.rank_windows("benevolence", [["She helped.", "He hurt them.", "A chair."]])
    assert answers[0].order is not None


def test_the_openai_key_is_not_sent_to_an_arbitrary_host(recorder, tmp_path, monkeypatch):
    from valueflow.judges import make_judge

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    _rank(make_judge(f"chat:m@{recorder.url}", cache_dir=tmp_path / "cache"))
    assert recorder.auth == [None]


def test_a_key_goes_to_the_endpoint_configured_for_it_and_into_no_file(recorder, tmp_path, monkeypatch):
    from valueflow.judges import make_judge

    monkeypatch.setenv("MY_SERVER_KEY", KEY)
    _rank(make_judge(f"chat:m@{recorder.url}", cache_dir=tmp_path / "cache", api_key_env="MY_SERVER_KEY"))
    assert recorder.auth == [f"Bearer {KEY}"]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(KEY in p.read_text(errors="replace") for p in written)


def test_a_key_is_refused_over_plain_http_to_a_remote_host_unless_allowed(monkeypatch, tmp_path):
    from evaluation.backends import OpenAIBackend
    from valueflow.judges import make_judge

    monkeypatch.setenv("MY_SERVER_KEY", KEY)
    with pytest.raises(ConfigError, match=r"refusing to send \$MY_SERVER_KEY over plain http to gpu-box.example"):
        make_judge("chat:m@http://gpu-box.example:8000/v1", api_key_env="MY_SERVER_KEY", cache_dir=None)
    with pytest.raises(ConfigError, match="plain http"):
        OpenAIBackend(model="m", base_url="http://gpu-box.example:8000/v1", api_key_env="MY_SERVER_KEY")
    # explicitly allowed, or https, or without a key: fine (nothing is sent here)
    make_judge("chat:m@http://gpu-box.example:8000/v1", api_key_env="MY_SERVER_KEY", allow_insecure_http=True, cache_dir=None)
    make_judge("chat:m@https://gpu-box.example/v1", api_key_env="MY_SERVER_KEY", cache_dir=None)
    OpenAIBackend(model="m", base_url="http://gpu-box.example:8000/v1")


def test_the_steering_backend_sends_no_implicit_key(recorder, monkeypatch):
    from evaluation.backends import GenerationRequest, OpenAIBackend

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("STEER_KEY", "sk-steer")
    got = []
    req = GenerationRequest(response_id="r1", messages=({"role": "user", "content": "hi"},), query_id="q1")
    OpenAIBackend(model="m", base_url=recorder.url, max_retries=0).generate([req], got.append)
    OpenAIBackend(model="m", base_url=recorder.url, max_retries=0, api_key_env="STEER_KEY").generate([req], got.append)
    assert [g.error for g in got] == [None, None]
    assert recorder.auth == [None, "Bearer sk-steer"]


def test_cli_evaluate_with_a_chat_judge_leaks_no_key(recorder, tmp_path, monkeypatch, seed_dir):
    from typer.testing import CliRunner

    from valueflow.cli import app

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("text\nShe shared her lunch with a stranger.\n")
    anchor_table(seed_dir, tmp_path / "anchors.csv")
    res = CliRunner().invoke(app, ["evaluate", "t.csv", "-v", "benevolence", "--judge", f"chat:m@{recorder.url}",
                                   "--vidb", "anchors.csv", "--out", "s.parquet", "--log", "calls.jsonl"])
    assert res.exit_code == 0, res.output
    assert recorder.auth and set(recorder.auth) == {None}
    assert KEY not in res.output and KEY not in (tmp_path / "calls.jsonl").read_text()


# --------------------------------------------------------------------------------------------------------------
# ad-hoc runs never overwrite the pipeline's records


def _seed_project(tmp_path: Path, seed_dir: Path) -> Path:
    import shutil

    shutil.copytree(seed_dir, tmp_path / "data" / "seed" / "texts")
    for name in ("metrics/ingest.json", "metrics/collect.json", "data/rejected/ingest.parquet", "data/rejected/collect.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("PIPELINE")
    return tmp_path


def test_ad_hoc_runs_keep_their_records_beside_their_output(tmp_path, seed_dir):
    from builders.collect import CollectConfig, collect
    from builders.ingest import IngestConfig, ingest

    root = _seed_project(tmp_path, seed_dir)
    out = Path("elsewhere/texts.parquet")
    ingest(IngestConfig(sources=["seed"], out=out, root=root))
    collect(CollectConfig(texts=out, out=Path("elsewhere/rankings.parquet"), judges=["reference"], k=3, m=2,
                          values=["benevolence"], store=Path("elsewhere/store"), root=root))
    for name in ("metrics/ingest.json", "metrics/collect.json", "data/rejected/ingest.parquet", "data/rejected/collect.parquet"):
        assert (root / name).read_text() == "PIPELINE", name
    assert json.loads((root / "elsewhere/texts.parquet.metrics.json").read_text())["texts"] > 0
    assert json.loads((root / "elsewhere/rankings.parquet.metrics.json").read_text())["k"] == 3
    assert (root / "elsewhere/texts.parquet.rejected.parquet").exists()
    assert (root / "elsewhere/rankings.parquet.rejected.parquet").exists()
    # the pipeline's own run still writes the pipeline's records
    ingest(IngestConfig(sources=["seed"], root=root))
    assert json.loads((root / "metrics/ingest.json").read_text())["texts"] > 0


# --------------------------------------------------------------------------------------------------------------
# incremental collection: a grown corpus asks only windows that involve new texts


@pytest.fixture(scope="module")
def seed_texts(tmp_path_factory, seed_dir):
    from builders.ingest import IngestConfig, ingest

    texts, _ = ingest(IngestConfig(sources=["seed"], seed_dir=seed_dir, root=tmp_path_factory.mktemp("ingest")))
    return texts


class CountingJudge:
    """Orders by text length and counts the windows it is asked."""

    name = "counting:length@1"
    transport_options = frozenset()

    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []

    def answer_settings(self) -> dict:
        return {}

    def rank_windows(self, value, windows):
        import numpy as np

        from valueflow.judges import JudgeAnswer

        self.asked += [tuple(w) for w in windows]
        return [JudgeAnswer(tuple(int(i) for i in np.argsort([-len(t) for t in w], kind="stable"))) for w in windows]


def test_growing_a_value_keeps_every_answer_and_asks_only_windows_with_new_texts(tmp_path, seed_texts):
    from builders.collect import CollectConfig, collect

    texts = seed_texts[seed_texts["value"] == "benevolence"].reset_index(drop=True)
    (tmp_path / "data").mkdir()
    texts.iloc[:-3].to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    cfg = CollectConfig(judges=[], k=4, m=3, root=tmp_path)
    first, _ = collect(cfg, judges=[CountingJudge()])
    texts.to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    judge = CountingJudge()
    grown, _ = collect(cfg, judges=[judge])
    text_of = dict(zip(texts["text_id"], texts["text"]))
    new = {text_of[i] for i in texts["text_id"].iloc[-3:]}
    assert set(first["ranking_id"]) <= set(grown["ranking_id"])  # every answered window still counts
    assert judge.asked and all(new & set(w) and set(w) - new for w in judge.asked)  # new texts beside earlier ones
    assert len(judge.asked) <= -(-3 * 3 // 3) + 1  # about 3 new texts x m / (k - 1) windows, not a full collection
    appearances = pd.Series([i for w in grown["window"] for i in w]).value_counts()
    assert appearances.reindex(texts["text_id"]).min() >= 3
    assert not grown["ranking_id"].duplicated().any()
    # a third run asks nothing
    again = CountingJudge()
    collect(cfg, judges=[again])
    assert again.asked == []


def test_the_resumption_key_covers_every_setting_that_changes_an_answer(tmp_path, seed_texts, recorder):
    from builders.collect import CollectConfig, collect

    texts = seed_texts[seed_texts["value"] == "benevolence"].head(8)
    (tmp_path / "data").mkdir()
    texts.to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    spec = f"chat:m@{recorder.url}"

    def run(**options) -> int:
        before = len(recorder.auth)
        cfg = CollectConfig(judges=[spec], judge_options={spec: {"cache_dir": None, "concurrency": 1, **options}},
                            k=4, m=2, root=tmp_path)
        collect(cfg)
        return len(recorder.auth) - before

    asked = run()
    assert asked > 0
    assert run(timeout=7.0, max_retries=1) == 0  # transport settings: nothing asked again
    assert run(temperature=0.7) == asked  # another temperature: other answers
    assert run(seed=3) == asked


# --------------------------------------------------------------------------------------------------------------
# ties: equal labels are never ordered, so they add no spread


class CoinFlipReference:
    """The reference judge as it was: ties broken by a (seeded) coin flip, the baseline for the spread test."""

    name = "reference:coinflip@1"
    transport_options = frozenset()

    def __init__(self, labels) -> None:
        self.labels = labels

    def answer_settings(self) -> dict:
        return {}

    def rank_windows(self, value, windows):
        import numpy as np

        from valueflow.io import seeded_rng
        from valueflow.judges import JudgeAnswer

        out = []
        for w in windows:
            order = np.lexsort((seeded_rng(value, *w).random(len(w)), -np.array([self.labels[(value, t)] for t in w])))
            out.append(JudgeAnswer(tuple(int(i) for i in order)))
        return out


def _spread(tmp_path: Path, texts: pd.DataFrame, judge) -> tuple[float, pd.DataFrame, dict]:
    from builders.aggregate import AggregateConfig, aggregate
    from builders.collect import CollectConfig, build_judges, collect

    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    texts.to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    cfg = CollectConfig(judges=["reference"], k=4, m=6, root=tmp_path)
    judges = build_judges(cfg, texts) if judge is None else [judge]
    rankings, metrics = collect(cfg, judges=judges)
    utilities, _ = aggregate(AggregateConfig(root=tmp_path, anchor_judges=["reference"]))
    u = utilities.merge(texts[["text_id", "direction"]], on="text_id")
    return float(u.groupby("direction")["utility"].std().mean()), rankings, metrics


def test_tied_labels_add_no_spread(tmp_path, seed_texts):
    from builders.collect import _labels

    texts = seed_texts[seed_texts["value"] == "benevolence"].assign(reference_intensity=float("nan")).reset_index(drop=True)
    labels = _labels(texts)
    text_label = {t: x for (_, t), x in labels.items()}
    tie_aware, rankings, _ = _spread(tmp_path / "a", texts, None)
    coin_flip, _, _ = _spread(tmp_path / "b", texts, CoinFlipReference(labels))
    text_of = dict(zip(texts["text_id"], texts["text"]))
    for order in rankings["order"]:  # strictly ordered: no ranking puts a text above an equal label
        assert all(text_label[text_of[a]] > text_label[text_of[b]] for a, b in zip(order, order[1:]))
    # on a random design some spread comes from who met whom; the coin flips' share of it is gone
    assert tie_aware < 0.7 * coin_flip, (tie_aware, coin_flip)
    # a value whose labels are all equal: no ranking at all, and nothing to aggregate is bad input (issue 25)
    same = texts[texts["direction"] == 1]
    with pytest.raises(InputError, match="no usable rankings to aggregate"):
        _spread(tmp_path / "c", same, None)
    rankings = pd.read_parquet(tmp_path / "c" / "data" / "rankings.parquet")
    metrics = json.loads((tmp_path / "c" / "metrics" / "collect.json").read_text())
    assert rankings.empty and next(iter(metrics["judges"].values()))["tied"] == metrics["windows_per_judge"]


def test_on_a_symmetric_design_tied_labels_get_identical_utilities():
    import itertools

    import numpy as np

    from valueflow.judges.reference import ReferenceJudge
    from valueflow.plackett_luce import RankingData, fit_plackett_luce

    texts = [f"t{i}" for i in range(12)]
    label = {t: (1.0, 0.0, -1.0)[i // 4] for i, t in enumerate(texts)}  # three groups of four tied texts
    windows = [list(w) for w in itertools.combinations(texts, 4)]  # every text meets every other alike

    def utilities(judge) -> np.ndarray:
        orders = []
        for w, a in zip(windows, judge.rank_windows("benevolence", windows)):
            orders += [[texts.index(w[p]) for p in chain] for chain in ((a.order, *a.also) if a.order else ())]
        return fit_plackett_luce(RankingData.from_orders(orders, n_items=len(texts))).utility

    u = utilities(ReferenceJudge(labels=label))
    groups = u.reshape(3, 4)
    assert np.ptp(groups, axis=1).max() < 1e-4  # tied labels: no spread at all
    assert groups[0].mean() > groups[1].mean() > groups[2].mean()
    flipped = utilities(CoinFlipReference({("benevolence", t): x for t, x in label.items()}))
    assert np.ptp(flipped.reshape(3, 4), axis=1).max() > 0.1  # the coin flips' spread, for contrast


# --------------------------------------------------------------------------------------------------------------
# atomic releases: built aside, swapped in whole; a kill midway leaves the previous release intact

KILLED_BUILD = """
import os, signal, sys
from pathlib import Path
from builders.build_vidb import BuildConfig, build_vidb

def card(folder, stats):
    (folder / "README.md").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)  # killed with the data written and the card half done

build_vidb(BuildConfig(root=Path(sys.argv[1])), card=card)
"""


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode & 0o777) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_release_build_killed_midway_leaves_the_previous_release_intact(tmp_path, seed_texts, project_root):
    import os
    import subprocess
    import sys

    from builders.aggregate import AggregateConfig, aggregate
    from builders.build_vidb import BuildConfig, build_vidb
    from builders.collect import CollectConfig, collect
    from cards.dataset_card import write_dataset_card

    (tmp_path / "data").mkdir()
    seed_texts[seed_texts["value"].isin(["benevolence", "justice"])].to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    collect(CollectConfig(judges=["reference"], k=4, m=3, root=tmp_path))
    aggregate(AggregateConfig(root=tmp_path))
    release = tmp_path / "release" / "vidb"
    release.mkdir(parents=True)
    (release / "stale_layout.parquet").write_text("from an older build")
    build_vidb(BuildConfig(root=tmp_path), card=lambda folder, stats: write_dataset_card(folder, stats))
    before = _snapshot(release)
    assert "stale_layout.parquet" not in before and "README.md" in before and "stats.json" in before
    card = (release / "README.md").read_text()
    assert "consistency check, not held out: Spearman of intensity vs the reference intensities it was calibrated on" in card
    mask = os.umask(0)
    os.umask(mask)
    assert {mode for _, mode in before.values()} == {0o666 & ~mask}  # normal file modes, not 0600
    assert release.stat().st_mode & 0o777 == 0o777 & ~mask

    env = {**os.environ, "PYTHONPATH": str(project_root)}
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(tmp_path)], env=env, capture_output=True, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert _snapshot(release) == before  # the previous release, whole

    build_vidb(BuildConfig(root=tmp_path), card=lambda folder, stats: write_dataset_card(folder, stats))
    assert _snapshot(release).keys() == before.keys()
    assert sorted(p.name for p in release.parent.iterdir()) == ["vidb"]  # the killed build's folder is gone too


def test_a_swap_killed_between_its_renames_is_recovered(tmp_path):
    from valueflow.io import atomic_dir

    target = tmp_path / "hives"
    with atomic_dir(target) as tmp:
        (tmp / "model.safetensors").write_text("v1")
    target.rename(tmp_path / ".hives.old")  # the state a kill between the two renames leaves
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            raise RuntimeError("the next build fails")
    assert (target / "model.safetensors").read_text() == "v1"


# --------------------------------------------------------------------------------------------------------------
# bad input files: one clear error line, exit code 2, nothing written


def _cli(args: list[str], **env):
    from typer.testing import CliRunner

    from valueflow.cli import app

    return CliRunner().invoke(app, args, env=env or None)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"", "file is empty"),
        ("header.csv", b"text,id\n", "only a header"),
        ("latin1.csv", "text\ncaf\u00e9 au lait\n".encode("latin-1"), "not UTF-8"),
        ("numbers.jsonl", b'{"text": "a real text"}\n{"text": 42}\n{"text": ["a", "list"]}\n', "row 2, column 'text': 42 is a int, not a text (2 such rows)"),
        ("broken.parquet", b"PAR1 this is no parquet file", "cannot be parsed as parquet"),
    ],
)
def test_a_bad_input_file_is_one_clear_error_and_writes_nothing(tmp_path, monkeypatch, name, content, message):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / name).write_bytes(content)
    res = _cli(["evaluate", name, "-v", "benevolence", "--out", "s.parquet"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and name in lines[0] and message in lines[0], res.output
    assert not (tmp_path / "s.parquet").exists()


def test_an_unwritable_output_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("text\nShe shared her lunch.\n")
    res = _cli(["evaluate", "t.csv", "-v", "benevolence", "--out", "t.csv/s.parquet"])
    assert res.exit_code == 2 and res.output.startswith("error: t.csv/s.parquet: cannot be written"), res.output
    (tmp_path / "folder").mkdir()
    res = _cli(["evaluate", "t.csv", "-v", "benevolence", "--out", "folder"])
    assert res.exit_code == 2 and "is a folder" in res.output


def test_anchors_outside_the_scale_are_reported_and_kept_beside_the_scores(tmp_path, monkeypatch, seed_dir):
    monkeypatch.chdir(tmp_path)
    anchors = anchor_table(seed_dir, tmp_path / "anchors.csv")
    frame = pd.read_csv(anchors)
    frame.loc[0, "intensity"] = 14.0
    frame.loc[1, "intensity"] = -11.5
    frame.to_csv(anchors, index=False)
    (tmp_path / "t.csv").write_text("text\nShe shared her lunch with a stranger.\n")
    res = _cli(["evaluate", "t.csv", "-v", "benevolence", "--vidb", "anchors.csv", "--out", "s.parquet"])
    assert res.exit_code == 0, res.output
    assert "warning: 2 anchor row(s) of anchors.csv left out" in res.output and "outside [-10, 10]" in res.output
    rejected = pd.read_parquet(tmp_path / "s.parquet.rejected.parquet")
    assert sorted(rejected["row"]) == [0, 1] and rejected["reason"].str.contains("outside").all()


def test_profile_refuses_an_unknown_output_format(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("text\nShe shared her lunch.\n")
    res = _cli(["profile", "t.csv", "--out", "p.xlsx"])
    assert res.exit_code == 2 and "unsupported format '.xlsx'" in res.output and not (tmp_path / "p.xlsx").exists()


def test_publish_push_without_a_token_fails_and_writes_nothing(tmp_path, monkeypatch, project_root):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(project_root / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored login either
    res = _cli(["publish", "--push"])
    assert res.exit_code == 2 and "error: --push needs a Hub token" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


# --------------------------------------------------------------------------------------------------------------
# logs of killed runs: what was really scored, and a torn last line


class LengthJudge:
    """Orders by text length; raises like a killed process on its ``kill_on``-th call."""

    name = "length:test@1"

    def __init__(self, kill_on: int | None = None) -> None:
        self.calls, self.kill_on = 0, kill_on

    def rank_windows(self, value, windows):
        import numpy as np

        from valueflow.judges import JudgeAnswer

        self.calls += 1
        if self.kill_on is not None and self.calls >= self.kill_on:
            raise KeyboardInterrupt("killed")
        return [JudgeAnswer(tuple(int(i) for i in np.argsort([-len(t) for t in w], kind="stable"))) for w in windows]


def test_rescoring_the_log_of_a_killed_run_reports_what_it_really_scored(tmp_path, monkeypatch, seed_dir):
    from evaluation.anchor_evaluator import AnchorEvaluator
    from evaluation.anchors import AnchorPanel

    panel = AnchorPanel.from_source(str(anchor_table(seed_dir, tmp_path / "anchors.csv")))
    log = tmp_path / "calls.jsonl"
    texts = ["She shared her lunch.", "He mocked the beggar.", "A quiet afternoon."]
    evaluator = AnchorEvaluator(LengthJudge(kill_on=2), panel, k=4, m=3, log=log, progress=False)
    with pytest.raises(KeyboardInterrupt):  # killed after the first round of windows
        evaluator.score(texts, "benevolence")
    with log.open("a") as fh:
        fh.write('{"kind": "window", "item_id": "0", "val')  # the line being written when it was killed
    monkeypatch.chdir(tmp_path)
    res = _cli(["evaluate", "--from-log", "calls.jsonl", "--out", "s.parquet"])
    assert res.exit_code == 1, res.output  # finished, nothing scored: exit 1 with the output written (valueflow.outcome)
    assert "was cut short" in res.output and "0/3 scored" in res.output
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert len(scores) == 3 and scores["missing_reason"].str.startswith("incomplete log: 1 of 3 windows").all()
    # a complete log rescores to the scores of the run
    full_log = tmp_path / "full.jsonl"
    scored = AnchorEvaluator(LengthJudge(), panel, k=4, m=3, log=full_log, progress=False).score(texts, "benevolence")
    res = _cli(["evaluate", "--from-log", str(full_log), "--out", "full.parquet"])
    assert "3/3 scored" in res.output
    pd.testing.assert_series_equal(pd.read_parquet(tmp_path / "full.parquet")["intensity"], scored["intensity"])


def test_a_broken_line_inside_a_log_is_an_error_naming_the_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "calls.jsonl").write_text('{"kind": "config", "m": 3}\nnot json\n{"kind": "config", "m": 3}\n')
    res = _cli(["evaluate", "--from-log", "calls.jsonl", "--out", "s.parquet"])
    assert res.exit_code == 2 and "calls.jsonl: line 2 is not JSON" in res.output


# --------------------------------------------------------------------------------------------------------------
# honest numbers


def test_a_text_ranked_beyond_every_anchor_is_censored_without_a_standard_error():
    from evaluation.anchor_evaluator import Window, fit_anchored_utility

    below = [Window(("a", "b", "c"), (-2.0, 1.0, 4.0), 0, (1, 2, 3, 0), None)] * 3  # the text came last every time
    fit = fit_anchored_utility(below)
    assert fit.guard == "below_all" and fit.se is None and fit.intensity == pytest.approx(-2.5)
    inside = [Window(("a", "b", "c"), (-2.0, 1.0, 4.0), 0, (1, 0, 2, 3), None)] * 3
    fit = fit_anchored_utility(inside)
    assert fit.guard in ("", "clamped") and fit.se is not None and fit.se > 0


# --------------------------------------------------------------------------------------------------------------
# limits: a huge text is cut to the model window, counted, in bounded memory

HUGE_TEXT = """
import logging, resource
logging.basicConfig(level=logging.WARNING)
from valueflow.models import CachedEncoder
enc = CachedEncoder()
enc.encode(["warm up"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
emb = enc.encode(["kindness " * 5_600_000, "a short text"])  # a 50 MB text
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(f"truncated={enc.truncated} grown_mib={grown:.0f} rows={emb.shape[0]}")
"""


def test_a_50_mb_text_is_truncated_with_a_counted_warning_in_bounded_memory(project_root):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(project_root), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", HUGE_TEXT], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    found = dict(kv.split("=") for kv in run.stdout.split())
    assert found["truncated"] == "1" and found["rows"] == "2"
    assert int(found["grown_mib"]) < 400  # the text itself is 50 MB; tokenizing it whole took gigabytes
    assert "1 of 2 text(s) are longer than the model window" in run.stderr


KILLED_COLLECT = """
import os, signal, sys
from pathlib import Path
import numpy as np
from builders.collect import CollectConfig, collect
from valueflow.judges import JudgeAnswer

class Judge:
    name = "length:kill@1"
    transport_options = frozenset()
    calls = 0
    def answer_settings(self):
        return {}
    def rank_windows(self, value, windows):
        Judge.calls += 1
        if Judge.calls == 3 and sys.argv[2] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        return [JudgeAnswer(tuple(int(i) for i in np.argsort([-len(t) for t in w], kind="stable"))) for w in windows]

collect(CollectConfig(judges=[], k=4, m=3, chunk_size=5, root=Path(sys.argv[1])), judges=[Judge()])
"""


def test_a_collection_killed_mid_run_resumes_with_nothing_lost_and_nothing_duplicated(tmp_path, seed_texts, project_root):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(project_root), "OMP_NUM_THREADS": "1"}
    texts = seed_texts[seed_texts["value"].isin(["benevolence", "justice"])]
    for name in ("killed", "clean"):
        (tmp_path / name / "data").mkdir(parents=True)
        texts.to_parquet(tmp_path / name / "data" / "texts.parquet", index=False)
    killed = subprocess.run([sys.executable, "-c", KILLED_COLLECT, str(tmp_path / "killed"), "kill"], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert not (tmp_path / "killed" / "data" / "rankings.parquet").exists()  # no half-written output
    for name, mode in (("killed", "resume"), ("clean", "resume")):
        done = subprocess.run([sys.executable, "-c", KILLED_COLLECT, str(tmp_path / name), mode], env=env, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    resumed = pd.read_parquet(tmp_path / "killed" / "data" / "rankings.parquet")
    clean = pd.read_parquet(tmp_path / "clean" / "data" / "rankings.parquet")
    assert not resumed["ranking_id"].duplicated().any()
    assert sorted(resumed["ranking_id"]) == sorted(clean["ranking_id"])
    stats = json.loads((tmp_path / "killed" / "metrics" / "collect.json").read_text())["judges"]["length:kill@1"]
    assert stats["from_store"] == 10 and stats["collected"] == len(clean) - 10  # two chunks of 5 survived the kill
