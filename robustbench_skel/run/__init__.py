"""One benchmark run: configuration, threat settings, sanity checks, progress, presets, evaluator, records.

May import the contracts, the plugins and ``learn/``; never ``board/`` or ``commands/``.
"""
