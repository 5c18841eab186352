"""Tests for the loss catalog (nectarloss/losses/catalog.py)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from nectarloss import LossManager
from nectarloss.losses import (
    AdaptiveLogSoftmaxLoss,
    LossEntry,
    available_losses,
    build_loss,
    check_arity,
    find_loss_entry,
    get_loss_entry,
    loss_aliases,
    register_loss,
    resolve_loss_name,
    unregister_loss,
)

BATCH = 4
NUM_CLASSES = 5
DIM = 6

TORCH_LOSSES = (
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "NLLLoss",
    "CrossEntropyLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
    "HingeEmbeddingLoss",
    "MarginRankingLoss",
    "TripletMarginLoss",
    "SoftMarginLoss",
    "MultiLabelMarginLoss",
    "CosineEmbeddingLoss",
    "PoissonNLLLoss",
    "GaussianNLLLoss",
    "MultiMarginLoss",
    "MultiLabelSoftMarginLoss",
    "TripletMarginWithDistanceLoss",
    "CTCLoss",
    "AdaptiveLogSoftmaxWithLoss",
)
OUR_LOSSES = ("Sobel", "Laplacian", "Perceptual")
ALL_LOSSES = TORCH_LOSSES + OUR_LOSSES
SPECIAL_INPUTS = {
    "PoissonNLLLoss": ("log_input", "target"),
    "MarginRankingLoss": ("input1", "input2", "target"),
    "CosineEmbeddingLoss": ("input1", "input2", "target"),
    "TripletMarginLoss": ("anchor", "positive", "negative"),
    "GaussianNLLLoss": ("input", "target", "var"),
    "TripletMarginWithDistanceLoss": ("anchor", "positive", "negative"),
    "CTCLoss": ("log_probs", "targets", "input_lengths", "target_lengths"),
}
#: CTC: input frames, the longest target, and classes (0 is the blank).
CTC_FRAMES, CTC_TARGET, CTC_CLASSES = 12, 4, 6
#: AdaptiveLogSoftmaxWithLoss: features, classes and the head/tail cutoffs (16 features:
#: the tails project to 16 // 4 and 16 // 16 features, none empty).
ASM_FEATURES = 16
ASM_KWARGS: dict[str, object] = {"in_features": ASM_FEATURES, "n_classes": 20, "cutoffs": [5, 12]}


def _signs(*shape: int) -> Tensor:
    return torch.randint(0, 2, shape).float() * 2 - 1


def _ctc_inputs() -> tuple[Tensor, ...]:
    log_probs = F.log_softmax(torch.randn(CTC_FRAMES, BATCH, CTC_CLASSES), dim=2)
    target_lengths = torch.randint(1, CTC_TARGET + 1, (BATCH,))
    targets = torch.randint(1, CTC_CLASSES, (BATCH, CTC_TARGET))
    input_lengths = torch.full((BATCH,), CTC_FRAMES, dtype=torch.long)
    input_lengths[0] = CTC_FRAMES - 2  # one shorter sequence
    return log_probs, targets, input_lengths, target_lengths


def _multilabel_target() -> Tensor:
    # Each row lists its labels first, then -1 padding (torch stops at the first -1).
    target = torch.full((BATCH, NUM_CLASSES), -1, dtype=torch.long)
    target[:, 0] = 1
    target[::2, 1] = 3
    return target


def make_inputs(name: str) -> tuple[Tensor, ...]:
    """Return valid dummy inputs for the loss ``name``; the first one requires grad."""
    x = torch.randn(BATCH, NUM_CLASSES)
    if name in ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss"):
        inputs: tuple[Tensor, ...] = (x, torch.randn(BATCH, NUM_CLASSES))
    elif name == "NLLLoss":
        inputs = (F.log_softmax(x, dim=1), torch.randint(0, NUM_CLASSES, (BATCH,)))
    elif name == "CrossEntropyLoss":
        inputs = (x, torch.randint(0, NUM_CLASSES, (BATCH,)))
    elif name == "BCELoss":
        inputs = (torch.sigmoid(x), torch.rand(BATCH, NUM_CLASSES))
    elif name == "BCEWithLogitsLoss":
        inputs = (x, torch.rand(BATCH, NUM_CLASSES))
    elif name == "KLDivLoss":
        inputs = (F.log_softmax(x, dim=1), F.softmax(torch.randn(BATCH, NUM_CLASSES), dim=1))
    elif name == "HingeEmbeddingLoss":
        inputs = (x.abs(), _signs(BATCH, NUM_CLASSES))
    elif name == "SoftMarginLoss":
        inputs = (x, _signs(BATCH, NUM_CLASSES))
    elif name == "MultiLabelMarginLoss":
        inputs = (x, _multilabel_target())
    elif name == "MarginRankingLoss":
        inputs = (torch.randn(BATCH), torch.randn(BATCH), _signs(BATCH))
    elif name == "CosineEmbeddingLoss":
        inputs = (torch.randn(BATCH, DIM), torch.randn(BATCH, DIM), _signs(BATCH))
    elif name == "TripletMarginLoss":
        inputs = (torch.randn(BATCH, DIM), torch.randn(BATCH, DIM), torch.randn(BATCH, DIM))
    elif name == "PoissonNLLLoss":
        inputs = (x, torch.poisson(torch.full((BATCH, NUM_CLASSES), 2.0)))
    elif name == "GaussianNLLLoss":
        inputs = (x, torch.randn(BATCH, NUM_CLASSES), torch.rand(BATCH, NUM_CLASSES) + 0.1)
    elif name == "MultiMarginLoss":
        inputs = (x, torch.randint(0, NUM_CLASSES, (BATCH,)))
    elif name == "MultiLabelSoftMarginLoss":
        inputs = (x, torch.randint(0, 2, (BATCH, NUM_CLASSES)).float())
    elif name == "TripletMarginWithDistanceLoss":
        inputs = (torch.randn(BATCH, DIM), torch.randn(BATCH, DIM), torch.randn(BATCH, DIM))
    elif name == "CTCLoss":
        inputs = _ctc_inputs()
    elif name == "AdaptiveLogSoftmaxWithLoss":
        inputs = (
            torch.randn(BATCH, ASM_FEATURES),
            torch.tensor([0, 4, 7, 19]),
        )  # head and both tails
    elif name in OUR_LOSSES:
        inputs = (torch.rand(BATCH, 3, 6, 6), torch.rand(BATCH, 3, 6, 6))
    else:
        raise KeyError(name)
    first = inputs[0].detach().requires_grad_(True)
    return (first, *inputs[1:])


def make_kwargs(name: str) -> dict[str, object]:
    if name == "Perceptual":
        return {"feature_extractor": nn.Conv2d(3, 2, 3)}
    if name == "AdaptiveLogSoftmaxWithLoss":
        return dict(ASM_KWARGS)
    return {}


@pytest.fixture
def scratch_names() -> Iterator[list[str]]:
    """Names registered by a test; unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        if name in available_losses():
            unregister_loss(name)


