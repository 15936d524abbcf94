"""The paper-style comparison table and the paper's findings, judged on a study's numbers.

Rows: each encoder's latent (``LSD-TN latent``, ``LSD-NM latent``, ``MLM embedding``), the
diffusion representation on each (best (t, layer) chosen on validation, reported on test) and the
feature baselines. Columns: tasks, each with its primary metric (higher is better for all of
accuracy, Spearman, Fmax and AUROC).

The findings (DESIGN.md, qualitative) are judged with explicit rules, stated in each verdict:

1. diffusion on LSD-TN and on LSD-NM beats diffusion on MLM - on every task;
2. no diffusion representation reaches the MLM embedding, and the MLM embedding beats both LSD
   autoencoder latents - on every task;
3. LSD-NM beats LSD-TN on most tasks (latents and diffusion compared separately), except on PPI,
   where LSD-TN-M is better than LSD-NM (needs the ``tnm`` encoder in the study).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lsdkit.io import atomic_write_text
from lsdkit.models.presets import DISPLAY_NAMES

PPI_TASKS = ("ppi_yeast", "ppi_human")


def latent_row(encoder: str) -> str:
    """The table row of an encoder's latent, by display name (``LSD-TN latent``, ``MLM embedding``)."""
    return "MLM embedding" if encoder == DISPLAY_NAMES["mlm"] else f"{encoder} latent"


def diffusion_row(encoder: str) -> str:
    return f"Diffusion on {encoder}"


def _primary(task: str) -> str:
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
    rows = rows[rows["t"].notna() & (rows["metric"] == rows["task"].map(_primary))]
    return rows[["representation", "task", "t", "layer", "metric", "value"]].reset_index(drop=True)


