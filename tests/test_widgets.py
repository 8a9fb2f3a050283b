"""The explorer's callbacks, headless."""
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402

from gocor import GlobalGOCor, global_correlation  # noqa: E402
from gocor.teach.widgets import VolumeExplorer  # noqa: E402


@pytest.fixture
def explorer():
    torch.manual_seed(0)
    ref, query = torch.randn(2, 1, 8, 5, 6)
    return VolumeExplorer(GlobalGOCor(8), ref, query, truth=lambda y, x: (y, x), max_steps=4)


def test_update_returns_the_slices_of_the_chosen_pixel(explorer):
    corr, goc = explorer.update(y=3, x=1, steps=2)
    assert explorer.state == {"y": 3, "x": 1, "steps": 2}
    assert torch.equal(corr, global_correlation(explorer.ref, explorer.query)[0, :, 3, 1].view(5, 6))
    with torch.no_grad():
        want = explorer.module(explorer.ref, explorer.query, num_iter=2)[0, :, 3, 1].view(5, 6)
    assert torch.allclose(goc, want)
    corr0, goc0 = explorer.update(steps=0)
    assert not torch.allclose(goc0, goc)


def test_update_clamps_and_rejects_unknown_controls(explorer):
    explorer.update(y=99, x=-3, steps=50)
    assert explorer.state == {"y": 4, "x": 0, "steps": 4}
    with pytest.raises(KeyError, match="unknown control"):
        explorer.update(zoom=2)


def test_render_draws_both_slices(explorer):
    fig = explorer.render(2, 2, 1)
    images = [ax.images[-1].get_array() for ax in fig.axes if ax.images]
    corr, goc = explorer.slices(2, 2, 1)
    assert len(images) == 2
    assert torch.allclose(torch.as_tensor(images[0].data), corr.float())
    assert torch.allclose(torch.as_tensor(images[1].data), goc.float())


def test_widget_sliders_drive_the_callback(explorer):
    box = explorer.widget()
    sliders = box.children[0].children
    sliders[0].value = 1        # ref y
    sliders[2].value = 3        # steps
    assert explorer.state["y"] == 1 and explorer.state["steps"] == 3
