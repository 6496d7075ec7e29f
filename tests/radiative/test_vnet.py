"""Shape and parameter-count tests of the V-Nets."""

from __future__ import annotations

import pytest
import torch

from lib.core.train import count_parameters
from lib.radiative.vnet import AuthorsVNet, MilletariVNet


@pytest.mark.parametrize("cin,depth,size", [(48, 4, 16), (24, 6, 32), (12, 4, 64)])
def test_authors_vnet_shapes(cin, depth, size):
    m = AuthorsVNet(cin, depth).eval()
    with torch.no_grad():
        y = m(torch.randn(2, cin, size, size))
    assert y.shape == (2, 1, size, size)
    assert float(y.min()) > 0 and float(y.max()) < 1


def test_authors_vnet_parameter_counts_match_seed():
    # research note: "24 channels, d = 10 (about 2.27 M parameters)"; "12 channels, d = 32 (about 23.2 M)"
    assert count_parameters(AuthorsVNet(24, 10)) == 2_271_801
    assert count_parameters(AuthorsVNet(12, 32)) == 23_195_201
    assert count_parameters(AuthorsVNet(48, 32)) == 23_224_001


@pytest.mark.parametrize("cin,base", [(48, 4), (24, 8)])
def test_milletari_vnet_shapes(cin, base):
    m = MilletariVNet(cin, base).eval()
    y = m(torch.randn(2, cin, 16, 16))
    assert y.shape == (2, 1, 16, 16)


def test_milletari_default_width():
    # channels 16-32-64-128-256 as in Milletari et al. / MONAI VNet (2D, 1x1 stem)
    m = MilletariVNet(48)
    assert m.down4.down[0].out_channels == 256
    assert 9e6 < count_parameters(m) < 1e7


def test_bad_inputs():
    m = AuthorsVNet(48, 4)
    with pytest.raises(ValueError, match="divisible"):
        m(torch.randn(1, 48, 20, 20))
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(1, 24, 16, 16))
    with pytest.raises(ValueError):
        AuthorsVNet(48, 4, kernel_size=4)


@pytest.mark.parametrize("cls", [AuthorsVNet, MilletariVNet])
def test_init_output_mean(cls):
    from lib.radiative.vnet import init_output_mean

    m = cls(48, 4).eval()
    init_output_mean(m, 0.2)
    with torch.no_grad():
        head = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d) and mod.kernel_size == (1, 1)][-1]
        assert float(torch.sigmoid(head.bias)[0]) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        init_output_mean(m, 1.5)


def _conv(k: int, cin: int, cout: int) -> int:
    """Weights k x k x cin x cout plus one bias per output channel (Keras Conv2D / Conv2DTranspose)."""
    return k * k * cin * cout + cout


def _double_conv(cin: int, cout: int, k: int = 5) -> int:
    """doubleConv: Conv k x k + ReLU, Conv k x k + ReLU, BatchNorm (gamma and beta: 2 c trainable)."""
    return _conv(k, cin, cout) + _conv(k, cout, cout) + 2 * cout


def _authors_vnet_count(cin: int, d: int, levels: int = 5) -> int:
    """Layer by layer from the authors' description (research note section 3.2), not from our module."""
    ch = [d * 2**i for i in range(levels)]
    n = _double_conv(cin, ch[0])                                    # left0
    for i in range(1, levels):                                     # encoder
        n += _conv(2, ch[i - 1], ch[i]) + _double_conv(ch[i], ch[i])  # 2x2 stride-2 conv, then doubleConv
    for i in range(levels - 2, -1, -1):                            # decoder
        n += _conv(2, ch[i + 1], ch[i]) + _double_conv(ch[i], ch[i])  # 2x2 transposed conv, then doubleConv
    return n + _conv(1, ch[0], 1)                                   # 1x1 output conv (sigmoid)


@pytest.mark.parametrize("cin,depth", [(24, 10), (12, 32), (48, 32), (48, 8)])
def test_authors_vnet_parameter_count_independent(cin, depth):
    assert count_parameters(AuthorsVNet(cin, depth)) == _authors_vnet_count(cin, depth)


def test_independent_count_matches_published_sizes():
    # notebook-reported sizes: "about 2.27 M" (24 ch, d = 10) and "about 23.2 M" (12 ch, d = 32)
    assert round(_authors_vnet_count(24, 10) / 1e6, 2) == 2.27
    assert round(_authors_vnet_count(12, 32) / 1e6, 1) == 23.2


def test_authors_vnet_decoder_adds_the_encoder_skip_at_every_level():
    """Forward hooks: each decoder block's input is the up-sampled map PLUS the encoder output of its level."""
    torch.manual_seed(0)
    m = AuthorsVNet(12, 2, levels=4).eval()
    out: dict[str, torch.Tensor] = {}

    def keep(name, what="out"):
        def hook(mod, inputs, output):
            out[name] = (inputs[0] if what == "in" else output).detach().clone()
        return hook

    m.left0.register_forward_hook(keep("left0"))
    for i in range(m.levels - 1):
        m.down[i].register_forward_hook(keep(f"down{i + 1}"))
        m.enc[i].register_forward_hook(keep(f"enc{i + 1}"))
        m.up[i].register_forward_hook(keep(f"up{i}"))
        m.dec[i].register_forward_hook(keep(f"dec_in{i}", "in"))
    with torch.no_grad():
        m(torch.randn(2, 12, 16, 16))
    lefts = [out["left0"]] + [out[f"down{i}"] + out[f"enc{i}"] for i in range(1, m.levels)]
    for i in range(m.levels - 1):
        torch.testing.assert_close(out[f"dec_in{i}"], lefts[i] + out[f"up{i}"],
                                   msg=f"decoder level {i} does not receive encoder skip + up-sampled map")


def test_milletari_vnet_up_stages_concatenate_the_skip():
    """The up stages' convolutions see [up-sampled map, skip] along the channels (MONAI's concatenation)."""
    torch.manual_seed(0)
    m = MilletariVNet(8, 4).eval()
    seen: dict[str, torch.Tensor] = {}
    for name in ("down1", "down2", "down3", "up4", "up3", "up2", "up1"):
        mod = getattr(m, name)
        mod.register_forward_hook(lambda mod, inp, o, name=name: seen.__setitem__(name, o.detach().clone()))
        if name.startswith("up"):
            mod.convs.register_forward_hook(lambda mod, inp, o, name=name: seen.__setitem__(name + "_in", inp[0]))
    m.inp_act.register_forward_hook(lambda mod, inp, o: seen.__setitem__("x16", o.detach().clone()))
    with torch.no_grad():
        m(torch.randn(1, 8, 16, 16))
    for up, skip in (("up4", "down3"), ("up3", "down2"), ("up2", "down1"), ("up1", "x16")):
        u = seen[up + "_in"]
        c = seen[skip].shape[1]
        assert u.shape[1] == getattr(m, up).convs[0].in_channels
        torch.testing.assert_close(u[:, -c:], seen[skip], msg=f"{up} does not concatenate the {skip} skip")
