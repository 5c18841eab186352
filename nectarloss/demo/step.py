"""One pix2pix training step with a spec's objective.

:func:`pix2pix_roles` reads which inputs each loss of the spec takes (from its name and
tags); :func:`train_step` runs the discriminator update, then the generator update,
computing every loss through the :class:`~nectarloss.LossManager`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from nectarloss.balancing import AdaptiveWeight, GradNorm
from nectarloss.manager import LossManager

__all__ = ["attach_last_layer", "pix2pix_roles", "train_step"]


def attach_last_layer(lm: LossManager, layer: Tensor) -> None:
    """Point balancers that look at a layer and have none yet at ``layer``.

    :class:`~nectarloss.AdaptiveWeight`'s ``last_layer`` and
    :class:`~nectarloss.GradNorm`'s ``shared`` are parameters, which a JSON spec cannot
    name; the demo gives them its generator's output convolution.
    """
    for balancer in lm.balancers:
        if isinstance(balancer, AdaptiveWeight) and balancer.last_layer is None:
            balancer.last_layer = layer
        if isinstance(balancer, GradNorm) and balancer.shared is None:
            balancer.shared = layer


def pix2pix_roles(names: Mapping[str, list[str]]) -> dict[str, str]:
    """Which inputs each loss of a pix2pix spec takes, from its name and tags.

    A ``G``-tagged loss whose name contains ``GAN`` or ``ADV`` is adversarial (the
    discriminator's logits on generated pairs vs ones); any other ``G`` loss compares the
    generated image with the target. A ``D``-tagged loss whose name contains ``real``
    scores real pairs vs ones, ``fake`` generated pairs vs zeros.

    Args:
        names: Loss name -> tags.

    Returns:
        Loss name -> ``"G_adv"``, ``"G_rec"``, ``"D_real"`` or ``"D_fake"``.

    Raises:
        ValueError: A loss fits no role, or the spec has no ``G`` / ``D`` losses.

    Example:
        >>> pix2pix_roles({"G_GAN": ["G"], "G_L1": ["G"], "D_real": ["D"], "D_fake": ["D"]})
        {'G_GAN': 'G_adv', 'G_L1': 'G_rec', 'D_real': 'D_real', 'D_fake': 'D_fake'}
    """
    roles: dict[str, str] = {}
    for name, tags in names.items():
        upper = name.upper()
        if "D" in tags and "REAL" in upper:
            roles[name] = "D_real"
        elif "D" in tags and "FAKE" in upper:
            roles[name] = "D_fake"
        elif "G" in tags:
            roles[name] = "G_adv" if ("GAN" in upper or "ADV" in upper) else "G_rec"
        else:
            raise ValueError(
                f"demo: spec loss {name!r} (tags {tags}) fits no pix2pix role; expected tag 'G', "
                "or tag 'D' with 'real' or 'fake' in the name."
            )
    found = set(roles.values())
    if "G_rec" not in found and "G_adv" not in found or not {"D_real", "D_fake"} <= found:
        raise ValueError(
            f"demo: the spec expected generator losses (tag 'G') and discriminator losses "
            f"'D_real' and 'D_fake' (tag 'D'), got {dict(names)}."
        )
    return roles


def _sum_losses(
    lm: LossManager,
    by_role: Mapping[str, list[str]],
    role: str,
    prediction: Tensor,
    target: Tensor | float,
    epoch: int,
) -> Tensor:
    """Sum the weighted losses of one role; a float target is a constant map (GAN labels)."""
    if not isinstance(target, Tensor):
        target = torch.full_like(prediction, target)
    total = prediction.new_zeros(())
    for name in by_role.get(role, []):
        total = total + lm.compute_loss_xy(name, prediction, target, epoch=epoch)
    return total


def train_step(
    lm: LossManager,
    by_role: Mapping[str, list[str]],
    gen: nn.Module,
    disc: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    epoch: int,
) -> None:
    """One pix2pix step: the discriminator, then the generator. Launches work only.

    Args:
        lm: The manager the spec's losses are registered in.
        by_role: Role (see :func:`pix2pix_roles`) -> the names of its losses.
        gen: The generator.
        disc: The discriminator, called as ``disc(condition, image)``.
        opt_g: The generator's optimizer.
        opt_d: The discriminator's optimizer.
        x: The batch's inputs.
        y: The batch's targets.
        epoch: The current epoch, passed to the losses.
    """
    fake = gen(x)

    # discriminator: real pairs -> 1, generated pairs -> 0, averaged (the spec's convention)
    logits_real = disc(x, y)
    logits_fake = disc(x, fake.detach())
    loss_d = 0.5 * (
        _sum_losses(lm, by_role, "D_real", logits_real, 1.0, epoch)
        + _sum_losses(lm, by_role, "D_fake", logits_fake, 0.0, epoch)
    )
    opt_d.zero_grad(set_to_none=True)
    torch.autograd.backward(loss_d)
    opt_d.step()

    # generator: match the target and fool the discriminator; reconstruction first, so an
    # adaptive weight on the adversarial loss finds its reference computed in this step
    loss_g = _sum_losses(lm, by_role, "G_rec", fake, y, epoch)
    logits_gen = disc(x, fake)
    loss_g = loss_g + _sum_losses(lm, by_role, "G_adv", logits_gen, 1.0, epoch)
    lm.balance_step()  # GradNorm's update needs the graphs: before backward()
    opt_g.zero_grad(set_to_none=True)
    torch.autograd.backward(loss_g)
    opt_g.step()
