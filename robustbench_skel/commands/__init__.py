"""The command line and the commands behind it (bench, sweep, transfer matrix, reproduce, show, describe).

Entry points: may import every other layer; nothing imports them.
"""
