import pytest
import torch

from conftest import load_reference
from gocor.compat import from_official, split_glunet_gocor, to_official_state_dict


def test_glunet_checkpoint_split():
    g = load_reference("global_flexctx_ref_query.npz")
    l = load_reference("local_simple_ref.npz")
    ckpt = {"corr." + k: v for k, v in g["state_dict"].items()}
    ckpt.update({"local_corr." + k: v for k, v in l["state_dict"].items()})
    ckpt["decoder4.0.weight"] = torch.zeros(3)
    glob, loc = split_glunet_gocor(ckpt)
    out_g = from_official(g["config"], glob)(g["reference_feat"], g["query_feat"])
    out_l = from_official(l["config"], loc)(l["reference_feat"], l["query_feat"])
    assert (out_g - g["output"]).norm() <= 1e-9 * g["output"].norm()
    assert (out_l - l["output"]).norm() <= 1e-9 * l["output"].norm()


def test_split_without_gocor_raises():
    with pytest.raises(KeyError, match="no GOCor"):
        split_glunet_gocor({"decoder.weight": torch.zeros(1)})


def test_unknown_class_and_keys():
    ref = load_reference("global_simple_ref.npz")
    with pytest.raises(ValueError, match="unsupported official class"):
        from_official(dict(ref["config"], official_class="Nope"), ref["state_dict"])
    with pytest.raises(KeyError, match="unexpected"):
        from_official(ref["config"], dict(ref["state_dict"], extra=torch.zeros(1)))
    sd = dict(ref["state_dict"])
    sd.pop("corr_module.filter_optimizer.filter_reg")
    with pytest.raises(KeyError, match="missing"):
        from_official(ref["config"], sd)


def test_float32_load():
    ref = load_reference("local_simple_ref.npz")
    sd32 = {k: v.float() for k, v in ref["state_dict"].items()}
    m = from_official(ref["config"], sd32)
    out = m(ref["reference_feat"].float(), ref["query_feat"].float())
    assert ((out.double() - ref["output"]).norm() / ref["output"].norm()) < 1e-5
    assert set(to_official_state_dict(m)) == set(ref["state_dict"])


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoint_loads_into_a_float32_module(half):
    """Weights saved in half precision load exactly into a float32 module that runs (a half
    module is refused by forward: before, from_official built one and the first call raised)."""
    ref = load_reference("global_flexctx_ref_query.npz")
    sd_half = {k: v.to(half) for k, v in ref["state_dict"].items()}
    m = from_official(ref["config"], sd_half)
    assert {p.dtype for p in m.parameters()} == {torch.float32}
    for k, v in to_official_state_dict(m).items():
        assert torch.equal(v, sd_half[k].float())
    out = m(ref["reference_feat"].float(), ref["query_feat"].float())
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
