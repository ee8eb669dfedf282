"""`isotropic`: per caption, the mean of the prior's draws plus isotropic Gaussian noise of their spread.

The same location and total spread as the prior's draws, none of their shape: against `prior_gaussian` it asks
whether the directions the prior spreads along matter. `noise_scale` multiplies the spread. The spread is matched
where the decoder reads the vector (`harness.sampling.arms._spread`: through its conditioning projection), so the
decoder sees as much of it as it does of the prior's draws; in the CLIP space itself the total variance then
differs from the draws' by however unevenly the projection weighs the directions.
"""

from __future__ import annotations

from harness.sampling.arms._spread import isotropic_factor
from harness.sampling.arms.base import register_arm
from harness.sampling.arms.prior_gaussian import PriorGaussian


@register_arm("isotropic")
class Isotropic(PriorGaussian):
    factor = staticmethod(isotropic_factor)