# --------------------------------------------------------------------------- contents
def test_catalog_lists_every_builtin_sorted() -> None:
    names = available_losses()
    assert names == sorted(names)
    assert set(ALL_LOSSES) <= set(names)


def test_aliases_resolve_to_the_same_entry() -> None:
    aliases = loss_aliases()
    assert aliases["L1"] == "L1Loss"
    assert aliases["L2"] == "MSELoss"
    assert aliases["MSE"] == "MSELoss"
    assert get_loss_entry("L2") is get_loss_entry("MSELoss")
    assert get_loss_entry("MSE") is get_loss_entry("MSELoss")
    assert resolve_loss_name("L1") == "L1Loss"
    assert not set(aliases) & set(available_losses())
    assert isinstance(build_loss("L1", reduction="sum"), nn.L1Loss)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_entry_inputs_and_arity(name: str) -> None:
    entry = get_loss_entry(name)
    assert entry.name == name
    assert entry.inputs == SPECIAL_INPUTS.get(name, ("input", "target"))
    assert entry.arity == len(entry.inputs)
    assert entry.doc and "\n" not in entry.doc
    assert entry.supports_reduction


@pytest.mark.parametrize("name", TORCH_LOSSES)
def test_entry_inputs_match_torch_forward(name: str) -> None:
    factory = get_loss_entry(name).factory
    assert isinstance(factory, type) and issubclass(factory, nn.Module)
    params = list(inspect.signature(factory.forward).parameters)[1:]  # drop self
    assert tuple(params) == get_loss_entry(name).inputs


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_every_entry_builds_and_runs(name: str, reduction: str) -> None:
    torch.manual_seed(0)
    if name == "KLDivLoss" and reduction == "mean":
        reduction = "batchmean"  # "mean" warns that it is not the KL divergence
    loss_fn = build_loss(name, reduction=reduction, **make_kwargs(name))
    inputs = make_inputs(name)
    check_arity(name, len(inputs))
    out = loss_fn(*inputs)
    assert torch.isfinite(out).all()
    if reduction != "none":
        assert out.dim() == 0
    else:
        assert out.dim() >= 1 and out.shape[0] == BATCH  # per-sample reducible
    out.sum().backward()
    assert inputs[0].grad is not None


