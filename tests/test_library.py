"""The layer used as a library in someone else's network: second order, autocast, config values,
the authors' checkpoints, layout options and the NaN check (issue 17). Each class pins down a way
the layer used to be silently wrong."""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, load_reference
from gocor import GOCorConfig, GlobalGOCor, LocalGOCor
from gocor.compat import (config_from_official, from_official, split_glunet_gocor, split_pwcnet_gocor,
                          to_official_state_dict)
from gocor.correlation import LocalCorrelation


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


class TestSecondOrder:
    """The solver's backward is written out once: create_graph=True must raise, not return numbers
    60-99% off (once_differentiable's error never fires for autograd.grad(inputs=...))."""

    def _setup(self):
        torch.manual_seed(0)
        m = GlobalGOCor(3, prior_inter_dim=2, prior_output_dim=2).double()
        ref, query = torch.randn(2, 1, 3, 3, 3, dtype=torch.float64)
        return m, ref.requires_grad_(), query

    def test_double_backward_raises(self):
        m, ref, query = self._setup()
        with pytest.raises(RuntimeError, match="differentiable once"):
            (g,) = torch.autograd.grad(m(ref, query).square().sum(), ref, create_graph=True)
            torch.autograd.grad(g.square().sum(), ref)

    def test_hvp_raises(self):
        m, ref, query = self._setup()
        f = lambda r: m(r, query).square().sum()
        with pytest.raises(RuntimeError, match="differentiable once"):
            torch.autograd.functional.hvp(f, ref.detach(), torch.ones_like(ref))

    def test_first_order_is_unchanged(self):
        m, ref, query = self._setup()
        assert torch.autograd.gradcheck(lambda r: m(r, query, num_iter=2), (ref,), eps=1e-6, atol=1e-7)


AUTOCAST_CASES = [("global", True), ("global", False), ("local", False), ("local", True)]
AMP_DEVICES = [("cpu", torch.float16), ("cpu", torch.bfloat16),
               pytest.param("cuda", torch.float16, marks=pytest.mark.skipif(
                   not torch.cuda.is_available(), reason="no CUDA device"))]


def _amp_module(kind, query_loss, device):
    torch.manual_seed(1)
    if kind == "global":
        m = GlobalGOCor(32, query_loss=query_loss, prior_inter_dim=4, prior_output_dim=4)
    else:
        m = LocalGOCor(32, query_loss=query_loss, search_radius=2, prior_inter_dim=4, prior_output_dim=4)
    return m.to(device)


