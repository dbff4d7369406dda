"""Recurrent cells: fused LSTM and GRU cell steps, forward and backward (B = batch, H = hidden size)."""
from . import ODD, Case, normal

SIZES = ({"batch": 64, "hidden": 1024}, {"batch": 256, "hidden": 2048})
EMU = ({"batch": 3, "hidden": 37}, *({"batch": 1, "hidden": n} for n in ODD))

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
]