def test_kldiv_accepts_batchmean() -> None:
    assert build_loss("KLDivLoss", reduction="batchmean").reduction == "batchmean"
    with pytest.raises(ValueError, match="L1Loss: `reduction` expected one of"):
        build_loss("L1Loss", reduction="batchmean")


def test_find_loss_entry_by_module() -> None:
    found = find_loss_entry(nn.TripletMarginLoss())
    assert found is not None and found.name == "TripletMarginLoss"
    assert find_loss_entry(nn.Linear(2, 2)) is None


def test_entry_is_frozen() -> None:
    entry = get_loss_entry("L1Loss")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.name = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- arity
def test_check_arity_message() -> None:
    with pytest.raises(
        ValueError, match=re.escape("L1Loss: expected 2 inputs (input, target), got 3.")
    ):
        check_arity("L1Loss", 3)


def test_check_arity_three_inputs() -> None:
    check_arity("TripletMarginLoss", 3)
    msg = "GaussianNLLLoss: expected 3 inputs (input, target, var), got 2."
    with pytest.raises(ValueError, match=re.escape(msg)):
        check_arity("GaussianNLLLoss", 2)


def test_check_arity_alias_and_owner() -> None:
    with pytest.raises(ValueError, match=re.escape("L1Loss: expected 2 inputs")):
        check_arity("L1", 1)
    with pytest.raises(
        ValueError, match=re.escape("G_L1: expected 2 inputs (input, target), got 1.")
    ):
        check_arity("L1", 1, owner="G_L1")


# --------------------------------------------------------------------------- unknown names
def test_unknown_name_suggests_closest() -> None:
    count = len(available_losses())
    with pytest.raises(ValueError) as info:
        get_loss_entry("L1Los")
    msg = str(info.value)
    assert msg.startswith("unknown loss 'L1Los'; did you mean 'L1Loss'")
    assert f"{count} losses are available" in msg


def test_unknown_name_case_slip() -> None:
    with pytest.raises(ValueError, match="did you mean 'BCEWithLogitsLoss'"):
        build_loss("bcewithlogitsloss")


def test_unknown_name_without_suggestion() -> None:
    with pytest.raises(ValueError) as info:
        check_arity("zzzzzzzz", 2)
    assert "did you mean" not in str(info.value)
    assert "losses are available" in str(info.value)


def test_name_must_be_str() -> None:
    with pytest.raises(TypeError, match="expected a str, got int"):
        get_loss_entry(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- build kwargs
def test_bad_kwarg_names_loss_and_accepted() -> None:
    with pytest.raises(TypeError) as info:
        build_loss("L1Loss", reductoin="none")
    msg = str(info.value)
    assert msg.startswith("L1Loss: unexpected keyword argument 'reductoin'")
    assert "did you mean 'reduction'" in msg
    assert "accepted keywords: size_average, reduce, reduction." in msg


def test_bad_kwarg_on_multi_input_loss() -> None:
    with pytest.raises(TypeError, match=r"TripletMarginLoss: unexpected keyword argument 'marg'"):
        build_loss("TripletMarginLoss", marg=1.0)
    assert build_loss("TripletMarginLoss", margin=2.0).margin == 2.0


def test_missing_required_kwarg() -> None:
    with pytest.raises(
        TypeError, match="Perceptual: missing required keyword argument 'feature_extractor'"
    ):
        build_loss("Perceptual")


def test_reduction_type_checked() -> None:
    with pytest.raises(TypeError, match="MSELoss: `reduction` expected a str, got int"):
        build_loss("MSE", reduction=1)


# --------------------------------------------------------------------------- registration
def test_register_class_with_decorator(scratch_names: list[str]) -> None:
    scratch_names.append("ScratchAbs")

    @register_loss("ScratchAbs", aliases=("SAbs",))
    class ScratchAbs(nn.Module):
        """Absolute difference.

        More text that is not part of the one-liner.
        """

        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, input: Tensor, target: Tensor) -> Tensor:
            return self.scale * (input - target).abs()

    assert ScratchAbs.__name__ == "ScratchAbs"  # the decorator returns the class unchanged
    entry = get_loss_entry("SAbs")
    assert entry.name == "ScratchAbs" and entry.factory is ScratchAbs
    assert entry.doc == "Absolute difference."
    assert not entry.supports_reduction
    loss_fn = build_loss("ScratchAbs", scale=2.0)
    assert torch.equal(loss_fn(torch.ones(2), torch.zeros(2)), torch.full((2,), 2.0))
    with pytest.raises(
        TypeError,
        match=r"ScratchAbs: unexpected keyword argument 'reduction'; accepted keywords: scale\.",
    ):
        build_loss("ScratchAbs", reduction="none")
    assert "ScratchAbs" in available_losses()
    assert "SAbs" not in available_losses()


