"""transfer.py: recorded values to the host, one copy per device, outside a process group."""

import math

import pytest
import torch

from nectarloss.testing import SyncCounter
from nectarloss.transfer import HostChunk, pending_to_host, tensors_to_host, values_to_host

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# ------------------------------------------------------------------------- tensors_to_host
def test_tensors_to_host_keeps_order_and_lengths() -> None:
    tensors = [torch.tensor([1.0, 2.0]), torch.empty(0), torch.tensor(3.5), torch.arange(4.0)]
    assert tensors_to_host(tensors) == [[1.0, 2.0], [], [3.5], [0.0, 1.0, 2.0, 3.0]]


def test_tensors_to_host_of_nothing_copies_nothing() -> None:
    with SyncCounter() as counter:
        assert tensors_to_host([]) == []
    assert counter.total == 0


def test_tensors_to_host_copies_once_per_device() -> None:
    tensors = [torch.full((n,), float(n)) for n in range(1, 6)]
    with SyncCounter() as counter:
        host = tensors_to_host(tensors)
    assert host == [[float(n)] * n for n in range(1, 6)]
    assert counter.host_copies == 1 and counter.scalar_reads == 0


def test_tensors_to_host_keeps_float64_values() -> None:
    third = 1 / 3  # not a float32 number: a float32 round trip would change it
    assert tensors_to_host([torch.tensor([third], dtype=torch.float64)]) == [[third]]


@pytest.mark.cuda
@needs_cuda
def test_tensors_to_host_mixed_devices_copies_once_per_device() -> None:
    tensors = [
        torch.tensor([1.0], device="cuda"),
        torch.tensor([2.0, 3.0]),
        torch.tensor([4.0, 5.0], device="cuda"),
        torch.tensor([6.0]),
    ]
    with SyncCounter() as counter:
        host = tensors_to_host(tensors)
    assert host == [[1.0], [2.0, 3.0], [4.0, 5.0], [6.0]]
    assert counter.host_copies == 2


# ------------------------------------------------------------------------- pending_to_host
def test_pending_to_host_builds_one_chunk_per_loss() -> None:
    chunks = pending_to_host(
        ["a", "b", "c"],
        [torch.tensor([0.5, 0.25]), torch.empty(0), torch.tensor([4.0])],
        [[2, 2], [], [1.0]],
        [3, 7, 0],
    )
    assert chunks == [
        HostChunk("a", range(3, 5), [0.5, 0.25], [2.0, 2.0]),
        HostChunk("b", range(7, 7), [], []),
        HostChunk("c", range(0, 1), [4.0], [1.0]),
    ]
    assert all(type(w) is float for chunk in chunks for w in chunk.weights)


def test_pending_to_host_copies_once_for_every_loss() -> None:
    values = [torch.full((3,), float(i)) for i in range(4)]
    with SyncCounter() as counter:
        pending_to_host(list("abcd"), values, [[1.0] * 3] * 4, [0] * 4)
    assert counter.host_copies == 1 and counter.scalar_reads == 0


def test_pending_to_host_of_no_losses() -> None:
    assert pending_to_host([], [], [], []) == []


def test_pending_to_host_refuses_values_and_weights_of_different_lengths() -> None:
    with pytest.raises(
        ValueError, match=r"^b: buffered values and weights expected the same length, got 2 and 1"
    ):
        pending_to_host(["a", "b"], [torch.ones(1), torch.ones(2)], [[1.0], [1.0]], [0, 0])


def test_pending_to_host_across_ranks_without_a_group_is_this_process() -> None:
    args = (
        ["a", "b"],
        [torch.tensor([0.5, 0.25]), torch.tensor([8.0])],
        [[2.0, 2.0], [0.5]],
        [3, 10],
    )
    assert pending_to_host(*args, across_ranks=True) == pending_to_host(*args)


def test_pending_to_host_across_ranks_without_a_group_and_nothing_pending() -> None:
    chunks = pending_to_host(["a"], [torch.empty(0)], [[]], [4], across_ranks=True)
    assert [(c.name, len(c.steps), c.values, c.weights) for c in chunks] == [("a", 0, [], [])]


# ------------------------------------------------------------------------- values_to_host
def test_values_to_host_scales_and_reads_nan_where_none() -> None:
    out = values_to_host(["a", "b", "c"], [torch.tensor(0.5), None, torch.tensor(3.0)], [4, 1, 0])
    assert out[0] == 2.0 and math.isnan(out[1]) and out[2] == 0.0


def test_values_to_host_copies_once_and_not_at_all_when_nothing_is_there() -> None:
    values = [torch.tensor(float(i)) for i in range(5)]
    with SyncCounter() as counter:
        assert values_to_host(list("abcde"), values, [1.0] * 5) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert counter.host_copies == 1 and counter.scalar_reads == 0
    with SyncCounter() as counter:
        out = values_to_host(["a", "b"], [None, None], [1.0, 1.0])
    assert all(math.isnan(v) for v in out) and len(out) == 2
    assert counter.total == 0
    assert values_to_host([], [], []) == []


def test_values_to_host_across_ranks_without_a_group_is_this_process() -> None:
    names, values, scales = ["a", "b", "c"], [torch.tensor(0.5), None, torch.tensor(2.0)], [4, 1, 3]
    alone = values_to_host(names, values, scales)
    merged = values_to_host(names, values, scales, across_ranks=True)
    assert merged[0] == alone[0] == 2.0 and merged[2] == alone[2] == 6.0
    assert math.isnan(merged[1]) and math.isnan(alone[1])
