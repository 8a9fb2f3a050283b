"""``python -m gocor reproduce``: the reproduction, bounded and resumable.

By default it retrains what a 2-core CPU affords in under half an hour — the four Table-6 variants
for seed 0 of protocol v2 (profile ``large``, shipped in data/results/protocol2) — and checks them
against the shipped runs of the same seed (CPU training is deterministic on one machine: a fresh run
from the machine the shipped runs were trained on must equal them to float rounding; one from a
machine that rounds differently is checked against the shipped seeds' spread, see
:func:`seed_check`). ``--all`` runs every shipped variant × its shipped seeds (hours
on a CPU; resumable). ``--profile quick`` does the same for protocol 1 (data/results/ablation). It
prints its estimate at the start, from the shipped runs' own wall times.

1. the runs into ``build/protocol2`` (``build/ablation`` for protocol 1; finished runs are skipped,
   an interrupted one resumes from its checkpoint), then their analysis (steps curve, learned
   objectives);
2. every notebook executed with papermill into ``build/notebooks`` (notebook 06 on the fresh runs
   with ``--all``, else on the shipped ones), figures into ``build/figures``;
3. ``build/summary.md``: the notebooks' checked outputs, and the fresh runs against the shipped
   ones (per seed with the default, per variant mean with ``--all``).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "data" / "results"
SHIPPED = RESULTS / "ablation"        # protocol 1 (profile quick) and any other profile
FOLDERS = {"large": "protocol2"}       # protocol v2's runs
DEFAULT_PROFILE = "large"
BOUNDED_SEEDS = (0,)                  # the default: Table 6, seed 0
# not in the runs' own wall times (measured on the 2-core CPU the results were shipped from)
POOL_S_PER_PAIR = 0.015               # making the training pool once
NOTEBOOKS_S = 150                     # executing every notebook
EVALUATE_S_PER_RUN = 15               # four held-out splits, and the steps curve for GOCor runs


def checked_outputs(nb: dict) -> list[str]:
    """The text printed by the cells marked ``# NBVAL_CHECK_OUTPUT``."""
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(cell["source"]):
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream":
                    out.append("".join(o["text"]).strip())
    return out


def estimate_s(runs: list[tuple[str, int]], out: Path, profile: str, shipped: list[dict]) -> float | None:
    """Seconds the runs still to do will take, from the shipped runs' wall times (the variant's
    median over its seeds; runs already finished in ``out`` cost nothing), plus the pool if it is
    not cached yet and the notebooks. None when no run of ``profile`` was shipped."""
    from ..lab.runs.train import PROFILES
    from ..lab.runs.variants import run_name
    times: dict[str, list[float]] = {}
    for r in shipped:
        if r["profile"] == profile:
            times.setdefault(r["variant"], []).append(r["wall_time_s"])
    if not times:
        return None
    todo = [(v, s) for v, s in runs if not (out / run_name(v, s) / "result.json").exists()]
    others = statistics.median([t for ts in times.values() for t in ts])
    total = sum(statistics.median(times.get(v, [others])) + EVALUATE_S_PER_RUN for v, _ in todo)
    if todo and not (out / "pairs").is_dir():
        total += POOL_S_PER_PAIR * PROFILES[profile].pool_size
    return total + NOTEBOOKS_S


