"""``python -m gocor bench``: time, peak memory and FLOPs of the correlation layers vs GOCor.

Each case runs forward + backward (gradients to the features and to every parameter)
in a fresh subprocess, so that peak memory (CUDA: allocator peak; CPU: growth of the
peak resident set) is measured for that case alone. The machine's peak matmul rate is
measured in the same process right after the timing, and the case's floor taken from it, so
that time and floor see the same machine state. The floor is algorithmic: the FLOPs the
operation needs (:func:`needed_flops`: 2·B·C·H·W·(2r+1)² per local correlation pass, the
cheaper form of the query loss) at that rate, not the implementation's own FLOPs, which are
reported beside it.
"""
from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from ..correlation import global_correlation, local_correlation
from ..lab.device import default_device
from ..module import GlobalGOCor, LocalGOCor
from .cost import count_flops

CASES = {
    "global correlation": dict(kind="global", size=16),
    "GlobalGOCor (GLU-Net-GOCor, 3 steps)": dict(kind="global", size=16, gocor=True, num_iter=3),
    "global correlation, C=512": dict(kind="global", size=16, channels=512),
    "GlobalGOCor (GLU-Net-GOCor, 3 steps), C=512": dict(kind="global", size=16, gocor=True, num_iter=3,
                                                         channels=512),
    "local correlation r=4": dict(kind="local", size=64),
    "LocalGOCor r=4, 3 steps": dict(kind="local", size=64, gocor=True, num_iter=3),
    "LocalGOCor r=4, 7 steps": dict(kind="local", size=64, gocor=True, num_iter=7),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_time(step, device: torch.device, repeats: int, warmup: int) -> float:
    """Median seconds of ``repeats`` calls of ``step`` after ``warmup`` more (steady state)."""
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_case(name: str, batch: int, channels: int, device: torch.device | None = None):
    """(forward, leaves) of a benchmark case: a closure returning its volume and the tensors
    that receive gradients (both features and every parameter)."""
    case, device = CASES[name], default_device(device)
    channels = case.get("channels", channels)
    torch.manual_seed(0)
    s = case["size"]
    ref = torch.randn(batch, channels, s, s, device=device, requires_grad=True)
    query = torch.randn(batch, channels, s, s, device=device, requires_grad=True)
    if not case.get("gocor"):
        layer = global_correlation if case["kind"] == "global" else local_correlation
        return (lambda: layer(ref, query)), [ref, query]
    module = (GlobalGOCor(channels) if case["kind"] == "global" else LocalGOCor(channels)).to(device)
    return (lambda: module(ref, query, num_iter=case["num_iter"])), [ref, query, *module.parameters()]


def run_case(name: str, batch: int = 4, channels: int = 64, repeats: int = 10, warmup: int = 3) -> dict:
    """Measure one case in this process: peak memory of the first step, then the median time
    of ``repeats`` steps after ``warmup`` more (steady state, as in a training loop)."""
    device = default_device()
    forward, leaves = make_case(name, batch, channels, device)

    def step():
        for t in leaves:
            t.grad = None
        forward().square().mean().backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()
    _sync(device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    t = median_time(step, device, repeats, warmup)
    rate = machine_rate(device)        # right after the timing, so both see the same machine state
    mm, ew = count_flops(step)
    need = needed_flops(name, batch, channels)
    return {"case": name, "seconds": t, "peak_mib": peak / 2**20, "matmul_gflop": mm / 1e9,
            "needed_gflop": need / 1e9, "elementwise_gflop": ew / 1e9, "gflops": (mm + ew) / 1e9 / t,
            "device": str(device), "channels": CASES[name].get("channels", channels),
            "machine_gflops": rate, "floor_seconds": need / 1e9 / rate}


def needed_flops(name: str, batch: int, channels: int) -> float:
    """The matmul FLOPs a case needs, forward + backward, whatever the implementation: each
    correlation pass (apply, transpose, or the gradient wrt the features) costs 2·B·C·N·M for N
    filters and M partners each (local: M = (2r+1)²); correlation is 3 passes, GOCor's unrolled
    steps 6·steps + 6 (forward 2·steps + 2, the reverse pass twice that), plus the query loss
    in its cheaper exact form: the Gram form as :func:`gocor.query_loss.query_loss_flops` counts
    it, the volume form at its forward and one transposed product per application (half that
    count: a written-out reverse pass shares the rest, so a floor may not count it). The
    initializers' few FLOPs and every elementwise one are left out."""
    from ..query_loss import query_loss_flops
    case = CASES[name]
    c, n = case.get("channels", channels), case["size"] ** 2
    partners = n if case["kind"] == "global" else (2 * 4 + 1) ** 2
    per_pass = 2 * batch * c * n * partners
    if not case.get("gocor"):
        return 3 * per_pass
    steps = case["num_iter"]
    total = (6 * steps + 6) * per_pass
    if case["kind"] == "global":             # GLU-Net-GOCor's prior: 3x3, 16 channels
        size = (case["size"], case["size"])
        args = (batch, c, size, size, 3, 16, steps)
        total += min(query_loss_flops("gram", *args), query_loss_flops("volume", *args) / 2)
    return total


def machine_rate(device: torch.device) -> float:
    """Best measured float32 GFLOP/s: a large matmul, and the batched matmul GOCor's query
    loss spends most of its time in (B=4 patch rows times the 576x576 Gram, at the benchmark's size)."""
    a = torch.randn(2048, 2048, device=device)
    x, q = torch.randn(4, 256, 576, device=device), torch.randn(4, 576, 576, device=device)
    rates = []
    for fn, flops in ((lambda: a @ a, 2 * 2048**3), (lambda: torch.bmm(x, q), 2 * 4 * 256 * 576 * 576)):
        fn()
        _sync(device)
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            ts.append(time.perf_counter() - t0)
        rates.append(flops / min(ts) / 1e9)
    return max(rates)


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


MATCHER_MODELS = ("corr", "gocor")


def run_matcher_case(model: str, profile: str = "quick", repeats: int = 10, warmup: int = 3,
                     autocast: torch.dtype | None = None) -> dict:
    """Median time of one training step (forward, backward, optimizer) of a matcher at the
    profile's image size and batch, on a batch from the training pool; forward and loss under
    ``torch.autocast`` to ``autocast`` (e.g. torch.bfloat16) when given."""
    import contextlib
    from ..lab.models.matcher import Matcher, multiscale_loss
    from ..lab.runs.train import PROFILES, matcher_config, run_config, training_batch
    # the step does not depend on the pool's size
    cfg = run_config(model, profile, pool_size=2 * PROFILES[profile].batch_size)
    device = default_device()
    torch.manual_seed(0)
    net = Matcher(matcher_config(model, cfg.image_size)).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    batch = training_batch(cfg, 0, device=device)

    def step():
        cast = (torch.autocast(device.type, dtype=autocast) if autocast is not None
                else contextlib.nullcontext())
        with cast:
            loss = multiscale_loss(net(batch["source"], batch["target"]), batch["flow"], batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"case": f"train step {model}", "seconds": median_time(step, device, repeats, warmup), "batch": cfg.batch_size,
            "image_size": cfg.image_size, "device": str(device),
            "autocast": None if autocast is None else str(autocast).removeprefix("torch.")}


def run_data_case(profile: str = "quick", repeats: int = 20) -> dict:
    """Data per training batch: read from the pool (what training does) against making the pairs
    (what it did before the pool), and the pool's one-time cost per pair."""
    from dataclasses import replace

    from ..lab.data.pool import make_pool, pool_batch
    from ..lab.runs.train import PROFILES
    cfg = PROFILES[profile]
    pcfg = replace(cfg.pool, size=4 * cfg.batch_size)
    t0 = time.perf_counter()
    pool = make_pool(pcfg)
    make = (time.perf_counter() - t0) / pcfg.size
    times = []
    for step in range(repeats):
        t0 = time.perf_counter()
        pool_batch(pool, pcfg, step, seed=0)
        times.append(time.perf_counter() - t0)
    return {"case": "data per batch", "seconds": statistics.median(times), "make_seconds": make * cfg.batch_size,
            "make_per_pair_seconds": make, "batch": cfg.batch_size, "image_size": cfg.image_size}


def run_matchers(profile: str = "quick") -> list[dict]:
    """The matcher rows, each in a fresh subprocess (as the layer rows)."""
    calls = [f"run_matcher_case({m!r}, {profile!r})" for m in MATCHER_MODELS] + [f"run_data_case({profile!r})"]
    rows = []
    for call in calls:
        cmd = [sys.executable, "-c", f"import json; from gocor.tools.bench import *; print(json.dumps({call}))"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def format_matchers(rows: list[dict], profile: str = "quick") -> str:
    """Markdown for :func:`run_matchers`, with the ratios the targets are stated in."""
    by = {r["case"]: r for r in rows}
    corr, gocor, data = by["train step corr"], by["train step gocor"], by["data per batch"]
    return "\n".join([
        f"Matcher training, `{profile}` profile (B={corr['batch']}, {corr['image_size']} px), on {corr['device']}:",
        "",
        "| | time (ms) | ratio |", "|---|---:|---:|",
        f"| training step, `corr` | {1e3 * corr['seconds']:.0f} | 1.00 |",
        f"| training step, `gocor` | {1e3 * gocor['seconds']:.0f} | {gocor['seconds'] / corr['seconds']:.2f}× corr |",
        f"| data per batch, from the pool | {1e3 * data['seconds']:.1f} | {data['seconds'] / corr['seconds']:.1%} of a corr step |",
        f"| data per batch, made on the fly (before the pool) | {1e3 * data['make_seconds']:.0f} | "
        f"{data['make_seconds'] / corr['seconds']:.0%} of a corr step |",
    ])


def run_all(batch: int = 4, channels: int = 64) -> dict:
    rows = []
    for name in CASES:
        cmd = [sys.executable, "-c",
               f"import json; from gocor.tools.bench import run_case; "
               f"print(json.dumps(run_case({name!r}, {batch}, {channels})))"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return {"machine": machine_description(default_device()), "torch": torch.__version__,
            "batch": batch, "channels": channels, "rows": rows, "matcher_rows": run_matchers()}


def format_table(result: dict) -> str:
    rates = [r["machine_gflops"] for r in result["rows"]]
    lines = [f"Machine: {result['machine']}, torch {result['torch']}; measured peak "
             f"{min(rates):.0f}-{max(rates):.0f} GFLOP/s (float32 matmul, after each case). "
             f"B={result['batch']}, C={result['channels']} unless the row says, global 16x16, local 64x64, "
             "forward+backward. Floor: the FLOPs the operation needs (GFLOP needed) at the measured peak.",
             "",
             "| layer | time (ms) | peak mem (MiB) | GFLOP needed | GFLOP matmul/conv done | GFLOP elementwise "
             "| GFLOP/s | time / floor |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    # a case that ran faster than the peak measured after it: that peak is not one, nor its floor
    dipped = lambda r: r["gflops"] > r["machine_gflops"]
    for r in result["rows"]:
        ratio = r["seconds"] / r["floor_seconds"] if r["floor_seconds"] > 0 else float("nan")
        mark = " (peak dipped)" if dipped(r) else ""
        lines.append(f"| {r['case']} | {1e3 * r['seconds']:.1f} | {r['peak_mib']:.1f} | {r['needed_gflop']:.3f} | "
                     f"{r['matmul_gflop']:.3f} | {r['elementwise_gflop']:.3f} | {r['gflops']:.1f} | {ratio:.1f}x{mark} |")
    if any(map(dipped, result["rows"])):
        lines += ["", "(peak dipped): the case ran faster than the peak measured after it, so that peak, "
                  "and the row's floor, are not a bound: the machine was busy; run the bench again."]
    return "\n".join(lines)
