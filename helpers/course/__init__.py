"""The course machinery: lesson builder and checker, runner, report, website and the CLI.

Instructors, maintainers and CI use it through ``./course``; no lesson imports it. The lesson
library is the rest of ``helpers`` (data, models, measure, stats, quant, …, plot, checks,
results), which this subpackage uses but never the other way round.
"""
