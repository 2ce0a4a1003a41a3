"""Schedulers against torch.optim.lr_scheduler, plus factories and validation."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neural_networks.errors import InvalidParameterError
from neural_networks.schedulers import (
    SCHEDULERS,
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
    Scheduler,
    StepDecay,
    initialize_scheduler,
    scheduler_from_config,
)

lr_scheduler = torch.optim.lr_scheduler
HORIZON = 101  # t = 0 .. 100
FAST = settings(max_examples=25, deadline=None)

base_lrs = st.floats(1e-4, 1.0)
factors = st.floats(0.05, 1.0)  # decay / gamma in (0, 1]


def torch_lrs(make_scheduler, lr, horizon=HORIZON):
    """get_last_lr() after t = 0, 1, ..., horizon-1 calls to scheduler.step()."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(horizon - 1):
        optimizer.step()  # no grad: a no-op that avoids torch's ordering warning
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return np.array(lrs)


def ours_lrs(scheduler, horizon=HORIZON):
    return np.array([scheduler(t) for t in range(horizon)])


def assert_close(ours, ref, rel=1e-12):
    # torch updates most schedules recursively (lr *= ...), which drifts from
    # the closed form by a few ulps; near an lr of exactly zero (cosine at
    # T_max) compare on the scale of the base lr instead.
    scale = np.maximum(np.abs(ref), 1e-3 * np.max(np.abs(ref)))
    np.testing.assert_array_less(np.abs(ours - ref), rel * scale + 1e-300)


# --------------------------------------------------------------------------- #
# Agreement with torch
# --------------------------------------------------------------------------- #
@FAST
@given(lr=base_lrs)
def test_constant(lr):
    ref = torch_lrs(lambda opt: lr_scheduler.LambdaLR(opt, lambda _: 1.0), lr)
    assert_close(ours_lrs(Constant(lr)), ref)


@FAST
@given(lr=base_lrs, decay=factors)
def test_exponential_stage_length_one_is_exponential_lr(lr, decay):
    ref = torch_lrs(lambda opt: lr_scheduler.ExponentialLR(opt, gamma=decay), lr)
    assert_close(ours_lrs(Exponential(lr, decay=decay, stage_length=1)), ref)
    staircase = Exponential(lr, decay=decay, stage_length=1, staircase=True)
    assert_close(ours_lrs(staircase), ref)


@FAST
@given(lr=base_lrs, decay=factors, stage_length=st.integers(1, 40))
def test_exponential_staircase_is_step_lr(lr, decay, stage_length):
    ref = torch_lrs(
        lambda opt: lr_scheduler.StepLR(opt, step_size=stage_length, gamma=decay), lr
    )
    ours = Exponential(lr, decay=decay, stage_length=stage_length, staircase=True)
    assert_close(ours_lrs(ours), ref)


@FAST
@given(lr=base_lrs, decay=st.floats(0.05, 0.99), stage_length=st.integers(2, 40))
def test_exponential_continuous_formula(lr, decay, stage_length):
    ours = Exponential(lr, decay=decay, stage_length=stage_length)
    stairs = Exponential(lr, decay=decay, stage_length=stage_length, staircase=True)
    for t in range(HORIZON):
        assert ours(t) == pytest.approx(lr * decay ** (t / stage_length), rel=1e-14)
        # Continuous decay meets the staircase at stage boundaries and is
        # strictly below it in between.
        if t % stage_length == 0:
            assert ours(t) == pytest.approx(stairs(t), rel=1e-14)
        else:
            assert ours(t) < stairs(t)


@FAST
@given(lr=base_lrs, gamma=factors, step_size=st.integers(1, 40))
def test_step_decay_is_step_lr(lr, gamma, step_size):
    ref = torch_lrs(
        lambda opt: lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma), lr
    )
    assert_close(ours_lrs(StepDecay(lr, step_size=step_size, gamma=gamma)), ref)


