"""The findings report (`storypipe report`, tasks/report/) on a fixture set of twelve stories
(tests/support/report_fixtures.py): the content, consent, small groups, names, charts, edits and the command."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from storypipe.app.cli import app
from storypipe.core.jsonio import read_model
from storypipe.core.store import Store
from storypipe.core.models import QuotesFile
from storypipe.core.settings import load_settings
from storypipe.tasks import report
from tests.support import report_fixtures as fx

DATA_URI = re.compile(r"data:[^\"]+")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The fixture root and its report, written once: (store, Report, Written, md, html)."""
    store = fx.build_root(tmp_path_factory.mktemp("report-root"))
    settings = load_settings(store.root)
    built = report.build(store, settings)
    written = report.write_report(store, settings)
    md = (written.folder / "report.md").read_text("utf-8")
    html = (written.folder / "report.html").read_text("utf-8")
    return store, built, written, md, html


def section(md: str, heading: str) -> str:
    """The Markdown from a `## heading` to the next `## `."""
    start = md.index(f"## {heading}\n")
    end = md.find("\n## ", start + 1)
    return md[start : end if end > 0 else None]


def table_rows(text: str) -> list[list[str]]:
    """Markdown table rows as cells (an escaped \\| is text, not a cell border)."""
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))] for line in text.splitlines()
            if line.startswith("|") and not line.startswith("|--") and not line.startswith("|---")]


def test_the_files_are_written_where_the_contract_says(made):
    store, _, written, _, _ = made
    assert written.folder.parent == store.reports and re.fullmatch(r"\d{4}-\d{2}-\d{2}", written.folder.name)
    for name in ("report.md", "report.html", "chart-sectors.png", "chart-roles.png", "chart-age-range.png",
                 "chart-gender.png"):
        assert (written.folder / name).is_file(), name
    assert len(list(written.folder.glob("*.png"))) == 4  # beside report.md, as CONTRACT.md lists them
    assert written.stories == 12


def test_the_opening_counts_stories_hours_quotes_and_who_is_left_out(made):
    _, built, written, md, _ = made
    # 12 stories of 600 + 60*i seconds (i = 1..12): 11 880 s; each has 2 approved quotes of 3, and
    # story 4 one more, picked by hand.
    assert "**12 stories** (3 h 18 min of recordings), recorded between 1 October 2026 and 12 October 2026" in md
    assert "with **25 quotes** approved by the team" in md
    assert "1 more story is not included, because the storyteller did not agree" in md
    assert "1 more story is still being processed" in md
    assert written.notes[:2] == ["1 left out: no consent to quotes in the report", "1 left out: still being processed"]
    assert built.purpose.startswith("This report brings together") and "## Purpose" in md and "## Method" in md


def test_stories_left_out_by_consent_or_unfinished_never_appear(made):
    _, _, _, md, html = made
    visible = DATA_URI.sub("", html)
    for text in ("Ezra", "Zed", "Not for the report", "Still going", "Yan", fx.story_id(13), fx.story_id(14)):
        assert not re.search(rf"\b{text}\b", md) and not re.search(rf"\b{text}\b", visible), text


def test_theme_counts_match_the_quotes_files(made):
    """Each theme's stories, tagged quotes and approved quotes, counted again here from quotes.json."""
    store, built, _, md, _ = made
    stories, tagged, approved = defaultdict(set), defaultdict(int), defaultdict(int)
    for i in range(1, 13):
        for q in read_model(store.story_dir(fx.story_id(i)) / "quotes.json", QuotesFile).quotes:
            if q.status == "rejected":
                continue
            for t in q.themes:
                stories[t].add(i)
                tagged[t] += 1
                approved[t] += q.status == "approved"
    sections = [*built.themes, built.challenges, *(t for _, t in built.value)]
    assert {t.id for t in sections} == set(stories)
    for t in sections:
        assert (t.stories, t.quotes, t.approved) == (len(stories[t.id]), tagged[t.id], approved[t.id]), t.id
    assert [t.stories for t in built.themes] == sorted((t.stories for t in built.themes), reverse=True)
    assert "### Sharing power" in md and "Heard in **6 of 12 stories**: 6 quotes tagged, 4 approved." in md
    assert "Not heard in these stories: Diversity of perspectives" in md
    assert "trust" not in {t.id for t in built.themes}  # only the rejected quote had it


