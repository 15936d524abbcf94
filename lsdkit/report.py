"""The paper-style comparison table and the paper's findings, judged on a study's numbers.

Rows: each encoder's latent (``LSD-TN latent``, ``LSD-NM latent``, ``MLM embedding``), the
diffusion representation on each (best (t, layer) chosen on validation, reported on test) and the
feature baselines. Columns: tasks, each with its primary metric (higher is better for all of
accuracy, Spearman, Fmax and AUROC). Each test score carries a 95 % percentile bootstrap interval
over the test proteins (:mod:`lsdkit.stats`), from the test predictions the sweep and the baselines
keep (:class:`lsdkit.probe.Predictions`, keyed ``(representation, task, key)``).

The findings (DESIGN.md, qualitative) are judged with explicit rules. Every comparison "A beats B
on a task" is the paired bootstrap of ``score(A) - score(B)`` on the same resampled test items: a
**win** if its 95 % interval lies above 0, a **loss** if below, **undecided** if it includes 0.

1. diffusion on LSD-TN and on LSD-NM beats diffusion on MLM - on every task;
2. no diffusion representation reaches the MLM embedding, and the MLM embedding beats the LSD
   autoencoder latents (LSD-TN, LSD-NM; LSD-TN-M where present) - on every task;
3. LSD-NM beats LSD-TN on most non-PPI tasks (latents and diffusion compared separately), except on
   PPI, where the LSD-TN-M latent beats the LSD-NM latent (needs a PPI task and the ``tnm`` encoder).

A finding is a list of such parts, each needing ``k`` wins out of its ``n`` tasks (``k = n`` for
"every", a strict majority for "most"). A part is *reproduced* with ``k`` wins, *contradicted* when
even all undecided tasks could not make ``k`` (``n - losses < k``), *inconclusive* otherwise. The
finding is **contradicted** if a part is; else **partly tested** if a part lacks a needed row or
task (an encoder or a PPI task absent; so finding 3 without PPI and ``tnm`` is at best partly
tested); else **inconclusive** if a part is; else **reproduced**. With no part testable at all it
is **not tested**. Intervals are not corrected for the number of comparisons.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lsdkit.errors import LsdkitError
from lsdkit.io import atomic_write_text
from lsdkit.models.presets import DISPLAY_NAMES
from lsdkit.stats import Interval

if TYPE_CHECKING:
    from lsdkit.probe import Predictions

PPI_TASKS = ("ppi_yeast", "ppi_human")
BASELINE_KEY = "features"      # the key of a feature baseline's predictions: (representation, task, BASELINE_KEY)
VERDICTS = ("reproduced", "contradicted", "inconclusive", "partly tested", "not tested")
N_BOOT, LEVEL = 1000, 0.95     # bootstrap resamples and interval level of the table and the findings


class ReportError(LsdkitError, ValueError):
    """Test predictions that do not belong to the table's numbers (e.g. files of another run)."""


AUTOENCODERS = tuple(DISPLAY_NAMES[e] for e in ("tn", "nm", "tnm"))


def latent_row(encoder: str) -> str:
    """The table row of a latent space, by display name: an autoencoder's latent (``LSD-TN latent``)
    or a language model's embedding (``MLM embedding``, ``NEAR embedding``)."""
    return f"{encoder} latent" if encoder in AUTOENCODERS else f"{encoder} embedding"


def is_learned_row(row: str) -> bool:
    """Whether a table row is a latent space or a diffusion representation (not a feature baseline)."""
    return row.startswith("Diffusion on ") or row.endswith((" latent", " embedding"))


def diffusion_row(encoder: str) -> str:
    return f"Diffusion on {encoder}"


def primary_metric(task: str) -> str:
    from lsdkit.data.tasks import get_task
    return get_task(task).metric


