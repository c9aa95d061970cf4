"""CLI commands of the evaluator and the steering study (registered by valueflow/cli.py): ``evaluate``,
``eval-evaluator``, ``steer`` and ``eval-steering``."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from valueflow.outcome import MIN_SUCCESS_HELP, check_min_success, check_success
from valueflow.params import DEFAULT_PARAMS


def evaluate(
    file: Path | None = typer.Argument(None, help="CSV, TSV, JSONL or Parquet with a text column (not needed with --from-log)."),
    value: list[str] = typer.Option(None, "--value", "-v", help="Value to score (repeatable); any alias, e.g. care/harm."),
    judge: str = typer.Option("embedding", "--judge", "-j", help="Judge spec: embedding, learned[:model], chat:<model>@<url>, transformers:<model>."),
    k: int = typer.Option(6, "--k", min=2, help="Window size: the text plus k-1 anchors."),
    m: int = typer.Option(3, "--m", min=1, help="Windows (judge calls) per text and value."),
    sampling: str = typer.Option("bucket", "--sampling", help="Anchor sampling: bucket, random or adaptive."),
    mode: str = typer.Option("ranking", "--mode", help="ranking (the evaluator) or rating (direct-rating baseline)."),
    seed: int = typer.Option(0, "--seed", help="Seed of anchor draws and positions."),
    scale: str = typer.Option("1.0", "--scale", help="Judge sharpness: utility per intensity point (paper: 1.0), or auto (fitted from its anchor orders)."),
    prior_precision: float = typer.Option(1e-3, "--prior-precision", min=0.0, help="Gaussian prior precision on the intensity (paper: 1e-3)."),
    vidb: str | None = typer.Option(None, "--vidb", help="Anchor panel: VIDB release folder, Hub dataset id (owner/name[@rev]) or a table with text, value, intensity. Default release/vidb."),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision (tag, branch, commit) of --vidb."),
    split: str | None = typer.Option(None, "--anchor-split", help="Only anchors of these splits, e.g. train,validation."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the texts."),
    id_column: str | None = typer.Option(None, "--id-column", help="Column of item ids (default: item_id or id if present, else the row number)."),
    out: Path = typer.Option(..., "--out", "-o", help="Scores Parquet (ScoresSchema rows plus judge)."),
    log: Path | None = typer.Option(None, "--log", help="Append every judge call and window to this JSONL log."),
    from_log: Path | None = typer.Option(None, "--from-log", help="Recompute scores from a saved log, without the judge."),
    judge_option: list[str] = typer.Option(None, "--judge-option", help="A judge option KEY=VALUE (repeatable), e.g. "
                                           "timeout=30, max_retries=2, cache_dir=data/cache/chat."),
    min_success: float = typer.Option(1.0, "--min-success", help=MIN_SUCCESS_HELP),
) -> None:
    """Score texts' value intensities in [-10, 10] against VIDB anchors (scores, standard errors, judge calls)."""
    from evaluation.scoring import score_file

    check_min_success(min_success)
    if not math.isfinite(prior_precision):
        raise typer.BadParameter(f"{prior_precision!r} is not a finite number >= 0", param_hint="--prior-precision")
    scores = score_file(file, value, out, judge=judge, k=k, m=m, sampling=sampling, mode=mode, seed=seed,
                        scale=scale if scale == "auto" else _positive_float(scale, "--scale"),
                        prior_precision=prior_precision, vidb=vidb, revision=revision, anchor_split=split,
                        text_column=text_column, id_column=id_column, log=log, from_log=from_log,
                        judge_options=_key_values(judge_option or [], "--judge-option"),
                        warn=lambda line: typer.echo(line, err=True))
    _summary(scores, out)
    reasons = scores["missing_reason"].dropna().value_counts().to_dict()
    check_success(int(scores["intensity"].notna().sum()), len(scores), "texts", min_success, reasons)


