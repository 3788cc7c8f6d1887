"""Training: victims, training-time defenses and their weights, Bayesian heads, the motion manifold.

May import the contracts (and the dataset sources); plugins may import these helpers.
"""
