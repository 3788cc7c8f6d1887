"""Built-in attacks, one module each; importing this package registers them."""

from . import apgd, bone_length, ciasa, cw, fgsm, ifgsm, mifgsm, mig, nifgsm, pgd, pgd_l2, smart  # noqa: F401
from . import autoattack  # noqa: F401  (a cascade of the attacks above)
from . import nobox, noise  # noqa: F401  (no-box: the motion-manifold family, and random noise as their floor)
from . import basar, boundary  # noqa: F401  (decision-based: they are handed a label oracle)
from . import ba, dim, ens, svre  # noqa: F401  (transfer attacks: they need --surrogate)
from . import tasar  # noqa: F401  (transfer: Bayesian heads on frozen surrogates)
