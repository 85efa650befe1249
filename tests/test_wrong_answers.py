"""Every exercise check passes the reference and rejects named wrong answers (with a hint).

WRONG_ANSWERS maps (lesson, exercise function) to (check, reference, [wrong answers]); each wrong
answer is a function named for its mistake. The coverage test parses solutions/ for BEGIN SOLUTION
cells: an exercise must have an entry unless it is in PENDING, and PENDING may only shrink.
"""

import json
import re
from pathlib import Path

import pytest

from helpers import checks

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"

WRONG_ANSWERS: dict = {}  # (lesson, name) -> (check, reference, [wrong answers])

# Not converted yet (checks still inline in the notebooks). This set may only shrink.
PENDING = {
    ("00", "model_bytes"), ("01", "decode_float"), ("01", "ulp"), ("01", "intensity"),
    ("02", "qparams"), ("02", "quantize"), ("02", "dequantize"),
    ("03", "per_channel_qparams"), ("03", "percentile_clip"), ("03", "mse_optimal_clip"),
    ("04", "integer_matmul"), ("04", "quantize_multiplier"), ("04", "requantize"),
    ("04", "int8_linear"), ("04", "fold_bn"),
    ("05", "dynamic_targets"), ("05", "predict_dynamic_bytes"), ("05", "quantize_and_measure"),
    ("05", "cosine_agreement"), ("05", "good_enough_for_search"),
    ("06", "dequantize_one"), ("06", "fuse_tiny"), ("06", "add_stubs"), ("06", "calibrate"),
    ("07", "calibrate"), ("07", "keep_in_float"), ("07", "compare"),
    ("08", "my_fake_quant"), ("08", "qat_finetune_loop"), ("08", "choose_deployment"),
    ("09", "convert_dynamic"), ("09", "interpreter_accuracy"), ("09", "largest_int8_weight"),
    ("10", "make_representative_dataset"), ("10", "quantize_input"),
    ("10", "integer_model_accuracy"),
    ("11", "configure"), ("11", "predict_size"), ("11", "choose_variant"),
    ("12", "fake_quant"), ("12", "convert_integer_io"), ("12", "annotate_feature_extractor"),
    ("13", "pick_for_microcontroller"), ("13", "pick_for_server"), ("13", "pick_without_data"),
}


def exercises() -> set[tuple[str, str]]:
    """(lesson, first function defined) for every BEGIN SOLUTION code cell in solutions/."""
    found = set()
    for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and "### BEGIN SOLUTION" in source:
                names = re.findall(r"^def (\w+)", source, flags=re.M)
                found.add((path.name[:2], names[0] if names else f"cell {cell.get('id')}"))
    return found


def test_every_exercise_has_wrong_answers_or_is_pending():
    missing = exercises() - set(WRONG_ANSWERS) - PENDING
    assert not missing, f"exercises without wrong-answer entries: {sorted(missing)}"


def test_pending_only_shrinks():
    assert not PENDING & set(WRONG_ANSWERS), "converted exercises must leave PENDING"
    assert not PENDING - exercises(), f"stale PENDING entries: {sorted(PENDING - exercises())}"


@pytest.mark.parametrize("key", sorted(WRONG_ANSWERS))
def test_reference_passes_and_wrong_answers_fail(key):
    check, reference, wrong = WRONG_ANSWERS[key]
    assert len(wrong) >= 2
    check(reference)
    for answer in wrong:
        with pytest.raises(checks.ExerciseError, match="hint"):
            check(answer)