def test_register_factory_function_multi_input(scratch_names: list[str]) -> None:
    scratch_names.append("ScratchTriple")

    @register_loss("ScratchTriple", inputs=("a", "b", "c"), doc="  Sum of\n three.  ")
    def make_triple(**kwargs: object) -> nn.Module:
        class Triple(nn.Module):
            def forward(self, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
                return a + b + c

        return Triple()

    assert callable(make_triple)
    entry = get_loss_entry("ScratchTriple")
    assert entry.doc == "Sum of three."
    assert entry.arity == 3
    check_arity("ScratchTriple", 3)
    with pytest.raises(
        ValueError, match=re.escape("ScratchTriple: expected 3 inputs (a, b, c), got 2.")
    ):
        check_arity("ScratchTriple", 2)
    assert find_loss_entry(build_loss("ScratchTriple", anything=1)) is None  # **kwargs accepted


def test_duplicate_name_raises_unless_replace(scratch_names: list[str]) -> None:
    scratch_names.append("ScratchDup")
    register_loss("ScratchDup")(nn.L1Loss)
    with pytest.raises(ValueError, match="'ScratchDup'.*replace=True"):
        register_loss("ScratchDup")(nn.MSELoss)
    with pytest.raises(ValueError, match="'L1Loss'"):
        register_loss("L1Loss")(nn.MSELoss)
    register_loss("ScratchDup", replace=True)(nn.MSELoss)
    assert get_loss_entry("ScratchDup").factory is nn.MSELoss


def test_alias_conflicts(scratch_names: list[str]) -> None:
    scratch_names.append("ScratchAlias")
    with pytest.raises(ValueError, match="an alias of 'MSELoss'"):
        register_loss("L2")(nn.L1Loss)
    with pytest.raises(ValueError, match="'L1'"):
        register_loss("ScratchAlias", aliases=("L1",))(nn.L1Loss)
    with pytest.raises(ValueError, match="not loss names, got 'MSELoss'"):
        register_loss("ScratchAlias", aliases=("MSELoss",), replace=True)
    assert "ScratchAlias" not in available_losses()


def test_unregister_removes_aliases(scratch_names: list[str]) -> None:
    register_loss("ScratchGone", aliases=("SG1", "SG2"))(nn.L1Loss)
    removed = unregister_loss("SG1")
    assert removed.name == "ScratchGone"
    assert "SG1" not in loss_aliases() and "SG2" not in loss_aliases()
    with pytest.raises(ValueError, match="unknown loss 'ScratchGone'"):
        get_loss_entry("ScratchGone")


@pytest.mark.parametrize("bad", ["", " padded", "a/b", "a\\b", "tab\there"])
def test_register_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ValueError, match="register_loss: `name` expected a non-empty name"):
        register_loss(bad)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"inputs": "input"}, TypeError),
        ({"inputs": ()}, ValueError),
        ({"inputs": ("x", "x")}, ValueError),
        ({"aliases": ("",)}, TypeError),
        ({"doc": 3}, TypeError),
    ],
)
def test_register_rejects_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error, match="register_loss: "):
        register_loss("ScratchBad", **kwargs)  # type: ignore[arg-type]


def test_register_rejects_non_callable_and_non_str() -> None:
    with pytest.raises(TypeError, match="expected a str, got int"):
        register_loss(5)  # type: ignore[arg-type]
    decorator: Callable[[object], object] = register_loss("ScratchNotCallable")  # type: ignore[assignment]
    with pytest.raises(TypeError, match="expected a callable factory or class, got int"):
        decorator(3)
    assert "ScratchNotCallable" not in available_losses()


def test_factory_must_return_module(scratch_names: list[str]) -> None:
    scratch_names.append("ScratchNotModule")
    register_loss("ScratchNotModule")(lambda: "nope")  # type: ignore[type-var]
    with pytest.raises(
        TypeError, match="ScratchNotModule: factory expected to return an nn.Module, got str"
    ):
        build_loss("ScratchNotModule")


