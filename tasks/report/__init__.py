"""The findings report: a first draft of the project's written report, from the stories themselves.

`storypipe report` writes `reports/<date>/report.md` (the text a team edits), `report.html` (one
self-contained file, charts inside) and the charts as PNG; with `--pdf`, a PDF too (weasyprint).
An edited report.md is turned into HTML again with `storypipe report --render FILE`.

What goes in, and what stays out:
- Only stories whose consent allows their quotes in the report (`consent.report`) and which have
  been through quote extraction. The others are counted, never shown.
- Only quotes a person approved; themes count every quote not rejected.
- Anonymised stories: the quote's words come from the redacted transcript, titles and key phrases
  are redacted, and the credit is "a storyteller".
- Groups of storytellers smaller than `report.min_group` are shown as "fewer than 5". For a
  one-answer question (age range, gender) a second group is hidden with a lone small one, so it
  cannot be worked out from the total.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import mimetypes
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markdown_it import MarkdownIt
from slugify import slugify

from storypipe.core import timefmt
from storypipe.core.jsonio import BadFileError, atomic_write_bytes, atomic_write_text
from storypipe.core.store import REPORT_HTML, REPORT_MD, REPORT_PDF, Store
from storypipe.core.models import KeyphrasesFile, Quote, QuotesFile, Story
from storypipe.core.settings import ReportSettings, Settings
from storypipe.tasks.report import charts
from storypipe.tasks.common import consent
from storypipe.tasks.common.anonymise import Anonymised, anonymise_text_cached, public_quote_text, redact_text
from storypipe.tasks.common.themes import Codebook, codebook_path, load_codebook

log = logging.getLogger("storypipe")

TEMPLATES = Path(__file__).parent / "templates"
CHART_PREFIX = "chart-"  # the charts sit beside report.md, as the contract lists them
# Beside report.md: the digest of the draft as written, to tell a team's edits from our own text.
GENERATED_DIGEST = ".report.md.sha256"
UNNAMED = "a storyteller"
ANONYMISED_CACHE = "anonymised"  # in the root's state folder: redacted transcripts, by content
NOT_STATED = "not stated"
REPORTABLE_STATES = ("extracted", "staged", "published")
PLACEHOLDER = re.compile(r"\[[A-Z]+\]")  # a redacted name, as tasks/anonymise.py writes it


class ReportError(Exception):
    """A report cannot be made as asked (an unknown story, a missing file): exit 2, in words."""


# ---- the content ----


@dataclass
class ReportQuote:
    text: str
    credit: str
    story_no: int
    score: float


@dataclass
class ThemeSection:
    id: str
    name: str
    description: str
    stories: int = 0  # stories with a quote tagged with it (not rejected)
    quotes: int = 0
    approved: int = 0
    shown: list[ReportQuote] = field(default_factory=list)

    @property
    def more(self) -> int:
        return self.approved - len(self.shown)


@dataclass
class Breakdown:
    """Storytellers by one sidecar field, as chart bars and table rows."""

    key: str
    title: str
    groups: list[charts.Group]
    several: bool  # a storyteller can be in several groups
    chart: str = ""  # the PNG's path, relative to the report folder
    alt: str = ""

    @property
    def heading(self) -> str:
        """The table's first column: "Sector" for sectors, "Age range" for age_range."""
        word = self.key.replace("_", " ").removesuffix("s") if self.several else self.key.replace("_", " ")
        return word[:1].upper() + word[1:]


@dataclass
class StoryEntry:
    number: int
    story_id: str
    title: str
    credit: str
    anonymised: bool
    duration_s: float
    recorded_on: dt.date | None
    themes: list[str]
    approved: int
    full_story: str | None = None  # link to the staged package, relative to the report folder
    clips: list[tuple[str, str]] = field(default_factory=list)  # (label, YouTube link)
    clips_unpublished: int = 0


@dataclass
class Report:
    title: str
    date: dt.date
    project: str
    purpose: str
    method: str
    stories: list[StoryEntry]
    hours: float
    first_recorded: dt.date | None
    last_recorded: dt.date | None
    approved_quotes: int
    left_out_consent: int
    left_out_unfinished: int
    breakdowns: list[Breakdown]
    themes: list[ThemeSection]
    untagged: ThemeSection  # approved quotes without a theme, so no approved quote is lost
    unheard: list[str]
    challenges: ThemeSection | None
    value: list[tuple[str, ThemeSection]]
    keyphrases: list[tuple[str, int, int]]  # (phrase, stories, mentions)
    min_group: int


