"""scripts/gpu_check.py (``make gpu-check``) without a GPU: it stops with a clear message."""
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: make gpu-check runs for real")
def test_without_cuda_it_stops_with_a_message_and_writes_nothing(tmp_path, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    out = tmp_path / "gpu_check.json"
    assert main(["--out", str(out)]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not out.exists()