class TestAutocast:
    """Under autocast the solve runs in float32 and the result comes back in the callers' dtype:
    finite and within 1% of float32 (float16 used to give a 100% NaN global volume)."""

    @pytest.mark.parametrize("device,dtype", AMP_DEVICES)
    @pytest.mark.parametrize("kind,query_loss", AUTOCAST_CASES)
    def test_forward_and_backward_match_float32(self, kind, query_loss, device, dtype):
        m = _amp_module(kind, query_loss, device)
        g = torch.Generator().manual_seed(2)
        # features representable in ``dtype``, so float32 sees the same inputs
        feats = [(torch.randn(2, 32, 8, 8, generator=g) * 3).to(dtype).float().to(device) for _ in range(2)]
        ref32, query32 = (f.clone().requires_grad_() for f in feats)
        want = m(ref32, query32)
        want.square().sum().backward()
        ref, query = (f.to(dtype).requires_grad_() for f in feats)      # what an autocast backbone gives
        with torch.autocast(device, dtype=dtype):
            out = m(ref, query)
            out.float().square().sum().backward()                       # backward inside autocast too
        assert out.dtype == dtype
        assert torch.isfinite(out).all() and torch.isfinite(ref.grad).all() and torch.isfinite(query.grad).all()
        assert _rel(out, want) < 1e-2
        assert _rel(ref.grad, ref32.grad) < 1e-2 and _rel(query.grad, query32.grad) < 1e-2

    def test_float32_features_under_autocast_give_the_float32_volume(self):
        m = _amp_module("global", True, "cpu")
        ref, query = torch.randn(2, 2, 32, 6, 6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(ref, query)
        assert out.dtype == torch.float32 and torch.equal(out, m(ref, query))

    def test_a_warped_query_in_float32_is_accepted_under_autocast(self):
        m = _amp_module("local", False, "cpu")
        ref, query = torch.randn(2, 2, 32, 6, 6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(ref.bfloat16(), query)                  # grid_sample returns float32 under autocast
        assert out.dtype == torch.float32 and _rel(out, m(ref.bfloat16().float(), query)) < 1e-6
        with pytest.raises(TypeError, match="dtype mismatch"):   # outside autocast a mix stays an error
            m(ref.bfloat16(), query)


class TestCompatSearchSize:
    def test_search_size_is_the_window_width(self):
        ref = load_reference("local_simple_ref.npz")
        config = dict(ref["config"], official_args=dict(ref["config"]["official_args"], search_size=9))
        kind, _, cfg = config_from_official(config)
        assert cfg.search_radius == 4
        out = from_official(config, ref["state_dict"])(ref["reference_feat"], ref["query_feat"])
        assert out.shape[1] == 81 and _rel(out, ref["output"]) < 1e-9

    @pytest.mark.parametrize("size", [8, 0, 9.0])
    def test_other_sizes_raise(self, size):
        ref = load_reference("local_simple_ref.npz")
        config = dict(ref["config"], official_args={"search_size": size})
        with pytest.raises(ValueError, match="search_size"):
            config_from_official(config)


def _authors_local_prior(volume, w1, w2, k):
    """Their SeparableConv4d on a local volume (B, k·k displacements, H, W), as in their
    local_gocor.py: read as (B, 9, 9, H, W); weight1 convolves the last two dims (reference H, W),
    then weight2 the first two (the displacements). Written here from the description, plainly."""
    b, _, h, w = volume.shape
    x = volume.reshape(b * k * k, 1, h, w)
    x = F.conv2d(x, w1, padding=w1.shape[-1] // 2)                       # (B·k², I, H, W)
    inter = w1.shape[0]
    x = x.reshape(b, k, k, inter, h, w).permute(0, 4, 5, 3, 1, 2).reshape(b * h * w, inter, k, k)
    x = F.conv2d(x, w2, padding=w2.shape[-1] // 2)                       # (B·H·W, O, k, k)
    return x.reshape(b, -1)


class TestCompatLocalQueryLoss:
    """The authors' local query loss: weight1 over the reference dims, weight2 over the 9×9
    displacements (the kit's own local prior reads them the other way round)."""

    def _module(self):
        ref = load_reference("local_simple_ref.npz")
        args = dict(ref["config"]["official_args"], apply_query_loss=True, reg_inter_dim=3, reg_output_dim=2)
        g = torch.Generator().manual_seed(3)
        sd = dict(ref["state_dict"])
        sd["filter_optimizer.reg_layer.weight1"] = torch.randn(3, 1, 3, 3, generator=g, dtype=torch.float64)
        sd["filter_optimizer.reg_layer.weight2"] = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64)
        return ref, from_official(dict(ref["config"], official_args=args), sd)

    def test_query_loss_is_theirs(self):
        ref, m = self._module()
        assert m.config.prior_weight1_dims == "reference"
        feat, query = ref["reference_feat"][:, :, :6, :5], ref["query_feat"][:, :, :6, :5]
        w = torch.randn_like(feat)
        volume = LocalCorrelation(query, 4).apply(w)
        p = m.solver.prior
        want = 0.5 * _authors_local_prior(volume, p.weight1, p.weight2, 9).square().sum(1)
        got = m.solver.objective(w, m.operator(feat), m.operator(query))["L_q"]
        assert _rel(got, want) < 1e-12
        # the kit's reading (weight1 over the displacements) is a different loss
        kit = LocalGOCor(None, m.config.replace(prior_weight1_dims="query")).double()
        kit.load_state_dict(m.state_dict())
        assert _rel(kit.solver.objective(w, kit.operator(feat), kit.operator(query))["L_q"], want) > 0.05

    def test_solver_gradient_is_the_definition_s(self):
        """One solver step from w0 moves along the gradient of theirs L_r + L_q + reg."""
        ref, m = self._module()
        feat, query = ref["reference_feat"][:, :, :6, :5], ref["query_feat"][:, :, :6, :5]
        w1 = m.filters(feat, query, num_iter=1)
        w0 = m.initializer(feat).detach().requires_grad_()
        p = m.solver.prior
        lq = 0.5 * _authors_local_prior(LocalCorrelation(query, 4).apply(w0), p.weight1, p.weight2, 9).square().sum()
        obj = m.solver.objective(w0, m.operator(feat), m.operator(query))
        (grad,) = torch.autograd.grad(obj["L_r"].sum() + obj["reg"].sum() + lq, w0)
        step = (w0 - w1).detach()
        per_image = lambda x: x.flatten(1)
        cos = F.cosine_similarity(per_image(step), per_image(grad), dim=1)
        assert (cos > 1 - 1e-10).all()


class TestConfigValidation:
    @pytest.mark.parametrize("field,value,error", [
        ("num_iter", -1, ValueError), ("num_iter", 1.5, TypeError), ("num_iter", True, TypeError),
        ("search_radius", 2.5, TypeError), ("search_radius", -1, ValueError),
        ("bin_displacement", 0, ValueError), ("num_dist_bins", 0, ValueError),
        ("init_step_length", 0.0, ValueError), ("init_step_length", -1.0, ValueError),
        ("prior_kernel_size", 2, ValueError), ("min_filter_reg", -1e-5, ValueError),
        ("init_filter_reg", float("nan"), TypeError), ("prior_weight1_dims", "both", ValueError),
    ])
    def test_bad_values_raise_naming_the_field(self, field, value, error):
        with pytest.raises(error, match=field):
            GOCorConfig(**{field: value})
        with pytest.raises(error, match=field):
            GlobalGOCor(4, **{field: value})

    @pytest.mark.parametrize("feature_dim", [0, -3, 2.0])
    def test_feature_dim(self, feature_dim):
        with pytest.raises(ValueError, match="feature_dim"):
            LocalGOCor(feature_dim)

    def test_num_iter_at_the_call(self):
        m = LocalGOCor(4)
        x = torch.randn(1, 4, 5, 5)
        with pytest.raises(ValueError, match="num_iter"):
            m(x, x, num_iter=-1)

    def test_defaults_per_kind(self):
        assert LocalGOCor(4, GOCorConfig(initializer="simple")).config.query_loss is False
        assert LocalGOCor(4, GOCorConfig()).config.initializer == "simple"
        assert GlobalGOCor(4, GOCorConfig(initializer="simple")).config.query_loss is True
        assert GlobalGOCor(4, GOCorConfig()).config.initializer == "flexible_context"
        with pytest.raises(TypeError, match="unknown GOCorConfig field"):
            GlobalGOCor(4, num_iters=3)

    def test_gauss_sigma_zero_is_a_delta_label(self):
        labels = GlobalGOCor(4, init_gauss_sigma=0.0).solver.labels
        assert torch.isfinite(labels.label).all() and labels.label[0] == 1 and labels.label[1:].eq(0).all()


def _glunet_checkpoint():
    """A GLU-Net-GOCor checkpoint in the authors' format: their parameter names under corr. and
    local_corr., other network weights beside them, all inside {"state_dict": ..., "epoch": ...}."""
    g = load_reference("global_flexctx_ref_query.npz")
    loc = load_reference("local_simple_ref.npz")
    sd = {"corr." + k: v for k, v in g["state_dict"].items()}
    sd.update({"local_corr." + k: v for k, v in loc["state_dict"].items()})
    sd["decoder4.0.weight"] = torch.zeros(3)
    return {"state_dict": sd, "epoch": 100}, g, loc


class TestAuthorsCheckpoints:
    def test_full_torch_load_dict(self, tmp_path):
        ckpt, g, loc = _glunet_checkpoint()
        torch.save(ckpt, tmp_path / "GLUNet_GOCor_static.pth")
        loaded = torch.load(tmp_path / "GLUNet_GOCor_static.pth", map_location="cpu", weights_only=True)
        glob, local = split_glunet_gocor(loaded)
        assert _rel(from_official(g["config"], glob)(g["reference_feat"], g["query_feat"]), g["output"]) < 1e-9
        assert _rel(from_official(loc["config"], local)(loc["reference_feat"], loc["query_feat"]), loc["output"]) < 1e-9
        assert from_official(g["config"], {"state_dict": {k[5:]: v for k, v in ckpt["state_dict"].items()
                                                          if k.startswith("corr.")}}) is not None

    def test_their_argument_names_and_default_feature_dim(self):
        g = load_reference("global_flexctx_ref_query.npz")
        args = {k: v for k, v in g["config"]["official_args"].items() if k != "num_features"}
        config = {"official_class": g["config"]["official_class"], "official_args": dict(args, init_gauss_sigma_DIMP=1.0)}
        assert config_from_official(config)[1] == 512                    # their default
        with pytest.raises(ValueError, match="feature_dim=16"):          # the checkpoint has 16 channels
            from_official(config, g["state_dict"])
        m = from_official(dict(config, feature_dim=16), g["state_dict"])
        assert _rel(m(g["reference_feat"], g["query_feat"]), g["output"]) < 1e-9

    def test_kind_must_agree_with_the_class(self):
        g = load_reference("global_simple_ref.npz")
        with pytest.raises(ValueError, match="kind"):
            config_from_official(dict(g["config"], kind="local"))

    def test_shared_local_module_serves_512_and_256_channels(self):
        loc = load_reference("local_simple_ref.npz")
        m = from_official(dict(loc["config"], feature_dim=512), loc["state_dict"])
        for c in (512, 256):
            x = torch.randn(1, c, 5, 4, dtype=torch.float64)
            assert m(x, x).shape == (1, 81, 5, 4)

    def test_pwcnet_splitter_and_zeros_initializer(self):
        loc = load_reference("local_simple_ref.npz")
        sd = {f"local_corr_{lvl}." + k: v * (1 + 0.1 * lvl) for lvl in (6, 5, 4, 3, 2) for k, v in loc["state_dict"].items()}
        sd["conv6_0.weight"] = torch.zeros(1)
        levels = split_pwcnet_gocor({"state_dict": sd})
        assert sorted(levels) == [2, 3, 4, 5, 6]
        out = {lvl: from_official(loc["config"], s)(loc["reference_feat"], loc["query_feat"]) for lvl, s in levels.items()}
        assert _rel(out[6], out[2]) > 1e-3
        with pytest.raises(KeyError, match="split_glunet_gocor"):
            split_pwcnet_gocor({"local_corr." + k: v for k, v in loc["state_dict"].items()})
        zeros = {k: v for k, v in loc["state_dict"].items() if "initializer" not in k}
        m = from_official(dict(loc["config"], official_class="LocalCorrInitializerZeros"), zeros)
        assert m.config.initializer == "zeros" and m(loc["reference_feat"], loc["query_feat"]).shape[1] == 81

    def test_volume_and_losses_as_theirs(self):
        """`corr4, losses4 = self.corr(c14, c24)` in their GLU-Net: a plain module would split the
        batch in two silently; return_losses gives the pair."""
        g = load_reference("global_flexctx_ref_query.npz")
        m = from_official(g["config"], g["state_dict"], return_losses=True)
        corr4, losses4 = m(g["reference_feat"], g["query_feat"])
        assert corr4.shape == g["output"].shape and losses4 is None
        corr4, trace = m(g["reference_feat"], g["query_feat"], return_trace=True)
        assert trace.loss.shape == (4, 2)
        assert set(to_official_state_dict(m)) == set(g["state_dict"])


class TestApiPolish:
    def test_extra_repr(self):
        assert "feature_dim=8, num_iter=3, initializer='flexible_context', query_loss=True" in repr(GlobalGOCor(8))
        assert "search_radius=3" in repr(LocalGOCor(8, search_radius=3))

    def test_raft_layout_is_a_view(self):
        torch.manual_seed(4)
        m = GlobalGOCor(4, query_loss=False)
        raft = GlobalGOCor(4, query_loss=False, layout="raft")
        raft.load_state_dict(m.state_dict())
        ref, query = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 6, 7)
        vol, r = m(ref, query), raft(ref, query)
        assert r.shape == (2, 3, 5, 1, 6, 7)
        assert torch.equal(r[:, 1, 2, 0], vol[:, :, 1, 2].view(2, 6, 7))
        with pytest.raises(ValueError, match="layout"):
            GlobalGOCor(4, layout="nchw")

    @pytest.mark.parametrize("cls", [GlobalGOCor, LocalGOCor])
    def test_nan_check_names_the_tensor(self, cls):
        ref, query = torch.randn(2, 2, 4, 5, 5)
        query[1, 2, 3, 4] = float("nan")
        quiet = cls(4)(ref, query)
        assert torch.isnan(quiet[1]).any()                  # without the check: silently NaN
        with pytest.raises(ValueError, match=r"query_feat holds 1 NaN/Inf.*\(1, 2, 3, 4\)"):
            cls(4, check_finite=True)(ref, query)


class TestLowPrecisionOutsideAutocast:
    """float16 / bfloat16 features without autocast are solved in float32 too (float16 used to
    give a 100% NaN global volume, silently); a module cast to half precision is refused."""

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("kind", ["global", "local"])
    def test_finite_and_close_to_float32(self, dtype, kind):
        torch.manual_seed(0)
        module = GlobalGOCor(16) if kind == "global" else LocalGOCor(16, search_radius=2)
        ref, qry = (torch.randn(2, 16, 8, 8).to(dtype) for _ in range(2))
        ref.requires_grad_(True)
        out = module(ref, qry)
        assert out.dtype == dtype and torch.isfinite(out).all()
        want = module(ref.detach().float(), qry.float())
        assert ((out.float() - want).norm() / want.norm()).item() < 0.01
        out.float().sum().backward()
        assert torch.isfinite(ref.grad).all()

    def test_half_module_is_refused(self):
        module = GlobalGOCor(16).half()
        with pytest.raises(TypeError, match="keep the module in float32"):
            module(torch.randn(1, 16, 8, 8).half(), torch.randn(1, 16, 8, 8).half())