def _key_values(items: list[str], option: str) -> dict:
    """``KEY=VALUE`` options; values read as YAML scalars (``30`` a number, ``true`` a flag), like params.yaml."""
    import yaml

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _positive_float(text: str, option: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if not (x > 0 and math.isfinite(x)):
        raise typer.BadParameter(f"{text!r} is not a finite number > 0 (or auto)", param_hint=option)
    return x


def _summary(scores, out: Path) -> None:
    scored = int(scores["intensity"].notna().sum())
    calls = scores["judge_calls"].mean() if len(scores) else 0.0
    typer.echo(f"wrote {out}: {scored}/{len(scores)} scored, {calls:.2f} judge calls per text")
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

    cfg = EvalEvaluatorConfig.load(params, judges=judge or None, vidb=vidb, repeats=repeats)
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
    """Train the learned judge (frozen encoder + value head) on VIDB and human-labelled tables; export release/judge."""
    from evaluation.train_judge import JudgeTrainConfig
    from evaluation.train_judge import train_judge as run
    from valueflow.io import write_metrics

    cfg = JudgeTrainConfig.load(params, vidb=vidb, extra=extra or None, base_model=base_model, out=out, steps=steps)
    write_metrics("train_judge", run(cfg, echo=typer.echo), cfg.root, out=cfg.out)


def _f(x) -> str:
    return f"{x:>7.2f}" if isinstance(x, (int, float)) else f"{'-':>7}"


def steer(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `steer` section is used)."),
    queries: Path | None = typer.Option(None, "--queries", help="Override params: queries file (query_id, query)."),
    value: list[str] = typer.Option(None, "--value", "-v", help="Override params: values to steer (repeatable)."),
    intensity: list[int] = typer.Option(None, "--intensity", "-i", help="Override params: target levels in -2..2 (repeatable)."),
    fmt: list[str] = typer.Option(None, "--format", "-f", help="Override params: prompt formats (repeatable)."),
    samples: int | None = typer.Option(None, "--samples", help="Override params: answers per prompt."),
    max_queries: int | None = typer.Option(None, "--max-queries", help="Override params: use only the first N queries."),
    out: Path | None = typer.Option(None, "--out", help="Override params: output responses Parquet."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    min_success: float = typer.Option(1.0, "--min-success", help=MIN_SUCCESS_HELP),
) -> None:
    """Ask every backend every (query, format, target, sample) prompt -> data/responses.parquet (resumable)."""
    from evaluation.steer import SteerConfig
    from evaluation.steer import steer as run_steer

    check_min_success(min_success)
    cfg = SteerConfig.load(params, queries=queries, values=value or None, intensities=intensity or None,
                           formats=fmt or None, samples=samples, max_queries=max_queries, out=out)
    df, metrics = run_steer(cfg, progress=not quiet)
    for name, b in metrics["backends"].items():
        typer.echo(f"{name} ({b['kind']}): {b['planned']} prompts, {b['reused']} reused, {b['generated']} generated, "
                   f"{b['failed']} failed, {b['refused']} refused")
    typer.echo(f"{metrics['responses']} responses -> {cfg.out}")
    reasons = df.loc[df["response"].isna(), "error"].value_counts().to_dict()
    check_success(metrics["answered"], metrics["responses"], "prompts", min_success, reasons)


def eval_steering(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `eval_steering` section is used)."),
    responses: Path | None = typer.Option(None, "--responses", help="Override params: responses Parquet."),
    judge: str | None = typer.Option(None, "--judge", help="Override params: judge spec (embedding, chat:<model>@<url>, ...)."),
    panel: str | None = typer.Option(None, "--vidb", help="Override params: anchor panel (release folder, table, Hub id)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Score the responses with the anchor evaluator and write metrics/steering.json and the steering figures."""
    from evaluation.eval_steering import EvalSteeringConfig
    from evaluation.eval_steering import eval_steering as run_eval

    cfg = EvalSteeringConfig.load(params, responses=str(responses) if responses else None, judge=judge, panel=panel)
    metrics = run_eval(cfg, progress=not quiet)
    for model, m in metrics["models"].items():
        typer.echo(f"{model}: regime {m['regime']}, median slope {m['median_slope']}, median monotonicity {m['median_monotonicity']}")
    typer.echo(f"{metrics['scores']} scores ({metrics['refused']} refusals not scored) -> metrics/steering.json")


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
    app.command("eval-evaluator")(eval_evaluator)
    app.command("train-judge")(train_judge)
    app.command("steer")(steer)
    app.command("eval-steering")(eval_steering)
