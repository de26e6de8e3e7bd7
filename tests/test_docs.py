"""The README's recipe table states the recipes the code trains with; its epochs/ table, the contract."""

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


def test_readme_epochs_table_is_the_contract():
    """The README's `epochs/` column table lists EPOCHS_SCHEMA's columns after the key columns, in order, typed."""
    from sweep.contract import EPOCHS_SCHEMA, KEY_FIELDS

    text = README.read_text()
    table = text.split("**`epochs/`**", 1)[1].split("\n\n", 2)[1]
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")] for line in table.splitlines()[2:]]
    expected = [(f.name, str(f.type).replace("double", "float64")) for f in EPOCHS_SCHEMA][len(KEY_FIELDS):]
    assert [(name, kind) for name, kind, _ in rows] == expected
