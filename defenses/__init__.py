"""Built-in defenses, one module each; importing this package registers them."""

from . import beat, bone_project, pgd_at, randomized_smoothing, smooth_purify, trades  # noqa: F401
