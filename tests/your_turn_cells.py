"""Finding the lessons' "your turn" cells and what their check cells printed (shared by the lesson tests)."""

from __future__ import annotations

from mlops_helpers.notebooks import cell_tags, cell_text
from mlops_helpers.your_turn import NOT_YET, PASSED

YOUR_TURN = "your-turn"
CHECK = "your-turn-check"
PASS_MARK, HINT_MARK = PASSED, NOT_YET


def your_turn_cells(cells) -> list:
    """The cells a student writes code in (tag ``your-turn``), in order."""
    return [c for c in cells if YOUR_TURN in c.get("metadata", {}).get("tags", [])]


def check_outputs(notebook) -> list[str]:
    """What each check cell (tag ``your-turn-check``) of an executed notebook printed, in order."""
    return [cell_text(c).strip() for c in notebook.cells if CHECK in cell_tags(c)]


def assert_shipped_hints(notebook) -> None:
    """As shipped, every check cell ran (the lesson went on past it) and printed a hint, not a pass."""
    outputs = check_outputs(notebook)
    assert outputs, "no your-turn check cell ran"
    for out in outputs:
        assert out.startswith(HINT_MARK) and PASS_MARK not in out, out
