from adapterflow.data.text import clean_text, strip_html, strip_wikitext


def test_clean_text_nfkc_controls_whitespace():
    assert clean_text("ﬁ\u00a0x") == "fi x"  # ligature and no-break space folded by NFKC
    assert clean_text("a\x00b\x07c\u200bd\ufeff") == "abcd"
    assert clean_text("  one\ttwo   three \r\nfour ") == "one two three four"
    assert clean_text("para one\nstill one\n\n\n  para two\r\n\r\npara three") == (
        "para one still one\n\npara two\n\npara three"
    )
    assert clean_text(" \n\t \x0b ") == ""
    assert clean_text("Ｆｕｌｌｗｉｄｔｈ ①") == "Fullwidth 1"


def test_strip_html_tags_and_entities():
    assert clean_text(strip_html("<p>A &amp; B</p><br/>C&nbsp;D")) == "A & B C D"
    assert strip_html("no tags, 3 < 4") == "no tags, 3 < 4"


def test_strip_wikitext_keeps_prose_and_drops_markup():
    wikitext = (
        "{{Infobox person|name=X}}'''Ada''' was a [[mathematician|math person]] "
        "from [[London]].<ref>Some citation</ref>\n\n"
        "== Early life ==\nShe was born in 1815.[[File:Ada.jpg|thumb|A portrait]]\n"
        "{| class=wikitable\n|-\n| cell || cell\n|}\n"
        "== References ==\n* A book\n[[Category:Mathematicians]]"
    )
    sections = dict(strip_wikitext(wikitext))
    assert set(sections) == {"", "Early life"}
    lead = clean_text(sections[""])
    assert lead == "Ada was a math person from London."
    early = clean_text(sections["Early life"])
    assert "born in 1815" in early
    for junk in ("cell", "thumb", "Category", "Infobox", "citation", "portrait"):
        assert junk not in early + lead
