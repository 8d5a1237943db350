"""The training core in small parts: config, batch stream, optimizer, steps, EMA, checkpoints, progress.

:func:`pyro_flowzoo.fit` composes these parts; a hand-written loop can use them one by one.
"""