@FAST
@given(lr=base_lrs, T_max=st.integers(1, 120), eta_fraction=st.sampled_from([0.0, 0.01, 0.5]))
def test_cosine_is_cosine_annealing_lr(lr, T_max, eta_fraction):
    eta_min = eta_fraction * lr
    ref = torch_lrs(
        lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min), lr
    )
    assert_close(ours_lrs(Cosine(lr, T_max=T_max, eta_min=eta_min)), ref)


@pytest.mark.parametrize("T_max", [1, 4, 10, 30])
def test_cosine_beyond_t_max_follows_torch_closed_form(T_max):
    param = torch.nn.Parameter(torch.zeros(1))
    torch_sched = lr_scheduler.CosineAnnealingLR(
        torch.optim.SGD([param], lr=0.3), T_max=T_max, eta_min=0.01
    )
    ours = Cosine(0.3, T_max=T_max, eta_min=0.01)
    for t in range(4 * T_max + 1):
        torch_sched.last_epoch = t
        assert ours(t) == torch_sched._get_closed_form_lr()[0]
    # Past T_max the lr rises again, symmetric about T_max.
    assert ours(T_max + 1) == pytest.approx(ours(T_max - 1), rel=1e-12)


@FAST
@given(lr=base_lrs, warmup_steps=st.integers(1, 120), start_factor=st.floats(0.01, 1.0))
def test_linear_warmup_is_linear_lr(lr, warmup_steps, start_factor):
    ref = torch_lrs(
        lambda opt: lr_scheduler.LinearLR(
            opt, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps
        ),
        lr,
    )
    assert_close(ours_lrs(LinearWarmup(lr, warmup_steps, start_factor)), ref)


def test_linear_warmup_defaults_match_torch_defaults():
    ref = torch_lrs(lambda opt: lr_scheduler.LinearLR(opt), 0.05)
    assert_close(ours_lrs(LinearWarmup(0.05)), ref)
    assert LinearWarmup(0.05)(0) == pytest.approx(0.05 / 3)
    assert LinearWarmup(0.05)(1000) == 0.05


# --------------------------------------------------------------------------- #
# Scheduler protocol
# --------------------------------------------------------------------------- #
ALL_SCHEDULERS = [
    Constant(0.1),
    Exponential(0.1, decay=0.5, stage_length=3, staircase=True, per_batch=True),
    Exponential(0.2, decay=0.7, stage_length=5),
    StepDecay(0.1, step_size=4, gamma=0.5),
    Cosine(0.1, T_max=20, eta_min=0.001, per_batch=True),
    LinearWarmup(0.1, warmup_steps=8, start_factor=0.25),
]


@pytest.mark.parametrize("scheduler", ALL_SCHEDULERS, ids=repr)
def test_is_a_pure_function_of_t(scheduler):
    forward = [scheduler(t) for t in range(60)]
    backward = [scheduler(t) for t in reversed(range(60))][::-1]
    assert forward == backward
    assert all(type(lr) is float for lr in forward)
    assert scheduler(7) == scheduler.scheduled_lr(7)


@pytest.mark.parametrize("scheduler", ALL_SCHEDULERS, ids=repr)
def test_config_round_trip(scheduler):
    config = scheduler.get_config()
    assert config["type"] in SCHEDULERS
    assert config["per_batch"] == scheduler.per_batch
    rebuilt = scheduler_from_config(json.loads(json.dumps(config)))
    assert type(rebuilt) is type(scheduler)
    assert rebuilt.get_config() == config
    assert rebuilt == scheduler
    assert [rebuilt(t) for t in range(50)] == [scheduler(t) for t in range(50)]


def test_scheduler_is_abstract_and_requires_lr_at():
    with pytest.raises(TypeError):
        Scheduler(0.1)