@dataclass
class _Loaded:
    """One story as the report sees it: names already hidden when it is anonymised."""

    story: Story
    quotes: list[Quote]
    keyphrases: KeyphrasesFile | None
    hidden: Anonymised | None
    number: int = 0

    @property
    def credit(self) -> str:
        return UNNAMED if self.hidden else (self.story.metadata.storyteller or "").strip() or UNNAMED


def choose_stories(store: Store, wanted: list[str] | None) -> tuple[list[Story], int, int]:
    """(stories for the report, left out by consent, left out as not yet extracted)."""
    stories = store.stories()
    if wanted:
        known = {s.story_id for s in stories}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ReportError(f"unknown stor{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)} "
                              f"(`storypipe status` lists them)")
        stories = [s for s in stories if s.story_id in set(wanted)]
    allowed = [s for s in stories if consent.report(s) is None]
    # A story that failed after extraction (at staging, say) still has its quotes.
    ready = [s for s in allowed if s.reached() in REPORTABLE_STATES]
    return ready, len(stories) - len(allowed), len(allowed) - len(ready)


def _load(store: Store, story: Story, settings: Settings) -> _Loaded:
    sid = story.story_id
    try:
        quotes = (store.read_quotes(sid, missing_ok=True) or QuotesFile(story_id=sid)).quotes
        phrases = store.read_keyphrases(sid, missing_ok=True)
        hidden = None
        if consent.anonymise(story):
            cache = settings.run.state_folder(store.root) / ANONYMISED_CACHE
            hidden = anonymise_text_cached(store.transcript_path(sid), story.metadata, settings, cache)
    except BadFileError as e:
        raise ReportError(f"{story.story_id}: {e}") from e
    return _Loaded(story, [q for q in quotes if q.status != "rejected"], phrases, hidden)


def _order(loaded: list[_Loaded]) -> list[_Loaded]:
    """Stories numbered in the order they were recorded (then by id), as the appendix lists them."""
    loaded = sorted(loaded, key=lambda s: (s.story.metadata.recorded_on or dt.date.max, s.story.story_id))
    for i, s in enumerate(loaded, 1):
        s.number = i
    return loaded


# ---- who shared their stories ----


def _values(story: Story, key: str) -> list[str]:
    meta = story.metadata
    raw = getattr(meta, key) if key in ("sectors", "roles") else meta.demographics.get(key)
    items = raw if isinstance(raw, list) else [] if raw is None else [raw]
    return [" ".join(str(v).split()) for v in items if str(v).strip()]


def suppress(counts: dict[str, int], total: int, min_group: int, several: bool) -> dict[str, int | None]:
    """Counts with every group under min_group hidden (None). For a one-answer question, a lone
    hidden group could be worked out from the total, so the next smallest is hidden with it."""
    out: dict[str, int | None] = {k: (v if v >= min_group else None) for k, v in counts.items()}
    hidden = [k for k, v in out.items() if v is None]
    if not several and len(hidden) == 1 and sum(counts.values()) == total:
        shown = sorted((k for k, v in out.items() if v is not None), key=lambda k: (counts[k], k))
        if shown:
            out[shown[0]] = None
    return out


def breakdown(stories: list[Story], key: str, title: str, several: bool, min_group: int) -> Breakdown:
    """Storytellers by one field: groups largest first, "not stated" last, with shares of all stories."""
    counts: dict[str, int] = defaultdict(int)
    spelling: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for story in stories:
        values = _values(story, key)
        for group in {v.casefold() for v in values}:
            counts[group] += 1
        for v in values:
            spelling[v.casefold()][v] += 1
        if not values:
            counts[NOT_STATED] += 1
    shown = suppress(dict(counts), len(stories), min_group, several)
    order = sorted(counts, key=lambda g: (g == NOT_STATED, shown[g] is None, -counts[g], g))
    groups = [
        charts.Group(
            label=NOT_STATED if g == NOT_STATED else max(spelling[g].items(), key=lambda kv: (kv[1], kv[0]))[0],
            count=shown[g],
            share=None if shown[g] is None else shown[g] / len(stories),
            not_stated=g == NOT_STATED,
            threshold=min_group,
        )
        for g in order
    ]
    return Breakdown(key, title, groups, several)


