"""kdcache: distil large monocular-depth teachers into small, fast students.

Read the package like a book:
data -> teachers -> store -> precompute -> students -> losses -> train -> evaluate -> export.
"""

__version__ = "0.1.0"
