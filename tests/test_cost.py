import torch
import torch.nn.functional as F

from gocor.tools.cost import count_flops, saved_bytes


def test_grouped_conv_backward_counted_with_groups():
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    w = torch.randn(8 * 3, 1, 3, 3, requires_grad=True)
    forward = 2 * 2 * 24 * 36 * 9          # batch · out channels · spatial · (in/groups) · k²
    mm, _ = count_flops(lambda: F.conv2d(x, w, padding=1, groups=8).sum().backward())
    assert mm == 3 * forward              # forward + grad input + grad weight


def test_dense_conv_and_elementwise():
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    forward = 2 * 2 * 6 * 25 * 4 * 9
    mm, _ = count_flops(lambda: F.conv2d(x, w, padding=1).sum().backward())
    assert mm == 3 * forward
    a = torch.randn(10, 10)
    assert count_flops(lambda: a * a + a) == (0, 200)


def test_saved_bytes_counts_what_backward_keeps():
    x = torch.randn(100, 100, requires_grad=True)
    assert saved_bytes(lambda: (x * x).sum()) == 100 * 100 * 4          # x saved (once, shared)
    assert saved_bytes(lambda: (x + x).sum()) == 0                        # add saves nothing
    with torch.no_grad():
        assert saved_bytes(lambda: (x * x).sum()) == 0


def test_in_place_matmul_accumulation_counted():
    a, b = torch.randn(3, 4, 5), torch.randn(3, 5, 6)
    acc = torch.zeros(3, 4, 6)
    mm, _ = count_flops(lambda: acc.baddbmm_(a, b))
    assert mm == 2 * 3 * 4 * 5 * 6
    m = torch.zeros(4, 6)
    assert count_flops(lambda: m.addmm_(a[0], b[0]))[0] == 2 * 4 * 5 * 6
