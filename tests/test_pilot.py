"""Which pilot study a one-seed run borrows its training-seed variance from (harness/report/pilot.py)."""

from __future__ import annotations

import json

import pytest

from harness.metrics.intervals import Components
from harness.report import pilot as pilots

RECIPE = {"decoder": {"decoder": {"train": {"steps": 1500}}}}


def write(folder, name: str, seeds: int, recipe: dict) -> None:
    pilot = pilots.Pilot(name, f"a run of {seeds} seeds", recipe,
                         {"difference|a|b|attribute_accuracy||||g=3": Components(0.01, 0.02, 0.03, seeds - 1.0, seeds,
                                                                                  72, 2)})
    (folder / f"{name}.json").write_text(json.dumps(pilot.to_json()))


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    monkeypatch.setattr(pilots, "PILOTS_DIR", tmp_path)
    write(tmp_path, "a-five-seeds", 5, RECIPE)
    write(tmp_path, "b-ten-seeds", 10, RECIPE)
    write(tmp_path, "c-twenty-seeds", 20, {"decoder": {"decoder": {"train": {"steps": 750}}}})
    return tmp_path


def test_of_the_pilots_of_a_runs_recipe_the_one_with_most_seeds_is_borrowed(shipped):
    chosen, why = pilots.choose("auto", RECIPE)
    assert [p.name for p in chosen] == ["b-ten-seeds", "a-five-seeds"] and why == ""  # most seeds first
    assert [p.name for p in pilots.choose("a-five-seeds", RECIPE)[0]] == ["a-five-seeds"]  # named: that one
    assert pilots.choose("none", RECIPE) == ([], "report.pilot is none")


def test_a_contrast_the_most_seeded_pilot_lacks_is_read_from_the_next(shipped):
    from harness.config import PrimaryContrast

    chosen, _ = pilots.choose("auto", RECIPE)
    extra = PrimaryContrast(question="q5", contrast="difference", a="c", b="d", metric="binding_accuracy")
    five = chosen[1]
    five.contrasts[pilots.contrast_key(extra, "binding_accuracy")] = Components(0.01, 0.02, 0.03, 4.0, 5, 24, 2)
    found = pilots.components_of(chosen, extra, "binding_accuracy")
    assert found is not None and found[0].name == "a-five-seeds"  # b-ten-seeds never measured it
    measured = PrimaryContrast(question="q4", contrast="difference", a="a", b="b", metric="attribute_accuracy")
    assert pilots.components_of(chosen, measured, "attribute_accuracy")[0].name == "b-ten-seeds"


def test_a_recipe_no_pilot_measured_borrows_nothing_and_says_where_it_differs(shipped):
    chosen, why = pilots.choose("auto", {"decoder": {"decoder": {"train": {"steps": 3000}}}})
    assert chosen == [] and why.endswith("differs in decoder.decoder.train.steps)")
