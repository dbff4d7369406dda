"""The autograd engine's gradient-ready hook: called once per leaf and backward, when the leaf's .grad is final."""
import numpy as np

import gpunet as gn
from gpunet.autograd.engine import register_gradient_ready_hook


def test_the_hook_sees_each_leafs_final_gradient_once_nearest_the_loss_first():
    a = gn.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = gn.tensor(np.array([3.0, -1.0]), requires_grad=True)
    seen = []
    handle = register_gradient_ready_hook(lambda leaf: seen.append((leaf is a, leaf.grad.numpy().copy())))
    try:
        h = a * a + a  # a is used three times, all before b
        loss = (h * b).sum()
        loss.backward()
    finally:
        handle.remove()
    assert [is_a for is_a, _ in seen] == [False, True]  # b (next to the loss) is final before a
    np.testing.assert_array_equal(seen[0][1], [2.0, 6.0])            # d/db = a*a + a
    np.testing.assert_array_equal(seen[1][1], [3 * 3.0, -1 * 5.0])   # d/da = (2a + 1) b
    loss2 = (a * 2).sum()
    loss2.backward()  # removed: not called again
    assert len(seen) == 2


def test_grad_and_tensors_without_requires_grad_do_not_call_it():
    a = gn.tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = gn.tensor(np.array([5.0, 5.0]))
    seen = []
    handle = register_gradient_ready_hook(seen.append)
    try:
        gn.autograd.grad((a * c).sum(), a)
        assert seen == []
        (a * c).sum().backward()
    finally:
        handle.remove()
    assert len(seen) == 1 and seen[0] is a