def headline(sweep: pd.DataFrame) -> pd.DataFrame:
    """The reported rows of a sweep: test scores of the selected keys (the mean over folds for
    cross-validated tasks)."""
    sel = sweep[(sweep["split"] == "test") & sweep["selected"].astype(bool)]
    return sel[sel["fold"].isna() | (sel["fold"].astype(str) == "mean")].reset_index(drop=True)


def chosen_keys(sweep: pd.DataFrame) -> pd.DataFrame:
    """The (t, layer) chosen on validation for each diffusion representation and task, with its test
    score at the task's primary metric: representation, task, t, layer, metric, value."""
    rows = headline(sweep)
    rows = rows[rows["t"].notna() & (rows["metric"] == rows["task"].map(primary_metric))]
    return rows[["representation", "task", "t", "layer", "metric", "value"]].reset_index(drop=True)


def _cells(sweep: pd.DataFrame, baselines: pd.DataFrame | None) -> list[dict]:
    """The table's cells (primary metric, test): row, task, metric, value, detail, and ``source``,
    the ``(representation, task, key)`` of their predictions."""
    out = []
    for _, r in headline(sweep).iterrows():
        if r["metric"] != primary_metric(r["task"]):
            continue
        if r["key"] == "latent":
            row, detail = latent_row(r["representation"]), ""
        else:
            row, detail = diffusion_row(r["representation"]), f"t={r['t']:g}, layer {int(r['layer'])}"
        out.append(dict(row=row, task=r["task"], metric=r["metric"], value=float(r["value"]), detail=detail,
                        source=(r["representation"], r["task"], r["key"])))
    if baselines is not None and len(baselines):
        b = baselines[baselines["split"] == "test"]
        for _, r in b.iterrows():
            if r["metric"] == primary_metric(r["task"]):
                out.append(dict(row=str(r["representation"]).capitalize(), task=r["task"], metric=r["metric"],
                                value=float(r["value"]), detail="",
                                source=(str(r["representation"]), r["task"], BASELINE_KEY)))
    return out


def table_predictions(sweep: pd.DataFrame, baselines: pd.DataFrame | None = None,
                      predictions: Mapping[tuple[str, str, str], Predictions] | None = None
                      ) -> dict[tuple[str, str], Predictions]:
    """The test predictions behind each cell of :func:`comparison_table`, keyed ``(row, task)``
    (cells without predictions are left out). Raises :class:`ReportError` when predictions do not
    give their cell's score (they belong to another run)."""
    out = {}
    for c in _cells(sweep, baselines):
        p = (predictions or {}).get(c["source"])
        if p is None:
            continue
        if not np.isclose(p.value(c["metric"]), c["value"], rtol=0, atol=1e-9):
            raise ReportError(f"test predictions of {'/'.join(map(str, c['source']))} give {c['metric']} "
                              f"{p.value(c['metric']):.6f}, the table {c['value']:.6f}: they are not this run's "
                              "(rerun the sweep and baselines)")
        out[c["row"], c["task"]] = p
    return out