def _label(key: str) -> str:
    return key.replace("_", " ")


def breakdowns(stories: list[Story], cfg: ReportSettings) -> list[Breakdown]:
    out = [breakdown(stories, "sectors", "Stories by sector", True, cfg.min_group),
           breakdown(stories, "roles", "Stories by role", True, cfg.min_group)]
    out += [breakdown(stories, key, f"Stories by {_label(key)}", False, cfg.min_group) for key in cfg.demographics]
    return out


# ---- themes, quotes and key phrases ----


def _quote(s: _Loaded, q: Quote, settings: Settings) -> ReportQuote:
    text = public_quote_text(q, s.story, settings, s.hidden)
    return ReportQuote(text=text, credit=s.credit, story_no=s.number, score=q.score)


UNTAGGED = ""  # the "theme" of approved quotes nobody has given a theme yet


def theme_section(theme_id: str, book: Codebook, loaded: list[_Loaded], settings: Settings) -> ThemeSection:
    """One theme: its stories and quotes, and its approved quotes, best first, one story at a time
    (so one talkative storyteller does not fill the section). UNTAGGED: the quotes without a theme."""
    theme = next((t for t in book.themes if t.id == theme_id), None)
    section = ThemeSection(theme_id, theme.name if theme else theme_id, theme.description if theme else "")
    per_story: list[list[tuple[_Loaded, Quote]]] = []
    for s in loaded:
        tagged = [q for q in s.quotes if (theme_id in q.themes if theme_id else not q.themes)]
        if tagged:
            section.stories += 1
            section.quotes += len(tagged)
        approved = sorted((q for q in tagged if q.status == "approved"), key=lambda q: -q.score)
        section.approved += len(approved)
        if approved:
            per_story.append([(s, q) for q in approved])
    per_story.sort(key=lambda pairs: -pairs[0][1].score)
    limit = settings.report.quotes_per_theme or section.approved
    rounds = max((len(p) for p in per_story), default=0)
    picked = [pairs[r] for r in range(rounds) for pairs in per_story if r < len(pairs)]
    section.shown = [q for q in (_quote(s, q, settings) for s, q in picked[:limit]) if q.text]
    return section


def keyphrases(loaded: list[_Loaded], settings: Settings) -> list[tuple[str, int, int]]:
    """Key phrases across stories: (phrase, stories it came up in, mentions), the most shared first.
    An anonymised story's phrases are redacted; a phrase that was only a name is dropped."""
    stories: dict[str, set[str]] = defaultdict(set)
    mentions: dict[str, int] = defaultdict(int)
    score: dict[str, float] = defaultdict(float)
    spelling: dict[str, str] = {}
    for s in loaded:
        if not s.keyphrases:
            continue
        found = s.keyphrases.keyphrases
        texts = [k.text for k in found]
        if s.hidden:
            texts = redact_text(texts, s.story.metadata, settings, s.hidden, any_case=True)
        for k, text in zip(found, texts):
            if PLACEHOLDER.search(text):
                continue
            key = " ".join(text.casefold().split())
            spelling.setdefault(key, " ".join(text.split()))
            stories[key].add(s.story.story_id)
            mentions[key] += k.count
            score[key] += k.score
    ranked = sorted(stories, key=lambda k: (-len(stories[k]), -mentions[k], -score[k], k))
    return [(spelling[k], len(stories[k]), mentions[k]) for k in ranked[: settings.report.max_keyphrases]]


# ---- the appendix ----


def _clip_links(store: Store) -> dict[str, tuple[list[tuple[str, str]], int]]:
    out: dict[str, tuple[list[tuple[str, str]], int]] = defaultdict(lambda: ([], 0))
    for batch in store.batches():
        for clip in batch.clips:
            links, unpublished = out[clip.story_id]
            if clip.published:
                links.append((f"clip {len(links) + 1}", f"https://youtu.be/{clip.published.video_id}"))
            else:
                unpublished += 1
            out[clip.story_id] = (links, unpublished)
    return out


