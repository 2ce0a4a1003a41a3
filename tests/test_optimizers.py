"""Optimizers side by side with torch.optim, plus the course interface,
state (de)serialisation, factories and validation."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neural_networks.errors import InvalidParameterError, ShapeError
from harness import assert_json_values_and_arrays
from neural_networks.optimizers import (
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    Optimizer,
    RMSProp,
    RMSprop,
    initialize_optimizer,
    optimizer_from_config,
)
from neural_networks.schedulers import (
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
    StepDecay,
)

STEPS = 50
FAST = settings(max_examples=25, deadline=None)
TORCH_TWIN = {
    SGD: torch.optim.SGD,
    Adam: torch.optim.Adam,
    AdamW: torch.optim.AdamW,
    RMSProp: torch.optim.RMSprop,
}


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def make_problem(seed, dtype=np.float64, n_params=3, steps=STEPS):
    """Random parameters of random shapes (0-d to 3-d) and a fixed sequence of
    gradients whose scale varies over two decades, so that clipping triggers
    on some steps and not on others."""
    rng = np.random.default_rng(seed)
    params = {}
    for i in range(n_params):
        shape = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(0, 4)))
        params[f"{i}.W"] = np.asarray(rng.standard_normal(shape), dtype=dtype)
    grads = [
        {
            name: np.asarray(rng.standard_normal(p.shape) * 10 ** rng.uniform(-1, 1), dtype=dtype)
            for name, p in params.items()
        }
        for _ in range(steps)
    ]
    return params, grads


def run_against_torch(
    ours,
    torch_kwargs,
    params,
    grads,
    *,
    torch_scheduler=None,
    epoch_length=None,
    rtol=1e-10,
    atol=1e-12,
):
    """Step ``ours`` and its torch twin on the same gradients and compare the
    parameters after every step: |ours - torch| <= rtol * max|torch| + atol.

    ``torch_scheduler(optimizer)`` builds the torch scheduler. It is stepped
    after every optimizer step if ``epoch_length`` is None (per batch), else
    every ``epoch_length`` steps, when ``ours`` is told the new epoch.
    """
    tparams = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in params.items()}
    topt = TORCH_TWIN[type(ours)](list(tparams.values()), foreach=False, **torch_kwargs)
    tsched = None if torch_scheduler is None else torch_scheduler(topt)
    for i, grad in enumerate(grads):
        for name, tp in tparams.items():
            tp.grad = torch.from_numpy(grad[name].copy())
            if ours.clip_norm is not None:
                # Per-tensor clipping, which is what clip_norm means here.
                torch.nn.utils.clip_grad_norm_(tp, ours.clip_norm)
        assert ours.current_lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        ours.step(params, grad)
        topt.step()
        if tsched is not None and (epoch_length is None or (i + 1) % epoch_length == 0):
            tsched.step()
        if epoch_length is not None:
            ours.set_epoch((i + 1) // epoch_length)
        for name, tp in tparams.items():
            ref = tp.detach().numpy()
            assert params[name].dtype == ref.dtype
            tol = rtol * np.max(np.abs(ref)) + atol
            err = np.max(np.abs(params[name] - ref))
            assert err <= tol, f"step {i + 1}, {name}: |ours - torch| = {err:.3g} > {tol:.3g}"
    assert ours.iterations == len(grads)


clip_norms = st.one_of(st.none(), st.floats(0.5, 5.0))
decays = st.one_of(st.just(0.0), st.floats(1e-4, 0.1))


@st.composite
def sgd_settings(draw):
    nesterov = draw(st.booleans())
    if nesterov:
        momentum, dampening = draw(st.floats(0.1, 0.99)), 0.0
    else:
        momentum = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.99)))
        dampening = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.9)))
    return {
        "lr": draw(st.floats(1e-3, 0.3)),
        "momentum": momentum,
        "dampening": dampening,
        "nesterov": nesterov,
        "weight_decay": draw(decays),
    }


@st.composite
def adam_settings(draw):
    # beta1 <= 0.5 exercises torch.lerp's second formula (weight >= 0.5).
    return {
        "lr": draw(st.floats(1e-4, 0.1)),
        "betas": (draw(st.floats(0.0, 0.99)), draw(st.floats(0.5, 0.9999))),
        "eps": draw(st.sampled_from([1e-8, 1e-6, 1e-3])),
        "weight_decay": draw(decays),
        "amsgrad": draw(st.booleans()),
    }


@st.composite
def rmsprop_settings(draw):
    return {
        "lr": draw(st.floats(1e-4, 0.05)),
        "alpha": draw(st.floats(0.1, 0.999)),
        "eps": draw(st.sampled_from([1e-8, 1e-6, 1e-3])),
        "weight_decay": draw(decays),
        "momentum": draw(st.one_of(st.just(0.0), st.floats(0.0, 0.95))),
        "centered": draw(st.booleans()),
    }


# --------------------------------------------------------------------------- #
# Agreement with torch.optim (float64)
# --------------------------------------------------------------------------- #
@FAST
@given(kwargs=sgd_settings(), clip_norm=clip_norms, seed=st.integers(0, 2**16))
def test_sgd_matches_torch(kwargs, clip_norm, seed):
    params, grads = make_problem(seed)
    run_against_torch(SGD(**kwargs, clip_norm=clip_norm), kwargs, params, grads)


@FAST
@given(kwargs=adam_settings(), clip_norm=clip_norms, seed=st.integers(0, 2**16))
def test_adam_matches_torch(kwargs, clip_norm, seed):
    params, grads = make_problem(seed)
    run_against_torch(Adam(**kwargs, clip_norm=clip_norm), kwargs, params, grads)


@FAST
@given(kwargs=adam_settings(), clip_norm=clip_norms, seed=st.integers(0, 2**16))
def test_adamw_matches_torch(kwargs, clip_norm, seed):
    params, grads = make_problem(seed)
    run_against_torch(AdamW(**kwargs, clip_norm=clip_norm), kwargs, params, grads)


@FAST
@given(kwargs=rmsprop_settings(), clip_norm=clip_norms, seed=st.integers(0, 2**16))
def test_rmsprop_matches_torch(kwargs, clip_norm, seed):
    params, grads = make_problem(seed)
    run_against_torch(RMSProp(**kwargs, clip_norm=clip_norm), kwargs, params, grads)


@pytest.mark.parametrize("cls", list(TORCH_TWIN), ids=lambda c: c.__name__)
def test_defaults_match_torch(cls):
    params, grads = make_problem(0)
    ours = cls()
    # torch's SGD has lr=1e-3 by default; every other default is shared.
    run_against_torch(ours, {"lr": ours.lr}, params, grads)


def test_clipping_actually_happens_and_changes_the_trajectory():
    params, grads = make_problem(1)
    clipped, plain = copy_params(params), copy_params(params)
    a, b = SGD(lr=0.1, clip_norm=0.1), SGD(lr=0.1)
    a.step(clipped, grads[0])
    b.step(plain, grads[0])
    for name, p in params.items():
        step_norm = np.linalg.norm(p - clipped[name])
        assert step_norm <= 0.1 * 0.1 * (1 + 1e-12)
    assert any(not np.array_equal(clipped[k], plain[k]) for k in params)


SCHEDULED = [
    # (optimizer, torch kwargs, torch scheduler, epoch_length or None = per batch)
    (
        SGD(lr=0.1, momentum=0.9, lr_scheduler=Cosine(0.1, T_max=20, per_batch=True)),
        {"lr": 0.1, "momentum": 0.9},
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20),
        None,
    ),
    (
        Adam(lr=0.01, lr_scheduler=StepDecay(0.01, step_size=2, gamma=0.5)),
        {"lr": 0.01},
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
        7,
    ),
    (
        AdamW(lr=0.01, weight_decay=0.1, lr_scheduler=Exponential(0.01, 0.8, 3, True)),
        {"lr": 0.01, "weight_decay": 0.1},
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.8),
        5,
    ),
    (
        RMSProp(lr=0.01, momentum=0.5, lr_scheduler=LinearWarmup(0.01, 10, 0.1, per_batch=True)),
        {"lr": 0.01, "momentum": 0.5},
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10),
        None,
    ),
    # Schedules without a rate of their own start from the optimizer's lr, as in torch.
    (
        Adam(lr=0.1, lr_scheduler=Cosine(T_max=4)),
        {"lr": 0.1},
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4),
        5,
    ),
    (
        SGD(lr=0.3, momentum=0.5, lr_scheduler="step"),
        {"lr": 0.3, "momentum": 0.5},
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.1),
        1,
    ),
    (
        AdamW(lr=0.02, lr_scheduler={"type": "linear_warmup", "warmup_steps": 6, "per_batch": True}),
        {"lr": 0.02},
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 3, total_iters=6),
        None,
    ),
]


@pytest.mark.parametrize(("ours", "tkw", "tsched", "epoch_length"), SCHEDULED, ids=repr)
def test_scheduled_optimizers_match_torch(ours, tkw, tsched, epoch_length):
    params, grads = make_problem(2, steps=60)
    ours = optimizer_from_config(ours.get_config())  # fresh copy: params are shared
    run_against_torch(
        ours, tkw, params, grads, torch_scheduler=tsched, epoch_length=epoch_length
    )


FLOAT32_CASES = [
    SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3, clip_norm=2.0),
    SGD(lr=0.05, momentum=0.5, dampening=0.3),
    Adam(lr=1e-2, weight_decay=1e-2, amsgrad=True, clip_norm=1.0),
    AdamW(lr=1e-2, betas=(0.8, 0.99)),
    RMSProp(lr=1e-3, momentum=0.9, centered=True, weight_decay=1e-3),
    RMSProp(lr=1e-3, alpha=0.9, clip_norm=1.0),
]


@pytest.mark.parametrize("ours", FLOAT32_CASES, ids=repr)
def test_float32_keeps_dtype_and_matches_torch(ours):
    params, grads = make_problem(3, dtype=np.float32)
    config = ours.get_config()
    ours = optimizer_from_config(config)
    tkw = {
        k: v
        for k, v in config.items()
        if k not in ("type", "clip_norm", "lr_scheduler")
    }
    run_against_torch(ours, tkw, params, grads, rtol=1e-5, atol=1e-6)
    for name, p in params.items():
        assert p.dtype == np.float32
        for key, buf in ours.state[name].items():
            if key != "step":
                assert buf.dtype == np.float32, key


# --------------------------------------------------------------------------- #
# The course interface, gradient safety, state dicts
# --------------------------------------------------------------------------- #
PROTOCOL_CASES = [
    SGD(lr=0.05, momentum=0.9, weight_decay=0.01, clip_norm=1.0),
    SGD(lr=0.05, momentum=0.9, nesterov=True, lr_scheduler=Cosine(0.05, 30, per_batch=True)),
    Adam(lr=0.01, amsgrad=True, clip_norm=2.0, lr_scheduler=StepDecay(0.01, 2, 0.5)),
    AdamW(lr=0.01, lr_scheduler=Exponential(0.01, 0.9, 4, per_batch=True)),
    RMSProp(lr=0.005, momentum=0.5, centered=True, weight_decay=0.01, clip_norm=1.0),
]


def fresh(optimizer):
    return optimizer_from_config(optimizer.get_config())


def copy_params(params):
    return {k: v.copy() for k, v in params.items()}


@pytest.mark.parametrize("template", PROTOCOL_CASES, ids=repr)
def test_update_form_gives_the_step_trajectory(template):
    params, grads = make_problem(4, steps=60)
    by_step, by_update = fresh(template), fresh(template)
    p_step, p_update = copy_params(params), copy_params(params)
    batches_per_epoch = 6
    for i, grad in enumerate(grads):
        epoch = i // batches_per_epoch
        by_step.set_epoch(epoch)
        by_step.step(p_step, grad)
        for name in p_update:
            before = p_update[name].copy()
            delta = by_update.update(name, p_update[name], grad[name], epoch)
            np.testing.assert_array_equal(p_update[name], before)  # param untouched
            assert delta.dtype == before.dtype and delta.shape == before.shape
            p_update[name] = p_update[name] - delta
        assert by_update.iterations == by_step.iterations
        assert by_update.epoch == by_step.epoch
        for name in params:
            scale = np.max(np.abs(p_step[name]))
            np.testing.assert_allclose(p_update[name], p_step[name], rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("template", PROTOCOL_CASES, ids=repr)
def test_step_never_modifies_or_keeps_gradients(template):
    params, grads = make_problem(5, steps=20)
    reference, ours = fresh(template), fresh(template)
    p_ref, p_ours = copy_params(params), copy_params(params)
    rng = np.random.default_rng(0)
    for grad in grads:
        mine = {k: g.copy() for k, g in grad.items()}
        ours.step(p_ours, mine)
        for name in grad:
            np.testing.assert_array_equal(mine[name], grad[name])
        # Scribble over the gradients after the step: if the optimizer had
        # kept a reference to one (e.g. as a momentum buffer), the two
        # trajectories would now diverge.
        for g in mine.values():
            g[...] = rng.standard_normal(g.shape)
        reference.step(p_ref, {k: g.copy() for k, g in grad.items()})
        for name in params:
            np.testing.assert_array_equal(p_ours[name], p_ref[name])


@pytest.mark.parametrize("template", PROTOCOL_CASES, ids=repr)
def test_state_dict_round_trip_is_bit_exact(template):
    params, grads = make_problem(6, steps=50)
    original = fresh(template)
    original.set_epoch(2)
    for grad in grads[:20]:
        original.step(params, grad)

    snapshot = original.state_dict()
    json.dumps(snapshot["config"])  # must be JSON-able
    assert snapshot["iterations"] == 20 and snapshot["epoch"] == 2
    assert set(snapshot["state"]) == set(params)
    for name, buffers in snapshot["state"].items():
        assert all(isinstance(v, np.ndarray) for v in buffers.values())
        assert int(buffers["step"]) == 20 and buffers["step"].dtype.kind == "i"
    saved = {n: {k: v.copy() for k, v in b.items()} for n, b in snapshot["state"].items()}

    # Load into an optimizer of the same class with other settings: the
    # saved settings win, as in torch.
    restored = type(template)(lr=0.5)
    restored.load_state_dict(snapshot)
    assert restored.get_config() == original.get_config()
    for buffers in snapshot["state"].values():  # the load must have copied
        for value in buffers.values():
            value[...] = 0

    resumed = copy_params(params)
    for grad in grads[20:]:
        original.step(params, grad)
        restored.step(resumed, grad)
        for name in params:
            np.testing.assert_array_equal(resumed[name], params[name])
    assert restored.iterations == original.iterations == 50

    # ...and the snapshot did not alias the live state either.
    fresh_snapshot = original.state_dict()
    for name, buffers in saved.items():
        assert int(fresh_snapshot["state"][name]["step"]) == 50
        assert int(buffers["step"]) == 20


@pytest.mark.parametrize("template", PROTOCOL_CASES, ids=repr)
def test_zero_dim_parameters_keep_array_state(template):
    # Arithmetic on 0-d arrays returns NumPy scalars, which cannot be updated
    # in place; every state entry must still be a real array.
    opt = fresh(template)
    w = {"w": np.array(0.5)}
    for g in (3.0, -2.0, 1.0):
        opt.step(w, {"w": np.array(g)})
    assert isinstance(w["w"], np.ndarray) and w["w"].shape == ()
    for value in opt.state["w"].values():
        assert isinstance(value, np.ndarray) and value.shape == ()
    delta = fresh(template).update("w", np.float64(0.5), np.array(3.0), epoch=0)
    assert isinstance(delta, np.ndarray) and delta.shape == ()


def test_load_state_dict_rejects_another_optimizer():
    sgd = SGD(momentum=0.9)
    sgd.step({"w": np.ones(3)}, {"w": np.ones(3)})
    with pytest.raises(ValueError, match="'sgd', cannot load it into 'adam'"):
        Adam().load_state_dict(sgd.state_dict())


@pytest.mark.parametrize("template", PROTOCOL_CASES + [SGD(), RMSprop(), AdamW()], ids=repr)
def test_config_round_trip(template):
    config = template.get_config()
    assert config["type"] in OPTIMIZERS
    rebuilt = optimizer_from_config(json.loads(json.dumps(config)))
    assert type(rebuilt) is type(template)
    assert rebuilt.get_config() == config


# --------------------------------------------------------------------------- #
# Learning-rate bookkeeping
# --------------------------------------------------------------------------- #
def test_current_lr_uses_iterations_or_epoch():
    w, g = {"w": np.ones(2)}, {"w": np.ones(2)}
    plain = SGD(lr=0.3)
    per_batch = SGD(lr=0.1, lr_scheduler=StepDecay(0.1, step_size=2, gamma=0.5, per_batch=True))
    per_epoch = SGD(lr=0.1, lr_scheduler=StepDecay(0.1, step_size=2, gamma=0.5))
    for opt in (plain, per_batch, per_epoch):
        for _ in range(5):
            opt.step(w, g)
    assert plain.current_lr == 0.3
    assert per_batch.current_lr == 0.1 * 0.5**2  # t = iterations = 5
    assert per_epoch.current_lr == 0.1  # epoch is still 0
    per_epoch.set_epoch(4)
    assert per_epoch.current_lr == 0.1 * 0.5**2
    per_batch.set_epoch(0)
    assert per_batch.current_lr == 0.1 * 0.5**2  # unaffected by the epoch


def test_lr_used_by_step_is_current_lr():
    opt = SGD(lr=1.0, lr_scheduler=Exponential(1.0, decay=0.5, stage_length=1, per_batch=True))
    w = {"w": np.zeros(1)}
    for t in range(4):
        before = w["w"].copy()
        opt.step(w, {"w": np.ones(1)})
        assert (before - w["w"])[0] == 0.5**t


def test_scheduler_from_name_or_config():
    # A schedule built by the optimizer has no rate of its own: it starts from the optimizer's.
    opt = SGD(lr=0.2, lr_scheduler="exponential")
    assert opt.lr_scheduler == Exponential() and opt.current_lr == 0.2
    opt = Adam(lr=0.01, lr_scheduler={"type": "cosine", "lr": 0.01, "T_max": 5})
    assert opt.lr_scheduler == Cosine(0.01, T_max=5)
    opt = Adam(lr=0.01, lr_scheduler={"type": "cosine", "T_max": 5})
    assert opt.lr_scheduler == Cosine(T_max=5) and opt.current_lr == 0.01


@pytest.mark.parametrize("epoch", [-1, 1.5, None, "2"])
def test_set_epoch_validates(epoch):
    with pytest.raises(ValueError, match="epoch must be an integer"):
        SGD().set_epoch(epoch)


# --------------------------------------------------------------------------- #
# step() argument checking
# --------------------------------------------------------------------------- #
def test_mismatched_keys_raise_and_modify_nothing():
    params = {"0.W": np.ones((2, 2)), "0.b": np.ones(2)}
    opt = SGD(lr=0.1)
    with pytest.raises(ValueError, match=r"missing gradients for \['0.b'\]"):
        opt.step(params, {"0.W": np.ones((2, 2))})
    with pytest.raises(ValueError, match=r"gradients without a parameter \['1.W'\]"):
        opt.step(params, {"0.W": np.ones((2, 2)), "0.b": np.ones(2), "1.W": np.ones(1)})
    with pytest.raises(ValueError, match=r"gradient of '0.b' has shape \(3,\)"):
        opt.step(params, {"0.W": np.ones((2, 2)), "0.b": np.ones(3)})
    with pytest.raises(ValueError, match="floating-point"):
        opt.step({"i": np.ones(2, dtype=int)}, {"i": np.ones(2)})
    frozen = np.ones(2)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"\['1.W'\] are read-only"):
        opt.step(
            {**params, "1.W": frozen},
            {"0.W": np.ones((2, 2)), "0.b": np.ones(2), "1.W": np.ones(2)},
        )
    # Validation happens before any update.
    assert all(np.array_equal(p, np.ones_like(p)) for p in params.values())
    assert opt.iterations == 0 and opt.state == {}


# --------------------------------------------------------------------------- #
# Validation of hyper-parameters
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: SGD(lr=-0.1), "SGD: lr"),
        (lambda: SGD(lr=float("nan")), "SGD: lr"),
        (lambda: SGD(lr=True), "SGD: lr"),
        (lambda: SGD(momentum=-0.5), "SGD: momentum"),
        (lambda: SGD(dampening=1.5), "SGD: dampening"),
        (lambda: SGD(weight_decay=-1e-3), "SGD: weight_decay"),
        (lambda: SGD(nesterov=True), "SGD: nesterov"),
        (lambda: SGD(momentum=0.9, dampening=0.1, nesterov=True), "SGD: nesterov"),
        (lambda: SGD(nesterov="yes"), "SGD: nesterov"),
        (lambda: SGD(clip_norm=0.0), "SGD: clip_norm"),
        (lambda: SGD(clip_norm=float("inf")), "SGD: clip_norm"),
        (lambda: SGD(lr_scheduler=3), "SGD: lr_scheduler"),
        (lambda: SGD(lr_scheduler="warmup"), "unknown scheduler"),
        (lambda: Adam(betas=(1.0, 0.999)), r"Adam: betas\[0\]"),
        (lambda: Adam(betas=(0.9, -0.1)), r"Adam: betas\[1\]"),
        (lambda: AdamW(betas=(0.9, "0.9")), r"AdamW: betas\[1\]"),
        (lambda: Adam(betas=0.9), "Adam: betas"),
        (lambda: Adam(betas=(0.9, 0.99, 0.999)), "Adam: betas"),
        (lambda: Adam(eps=-1e-8), "Adam: eps"),
        (lambda: Adam(amsgrad=None), "Adam: amsgrad"),
        (lambda: AdamW(weight_decay=-0.01), "AdamW: weight_decay"),
        (lambda: RMSProp(alpha=1.5), "RMSProp: alpha"),
        (lambda: RMSProp(eps=-1.0), "RMSProp: eps"),
        (lambda: RMSProp(momentum=-0.1), "RMSProp: momentum"),
        (lambda: RMSProp(centered=1), "RMSProp: centered"),
    ],
)
def test_invalid_hyperparameters_name_the_argument(build, argument):
    with pytest.raises(InvalidParameterError, match=rf"^{argument}"):
        build()


def test_rmsprop_alias_and_abstract_base():
    assert RMSprop is RMSProp
    with pytest.raises(TypeError):
        Optimizer(0.1)


# --------------------------------------------------------------------------- #
# initialize_optimizer (the course interface)
# --------------------------------------------------------------------------- #
def test_initialize_with_the_course_arguments():
    opt = initialize_optimizer(
        name="SGD",
        lr=0.01,
        lr_scheduler="constant",
        momentum=0.9,
        clip_norm=1.0,
        lr_decay=0.99,
        stage_length=1000,
        staircase=True,
    )
    assert isinstance(opt, SGD)
    assert (opt.lr, opt.momentum, opt.clip_norm) == (0.01, 0.9, 1.0)
    assert opt.lr_scheduler == Constant() and opt.current_lr == 0.01

    opt = initialize_optimizer(
        name="SGD",
        lr=0.01,
        lr_scheduler="exponential",
        momentum=0.9,
        clip_norm=1.0,
        lr_decay=0.99,
        stage_length=1000,
        staircase=True,
    )
    assert opt.lr_scheduler == Exponential(decay=0.99, stage_length=1000, staircase=True)
    opt.set_epoch(1999)
    assert opt.current_lr == pytest.approx(0.01 * 0.99)


def test_initialize_none_arguments_keep_defaults():
    # The course passed momentum=None (and crashed).
    opt = initialize_optimizer(
        "sgd", 0.1, lr_scheduler=None, momentum=None, clip_norm=None,
        lr_decay=None, staircase=None, stage_length=None,
    )
    assert opt.get_config() == SGD(lr=0.1).get_config()
    opt = initialize_optimizer("Adam", 0.1, lr_scheduler="exponential")
    assert opt.lr_scheduler == Exponential() and opt.current_lr == 0.1


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("SGD", SGD),
        ("sgd", SGD),
        ("Adam", Adam),
        ("ADAMW", AdamW),
        ("RMSprop", RMSProp),
        ("rmsprop", RMSProp),
    ],
)
def test_initialize_names_any_case(name, cls):
    assert type(initialize_optimizer(name, 0.01)) is cls


def test_initialize_passes_extra_kwargs_and_schedulers():
    sched = Cosine(0.05, T_max=10, per_batch=True)
    opt = initialize_optimizer("sgd", 0.05, lr_scheduler=sched, momentum=0.8, nesterov=True)
    assert opt.nesterov and opt.momentum == 0.8 and opt.lr_scheduler is sched
    opt = initialize_optimizer("adam", 0.01, betas=(0.5, 0.9), amsgrad=True)
    assert opt.betas == (0.5, 0.9) and opt.amsgrad
    opt = initialize_optimizer("rmsprop", 0.01, momentum=0.5, centered=True)
    assert opt.momentum == 0.5 and opt.centered


def test_initialize_errors_are_helpful():
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'") as info:
        initialize_optimizer("adagrad", 0.01)
    for name in OPTIMIZERS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="Adam has no momentum argument"):
        initialize_optimizer("adam", 0.01, momentum=0.9)
    with pytest.raises(ValueError, match=r"unexpected argument\(s\) \['betas'\]"):
        initialize_optimizer("sgd", 0.01, betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="^SGD: lr must be"):
        initialize_optimizer("sgd", -0.01)
    with pytest.raises(ValueError, match="^Exponential: decay must be"):
        initialize_optimizer("sgd", 0.01, lr_scheduler="exponential", lr_decay=1.5)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizer_from_config({"name": "lbfgs"})


# --------------------------------------------------------------------------- #
# One base learning rate: the optimizer's
# --------------------------------------------------------------------------- #
def test_a_scheduler_without_lr_starts_from_the_optimizers_lr_during_fit():
    import neural_networks as nn
    from neural_networks.layers import FullyConnected

    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    y = np.arange(12) % 2
    model = nn.NeuralNetwork([FullyConnected(2, "softmax")], seed=0,
                             optimizer=Adam(lr=0.1, lr_scheduler=Cosine(T_max=4)))
    history = model.fit(X, y, epochs=6, batch_size=4, verbose=0)
    param = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.Adam([param], lr=0.1)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=4)
    expected = []
    for _ in range(6):
        expected.append(topt.param_groups[0]["lr"])
        topt.step()
        tsched.step()
    assert history["lr"][0] == 0.1
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Adam(lr=0.1, lr_scheduler=Cosine(lr=0.01, T_max=4)),
        lambda: Adam(lr=0.1, lr_scheduler={"type": "cosine", "lr": 0.01, "T_max": 4}),
        lambda: Adam(lr_scheduler={"type": "cosine", "lr": 0.01, "T_max": 5}),  # Adam's lr is 1e-3
        lambda: initialize_optimizer("sgd", 0.1, lr_scheduler=StepDecay(0.2)),
    ],
)
def test_a_scheduler_with_another_lr_than_the_optimizer_is_refused(build):
    with pytest.raises(InvalidParameterError, match=r"^\w+: lr_scheduler: \w+ was given its own lr=0.0?[12].*optimizer's lr is"):
        build()


def test_a_scheduler_with_the_same_lr_is_accepted_and_cosine_eta_min_is_checked_against_the_base():
    assert Adam(lr=0.1, lr_scheduler=Cosine(lr=0.1, T_max=4)).current_lr == 0.1
    with pytest.raises(InvalidParameterError, match=r"^SGD: lr_scheduler: Cosine's eta_min=0.5 is above the optimizer's lr 0.1"):
        SGD(lr=0.1, lr_scheduler=Cosine(T_max=4, eta_min=0.5))


def test_the_schedule_follows_the_optimizers_lr_when_it_changes():
    opt = SGD(lr=0.1, lr_scheduler=StepDecay(step_size=1, gamma=0.5))
    opt.lr = 0.4
    opt.set_epoch(2)
    assert opt.current_lr == 0.1  # 0.4 * 0.5 ** 2


def test_config_says_type_and_keeps_no_second_base_rate():
    config = SGD(lr=0.2, lr_scheduler=Cosine(lr=0.2, T_max=3)).get_config()
    assert config["type"] == "sgd" and "name" not in config
    assert config["lr_scheduler"] == {"type": "cosine", "T_max": 3, "eta_min": 0.0, "per_batch": False}
    rebuilt = optimizer_from_config(json.loads(json.dumps(config)))
    rebuilt.lr = 0.5  # no stale copy of the old rate anywhere
    assert optimizer_from_config(rebuilt.get_config()).current_lr == 0.5


def test_legacy_name_configs_load_and_keep_the_rate_they_trained_with():
    # Format 1 wrote "name", and a scheduler's own lr silently overrode the optimizer's:
    # that rate is what trained, so a resumed run must go on with it.
    legacy = {"name": "adam", "lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
              "amsgrad": False, "clip_norm": None,
              "lr_scheduler": {"name": "cosine", "lr": 0.01, "T_max": 4, "eta_min": 0.0, "per_batch": False}}
    opt = optimizer_from_config(legacy)
    assert type(opt) is Adam and opt.lr == 0.01
    for epoch in range(6):
        opt.set_epoch(epoch)
        assert opt.current_lr == pytest.approx(0.01 * (1 + np.cos(np.pi * epoch / 4)) / 2, rel=1e-14)
    assert optimizer_from_config({**legacy, "lr_scheduler": None}).lr == 0.1
    with pytest.raises(InvalidParameterError, match="both 'type' and 'name'"):
        optimizer_from_config({**legacy, "type": "adam"})
    with pytest.raises(InvalidParameterError, match="'type' key"):
        optimizer_from_config({"lr": 0.1})


def test_the_v1_checkpoint_fixture_optimizer_state_loads():
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "v1_checkpoint.npz"
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays.pop("__header__").tobytes().decode("utf-8"))
    saved = header["checkpoint"]["optimizer"]
    assert saved["config"]["name"] == "adam"  # the legacy key
    state = {}
    for key, value in arrays.items():
        if key.startswith("optimizer:"):
            _, param, buffer = key.split(":", 2)
            state.setdefault(param, {})[buffer] = value
    opt = Adam(lr=0.5)
    opt.load_state_dict({**saved, "state": state})
    assert (opt.lr, opt.iterations, opt.epoch) == (0.01, saved["iterations"], saved["epoch"])
    assert opt.get_config()["type"] == "adam"
    assert optimizer_from_config(header["architecture"]["optimizer"]).get_config() == opt.get_config()
    assert all(int(buffers["step"]) == saved["iterations"] for buffers in opt.state.values())


@pytest.mark.parametrize("template", PROTOCOL_CASES + [Adam(lr=0.1, lr_scheduler=Cosine(T_max=4))], ids=repr)
def test_state_dict_holds_only_json_values_and_arrays(template):
    opt = fresh(template)
    params, grads = make_problem(7, steps=3)
    for grad in grads:
        opt.step(params, grad)
    assert_json_values_and_arrays(opt.state_dict())
    snapshot = opt.state_dict()
    json.dumps({k: v for k, v in snapshot.items() if k != "state"})


def test_lr_override_wins_for_one_epoch_and_stays_out_of_the_state():
    opt = SGD(lr=0.1, lr_scheduler=StepDecay(step_size=1, gamma=0.5))
    opt.set_epoch(1)
    opt.lr_override = 0.7
    w = {"w": np.zeros(1)}
    opt.step(w, {"w": np.ones(1)})
    assert w["w"][0] == -0.7 and opt.current_lr == 0.7
    assert "lr_override" not in json.dumps(opt.state_dict()["config"])
    opt.set_epoch(2)  # a new epoch ends the override
    assert opt.lr_override is None and opt.current_lr == 0.1 * 0.5**2


def test_a_gradient_of_the_wrong_shape_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"gradient of 'w' has shape \(3,\)"):
        SGD().step({"w": np.ones(2)}, {"w": np.ones(3)})
