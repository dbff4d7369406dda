"""Losses: values and gradients against PyTorch (float64) for every reduction and option, second derivatives by
finite differences and against PyTorch's double backward, stability for huge logits (each on "cpu" and
"cuda-emu", the ``device`` fixture), and the error messages."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import gpunet as gn
import gpunet.nn.functional as F
from gpunet import backend
from gpunet.nn.losses import loss_target
from gpunet.ops.loss import SoftmaxCrossEntropy
from gpunet.testing import gradcheck, gradgradcheck

REDUCTIONS = ("mean", "sum", "none")
RNG = np.random.default_rng(0)


def _pair(array, requires_grad=True, dtype=np.float64):
    array = np.asarray(array)
    if array.dtype.kind in "iu":
        return gn.tensor(array), torch.tensor(array)
    array = array.astype(dtype)
    return (gn.tensor(array, requires_grad=requires_grad, dtype=dtype),
            torch.tensor(array, requires_grad=requires_grad))


def _check(ours, theirs, inputs, rtol=1e-10, atol=1e-12):
    """Compare loss values, then the gradients of sum(loss * seed) with respect to each (gpunet, torch) input."""
    assert ours.shape == tuple(theirs.shape)
    assert ours.device == backend.current().device
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol)
    seed = np.random.default_rng(7).standard_normal(ours.shape)
    (ours * gn.tensor(seed, dtype=ours.dtype)).sum().backward()
    (theirs * torch.tensor(seed, dtype=theirs.dtype)).sum().backward()
    for g, t in inputs:
        assert g.grad is not None and t.grad is not None
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)


def _class_case(shape, ignore_some=False, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape) * 2
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = rng.integers(0, shape[1 if len(shape) > 1 else 0], size=target_shape)
    if ignore_some and target.ndim:
        target.reshape(-1)[::3] = -100
    return logits, target


# ----- cross_entropy with class indices -------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 3), (5,)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_some", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_cross_entropy_class_targets_match_torch(device, reduction, shape, weighted, ignore_some, label_smoothing):
    logits, target = _class_case(shape, ignore_some)
    classes = shape[1] if len(shape) > 1 else shape[0]
    x, tx = _pair(logits)
    t, tt = _pair(target)
    w, tw = _pair(np.linspace(0.5, 2.0, classes), requires_grad=False) if weighted else (None, None)
    ours = F.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=label_smoothing)
    theirs = TF.cross_entropy(tx, tt, weight=tw, reduction=reduction, label_smoothing=label_smoothing)
    _check(ours, theirs, [(x, tx)])


def test_cross_entropy_is_one_fused_node_on_the_logits():
    logits, target = _class_case((8, 10))
    x = gn.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, gn.tensor(target))
    assert isinstance(loss.creator, SoftmaxCrossEntropy)
    assert loss.creator.inputs[0] is x


def test_cross_entropy_custom_ignore_index_inside_the_class_range(device):
    logits, target = _class_case((7, 4), seed=3)
    target[[1, 4]] = 2
    x, tx = _pair(logits)
    t, tt = _pair(target)
    _check(F.cross_entropy(x, t, ignore_index=2), TF.cross_entropy(tx, tt, ignore_index=2), [(x, tx)])


def test_cross_entropy_all_targets_ignored_gives_nan_mean_like_torch(device):
    x, tx = _pair(np.ones((3, 4)))
    t, tt = _pair(np.full(3, -100))
    with np.errstate(invalid="ignore"):
        ours = F.cross_entropy(x, t)
    assert np.isnan(ours.item()) and np.isnan(TF.cross_entropy(tx, tt).item())
    assert F.cross_entropy(x, t, reduction="sum").item() == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_is_stable_for_logits_of_magnitude_1e3(device, dtype, reduction):
    rng = np.random.default_rng(5)
    logits = rng.choice([-1e3, 1e3], size=(6, 5)) + rng.standard_normal((6, 5))
    target = rng.integers(0, 5, size=6)
    x, tx = _pair(logits, dtype=dtype)
    tx = torch.tensor(logits.astype(dtype), requires_grad=True)
    t, tt = _pair(target)
    ours = F.cross_entropy(x, t, reduction=reduction)
    theirs = TF.cross_entropy(tx, tt, reduction=reduction)
    assert np.all(np.isfinite(ours.numpy()))
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    _check(ours, theirs, [(x, tx)], rtol=rtol, atol=1e-4 if dtype == np.float32 else 1e-12)
    assert np.all(np.isfinite(x.grad.numpy()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_probability_targets_match_torch(device, reduction, shape, weighted, label_smoothing):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal(shape)
    class_dim = 1 if len(shape) > 1 else 0
    probs = rng.random(shape)
    probs /= probs.sum(axis=class_dim, keepdims=True)
    x, tx = _pair(logits)
    p, tp = _pair(probs)
    classes = shape[class_dim]
    w, tw = _pair(np.linspace(2.0, 0.5, classes), requires_grad=False) if weighted else (None, None)
    ours = F.cross_entropy(x, p, weight=w, reduction=reduction, label_smoothing=label_smoothing)
    theirs = TF.cross_entropy(tx, tp, weight=tw, reduction=reduction, label_smoothing=label_smoothing)
    _check(ours, theirs, [(x, tx), (p, tp)])


def test_cross_entropy_second_derivatives(device):
    logits, target = _class_case((4, 3), ignore_some=True, seed=4)
    t = gn.tensor(target)
    w = gn.tensor([0.5, 1.0, 2.0], dtype=gn.float64)
    for reduction in REDUCTIONS:
        fn = lambda x: F.cross_entropy(x, t, weight=w, reduction=reduction)  # noqa: E731
        x = gn.tensor(logits, requires_grad=True, dtype=gn.float64)
        assert gradcheck(fn, (x,))
        assert gradgradcheck(fn, (x,))


def test_cross_entropy_hessian_vector_product_matches_torch(device):
    logits, target = _class_case((5, 4), seed=6)
    v = np.random.default_rng(8).standard_normal(logits.shape)
    x, tx = _pair(logits)
    t, tt = _pair(target)
    (g,) = gn.grad(F.cross_entropy(x, t, label_smoothing=0.1), [x], create_graph=True)
    (g * gn.tensor(v, dtype=gn.float64)).sum().backward()
    (tg,) = torch.autograd.grad(TF.cross_entropy(tx, tt, label_smoothing=0.1), [tx], create_graph=True)
    (tg * torch.tensor(v)).sum().backward()
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-13)


# ----- nll_loss --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 5), (4,)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_some", [False, True])
def test_nll_loss_matches_torch(device, reduction, shape, weighted, ignore_some):
    logits, target = _class_case(shape, ignore_some, seed=1)
    class_dim = 1 if len(shape) > 1 else 0
    log_probs = logits - np.log(np.exp(logits).sum(axis=class_dim, keepdims=True))
    x, tx = _pair(log_probs)
    t, tt = _pair(target)
    w, tw = _pair(np.linspace(0.5, 2.0, shape[class_dim]), requires_grad=False) if weighted else (None, None)
    _check(F.nll_loss(x, t, weight=w, reduction=reduction), TF.nll_loss(tx, tt, weight=tw, reduction=reduction),
           [(x, tx)])


def test_nll_of_log_softmax_equals_cross_entropy_with_second_derivatives(device):
    logits, target = _class_case((4, 5), seed=9)
    t = gn.tensor(target)
    x = gn.tensor(logits, requires_grad=True, dtype=gn.float64)
    fn = lambda x: F.nll_loss(F.log_softmax(x, 1), t)  # noqa: E731
    np.testing.assert_allclose(fn(x).item(), F.cross_entropy(x, t).item(), rtol=1e-13)
    assert gradgradcheck(fn, (x,))


# ----- regression losses -----------------------------------------------------------------------------------------
REGRESSION = {
    "mse": (F.mse_loss, TF.mse_loss, {}),
    "l1": (F.l1_loss, TF.l1_loss, {}),
    "smooth_l1": (F.smooth_l1_loss, TF.smooth_l1_loss, {}),
    "smooth_l1_beta_0.5": (F.smooth_l1_loss, TF.smooth_l1_loss, {"beta": 0.5}),
    "smooth_l1_beta_0": (F.smooth_l1_loss, TF.smooth_l1_loss, {"beta": 0.0}),
    "huber": (F.huber_loss, TF.huber_loss, {}),
    "huber_delta_0.7": (F.huber_loss, TF.huber_loss, {"delta": 0.7}),
}


@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_match_torch(device, name, reduction):
    ours_fn, torch_fn, kwargs = REGRESSION[name]
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 6)) * 2
    b = rng.standard_normal((4, 6)) * 2
    b[0, :3] = a[0, :3] + np.array([0.5, -0.7, 1.0])  # differences on and near the kinks
    x, tx = _pair(a)
    y, ty = _pair(b)
    _check(ours_fn(x, y, reduction=reduction, **kwargs), torch_fn(tx, ty, reduction=reduction, **kwargs),
           [(x, tx), (y, ty)])


@pytest.mark.parametrize("name", ["mse", "smooth_l1", "huber_delta_0.7"])
def test_regression_losses_second_derivatives(device, name):
    fn, _, kwargs = REGRESSION[name]
    rng = np.random.default_rng(4)
    x = gn.tensor(rng.standard_normal((3, 4)) * 3, requires_grad=True, dtype=gn.float64)
    y = gn.tensor(rng.standard_normal((3, 4)), requires_grad=True, dtype=gn.float64)
    assert gradgradcheck(lambda a, b: fn(a, b, **kwargs), (x, y))


# ----- binary cross-entropy --------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # the target gradient is infinite at 0 and 1
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_torch_including_the_log_clamp(device, reduction, weighted):
    rng = np.random.default_rng(11)
    probs = rng.uniform(0.02, 0.98, (4, 5))
    probs[0, :4] = [0.0, 1.0, 1e-60, 1 - 1e-17]  # log clamps to -100 at the edges
    target = rng.random((4, 5))
    target[0, :2] = [0.3, 0.6]
    x, tx = _pair(probs)
    y, ty = _pair(target)
    w, tw = _pair(rng.uniform(0.5, 2, (1, 5)), requires_grad=False) if weighted else (None, None)
    ours = F.binary_cross_entropy(x, y, weight=w, reduction=reduction)
    theirs = TF.binary_cross_entropy(tx, ty, weight=tw, reduction=reduction)
    assert np.all(np.isfinite(ours.numpy()))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10)
    seed = np.random.default_rng(7).standard_normal(ours.shape)
    (ours * gn.tensor(seed, dtype=gn.float64)).sum().backward()
    (theirs * torch.tensor(seed)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
    inner = (slice(1, None),)  # the target gradient log(1-x) - log(x) is infinite at x = 0 and 1
    np.testing.assert_allclose(y.grad.numpy()[inner], ty.grad.numpy()[inner], rtol=1e-10)


def test_binary_cross_entropy_second_derivatives(device):
    rng = np.random.default_rng(12)
    x = gn.tensor(rng.uniform(0.1, 0.9, (3, 4)), requires_grad=True, dtype=gn.float64)
    y = gn.tensor(rng.random((3, 4)), requires_grad=True, dtype=gn.float64)
    assert gradgradcheck(F.binary_cross_entropy, (x, y))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
def test_binary_cross_entropy_with_logits_matches_torch(device, reduction, weighted, pos_weighted):
    rng = np.random.default_rng(13)
    logits = rng.standard_normal((4, 5)) * 3
    logits[0] = [0.0, 1e3, -1e3, 40.0, -40.0]  # the kink of the naive form, and huge logits
    target = rng.random((4, 5))
    target[0, :3] = [1.0, 0.0, 1.0]
    x, tx = _pair(logits)
    y, ty = _pair(target)
    w, tw = _pair(rng.uniform(0.5, 2, (4, 1)), requires_grad=False) if weighted else (None, None)
    pw, tpw = _pair(rng.uniform(0.5, 3, 5), requires_grad=False) if pos_weighted else (None, None)
    ours = F.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction, pos_weight=pw)
    theirs = TF.binary_cross_entropy_with_logits(tx, ty, weight=tw, reduction=reduction, pos_weight=tpw)
    assert np.all(np.isfinite(ours.numpy()))
    _check(ours, theirs, [(x, tx), (y, ty)])


def test_binary_cross_entropy_with_logits_second_derivatives_match_torch(device):
    rng = np.random.default_rng(14)
    logits = np.concatenate([[0.0, 25.0, -25.0], rng.standard_normal(5)]).reshape(2, 4)
    target = rng.random((2, 4))
    x, tx = _pair(logits)
    pw, tpw = _pair(np.array([2.0, 0.5, 1.0, 3.0]), requires_grad=False)
    t, tt = _pair(target, requires_grad=False)
    (g,) = gn.grad(F.binary_cross_entropy_with_logits(x, t, pos_weight=pw), [x], create_graph=True)
    g.sum().backward()
    (tg,) = torch.autograd.grad(TF.binary_cross_entropy_with_logits(tx, tt, pos_weight=tpw), [tx], create_graph=True)
    tg.sum().backward()
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-15)


# ----- kl_div ----------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")  # PyTorch's, about its own 'mean'
@pytest.mark.parametrize("reduction", REDUCTIONS + ("batchmean",))
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(device, reduction, log_target):
    rng = np.random.default_rng(15)
    log_q = np.log(rng.dirichlet(np.ones(5), size=4))
    p = rng.dirichlet(np.ones(5), size=4)
    target = np.log(p) if log_target else p
    x, tx = _pair(log_q)
    y, ty = _pair(target)
    _check(F.kl_div(x, y, reduction=reduction, log_target=log_target),
           TF.kl_div(tx, ty, reduction=reduction, log_target=log_target), [(x, tx), (y, ty)])


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_second_derivatives(device, log_target):
    rng = np.random.default_rng(17)
    x = gn.tensor(np.log(rng.dirichlet(np.ones(4), size=3)), requires_grad=True, dtype=gn.float64)
    p = rng.dirichlet(np.ones(4), size=3)
    y = gn.tensor(np.log(p) if log_target else p, requires_grad=True, dtype=gn.float64)
    assert gradgradcheck(lambda a, b: F.kl_div(a, b, reduction="batchmean", log_target=log_target), (x, y))


def test_kl_div_zero_target_probabilities_contribute_zero(device):
    x, tx = _pair(np.log([[0.2, 0.3, 0.5]]))
    y, ty = _pair(np.array([[0.0, 0.4, 0.6]]), requires_grad=False)
    ours = F.kl_div(x, y, reduction="sum")
    theirs = TF.kl_div(tx, ty, reduction="sum")
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    np.testing.assert_allclose(ours.item(), 0.4 * np.log(0.4 / 0.3) + 0.6 * np.log(0.6 / 0.5), rtol=1e-12)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


# ----- modules ---------------------------------------------------------------------------------------------------
def test_loss_modules_equal_their_functions_and_torch_modules(device):
    rng = np.random.default_rng(16)
    logits, target = _class_case((5, 3), seed=2)
    w = np.array([1.0, 2.0, 0.5])
    probs = rng.uniform(0.1, 0.9, (5, 3))
    real = rng.standard_normal((5, 3))
    cases = [
        (gn.nn.CrossEntropyLoss(weight=gn.tensor(w, dtype=gn.float64), label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1), logits, target),
        (gn.nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"), logits, target),
        (gn.nn.MSELoss(), torch.nn.MSELoss(), logits, real),
        (gn.nn.L1Loss(reduction="none"), torch.nn.L1Loss(reduction="none"), logits, real),
        (gn.nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), logits, real),
        (gn.nn.HuberLoss(delta=0.3), torch.nn.HuberLoss(delta=0.3), logits, real),
        (gn.nn.BCELoss(), torch.nn.BCELoss(), probs, probs[::-1].copy()),
        (gn.nn.BCEWithLogitsLoss(pos_weight=gn.tensor(w, dtype=gn.float64)),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)), logits, probs),
        (gn.nn.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"), np.log(probs), probs),
    ]
    for ours, theirs, a, b in cases:
        x, tx = _pair(a)
        y, ty = _pair(b, requires_grad=False)
        _check(ours(x, y), theirs(tx, ty), [(x, tx)])


def test_weighted_loss_module_keeps_its_weight_in_state_dict_like_torch():
    w = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    ours = gn.nn.CrossEntropyLoss(weight=gn.tensor(w)).state_dict()
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(w)).state_dict()
    assert list(ours) == list(theirs) == ["weight"]
    np.testing.assert_array_equal(ours["weight"], w)
    assert gn.nn.MSELoss().state_dict() == {}


def test_functional_exposes_the_loss_functions():
    import gpunet.nn.losses as losses

    for name in ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
                 "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"):
        assert getattr(F, name) is getattr(losses, name)


def test_float32_training_loss_stays_float32(device):
    logits, target = _class_case((4, 3))
    x = gn.tensor(logits.astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(x, gn.tensor(target))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    assert loss.device == x.grad.device == gn.device(device)


# ----- errors ----------------------------------------------------------------------------------------------------
def _raises(exc, *fragments):
    class _Ctx:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self

        def __exit__(self, *args):
            handled = self.ctx.__exit__(*args)
            message = str(self.info.value)
            for fragment in fragments:
                assert fragment in message, f"{fragment!r} not in {message!r}"
            return handled

    return _Ctx()


def test_error_for_mismatched_regression_shapes_names_loss_shapes_and_fix():
    x = gn.zeros(4, 1)
    with _raises(ValueError, "mse_loss", "(4, 1)", "(4,)", "reshape"):
        F.mse_loss(x, gn.zeros(4))
    with _raises(ValueError, "binary_cross_entropy_with_logits", "(4, 1)", "(1, 4)"):
        F.binary_cross_entropy_with_logits(x, gn.zeros(1, 4))


def test_error_for_class_index_out_of_range():
    with _raises(IndexError, "cross_entropy", "5", "[0, 3)"):
        F.cross_entropy(gn.zeros(2, 3), gn.tensor([0, 5]))
    with _raises(IndexError, "nll_loss", "-1"):
        F.nll_loss(gn.zeros(2, 3), gn.tensor([-1, 0]))


def test_error_for_float_targets_to_a_class_index_loss():
    with _raises(TypeError, "nll_loss", "integer", "float32", ".long()"):
        F.nll_loss(gn.zeros(2, 3), gn.tensor([0.0, 1.0]))
    with _raises(TypeError, "cross_entropy", "integer", ".long()", "probabilities"):
        F.cross_entropy(gn.zeros(2, 3), gn.tensor([0.0, 1.0]))


def test_error_for_wrong_target_shape_and_weight_shape():
    with _raises(ValueError, "cross_entropy", "(2, 3)", "(2,)", "(2, 1)"):
        F.cross_entropy(gn.zeros(2, 3), gn.tensor([[0], [1]]))
    with _raises(ValueError, "cross_entropy", "weight", "(3,)", "(2,)"):
        F.cross_entropy(gn.zeros(2, 3), gn.tensor([0, 1]), weight=gn.ones(2))


def test_error_for_bad_reduction_and_probabilities_out_of_range():
    with _raises(ValueError, "l1_loss", "reduction", "'avg'"):
        F.l1_loss(gn.zeros(2), gn.zeros(2), reduction="avg")
    with _raises(ValueError, "KLDivLoss", "'batchmean'"):
        gn.nn.KLDivLoss(reduction="batch")
    with _raises(ValueError, "binary_cross_entropy", "[0, 1]", "with_logits"):
        F.binary_cross_entropy(gn.tensor([0.5, 1.5]), gn.tensor([0.0, 1.0]))



def test_error_for_target_on_another_device():
    x = gn.zeros(2, 3, device="cpu")
    with _raises(gn.DeviceMismatchError, "cross_entropy", "cuda-emu", "cpu", ".to(device)"):
        F.cross_entropy(x, gn.tensor([0, 1], device="cuda-emu"))


# ----- on a CUDA device: value checks without waiting for the device ---------------------------------------------
EMULATED = ("cuda-emu", "cuda-emu:1")


def _on(device, array):
    return gn.tensor(np.asarray(array), device=device)


@pytest.mark.parametrize("device_name", EMULATED)
@pytest.mark.parametrize("name", ("cross_entropy", "nll_loss"))
def test_a_class_index_out_of_range_on_a_cuda_device_makes_the_loss_nan_without_a_host_sync(device_name, name):
    """The CPU raises; a CUDA device (here not the current one) cannot without waiting for it: the loss is NaN
    (only the bad rows with reduction='none'), no gather reads outside the classes, and nothing comes to the host."""
    logits, target = _class_case((5, 4), seed=3)
    target[[1, 3]] = [4, -2]
    good = np.array([True, False, True, False, True])
    device = backend.get_backend(device_name)
    loss = getattr(F, name)
    expected = loss(gn.tensor(logits[good]), gn.tensor(target[good]), reduction="none").numpy()
    before = device.host_syncs()
    x = _on(device_name, logits).requires_grad_()
    reduced = {r: loss(x, _on(device_name, target), reduction=r) for r in REDUCTIONS}
    reduced["mean"].backward()
    assert device.host_syncs() == before
    per_row = reduced["none"].numpy()
    assert np.isnan(per_row[~good]).all()
    np.testing.assert_allclose(per_row[good], expected, rtol=1e-12)
    assert np.isnan(reduced["mean"].item()) and np.isnan(reduced["sum"].item())
    assert np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("device_name", EMULATED)
def test_probabilities_out_of_range_on_a_cuda_device_make_binary_cross_entropy_nan_without_a_host_sync(device_name):
    device = backend.get_backend(device_name)
    before = device.host_syncs()
    per_element = F.binary_cross_entropy(_on(device_name, [0.5, 1.5, 0.25]), _on(device_name, [0.0, 1.0, 1.0]),
                                         reduction="none")
    mean = F.binary_cross_entropy(_on(device_name, [0.5, -0.5]), _on(device_name, [0.0, 1.0]))
    assert device.host_syncs() == before
    np.testing.assert_allclose(per_element.numpy()[[0, 2]], [-np.log(0.5), -np.log(0.25)], rtol=1e-6)
    assert np.isnan(per_element.numpy()[1]) and np.isnan(mean.item())


@pytest.mark.parametrize("device_name", EMULATED)
def test_every_loss_runs_on_its_inputs_device_when_another_device_is_current(device_name):
    """cuda-emu:1's tensors with the CPU current: each loss's array math runs on cuda-emu:1 (the stand-in refuses
    an operation on another device's arrays), with the CPU's values."""
    logits, target = _class_case((6, 3), ignore_some=True, seed=5)
    probabilities = 1 / (1 + np.exp(-logits))
    cases = [(F.cross_entropy, logits, target, {"label_smoothing": 0.1}), (F.nll_loss, logits, target, {}),
             (F.binary_cross_entropy, probabilities, probabilities[::-1], {}),
             (F.binary_cross_entropy_with_logits, logits, probabilities, {}), (F.mse_loss, logits, logits[::-1], {}),
             (F.l1_loss, logits, logits[::-1], {}), (F.smooth_l1_loss, logits, logits[::-1], {}),
             (F.huber_loss, logits, logits[::-1], {}), (F.kl_div, logits, probabilities, {"reduction": "batchmean"})]
    assert backend.current().device == gn.device("cpu")
    for loss, a, b, options in cases:
        ours = loss(_on(device_name, a), _on(device_name, b), **options)
        assert ours.device == gn.device(device_name)
        np.testing.assert_allclose(ours.item(), loss(gn.tensor(a), gn.tensor(b), **options).item(), rtol=1e-12,
                                   err_msg=loss.__name__)


def test_loss_target_checks_host_labels_on_the_host_before_uploading_them():
    output = gn.zeros(3, 4, device="cuda-emu:1")
    device = backend.get_backend("cuda-emu:1")
    before = device.host_syncs()
    with _raises(IndexError, "CrossEntropyLoss", "class index 7", "[0, 4)"):
        loss_target(gn.nn.CrossEntropyLoss(), np.array([0, 7, 1]), output)
    target = loss_target(gn.nn.CrossEntropyLoss(ignore_index=-1), np.array([0, -1, 3]), output)
    assert device.host_syncs() == before and target.device == gn.device("cuda-emu:1")
    np.testing.assert_array_equal(target.numpy(), [0, -1, 3])
    with _raises(IndexError, "NLLLoss", "class index -2"):  # a CPU tensor's labels: checked on the host too
        loss_target(gn.nn.NLLLoss(), gn.tensor([0, -2, 1]), output)
    moved = loss_target(gn.nn.CrossEntropyLoss(), gn.tensor([1, 2, 3], device="cuda-emu:0"), output)
    assert moved.device == gn.device("cuda-emu:1")