def comparison_table(sweep: pd.DataFrame, baselines: pd.DataFrame | None = None,
                     predictions: Mapping[tuple[str, str, str], Predictions] | None = None,
                     *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> pd.DataFrame:
    """Long table: row, task, metric, value (test), ci_low, ci_high, detail (the chosen t/layer for
    diffusion rows). The interval is the percentile bootstrap over test items of the cell's test
    predictions (``predictions``, keyed ``(representation, task, key)``; the baselines' key is
    ``BASELINE_KEY``); NaN where a cell has none."""
    preds = table_predictions(sweep, baselines, predictions)
    out = []
    for c in _cells(sweep, baselines):
        p = preds.get((c["row"], c["task"]))
        ci = p.interval(c["metric"], n_boot, seed, level) if p is not None else Interval(c["value"], np.nan, np.nan)
        out.append(dict(row=c["row"], task=c["task"], metric=c["metric"], value=c["value"], ci_low=ci.low,
                        ci_high=ci.high, detail=c["detail"]))
    return pd.DataFrame(out, columns=["row", "task", "metric", "value", "ci_low", "ci_high", "detail"])


def floor_comparison(table: pd.DataFrame, predictions: Mapping[tuple[str, str], Predictions] | None = None,
                     *, floor_rows: Collection[str] | None = None, n_boot: int = N_BOOT, seed: int = 0,
                     level: float = LEVEL) -> pd.DataFrame:
    """Every other row against the floor of its task: the best of the floor rows there (by test
    score), with the paired bootstrap interval of the difference on the same test proteins.
    ``floor_rows``: the rows that make the floor (default: every row that is not a latent space or a
    diffusion representation (:func:`is_learned_row`), i.e. the feature baselines). ``verdict``: ``above the floor``
    (interval above 0), ``below the floor`` (below 0), ``at the floor`` (it includes 0), or ``no
    interval`` (no test predictions). ``predictions``: keyed ``(row, task)`` (:func:`table_predictions`)."""
    preds = predictions or {}
    if floor_rows is None:
        learned = {r for r in table["row"] if is_learned_row(r)}
    else:
        learned = set(table["row"]) - set(floor_rows)
    out = []
    for task, t in table.groupby("task", sort=False):
        base = t[~t["row"].isin(learned)]          # the floor rows (composition, dipeptide, ...)
        if base.empty:
            continue
        floor = base.loc[base["value"].idxmax()]
        for r in t[t["row"].isin(learned)].itertuples(index=False):
            pa, pb = preds.get((r.row, task)), preds.get((floor["row"], task))
            if pa is None or pb is None:
                x, verdict = Interval(r.value - floor["value"], np.nan, np.nan), "no interval"
            else:
                x = pa.diff(pb, r.metric, n_boot, seed, level)
                verdict = "above the floor" if x.low > 0 else "below the floor" if x.high < 0 else "at the floor"
            out.append(dict(row=r.row, task=task, metric=r.metric, floor=floor["row"], diff=x.value,
                            ci_low=x.low, ci_high=x.high, verdict=verdict))
    return pd.DataFrame(out, columns=["row", "task", "metric", "floor", "diff", "ci_low", "ci_high", "verdict"])


def _grid_markdown(frame: pd.DataFrame, heading, cell) -> str:
    """A Markdown grid of a long frame (row, task, ...): rows x tasks, ``heading(task, rows)`` the
    column title, ``cell(record)`` the text of a cell, "—" where a (row, task) is absent."""
    tasks = list(dict.fromkeys(frame["task"]))
    lines = ["| representation | " + " | ".join(heading(t, frame[frame["task"] == t]) for t in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for row in dict.fromkeys(frame["row"]):
        hits = [frame[(frame["row"] == row) & (frame["task"] == t)] for t in tasks]
        lines.append(f"| {row} | " + " | ".join("—" if h.empty else cell(h.iloc[0]) for h in hits) + " |")
    return "\n".join(lines)


def floor_markdown(floor: pd.DataFrame) -> str:
    """Rows x tasks: the difference to the task's floor with its interval and the verdict."""
    if floor.empty:
        return ""
    return _grid_markdown(floor, lambda t, rows: f"{t}: − {rows['floor'].iloc[0].lower()}",
                          lambda h: f"{Interval(h['diff'], h['ci_low'], h['ci_high']).format(signed=True)} "
                                    f"{h['verdict']}")


def to_markdown(table: pd.DataFrame) -> str:
    """Rows x tasks, values to three decimals with their interval ``[low, high]`` where the table
    has one; diffusion cells show the chosen (t, layer)."""
    def cell(h) -> str:
        ci = Interval(h["value"], h.get("ci_low", np.nan), h.get("ci_high", np.nan))
        d = h["detail"]
        return ci.format() + (f" ({d})" if isinstance(d, str) and d else "")
    return _grid_markdown(table, lambda t, rows: f"{t} ({rows['metric'].iloc[0]})", cell)


@dataclass
class Finding:
    claim: str
    verdict: str                 # one of VERDICTS
    evidence: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; one of {VERDICTS}")


@dataclass
class _Part:
    """One part of a finding: "A beats B on every / most tasks", from the differences A − B."""

    label: str
    rule: str                                    # "every" | "most"
    diffs: list[tuple[str, Interval]]            # (task, better - worse with its paired interval)
    missing: str = ""                            # why the part cannot be tested ("" if it can)

    def counts(self) -> tuple[int, int, int, int]:
        n = len(self.diffs)
        need = n if self.rule == "every" else n // 2 + 1
        wins = sum(d.above_zero for _, d in self.diffs)
        losses = sum(d.below_zero for _, d in self.diffs)
        return n, need, wins, losses

    def verdict(self) -> str:
        n, need, wins, losses = self.counts()
        if self.missing or n == 0:
            return "missing"
        if wins >= need:
            return "reproduced"
        return "contradicted" if n - losses < need else "inconclusive"

    def text(self) -> str:
        if self.missing or not self.diffs:
            return f"{self.label}: not tested ({self.missing or 'no task with both rows'})"
        n, need, wins, losses = self.counts()
        diffs = ", ".join(f"{t}: {d.format(signed=True)}" for t, d in self.diffs)
        rule = "every task" if self.rule == "every" else "a majority"
        return (f"{self.label} ({diffs}): {wins} won, {losses} lost, {n - wins - losses} undecided of {n}; "
                f"needs {need} ({rule}) -> {self.verdict()}")


def _combine(parts: list[_Part]) -> str:
    v = [p.verdict() for p in parts]
    if all(x == "missing" for x in v):
        return "not tested"
    if "contradicted" in v:
        return "contradicted"
    if "missing" in v:
        return "partly tested"
    return "inconclusive" if "inconclusive" in v else "reproduced"


def judge_findings(table: pd.DataFrame, predictions: Mapping[tuple[str, str], Predictions] | None = None,
                   *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> list[Finding]:
    """The paper's three findings on ``table``, each reproduced / contradicted / inconclusive /
    partly tested (or not tested), by the rules in this module's docstring. ``predictions``: the
    test predictions of the table's cells, keyed ``(row, task)`` (:func:`table_predictions`); a
    comparison without them has no interval, so it stays undecided."""
    tasks = list(dict.fromkeys(table["task"]))
    rows = set(table["row"])
    preds = predictions or {}
    d = {e: diffusion_row(name) for e, name in DISPLAY_NAMES.items()}     # keyed tn, nm, tnm, mlm
    lat = {e: latent_row(name) for e, name in DISPLAY_NAMES.items()}
    cell = {(r.row, r.task): r for r in table.itertuples(index=False)}

    def diff(a: str, b: str, task: str) -> Interval | None:
        if (a, task) not in cell or (b, task) not in cell:
            return None
        pa, pb = preds.get((a, task)), preds.get((b, task))
        if pa is None or pb is None:
            return Interval(cell[a, task].value - cell[b, task].value, np.nan, np.nan)
        return pa.diff(pb, cell[a, task].metric, n_boot, seed, level)

    def part(better: str, worse: str, on: list[str], rule: str, needs: str = "") -> _Part:
        label = f"{better} − {worse}"
        absent = [r for r in (better, worse) if r not in rows]
        if needs or absent:
            return _Part(label, rule, [], needs or "needs " + " and ".join(absent))
        diffs = [(t, x) for t in on if (x := diff(better, worse, t)) is not None]
        return _Part(label, rule, diffs)

    def finding(claim: str, parts: list[_Part]) -> Finding:
        evidence = "; ".join(p.text() for p in parts)
        if any(np.isnan(x.low) for p in parts for _, x in p.diffs):
            evidence += " (no interval where the run kept no test predictions: rerun the sweep and baselines)"
        return Finding(claim, _combine(parts), evidence)

    out = []
    # 1
    out.append(finding("Diffusion on LSD-TN and LSD-NM latents beats diffusion on MLM latents, on every task",
                       [part(d[e], d["mlm"], tasks, "every") for e in ("tn", "nm")]))
    # 2
    diff_rows = [d[e] for e in ("tn", "nm", "mlm")] + [d["tnm"]] * (d["tnm"] in rows)
    lsd_lat = [lat[e] for e in ("tn", "nm")] + [lat["tnm"]] * (lat["tnm"] in rows)
    out.append(finding("No diffusion representation reaches the MLM embedding, and the MLM embedding beats the "
                       "LSD autoencoder latents, on every task",
                       [part(lat["mlm"], r, tasks, "every") for r in diff_rows + lsd_lat]))
    # 3
    non_ppi = [t for t in tasks if t not in PPI_TASKS]
    ppi = [t for t in tasks if t in PPI_TASKS]
    no_task = "" if non_ppi else "needs a non-PPI task"
    out.append(finding("LSD-NM generally beats LSD-TN (most tasks, latents and diffusion), except on PPI, where "
                       "LSD-TN-M is notably better",
                       [part(lat["nm"], lat["tn"], non_ppi, "most", no_task),
                        part(d["nm"], d["tn"], non_ppi, "most", no_task),
                        part(lat["tnm"], lat["nm"], ppi, "every",
                             "" if ppi else "the PPI exception needs a PPI task and the tnm encoder")]))
    return out


def findings_markdown(findings: list[Finding]) -> str:
    return "\n".join(f"{i}. **{f.verdict}** — {f.claim}. Evidence: {f.evidence}."
                     for i, f in enumerate(findings, 1))


TABLE_NOTE = ("Test scores of the probes; diffusion rows at the (t, layer) chosen on validation. [low, high]: "
              f"{LEVEL * 100:g} % percentile bootstrap interval over the test proteins ({N_BOOT} resamples, seeded).")
FINDINGS_NOTE = ("Each comparison is a paired bootstrap of the score difference on the same test proteins "
                 f"({N_BOOT} resamples, {LEVEL * 100:g} % interval): won if the interval lies above 0, lost if below, "
                 "undecided if it includes 0. Verdicts: reproduced, contradicted, inconclusive (a needed "
                 "difference is undecided), partly tested (a needed task or encoder is absent), not tested "
                 "(nothing testable); the rules are in lsdkit/report.py and DESIGN.md.")


FLOOR_NOTE = ("Each learned row minus the task's floor (its best feature baseline on test), a paired bootstrap on "
              f"the same test proteins ({N_BOOT} resamples, {LEVEL * 100:g} % interval): above / below the floor "
              "when the interval excludes 0, at the floor when it includes 0.")


def write_report(run_dir: str | Path, table: pd.DataFrame, findings: list[Finding],
                 floor: pd.DataFrame | None = None) -> dict[str, Path]:
    """``table.csv``, ``table.md`` (with the floor comparison, :func:`floor_comparison`, when given;
    also ``floor.csv``) and ``findings.md`` in ``run_dir`` (atomic writes)."""
    run_dir = Path(run_dir)
    paths = {"table_csv": run_dir / "table.csv", "table_md": run_dir / "table.md",
             "findings": run_dir / "findings.md"}
    atomic_write_text(paths["table_csv"], table.to_csv(index=False))
    md = to_markdown(table) + "\n\n" + TABLE_NOTE + "\n"
    if floor is not None and not floor.empty:
        paths["floor_csv"] = run_dir / "floor.csv"
        atomic_write_text(paths["floor_csv"], floor.to_csv(index=False))
        md += "\n## Against the floor\n\n" + floor_markdown(floor) + "\n\n" + FLOOR_NOTE + "\n"
    atomic_write_text(paths["table_md"], md)
    atomic_write_text(paths["findings"], findings_markdown(findings) + "\n\n" + FINDINGS_NOTE + "\n")
    return paths
