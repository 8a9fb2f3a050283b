"""Parity with vectors recorded from the authors' implementation (float64)."""
import pytest
import torch

from conftest import REFERENCES, load_reference
from gocor.compat import from_official, to_official_state_dict


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_all_reference_files_present():
    assert len(REFERENCES) == 7


@pytest.mark.parametrize("form", ["gram", "volume"])
@pytest.mark.parametrize("name", REFERENCES)
def test_output_and_input_gradients_match(name, form, device):
    """Both forms of the global query loss (the Gram matrix, the volume) match the authors."""
    ref = load_reference(name, device)
    module = from_official(ref["config"], ref["state_dict"], query_loss_form=form).to(device)
    f_r = ref["reference_feat"].clone().requires_grad_()
    f_q = ref["query_feat"].clone().requires_grad_()
    out = module(f_r, f_q)
    assert out.shape == ref["output"].shape and out.dtype == torch.float64
    (out * ref["probe"]).sum().backward()
    assert rel(out, ref["output"]) <= 1e-9
    assert rel(f_r.grad, ref["grad_reference_feat"]) <= 1e-9
    assert rel(f_q.grad, ref["grad_query_feat"]) <= 1e-9


@pytest.mark.parametrize("name", REFERENCES)
def test_wrong_parameters_break_parity(name):
    """The parity check is sharp: nudging one learned weight moves the output. With solver steps
    the objective's label map; with none (the initializer alone) an initializer weight."""
    ref = load_reference(name)
    sd = dict(ref["state_dict"])
    steps = ref["config"]["official_args"]["optim_iter"]
    suffix = "label_map_predictor.weight" if steps > 0 else "filter_initializer.target_fg"
    key = next(k for k in sd if k.endswith(suffix))
    sd[key] = sd[key] * 1.01
    out = from_official(ref["config"], sd)(ref["reference_feat"], ref["query_feat"])
    assert rel(out, ref["output"]) > 1e-9


@pytest.mark.parametrize("name", REFERENCES)
def test_state_dict_round_trip(name):
    ref = load_reference(name)
    module = from_official(ref["config"], ref["state_dict"])
    back = to_official_state_dict(module)
    assert set(back) == set(ref["state_dict"])
    for k, v in ref["state_dict"].items():
        assert back[k].shape == v.shape and torch.equal(back[k], v)