def test_only_approved_quotes_are_shown_credited_by_pseudonym(made):
    store, built, _, md, _ = made
    by_no = {s.number: s for s in built.stories}
    assert any(t.shown for t in built.themes)  # quotes to check
    for t in [*built.themes, built.challenges, *(t for _, t in built.value)]:
        assert len(t.shown) <= 6
        for q in t.shown:
            entry = by_no[q.story_no]
            quotes = read_model(store.story_dir(entry.story_id) / "quotes.json", QuotesFile).quotes
            assert any(t.id in x.themes and x.status == "approved" for x in quotes)
            assert q.credit == ("a storyteller" if entry.anonymised else fx.PSEUDONYMS[int(entry.story_id[6:8]) - 1])
    # One story at a time: the first quotes of a theme come from different stories.
    for t in built.themes:
        firsts = [q.story_no for q in t.shown[: t.stories]]
        assert len(firsts) == len(set(firsts))
    assert fx.REJECTED not in md
    assert "> — Ros, [story 1](#story-1)" in md


def test_an_approved_quote_without_a_theme_is_not_lost(made):
    _, built, _, md, _ = made
    themes = section(md, "Themes")
    other = themes[themes.index("### Other approved quotes"):]
    assert f"> “{fx.UNTAGGED}”\n>\n> — Kit, [story 4](#story-4)" in other
    assert [q.text for q in built.untagged.shown] == [fx.UNTAGGED]
    assert md.count(fx.UNTAGGED) == 1


def test_challenges_and_value_have_sections_of_their_own(made):
    _, built, _, md, _ = made
    challenges = section(md, "Challenges")
    assert "Systems and structures not set up for co-production" in challenges
    assert "The funding ran out after six months" in challenges
    assert "### Challenges" not in md and "### Challenges" not in section(md, "Themes")
    rows = table_rows(section(md, "Value for all"))
    assert [r[0] for r in rows[1:]] == ["Individuals", "Organisations", "Society"]
    individuals = dict(built.value)["individuals"]
    assert rows[1][2:4] == [str(individuals.stories), f"{individuals.quotes} tagged, {individuals.approved} approved"]
    assert "I got my confidence back" in rows[1][4]


def test_small_groups_are_suppressed_everywhere(made):
    _, built, _, md, _ = made
    who = section(md, "Who shared their stories")
    for row in table_rows(who):
        if row[1] not in ("Storytellers",):
            assert row[1] == "fewer than 5" or int(row[1]) >= 5, row
    rows = {r[0]: r[1:] for r in table_rows(who)}
    assert rows["housing"] == ["fewer than 5", "–"] and rows["health and social care"] == ["7", "58%"]
    assert rows["mental health"] == ["5", "42%"]  # several sectors each: shares of all 12
    # One answer each: 18-24 (1) alone could be worked out from 12 - 6 - 5, so 45-54 (5) is hidden too.
    assert rows["45-54"][0] == rows["18-24"][0] == "fewer than 5" and rows["35-44"] == ["6", "50%"]
    assert rows["man"][0] == "fewer than 5" and rows["woman"] == ["6", "50%"]
    alt = re.findall(r"!\[([^\]]*(?:\\\][^\]]*)*)\]", who)
    assert len(alt) == 4 and all(not re.search(r"\b[1-4] \(", a) for a in alt)
    assert len(built.breakdowns) == 4 and all(b.groups for b in built.breakdowns)  # one per chart
    for b in built.breakdowns:
        assert all(g.count is None or g.count >= 5 for g in b.groups)


@pytest.mark.parametrize(
    ("counts", "several", "hidden"),
    [
        ({"a": 6, "b": 5, "c": 1}, False, {"b", "c"}),  # a lone small group: the next smallest goes too
        ({"a": 6, "b": 5, "c": 1}, True, {"c"}),  # several answers each: totals cannot give it away
        ({"a": 6, "b": 2, "c": 1, "d": 5}, False, {"b", "c"}),  # two small ones already hide each other
        ({"a": 9, "b": 7}, False, set()),
        ({"a": 3}, False, {"a"}),
    ],
)
def test_suppress(counts, several, hidden):
    out = report.suppress(counts, sum(counts.values()), 5, several)
    assert {k for k, v in out.items() if v is None} == hidden
    assert all(out[k] == counts[k] for k in counts if k not in hidden)


def test_an_anonymised_story_shows_no_names(made):
    _, built, _, md, html = made
    visible = DATA_URI.sub("", html)
    for name in fx.ANON_NAMES:
        pattern = re.compile(rf"\b{name}\b")
        assert not pattern.search(md) and not pattern.search(visible), name
    assert "a storyteller, [story 12](#story-12)" in md
    assert "treated me as an equal at the table" in md  # the quote is there, without the names
    entry = built.stories[-1]
    assert entry.anonymised and entry.credit == "a storyteller" and "[NAME]" in entry.title


