"""CLI commands of the evaluator (registered by valueflow/cli.py): ``evaluate`` and ``eval-evaluator``."""

from __future__ import annotations

from pathlib import Path

import typer

from valueflow.params import DEFAULT_PARAMS, stage_params
from valueflow.taxonomy import get_taxonomy


def evaluate(
    file: Path | None = typer.Argument(None, help="CSV, TSV, JSONL or Parquet with a text column (not needed with --from-log)."),
    value: list[str] = typer.Option(None, "--value", "-v", help="Value to score (repeatable); any alias, e.g. care/harm."),
    judge: str = typer.Option("embedding", "--judge", "-j", help="Judge spec: embedding, cross[:model], probe[:model], chat:<model>@<url>, transformers:<model>."),
    k: int = typer.Option(6, "--k", help="Window size: the text plus k-1 anchors."),
    m: int = typer.Option(3, "--m", help="Windows (judge calls) per text and value."),
    sampling: str = typer.Option("bucket", "--sampling", help="Anchor sampling: bucket, random or adaptive."),
    mode: str = typer.Option("ranking", "--mode", help="ranking (the evaluator) or rating (direct-rating baseline)."),
    seed: int = typer.Option(0, "--seed", help="Seed of anchor draws and positions."),
    scale: str = typer.Option("1.0", "--scale", help="Judge sharpness: utility per intensity point (paper: 1.0), or auto (fitted from its anchor orders)."),
    prior_precision: float = typer.Option(1e-3, "--prior-precision", help="Gaussian prior precision on the intensity (paper: 1e-3)."),
    vidb: str | None = typer.Option(None, "--vidb", help="Anchor panel: VIDB release folder, Hub dataset id (owner/name[@rev]) or a table with text, value, intensity. Default release/vidb."),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision (tag, branch, commit) of --vidb."),
    split: str | None = typer.Option(None, "--anchor-split", help="Only anchors of these splits, e.g. train,validation."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the texts."),
    id_column: str | None = typer.Option(None, "--id-column", help="Column of item ids (default: item_id or id if present, else the row number)."),
    out: Path = typer.Option(..., "--out", "-o", help="Scores Parquet (ScoresSchema rows plus judge)."),
    log: Path | None = typer.Option(None, "--log", help="Append every judge call and window to this JSONL log."),
    from_log: Path | None = typer.Option(None, "--from-log", help="Recompute scores from a saved log, without the judge."),
) -> None:
    """Score texts' value intensities in [-10, 10] against VIDB anchors (scores, standard errors, judge calls)."""
    import pandas as pd

    from evaluation.anchor_evaluator import AnchorEvaluator, rescore_from_log
    from evaluation.anchors import AnchorPanel
    from valueflow.io import InputError, check_writable, read_table, write_parquet
    from valueflow.judges import make_judge

    check_writable(out)
    if log is not None:
        check_writable(log)
    if from_log is not None:
        scores = rescore_from_log(from_log)
        for line in scores.attrs.get("torn_lines", []):
            typer.echo(f"warning: {from_log}: line {line} was cut short (the run was killed while writing it); left out", err=True)
        write_parquet(scores, out)
        _summary(scores, out)
        return
    if file is None:
        raise typer.BadParameter("give a FILE of texts to score (or --from-log LOG)", param_hint="FILE")
    if not value:
        raise typer.BadParameter("give at least one --value", param_hint="--value")
    table = read_table(file, required=(text_column,))
    if table.empty:
        raise InputError(f"{file}: no rows to score (the file has only a header)")
    not_text = [i for i, t in enumerate(table[text_column]) if not (isinstance(t, str) or t is None or (isinstance(t, float) and t != t))]
    if not_text:  # JSONL numbers, lists, objects: scoring their repr as a text would be a silent wrong answer
        i = not_text[0]
        cell = table[text_column].iloc[i]
        raise InputError(f"{file}: row {i + 1}, column {text_column!r}: {cell!r} is a {type(cell).__name__}, not a text"
                         + (f" ({len(not_text)} such rows)" if len(not_text) > 1 else ""))
    id_col = id_column or next((c for c in ("item_id", "id") if c in table.columns), None)
    if id_col is not None and id_col not in table.columns:
        raise typer.BadParameter(f"{file}: no column {id_col!r}; found {', '.join(map(str, table.columns))}", param_hint="--id-column")
    ids = table[id_col].astype(str) if id_col else pd.Series([str(i) for i in range(len(table))])
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise typer.BadParameter(f"{file}: item id {dup!r} appears more than once in column {id_col!r}", param_hint="--id-column")
    names = [get_taxonomy().resolve(v) for v in value]  # an unknown value fails first, listing the valid ones
    panel = AnchorPanel.from_source(vidb, revision=revision, split=split)
    if len(panel.rejected):  # e.g. intensities outside [-10, 10]: reported and kept beside the scores, never dropped silently
        from validation.rejects import RejectSink

        sink = RejectSink("evaluate", root=Path("."), out=out)
        sink.rows = [{"stage": "evaluate", **r} for r in panel.rejected.to_dict("records")]
        by_column = panel.rejected["column"].value_counts()
        typer.echo(f"warning: {len(panel.rejected)} anchor row(s) of {panel.source} left out ("
                   + ", ".join(f"{c}: {n}" for c, n in by_column.items())
                   + f"; e.g. row {panel.rejected['row'].iloc[0]}: {panel.rejected['reason'].iloc[0]}); listed in {sink.write()}",
                   err=True)
    j = make_judge(judge)
    scale_value: float | str = scale if scale == "auto" else float(scale)
    evaluator = AnchorEvaluator(
        j, panel, k=k, m=m, sampling=sampling, seed=seed, mode=mode, log=log, scale=scale_value, prior_precision=prior_precision
    )
    items = pd.concat(
        [pd.DataFrame({"item_id": ids.to_numpy(), "text": table[text_column].astype(str).to_numpy(), "value": name}) for name in names],
        ignore_index=True,
    )
    scores = evaluator.score_many(items).assign(judge=j.name)
    write_parquet(scores, out)
    _summary(scores, out)


def _summary(scores, out: Path) -> None:
    scored = int(scores["intensity"].notna().sum())
    typer.echo(f"wrote {out}: {scored}/{len(scores)} scored, {scores['judge_calls'].mean():.2f} judge calls per text")
    for reason, n in scores["missing_reason"].dropna().value_counts().items():
        typer.echo(f"  missing ({n}): {reason}")


def eval_evaluator(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `eval_evaluator` section is used)."),
    judge: list[str] = typer.Option(None, "--judge", "-j", help="Override params: judge specs (repeatable)."),
    vidb: str | None = typer.Option(None, "--vidb", help="Override params: VIDB release folder or Hub id."),
    repeats: int | None = typer.Option(None, "--repeats", help="Override params: repeats per text (stability)."),
) -> None:
    """Measure the evaluator on VIDB's test split: MAE, Spearman, sign/pairwise accuracy, stability, calls per text."""
    from evaluation.eval_evaluator import EvalEvaluatorConfig, evaluate_evaluator

    cfg = EvalEvaluatorConfig.from_params(stage_params("eval_evaluator", params), judges=judge or None, vidb=vidb, repeats=repeats)
    metrics = evaluate_evaluator(cfg)
    typer.echo(f"{'judge':<22}{'mode':<10}{'MAE':>7}{'rho':>7}{'sign':>7}{'pair':>7}{'sd':>7}{'calls':>7}")
    for spec, modes in metrics["judges"].items():
        for mode, r in modes.items():
            typer.echo(
                f"{spec[:21]:<22}{mode:<10}{_f(r['mae'])}{_f(r['spearman'])}{_f(r['sign_accuracy'])}"
                f"{_f(r['pairwise_accuracy'])}{_f(r['stability_sd'])}{_f(r['calls_per_text'])}"
            )
    for spec, note in metrics.get("judges_in_build", {}).items():
        typer.echo(f"note: {spec}: {note}")
    typer.echo(f"test texts: {metrics['counts']['test_texts']}, anchors: {metrics['counts']['anchors']}")


