"""The exercise checks of every lesson: one module per lesson (``lesson04`` for lesson 04).

A notebook's check cell calls one of them with the student's function, for example
``lesson04.check_requantize(requantize)``, plus whatever the check needs from the notebook
(a model, a batch of inputs). Each check runs the student's code through
:func:`helpers.checks.attempt`, compares with a reference on inputs chosen so that the usual
mistakes show (ties, clamped values, zero channels, …), and raises
:class:`helpers.checks.ExerciseError` with what was expected, what came out and a hint that
points the way without giving the code. ``tests/wrong_answers/`` proves that every check
rejects at least two plausible wrong answers, each named for its mistake.
"""
