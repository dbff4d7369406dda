"""Reference of the error function erf(x), written against ``xp``; accurate to about one ulp in float64.

NumPy has no erf. This evaluates the rational approximations of Sun's fdlibm ``s_erf.c`` (the ones most C
libraries use) with array operations only, on every element for each interval, then selects the interval.
"""
from __future__ import annotations

import numpy

_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)


def _poly(coefficients, s):
    """c0 + c1 s + c2 s^2 + ... by Horner's rule."""
    result = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        result = result * s + c
    return result


def erf(xp, x):
    """erf of an array (computed in float64, returned in x's floating dtype)."""
    out_dtype = x.dtype if x.dtype.kind == "f" else numpy.dtype(numpy.float64)
    x64 = x.astype(numpy.float64)
    a = xp.abs(x64)
    xs = xp.clip(x64, -0.84375, 0.84375)  # each interval's formula runs on inputs clipped to its interval
    z = xs * xs
    small = xs + xs * (_poly(_PP, z) / _poly(_QQ, z))  # |x| < 0.84375 (sign kept)
    s = xp.clip(a, 0.84375, 1.25) - 1.0
    middle = _ERX + _poly(_PA, s) / _poly(_QA, s)  # 0.84375 <= |x| < 1.25
    clipped = xp.clip(a, 1.25, 6.0)
    w = 1.0 / (clipped * clipped)
    near = clipped < 1.0 / 0.35
    ratio = xp.where(near, _poly(_RA, w) / _poly(_SA, w), _poly(_RB, w) / _poly(_SB, w))
    tail = 1.0 - xp.exp(-clipped * clipped - 0.5625 + ratio) / clipped  # 1.25 <= |x| < 6; 1 beyond
    large = xp.where(a < 1.25, middle, xp.where(a < 6.0, tail, 1.0))
    result = xp.where(a < 0.84375, small, xp.copysign(large, x64))
    result = xp.where(a == a, result, x64)  # NaN stays NaN
    return result.astype(out_dtype, copy=False)
