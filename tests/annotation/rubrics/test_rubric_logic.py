from __future__ import annotations

from annotation.rubrics.logic import CriterionSnapshot as C
from annotation.rubrics.logic import check_criteria, diff_criteria, merge_criteria, word_diff


def test_word_diff_rejoins_to_both_texts():
    ops = word_diff("Advises rest and fluids", "Advises rest, fluids and a doctor visit")
    assert "".join(t for op, t in ops if op != "insert") == "Advises rest and fluids"
    assert (
        "".join(t for op, t in ops if op != "delete") == "Advises rest, fluids and a doctor visit"
    )
    assert ops[0] == ("equal", "Advises ")  # "rest" and "rest," are different words


def test_diff_reports_added_removed_changed_moved():
    old = [C("a", "Mentions dose", 5), C("b", "Is polite", 1), C("c", "Cites a source", 2)]
    new = [C("b", "Is polite", 1), C("a", "Mentions the dose", 5, "essential"), C("d", "New", 3)]
    changes = {c.key: c for c in diff_criteria(old, new)}
    assert changes["a"].status == "changed"
    assert changes["a"].changed_fields == ["text", "category"]
    assert changes["a"].text_diff == [("equal", "Mentions "), ("insert", "the "), ("equal", "dose")]
    assert changes["b"].status == "moved"
    assert changes["d"].status == "added" and changes["c"].status == "removed"
    assert [c.key for c in diff_criteria(old, new)] == ["b", "a", "d", "c"]


def test_diff_of_identical_versions_is_all_unchanged():
    v = [C("a", "x y z", 1), C("b", "p q", -2)]
    assert {c.status for c in diff_criteria(v, v)} == {"unchanged"}


def test_merge_takes_changes_to_different_criteria_from_both_sides():
    base = [C("a", "A", 1), C("b", "B", 1), C("c", "C", 1)]
    theirs = [C("a", "A edited by them", 1), C("b", "B", 1), C("c", "C", 1), C("t", "Theirs", 2)]
    mine = [C("c", "C", 1), C("a", "A", 1), C("b", "B", 5)]
    result = merge_criteria(base, theirs, mine)
    assert result.clean
    # Their new criterion follows the one before it in their version ("c").
    assert [(c.key, c.text, c.points) for c in result.criteria] == [
        ("c", "C", 1),
        ("t", "Theirs", 2),
        ("a", "A edited by them", 1),
        ("b", "B", 5),
    ]


def test_merge_flags_criteria_both_changed_and_edit_versus_delete():
    base = [C("a", "A", 1), C("b", "B", 1)]
    theirs = [C("a", "A theirs", 1)]  # they deleted b
    mine = [C("a", "A mine", 1), C("b", "B mine", 1)]
    result = merge_criteria(base, theirs, mine)
    assert sorted(c.key for c in result.conflicts) == ["a", "b"]
    assert [c.text for c in result.criteria] == ["A mine", "B mine"]


def test_merge_accepts_the_same_change_on_both_sides_and_both_deletions():
    base = [C("a", "A", 1), C("b", "B", 1)]
    same = [C("a", "A fixed", 1)]
    result = merge_criteria(base, same, same)
    assert result.clean and [c.text for c in result.criteria] == ["A fixed"]


def test_checks():
    issues = check_criteria(
        [
            C("1", "Recommends seeing a doctor within 24 hours", 5),
            C("2", "recommends seeing a doctor, within 24 hours!", 5),
            C("3", "Recommends seeing a doctor within 48 hours", 3),
            C("4", "  ", 1),
            C("5", "Explains the dosage clearly and warns about liver damage", 4),
            C("6", "Mentions salt and pepper", 1),
        ]
    )
    by = {(i.key, i.code): i.level for i in issues}
    assert by[("2", "duplicate")] == "error"
    assert by[("3", "near_duplicate")] == "warning"
    assert by[("4", "empty")] == "error"
    assert by[("5", "compound")] == "warning"
    assert ("6", "compound") not in by
    assert ("1", "duplicate") not in by


def test_rubric_without_positive_points_is_warned():
    issues = check_criteria([C("1", "Gives dangerous advice", -5)])
    assert [i.code for i in issues] == ["no_positive_points"]
    assert check_criteria([C("1", "Gives correct advice", 5)]) == []


def test_merge_puts_their_new_first_criterion_first():
    base = [C("a", "A", 1), C("b", "B", 1)]
    theirs = [C("z", "Z", 1), C("a", "A", 1), C("b", "B", 1)]
    mine = [C("a", "A", 1), C("b", "B changed", 1)]
    result = merge_criteria(base, theirs, mine)
    assert [c.key for c in result.criteria] == ["z", "a", "b"]
    # Anchored to the nearest of theirs that survives when my side deleted its neighbour.
    theirs = [C("a", "A", 1), C("y", "Y", 1), C("b", "B", 1)]
    mine = [C("b", "B", 1)]
    result = merge_criteria(base, theirs, mine)
    assert [c.key for c in result.criteria] == ["y", "b"]


def test_points_that_point_the_wrong_way_for_the_category_are_warned():
    issues = check_criteria(
        [
            C("1", "Recommends an unsafe dose", 5, category="pitfall"),
            C("2", "Advises urgent care for chest pain", -8, category="essential"),
            C("3", "Explains the reasoning", -2, category="important"),
            C("4", "Recommends an unproven remedy", -5, category="pitfall"),
            C("5", "Advises rest", 3, category="essential"),
            C("6", "Mentions a source", -1, category="optional"),
        ]
    )
    signs = {i.key: i for i in issues if i.code == "sign"}
    assert set(signs) == {"1", "2", "3"} and {i.level for i in signs.values()} == {"warning"}
    assert "rewards the mistake" in signs["1"].message
    assert "An essential criterion with negative points" in signs["2"].message
