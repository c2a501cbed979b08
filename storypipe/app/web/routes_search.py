"""Search across stories: the passages of every story that mean what was typed, each with who said
it, when, and a player for that moment (tasks/search does the searching)."""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from storypipe.app import review
from storypipe.app.web.common import StoreDep, render
from storypipe.core.settings import load_settings
from storypipe.core.store import Store
from storypipe.tasks import search
from storypipe.tasks.common import meaning

router = APIRouter()
log = logging.getLogger("storypipe")
_LOCK = threading.Lock()  # one search at a time: they share the app's index in memory


def find(request: Request, store: Store, q: str, limit: int | None) -> search.Found:
    """A search with the app's own IndexCache, so only index files that changed are read again.

    Stories new or changed since they were indexed (say, extracted before search existed) are
    indexed in the background, a few seconds each, so the page answers at once from what is ready;
    the page says so, and the next search includes them."""
    state = request.app.state
    with _LOCK:
        if getattr(state, "search_cache", None) is None:
            state.search_cache = search.IndexCache()
        found = search.search(q, store, load_settings(store.root), limit, cache=state.search_cache, index_now=False)
        indexing = getattr(state, "search_indexing", None)
        if found.pending and (indexing is None or not indexing.is_alive()):
            state.search_indexing = threading.Thread(target=_index_pending, args=(store,), daemon=True,
                                                     name="search-index")
            state.search_indexing.start()
    return found


def _index_pending(store: Store) -> None:
    """Bring the whole index up to date (its own cache: the searches read the files it writes)."""
    try:
        search.refresh(store, load_settings(store.root))
    except Exception:  # a background thread has no one to answer: the next search tries again
        log.exception("Making the stories searchable stopped")


def play_url(hit: search.Hit) -> str:
    """The story's audio from the hit's first word to its last (a media fragment: the browser seeks)."""
    return f"/stories/{hit.story_id}/audio#t={hit.start:.2f},{hit.end:.2f}"


def page_url(hit: search.Hit) -> str:
    """The story's page, opened at the segment the hit starts in."""
    return f"/stories/{hit.story_id}#seg-{hit.segment}"


def _warm_up(store: Store) -> None:
    """Load the sentence-meaning model (ten seconds or so, once) while the person types."""
    try:
        meaning.embed([], load_settings(store.root).meaning)
    except Exception:  # a background thread has no one to answer: the search itself will say what is wrong
        log.exception("Loading the sentence-meaning model for search failed")


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, store: StoreDep, q: str = "", limit: int | None = None):
    found, error = None, None
    state = request.app.state
    if not q.strip() and getattr(state, "search_warm_up", None) is None:
        state.search_warm_up = threading.Thread(target=_warm_up, args=(store,), daemon=True, name="search-warm-up")
        state.search_warm_up.start()
    if q.strip():
        try:
            found = find(request, store, q, limit)
        except search.SearchError as e:
            error = str(e)
    hits = [{"hit": h, "play": play_url(h), "page": page_url(h)} for h in (found.hits if found else [])]
    return render(request, "search.html", {"q": q, "found": found, "hits": hits, "error": error})


@router.get("/api/search")
def api_search(request: Request, store: StoreDep, q: str = "", limit: int | None = None):
    """The same JSON as `storypipe search --json`, each hit with its title, time and links besides."""
    try:
        found = find(request, store, q, limit)
    except search.SearchError as e:
        raise review.ReviewError(str(e)) from None
    return {"query": found.query,
            "hits": [{**h.json(), "title": h.title, "time": h.time, "play": play_url(h), "page": page_url(h)}
                     for h in found.hits]}