def test_markdown_characters_in_what_people_wrote_stay_plain_text(made):
    _, built, _, md, html = made
    assert report.md_escape(fx.ODD_TITLE) in md
    assert "Mo's story | part *one* &lt;b&gt;" in html.replace("&#x27;", "'").replace("&quot;", '"')
    appendix = table_rows(section(md, "Appendix: the stories"))
    assert len(appendix) == 1 + 12  # the header and a row per story
    assert all(len(r) == 9 for r in appendix)  # the | in the title did not add a column
    third = re.search(r'<tr>\s*<td[^>]*><a id="story-3"></a>3</td>(.*?)</tr>', html, re.S).group(1)
    assert third.count("<td") == 8


def test_key_phrases_across_stories(made):
    _, built, _, md, _ = made
    assert built.keyphrases[:3] == [("peer support", 12, 24), ("the council", 12, 12), ("co-production", 6, 18)]
    assert "| peer support | 12 | 24 |" in md


def test_the_appendix_links_staged_stories_and_published_clips(made):
    _, built, written, md, _ = made
    first = table_rows(section(md, "Appendix: the stories"))[1]
    link = re.search(r"\[listen\]\(([^)]+)\)", first[7]).group(1)
    assert (written.folder / link).resolve() == (written.folder.parent.parent / "staging" / fx.story_id(1) / "story.mp3")
    assert first[8] == "[clip 1](https://youtu.be/abc123XYZ_-); 1 cut, not published yet"
    assert [s.number for s in built.stories] == list(range(1, 13))
    assert all(s.full_story is None for s in built.stories[1:])


def test_the_html_is_one_self_contained_file(made):
    _, _, written, _, html = made
    assert html.count('src="data:image/png;base64,') == 4
    assert 'src="chart-' not in html and "<script" not in html
    assert re.findall(r'(?:src|href)="(https?://[^"]+)"', html) == ["https://youtu.be/abc123XYZ_-"]
    assert "<h1>Findings: Community Reporting project</h1>" in html and '<table>' in html
    # The contents line links to every section, by the ids the sections carry.
    links = re.findall(r'<a href="#([a-z-]+)">', html.split("<h2", 1)[0])
    assert links == ["purpose", "method", "who-shared-their-stories", "themes", "challenges", "value-for-all",
                     "key-phrases", "appendix-the-stories"]
    assert all(f'<h2 id="{link}">' in html for link in links)


def test_charts_are_print_quality_pngs_with_bars(made):
    _, _, written, _, _ = made
    image = Image.open(written.folder / "chart-sectors.png").convert("RGB")
    assert image.width == 7 * 200  # chart_width_in x chart_dpi
    pixels = np.asarray(image).reshape(-1, 3)
    bar = np.all(np.abs(pixels.astype(int) - (0x1F, 0x4E, 0x79)) < 8, axis=1)
    assert bar.mean() > 0.05  # two bars drawn
    # The same data gives the same bytes (no dates inside), so an unchanged report is unchanged.
    assert report.charts.bar_chart("Stories by sector", [report.charts.Group("a", 5, 1.0)], 3, 50) == \
        report.charts.bar_chart("Stories by sector", [report.charts.Group("a", 5, 1.0)], 3, 50)


def test_a_report_edited_by_the_team_is_kept_and_can_be_rendered(made, tmp_path):
    store = fx.build_root(tmp_path / "root")
    settings = load_settings(store.root)
    first = report.write_report(store, settings)
    md = first.folder / "report.md"
    again = report.write_report(store, settings)
    assert again.kept_edits is None  # unchanged: simply written again
    md.write_text(md.read_text() + "\n## What we will do next\n\nOur own words, added in the workshop.\n")
    edited = md.read_text()
    after = report.write_report(store, settings)
    assert after.kept_edits is not None and after.kept_edits.read_text() == edited
    assert "Our own words" not in md.read_text()
    report.render_files(after.kept_edits)
    assert "<p>Our own words, added in the workshop.</p>" in (first.folder / "report.html").read_text()


