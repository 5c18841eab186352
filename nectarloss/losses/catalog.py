"""The loss catalog: a registry from names to loss factories.

A catalog name (``"L1Loss"``, ``"TripletMarginLoss"``, ``"Sobel"``) maps to a
:class:`LossEntry` that knows how to build the loss (its ``factory``) and which
positional inputs its ``forward`` takes (its ``inputs``). JSON specs name losses by
these names, and :class:`~nectarloss.LossManager` uses :func:`check_arity` to reject
a call with the wrong number of inputs before it reaches torch.

Every built-in ``torch.nn`` loss is registered under its class name, with a few
aliases (``"L1"``, ``"L2"``, ``"MSE"``). All of them accept ``reduction="none"``
natively: the manager may build them with ``reduction="none"`` so that per-sample
modifiers see the unreduced loss and reduce it themselves. Our own losses
(``Sobel``, ``Laplacian``, ``Perceptual``) follow the same convention.
``"AdaptiveLogSoftmaxWithLoss"`` builds :class:`AdaptiveLogSoftmaxLoss`, which wraps
torch's module (it returns a named tuple and owns parameters) so that it returns the
loss like the others.

Aliases live in their own map: :func:`available_losses` lists canonical names only,
:func:`loss_aliases` lists the aliases, and every lookup accepts both.

Example:
    >>> from nectarloss.losses import build_loss, check_arity, get_loss_entry
    >>> get_loss_entry("L2").name
    'MSELoss'
    >>> get_loss_entry("TripletMarginLoss").inputs
    ('anchor', 'positive', 'negative')
    >>> build_loss("L1Loss", reduction="none")
    L1Loss()
    >>> check_arity("L1Loss", 3)
    Traceback (most recent call last):
        ...
    ValueError: L1Loss: expected 2 inputs (input, target), got 3.

An unknown name raises :class:`~nectarloss.UnknownLossError`, the error the manager
raises for a name it has not registered (a ``KeyError`` and a ``ValueError``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor, nn

from nectarloss.errors import UnknownLossError
from nectarloss.validation import check_name, closest

__all__ = [
    "KEYWORD_KINDS",
    "AdaptiveLogSoftmaxLoss",
    "LossEntry",
    "accepts_keyword",
    "available_losses",
    "build_loss",
    "check_arity",
    "find_loss_entry",
    "get_loss_entry",
    "loss_aliases",
    "parameters_of",
    "register_loss",
    "resolve_loss_name",
    "unregister_loss",
]

LossFactory = Callable[..., nn.Module]
_F = TypeVar("_F", bound=Callable[..., nn.Module])

#: The reductions every torch loss accepts.
DEFAULT_REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")

#: Parameter kinds a keyword argument can fill.
KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def parameters_of(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """The parameters of ``factory`` by name, or ``None`` if it has no signature.

    Example:
        >>> list(parameters_of(nn.HuberLoss))
        ['reduction', 'delta']
    """
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return None


def accepts_keyword(params: dict[str, inspect.Parameter] | None, name: str) -> bool:
    """Whether a callable with ``params`` (from :func:`parameters_of`) takes ``name=...``.

    A callable without a signature (``params`` is ``None``) is assumed to take it.
    """
    if params is None:
        return True
    if name in params:
        return params[name].kind in KEYWORD_KINDS
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@dataclass(frozen=True)
class LossEntry:
    """One catalog entry: how to build a loss and how to call it.

    Args:
        name: The canonical catalog name (``"L1Loss"``).
        factory: A callable (usually the loss class) that takes keyword arguments
            and returns an ``nn.Module``.
        inputs: The names of the positional inputs of the built module's
            ``forward``, in order, e.g. ``("input", "target")``.
        doc: A one-line description.
        reductions: The values accepted for the ``reduction`` keyword, checked by
            :func:`build_loss` when the keyword is given.
        same_shape: Whether the first two inputs must have the same shape (an
            element-wise loss); the manager then rejects mismatches that torch would
            silently broadcast.
    """

    name: str
    factory: LossFactory
    inputs: tuple[str, ...] = ("input", "target")
    doc: str = ""
    reductions: tuple[str, ...] = DEFAULT_REDUCTIONS
    same_shape: bool = False

    @property
    def arity(self) -> int:
        """The number of positional inputs the built loss takes."""
        return len(self.inputs)

    @property
    def supports_reduction(self) -> bool:
        """Whether the factory accepts a ``reduction`` keyword argument."""
        return self.accepts_kwarg("reduction")

    def accepts_kwarg(self, kwarg: str) -> bool:
        """Return whether the factory accepts the keyword argument ``kwarg``."""
        return accepts_keyword(parameters_of(self.factory), kwarg)

    def check_arity(self, num_inputs: int, *, owner: str | None = None) -> None:
        """Raise if ``num_inputs`` does not match :attr:`inputs`.

        Args:
            num_inputs: The number of positional inputs of the call.
            owner: The name to put in the message; defaults to the entry's name.

        Raises:
            ValueError: If ``num_inputs`` differs from :attr:`arity`.
        """
        if num_inputs != self.arity:
            who = self.name if owner is None else owner
            plural = "input" if self.arity == 1 else "inputs"
            raise ValueError(
                f"{who}: expected {self.arity} {plural} ({', '.join(self.inputs)}), "
                f"got {num_inputs}."
            )

    def build(self, **kwargs: Any) -> nn.Module:
        """Build the loss module; see :func:`build_loss`."""
        return _build(self, kwargs)


_REGISTRY: dict[str, LossEntry] = {}
_ALIASES: dict[str, str] = {}


# --------------------------------------------------------------------------- registration
def register_loss(
    name: str,
    *,
    inputs: Iterable[str] = ("input", "target"),
    aliases: Iterable[str] = (),
    doc: str | None = None,
    reductions: Iterable[str] = DEFAULT_REDUCTIONS,
    same_shape: bool = False,
    replace: bool = False,
) -> Callable[[_F], _F]:
    """Register a loss class or factory function under ``name``; use as a decorator.

    Args:
        name: The catalog name. Must be a non-empty string without path separators,
            control characters or surrounding whitespace.
        inputs: The names of the positional inputs of the loss's ``forward``.
        aliases: Other names that resolve to this entry.
        doc: A one-line description; defaults to the first paragraph of the
            factory's docstring.
        reductions: The accepted values of the ``reduction`` keyword.
        same_shape: The first two inputs must have equal shapes (element-wise loss).
        replace: Allow overwriting an existing entry, or re-pointing an existing
            alias, with this name. An alias can never shadow a canonical name.

    Returns:
        A decorator that registers its argument and returns it unchanged.

    Raises:
        TypeError: If ``name``, ``inputs`` or ``aliases`` have the wrong type, or the
            decorated object is not callable.
        ValueError: If a name is invalid or already taken and ``replace`` is False.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from nectarloss.losses import build_loss, register_loss, unregister_loss
        >>> @register_loss("AbsDiff")
        ... class AbsDiff(nn.Module):
        ...     '''Absolute difference, unreduced.'''
        ...     def forward(self, input, target):
        ...         return (input - target).abs()
        >>> build_loss("AbsDiff")(torch.ones(2), torch.zeros(2))
        tensor([1., 1.])
        >>> _ = unregister_loss("AbsDiff")
    """
    check_name(name, "register_loss", "name")
    input_names = _check_names_tuple(inputs, "inputs", allow_empty=False)
    alias_names = _check_names_tuple(aliases, "aliases", allow_empty=True)
    reduction_names = _check_names_tuple(reductions, "reductions", allow_empty=True)
    if doc is not None and not isinstance(doc, str):
        raise TypeError(f"register_loss: `doc` expected a str or None, got {type(doc).__name__}.")
    for alias in alias_names:
        check_name(alias, "register_loss", "aliases")
        if alias == name or alias in _REGISTRY:
            raise ValueError(
                f"register_loss: `aliases` expected names that are not loss names, got {alias!r}."
            )
    if not replace:
        _check_free(name)
        for alias in alias_names:
            _check_free(alias)

    def decorator(factory: _F) -> _F:
        if not callable(factory):
            raise TypeError(
                f"register_loss: {name!r} expected a callable factory or class, "
                f"got {type(factory).__name__}."
            )
        entry = LossEntry(
            name=name,
            factory=factory,
            inputs=input_names,
            doc=_one_line_doc(factory) if doc is None else " ".join(doc.split()),
            reductions=reduction_names,
            same_shape=bool(same_shape),
        )
        _ALIASES.pop(name, None)
        for alias in alias_names:
            _ALIASES[alias] = name
        _REGISTRY[name] = entry
        return factory

    return decorator


def unregister_loss(name: str) -> LossEntry:
    """Remove a loss and all its aliases from the catalog.

    Args:
        name: A canonical name or an alias of the entry to remove.

    Returns:
        The removed entry.

    Raises:
        UnknownLossError: If ``name`` is not in the catalog.
    """
    entry = get_loss_entry(name)
    del _REGISTRY[entry.name]
    _drop_aliases_of(entry.name)
    return entry


# --------------------------------------------------------------------------- lookup
def available_losses() -> list[str]:
    """Return the canonical catalog names, sorted."""
    return sorted(_REGISTRY)


def loss_aliases() -> dict[str, str]:
    """Return a mapping from every alias to its canonical name, sorted by alias."""
    return dict(sorted(_ALIASES.items()))


def resolve_loss_name(name: str) -> str:
    """Return the canonical name of ``name`` (itself or the name an alias points to).

    Raises:
        TypeError: If ``name`` is not a string.
        UnknownLossError: If ``name`` is not in the catalog; the message suggests the
            closest valid names.
    """
    if not isinstance(name, str):
        raise TypeError(f"loss catalog: `name` expected a str, got {type(name).__name__}.")
    if name in _REGISTRY:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    raise UnknownLossError(_unknown_message(name))


def get_loss_entry(name: str) -> LossEntry:
    """Return the catalog entry for a canonical name or an alias.

    Raises:
        TypeError: If ``name`` is not a string.
        UnknownLossError: If ``name`` is not in the catalog; the message suggests the
            closest valid names.

    Example:
        >>> get_loss_entry("L1Los")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        nectarloss.errors.UnknownLossError: unknown loss 'L1Los'; did you mean 'L1Loss'...
    """
    return _REGISTRY[resolve_loss_name(name)]


def find_loss_entry(module: nn.Module) -> LossEntry | None:
    """Return the entry whose factory is the class of ``module``, or ``None``.

    This lets a caller that was handed a built module (``nn.L1Loss()``) learn its
    inputs. Only entries registered with a class as the factory can match; a module
    built by a factory function, or of an unregistered class, gives ``None``.
    """
    for entry in _REGISTRY.values():
        if type(module) is entry.factory:
            return entry
    return None


def check_arity(name: str, num_inputs: int, *, owner: str | None = None) -> None:
    """Raise if the loss ``name`` does not take ``num_inputs`` positional inputs.

    Args:
        name: A catalog name or alias.
        num_inputs: The number of positional inputs of the call.
        owner: The name to put in the message (e.g. the user's registered name);
            defaults to the canonical catalog name.

    Raises:
        ValueError: If the count is wrong, e.g.
            ``"L1Loss: expected 2 inputs (input, target), got 3."``.
        UnknownLossError: If ``name`` is unknown.
    """
    get_loss_entry(name).check_arity(num_inputs, owner=owner)


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name`` with the constructor keywords ``kwargs``.

    Args:
        name: A catalog name or alias.
        **kwargs: Keyword arguments for the factory, e.g. ``reduction="none"``.

    Returns:
        The built loss module.

    Raises:
        TypeError: If a keyword is not accepted by the factory (the message names the
            loss, the bad keyword and the accepted ones), or the factory does not
            return an ``nn.Module``.
        ValueError: If ``reduction`` is not supported.
        UnknownLossError: If ``name`` is unknown.
    """
    return _build(get_loss_entry(name), kwargs)


# --------------------------------------------------------------------------- helpers
def _build(entry: LossEntry, kwargs: dict[str, Any]) -> nn.Module:
    params = parameters_of(entry.factory)
    if params is not None:
        try:
            inspect.Signature(list(params.values())).bind(**kwargs)
        except TypeError as err:
            raise TypeError(_bad_kwargs_message(entry, params, kwargs, err)) from None
    if "reduction" in kwargs and entry.reductions:
        reduction = kwargs["reduction"]
        if not isinstance(reduction, str):
            raise TypeError(
                f"{entry.name}: `reduction` expected a str, got {type(reduction).__name__}."
            )
        if reduction not in entry.reductions:
            raise ValueError(
                f"{entry.name}: `reduction` expected one of "
                f"{', '.join(repr(r) for r in entry.reductions)}, got {reduction!r}."
            )
    module = entry.factory(**kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"{entry.name}: factory expected to return an nn.Module, got {type(module).__name__}."
        )
    return module


def _bad_kwargs_message(
    entry: LossEntry,
    params: dict[str, inspect.Parameter],
    kwargs: dict[str, Any],
    err: TypeError,
) -> str:
    accepted = [n for n, p in params.items() if p.kind in KEYWORD_KINDS]
    accepted_text = ", ".join(accepted) if accepted else "none"
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        hints = []
        for bad in unknown:
            close = difflib.get_close_matches(bad, accepted, n=1)
            hints.append(f"{bad!r} (did you mean {close[0]!r}?)" if close else repr(bad))
        noun = "argument" if len(unknown) == 1 else "arguments"
        return (
            f"{entry.name}: unexpected keyword {noun} {', '.join(hints)}; "
            f"accepted keywords: {accepted_text}."
        )
    missing = [
        n
        for n, p in params.items()
        if p.kind in KEYWORD_KINDS and p.default is inspect.Parameter.empty and n not in kwargs
    ]
    if missing:
        noun = "argument" if len(missing) == 1 else "arguments"
        return (
            f"{entry.name}: missing required keyword {noun} "
            f"{', '.join(repr(m) for m in missing)}; accepted keywords: {accepted_text}."
        )
    return f"{entry.name}: invalid keyword arguments ({err}); accepted keywords: {accepted_text}."


def _unknown_message(name: str) -> str:
    close = closest(name, list(_REGISTRY) + list(_ALIASES))
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
    return (
        f"unknown loss {name!r}{hint} {len(_REGISTRY)} losses are available "
        f"(see nectarloss.losses.available_losses())."
    )


def _check_names_tuple(
    values: Iterable[str], argument: str, *, allow_empty: bool
) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(
            f"register_loss: `{argument}` expected a tuple of str, got {type(values).__name__}."
        )
    names = tuple(values)
    for value in names:
        if not isinstance(value, str) or not value:
            raise TypeError(
                f"register_loss: `{argument}` expected non-empty strings, got {value!r}."
            )
    if not names and not allow_empty:
        raise ValueError(f"register_loss: `{argument}` expected at least one name, got ().")
    if len(set(names)) != len(names):
        raise ValueError(f"register_loss: `{argument}` expected unique names, got {names}.")
    return names


def _check_free(name: str) -> None:
    if name in _REGISTRY:
        raise ValueError(
            f"register_loss: `name` expected a name not yet registered, got {name!r} "
            f"(pass replace=True to overwrite it)."
        )
    if name in _ALIASES:
        raise ValueError(
            f"register_loss: `name` expected a name not yet registered, got {name!r}, "
            f"an alias of {_ALIASES[name]!r} (pass replace=True to overwrite it)."
        )


def _drop_aliases_of(name: str) -> None:
    for alias in [a for a, target in _ALIASES.items() if target == name]:
        del _ALIASES[alias]


def _one_line_doc(factory: Callable[..., Any]) -> str:
    text = inspect.getdoc(factory) or ""
    first_paragraph = text.strip().split("\n\n", 1)[0]
    return " ".join(first_paragraph.split())


# --------------------------------------------------------------------------- adaptive softmax
class AdaptiveLogSoftmaxLoss(nn.Module):
    """Adaptive softmax (Grave et al.) as a catalog loss: returns the loss tensor.

    torch's :class:`~torch.nn.AdaptiveLogSoftmaxWithLoss` returns a named tuple
    ``(output, loss)`` and owns the softmax's parameters (a head and one projection per
    tail cluster), so the manager cannot call it like the other losses. This module
    holds it as :attr:`adaptive` and returns the negative log-likelihood of each
    target, reduced by ``reduction``; ``reduction="mean"`` equals torch's ``loss``.

    The parameters are the module's own: pass ``loss_fn.parameters()`` to the optimizer
    along with the model's (for a loss built from a spec, ``lm.get_registered_losses()
    [name].function.parameters()``); they move with ``LossManager.to`` and are saved in
    its ``state_dict``. torch's ``output`` (the log-probability of each target) is
    ``-loss`` under ``reduction="none"``; :meth:`log_prob` gives every class's
    log-probability and :meth:`predict` the most likely class.

    Args:
        in_features: Features per sample of ``input``.
        n_classes: Number of classes.
        cutoffs: Increasing class indices that end the head and each tail cluster
            (torch's argument).
        div_value: Each tail cluster's projection is this many times narrower.
        head_bias: Give the head a bias.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shape ``[B]``).

    Raises:
        ValueError: ``reduction`` is none of those, or torch rejects the other
            arguments (e.g. ``cutoffs`` not increasing).

    Shape:
        - input: ``[B, in_features]``.
        - target: ``[B]`` class indices in ``[0, n_classes)``.
        - output: ``[]``, or ``[B]`` with ``reduction="none"``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> loss_fn = build_loss("AdaptiveLogSoftmaxWithLoss", in_features=8, n_classes=10,
        ...                      cutoffs=[4], reduction="none")
        >>> loss_fn(torch.randn(3, 8), torch.tensor([0, 5, 9])).shape
        torch.Size([3])

    Reference:
        Grave et al., "Efficient softmax approximation for GPUs", ICML 2017.
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        cutoffs: Iterable[int],
        div_value: float = 4.0,
        head_bias: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
            in_features, n_classes, list(cutoffs), div_value=div_value, head_bias=head_bias
        )

    @classmethod
    def wrap(
        cls, adaptive: nn.AdaptiveLogSoftmaxWithLoss, reduction: str = "mean"
    ) -> AdaptiveLogSoftmaxLoss:
        """Wrap an existing torch module (its parameters are shared, not copied).

        Args:
            adaptive: The module to wrap.
            reduction: As in the constructor.

        Returns:
            A loss whose :attr:`adaptive` is ``adaptive``.

        Raises:
            TypeError: ``adaptive`` is not an ``nn.AdaptiveLogSoftmaxWithLoss``.
            ValueError: Bad ``reduction``.
        """
        if not isinstance(adaptive, nn.AdaptiveLogSoftmaxWithLoss):
            raise TypeError(
                "AdaptiveLogSoftmaxWithLoss: `adaptive` expected an "
                f"nn.AdaptiveLogSoftmaxWithLoss, got {type(adaptive).__name__}."
            )
        loss = cls.__new__(cls)  # not __init__: it would build a second softmax
        nn.Module.__init__(loss)
        loss.reduction = _check_reduction(reduction)
        loss.adaptive = adaptive
        return loss

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The negative log-likelihood of ``target`` under the adaptive softmax, reduced."""
        nll: Tensor = -self.adaptive(input, target).output
        if self.reduction == "mean":
            return nll.mean()
        if self.reduction == "sum":
            return nll.sum()
        return nll

    def log_prob(self, input: Tensor) -> Tensor:
        """Log-probabilities of every class, ``[B, n_classes]`` (torch's ``log_prob``)."""
        out: Tensor = self.adaptive.log_prob(input)
        return out

    def predict(self, input: Tensor) -> Tensor:
        """The most likely class of each sample, ``[B]`` (torch's ``predict``)."""
        out: Tensor = self.adaptive.predict(input)
        return out


def _check_reduction(reduction: object) -> str:
    if not isinstance(reduction, str) or reduction not in DEFAULT_REDUCTIONS:
        raise ValueError(
            f"AdaptiveLogSoftmaxWithLoss: `reduction` expected one of "
            f"{', '.join(repr(r) for r in DEFAULT_REDUCTIONS)}, got {reduction!r}."
        )
    return reduction


# --------------------------------------------------------------------------- built-ins
_TORCH_LOSSES: tuple[tuple[str, LossFactory, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("MSELoss", nn.MSELoss, ("input", "target"), ("L2", "MSE"), "Mean squared error."),
    ("L1Loss", nn.L1Loss, ("input", "target"), ("L1",), "Mean absolute error."),
    (
        "SmoothL1Loss",
        nn.SmoothL1Loss,
        ("input", "target"),
        (),
        "Squared error below `beta`, absolute error above, scaled by 1/beta.",
    ),
    (
        "HuberLoss",
        nn.HuberLoss,
        ("input", "target"),
        (),
        "Squared error below `delta`, delta-scaled absolute error above.",
    ),
    (
        "NLLLoss",
        nn.NLLLoss,
        ("input", "target"),
        (),
        "Negative log-likelihood of class indices given log-probabilities [B, C].",
    ),
    (
        "CrossEntropyLoss",
        nn.CrossEntropyLoss,
        ("input", "target"),
        (),
        "Cross entropy of logits [B, C] against class indices or probabilities.",
    ),
    (
        "BCELoss",
        nn.BCELoss,
        ("input", "target"),
        (),
        "Binary cross entropy of probabilities in [0, 1].",
    ),
    (
        "BCEWithLogitsLoss",
        nn.BCEWithLogitsLoss,
        ("input", "target"),
        (),
        "Binary cross entropy of logits (sigmoid fused, numerically stable).",
    ),
    (
        "KLDivLoss",
        nn.KLDivLoss,
        ("input", "target"),
        (),
        "Kullback-Leibler divergence of log-probabilities `input` from `target`.",
    ),
    (
        "HingeEmbeddingLoss",
        nn.HingeEmbeddingLoss,
        ("input", "target"),
        (),
        "Hinge embedding loss of distances against {-1, 1} labels.",
    ),
    (
        "MarginRankingLoss",
        nn.MarginRankingLoss,
        ("input1", "input2", "target"),
        (),
        "Ranking hinge max(0, -y * (x1 - x2) + margin) with y in {-1, 1}.",
    ),
    (
        "TripletMarginLoss",
        nn.TripletMarginLoss,
        ("anchor", "positive", "negative"),
        (),
        "Triplet hinge max(0, d(a, p) - d(a, n) + margin).",
    ),
    (
        "SoftMarginLoss",
        nn.SoftMarginLoss,
        ("input", "target"),
        (),
        "Logistic loss log(1 + exp(-y * x)) with y in {-1, 1}.",
    ),
    (
        "MultiLabelMarginLoss",
        nn.MultiLabelMarginLoss,
        ("input", "target"),
        (),
        "Multi-class multi-label hinge; target holds class indices padded with -1.",
    ),
    (
        "CosineEmbeddingLoss",
        nn.CosineEmbeddingLoss,
        ("input1", "input2", "target"),
        (),
        "1 - cos(x1, x2) for y = 1, max(0, cos(x1, x2) - margin) for y = -1.",
    ),
    (
        "PoissonNLLLoss",
        nn.PoissonNLLLoss,
        ("log_input", "target"),
        (),
        "Negative log-likelihood of a Poisson target (input is the log-rate by default).",
    ),
    (
        "GaussianNLLLoss",
        nn.GaussianNLLLoss,
        ("input", "target", "var"),
        (),
        "Negative log-likelihood of a Gaussian target with predicted mean and variance.",
    ),
    (
        "MultiMarginLoss",
        nn.MultiMarginLoss,
        ("input", "target"),
        (),
        "Multi-class hinge of scores [B, C] against class indices [B] (margin, power p).",
    ),
    (
        "MultiLabelSoftMarginLoss",
        nn.MultiLabelSoftMarginLoss,
        ("input", "target"),
        (),
        "Multi-label logistic loss of logits [B, C] against {0, 1} targets [B, C].",
    ),
    (
        "TripletMarginWithDistanceLoss",
        nn.TripletMarginWithDistanceLoss,
        ("anchor", "positive", "negative"),
        (),
        "Triplet hinge max(0, d(a, p) - d(a, n) + margin) with any distance function.",
    ),
    (
        "CTCLoss",
        nn.CTCLoss,
        ("log_probs", "targets", "input_lengths", "target_lengths"),
        (),
        "Connectionist temporal classification of log-probabilities [T, B, C]; "
        "per sample [B], not divided by the target lengths.",
    ),
    (
        "AdaptiveLogSoftmaxWithLoss",
        AdaptiveLogSoftmaxLoss,
        ("input", "target"),
        (),
        "Adaptive softmax NLL of features [B, F] against class indices; owns parameters.",
    ),
)


#: Element-wise torch losses: prediction and target must have the same shape.
_SAME_SHAPE = frozenset(
    {
        "MSELoss",
        "L1Loss",
        "SmoothL1Loss",
        "HuberLoss",
        "BCELoss",
        "BCEWithLogitsLoss",
        "KLDivLoss",
        "SoftMarginLoss",
        "PoissonNLLLoss",
        "GaussianNLLLoss",
        "MultiLabelSoftMarginLoss",
    }
)


def _register_torch_losses() -> None:
    for name, cls, inputs, aliases, doc in _TORCH_LOSSES:
        reductions = (*DEFAULT_REDUCTIONS, "batchmean") if name == "KLDivLoss" else None
        register_loss(
            name,
            inputs=inputs,
            aliases=aliases,
            doc=doc,
            reductions=DEFAULT_REDUCTIONS if reductions is None else reductions,
            same_shape=name in _SAME_SHAPE,
        )(cls)


_register_torch_losses()
