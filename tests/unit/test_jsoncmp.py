from dfagent.lab.jsoncmp import json_diff


def test_subset_of_object_matches():
    assert json_diff({"a": 1}, {"a": 1, "b": 2}) == []


def test_missing_key_and_wrong_value_are_reported_with_paths():
    diff = json_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}})
    assert "$.a.b: expected 1, saw 3" in diff
    assert any(d.startswith("$.a.c: missing") for d in diff)


def test_lists_match_in_any_order_and_each_actual_element_once():
    actual = [{"gw": "b"}, {"gw": "a"}]
    assert json_diff([{"gw": "a"}, {"gw": "b"}], actual) == []
    assert json_diff([{"gw": "a"}, {"gw": "a"}], actual) != []


def test_exact_lists_checks_length():
    actual = [{"gw": "a"}, {"gw": "b"}, {"gw": "c"}]
    assert json_diff([{"gw": "a"}, {"gw": "b"}], actual) == []
    assert json_diff([{"gw": "a"}, {"gw": "b"}], actual, exact_lists=True) == [
        "$: expected 2 element(s), saw 3"
    ]


def test_type_mismatch():
    assert json_diff({"a": 1}, [1]) == ["$: expected an object, saw [1]"]
    assert json_diff([1], {"a": 1}) == ["$: expected a list, saw {'a': 1}"]
