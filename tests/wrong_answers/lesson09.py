"""Wrong answers for the exercises of lesson 09; see harness.py."""

from harness import Case, case, solution  # noqa: F401

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING = {'largest_int8_weight', 'interpreter_accuracy', 'convert_dynamic'}