def test_a_story_that_failed_after_extraction_keeps_its_quotes_in_the_report(tmp_path):
    from storypipe.core.jsonio import write_model
    from storypipe.core.models import Story

    store = fx.build_root(tmp_path)
    path = store.story_dir(fx.story_id(2)) / "story.json"
    write_model(path, read_model(path, Story).advance("failed", note="stage failed: disk full"))
    chosen, no_consent, unfinished = report.choose_stories(store, None)
    assert fx.story_id(2) in {s.story_id for s in chosen} and (len(chosen), no_consent, unfinished) == (12, 1, 1)


def test_anonymised_text_is_kept_by_content_for_the_next_report(tmp_path, monkeypatch):
    from storypipe.core.jsonio import write_model
    from storypipe.core.models import Story
    from storypipe.tasks.common import anonymise

    store = fx.build_root(tmp_path)
    settings = load_settings(store.root)
    first = report.write_report(store, settings)
    md = (first.folder / "report.md").read_text()
    cached = list((store.root / ".storypipe" / "anonymised").glob("*.json"))
    assert len(cached) == 1  # story 12, the one anonymised story

    def must_not_run(*args, **kwargs):
        raise AssertionError("anonymised again although nothing changed")

    monkeypatch.setattr(anonymise, "anonymise", must_not_run)
    report.write_report(store, settings)
    assert (first.folder / "report.md").read_text() == md
    # A name added to the sidecar changes what must be hidden: the story is anonymised again.
    path = store.story_dir(fx.story_id(12)) / "story.json"
    story = read_model(path, Story)
    story.metadata.names.append("table")
    write_model(path, story)
    with pytest.raises(AssertionError, match="anonymised again"):
        report.write_report(store, settings)


def test_an_empty_root_gives_a_report_that_says_so(tmp_path):
    store = Store(tmp_path).ensure()
    written = report.write_report(store, load_settings(tmp_path))
    md = (written.folder / "report.md").read_text()
    assert written.stories == 0 and "No stories can be reported yet" in md and "No stories yet." in md


def test_the_command_with_stories_title_and_pdf(tmp_path):
    store = fx.build_root(tmp_path)
    runner = CliRunner(env={"COLUMNS": "200"})
    wanted = f"{fx.story_id(1)},{fx.story_id(12)}"
    result = runner.invoke(app, ["report", "--root", str(tmp_path), "--stories", wanted, "--stories", fx.story_id(13),
                                 "--title", "What we heard", "--pdf"])
    assert result.exit_code == 0, result.output
    folder = next(store.reports.iterdir())
    md = (folder / "report.md").read_text()
    assert md.startswith("# What we heard\n") and "**2 stories**" in md
    assert "1 more story is not included, because the storyteller did not agree" in md  # story 13 was asked for
    assert "Story of Dev" not in md
    assert (folder / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert "Report of 2 stories" in result.output and "report.pdf" in result.output

    unknown = runner.invoke(app, ["report", "--root", str(tmp_path), "--stories", "no-such-story"])
    assert unknown.exit_code == 2 and "unknown story: no-such-story" in unknown.output

    (folder / "report.md").write_text("# Our report\n\nRewritten by us.\n")
    rendered = runner.invoke(app, ["report", "--root", str(tmp_path), "--render", str(folder / "report.md")])
    assert rendered.exit_code == 0, rendered.output
    assert "<title>Our report</title>" in (folder / "report.html").read_text()


def test_consent_for_the_report_follows_transcript_when_unset():
    from storypipe.core.models import Consent, Sidecar
    from storypipe.tasks.common import consent

    assert Consent().answers()["report"] is True and Consent(transcript=False).answers()["report"] is False
    assert Consent(transcript=True, report=False).answers()["report"] is False
    assert consent.report(Consent()) is None
    assert consent.report(Consent(transcript=True, report=False)).startswith("not in the report")
    assert consent.report(Consent(transcript=False, report=True)).startswith("not in the report")
    with pytest.raises(ValueError):
        Sidecar.model_validate({"consent": {"report": "maybe"}})
    # A sidecar over the default: an unanswered `report` follows the final transcript answer.
    from storypipe.tasks.ingest import consent_for

    settings = load_settings(None)
    settings.ingest.default_consent = Consent(transcript=False)
    merged = consent_for(Sidecar.model_validate({"consent": {"transcript": True}}), settings)
    assert consent.report(merged) is None and "report" not in merged.model_dump()  # story.json as before
    merged = consent_for(Sidecar.model_validate({"consent": {"transcript": True, "report": False}}), settings)
    assert consent.report(merged) and merged.model_dump()["report"] is False
    assert Path(report.__file__).with_name("templates").joinpath("report.md.j2").is_file()
