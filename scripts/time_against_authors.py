"""Time the kit's GlobalGOCor against the authors' implementation, side by side in one process.

    python scripts/time_against_authors.py --authors /path/to/your/checkout/of/PruneTruong/GOCor

The authors' code (https://github.com/PruneTruong/GOCor, CC BY-NC-SA 4.0) is not part of this kit
and is not downloaded by this script: point ``--authors`` at your own checkout. Their module is
imported from there; nothing of it is copied.

What is timed: the GLU-Net-GOCor global module (``GlobalGOCorWithFlexibleContextAwareInitializer``,
query loss with a 3x3 prior of 16 channels, 3 steps), forward + backward (gradients to both feature
maps and every parameter) of ``out.square().mean()``, float32, on the CPU. Both modules get the same
weights (the authors' initial ones, loaded into the kit with ``gocor.compat.from_official``) and the
same inputs; their outputs are checked to agree before timing. After warm-up steps, the two are
timed in alternation (one step of each per round, the order flipped every round) so that both see
the same machine state; the script prints the median of the rounds for each and the median of the
per-round ratios. ``--forms auto gram volume`` times the kit once per form of its query loss
(``GOCorConfig.query_loss_form``; "auto" is the default, picked by cost), side by side.

Their package imports its CUDA-only local correlation (cupy kernels, a CUDA stream) at import time;
the global module does not use it. Without CUDA, an inert stand-in for that one submodule is
registered so that the import succeeds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch

from gocor.compat import from_official


def _stub_local_correlation() -> None:
    """Stand in for GOCor.local_correlation.correlation (CUDA-only; unused by the global module)."""
    if torch.cuda.is_available():
        return

    def unavailable(*args, **kwargs):
        raise RuntimeError("the authors' local correlation needs CUDA and cupy")

    stub = types.ModuleType("GOCor.local_correlation.correlation")
    stub.FunctionCorrelation = stub.FunctionCorrelationTranspose = unavailable
    sys.modules[stub.__name__] = stub


def authors_class(path: Path):
    if not (path / "GOCor" / "global_gocor_modules.py").is_file():
        raise SystemExit(f"{path} does not look like a checkout of PruneTruong/GOCor "
                         "(no GOCor/global_gocor_modules.py)")
    _stub_local_correlation()
    sys.path.insert(0, str(path))
    from GOCor.global_gocor_modules import GlobalGOCorWithFlexibleContextAwareInitializer
    return GlobalGOCorWithFlexibleContextAwareInitializer


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--authors", type=Path, required=True, help="your checkout of PruneTruong/GOCor")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--forms", nargs="+", default=["auto"], choices=["auto", "gram", "volume"],
                   help="the kit's query-loss forms to time (one contestant each)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    official_args = {"optim_iter": args.steps, "apply_query_loss": True, "reg_kernel_size": 3,
                     "reg_inter_dim": 16, "reg_output_dim": 16, "num_features": args.channels}
    torch.manual_seed(0)
    theirs = authors_class(args.authors)(official_args)
    config = {"kind": "global", "official_class": "GlobalGOCorWithFlexibleContextAwareInitializer",
              "official_args": official_args, "feature_dim": args.channels}
    state = {k: v.detach().clone() for k, v in theirs.state_dict().items()}
    kits = {f"kit ({form})": from_official(config, state, query_loss_form=form) for form in args.forms}

    shape = (args.batch, args.channels, args.size, args.size)
    ref = torch.randn(shape, requires_grad=True)
    query = torch.randn(shape, requires_grad=True)
    modules = {"authors": (theirs, lambda: theirs(ref, query)[0])}
    modules.update({name: (m, (lambda m=m: m(ref, query))) for name, m in kits.items()})
    with torch.no_grad():
        a = modules["authors"][1]()
        for name in kits:
            b = modules[name][1]()
            err = ((a - b).abs().max() / a.abs().max()).item()
            print(f"{name}: outputs agree with the authors': max |difference| / max |output| = {err:.1e}")
            if err > 1e-4:
                raise SystemExit("the two outputs differ: not the same computation")

    def step(name):
        module, forward = modules[name]
        for t in (ref, query, *module.parameters()):
            t.grad = None
        t0 = time.perf_counter()
        forward().square().mean().backward()
        return time.perf_counter() - t0

    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    for _ in range(args.warmup):
        for name in modules:
            step(name)
    times = {name: [] for name in modules}
    order = list(modules)
    for r in range(args.rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            times[name].append(step(name))
    med = {name: statistics.median(t) for name, t in times.items()}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average before / after: {load_before} / {load} ({os.cpu_count()} CPUs)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={args.batch}, C={args.channels}, "
          f"{args.size}x{args.size}, {args.steps} steps, fwd+bwd, float32; median of {args.rounds} interleaved rounds")
    for name, t in times.items():
        print(f"{name:12s} {1000 * med[name]:8.1f} ms   (min {1000 * min(t):.1f}, max {1000 * max(t):.1f})")
    for name in kits:
        ratio = statistics.median(k / a for k, a in zip(times[name], times["authors"]))
        print(f"{name} / authors: {ratio:.3f} (median of per-round ratios); authors / {name}: {1 / ratio:.1f}x")


if __name__ == "__main__":
    main()
