"""The README's recipe table states the recipes the code trains with."""

from pathlib import Path

import pytest

from sweep.engine.recipes import RECIPES

README = Path(__file__).resolve().parents[1] / "README.md"


def _recipe_rows() -> dict[str, list[str]]:
    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].strip("`") in RECIPES:
            rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize("model", list(RECIPES))
def test_readme_recipe_table_matches_the_code(model):
    rows = _recipe_rows()
    assert model in rows, f"README's models table has no row for {model}"
    _, _, optimizer, lr, batch, epochs, _ = rows[model]
    recipe = RECIPES[model]
    assert optimizer.lower().startswith(recipe.optimizer)
    assert float(lr) == recipe.lr
    assert int(batch.replace(",", "")) == recipe.batch_size
    assert int(epochs) == recipe.epochs
