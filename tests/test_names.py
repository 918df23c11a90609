import json
import os

from sigpipe._names import from_readable, json_text, readable


def test_readable_escapes_the_bytes_of_names_that_are_not_utf8_and_leaves_others():
    latin = os.fsdecode(b"caf\xe9.png")
    assert readable(latin) == "caf\\xe9.png" and from_readable(readable(latin)) == latin
    assert readable("café ✓.png") == "café ✓.png"
    assert readable("a\ud800b") == "a\\ud800b"  # no byte of a file name gives it: its escape, not a crash


def test_json_text_makes_every_string_of_a_report_valid_unicode():
    latin = os.fsdecode(b"d\xe9")
    value = {latin: [f"cannot read {latin}/claims.csv", 1.5, None, True], "n": ("x", latin)}
    out = json_text(value)
    assert out == {"d\\xe9": ["cannot read d\\xe9/claims.csv", 1.5, None, True], "n": ["x", "d\\xe9"]}
    json.dumps(out, ensure_ascii=False).encode("utf-8")
    # an OSError's message quotes the path as repr() writes it: plain ASCII "\\udce9", the same name otherwise
    assert json_text(f"cannot read: {latin!r}") == "cannot read: 'd\\xe9'"
