"""DDP the way people write it: two CPU processes on gloo, no mocks.

One ``spawn`` runs every scenario in turn (spawning costs seconds, the scenarios
milliseconds); each rank saves what it saw per scenario, and the tests below read it.
Collectives time out after ``GLOO_TIMEOUT_S`` and the parent gives up after
``JOIN_TIMEOUT_S``, so a hang fails the tests instead of blocking CI.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nectarloss import LossManager, UncertaintyWeighting, read_log
from nectarloss.distributed import (
    LossPlan,
    RankMismatchError,
    check_same_losses,
    names_digest,
    plan_merge,
    reduce_pending,
)
from nectarloss.log import LOG_FILENAME, LossLogWriter
from nectarloss.modifiers import SuperLoss
from nectarloss.transfer import pending_to_host, values_to_host

WORLD = 2
STEPS = 12
GLOO_TIMEOUT_S = 20
JOIN_TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")


# ---------------------------------------------------------------------- the pure merge
def test_plan_merge_disjoint_losses_each_from_its_rank() -> None:
    plans = plan_merge(["a", "b"], [[(3, 0), (0, 0)], [(0, 0), (2, 7)]])
    assert plans == [LossPlan("a", 3, 0, (0,)), LossPlan("b", 2, 7, (1,))]
    assert plans[1].steps == range(7, 9)


def test_plan_merge_same_steps_on_both_ranks() -> None:
    assert plan_merge(["a"], [[(4, 2)], [(4, 2)]]) == [LossPlan("a", 4, 2, (0, 1))]


def test_plan_merge_nobody_computed() -> None:
    assert plan_merge(["a"], [[(0, 3)], [(0, 5)]]) == [LossPlan("a", 0, 5, ())]


@pytest.mark.parametrize(
    ("table", "shown"),
    [
        ([[(3, 0)], [(2, 0)]], "'a' (rank 0: 3 values from step 0, rank 1: 2 values from step 0)"),
        ([[(2, 0)], [(2, 4)]], "'a' (rank 0: 2 values from step 0, rank 1: 2 values from step 4)"),
    ],
    ids=["counts", "first_steps"],
)
def test_plan_merge_unmergeable_names_loss_ranks_and_counts(
    table: list[list[tuple[int, int]]], shown: str
) -> None:
    with pytest.raises(RankMismatchError, match="Nothing was written or cleared") as info:
        plan_merge(["a"], table)
    assert shown in str(info.value)


def test_check_same_losses_names_every_rank() -> None:
    check_same_losses([(2, names_digest(["a", "b"]))] * 2)
    with pytest.raises(RankMismatchError, match=r"rank 0: \['a', 'b'\]; rank 1: \['b', 'a'\]"):
        check_same_losses(
            [(2, names_digest(["a", "b"])), (2, names_digest(["b", "a"]))],
            [["a", "b"], ["b", "a"]],
        )


def test_names_digest_is_order_sensitive_and_unambiguous() -> None:
    assert names_digest(["a", "b"]) != names_digest(["b", "a"])
    assert names_digest(["ab"]) != names_digest(["a", "b"])
    assert names_digest([]) == names_digest([])


def test_local_merge_is_this_process_alone() -> None:
    chunks = pending_to_host(
        ["a", "b"], [torch.tensor([1.0, 2.0]), torch.empty(0)], [[0.5, 0.5], []], [4, 9]
    )
    assert [(c.name, c.steps, c.values, c.weights) for c in chunks] == [
        ("a", range(4, 6), [1.0, 2.0], [0.5, 0.5]),
        ("b", range(9, 9), [], []),
    ]
    merged = reduce_pending([LossPlan("a", 2, 4, (0,))], [torch.tensor([1.0, 2.0])], [[0.5, 0.5]])
    assert merged == [([1.0, 2.0], [0.5, 0.5])]
    values = values_to_host(["a", "b"], [torch.tensor(3.0), None], [2.0, 1.0], across_ranks=True)
    assert values[0] == 6.0 and math.isnan(values[1])


def test_merge_rejects_values_without_weights() -> None:
    with pytest.raises(ValueError, match="a: buffered values and weights expected the same"):
        pending_to_host(["a"], [torch.tensor([1.0, 2.0])], [[1.0]], [0])


def test_sync_query_without_process_group_is_local() -> None:
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    lm.register_loss_fn("b", nn.L1Loss())
    lm.compute_loss_xy("a", torch.ones(3), torch.zeros(3))
    local, synced = lm.get_loss_values(), lm.get_loss_values(sync=True)
    assert local["a"] == synced["a"] == 2.0
    assert math.isnan(local["b"]) and math.isnan(synced["b"])


# ---------------------------------------------------------------------- two gloo ranks
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def series(path: Path) -> dict[str, list[list[float]]]:
    log = read_log(path / LOG_FILENAME)
    return {
        name: [list(s.steps), list(s.values), list(s.weights)] for name, s in log.losses.items()
    }


def ones(value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs whose L1 loss is ``value``."""
    return torch.full((3,), float(value)), torch.zeros(3)


