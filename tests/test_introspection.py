"""The layer's own introspection: learned_objective(), freeze_objective(), gocor_modules(), the
solver attribute (old ``optimizer.`` checkpoints keep loading) and the returned trace record."""
from pathlib import Path

import pytest
import torch

from gocor import GlobalGOCor, LocalGOCor
from gocor.module import LearnedObjective, gocor_modules
from gocor.solver import SolverTrace

ROOT = Path(__file__).resolve().parents[1]


class TestSolverRename:
    def test_shipped_checkpoint_with_old_names_loads(self):
        """data/checkpoints/gocor.pt was saved with ``optimizer.`` keys; a model holding GOCor
        modules loads it strictly, every value under the new name."""
        state = torch.load(ROOT / "data/checkpoints/gocor.pt", map_location="cpu", weights_only=True)["model"]
        old = [k for k in state if ".optimizer." in k]
        assert old, "the shipped checkpoint is expected to use the old attribute name"
        net = torch.nn.Module()
        net.global_gocor = GlobalGOCor(64)
        net.local_gocor = torch.nn.ModuleList([LocalGOCor(c) for c in (64, 64)])
        net.load_state_dict({k: v for k, v in state.items() if "gocor" in k})
        loaded = net.state_dict()
        for key in old:
            assert torch.equal(loaded[key.replace(".optimizer.", ".solver.")], state[key]), key
        assert not any(".optimizer." in k for k in loaded)

    def test_module_state_dict_old_and_new_names(self):
        torch.manual_seed(0)
        a, b = GlobalGOCor(4), GlobalGOCor(4)
        old = {k.replace("solver.", "optimizer.", 1): v for k, v in a.state_dict().items()}
        assert any(k.startswith("optimizer.") for k in old)
        b.load_state_dict(old)                            # strict: no missing or unexpected key
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
        with pytest.raises(RuntimeError, match="Unexpected"):
            b.load_state_dict({**a.state_dict(), "optimizer.bogus": torch.zeros(1)})


class TestLearnedObjective:
    def test_values_are_the_solver_s(self):
        torch.manual_seed(1)
        m = LocalGOCor(4)
        with torch.no_grad():
            for p in m.solver.labels.parameters():
                p.add_(torch.randn_like(p))
            m.solver.filter_reg.fill_(-3e-6)              # negative and below the floor
            m.solver.log_step_length.fill_(0.25)
        d = torch.tensor([0.0, 0.7, 1.0, 4.5])
        obj = m.learned_objective(d)
        assert isinstance(obj, LearnedObjective)
        y, v, mask = m.solver.labels(d)
        assert torch.equal(obj.y, y) and torch.equal(obj.v_plus, v) and torch.equal(obj.m, mask)
        assert obj.filter_reg == pytest.approx(-3e-6)
        assert obj.reg == m.config.min_filter_reg                 # λ² = max(θ², floor²)
        assert obj.step_length == pytest.approx(torch.exp(torch.tensor(0.25)).item())
        # the solver's λ² (before the operator's 1/C² scale) is this λ squared
        lam2 = m.solver.reg_weight(m.operator(torch.randn(1, 4, 3, 3)), torch.float64) * 4 ** 2
        assert lam2.item() == pytest.approx(obj.reg ** 2, rel=1e-6)
        assert not obj.y.requires_grad

    def test_default_distances(self):
        obj = GlobalGOCor(4).learned_objective()
        assert obj.distances.shape == (46,) and obj.distances[-1].item() == pytest.approx(4.5)


class TestFreezeObjective:
    def test_objective_does_not_move_under_adamw_weight_decay(self):
        torch.manual_seed(2)
        m = GlobalGOCor(4).freeze_objective()
        before = {k: v.clone() for k, v in m.state_dict().items()}
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=0.1, weight_decay=0.5)
        ref, query = torch.randn(2, 2, 4, 5, 5)
        m(ref, query).square().sum().backward()
        opt.step()
        moved = {k for k, v in m.state_dict().items() if not torch.equal(v, before[k])}
        assert moved and all(k.startswith("initializer.") for k in moved)
        assert all(p.grad is None for p in m.objective_parameters())


class TestGocorModules:
    def test_finds_every_module_by_name(self):
        net = torch.nn.Module()
        net.g = GlobalGOCor(4)
        net.locs = torch.nn.ModuleList([LocalGOCor(4), LocalGOCor(8)])
        net.other = torch.nn.Linear(2, 2)
        assert list(gocor_modules(net)) == ["g", "locs.0", "locs.1"]
        assert gocor_modules(torch.nn.Linear(2, 2)) == {}


class TestTraceRecord:
    @pytest.mark.parametrize("query_loss", [False, True])
    def test_record_shapes_and_sum(self, query_loss):
        torch.manual_seed(3)
        m = GlobalGOCor(3, query_loss=query_loss).double()
        ref, query = torch.randn(2, 2, 3, 4, 5, dtype=torch.float64)
        volume, trace = m(ref, query, num_iter=4, return_trace=True)
        assert isinstance(trace, SolverTrace) and trace.num_iter == 4
        assert trace.loss.shape == (5, 2)
        assert trace.alpha.shape == ((4, 2, 1) if query_loss else (4, 2, 20))
        assert torch.allclose(trace.loss, trace.L_r + trace.L_q + trace.reg)
        assert bool((trace.L_q == 0).all()) != query_loss
        assert torch.equal(volume, m(ref, query, num_iter=4))
