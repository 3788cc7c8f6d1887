"""Built-in attacks, one module each; importing this package registers them."""

from . import fgsm, ifgsm, mifgsm, mig, nifgsm, pgd, pgd_l2  # noqa: F401
