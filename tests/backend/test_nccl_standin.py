"""The NCCL stand-in of the emulated device (one process: a world of one rank) refuses what NCCL on GPUs would get
wrong: a buffer on another device than the communicator's, a mismatched datatype, an unpaired groupEnd, destroying
inside a group; and runs queued calls at groupEnd."""
import numpy as np
import pytest

from gpunet.backend.cupy_backend import emulated_backend
from gpunet.backend.emulated import nccl_standin as nccl


def test_all_reduce_over_one_rank_is_queued_in_a_group_and_checks_devices_and_types():
    zero, one = emulated_backend(0), emulated_backend(1)
    with zero.activate():
        communicator = nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)
    send = zero.xp.asarray(np.arange(4, dtype=np.float64))
    receive = zero.xp.zeros(4, dtype=np.float64)
    nccl.groupStart()
    communicator.allReduce(send.data.ptr, receive.data.ptr, 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    assert nccl.open_groups() == 1 and not receive.any()  # queued, not run
    with pytest.raises(nccl.NcclStandinError, match="destroy"):
        communicator.destroy()
    nccl.groupEnd()
    assert nccl.open_groups() == 0
    np.testing.assert_array_equal(np.asarray(receive), [0, 1, 2, 3])
    other = one.xp.zeros(4, dtype=np.float64)
    with pytest.raises(nccl.NcclStandinError, match="cuda-emu:1, the communicator on cuda-emu:0"):
        communicator.allReduce(send.data.ptr, other.data.ptr, 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclStandinError, match="datatype"):
        communicator.allReduce(send.data.ptr, receive.data.ptr, 4, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclStandinError, match="exceeds"):
        communicator.allReduce(send.data.ptr, receive.data.ptr, 5, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclStandinError, match="without a matching groupStart"):
        nccl.groupEnd()
    communicator.destroy()
