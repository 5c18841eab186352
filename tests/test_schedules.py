import math

import pytest
from pydantic import ValidationError

from nectarloss import Schedule
from nectarloss.schedules import CURVES

# Closed forms at the midpoint of the window (p = 0.5) for initial 100, target 1.
LINEAR_MID = 50.5  # 100 + (1 - 100) * 0.5
EXPONENTIAL_MID = 10.0  # 100 * (1 / 100) ** 0.5
COSINE_MID = 50.5  # 1 + 99 * 0.5 * (1 + cos(pi / 2))


def make(curve: str, **kw: object) -> Schedule:
    base = dict(schedule=curve, start_epoch=10, end_epoch=20, initial_value=100.0, target_value=1.0)
    base.update(kw)
    return Schedule(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("curve", "mid"),
    [("linear", LINEAR_MID), ("exponential", EXPONENTIAL_MID), ("cosine", COSINE_MID)],
)
def test_window_endpoints_and_midpoint(curve: str, mid: float) -> None:
    s = make(curve)
    assert s.value(0) == pytest.approx(100.0)
    assert s.value(10) == pytest.approx(100.0)  # start_epoch still gives initial_value
    assert s.value(15) == pytest.approx(mid)
    assert s.value(20) == pytest.approx(1.0)  # end_epoch gives target_value
    assert s.value(1000) == pytest.approx(1.0)


def test_linear_matches_nectargan_pix2pix_example() -> None:
    s = Schedule(
        schedule="linear", initial_value=100.0, start_epoch=100, target_value=0.0, end_epoch=200
    )
    assert [s.value(e) for e in (99, 100, 101, 150, 199, 200)] == pytest.approx(
        [100.0, 100.0, 99.0, 50.0, 1.0, 0.0]
    )


def test_cosine_is_monotone_between_endpoints() -> None:
    s = make("cosine")
    values = [s.value(e) for e in range(10, 21)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_step_multiplies_at_each_milestone() -> None:
    s = Schedule(schedule="step", initial_value=8.0, milestones=(5, 10), factor=0.5)
    assert [s.value(e) for e in (0, 4, 5, 9, 10, 100)] == [8.0, 8.0, 4.0, 4.0, 2.0, 2.0]


def test_warmup_is_zero_before_start_then_ramps_and_holds() -> None:
    s = Schedule(schedule="warmup", start_epoch=2, end_epoch=6, initial_value=0.0, target_value=4.0)
    assert [s.value(e) for e in range(8)] == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0]


def test_constant() -> None:
    assert Schedule(schedule="constant", initial_value=3.0).value(10**6) == 3.0


def test_custom_callable_receives_schedule_and_time() -> None:
    def halve_every_ten(schedule: Schedule, epoch: int) -> float:
        return schedule.initial_value * 0.5 ** (epoch // 10)

    s = Schedule(schedule=halve_every_ten, initial_value=4.0)
    assert s.value(25) == 1.0
    assert s.is_custom


def test_current_value_defaults_to_value_at_zero() -> None:
    assert make("linear", start_epoch=0).current_value == 100.0


def test_default_schedule_is_flat_like_nectargan() -> None:
    s = Schedule()
    assert s.value(0) == s.value(5_000_000) == 1.0


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_json_round_trip_every_curve(curve: str) -> None:
    s = make(curve, milestones=(12, 15), factor=0.5, unit="step")
    restored = Schedule.model_validate_json(s.model_dump_json())
    assert restored == s
    assert [restored.value(t) for t in range(25)] == [s.value(t) for t in range(25)]


def test_custom_callable_cannot_be_serialised() -> None:
    s = Schedule(schedule=lambda sch, e: 1.0)
    with pytest.raises(Exception, match="custom callable"):
        s.model_dump_json()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "linea"}, "expected one of"),
        ({"schedule": 3}, "curve name or a callable"),
        ({"initial_value": -1.0}, "finite weight >= 0"),
        ({"target_value": math.nan}, "finite weight >= 0"),
        ({"end_epoch": 10}, "end_epoch expected an int > start_epoch"),
        ({"schedule": "exponential", "target_value": 0.0}, "exponential"),
        ({"milestones": (5, 3)}, "increasing"),
        ({"start_epoch": -1}, "greater than or equal to 0"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
        ({"unit": "minute"}, "epoch"),
    ],
)
def test_invalid_schedules_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make("linear", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "cosin"}, "got 'cosin' (did you mean 'cosine'?)"),
        ({"end_epoch": 5}, "expected an int > start_epoch (10) for a 'linear' schedule, got 5"),
        (
            {"schedule": "exponential", "target_value": 0.0},
            "expected a float > 0 for an 'exponential' schedule, got 0.0",
        ),
        ({"schedule": "step", "milestones": [5, 2]}, "expected non-negative increasing ints"),
    ],
)
def test_schedule_and_its_spec_model_share_their_checks(
    kwargs: dict[str, object], message: str
) -> None:
    from nectarloss.specs.models import ScheduleSpec

    fields = {"schedule": "linear", "start_epoch": 10, "end_epoch": 20, **kwargs}
    with pytest.raises(ValidationError) as from_schedule:
        Schedule(**fields)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as from_spec:
        ScheduleSpec.model_validate(fields)
    assert message in str(from_schedule.value)
    assert message in str(from_spec.value)
