"""The end of a sweep (`animegan-train -m ...`): one table of every job, printed and
written as `multirun.csv` in the sweep directory, and a non-zero exit status when any
job failed.

Each job leaves `job_status.json` in its directory (its overrides, completed or failed,
the one-line error, and for a run that ended its steps and final metrics); a job that
failed or was killed is filled in from its metrics.csv. The
report is a Hydra callback (configs/train.yaml, hydra.callbacks), so it runs in the
process that launched the sweep, after the last job, with any launcher plugin.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from animegan.cli import fail
from animegan.errors import AnimeganError

JOB_STATUS = "job_status.json"
COLUMNS = ("job", "overrides", "status", "steps", "epoch", "loss_D", "loss_G", "D_x", "D_G_z", "best_fid", "error")


def collect(sweep_dir: Path) -> List[Dict[str, str]]:
    """One row per job directory of the sweep, in job order."""
    rows = []
    jobs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and ((p / JOB_STATUS).is_file() or p.name.isdigit())]
    for job in sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)):
        status_file = job / JOB_STATUS
        # No status file: the job was killed, or is still running under another launcher.
        status = json.loads(status_file.read_text()) if status_file.is_file() else {"status": "incomplete"}
        row = {key: "" for key in COLUMNS}
        row.update(job=job.name, overrides=" ".join(status.get("overrides", [])), status=status["status"],
                   error=status.get("error", ""))
        if "steps" in status:  # a job that ended: its run's own summary
            best = status.get("best_fid")
            row.update(steps=str(status["steps"]), epoch=str(status["epoch"]), best_fid=f"{best:.2f}" if best else "",
                       **{k: f"{v:.5f}" for k, v in status.get("final", {}).items()})
        else:  # failed or killed: what its metrics.csv got to
            row.update(_final_metrics(job / "metrics.csv"))
        rows.append(row)
    return _only_what_differs(rows)


def _only_what_differs(rows: List[Dict[str, str]]) -> List[Dict[str, str]]:
    """Each job's overrides cut to the keys whose values differ between jobs (the swept
    ones): the keys every job shares would repeat on every line of the table."""
    parsed = [dict(o.split("=", 1) for o in r["overrides"].split(" ") if "=" in o) for r in rows]
    keys = {k for p in parsed for k in p}
    varying = {k for k in keys if len({p.get(k) for p in parsed}) > 1}
    if len(rows) > 1 and varying:
        for row, p in zip(rows, parsed):
            row["overrides"] = " ".join(f"{k}={v}" for k, v in p.items() if k in varying)
    return rows


def _final_metrics(metrics_csv: Path) -> Dict[str, str]:
    if not metrics_csv.is_file():
        return {"steps": "0"}
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [r for r in rows if r.get("loss_D")]
    fids = [float(r["fid"]) for r in rows if r.get("fid")]
    out = {"steps": losses[-1]["step"] if losses else "0", "best_fid": f"{min(fids):.2f}" if fids else ""}
    if losses:
        out.update({key: losses[-1][key] for key in ("epoch", "loss_D", "loss_G", "D_x", "D_G_z")})
    return out


def format_table(rows: List[Dict[str, str]]) -> str:
    shown = [c for c in COLUMNS if any(r[c] for r in rows) or c in ("job", "status", "steps")]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in shown}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in shown) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def write_report(sweep_dir: Path) -> List[Dict[str, str]]:
    """Print the table, write multirun.csv; return the rows."""
    from animegan.files import atomic_replace

    rows = collect(sweep_dir)
    with atomic_replace(Path(sweep_dir) / "multirun.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    failed = [r for r in rows if r["status"] != "completed"]
    print(f"\nsweep: {len(rows) - len(failed)} of {len(rows)} jobs completed ({sweep_dir}/multirun.csv)")
    print(format_table(rows), flush=True)
    return rows


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        try:
            rows = write_report(Path(config.hydra.sweep.dir))
        except AnimeganError as exc:  # a full disk: one line, as everywhere else
            fail("animegan-train", exc)
        if any(r["status"] != "completed" for r in rows):
            # The last act of the sweep: Hydra has nothing left to do, and the shell (or a
            # scheduler) must see that a job failed.
            raise SystemExit(1)