def story_entries(store: Store, loaded: list[_Loaded], book: Codebook, settings: Settings,
                  report_dir: Path) -> list[StoryEntry]:
    clips = _clip_links(store)
    out = []
    for s in loaded:
        story = s.story
        title = story.metadata.title or f"Story {s.number}"
        if s.hidden:
            (title,) = redact_text([title], story.metadata, settings, s.hidden)
        approved = [q for q in s.quotes if q.status == "approved"]
        themes: list[str] = []
        for q in sorted(s.quotes, key=lambda q: (q.status != "approved", -q.score)):
            themes += [t for t in q.themes if t not in themes]
        staged = store.staging / story.story_id / "story.mp3"
        links, unpublished = clips.get(story.story_id, ([], 0))
        out.append(StoryEntry(
            number=s.number, story_id=story.story_id, title=title, credit=s.credit, anonymised=bool(s.hidden),
            duration_s=story.source.duration_s, recorded_on=story.metadata.recorded_on,
            themes=[book.name_of(t) for t in themes], approved=len(approved),
            full_story=_relative(staged, report_dir) if staged.is_file() else None,
            clips=links, clips_unpublished=unpublished,
        ))
    return out


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


# ---- putting it together ----


def build(store: Store, settings: Settings, *, wanted: list[str] | None = None, title: str | None = None,
          date: dt.date | None = None) -> Report:
    """Everything the report says, from the stories under the root (no files written)."""
    date = date or dt.date.today()
    cfg = settings.report
    chosen, no_consent, unfinished = choose_stories(store, wanted)
    book = load_codebook(codebook_path(store.root, settings.extract.themes_file))
    loaded = _order([_load(store, s, settings) for s in chosen])
    stories = [s.story for s in loaded]

    special = {cfg.challenges_theme, *cfg.value_themes.values()}
    sections = [theme_section(t.id, book, loaded, settings) for t in book.themes if t.id not in special]
    heard = sorted((t for t in sections if t.stories), key=lambda t: (-t.stories, -t.quotes))
    known = {t.id for t in book.themes}
    recorded = [s.metadata.recorded_on for s in stories if s.metadata.recorded_on]
    return Report(
        title=title or cfg.title or f"Findings: {settings.project.name}",
        date=date,
        project=settings.project.name,
        purpose=cfg.purpose.strip(),
        method=cfg.method.strip(),
        stories=story_entries(store, loaded, book, settings, store.report_dir(date.isoformat())),
        hours=sum(s.source.duration_s for s in stories) / 3600,
        first_recorded=min(recorded, default=None),
        last_recorded=max(recorded, default=None),
        approved_quotes=sum(q.status == "approved" for s in loaded for q in s.quotes),
        left_out_consent=no_consent,
        left_out_unfinished=unfinished,
        breakdowns=breakdowns(stories, cfg),
        themes=heard,
        untagged=theme_section(UNTAGGED, book, loaded, settings),
        unheard=[t.name for t in sections if not t.stories],
        challenges=theme_section(cfg.challenges_theme, book, loaded, settings) if cfg.challenges_theme in known else None,
        value=[(who, theme_section(tid, book, loaded, settings)) for who, tid in cfg.value_themes.items() if tid in known],
        keyphrases=keyphrases(loaded, settings),
        min_group=cfg.min_group,
    )


MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def md_escape(text: object) -> str:
    """Storytellers' words as plain text in Markdown: no accidental emphasis, links, tables or HTML."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _day(date: dt.date | None) -> str:
    return f"{date.day} {date:%B %Y}" if date else ""


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters.update(md=md_escape, duration=timefmt.duration, hours=lambda h: timefmt.hours_minutes(h * 3600), day=_day)
    return env


def markdown(report: Report) -> str:
    text = _environment().get_template("report.md.j2").render(r=report)
    return re.sub(r"\n{3,}", "\n\n", text)


def html(md_text: str, folder: Path, title: str) -> str:
    """The report as one HTML file: Markdown rendered (tables on), images inside as data URIs, so
    the file can be mailed or uploaded alone."""
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(md_text)

    def inline(match: re.Match) -> str:
        src = match.group(2)
        path = folder / src
        if re.match(r"^[a-z]+:", src) or not path.is_file():
            return match.group(0)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return f'{match.group(1)}data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"'

    body = re.sub(r'(<img[^>]*?\bsrc=")([^"]+)"', inline, body)
    # Sections get ids as GitHub and most Markdown tools make them, so "#themes" works everywhere.
    body = re.sub(r"<h2>(.*?)</h2>", lambda m: f'<h2 id="{slugify(re.sub("<[^>]+>", "", m.group(1)))}">{m.group(1)}</h2>',
                  body)
    return _environment().get_template("report.html.j2").render(title=title, body=body)


def _title_of(md_text: str) -> str:
    match = re.search(r"^# (.+)$", md_text, re.M)
    return match.group(1).replace("\\", "").strip() if match else "Findings report"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Written:
    folder: Path
    files: list[Path]
    stories: int
    notes: list[str] = field(default_factory=list)  # who was left out, and why, in words
    kept_edits: Path | None = None  # where a team's edited report.md was moved, to keep it


def keep_edits(folder: Path) -> Path | None:
    """A report.md a person edited since we wrote it is moved aside (never overwritten)."""
    md, digest = folder / REPORT_MD, folder / GENERATED_DIGEST
    if not md.is_file():
        return None
    written = digest.read_text("utf-8").strip() if digest.is_file() else ""
    if _digest(md.read_text("utf-8")) == written:
        return None
    stamp = dt.datetime.now().strftime("%H%M%S")
    kept = folder / f"report-edited-{stamp}.md"
    md.rename(kept)
    return kept


def render_files(md_path: Path, pdf: bool = False) -> list[Path]:
    """report.html (and report.pdf) beside a report.md, from its current text: after a team edits it."""
    md_path = Path(md_path)
    try:
        md_text = md_path.read_text("utf-8")
    except OSError as e:
        raise ReportError(f"{md_path}: cannot read it ({e.strerror or e})") from e
    folder = md_path.parent
    page = html(md_text, folder, _title_of(md_text))
    out = [atomic_write_text(folder / REPORT_HTML, page)]
    if pdf:
        out.append(write_pdf(page, folder))
    return out


def write_pdf(page: str, folder: Path) -> Path:
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as e:  # OSError: the Pango library is missing
        raise ReportError(f"cannot write a PDF: weasyprint is not usable here ({e})") from e
    return atomic_write_bytes(folder / REPORT_PDF, HTML(string=page, base_url=str(folder)).write_pdf())


def write_report(store: Store, settings: Settings, *, wanted: list[str] | None = None,
                 title: str | None = None, pdf: bool = False, date: dt.date | None = None) -> Written:
    """Build the report and write it to reports/<date>/: charts, report.md, report.html (and PDF)."""
    report = build(store, settings, wanted=wanted, title=title, date=date)
    folder = store.report_dir(report.date.isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    cfg = settings.report
    files = []
    for b in report.breakdowns:
        png = charts.bar_chart(b.title, b.groups, cfg.chart_width_in, cfg.chart_dpi)
        path = atomic_write_bytes(folder / f"{CHART_PREFIX}{b.key.replace('_', '-')}.png", png)
        b.chart, b.alt = _relative(path, folder), charts.alt_text(b.title, b.groups)
        files.append(path)
    md_text = markdown(report)
    kept = keep_edits(folder)
    files.insert(0, atomic_write_text(folder / REPORT_MD, md_text))
    atomic_write_text(folder / GENERATED_DIGEST, _digest(md_text) + "\n")
    files[1:1] = render_files(folder / REPORT_MD, pdf=pdf)
    notes = []
    if report.left_out_consent:
        notes.append(f"{report.left_out_consent} left out: no consent to quotes in the report")
    if report.left_out_unfinished:
        notes.append(f"{report.left_out_unfinished} left out: still being processed")
    if report.stories and not report.approved_quotes:
        notes.append("no quotes approved yet: approve them in `storypipe review`, then make the report again")
    log.debug("Report of %d stories written to %s", len(report.stories), folder)
    return Written(folder, files, len(report.stories), notes, kept)
