"""The farm's input guard (issue 11): called by the step task between resolving a step's
input and running its agent. A layer beside :mod:`hive.preflight`, below the tasks; the
checks themselves are :mod:`hive.agents.builtin.guard`'s, shared with the ``guard`` agent."""

from hive.screening.guard import screen_step

__all__ = ["screen_step"]
