"""Time each GOCor module of the ``gocor`` matcher alone, at the sizes the ``quick`` profile gives it:

    python scripts/time_matcher_levels.py [--batch 16] [--repeats 10]

Global GOCor with the matcher's global config (the query loss's form as "auto" picks it, and the
Gram form beside it) on (B, 64, 8, 8); local GOCor with the matcher's local config at the 1/4
level (B, 32, 16, 16) and the 1/2 level (B, 16, 32, 32). Forward + backward of
``out.square().sum()`` (gradients to both feature maps and every parameter), float32; the median
of ``--repeats`` steps after 3 warm-up steps, each module in turn.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gocor.lab.models.matcher import GLOBAL_LEVEL, LOCAL_LEVEL  # noqa: E402
from gocor.module import GlobalGOCor, LocalGOCor  # noqa: E402
from gocor.query_loss import choose_query_loss_form  # noqa: E402


def median_ms(module: torch.nn.Module, shape: tuple[int, ...], repeats: int, warmup: int = 3) -> float:
    """Median milliseconds of forward + backward of ``module`` on random features of ``shape``."""
    torch.manual_seed(0)
    ref = torch.randn(*shape, requires_grad=True)
    query = torch.randn(*shape, requires_grad=True)

    def step() -> float:
        t0 = time.perf_counter()
        module(ref, query).square().sum().backward()
        return time.perf_counter() - t0

    for _ in range(warmup):
        step()
    return 1e3 * statistics.median(step() for _ in range(repeats))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    b = args.batch
    auto = choose_query_loss_form(b, 64, (8, 8), (8, 8), 3, GLOBAL_LEVEL.prior_output_dim, GLOBAL_LEVEL.num_iter)
    cases = {f"GlobalGOCor (B, 64, 8, 8), query loss 'auto' ({auto})": (GlobalGOCor(64, GLOBAL_LEVEL), (b, 64, 8, 8)),
             "GlobalGOCor (B, 64, 8, 8), query loss 'gram'":
                 (GlobalGOCor(64, GLOBAL_LEVEL.replace(query_loss_form="gram")), (b, 64, 8, 8)),
             "LocalGOCor (B, 32, 16, 16), the 1/4 level": (LocalGOCor(32, LOCAL_LEVEL), (b, 32, 16, 16)),
             "LocalGOCor (B, 16, 32, 32), the 1/2 level": (LocalGOCor(16, LOCAL_LEVEL), (b, 16, 32, 32))}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={b}, fwd+bwd, median of {args.repeats}")
    result = {}
    for name, (module, shape) in cases.items():
        result[name] = median_ms(module, shape, args.repeats)
        print(f"{name}: {result[name]:.1f} ms")
    return result


if __name__ == "__main__":
    main()
