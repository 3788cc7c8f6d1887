"""Built-in victim recognizers, one module each; importing this package registers them."""

from . import stgcn  # noqa: F401
