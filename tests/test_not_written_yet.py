"""An unfinished exercise shows a short "not written yet", not a long chained traceback."""

import pytest

from helpers import checks


def stub():
    raise NotImplementedError()


def test_attempt_raises_short_not_written_yet():
    with pytest.raises(NotImplementedError) as info:
        checks.attempt(stub)
    err = info.value
    assert isinstance(err, checks.NotWrittenYet)
    assert "stub is not written yet" in str(err)
    assert err.__suppress_context__ and err.__cause__ is None
    lines = err._render_traceback_()
    assert len(lines) <= 3 and "not written yet" in lines[0]


def test_attempt_passes_results_and_other_errors_through():
    assert checks.attempt(lambda x: x + 1, 1) == 2
    with pytest.raises(ValueError):
        checks.attempt(lambda: (_ for _ in ()).throw(ValueError("x")))