def run_ablation(out: Path, profile: str, runs: list[tuple[str, int]]) -> list[dict]:
    """Step 1: the ``runs`` (variant, seed) into ``out`` (finished runs skipped), then their analysis."""
    from ..lab.runs.ablate import run_variant
    from ..lab.runs.analysis import analyze
    results = []
    for v, seed in runs:
        t0 = time.perf_counter()
        results.append(run_variant(v, seed, profile, out))
        print(f"{v} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    analyze(out)
    return results


def folder(profile: str) -> str:
    """The folder name of a profile's runs: ``protocol2`` (data/results/ and build/) for protocol
    v2's profile, ``ablation`` for the others."""
    return FOLDERS.get(profile, SHIPPED.name)


def shipped_folder(profile: str) -> Path:
    return SHIPPED if folder(profile) == SHIPPED.name else RESULTS / folder(profile)


# The machine the shipped runs were trained on; they predate the "machine" field of a run record
# (gocor.lab.device.machine_info). Protocol v2's four Table-6 seed-0 runs retrained there equal the
# shipped ones to the last digit. reproduce trains with its thread count, so that such a machine
# with more cores still compares digit by digit.
SHIPPED_MACHINE = {"torch": "2.13.0+cpu", "threads": 2, "cpu_capability": "AVX512", "machine": "x86_64"}
_DIGIT_HEADER = ["| run | split | metric | fresh | shipped | rel. difference |", "|---|---|---|---:|---:|---:|"]


def describe_machine(machine: dict) -> str:
    return (f"{machine.get('cpu_capability', '?')}, {machine.get('machine', '?')}, torch {machine.get('torch', '?')}, "
            f"{machine.get('threads', '?')} threads")


class SeedCheck(NamedTuple):
    """What :func:`seed_check` found."""
    text: str            # markdown: the verdict line, then the tables
    worst: float         # the largest relative difference of the runs compared digit by digit
    failed: bool         # a run differs beyond float rounding, or lies outside the seeds' spread


MIN_OTHER_SEEDS = 4      # below, one more seed's interval is too wide to mean anything (two: x/÷ thousands)


def seed_check(fresh: list[dict], shipped: list[dict], splits: tuple[str, ...] | None = None,
               tol: float = 1e-4, level: float = 0.95) -> SeedCheck:
    """Every fresh run against the shipped runs of its variant.

    A fresh run trained on the machine its shipped twin (same variant, seed, profile) was trained on
    (the ``machine`` records, on the fields of :data:`SHIPPED_MACHINE`, which is the shipped runs'
    own), or one that records no machine, is compared with that twin metric by metric (on
    ``splits``, default every split either has; a split only one has is named): CPU training is
    deterministic there, so they must agree to float rounding (``tol``; a NaN never does). A run
    from a machine that rounds differently (another instruction set, torch or thread count) cannot:
    training amplifies the last bits and the two runs drift apart. It, and a run that fails the
    digit check although the records match (something they do not name differs: the CPU model,
    the BLAS build, or the code), is checked by :func:`spread_check` instead. The verdict says
    "Reproduced" only when something was compared, and names every run and split that was not."""
    by_run = {(r["variant"], r["seed"], r["profile"]): r for r in shipped}
    shipped_variants = {(r["variant"], r["profile"]) for r in shipped}
    digit, spread, unchecked, verdicts = [], [], [], []
    broken = [f"{_name(r)} ({why})" for r in fresh for why in [_broken(r)] if why]
    if broken:                  # whatever else can be compared: a run with a NaN is no reproduction
        verdicts.append(f"**Broken runs**: {'; '.join(broken)}.")
    for r in fresh:
        twin = by_run.get((r["variant"], r["seed"], r["profile"]))
        if twin is None and (r["variant"], r["profile"]) not in shipped_variants:
            unchecked.append(f"{_name(r)} ({r['profile']}): not shipped")
        elif twin is None:
            spread.append(r)        # a seed not shipped: against the shipped seeds of its variant
        elif r.get("machine") is None or _same_machine(r["machine"], twin.get("machine", SHIPPED_MACHINE)):
            digit.append((r, twin))
        else:
            spread.append(r)
    tables, worst, failed = [], 0.0, bool(broken)
    if digit:
        verdict, table, not_checked, worst, digit_failed, apart = _digit_check(digit, splits, tol)
        verdicts += verdict
        tables += [table] if table else []
        unchecked += not_checked
        failed = failed or digit_failed
        spread += apart
    if spread:
        verdict, table, not_checked, outside = spread_check(spread, shipped, splits, level)
        verdicts.append(verdict)
        tables += [table] if table else []
        unchecked += not_checked
        failed = failed or outside
    if not verdicts:
        verdicts.append("**Nothing checked**: no fresh run has a shipped run to compare with.")
    if unchecked:
        verdicts.append(f"Not checked: {'; '.join(unchecked)}.")
    return SeedCheck(" ".join(verdicts) + "\n\n" + "\n\n".join(tables), worst, failed)


def _digit_check(pairs: list[tuple[dict, dict]], splits: tuple[str, ...] | None,
                 tol: float) -> tuple[list[str], str, list[str], float, bool, list[dict]]:
    """The digit-by-digit part of :func:`seed_check` for (fresh run, shipped twin) pairs: (verdict
    lines, markdown table, what was not compared, the largest relative difference, whether it
    failed, the fresh runs apart beyond ``tol``)."""
    lines, verdicts, off, apart = list(_DIGIT_HEADER), [], [], []
    worst, compared, lost = 0.0, 0, False
    for r, twin in pairs:
        run_worst, before = 0.0, compared
        for split in splits or tuple(dict.fromkeys([*r["metrics"], *twin["metrics"]])):
            mine, theirs = r["metrics"].get(split), twin["metrics"].get(split)
            if mine is None or theirs is None:
                off.append(f"{_name(r)} {split} ({'fresh' if mine is None else 'shipped'} run lacks it)")
                lost = lost or mine is None         # a split the fresh run lost fails the check
                continue
            for key, value in mine.items():
                ref = theirs.get(key)
                if ref is None:
                    continue
                rel = abs(value - ref) / max(abs(ref), 1e-3)
                rel = rel if math.isfinite(rel) else math.inf                # NaN: never equal
                run_worst, compared = max(run_worst, rel), compared + 1
                if key in ("aepe", "pck5", "f1", "coarse_acc"):
                    lines.append(f"| {_name(r)} | {split} | {key} | {value:.6f} | {ref:.6f} | {rel:.1e} |")
        worst = max(worst, run_worst)
        if compared == before:
            off.append(f"{_name(r)} (no metric in common with its shipped run)")
        if run_worst > tol:
            apart.append(r)
    if compared and worst <= tol:
        verdicts.append(f"**Reproduced**: every metric compared digit by digit equals the shipped one "
                        f"within a relative {worst:.1e} (tolerance {tol:.0e}).")
    elif compared:
        verdicts.append(f"**Not reproduced to float rounding**: the largest relative difference from the "
                        f"shipped runs is {worst:.1e} (tolerance {tol:.0e}), from a machine recorded as "
                        f"theirs (or not recorded): something the record does not name differs (the CPU "
                        f"model, the BLAS build, or the code).")
    if lost:
        verdicts.append("**Incomplete**: a fresh run lacks a split its shipped run has (named below).")
    failed = lost or (compared > 0 and worst > tol)
    return verdicts, "\n".join(lines) if compared else "", off, worst, failed, apart


def spread_check(fresh: list[dict], shipped: list[dict], splits: tuple[str, ...] | None = None,
                 level: float = 0.95) -> tuple[str, str, list[str], bool]:
    """(verdict, markdown table, what was not checked, whether a run lies outside): each fresh run,
    from a machine that rounds differently, against the shipped runs of its variant and profile
    with *other* seeds (its own seed's shares its initialization and batch order). One number per
    run, its geometric-mean AEPE over its splits (``splits`` or all it has, those every shipped run
    of the comparison has too; the others are named), must lie in the ``level`` prediction
    interval of one more seed (Student-t on the log scale, Bonferroni over the runs compared). It
    needs :data:`MIN_OTHER_SEEDS` other seeds. A loose check: it catches a broken run, not a
    variant that behaves like a neighbouring one (the table gives each interval); a NaN or
    non-positive AEPE lies outside every interval."""
    from ..lab.runs.stats import prediction_interval
    rows, not_checked = [], []
    for r in fresh:
        others = [x for x in shipped if (x["variant"], x["profile"]) == (r["variant"], r["profile"])
                  and x["seed"] != r["seed"]]
        wanted = [sp for sp in (splits or tuple(r["metrics"])) if "aepe" in r["metrics"].get(sp, {})]
        use = [sp for sp in wanted if all("aepe" in x["metrics"].get(sp, {}) for x in others)]
        if len(others) < MIN_OTHER_SEEDS:
            not_checked.append(f"{_name(r)} against the seeds' spread ({len(others)} shipped run(s) of other "
                               f"seeds; {MIN_OTHER_SEEDS} are needed)")
            continue
        if not use:
            not_checked.append(f"{_name(r)} against the seeds' spread (no split with an AEPE in common with "
                               f"the other seeds)")
            continue
        if len(use) < len(wanted):
            not_checked.append(f"{_name(r)} on {', '.join(sp for sp in wanted if sp not in use)} "
                               f"(not every other shipped seed has it)")
        twin = next((x for x in shipped if (x["variant"], x["seed"], x["profile"]) ==
                     (r["variant"], r["seed"], r["profile"])), None)
        rows.append((r, twin, use, [_log_aepe(x, use) for x in others]))
    m = len(rows)
    lines = ["| run | splits | fresh AEPE (geometric mean) | shipped, same seed | shipped, other seeds (n) | "
             "interval for one more seed | inside |", "|---|---:|---:|---:|---:|---|---|"]
    outside = []
    for r, twin, use, seeds in rows:
        pi = prediction_interval(seeds, 1 - (1 - level) / m)
        value = _log_aepe(r, use)
        inside = pi.low <= value <= pi.high                 # False for NaN
        if not inside:
            outside.append(_name(r))
        same = f"{math.exp(_log_aepe(twin, use)):.3f}" if twin and all(
            "aepe" in twin["metrics"].get(sp, {}) for sp in use) else "–"
        lines.append(f"| {_name(r)} | {len(use)} | {math.exp(value):.3f} | {same} | {math.exp(pi.mean):.3f} ({pi.n}) | "
                     f"{math.exp(pi.low):.3f}–{math.exp(pi.high):.3f} | {'yes' if inside else '**no**'} |")
    machines = sorted({describe_machine(r["machine"]) for r in fresh if r.get("machine")})
    theirs = sorted({describe_machine(x.get("machine", SHIPPED_MACHINE)) for x in shipped})
    if machines == theirs:
        why = f"fresh and shipped runs both recorded on {' and '.join(theirs)}, yet apart beyond float rounding"
    else:
        why = (f"fresh runs trained on {' and '.join(machines) or 'an unrecorded machine'}, the shipped ones on "
               f"{' and '.join(theirs)}: where float rounding differs, training amplifies the last bits and the "
               f"runs drift apart")
    if not m:
        verdict = f"**Nothing checked** against the shipped seeds' spread ({why})."
    elif not outside:
        verdict = (f"**Reproduced within the shipped seeds' spread**, not to the last digit ({why}): each fresh "
                   f"run's geometric-mean AEPE lies in the {level:.0%} prediction interval of one more seed of "
                   f"its variant (Bonferroni over the {m} runs; a loose check, the table gives each interval).")
    else:
        verdict = (f"**Outside the shipped seeds' spread**: {len(outside)} of {m} fresh runs ({', '.join(outside)}) "
                   f"lie outside the {level:.0%} prediction interval of one more seed (Bonferroni over the {m}): "
                   f"more than float rounding differs ({why}).")
    return verdict, "\n".join(lines) if m else "", not_checked, bool(outside)


def _broken(run: dict) -> str:
    """Why a run's record cannot be a reproduction ('' when it can): no metrics, a metric that is
    not a finite number, or an AEPE that is not positive."""
    if not run["metrics"] or not any(run["metrics"].values()):
        return "no metrics"
    bad = [f"{split} {key}" for split, m in run["metrics"].items() for key, v in m.items()
           if not math.isfinite(v) or (key == "aepe" and v <= 0)]
    return f"{', '.join(bad)} not a finite{' positive' if any(b.endswith('aepe') for b in bad) else ''} number" if bad else ""


def _same_machine(a: dict, b: dict) -> bool:
    """Equal on the fields that fix float rounding (those of :data:`SHIPPED_MACHINE`)."""
    return all(a.get(k) == b.get(k) for k in SHIPPED_MACHINE)


def _name(run: dict) -> str:
    from ..lab.runs.variants import run_name
    return f"`{run_name(run['variant'], run['seed'])}`"


def _log_aepe(run: dict, splits: list[str]) -> float:
    """The mean over ``splits`` of log AEPE (the log of the geometric mean); NaN when an AEPE is
    NaN or not positive (a broken run)."""
    values = [run["metrics"][sp]["aepe"] for sp in splits]
    if not all(v > 0 and math.isfinite(v) for v in values):
        return math.nan
    return statistics.mean(math.log(v) for v in values)


def reproduce(out: str | Path = "build", update: bool = False, parameters: dict | None = None,
              profile: str = DEFAULT_PROFILE, ablation: bool = True, variants: tuple[str, ...] | None = None,
              seeds: tuple[int, ...] | None = None, all_runs: bool = False, threads: int | None = None) -> list[dict]:
    """The reproduction (module docstring). ``all_runs``: every shipped variant × its shipped seeds
    (3 when none is shipped); else ``variants`` (default the Table-6 ones) × ``seeds`` (default
    seed 0). ``threads``: torch's intra-op threads for the runs (default the shipped runs' machine's,
    so that the same kind of machine with more cores still compares digit by digit)."""
    import papermill as pm

    from ..lab.errors import UserError
    from ..lab.runs import report
    from ..lab.runs.variants import TABLE6, VARIANTS
    out = Path(out)
    shipped_dir = shipped_folder(profile)
    shipped = report.load_runs(shipped_dir) if shipped_dir.is_dir() else []
    runs_dir = out / folder(profile)
    if all_runs:
        variants = variants or tuple(report.variants_present(shipped))
        seeds = seeds or tuple(sorted({r["seed"] for r in shipped})) or (0, 1, 2)
    else:
        variants, seeds = variants or TABLE6, seeds or BOUNDED_SEEDS
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if threads is not None and threads < 1:
        raise UserError(f"threads: must be 1 or more, got {threads}")
    for folder_ in (out, runs_dir) if ablation else (out,):
        try:                                # before any work: an unwritable folder found after the runs loses them
            folder_.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"build dir {out}: cannot make {folder_} ({e.strerror})") from None
        if not os.access(folder_, os.W_OK):
            raise UserError(f"build dir {out}: {folder_} is not writable")
    fresh = None
    if ablation:
        shipped_runs = {(r["variant"], r["seed"]) for r in shipped}
        runs = [(v, s) for v in variants for s in seeds
                if not all_runs or not shipped_runs or (v, s) in shipped_runs]
        est = estimate_s(runs, runs_dir, profile, shipped)
        said = (f"about {est / 60:.0f} min on the machine the runs were trained on ({describe_machine(SHIPPED_MACHINE)}; "
                f"from their wall times; finished runs are skipped; a slower CPU takes longer)"
                if est is not None else f"no estimate (no shipped run of profile {profile})")
        print(f"reproduce: {len(runs)} runs ({', '.join(variants)}; seeds {', '.join(map(str, seeds))}; "
              f"profile {profile}) into {runs_dir}, then the notebooks: {said}", flush=True)
        from ..lab.device import torch_threads
        with torch_threads(threads or SHIPPED_MACHINE["threads"]):
            run_ablation(runs_dir, profile, runs)
        fresh = report.load_runs(runs_dir)
        fresh = [r for r in fresh if (r["variant"], r["seed"]) in set(runs)]
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ["GOCOR_FIGURES"] = str((out / "figures").resolve())
    # the kernels must use the inline backend: with MPLBACKEND=Agg (exported by the Makefile for
    # headless tests) plt.show() emits no image and the executed notebooks would lose their figures
    os.environ.pop("MPLBACKEND", None)
    rows = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb")):
        target = out / "notebooks" / path.name
        t0 = time.perf_counter()
        params = dict(parameters or {})
        if fresh is not None and all_runs and path.name.startswith("06_"):
            # notebook 06 on the fresh runs: its protocol-2 section, or its protocol-1 tables
            params["PROTOCOL2" if folder(profile) == "protocol2" else "RESULTS"] = str(runs_dir.resolve())
        pm.execute_notebook(str(path), str(target), parameters=params, cwd=str(NOTEBOOKS),
                            progress_bar=False, kernel_name="python3")
        wall = time.perf_counter() - t0
        nb = json.loads(target.read_text())
        rows.append({"notebook": path.name, "wall_time_s": round(wall, 1), "checked": checked_outputs(nb)})
        print(f"{path.name}: {wall:.1f} s")
        if update:
            shutil.copyfile(target, path)
    lines = ["# Reproduction summary", "", "| notebook | wall time (s) | checked outputs |", "|---|---:|---|"]
    for r in rows:
        checked = "<br>".join(re.sub(r"\s+", " ", c).replace("|", "\\|") for c in r["checked"]) or "-"
        lines.append(f"| {r['notebook']} | {r['wall_time_s']} | {checked} |")
    if fresh is not None:
        lines += ["", f"## Fresh runs ({runs_dir}) against the shipped ones ({shipped_dir.relative_to(ROOT)})", ""]
        check = seed_check(fresh, shipped)
        lines += [check.text, ""]
        if all_runs:
            for split in ("standard", "dynamic"):
                lines += [report.compare(fresh, shipped, split), ""]
        print(check.text.split("\n")[0])
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    if fresh is not None and check.failed:
        raise NotReproduced(f"the fresh runs do not reproduce the shipped ones; see {out / 'summary.md'}")
    return rows


class NotReproduced(Exception):
    """Raised by :func:`reproduce` after it has written everything, when :func:`seed_check` failed."""