@pytest.mark.parametrize("t", [-1, -0.5, float("nan"), float("inf"), "3", None, True])
def test_bad_time_rejected(t):
    with pytest.raises(ValueError, match="t must be"):
        Constant(0.1)(t)


def test_fractional_time_is_accepted():
    assert Cosine(1.0, T_max=2)(1.0) == pytest.approx(0.5)
    assert StepDecay(1.0, step_size=2, gamma=0.5)(3.5) == 0.5


# --------------------------------------------------------------------------- #
# initialize_scheduler / scheduler_from_config
# --------------------------------------------------------------------------- #
def test_initialize_with_course_arguments():
    # The course passed every argument, even for "constant".
    constant = initialize_scheduler(
        "constant", 0.01, decay=0.99, stage_length=1000, staircase=True
    )
    assert isinstance(constant, Constant)
    assert constant(12345) == 0.01

    stairs = initialize_scheduler(
        "exponential", 0.01, decay=0.5, stage_length=10, staircase=True
    )
    assert isinstance(stairs, Exponential) and stairs.staircase
    assert stairs(9) == 0.01 and stairs(10) == 0.005 and stairs(19) == 0.005

    smooth = initialize_scheduler(
        "exponential", 0.01, decay=0.5, stage_length=10, staircase=False
    )
    assert smooth(5) == pytest.approx(0.01 * 0.5**0.5)


def test_initialize_none_keeps_class_defaults():
    # The course passed staircase=None, which used to break the staircase.
    sched = initialize_scheduler("exponential", 0.1, decay=None, stage_length=None, staircase=None)
    default = Exponential(0.1)
    assert sched == default
    assert (sched.decay, sched.stage_length, sched.staircase) == (0.9, 1000, False)


def test_initialize_other_names_and_kwargs():
    assert initialize_scheduler("Cosine", 0.1, T_max=10) == Cosine(0.1, T_max=10)
    assert initialize_scheduler("linear-warmup", 0.1, warmup_steps=3) == LinearWarmup(0.1, 3)
    # For "step" the course names map onto StepLR's arguments.
    assert initialize_scheduler("step", 0.1, decay=0.5, stage_length=7) == StepDecay(
        0.1, step_size=7, gamma=0.5
    )
    assert initialize_scheduler("constant", 0.1, per_batch=True).per_batch


def test_unknown_name_lists_accepted_names():
    with pytest.raises(ValueError, match="unknown scheduler 'warm'") as info:
        initialize_scheduler("warm", 0.1)
    for name in SCHEDULERS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown scheduler None"):
        initialize_scheduler(None, 0.1)
    with pytest.raises(ValueError, match="unknown scheduler"):
        scheduler_from_config({"name": "nope", "lr": 0.1})
    with pytest.raises(ValueError, match="'type' key"):
        scheduler_from_config({"lr": 0.1})


def test_unexpected_keyword_is_a_value_error():
    with pytest.raises(ValueError, match=r"unexpected argument\(s\) \['T_max'\]"):
        initialize_scheduler("constant", 0.1, T_max=3)
    with pytest.raises(ValueError, match="given twice"):
        initialize_scheduler("step", 0.1, decay=0.5, gamma=0.4)