def error_of(fn: Callable[[], object]) -> list[str] | None:
    try:
        fn()
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return None


def scenario_average(rank: int, exp: Path) -> dict[str, Any]:
    """Both ranks compute the same losses equally often: values are averaged."""
    calls = {"all_reduce": 0, "all_gather": 0}
    real = {name: getattr(dist, name) for name in calls}

    def counting(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real[name](*args, **kwargs)

        return call

    for name in calls:
        setattr(dist, name, counting(name))
    try:
        lm = LossManager(exp, history_buffer_size=5)  # full at 5 and 10: no flush under DDP
        lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
        x = torch.zeros(3)
        for step in range(STEPS):
            lm.compute_loss_xy("a", x + (rank + 1) * (step + 1), x)  # rank r: (r + 1)(step + 1)
        sl = SuperLoss(threshold="exp", sync_ranks=True)
        lm.register_loss_fn("sl", nn.L1Loss(reduction="none"), modifiers=[sl])
        lm.compute_loss_xy("sl", torch.full((2, 3), float(rank + 1)), torch.zeros(2, 3))
        before_query = dict(calls)
        local = lm.get_loss_values(query=["a"], precision=6, weighted=False)
        after_query = dict(calls)
        lm.update_loss_log()
        after_flush = dict(calls)
        synced = lm.get_loss_values(query=["a"], precision=6, weighted=False, sync=True)
    finally:
        for name, fn in real.items():
            setattr(dist, name, fn)
    lm.close()
    return {
        "local": local,
        "synced": synced,
        "query_calls": [after_query[k] - before_query[k] for k in ("all_gather", "all_reduce")],
        "flush_calls": [after_flush[k] - after_query[k] for k in ("all_gather", "all_reduce")],
        "tau": float(sl.tau),
    }


def scenario_rank0_query(rank: int, exp: Path) -> dict[str, Any]:
    """``if rank == 0: lm.print_losses()`` involves no other rank."""
    lm = LossManager(exp)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    lm.register_loss_fn("b", nn.L1Loss())
    lm.compute_loss_xy("a", *ones(rank + 1))
    out: dict[str, Any] = {}
    if rank == 0:
        out["printed"] = lm.print_losses(epoch=1, iteration=2, capture=True)
        out["values"] = lm.get_loss_values()
    lm.update_loss_log()
    lm.close()
    return out


def scenario_disjoint(rank: int, exp: Path) -> dict[str, Any]:
    """Rank 0 computes only ``a`` (= 1), rank 1 only ``b`` (= 100), then both both."""
    lm = LossManager(exp, history_buffer_size=2)  # rank 0's `a` fills it: no lone flush
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    lm.register_loss_fn("b", nn.L1Loss(), loss_weight=0.5)
    if rank == 0:
        for _ in range(3):
            lm.compute_loss_xy("a", *ones(1))
    else:
        for _ in range(2):
            lm.compute_loss_xy("b", *ones(100))
    written = lm.update_loss_log(silent=False, capture=True)
    next_steps = {name: e.num_steps for name, e in lm.get_registered_losses().items()}
    lm.compute_loss_xy("a", *ones(1 + 2 * rank))  # 1 and 3: mean 2
    lm.compute_loss_xy("b", *ones(50 + 50 * rank))  # 50 and 100: mean 75
    lm.close()
    return {"written": written, "next_steps": next_steps}


def scenario_mismatch(rank: int, exp: Path) -> dict[str, Any]:
    """Rank 0 computes ``a`` three times, rank 1 twice: every rank raises, nothing is lost."""
    lm = LossManager(exp)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.register_loss_fn("b", nn.L1Loss())
    for step in range(3 - rank):
        lm.compute_loss_xy("a", *ones(10 * (rank + 1) + step))  # rank 0: 10, 11, 12; 1: 20, 21
    lm.compute_loss_xy("b", *ones(5))
    error = error_of(lm.update_loss_log)
    kept = lm.get_registered_losses(strip=False)["a"].history.count
    if rank == 1:
        lm.compute_loss_xy("a", *ones(22))  # the ranks agree again
    lm.close()
    return {"error": error, "kept": kept}


def scenario_names(rank: int, exp: Path) -> dict[str, Any]:
    """Rank 1 registered one more loss: every rank raises, naming both lists."""
    lm = LossManager(exp)
    lm.register_loss_fn("a", nn.L1Loss())
    if rank == 1:
        lm.register_loss_fn("extra", nn.L1Loss())
    lm.compute_loss_xy("a", *ones(1))
    error = error_of(lm.update_loss_log)
    kept = lm.get_registered_losses(strip=False)["a"].history.count
    lm.get_registered_losses(strip=False)["a"].history.clear()  # so close() has nothing to merge
    return {"error": error, "kept": kept, "close": error_of(lm.close)}


def scenario_sync_query(rank: int, exp: Path) -> dict[str, Any]:
    """``sync=True`` averages each loss over the ranks that computed it."""
    lm = LossManager(enable_logging=False)
    lm.register_loss_fn("a", nn.L1Loss(), loss_weight=2.0)
    lm.register_loss_fn("b", nn.L1Loss())
    lm.register_loss_fn("c", nn.L1Loss())
    lm.compute_loss_xy("a", *ones(1 + 2 * rank))  # 1 and 3
    if rank == 1:
        lm.compute_loss_xy("b", *ones(10))
    return {
        "weighted": lm.get_loss_values(sync=True),
        "raw": lm.get_loss_values(weighted=False, sync=True),
        "local": lm.get_loss_values(),
    }


def scenario_write_failure(rank: int, exp: Path) -> dict[str, Any]:
    """Rank 0 cannot write once: every rank raises and keeps its values for the next flush."""
    lm = LossManager(exp)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", *ones(rank + 1))
    lm.update_loss_log()  # writes the header
    lm.compute_loss_xy("a", *ones(rank + 3))
    real_append = LossLogWriter.append

    def failing(writer: LossLogWriter, lines: Any) -> int:  # only rank 0 has a writer
        LossLogWriter.append = real_append  # type: ignore[method-assign]
        raise OSError(28, "No space left on device")

    LossLogWriter.append = failing  # type: ignore[method-assign]
    try:
        error = error_of(lm.update_loss_log)
    finally:
        LossLogWriter.append = real_append  # type: ignore[method-assign]
    kept = lm.get_registered_losses(strip=False)["a"].history.count
    lm.close()
    return {"error": error, "kept": kept}


def scenario_summary_and_export(rank: int, exp: Path) -> dict[str, Any]:
    """``summary`` and ``export_base_log`` on every rank: each flushes, rank 0 writes."""
    lm = LossManager(exp)
    lm.register_loss_fn("a", nn.L1Loss())
    lm.compute_loss_xy("a", *ones(rank + 1))
    table = lm.summary(capture=True)
    lm.compute_loss_xy("a", *ones(rank + 3))
    out = lm.export_base_log()
    lm.close()
    return {"table": table, "export": str(out), "exists": out.exists()}


def scenario_balanced(rank: int, exp: Path) -> dict[str, Any]:
    """A balanced loss's weights are device values: merged over ranks like the values."""
    lm = LossManager(exp)
    uw = UncertaintyWeighting(init=0.0)  # factor 1 / (2 e^0) = 0.5 on both ranks
    lm.register_loss_fn("u", nn.L1Loss(), loss_weight=2.0, balancer=uw)
    with torch.no_grad():
        uw.log_vars[0] = math.log(0.5) * rank  # rank 1: factor 1 / (2 * 0.5) = 1
    for step in range(3):
        lm.compute_loss_xy("u", *ones(step + 10 * rank))
    lm.close()
    return {}


SCENARIOS: dict[str, Callable[[int, Path], dict[str, Any]]] = {
    "balanced": scenario_balanced,
    "summary_export": scenario_summary_and_export,
    "average": scenario_average,
    "rank0_query": scenario_rank0_query,
    "disjoint": scenario_disjoint,
    "mismatch": scenario_mismatch,
    "names": scenario_names,
    "sync_query": scenario_sync_query,
    "write_failure": scenario_write_failure,
}


def worker(rank: int, port: int, root: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(
        "gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=GLOO_TIMEOUT_S)
    )
    try:
        for name, scenario in SCENARIOS.items():
            exp = Path(root) / name
            try:
                result: dict[str, Any] = {"ok": scenario(rank, exp)}
            except Exception:
                result = {"crash": traceback.format_exc()}
            if rank == 0 and (exp / LOG_FILENAME).exists():
                result["log"] = series(exp)
            (Path(root) / f"{name}.{rank}.json").write_text(json.dumps(result))
            dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn_ranks(target: Callable[[int, int, str], None], root: str) -> None:
    """Run ``target(rank, port, root)`` on ``WORLD`` spawned ranks; fail if they hang."""
    context = mp.start_processes(
        target, args=(free_port(), root), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} ranks did not finish in {JOIN_TIMEOUT_S} s (a hang?)")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("ddp")
    spawn_ranks(worker, str(root))

    def results(name: str) -> list[dict[str, Any]]:
        out = [json.loads((root / f"{name}.{r}.json").read_text()) for r in range(WORLD)]
        for r, result in enumerate(out):
            assert "crash" not in result, f"rank {r}: {result['crash']}"
        return out

    return results


def test_same_losses_are_averaged_and_rank0_writes_once(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks("average")
    steps, values, weights = r0["log"]["a"]
    assert steps == list(range(STEPS))  # one chunk: full buffers wait for the flush
    assert values == [1.5 * (s + 1) for s in range(STEPS)]  # mean of (r + 1)(step + 1)
    assert weights == [2.0] * STEPS
    assert r0["ok"]["local"] == {"a": 1.0 * STEPS} and r1["ok"]["local"] == {"a": 2.0 * STEPS}
    assert r0["ok"]["synced"] == r1["ok"]["synced"] == {"a": 1.5 * STEPS}
    # a local query is no collective; a flush is two small all_gathers (names, then
    # counts and first steps), one all_reduce of values and weights and one of the status
    assert r0["ok"]["query_calls"] == r1["ok"]["query_calls"] == [0, 0]
    assert r0["ok"]["flush_calls"] == r1["ok"]["flush_calls"] == [2, 2]
    assert r0["ok"]["tau"] == r1["ok"]["tau"] == 1.5  # SuperLoss(sync_ranks=True)


def test_rank0_alone_queries_and_prints_without_hanging(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks("rank0_query")
    assert r0["ok"]["printed"] == "(epoch: 1, iters: 2) Losses: a: 2.00 b: nan"
    assert r0["ok"]["values"]["a"] == 2.0 and math.isnan(r0["ok"]["values"]["b"])
    assert r1["ok"] == {}
    assert r0["log"]["a"] == [[0], [1.5], [2.0]]


def test_losses_computed_on_different_ranks_are_all_logged(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks("disjoint")
    log = r0["log"]
    assert log["a"] == [[0, 1, 2, 3], [1.0, 1.0, 1.0, 2.0], [2.0] * 4]
    assert log["b"] == [[0, 1, 2], [100.0, 100.0, 75.0], [0.5] * 3]
    # after the flush every rank goes on from each loss's last logged step
    assert r0["ok"]["next_steps"] == r1["ok"]["next_steps"] == {"a": 3, "b": 2}
    assert r0["ok"]["written"].startswith("Loss log updated: 5 values of 2 losses")


def test_balanced_weights_are_averaged_over_ranks(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks("balanced")
    assert "crash" not in r0 and "crash" not in r1, r0.get("crash") or r1.get("crash")
    steps, values, weights = r0["log"]["u"]
    assert steps == [0, 1, 2]
    assert values == [5.0, 6.0, 7.0]  # (step + (step + 10)) / 2
    assert weights == [1.5, 1.5, 1.5]  # (2 * 0.5 + 2 * 1.0) / 2


def test_unmergeable_counts_raise_on_every_rank_and_keep_values(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks("mismatch")
    for result in (r0, r1):
        kind, message = result["ok"]["error"]
        assert kind == "RankMismatchError"
        assert "'a' (rank 0: 3 values from step 0, rank 1: 2 values from step 0)" in message
        assert "'b'" not in message
    assert (r0["ok"]["kept"], r1["ok"]["kept"]) == (3, 2)
    # close() after rank 1 caught up: nothing was lost, b included
    assert r0["log"]["a"] == [[0, 1, 2], [15.0, 16.0, 17.0], [1.0] * 3]
    assert r0["log"]["b"] == [[0], [5.0], [1.0]]


def test_different_registrations_raise_on_every_rank(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    for result in ranks("names"):
        kind, message = result["ok"]["error"]
        assert kind == "RankMismatchError"
        assert "rank 0: ['a']; rank 1: ['a', 'extra']" in message
        assert result["ok"]["kept"] == 1
        assert result["ok"]["close"][0] == "RankMismatchError"  # again, and still no hang


def test_sync_query_averages_over_the_ranks_that_computed_each_loss(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks("sync_query")
    for result in (r0, r1):
        weighted, raw = result["ok"]["weighted"], result["ok"]["raw"]
        assert (weighted["a"], weighted["b"], raw["a"], raw["b"]) == (4.0, 10.0, 2.0, 10.0)
        assert math.isnan(weighted["c"]) and math.isnan(raw["c"])
    assert r0["ok"]["local"]["a"] == 2.0 and math.isnan(r0["ok"]["local"]["b"])
    assert r1["ok"]["local"]["a"] == 6.0 and r1["ok"]["local"]["b"] == 10.0


def test_failed_write_on_rank0_keeps_values_on_every_rank(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks("write_failure")
    assert r0["ok"]["error"][0] == r1["ok"]["error"][0] == "LogWriteError"
    assert "No space left on device" in r0["ok"]["error"][1]
    assert "rank 0 could not write the log" in r1["ok"]["error"][1]
    assert r0["ok"]["kept"] == r1["ok"]["kept"] == 1
    assert r0["log"]["a"] == [[0, 1], [1.5, 3.5], [1.0, 1.0]]


def test_summary_and_export_on_every_rank_do_not_hang(
    ranks: Callable[[str], list[dict[str, Any]]],
) -> None:
    r0, r1 = ranks("summary_export")
    assert r0["log"]["a"] == [[0, 1], [1.5, 3.5], [1.0, 1.0]]
    assert "1.5" in r0["ok"]["table"]  # rank 0 summarises the merged log
    assert r0["ok"]["export"] == r1["ok"]["export"] and r0["ok"]["exists"]


def destroyed_group_worker(rank: int, port: int, root: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(
        "gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=GLOO_TIMEOUT_S)
    )
    lm = LossManager(Path(root) / "exp")
    lm.register_loss_fn("G", nn.L1Loss())
    lm.compute_loss_xy("G", *ones(rank + 1))
    lm.update_loss_log()  # a flush under the group: merged
    lm.compute_loss_xy("G", *ones(rank + 1))
    done = LossManager(Path(root) / "done")  # closed in time, as a script should
    done.register_loss_fn("G", nn.L1Loss())
    done.compute_loss_xy("G", *ones(rank + 1))
    done.close()
    dist.destroy_process_group()  # the usual end of a script, before the last flush
    error = error_of(lm.close)
    kept = lm.get_registered_losses(strip=False)["G"].history.count
    again = error_of(done.close)  # what the exit hook does: nothing buffered, nothing to say
    (Path(root) / f"{rank}.json").write_text(
        json.dumps({"error": error, "kept": kept, "again": again})
    )


def test_flush_after_the_process_group_is_gone_refuses_instead_of_writing_one_rank(
    tmp_path: Path,
) -> None:
    spawn_ranks(destroyed_group_worker, str(tmp_path))
    for rank in range(WORLD):
        result = json.loads((tmp_path / f"{rank}.json").read_text())
        kind, message = result["error"]
        assert kind == "RuntimeError" and "before destroy_process_group()" in message
        assert result["kept"] == 1
        assert result["again"] is None
    assert read_log(tmp_path / "exp" / LOG_FILENAME).losses["G"].values == [1.5]
    assert read_log(tmp_path / "done" / LOG_FILENAME).losses["G"].values == [1.5]
