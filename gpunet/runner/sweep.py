"""Sweeps: train every combination of a grid of config values, one run directory per cell, then ``results.csv``
and (for two keys) heatmaps of the train and test scores.

The sweep directory holds ``sweep.json`` (the grid and base overrides, written before any cell trains), the cells'
run directories ``NNN_key=value_...`` and ``results.csv``. ``resume=True`` continues a sweep in the same directory:
finished cells (with ``summary.json``) are skipped, interrupted ones resume from their last checkpoint, the rest
start; ``results.csv`` is then rebuilt from every cell's summary.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
from dataclasses import dataclass

from ..config import load_config
from ..train.atomic import atomic_write_text
from .run import RunError, check_run, config_differences, run

__all__ = ["Cell", "SweepError", "config_grid", "plan_sweep", "run_sweep"]

MANIFEST = "sweep.json"
RESULTS = "results.csv"


class SweepError(RunError):
    """A sweep cannot start or continue (an occupied directory, a resume with another grid)."""


@dataclass(frozen=True)
class Cell:
    """One combination of the grid: its values (as written on the command line), resolved config and directory."""

    index: int
    values: dict
    config: dict
    directory: str

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())


def config_grid(config: dict) -> list[tuple[str, list[str]]] | None:
    """The config's own ``sweep.grid`` as (key, [values as YAML text]) pairs, or None when it has none."""
    sweep = config["sweep"]
    if sweep is None:
        return None
    return [(key, [json.dumps(v) for v in values]) for key, values in sweep["grid"].items()]  # JSON is YAML


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text)


def plan_sweep(config_path: str, overrides, grid, out: str) -> list[Cell]:
    """Every cell of ``grid`` over ``config_path`` with ``overrides``, each config checked and its model dry-run
    before anything trains (what ``device: auto`` chose is said once)."""
    keys = [key for key, _ in grid]
    cells, data_info = [], {}
    for index, combo in enumerate(itertools.product(*[values for _, values in grid]), start=1):
        config = load_config(config_path, [*overrides, *(f"{k}={v}" for k, v in zip(keys, combo))])
        data_key = json.dumps(config["data"], sort_keys=True)
        data_info[data_key] = check_run(config, data_info.get(data_key), announce_device=index == 1)
        directory = os.path.join(out, f"{index:03d}_" + _slug("_".join(f"{k}={v}" for k, v in zip(keys, combo))))
        cells.append(Cell(index, dict(zip(keys, combo)), config, directory))
    return cells


def _manifest(config_path: str, overrides, grid) -> dict:
    return {"config": config_path, "overrides": list(overrides), "grid": [[k, list(v)] for k, v in grid]}


def _claim(out: str, manifest: dict, cells: list[Cell], resume: bool) -> None:
    """Refuse to start a sweep in a directory that holds one; on resume, refuse another grid or another config."""
    path = os.path.join(out, MANIFEST)
    held = os.path.exists(path) or any(os.path.exists(cell.directory) for cell in cells)
    if not resume:
        if held:
            raise SweepError(f"{out} already holds a sweep; continue it with --resume, or choose another --out")
        return
    if not os.path.exists(path):
        raise SweepError(f"nothing to resume in {out}: {path} does not exist; run without --resume to start the "
                         "sweep")
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    if saved["grid"] != manifest["grid"] or saved["overrides"] != manifest["overrides"]:
        raise SweepError(f"cannot resume {out} with another grid or other overrides: it was started with "
                         f"grid {saved['grid']} and overrides {saved['overrides']}; give the same ones, or start a "
                         "new sweep (another --out)")
    for cell in cells:
        saved_config = os.path.join(cell.directory, "config.yaml")
        if os.path.exists(saved_config):
            differences = config_differences(load_config(saved_config), cell.config, allowed=("device",))
            if differences:
                raise SweepError(f"cannot resume {out}: cell {cell.directory} was trained with another config ("
                                 + "; ".join(differences[:5]) + f"); has {saved['config']} changed? Start a new "
                                 "sweep (another --out)")


def _finished_summary(cell: Cell) -> dict | None:
    path = os.path.join(cell.directory, "summary.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _interrupted(cell: Cell) -> bool:
    checkpoints = cell.config["checkpoint"]["dir"]
    return os.path.exists(os.path.join(cell.directory, checkpoints, "last.npz"))


def run_sweep(config_path: str, overrides, grid, out: str, config_name: str, resume: bool = False,
              report=print) -> dict:
    """Train every cell of ``grid`` into ``out`` (see the module docstring); ``report`` gets one line per cell.
    Returns ``{"sweep": out, "runs": n, "results": path, "heatmaps": [paths]}``."""
    from ..train.plots import plot_heatmap

    cells = plan_sweep(config_path, overrides, grid, out)
    manifest = _manifest(config_path, overrides, grid)
    _claim(out, manifest, cells, resume)
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    rows = []
    for cell in cells:
        summary = _finished_summary(cell) if resume else None
        status = "done before, skipped" if summary is not None else None
        if summary is None:
            summary = run(cell.config, cell.directory, resume=resume and _interrupted(cell), config_name=config_name,
                          progress=False, announce_device=False)
        row = {"run": os.path.basename(cell.directory), **cell.values,
               **{k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                  and k != "best_epoch"}}
        rows.append(row)
        scores = " ".join(f"{k}={row[k]:.4f}" for k in ("train_accuracy", "test_accuracy", "test_loss") if k in row)
        report(f"[{cell.index}/{len(cells)}] {cell.label}: {scores}" + (f" ({status})" if status else ""))
    results = os.path.join(out, RESULTS)
    table = io.StringIO()
    writer = csv.DictWriter(table, list(dict.fromkeys(k for row in rows for k in row)), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(results, table.getvalue())
    heatmaps = []
    if len(grid) == 2:
        (row_key, row_values), (col_key, col_values) = grid
        metric = "accuracy" if "test_accuracy" in rows[0] else "loss"
        for split in ("train", "test"):
            column = f"{split}_{metric}"
            if column not in rows[0]:
                continue
            values = [[rows[i * len(col_values) + j][column] for j in range(len(col_values))]
                      for i in range(len(row_values))]
            path = plot_heatmap(values, row_values, col_values, row_key, col_key, f"{split} {metric}",
                                os.path.join(out, f"{column}.png"))
            if path:
                heatmaps.append(path)
    return {"sweep": out, "runs": len(rows), "results": results, "heatmaps": heatmaps}