def test_entry_build_method() -> None:
    entry = get_loss_entry("HuberLoss")
    assert isinstance(entry, LossEntry)
    assert entry.build(delta=0.5).delta == 0.5


# --------------------------------------------------------------------------- issue 16 additions
#: The losses added to cover the rest of torch's: name -> (torch class, constructor kwargs).
NEW_ENTRIES: dict[str, tuple[type[nn.Module], dict[str, object]]] = {
    "MultiMarginLoss": (nn.MultiMarginLoss, {"p": 2, "margin": 0.5}),
    "MultiLabelSoftMarginLoss": (nn.MultiLabelSoftMarginLoss, {}),
    "TripletMarginWithDistanceLoss": (
        nn.TripletMarginWithDistanceLoss,
        {"distance_function": nn.PairwiseDistance(p=1.0), "margin": 0.3, "swap": True},
    ),
    "CTCLoss": (nn.CTCLoss, {"blank": 0, "zero_infinity": True}),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(NEW_ENTRIES))
def test_new_entry_equals_torch(name: str, reduction: str) -> None:
    torch.manual_seed(1)
    cls, kwargs = NEW_ENTRIES[name]
    inputs = make_inputs(name)
    ours = build_loss(name, reduction=reduction, **kwargs)
    assert type(ours) is cls
    want = cls(reduction=reduction, **kwargs)(*inputs)
    got = ours(*inputs)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    if reduction == "none":
        assert got.shape == (BATCH,)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_adaptive_log_softmax_equals_torch(reduction: str) -> None:
    torch.manual_seed(2)
    ours = build_loss("AdaptiveLogSoftmaxWithLoss", reduction=reduction, **ASM_KWARGS)
    torch.manual_seed(2)
    theirs = nn.AdaptiveLogSoftmaxWithLoss(**ASM_KWARGS)  # type: ignore[arg-type]
    assert ours.state_dict().keys() == {f"adaptive.{k}" for k in theirs.state_dict()}
    inputs = make_inputs("AdaptiveLogSoftmaxWithLoss")
    output, loss = theirs(*inputs)
    want = {"mean": loss, "sum": -output.sum(), "none": -output}[reduction]
    torch.testing.assert_close(ours(*inputs), want, rtol=0, atol=0)
    assert isinstance(ours, AdaptiveLogSoftmaxLoss)
    torch.testing.assert_close(ours.log_prob(inputs[0]), theirs.log_prob(inputs[0]))
    assert torch.equal(ours.predict(inputs[0]), theirs.predict(inputs[0]))


def test_adaptive_log_softmax_wrap_and_errors() -> None:
    torch.manual_seed(3)
    module = nn.AdaptiveLogSoftmaxWithLoss(**ASM_KWARGS)  # type: ignore[arg-type]
    wrapped = AdaptiveLogSoftmaxLoss.wrap(module, reduction="none")
    assert wrapped.adaptive is module
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in module.parameters()}
    inputs = make_inputs("AdaptiveLogSoftmaxWithLoss")
    torch.testing.assert_close(wrapped(*inputs), -module(*inputs).output)
    assert find_loss_entry(wrapped) is get_loss_entry("AdaptiveLogSoftmaxWithLoss")
    with pytest.raises(
        TypeError, match="`adaptive` expected an nn.AdaptiveLogSoftmaxWithLoss, got L1"
    ):
        AdaptiveLogSoftmaxLoss.wrap(nn.L1Loss())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="AdaptiveLogSoftmaxWithLoss: `reduction` expected one of"):
        AdaptiveLogSoftmaxLoss(**ASM_KWARGS, reduction="batchmean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="AdaptiveLogSoftmaxWithLoss: `reduction` expected one of"):
        build_loss("AdaptiveLogSoftmaxWithLoss", reduction="max", **ASM_KWARGS)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("MultiMarginLoss", "expected 2 inputs (input, target), got 3."),
        ("MultiLabelSoftMarginLoss", "expected 2 inputs (input, target), got 3."),
        ("TripletMarginWithDistanceLoss", "expected 3 inputs (anchor, positive, negative), got 2."),
        (
            "CTCLoss",
            "expected 4 inputs (log_probs, targets, input_lengths, target_lengths), got 3.",
        ),
        ("AdaptiveLogSoftmaxWithLoss", "expected 2 inputs (input, target), got 3."),
    ],
)
def test_new_entry_arity_errors(name: str, message: str) -> None:
    arity = get_loss_entry(name).arity
    wrong = 3 if arity != 3 else 2
    with pytest.raises(ValueError, match=re.escape(f"{name}: {message}")):
        check_arity(name, wrong)