@pytest.mark.parametrize(
    ("build", "argument", "expected"),
    [
        (lambda: Constant(0.0), "Constant: lr", "> 0"),
        (lambda: Constant(-1.0), "Constant: lr", "> 0"),
        (lambda: Constant(float("nan")), "Constant: lr", "finite"),
        (lambda: Constant(float("inf")), "Constant: lr", "finite"),
        (lambda: Constant("0.1"), "Constant: lr", "real number"),
        (lambda: Constant(True), "Constant: lr", "real number"),
        (lambda: Constant(0.1, per_batch=1), "Constant: per_batch", "True or False"),
        (lambda: Exponential(0.1, decay=0.0), "Exponential: decay", r"in \(0, 1\]"),
        (lambda: Exponential(0.1, decay=1.5), "Exponential: decay", r"in \(0, 1\]"),
        (lambda: Exponential(0.1, stage_length=0), "Exponential: stage_length", ">= 1"),
        (lambda: Exponential(0.1, stage_length=2.5), "Exponential: stage_length", "integer"),
        (lambda: Exponential(0.1, staircase=None), "Exponential: staircase", "True or False"),
        (lambda: StepDecay(0.1, step_size=0), "StepDecay: step_size", ">= 1"),
        (lambda: StepDecay(0.1, gamma=2.0), "StepDecay: gamma", r"in \(0, 1\]"),
        (lambda: Cosine(0.1, T_max=0), "Cosine: T_max", ">= 1"),
        (lambda: Cosine(0.1, eta_min=-0.1), "Cosine: eta_min", r">= 0"),
        (lambda: Cosine(0.1, eta_min=0.2), "Cosine: eta_min", r"in \[0, 0.1\]"),
        (lambda: Cosine(eta_min=-0.1), "Cosine: eta_min", r">= 0"),
        (lambda: LinearWarmup(0.1, warmup_steps=0), "LinearWarmup: warmup_steps", ">= 1"),
        (lambda: LinearWarmup(0.1, start_factor=0.0), "LinearWarmup: start_factor", r"in \(0, 1\]"),
        (lambda: initialize_scheduler("exponential", 0.1, decay=2.0), "Exponential: decay", r"in \(0, 1\]"),
        (lambda: initialize_scheduler("exponential", -0.1), "Exponential: lr", "> 0"),
    ],
)
def test_invalid_arguments_name_argument_expectation_and_value(build, argument, expected):
    with pytest.raises(InvalidParameterError, match=rf"^{argument} must be .*{expected}.*got"):
        build()


# --------------------------------------------------------------------------- #
# The base rate, config key and state protocol
# --------------------------------------------------------------------------- #
@FAST
@given(lr=base_lrs, T_max=st.integers(1, 50))
def test_a_scheduler_without_lr_starts_from_the_base_it_is_given(lr, T_max):
    ref = torch_lrs(lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=T_max), lr)
    unbound = Cosine(T_max=T_max)
    assert_close(np.array([unbound(t, base_lr=lr) for t in range(HORIZON)]), ref)


def test_a_scheduler_without_lr_cannot_be_evaluated_alone():
    with pytest.raises(InvalidParameterError, match="Cosine has no base learning rate: give it lr="):
        Cosine(T_max=4)(0)
    assert Cosine(T_max=4).lr is None


@pytest.mark.parametrize("scheduler", ALL_SCHEDULERS + [Cosine(T_max=3)], ids=repr)
def test_state_dict_round_trip(scheduler):
    state = scheduler.state_dict()
    assert state == {"config": scheduler.get_config()}
    target = type(scheduler)()
    target.load_state_dict(json.loads(json.dumps(state)))
    assert target == scheduler
    assert [target(t, base_lr=0.5) for t in range(30)] == [scheduler(t, base_lr=0.5) for t in range(30)]


def test_load_state_dict_refuses_another_scheduler_or_a_bad_state():
    with pytest.raises(InvalidParameterError, match="'cosine', cannot load it into 'constant'"):
        Constant().load_state_dict(Cosine(T_max=3).state_dict())
    with pytest.raises(InvalidParameterError, match="expected"):
        Constant().load_state_dict({"T_max": 3})


def test_config_key_is_type_and_the_legacy_name_still_loads():
    config = StepDecay(0.1, step_size=3).get_config()
    assert config["type"] == "step" and "name" not in config
    legacy = {"name": "step", "lr": 0.1, "step_size": 3, "gamma": 0.1, "per_batch": False}
    assert scheduler_from_config(legacy) == StepDecay(0.1, step_size=3)
    with pytest.raises(InvalidParameterError, match="both 'type' and 'name'"):
        scheduler_from_config({**legacy, "type": "step"})