def comparison_table(sweep: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table: row, task, metric, value (test), detail (the chosen t/layer for diffusion rows)."""
    out = []
    for _, r in headline(sweep).iterrows():
        if r["metric"] != _primary(r["task"]):
            continue
        if r["key"] == "latent":
            row, detail = latent_row(r["representation"]), ""
        else:
            row, detail = diffusion_row(r["representation"]), f"t={r['t']:g}, layer {int(r['layer'])}"
        out.append(dict(row=row, task=r["task"], metric=r["metric"], value=float(r["value"]), detail=detail))
    if baselines is not None and len(baselines):
        b = baselines[baselines["split"] == "test"]
        for _, r in b.iterrows():
            if r["metric"] == _primary(r["task"]):
                out.append(dict(row=str(r["representation"]).capitalize(), task=r["task"], metric=r["metric"],
                                value=float(r["value"]), detail=""))
    return pd.DataFrame(out, columns=["row", "task", "metric", "value", "detail"])


def to_markdown(table: pd.DataFrame) -> str:
    """Rows x tasks, values to three decimals; diffusion cells show the chosen (t, layer)."""
    tasks = list(dict.fromkeys(table["task"]))
    metric = {t: table.loc[table["task"] == t, "metric"].iloc[0] for t in tasks}
    lines = ["| representation | " + " | ".join(f"{t} ({metric[t]})" for t in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for row in dict.fromkeys(table["row"]):
        cells = []
        for t in tasks:
            hit = table[(table["row"] == row) & (table["task"] == t)]
            if hit.empty:
                cells.append("—")
            else:
                v, d = hit["value"].iloc[0], hit["detail"].iloc[0]
                cells.append(f"{v:.3f}" + (f" ({d})" if isinstance(d, str) and d else ""))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Finding:
    claim: str
    reproduced: bool | None      # None: not testable with this study (rows missing)
    evidence: str

    def verdict(self) -> str:
        return {True: "reproduced", False: "not reproduced", None: "not tested"}[self.reproduced]


def _value(table: pd.DataFrame, row: str, task: str) -> float:
    hit = table[(table["row"] == row) & (table["task"] == task)]
    return float(hit["value"].iloc[0]) if len(hit) else math.nan


def _compare(table: pd.DataFrame, better: str, worse: str, tasks) -> tuple[int, int, list[str]]:
    wins, n, notes = 0, 0, []
    for t in tasks:
        a, b = _value(table, better, t), _value(table, worse, t)
        if math.isnan(a) or math.isnan(b):
            continue
        n += 1
        wins += a > b
        notes.append(f"{t}: {a:.3f} {'>' if a > b else '<='} {b:.3f}")
    return wins, n, notes


def judge_findings(table: pd.DataFrame) -> list[Finding]:
    """The paper's three findings, each reproduced / not reproduced / not tested on ``table``."""
    tasks = list(dict.fromkeys(table["task"]))
    rows = set(table["row"])
    d = {e: diffusion_row(name) for e, name in DISPLAY_NAMES.items()}     # keyed tn, nm, tnm, mlm
    lat = {e: latent_row(name) for e, name in DISPLAY_NAMES.items()}
    out = []

    # 1
    claim = "Diffusion on LSD-TN and LSD-NM latents beats diffusion on MLM latents, on every task"
    if {d["tn"], d["nm"], d["mlm"]} <= rows:
        res = [_compare(table, d[e], d["mlm"], tasks) for e in ("tn", "nm")]
        ok = all(w == n and n > 0 for w, n, _ in res)
        ev = "; ".join(f"{e}: " + ", ".join(notes) for e, (_, _, notes) in zip(("TN", "NM"), res))
        out.append(Finding(claim, ok, ev))
    else:
        out.append(Finding(claim, None, "needs diffusion rows for LSD-TN, LSD-NM and MLM"))

    # 2
    claim = ("No diffusion representation reaches the MLM embedding, and the MLM embedding beats the "
             "LSD autoencoder latents, on every task")
    diff_rows = [r for r in d.values() if r in rows]
    lsd_lat = [lat[e] for e in ("tn", "nm") if lat[e] in rows]
    if lat["mlm"] in rows and diff_rows and lsd_lat:
        res = [_compare(table, lat["mlm"], r, tasks) for r in diff_rows + lsd_lat]
        ok = all(w == n and n > 0 for w, n, _ in res)
        ev = "; ".join(f"MLM embedding vs {r}: " + ", ".join(notes)
                       for r, (_, _, notes) in zip(diff_rows + lsd_lat, res))
        out.append(Finding(claim, ok, ev))
    else:
        out.append(Finding(claim, None, "needs the MLM embedding, diffusion rows and LSD latents"))

    # 3
    claim = ("LSD-NM generally beats LSD-TN (most tasks, latents and diffusion), except on PPI, where "
             "LSD-TN-M is notably better")
    non_ppi = [t for t in tasks if t not in PPI_TASKS]
    if {lat["tn"], lat["nm"]} <= rows and non_ppi:
        parts, ok = [], True
        for a, b in ((lat["nm"], lat["tn"]), (d["nm"], d["tn"])):
            if {a, b} <= rows:
                w, n, notes = _compare(table, a, b, non_ppi)
                ok &= n > 0 and w > n / 2
                parts.append(f"{a} vs {b}: {w}/{n} tasks (" + ", ".join(notes) + ")")
        ppi = [t for t in tasks if t in PPI_TASKS]
        if ppi and lat["tnm"] in rows:
            w, n, notes = _compare(table, lat["tnm"], lat["nm"], ppi)
            ok &= n > 0 and w == n
            parts.append("PPI, LSD-TN-M latent vs LSD-NM latent: " + ", ".join(notes))
        else:
            parts.append("the PPI exception is not tested (needs a PPI task and the tnm encoder)")
        out.append(Finding(claim, ok, "; ".join(parts)))
    else:
        out.append(Finding(claim, None, "needs LSD-TN and LSD-NM latents on a non-PPI task"))
    return out


def findings_markdown(findings: list[Finding]) -> str:
    return "\n".join(f"{i}. **{f.verdict()}** — {f.claim}. Evidence: {f.evidence}."
                     for i, f in enumerate(findings, 1))


def write_report(run_dir: str | Path, table: pd.DataFrame, findings: list[Finding]) -> dict[str, Path]:
    """``table.csv``, ``table.md`` and ``findings.md`` in ``run_dir`` (atomic writes)."""
    run_dir = Path(run_dir)
    paths = {"table_csv": run_dir / "table.csv", "table_md": run_dir / "table.md",
             "findings": run_dir / "findings.md"}
    atomic_write_text(paths["table_csv"], table.to_csv(index=False))
    atomic_write_text(paths["table_md"], to_markdown(table) + "\n")
    atomic_write_text(paths["findings"], findings_markdown(findings) + "\n")
    return paths
