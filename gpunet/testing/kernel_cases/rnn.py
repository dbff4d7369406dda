"""Recurrent cells: fused LSTM and GRU cell steps, forward and backward (B = batch, H = hidden size); as a layer
calls them too: writing into step slices of NaN-filled sequence buffers, and with a second gradient of h."""
import numpy

from . import ODD, Case, normal

SIZES = ({"batch": 64, "hidden": 1024}, {"batch": 256, "hidden": 2048})
EMU = ({"batch": 3, "hidden": 37}, *({"batch": 1, "hidden": n} for n in ODD))



def _step_slices(b, count, batch, hidden):
    """Step 1 of ``count`` NaN-filled (3, batch, hidden) sequence buffers, as a layer passes ``out``."""
    return tuple(b.xp.full((3, batch, hidden), numpy.nan, dtype=numpy.float32)[1] for _ in range(count))


CASES = [
    Case("lstm_cell", lambda b, rng, batch, hidden: (normal(b, rng, (batch, 4 * hidden)),
                                                            normal(b, rng, (batch, hidden))),
         bytes=lambda batch, hidden: 28 * batch * hidden, flops=lambda batch, hidden: 40 * batch * hidden,
         sizes=SIZES, checks=EMU),
    Case("lstm_cell_backward", lambda b, rng, batch, hidden: (normal(b, rng, (batch, 4 * hidden)), *(normal(b, rng, (batch, hidden))
                                                                               for _ in range(3))),
         bytes=lambda batch, hidden: 48 * batch * hidden, flops=lambda batch, hidden: 60 * batch * hidden,
         sizes=SIZES, checks=EMU),
    Case("gru_cell", lambda b, rng, batch, hidden: (normal(b, rng, (batch, 3 * hidden)),
                                                           normal(b, rng, (batch, 3 * hidden)),
                                                           normal(b, rng, (batch, hidden))),
         bytes=lambda batch, hidden: 32 * batch * hidden, flops=lambda batch, hidden: 35 * batch * hidden,
         sizes=SIZES, checks=EMU),
    Case("gru_cell_backward", lambda b, rng, batch, hidden: (normal(b, rng, (batch, 3 * hidden)),
                                                                    normal(b, rng, (batch, 3 * hidden)),
                                                                    normal(b, rng, (batch, hidden)),
                                                                    normal(b, rng, (batch, hidden))),
         bytes=lambda batch, hidden: 60 * batch * hidden, flops=lambda batch, hidden: 50 * batch * hidden,
         sizes=SIZES, checks=EMU),
    Case("lstm_cell", lambda b, rng, batch, hidden: (normal(b, rng, (batch, 4 * hidden)),
                                                     normal(b, rng, (batch, hidden)),
                                                     _step_slices(b, 2, batch, hidden)),
         checks=EMU, label="out"),
    Case("lstm_cell_backward", lambda b, rng, batch, hidden: (normal(b, rng, (batch, 4 * hidden)),
                                                              *(normal(b, rng, (batch, hidden)) for _ in range(4))),
         bytes=lambda batch, hidden: 52 * batch * hidden, flops=lambda batch, hidden: 61 * batch * hidden,
         sizes=SIZES, checks=EMU, label="grad_h_extra"),
    Case("gru_cell", lambda b, rng, batch, hidden: (normal(b, rng, (batch, 3 * hidden)),
                                                    normal(b, rng, (batch, 3 * hidden)),
                                                    normal(b, rng, (batch, hidden)),
                                                    _step_slices(b, 1, batch, hidden)[0]),
         checks=EMU, label="out"),
    Case("gru_cell_backward", lambda b, rng, batch, hidden: (normal(b, rng, (batch, 3 * hidden)),
                                                             normal(b, rng, (batch, 3 * hidden)),
                                                             *(normal(b, rng, (batch, hidden)) for _ in range(3))),
         bytes=lambda batch, hidden: 64 * batch * hidden, flops=lambda batch, hidden: 51 * batch * hidden,
         sizes=SIZES, checks=EMU, label="grad_h_extra"),
]
