"""``valueflow evaluate``: score a table of texts for one or more values against VIDB anchors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from valueflow.io import InputError


def score_file(
    file: str | Path | None,
    values: list[str],
    out: str | Path,
    *,
    judge: str = "embedding",
    k: int = 6,
    m: int = 3,
    sampling: str = "bucket",
    mode: str = "ranking",
    seed: int = 0,
    scale: float | str = 1.0,
    prior_precision: float = 1e-3,
    vidb: str | None = None,
    revision: str | None = None,
    anchor_split: str | None = None,
    text_column: str = "text",
    id_column: str | None = None,
    log: str | Path | None = None,
    from_log: str | Path | None = None,
    judge_options: dict | None = None,
    warn=print,
) -> pd.DataFrame:
    """Score every text of ``file`` (CSV, TSV, JSONL, Parquet) for every value; write and return the scores.

    Rows are ``ScoresSchema`` rows plus ``judge``, one per (item, value). Item ids come from ``id_column``
    (default ``item_id`` or ``id`` when present, else the row number) and must be unique. With ``from_log`` the
    scores are recomputed from a saved log without the judge. Every input problem is an :class:`InputError`
    (or ``UnknownValueError``) raised before anything is written. ``warn`` receives the problems that do not stop
    the run (a torn last log line, anchors left out of the panel).
    """
    from evaluation.anchor_evaluator import MODES, SAMPLING_MODES, AnchorEvaluator, rescore_from_log
    from evaluation.anchors import AnchorPanel
    from validation.rejects import RejectSink
    from valueflow.io import check_outputs, read_table, regular_file, write_parquet
    from valueflow.judges import make_judge
    from valueflow.params import canonical_values

    sink = RejectSink("evaluate", root=Path("."), out=out)
    panel_file = vidb if vidb is not None and Path(vidb).exists() else None
    check_outputs({"--out": out, "--log": log, "rejected rows": sink.path},
                  {"FILE": file, "--from-log": from_log, "--vidb": panel_file})
    if from_log is not None:
        regular_file(from_log, "log")
        scores = rescore_from_log(from_log)
        for line in scores.attrs.get("torn_lines", []):
            warn(f"warning: {from_log}: line {line} was cut short (the run was killed while writing it); left out")
        write_parquet(scores, out)
        return scores
    if file is None:
        raise InputError("give a FILE of texts to score (or --from-log LOG)")
    if not values:
        raise InputError("give at least one --value")
    if sampling not in SAMPLING_MODES:
        raise InputError(f"--sampling {sampling!r}: choose one of {', '.join(SAMPLING_MODES)}")
    if mode not in MODES:
        raise InputError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    table = read_table(file, required=(text_column,))
    if table.empty:
        raise InputError(f"{file}: no rows to score (the file has only a header)")
    column = table[text_column]
    not_text = [i for i, t in enumerate(column) if not (isinstance(t, str) or t is None or (isinstance(t, float) and t != t))]
    if not_text:  # JSONL numbers, lists, objects: scoring their repr as a text would be a silent wrong answer
        cell = column.iloc[not_text[0]]
        raise InputError(f"{file}: row {not_text[0] + 1}, column {text_column!r}: {cell!r} is a {type(cell).__name__}, "
                         "not a text" + (f" ({len(not_text)} such rows)" if len(not_text) > 1 else ""))
    id_col = id_column or next((c for c in ("item_id", "id") if c in table.columns), None)
    if id_col is not None and id_col not in table.columns:
        raise InputError(f"{file}: no column {id_col!r}; found {', '.join(map(str, table.columns))}")
    ids = table[id_col].astype(str) if id_col else pd.Series([str(i) for i in range(len(table))])
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise InputError(f"{file}: item id {dup!r} appears more than once in column {id_col!r}")
    try:  # an unknown value fails first, listing the valid ones; a value named twice is scored once
        names = canonical_values(values, "--value")
    except ValueError as err:
        raise InputError(str(err)) from None
    j = make_judge(judge, **(judge_options or {}))  # a bad spec or option is refused before the panel is read
    panel = AnchorPanel.from_source(vidb, revision=revision, split=anchor_split)
    if len(panel.rejected):  # e.g. intensities outside [-10, 10]: reported and kept beside the scores, never dropped silently
        sink.rows = [{"stage": "evaluate", **r} for r in panel.rejected.to_dict("records")]
        by_column = panel.rejected["column"].value_counts()
        warn(f"warning: {len(panel.rejected)} anchor row(s) of {panel.source} left out ("
             + ", ".join(f"{c}: {n}" for c, n in by_column.items())
             + f"; e.g. row {panel.rejected['row'].iloc[0]}: {panel.rejected['reason'].iloc[0]}); listed in {sink.write()}")
    evaluator = AnchorEvaluator(
        j, panel, k=k, m=m, sampling=sampling, seed=seed, mode=mode, log=log, scale=scale, prior_precision=prior_precision
    )
    items = pd.concat(
        [pd.DataFrame({"item_id": ids.to_numpy(), "text": table[text_column].astype(str).to_numpy(), "value": name}) for name in names],
        ignore_index=True,
    )
    scores = evaluator.score_many(items).assign(judge=j.name)
    write_parquet(scores, out)
    return scores
