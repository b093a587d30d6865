"""The what-if page's numbers (offtake.apps.whatif.numbers_of): every number of an item a
what-if can change one at a time, with its PATH for `--set` and its current value. No
browser needed (the page itself: test_dashboard.py)."""

from __future__ import annotations

import pytest
from conftest import INSTANCES

from offtake.apps.whatif import assignment, numbers_of
from offtake.domain.transforms import apply_sets
from offtake.io.loader import load_or_raise


@pytest.fixture(scope="module")
def inst():
    return load_or_raise(INSTANCES / "us_ev_oem_scenarios.yaml")


def test_the_numbers_of_rules_offers_capacities_and_scenarios_with_their_values(inst):
    """Values as the instance file states them: the supplier cap 0.5, MP Materials'
    magnet capacity 1,000 t in 2027, the base scenario's probability 0.5, the Noveon
    offer's price; whole numbers (years) and yes/no fields are not offered."""
    numbers = numbers_of(inst)
    assert numbers["rule SUPPLIER-CAP-50"] == {
        "max_share": ("rules.SUPPLIER-CAP-50.max_share", 0.5)}
    assert numbers["facility MP-IND"]["capacity_t 2027"] == (
        "facilities.MP-IND.capacity_t.2027", 1000.0)
    assert numbers["scenario base"]["probability"] == ("scenarios.base.probability", 0.5)
    offer = numbers["offer OFF-MP-IND"]
    assert offer["adder_per_kg"] == ("offers.OFF-MP-IND.adder_per_kg", 41.5)
    assert "first_year" not in offer and "price_per_kg" not in offer  # a year; empty
    assert not any(isinstance(v, bool) for f in numbers.values() for _, v in f.values())
    assert list(numbers)[0].startswith("rule ")  # rules first


def test_every_number_set_to_its_own_value_leaves_the_instance_as_it_was(inst):
    """Each PATH names what it says: all of them set at once to their current values
    validate and change nothing; one set to a new value changes that value only."""
    numbers = numbers_of(inst)
    sets = [assignment(path, value) for f in numbers.values() for path, value in f.values()]
    assert len(sets) > 100
    assert apply_sets(inst, sets) == inst
    changed = apply_sets(inst, [assignment("facilities.MP-IND.capacity_t.2027", 1234.5)])
    again = numbers_of(changed)
    assert again["facility MP-IND"]["capacity_t 2027"][1] == 1234.5
    assert again["facility MP-IND"]["capacity_t 2028"][1] == 1000.0
    assert {k: v for k, v in again.items() if k != "facility MP-IND"} == {
        k: v for k, v in numbers.items() if k != "facility MP-IND"}
    assert assignment("rules.R.max_share", 0.7) == "rules.R.max_share=0.7"
