"""Time a training step of two matcher variants side by side in one process (default: ``gocor``
against ``corr`` at the ``quick`` profile, the CPU training profile):

    python scripts/time_train_step.py [--variants corr gocor] [--profile quick] [--rounds 15]

Each variant's matcher, optimizer (AdamW) and one training batch of the profile are built once;
after warm-up steps the variants take one training step each per round (forward, loss, backward,
optimizer step), the order flipped every round, so that both see the same machine state. Prints
the median step of each and the median of the per-round ratios to the first variant.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gocor.lab.models.matcher import Matcher, multiscale_loss  # noqa: E402
from gocor.lab.runs.train import PROFILES, matcher_config, run_config, training_batch  # noqa: E402


def make_step(variant: str, profile: str):
    """A function running one training step of ``variant`` (on a fixed batch of the profile)."""
    cfg = run_config(variant, profile, pool_size=2 * PROFILES[profile].batch_size)
    torch.manual_seed(0)
    net = Matcher(matcher_config(variant, cfg.image_size)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    batch = training_batch(cfg, 0)

    def step() -> float:
        t0 = time.perf_counter()
        loss = multiscale_loss(net(batch["source"], batch["target"]), batch["flow"], batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step, cfg


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", default=["corr", "gocor"])
    p.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    for name, least in (("threads", 1), ("warmup", 0), ("rounds", 1)):
        if getattr(args, name) < least:
            p.error(f"--{name} must be {least} or more, got {getattr(args, name)}")
    from gocor.lab.errors import UserError
    from gocor.lab.runs.variants import variant
    for name in args.variants:
        try:
            variant(name)
        except UserError as e:
            p.error(f"--variants: {e}")
    torch.set_num_threads(args.threads)
    steps = {}
    for name in args.variants:
        steps[name], cfg = make_step(name, args.profile)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    order = list(steps)
    for r in range(args.rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            times[name].append(steps[name]())
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    base = order[0]
    print(f"load average before / after: {load_before} / {load} ({os.cpu_count()} CPUs)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, profile {args.profile} "
          f"(B={cfg.batch_size}, {cfg.image_size} px), median of {args.rounds} interleaved rounds")
    result = {}
    for name in order:
        ratios = [t / b for t, b in zip(times[name], times[base])]
        result[name] = {"ms": 1e3 * statistics.median(times[name]), "ratio": statistics.median(ratios)}
        print(f"{name:>16}: {result[name]['ms']:7.1f} ms per step, {result[name]['ratio']:.2f}x {base}")
    return result


if __name__ == "__main__":
    main()
