"""Built-in victim recognizers, one module each; importing this package registers them."""

from . import agcn, ctrgcn, frhead, hdgcn, msg3d, skateformer, stgcn, sttformer  # noqa: F401
