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


def test_protocol2_tables_are_the_shipped_records():
    """Every table row of the protocol-v2 report, computed from data/results/protocol2, is in the
    README's protocol-v2 section as printed (a re-shipped run that changes a number fails this
    until `python scripts/results_tables.py protocol2` is pasted again)."""
    from gocor.lab.runs import protocol2, report
    text = README.read_text()
    section = text[text.index("## Protocol v2"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line for line in protocol2.markdown(report.load_runs(protocol2.FOLDER)).splitlines()
            if line.startswith("| ") and not line.startswith("| step") and not line.startswith("| variant")]
    assert len(rows) > 30
    missing = [row for row in rows if row not in section]
    assert not missing, f"{len(missing)} rows not in the README, first: {missing[0]}"
