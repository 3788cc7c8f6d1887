"""Built-in victim recognizers, one module each; importing this package registers them."""

from . import agcn, ctrgcn, frhead, hdgcn, infogcn, msg3d, sgn, skateformer, stgcn, stgcnpp, sttformer  # noqa: F401
