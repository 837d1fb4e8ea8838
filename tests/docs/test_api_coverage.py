"""Every public name of `soft_ops.__all__` has an API entry in docs/, and no entry is stale."""

import re

from diffbio.core import soft_ops

from ._helpers import pages

ENTRY = re.compile(r"^:::\s+diffbio\.core\.soft_ops\.(\w+)\s*$", re.MULTILINE)


def documented(texts: list[str]) -> set[str]:
    return {name for text in texts for name in ENTRY.findall(text)}


def test_the_entry_pattern_matches_mkdocstrings_syntax():
    text = "# Page\n\n::: diffbio.core.soft_ops.sort\n    options:\n      x: 1\n\n:::diffbio.x.y\n"
    assert documented([text]) == {"sort"}


def test_every_public_name_has_an_api_entry():
    names = documented([p.read_text() for p in pages()])
    missing = sorted(set(soft_ops.__all__) - names)
    assert not missing, f"no `::: diffbio.core.soft_ops.<name>` entry in docs/ for {missing}"


def test_every_api_entry_is_a_public_name():
    names = documented([p.read_text() for p in pages()])
    stale = sorted(names - set(soft_ops.__all__))
    assert not stale, f"docs/ documents names that are not in soft_ops.__all__: {stale}"


def test_each_name_is_documented_once():
    entries = [n for p in pages() for n in ENTRY.findall(p.read_text())]
    duplicates = sorted({n for n in entries if entries.count(n) > 1})
    assert not duplicates, f"documented more than once: {duplicates}"
