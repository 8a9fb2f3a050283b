"""The README's "Use GOCor in your own network" examples run as written (a doctest of sorts)."""
import os
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Use GOCor in your own network"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_examples_run(tmp_path):
    blocks = _blocks()
    assert len(blocks) == 2
    cwd = os.getcwd()
    os.chdir(tmp_path)                                   # the checkpoint example writes a file
    try:
        first, second = {}, {}
        exec(compile(blocks[0], "README block 1", "exec"), first)
        exec(compile(blocks[1], "README block 2", "exec"), second)
    finally:
        os.chdir(cwd)
    assert first["volume"].shape == (4, 256, 16, 16) and first["trace"].loss.shape == (6, 4)
    assert first["local"].shape == (4, 81, 16, 16)
    assert second["corr4"].shape == (1, 64, 8, 8) and second["losses4"] is None
    # the weights went through the authors' names and came back unchanged
    theirs = second["state"]["corr.corr_module.filter_optimizer.reg_layer.weight2"]
    assert torch.equal(second["corr"].solver.prior.weight2, theirs)
    assert (tmp_path / "GLUNet_GOCor_static.pth").exists()