def test_new_entries_check_inputs_through_the_manager() -> None:
    from nectarloss import LossManager

    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("ctc", build_loss("CTCLoss"))
    lm.register_loss_fn("mlsm", build_loss("MultiLabelSoftMarginLoss"))
    ctc = make_inputs("CTCLoss")
    with pytest.raises(ValueError, match=re.escape("ctc: expected 4 inputs (log_probs, targets")):
        lm.compute_loss("ctc", *ctc[:3])
    torch.testing.assert_close(lm.compute_loss("ctc", *ctc), nn.CTCLoss()(*ctc))
    x, _ = make_inputs("MultiLabelSoftMarginLoss")
    # torch would broadcast a [B, 1] target silently; the catalog marks the loss element-wise
    with pytest.raises(ValueError, match=re.escape("mlsm: `target` expected shape (4, 5) like")):
        lm.compute_loss("mlsm", x, torch.ones(BATCH, 1))


def test_new_entries_by_name_in_a_spec_file(tmp_path: Path) -> None:
    import orjson

    from nectarloss import LossManager

    spec = {
        "losses": {
            "mm": {"loss": "MultiMarginLoss", "kwargs": {"margin": 0.5}},
            "mlsm": {"loss": "MultiLabelSoftMarginLoss", "weight": 2.0},
            "trip": {"loss": "TripletMarginWithDistanceLoss", "kwargs": {"swap": True}},
            "ctc": {"loss": "CTCLoss", "kwargs": {"blank": 0, "zero_infinity": True}},
            "asm": {
                "loss": "AdaptiveLogSoftmaxWithLoss",
                "kwargs": ASM_KWARGS,
                "modifiers": [{"name": "SuperLoss", "threshold": "exp"}],
            },
        }
    }
    path = tmp_path / "spec.json"
    path.write_bytes(orjson.dumps(spec))
    lm = LossManager(enable_logging=False)
    entries = lm.init_from_spec(path)
    assert isinstance(entries["ctc"].function, nn.CTCLoss) and entries["ctc"].function.zero_infinity
    torch.manual_seed(4)
    for name, torch_loss in (
        ("mm", nn.MultiMarginLoss(margin=0.5)),
        ("mlsm", nn.MultiLabelSoftMarginLoss()),
        ("trip", nn.TripletMarginWithDistanceLoss(swap=True)),
        ("ctc", nn.CTCLoss(zero_infinity=True)),
    ):
        inputs = make_inputs(get_loss_entry(entries[name].function.__class__.__name__).name)
        want = torch_loss(*inputs) * entries[name].loss_weight
        torch.testing.assert_close(lm.compute_loss(name, *inputs), want)
    asm = entries["asm"].function
    assert isinstance(asm, AdaptiveLogSoftmaxLoss) and asm.reduction == "none"  # for the modifier
    inputs = make_inputs("AdaptiveLogSoftmaxWithLoss")
    loss = lm.compute_loss("asm", *inputs)
    assert loss.dim() == 0 and torch.isfinite(loss)
    # the loss's parameters train with an optimizer and are saved in the manager's state
    optimizer = torch.optim.SGD(asm.parameters(), lr=0.5)
    before = asm.adaptive.head.weight.detach().clone()
    loss.backward()
    optimizer.step()
    assert not torch.equal(asm.adaptive.head.weight, before)
    saved = copy.deepcopy(lm.state_dict())
    trained = asm.adaptive.head.weight.detach().clone()
    assert torch.equal(saved["losses"]["asm"]["function"]["adaptive.head.weight"], trained)
    with torch.no_grad():
        asm.adaptive.head.weight.zero_()
    lm.load_state_dict(saved)
    assert torch.equal(asm.adaptive.head.weight, trained)


def test_torch_adaptive_log_softmax_registered_directly_points_to_the_wrapper() -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("asm", nn.AdaptiveLogSoftmaxWithLoss(16, 10, cutoffs=[4]))
    with pytest.raises(TypeError, match="register nectarloss.losses.AdaptiveLogSoftmaxLoss"):
        lm.compute_loss_xy("asm", torch.randn(3, 16), torch.tensor([0, 5, 9]))