def train_judge(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `train_judge` section is used)."),
    vidb: Path | None = typer.Option(None, "--vidb", help="Override params: VIDB release folder or table to train on."),
    extra: list[str] = typer.Option(None, "--extra", help="Override params: extra labelled tables (repeatable)."),
    base_model: str | None = typer.Option(None, "--base-model", help="Override params: CrossEncoder or sentence-transformers path or Hub id."),
    out: Path | None = typer.Option(None, "--out", help="Override params: folder of the trained judge."),
    steps: int | None = typer.Option(None, "--steps", help="Override params: training steps."),
) -> None:
    """Train the cross-encoder judge on VIDB (and human-labelled tables); export release/judge with its calibration and card."""
    from evaluation.train_judge import JudgeTrainConfig
    from evaluation.train_judge import train_judge as run
    from valueflow.io import write_metrics

    cfg = JudgeTrainConfig.from_params(stage_params("train_judge", params), vidb=vidb, extra=extra or None,
                                       base_model=base_model, out=out, steps=steps)
    write_metrics("train_judge", run(cfg, echo=typer.echo), cfg.root, out=cfg.out)


def _f(x) -> str:
    return f"{x:>7.2f}" if isinstance(x, (int, float)) else f"{'-':>7}"


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
    app.command("eval-evaluator")(eval_evaluator)
    app.command("train-judge")(train_judge)
    __import__("evaluation.steering_commands", fromlist=["register"]).register(app)  # steer, eval-steering
