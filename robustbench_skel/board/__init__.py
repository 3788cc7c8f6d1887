"""Publishing: the leaderboard, its sections, the Markdown/LaTeX/HTML writers, plots and summaries.

Reads records (``run/record.py``) and never runs a model; may import the contracts and ``run/``.
"""
