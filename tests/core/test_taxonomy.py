"""The taxonomy users name values with: 32 values, fixed-depth paths, aliases, concordance."""

from __future__ import annotations

import copy

import pytest
import yaml

from valueflow.taxonomy import THEORIES, UnknownValueError, ValueTaxonomy, get_taxonomy, normalise_name

EXPECTED = {
    "pvq": ["benevolence", "universalism", "self-direction", "stimulation", "hedonism", "achievement", "power",
            "conformity", "tradition", "security", "face", "humility"],
    "mft": ["care-harm", "fairness-cheating", "loyalty-betrayal", "authority-subversion", "sanctity-degradation",
            "liberty-oppression"],
    "duty": ["fidelity", "reparation", "gratitude", "justice", "beneficence", "self-improvement", "non-maleficence"],
    "right": ["civil_rights", "political_rights", "economic_rights", "social_rights", "cultural_rights",
              "national_solidarity_rights", "social_group_solidarity_rights"],
}


def test_the_32_values_of_the_four_theories():
    tax = get_taxonomy()
    assert {t: [v.name for v in tax.values_of(t)] for t in THEORIES} == EXPECTED
    assert len(tax.values) == 32
    assert all(len(v.definition.split()) >= 6 for v in tax.values)


def test_every_value_and_leaf_has_a_three_level_path_under_its_value():
    tax = get_taxonomy()
    paths = list(tax.all_paths())
    assert len(paths) == 32 + len(tax.leaves)
    for theory, path in paths:
        assert len(path) == 3 and all(isinstance(p, str) and p for p in path)
    for leaf in tax.leaves:
        path = tax.path(leaf.value, leaf.name)
        assert path[2] == leaf.name and leaf.value in path[:2]


def test_path_rule_for_deep_shallow_and_two_parent_values():
    tax = get_taxonomy()
    assert tax.path("benevolence", "benevolence:caring") == ("self-transcendence", "benevolence", "benevolence:caring")
    assert tax.path("civil_rights", "right_to_life") == ("first_generation", "civil_rights", "right_to_life")
    assert tax.path("care-harm", "compassion") == ("care-harm", "compassion", "compassion")
    assert tax.path("fidelity") == ("fidelity", "fidelity", "fidelity")
    # boundary values: the first parent listed is the primary one
    assert tax.path("hedonism")[0] == "openness to change"
    assert tax.path("face")[0] == "self-enhancement"
    assert tax.path("humility")[0] == "self-transcendence"
    assert tax.value("face").parents == ("self-enhancement", "conservation")


def test_leaf_names_follow_the_reference_hierarchies():
    tax = get_taxonomy()
    assert len([leaf for leaf in tax.leaves if leaf.theory == "pvq"]) == 13  # + 6 unrefined basic values = 19
    assert [leaf.name for leaf in tax.leaves_of("social_group_solidarity_rights")] == [
        "peace", "environment", "humanitarian_assistance", "emerging_right_to_democracy"]
    assert tax.resolve_leaf("self-direction", "Self-direction: thought") == "self-direction:thought"
    assert tax.resolve_leaf("benevolence", "caring") == "benevolence:caring"


@pytest.mark.parametrize(
    "alias, value",
    [("care/harm", "care-harm"), ("care-harm", "care-harm"), ("Care", "care-harm"), ("CARE_HARM", "care-harm"),
     ("Self-Direction", "self-direction"), ("self direction", "self-direction"), ("purity", "sanctity-degradation"),
     ("Civil Rights", "civil_rights"), ("nonmaleficence", "non-maleficence"), ("Liberty/Oppression", "liberty-oppression")],
)
def test_aliases_resolve(alias, value):
    assert get_taxonomy().resolve(alias) == value


def test_every_declared_alias_resolves_to_its_value():
    tax = get_taxonomy()
    raw = _raw()
    for theory in raw["theories"].values():
        for name, spec in theory["values"].items():
            for alias in [name, *spec.get("aliases", [])]:
                assert tax.resolve(alias) == name
                assert tax.resolve(alias.upper()) == name


def test_unknown_value_lists_the_valid_ones():
    with pytest.raises(UnknownValueError) as err:
        get_taxonomy().resolve("kindnes")
    assert "unknown value 'kindnes'" in str(err.value) and "benevolence" in str(err.value)


def test_concordance_is_a_partition_with_cross_theory_groups():
    tax = get_taxonomy()
    members = [m for group in tax.concordance.values() for m in group]
    assert sorted(members) == sorted(v.name for v in tax.values)
    care = {tax.value(m).theory for m in tax.concordance[tax.value("care-harm").concordance_group]}
    assert {"pvq", "mft", "duty"} <= care


def tax_file():
    from importlib import resources

    return resources.files("valueflow").joinpath("taxonomy.yaml")


def _raw():
    return yaml.safe_load(tax_file().read_text(encoding="utf-8"))


def test_taxonomy_is_validated_when_loaded():
    bad = copy.deepcopy(_raw())
    bad["theories"]["pvq"]["values"]["benevolence"]["parents"] = ["self-transendence"]
    with pytest.raises(ValueError, match="self-transendence"):
        ValueTaxonomy(bad)
    bad = copy.deepcopy(_raw())
    bad["concordance"]["care"].append("liberty-oppression")
    with pytest.raises(ValueError, match="liberty-oppression"):
        ValueTaxonomy(bad)
    bad = copy.deepcopy(_raw())
    bad["theories"]["mft"]["values"]["care-harm"]["colour"] = "red"
    with pytest.raises(ValueError, match="colour"):
        ValueTaxonomy(bad)


def test_normalised_names_ignore_case_and_separators():
    assert normalise_name(" Care/Harm ") == normalise_name("care_harm") == "care harm"
