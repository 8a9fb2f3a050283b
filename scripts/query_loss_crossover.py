"""Where the global query loss's Gram form stops paying: both forms timed side by side per C.

    python scripts/query_loss_crossover.py --channels 32 64 96 128 192 256 512

GlobalGOCor in GLU-Net-GOCor's config (flexible context-aware initializer, L_r + L_q with a 3x3
prior of 16 channels, 3 steps), B=4, 16x16, forward + backward of ``out.square().mean()``, float32,
on the CPU. For each C, the same module and inputs run with ``query_loss_form`` "gram" and "volume"
in alternation (one step of each per round, the order flipped every round); printed: the median
times, the measured ratio volume / gram, the FLOP counts of :func:`gocor.query_loss.query_loss_flops`
and the ratio of seconds per FLOP of the two forms (what ``VOLUME_FLOP_COST`` is set from), and
which form "auto" picks.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gocor.module import GlobalGOCor
from gocor.query_loss import choose_query_loss_form, query_loss_flops


def time_forms(channels: int, batch: int, size: int, steps: int, rounds: int, warmup: int) -> dict:
    torch.manual_seed(0)
    module = GlobalGOCor(channels, num_iter=steps)
    ref = torch.randn(batch, channels, size, size, requires_grad=True)
    query = torch.randn(batch, channels, size, size, requires_grad=True)

    def step(form: str) -> float:
        module.solver.query_loss_form = form
        for t in (ref, query, *module.parameters()):
            t.grad = None
        t0 = time.perf_counter()
        module(ref, query).square().mean().backward()
        return time.perf_counter() - t0

    with torch.no_grad():
        outs = {}
        for form in ("gram", "volume"):
            module.solver.query_loss_form = form
            outs[form] = module(ref, query)
    err = ((outs["gram"] - outs["volume"]).abs().max() / outs["gram"].abs().max()).item()
    for _ in range(warmup):
        step("gram"), step("volume")
    times = {"gram": [], "volume": []}
    for r in range(rounds):
        for form in (("gram", "volume") if r % 2 == 0 else ("volume", "gram")):
            times[form].append(step(form))
    args = (batch, channels, (size, size), (size, size), 3, 16, steps)
    flops = {form: query_loss_flops(form, *args) for form in times}
    med = {form: statistics.median(t) for form, t in times.items()}
    module.solver.query_loss_form = "auto"
    return {"channels": channels, "gram_s": med["gram"], "volume_s": med["volume"],
            "gram_gflop": flops["gram"] / 1e9, "volume_gflop": flops["volume"] / 1e9,
            "auto": choose_query_loss_form(*args), "max_rel_difference": err}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64, 96, 128, 192, 256, 512])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={args.batch}, {args.size}x{args.size}, "
          f"{args.steps} steps, fwd+bwd, float32; median of {args.rounds} interleaved rounds")
    print("| C | gram (ms) | volume (ms) | volume / gram | GFLOP gram | GFLOP volume | s/FLOP volume / gram | auto | max rel. diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for c in args.channels:
        r = time_forms(c, args.batch, args.size, args.steps, args.rounds, args.warmup)
        per_flop = (r["volume_s"] / r["volume_gflop"]) / (r["gram_s"] / r["gram_gflop"])
        print(f"| {c} | {1e3 * r['gram_s']:.1f} | {1e3 * r['volume_s']:.1f} | {r['volume_s'] / r['gram_s']:.2f} | "
              f"{r['gram_gflop']:.2f} | {r['volume_gflop']:.2f} | {per_flop:.2f} | {r['auto']} | "
              f"{r['max_rel_difference']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
