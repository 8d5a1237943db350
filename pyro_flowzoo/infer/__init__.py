"""Flows as Pyro guides (variational inference): to be written."""

__all__: list[str] = []
