"""Python spec functions: callables returning ``dict[str, LMLoss]``.

Pass one to the manager as NectarGAN does, with its arguments after it::

    lm.init_from_spec(pix2pix, "extended", lambda_l1=50.0)

Each call builds fresh modules. Losses that carry modifiers are built with
``reduction="none"``, since modifiers work on the per-sample loss. The shipped JSON
specs (``nectarloss/specs/json``) describe the same objectives as these functions with
their defaults: ``pix2pix_basic``, ``pix2pix_extended``, ``diffusion_min_snr``,
``diffusion_sangoi``, ``classification_superloss`` and ``metric_triplet``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from torch import nn

from nectarloss.losses import build_loss, get_loss_entry
from nectarloss.modifiers import (
    P2,
    DebiasedEstimation,
    MinSNR,
    Modifier,
    Sangoi,
    SuperLoss,
)
from nectarloss.noise import NoiseSchedule
from nectarloss.records import LMLoss
from nectarloss.specs.build import build_noise_schedule
from nectarloss.validation import check_weight

__all__ = ["classification", "diffusion", "metric_triplet", "pix2pix"]

_SUBSPECS = ("basic", "extended")
_WEIGHTINGS = ("min_snr", "sangoi", "debiased", "p2", "none")
_NOISE_KINDS = ("scaled_linear", "linear", "flow_matching")


def _weight(owner: str, argument: str, value: object) -> float:
    """Check a lambda like the manager does (raises TypeError / ValueError)."""
    return check_weight(owner, value, argument)


def pix2pix(
    subspec: Literal["basic", "extended"] = "basic",
    lambda_gan: float = 1.0,
    lambda_l1: float = 100.0,
    lambda_l2: float = 1.0,
    lambda_sobel: float = 10.0,
    lambda_laplacian: float = 10.0,
    lambda_d: float = 1.0,
    gan_loss: str = "BCEWithLogitsLoss",
) -> dict[str, LMLoss]:
    """The pix2pix objective as NectarGAN's ``pix2pix`` spec defines it.

    ``"basic"`` is the paper's L1 + cGAN objective (Isola et al., Section 4.2):

    * ``G_GAN`` (tag ``G``): adversarial loss of the generator, weight ``lambda_gan``;
    * ``G_L1`` (tag ``G``): pixel-wise L1, weight ``lambda_l1``;
    * ``D_real``, ``D_fake`` (tag ``D``): discriminator losses, weight ``lambda_d``.

    ``"extended"`` adds NectarGAN's structure losses, all tagged ``G``: ``G_L2``
    (MSE, ``lambda_l2``), ``G_SOBEL`` (``lambda_sobel``) and ``G_LAP`` (Laplacian,
    ``lambda_laplacian``).

    The discriminator weights default to 1.0 as in NectarGAN, whose trainer then
    averages them, ``(D_real + D_fake) * 0.5`` (the pix2pix convention of halving the
    discriminator's objective). If your loop sums them instead, pass ``lambda_d=0.5``.
    NectarGAN takes the lambdas from its ``Config``; here they are arguments, and the
    defaults for the extended losses are ours.

    Args:
        subspec: ``"basic"`` or ``"extended"``.
        lambda_gan: Weight of ``G_GAN``.
        lambda_l1: Weight of ``G_L1``.
        lambda_l2: Weight of ``G_L2`` (extended).
        lambda_sobel: Weight of ``G_SOBEL`` (extended).
        lambda_laplacian: Weight of ``G_LAP`` (extended).
        lambda_d: Weight of ``D_real`` and ``D_fake``.
        gan_loss: Catalog name of the adversarial loss (``"BCEWithLogitsLoss"``; e.g.
            ``"MSELoss"`` for an LSGAN).

    Returns:
        The losses by name.

    Raises:
        ValueError: Unknown ``subspec`` or ``gan_loss``, or a negative lambda.
        TypeError: A lambda that is not a number.

    Example:
        >>> losses = pix2pix("extended")
        >>> {n: (e.loss_weight, e.tags) for n, e in losses.items()}
        ... # doctest: +NORMALIZE_WHITESPACE
        {'G_GAN': (1.0, ['G']), 'G_L1': (100.0, ['G']), 'D_real': (1.0, ['D']),
         'D_fake': (1.0, ['D']), 'G_L2': (1.0, ['G']), 'G_SOBEL': (10.0, ['G']),
         'G_LAP': (10.0, ['G'])}

    Reference:
        Isola, Zhu, Zhou, Efros, "Image-to-Image Translation with Conditional
        Adversarial Networks", CVPR 2017.
    """
    if subspec not in _SUBSPECS:
        raise ValueError(f"pix2pix: `subspec` expected 'basic' or 'extended', got {subspec!r}.")
    try:
        gan = get_loss_entry(gan_loss).name
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pix2pix: `gan_loss` expected a catalog loss name; {exc}") from None
    weights = {
        "G_GAN": _weight("pix2pix", "lambda_gan", lambda_gan),
        "G_L1": _weight("pix2pix", "lambda_l1", lambda_l1),
        "D_real": _weight("pix2pix", "lambda_d", lambda_d),
        "D_fake": _weight("pix2pix", "lambda_d", lambda_d),
    }
    plan: list[tuple[str, str, str]] = [
        ("G_GAN", gan, "G"),
        ("G_L1", "L1Loss", "G"),
        ("D_real", gan, "D"),
        ("D_fake", gan, "D"),
    ]
    if subspec == "extended":
        weights["G_L2"] = _weight("pix2pix", "lambda_l2", lambda_l2)
        weights["G_SOBEL"] = _weight("pix2pix", "lambda_sobel", lambda_sobel)
        weights["G_LAP"] = _weight("pix2pix", "lambda_laplacian", lambda_laplacian)
        plan += [("G_L2", "MSELoss", "G"), ("G_SOBEL", "Sobel", "G"), ("G_LAP", "Laplacian", "G")]
    return {
        name: LMLoss(name=name, function=build_loss(loss), loss_weight=weights[name], tags=[tag])
        for name, loss, tag in plan
    }


def diffusion(
    weighting: Literal["min_snr", "sangoi", "debiased", "p2", "none"] = "min_snr",
    schedule: str | NoiseSchedule | Any = "scaled_linear",
    num_steps: int = 1000,
    gamma: float | None = None,
    prediction: str = "epsilon",
) -> dict[str, LMLoss]:
    """A denoising MSE, ``"denoise"`` (tag ``diffusion``), with an SNR weighting.

    The MSE is built with ``reduction="none"`` and the chosen modifier reweights each
    sample by its timestep; call it with
    ``lm.compute_loss("denoise", pred, target, timesteps=t)``.

    Args:
        weighting: ``"min_snr"`` (:class:`~nectarloss.modifiers.MinSNR`),
            ``"sangoi"`` (:class:`~nectarloss.modifiers.Sangoi`), ``"debiased"``
            (:class:`~nectarloss.modifiers.DebiasedEstimation`), ``"p2"``
            (:class:`~nectarloss.modifiers.P2`) or ``"none"`` (a plain mean MSE).
        schedule: The training noise schedule: ``"scaled_linear"`` (Stable
            Diffusion), ``"linear"`` (DDPM), ``"flow_matching"``, a
            :class:`~nectarloss.noise.NoiseSchedule`, or a diffusers-style
            scheduler (anything with ``alphas_cumprod`` or ``betas``).
        num_steps: Number of training timesteps for a named ``schedule``.
        gamma: ``gamma`` of min-SNR (default 5.0) or P2 (default 1.0); not used by
            the other weightings.
        prediction: What the model predicts (``"epsilon"``, ``"v_prediction"``,
            ``"sample"``), for min-SNR and debiased weighting.

    Returns:
        ``{"denoise": LMLoss}``.

    Raises:
        ValueError: Unknown ``weighting``/``schedule``/``prediction``, ``gamma`` given
            to a weighting that has none, or an out-of-range option.
        TypeError: An option of the wrong type.

    Example:
        >>> entry = diffusion("min_snr")["denoise"]
        >>> entry.function, entry.modifiers
        (MSELoss(), [MinSNR(
          gamma=5.0, prediction='epsilon'
          (noise_schedule): NoiseSchedule(num_steps=1000)
        )])

    Reference:
        Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy",
        ICCV 2023.
    """
    if weighting not in _WEIGHTINGS:
        raise ValueError(
            f"diffusion: `weighting` expected one of {', '.join(_WEIGHTINGS)}, got {weighting!r}."
        )
    if gamma is not None and weighting not in ("min_snr", "p2"):
        raise ValueError(
            f"diffusion: `gamma` expected None for weighting {weighting!r} (only min_snr and "
            f"p2 take it), got {gamma!r}."
        )
    modifiers: list[Modifier] = []
    if weighting != "none":
        noise = _noise_schedule(schedule, num_steps)
        if weighting == "min_snr":
            options: dict[str, Any] = {} if gamma is None else {"gamma": gamma}
            modifiers.append(MinSNR(noise, prediction=prediction, **options))
        elif weighting == "sangoi":
            modifiers.append(Sangoi(noise))
        elif weighting == "debiased":
            modifiers.append(DebiasedEstimation(noise, prediction=prediction))
        else:
            modifiers.append(P2(noise, **({} if gamma is None else {"gamma": gamma})))
    mse: nn.Module = build_loss("MSELoss", reduction="none") if modifiers else build_loss("MSELoss")
    return {
        "denoise": LMLoss(name="denoise", function=mse, tags=["diffusion"], modifiers=modifiers)
    }


def _noise_schedule(schedule: object, num_steps: int) -> NoiseSchedule | Any:
    if isinstance(schedule, str):
        if schedule not in _NOISE_KINDS:
            raise ValueError(
                f"diffusion: `schedule` expected one of {', '.join(_NOISE_KINDS)}, a "
                f"NoiseSchedule or a scheduler, got {schedule!r}."
            )
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"diffusion: `num_steps` expected an int >= 1, got {num_steps!r}.")
        return build_noise_schedule({"kind": schedule, "num_steps": num_steps})
    return schedule  # a NoiseSchedule or a scheduler; the modifier checks it


def classification(
    superloss: bool = True,
    num_classes: int | None = None,
    regularization: float = 1.0,
) -> dict[str, LMLoss]:
    """Cross-entropy, ``"cross_entropy"`` (tag ``cls``), optionally wrapped in SuperLoss.

    With ``superloss=True`` the cross-entropy is built with ``reduction="none"`` and
    :class:`~nectarloss.modifiers.SuperLoss` weights each sample by its confidence;
    read ``modifiers[0].last_confidence`` to find likely mislabeled samples. The
    threshold is ``log(num_classes)`` (the expected loss of a uniform guess, as the
    paper suggests for classification) when ``num_classes`` is given, otherwise the
    running ``"exp"`` estimate.

    Args:
        superloss: Wrap the loss in SuperLoss.
        num_classes: Number of classes (>= 2), for the fixed threshold.
        regularization: SuperLoss's ``lambda > 0``.

    Returns:
        ``{"cross_entropy": LMLoss}``.

    Raises:
        ValueError: ``num_classes < 2`` or an invalid ``regularization``.
        TypeError: An option of the wrong type.

    Example:
        >>> superloss = classification(num_classes=10)["cross_entropy"].modifiers[0]
        >>> superloss.threshold, superloss.regularization
        (2.302585092994046, 1.0)

    Reference:
        Castells, Weinzaepfel, Revaud, "SuperLoss: A Generic Loss for Robust Curriculum
        Learning", NeurIPS 2020.
    """
    if not isinstance(superloss, bool):
        raise TypeError(f"classification: `superloss` expected a bool, got {superloss!r}.")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(
                f"classification: `num_classes` expected an int >= 2, "
                f"got {type(num_classes).__name__}."
            )
        if num_classes < 2:
            raise ValueError(
                f"classification: `num_classes` expected an int >= 2, got {num_classes}."
            )
    modifiers: list[Modifier] = []
    if superloss:
        threshold: float | str = "exp" if num_classes is None else math.log(num_classes)
        modifiers.append(SuperLoss(threshold=threshold, regularization=regularization))
    loss = (
        build_loss("CrossEntropyLoss", reduction="none")
        if modifiers
        else build_loss("CrossEntropyLoss")
    )
    return {
        "cross_entropy": LMLoss(
            name="cross_entropy", function=loss, tags=["cls"], modifiers=modifiers
        )
    }


def metric_triplet(margin: float = 1.0) -> dict[str, LMLoss]:
    """A triplet margin loss, ``"triplet"`` (tag ``metric``), called with three inputs.

    Call it with ``lm.compute_loss("triplet", anchor, positive, negative)``.

    Args:
        margin: The margin of ``max(0, d(a, p) - d(a, n) + margin)``, finite, >= 0.

    Returns:
        ``{"triplet": LMLoss}``.

    Raises:
        ValueError: A negative or non-finite margin.
        TypeError: A margin that is not a number.

    Example:
        >>> metric_triplet(0.2)["triplet"].function.margin
        0.2
    """
    value = check_weight("metric_triplet", margin, "margin")
    return {
        "triplet": LMLoss(
            name="triplet",
            function=build_loss("TripletMarginLoss", margin=value),
            tags=["metric"],
        )
    }
