"""vidlens: deep-learning video understanding.

Stages (see DESIGN.md): io -> data -> models -> tasks -> engine -> outputs,
with cli/ and serve/ as thin front doors.
"""

__version__ = "0.1.0"
