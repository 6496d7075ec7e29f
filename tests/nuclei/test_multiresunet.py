"""MultiResUNet port: exact Keras parameter counts, per-block counts and shapes."""

import pytest
import torch

from lib.nuclei.multiresunet import (
    KERAS_BN_EPS,
    KERAS_BN_MOMENTUM,
    MultiResBlock,
    MultiResUNet,
    ResPath,
    count_bn_running_elements,
    multires_widths,
)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def test_seed_counts_match_keras_summary():
    m = MultiResUNet(3, 1)
    assert n_params(m) == 7_244_774
    assert count_bn_running_elements(m) == 24_520
    assert n_params(m) + count_bn_running_elements(m) == 7_269_294  # Keras "Total params"


def test_paper_variant_counts():
    m = MultiResUNet(3, 1, variant="paper")
    assert n_params(m) == 7_238_228
    assert count_bn_running_elements(m) == 24_522


def test_per_block_parameter_table():
    m = MultiResUNet()
    got = [n_params(b) for b in (*m.encoders, *m.respaths, m.bridge, *m.ups, *m.decoders, m.head)]
    want = [5_979, 36_048, 147_130, 592_140, 47_808, 150_272, 436_736, 1_092_096, 2_368_994,
            873_728, 218_240, 54_336, 13_472, 911_640, 226_707, 55_914, 13_482, 52]
    assert got == want


def test_first_keras_layers_and_widths():
    assert multires_widths(32) == (8, 17, 26)
    assert [sum(multires_widths(u)) for u in (32, 64, 128, 256, 512)] == [51, 105, 212, 426, 853]
    blk = MultiResBlock(3, 32)
    assert blk.conv1[0].weight.numel() == 216 and blk.conv1[1].weight.numel() + blk.conv1[1].bias.numel() == 16
    bn = blk.bn_out
    assert bn.eps == KERAS_BN_EPS == 1e-3 and bn.momentum == KERAS_BN_MOMENTUM == 0.01


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("base", [4, 8])
def test_stage_shapes(size, base):
    m = MultiResUNet(3, 1, base_filters=base).eval()
    x = torch.rand(2, 3, size, size)
    shapes = []
    hooks = [b.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape))) for b in (*m.encoders, m.bridge, *m.decoders)]
    with torch.no_grad():
        y = m(x)
    for h in hooks:
        h.remove()
    w = [sum(multires_widths(base * 2**i)) for i in range(5)]
    want = [(2, w[i], size >> i, size >> i) for i in range(4)] + [(2, w[4], size >> 4, size >> 4)]
    want += [(2, w[3 - i], size >> (3 - i), size >> (3 - i)) for i in range(4)]
    assert shapes == want
    assert y.shape == (2, 1, size, size)


def test_respath_keeps_shape_and_rejects_zero_length():
    rp = ResPath(51, 32, 4)
    assert rp(torch.rand(1, 51, 16, 16)).shape == (1, 32, 16, 16)
    with pytest.raises(ValueError):
        ResPath(51, 32, 0)


def test_bad_input_and_variant():
    with pytest.raises(ValueError, match="divisible by 16"):
        MultiResUNet(base_filters=4)(torch.rand(1, 3, 40, 40))
    with pytest.raises(ValueError, match="variant"):
        MultiResUNet(variant="keras")


def test_training_step_reduces_loss():
    torch.manual_seed(0)
    m = MultiResUNet(base_filters=4)
    x = torch.rand(4, 3, 32, 32)
    y = (x.mean(1, keepdim=True) > 0.5).float()
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_set_bn_momentum():
    from lib.nuclei.multiresunet import set_bn_momentum

    m = set_bn_momentum(MultiResUNet(base_filters=4), 0.1)
    moms = {b.momentum for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)}
    assert moms == {0.1}
    with pytest.raises(ValueError):
        set_bn_momentum(m, 1.5)
