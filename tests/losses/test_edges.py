"""Tests for the Sobel and Laplacian edge losses (nectarloss/losses/edges.py)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from nectarloss.losses import (
    Laplacian,
    Sobel,
    build_loss,
    laplacian_edges,
    laplacian_loss,
    sobel_edges,
    sobel_loss,
)

# The 3x3 step image used for the reference values: every row is [0, 0, 1].
# Replicate padding makes each padded row [0, 0, 0, 1, 1] and the rows above and below
# equal to the row itself.
#
# Sobel: gy = 0 (all rows equal) and gx = (1 + 2 + 1) * (x[j + 1] - x[j - 1]), i.e.
# [4 * 0, 4 * 1, 4 * 1] = [0, 4, 4] per row. Against a zero target (magnitude 0) with
# eps = 0 the L1 map is [0, 4, 4] on each of the 3 rows, so the mean is 24 / 9 = 8 / 3.
SOBEL_STEP_REF = 8.0 / 3.0
# Laplacian: up + down - 2 * x cancel, leaving x[j - 1] + x[j + 1] - 2 * x[j], i.e.
# [0 + 0 - 0, 0 + 1 - 0, 0 + 1 - 2] = [0, 1, -1] per row. The L1 map is [0, 1, 1] on each
# of the 3 rows, so the mean is 6 / 9 = 2 / 3.
LAPLACIAN_STEP_REF = 2.0 / 3.0

EDGE_LOSSES = (Sobel, Laplacian)


def step_image(height: int = 3, width: int = 3, channels: int = 1) -> Tensor:
    """A vertical step edge: 0 left of the last column, 1 in the last column."""
    row = torch.zeros(width)
    row[-1] = 1.0
    return row.expand(1, channels, height, width).clone()


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("loss_cls", EDGE_LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_identical_inputs_give_zero(loss_cls: type[torch.nn.Module], reduction: str) -> None:
    x = torch.rand(2, 3, 5, 7)
    out = loss_cls(reduction=reduction)(x, x.clone())
    assert torch.count_nonzero(out) == 0


def test_sobel_reference_value() -> None:
    step = step_image()
    out = Sobel(eps=0.0)(step, torch.zeros_like(step))
    torch.testing.assert_close(out, torch.tensor(SOBEL_STEP_REF))
    edge_map = Sobel(eps=0.0, reduction="none")(step, torch.zeros_like(step))
    torch.testing.assert_close(edge_map[0, 0], torch.tensor([[0.0, 4.0, 4.0]]).expand(3, 3))


def test_laplacian_reference_value() -> None:
    step = step_image()
    out = Laplacian()(step, torch.zeros_like(step))
    torch.testing.assert_close(out, torch.tensor(LAPLACIAN_STEP_REF))
    response = laplacian_edges(step)
    torch.testing.assert_close(response[0, 0], torch.tensor([[0.0, 1.0, -1.0]]).expand(3, 3))


def test_sobel_default_eps_is_close_to_reference() -> None:
    step = step_image()
    torch.testing.assert_close(
        Sobel()(step, torch.zeros_like(step)), torch.tensor(SOBEL_STEP_REF), atol=1e-3, rtol=0
    )


def test_vertical_step_edge_is_detected() -> None:
    """An edge loss sees a step edge but ignores a constant offset (unlike plain L1)."""
    flat = torch.full((1, 1, 8, 8), 0.5)
    step = flat.clone()
    step[..., 4:] = 1.0
    offset = flat + 0.5
    for loss_cls in EDGE_LOSSES:
        loss_fn = loss_cls()
        assert loss_fn(step, flat) > 0.1
        torch.testing.assert_close(loss_fn(offset, flat), torch.tensor(0.0), atol=1e-6, rtol=0)
    magnitude = sobel_edges(step, eps=0.0)[0, 0]
    # The edge lies between columns 3 and 4: only those two columns respond.
    assert torch.all(magnitude[:, 3:5] == 2.0)
    assert torch.count_nonzero(magnitude[:, :3]) == 0 and torch.count_nonzero(magnitude[:, 5:]) == 0


@pytest.mark.parametrize("loss_cls", EDGE_LOSSES)
def test_replicate_padding_constant_images_give_zero(loss_cls: type[torch.nn.Module]) -> None:
    a = torch.full((2, 3, 4, 5), 3.0)
    b = torch.full((2, 3, 4, 5), -1.0)
    out = loss_cls(reduction="none")(a, b)
    torch.testing.assert_close(out, torch.zeros_like(out), atol=1e-6, rtol=0)


def test_constant_image_has_no_edges() -> None:
    x = torch.full((1, 2, 4, 4), 7.0)
    assert torch.count_nonzero(laplacian_edges(x)) == 0
    assert torch.count_nonzero(sobel_edges(x, eps=0.0)) == 0


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("loss_cls", EDGE_LOSSES)
def test_reductions_and_channels(loss_cls: type[torch.nn.Module], channels: int) -> None:
    a, b = torch.rand(2, channels, 5, 6), torch.rand(2, channels, 5, 6)
    per_element = loss_cls(reduction="none")(a, b)
    assert per_element.shape == (2, channels, 5, 6)
    torch.testing.assert_close(loss_cls(reduction="mean")(a, b), per_element.mean())
    torch.testing.assert_close(loss_cls(reduction="sum")(a, b), per_element.sum())


@pytest.mark.parametrize("loss_cls", EDGE_LOSSES)
def test_channels_are_filtered_independently(loss_cls: type[torch.nn.Module]) -> None:
    a, b = torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5)
    loss_fn = loss_cls(reduction="none")
    joint = loss_fn(a, b)
    for c in range(3):
        torch.testing.assert_close(joint[:, c : c + 1], loss_fn(a[:, c : c + 1], b[:, c : c + 1]))


def test_single_pixel_image() -> None:
    x = torch.rand(2, 1, 1, 1)
    assert Sobel()(x, torch.rand(2, 1, 1, 1)) < 1e-2
    assert Laplacian()(x, torch.rand(2, 1, 1, 1)) == 0.0


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("loss_cls", EDGE_LOSSES)
def test_gradcheck_float64(loss_cls: type[torch.nn.Module]) -> None:
    torch.manual_seed(0)
    a = torch.rand(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    loss_fn = loss_cls()
    assert torch.autograd.gradcheck(loss_fn, (a, b))


def test_sobel_gradient_finite_on_flat_images() -> None:
    a = torch.zeros(1, 1, 4, 4, requires_grad=True)
    Sobel()(a, torch.rand(1, 1, 4, 4)).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


# --------------------------------------------------------------------------- functional / catalog
def test_functional_matches_module() -> None:
    a, b = torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(sobel_loss(a, b, reduction="none"), Sobel(reduction="none")(a, b))
    torch.testing.assert_close(sobel_loss(a, b, eps=0.1), Sobel(eps=0.1)(a, b))
    torch.testing.assert_close(laplacian_loss(a, b, reduction="sum"), Laplacian("sum")(a, b))


def test_built_from_catalog() -> None:
    loss_fn = build_loss("Sobel", reduction="none", eps=0.0)
    assert isinstance(loss_fn, Sobel) and loss_fn.reduction == "none" and loss_fn.eps == 0.0
    assert isinstance(build_loss("Laplacian"), Laplacian)


def test_kernel_is_not_in_state_dict_and_follows_dtype() -> None:
    loss_fn = Sobel()
    assert loss_fn.state_dict() == {}
    a = torch.rand(1, 1, 3, 3, dtype=torch.float64)
    assert loss_fn(a, a).dtype == torch.float64
    assert loss_fn.double().kernel.dtype == torch.float64
    assert "reduction='mean'" in repr(loss_fn)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("loss_cls", EDGE_LOSSES)
def test_cuda(loss_cls: type[torch.nn.Module]) -> None:
    loss_fn = loss_cls(reduction="none").cuda()
    a, b = torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5)
    out = loss_fn(a.cuda(), b.cuda())
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), loss_cls(reduction="none")(a, b))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("loss_cls", "owner"), [(Sobel, "Sobel"), (Laplacian, "Laplacian")])
def test_input_errors(loss_cls: type[torch.nn.Module], owner: str) -> None:
    loss_fn = loss_cls()
    with pytest.raises(
        ValueError,
        match=rf"{owner}: `input` expected a 4-D tensor \[B, C, H, W\], got shape \(3, 4, 4\)\.",
    ):
        loss_fn(torch.rand(3, 4, 4), torch.rand(3, 4, 4))
    with pytest.raises(
        ValueError,
        match=rf"{owner}: `target` expected shape \(1, 1, 4, 4\) \(the input's\), "
        r"got \(1, 1, 4, 5\)\.",
    ):
        loss_fn(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(
        TypeError, match=rf"{owner}: `input` expected a floating-point tensor, got torch.int64\."
    ):
        loss_fn(torch.ones(1, 1, 4, 4, dtype=torch.long), torch.rand(1, 1, 4, 4))
    with pytest.raises(TypeError, match=rf"{owner}: `target` expected a Tensor, got list\."):
        loss_fn(torch.rand(1, 1, 4, 4), [1.0])


def test_option_errors() -> None:
    with pytest.raises(
        ValueError, match="Sobel: `reduction` expected one of 'mean', 'sum', 'none', got 'avg'."
    ):
        Sobel(reduction="avg")
    with pytest.raises(TypeError, match="Laplacian: `reduction` expected a str, got NoneType."):
        Laplacian(reduction=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Sobel: `eps` expected a float >= 0, got -1.0."):
        Sobel(eps=-1.0)
    with pytest.raises(TypeError, match="Sobel: `eps` expected a float, got str."):
        Sobel(eps="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Sobel: `reduction` expected one of"):
        sobel_loss(torch.rand(1, 1, 3, 3), torch.rand(1, 1, 3, 3), reduction="avg")
    with pytest.raises(ValueError, match=r"sobel_edges: `image` expected a 4-D tensor"):
        sobel_edges(torch.rand(3, 3))
