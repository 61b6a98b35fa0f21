"""Names and URIs: every accepted form parses, every unsafe name is refused with the fix."""

from __future__ import annotations

import pytest

from batchml.registry import BadReference, ModelRef, parse_ref
from batchml.registry.names import check_alias, check_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jets", ModelRef("jets")),
        ("jets/3", ModelRef("jets", version=3)),
        ("jets@production", ModelRef("jets", alias="production")),
        ("batchml:jets@staging", ModelRef("jets", alias="staging")),
        ("batchml:jets/12", ModelRef("jets", version=12)),
        ("jets@sha256:0123abcd", ModelRef("jets", digest="0123abcd")),
        ("tau-id_v2.1@prod", ModelRef("tau-id_v2.1", alias="prod")),
    ],
)
def test_every_uri_form_parses_and_prints_back(text: str, expected: ModelRef) -> None:
    ref = parse_ref(text)
    assert ref == expected
    assert parse_ref(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("../etc", "'/', '\\' and '..' are refused"),
        ("../../etc/passwd", "'..' are refused"),
        ("a..b", "'..' are refused"),
        ("..\\secret", "are refused"),
        ("bad\nname", "control characters"),
        ("jets\n", "control characters"),  # where a pattern ending in $ would let it pass
        ("", "it is empty"),
        ("x" * 101, "101 characters (at most 100)"),
        (".hidden", "is not a valid model name"),
        ("jets/0", "'0' in 'jets/0' is not a version number"),
        ("jets/3/files", "is not a version number"),
        ("jets@sha256:XYZ", "is not a sha256 digest"),
        ("jets@42", "it is a number"),
        ("jets@../x", "'..' are refused"),
    ],
)
def test_bad_references_are_refused_naming_the_value(text: str, says: str) -> None:
    with pytest.raises(BadReference) as caught:
        parse_ref(text)
    assert says in caught.value.message
    assert caught.value.hint
    assert caught.value.exit_code == 2


def test_names_and_aliases_have_their_own_wording() -> None:
    assert check_name("jets") == "jets"
    assert check_alias("production") == "production"
    with pytest.raises(BadReference, match="not a valid alias"):
        check_alias("a/b")
    with pytest.raises(BadReference, match="not a valid tag"):
        check_name("a b", "tag")
