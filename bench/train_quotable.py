"""Fit the quotable head (tasks/extract/quotable.py) and write config/quotable.json.

Training data: the scripts of annotated interviews as word-timed transcripts (no audio, so the
labels are exact): the tune split of bench/interviews and every interview of the older
bench/quotes. The test and final splits of bench/interviews are never read. Every window the
extractor would consider is an example; it is positive when it finds a workshop quote by the
evaluation's own rule (quotes_eval.COVER and PURITY). A logistic regression over the window's
sentence embedding, balanced between the classes, is the head.

    .venv/bin/python bench/train_quotable.py            # writes config/quotable.json
    .venv/bin/python bench/train_quotable.py --check    # leave-one-interview-out recall@10 on the tune split
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench.quotes_eval as qe  # noqa: E402
from storypipe.core.jsonio import write_model  # noqa: E402
from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.tasks import extract as ex  # noqa: E402
from storypipe.tasks.common import meaning  # noqa: E402
from storypipe.tasks.common.nlp import load_nlp, speaker_turns  # noqa: E402
from storypipe.tasks.common.theme_meaning import codebook_meaning  # noqa: E402
from storypipe.tasks.common.themes import PROJECT_THEMES, tagger_for  # noqa: E402
from storypipe.tasks.extract.quotable import QuotableHead, quotable  # noqa: E402

C = 0.3  # chosen leave-one-interview-out on the tune split (0.1 and 1.0 did no better)
SETS = [(REPO / "bench" / "interviews", "tune"), (REPO / "bench" / "quotes", "all")]


def examples(settings):
    """Per interview: its windows (full length and shorter), key phrases, gold quotes, labels."""
    cfg = settings.extract
    nlp = load_nlp(cfg.spacy_model)
    tagger = tagger_for(nlp, PROJECT_THEMES)
    themes = ex.theme_vectors(tagger.book, settings.meaning)
    coder = codebook_meaning(tagger.book, settings.meaning)
    out = []
    for folder, split in SETS:
        qe.use_data(folder)
        for g in qe.load_gold(split):
            transcript, _ = qe.text_transcript(g)
            turns = [(spk, w) for spk, w in speaker_turns(transcript) if spk != ex.INTERVIEWER]
            sents = [ex._sentences_of_turn(nlp, tagger, spk, w, cfg) for spk, w in turns]
            flat = [s for ss in sents for s in ss]
            for s, v in zip(flat, meaning.embed([s.text for s in flat], settings.meaning)):
                s.vector = v
            _, keyed = ex.keyphrases_of(list(nlp.pipe(" ".join(s.text for s in ss) for ss in sents if ss)), cfg)
            full = ex.score_windows(sents, keyed, cfg, tagger, themes, coder=coder)
            short = ex.score_windows(sents, keyed, cfg, tagger, themes, shorter=True, coder=coder)
            labels = [finds(g, " ".join(s.text for s in x.window)) for x in full]
            out.append({"set": f"{folder.name}:{split}", "gold": g, "full": full, "short": short, "keyed": keyed,
                        "labels": labels})
    return out


def finds(g, text: str) -> bool:
    return any(finds_quote(q["text"], text) for q in g.quotes)


def finds_quote(gold: str, text: str) -> bool:
    cover, purity = qe.overlap(gold, text)
    return cover >= qe.COVER and purity >= qe.PURITY


def fit(items) -> LogisticRegression:
    x = np.stack([ex.window_vector(w.window) for it in items for w in it["full"]])
    y = np.array([lab for it in items for lab in it["labels"]])
    return LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(x, y)


def head_of(model: LogisticRegression, items, settings) -> QuotableHead:
    y = [lab for it in items for lab in it["labels"]]
    return QuotableHead(embedding_model=settings.meaning.sha256, bias=float(model.intercept_[0]),
                        weights=[round(float(w), 6) for w in model.coef_[0]],
                        trained_on=sorted({it["set"] for it in items}), regularisation=C,
                        positives=sum(y), negatives=len(y) - sum(y))


def recall(item, head: QuotableHead | None, settings) -> int:
    """Gold quotes found in the top 10 when the windows are scored with this head."""
    cfg = settings.extract

    def rescore(windows):
        windows = [copy.copy(w) for w in windows]
        if windows and head is not None:
            for w, q in zip(windows, quotable(np.stack([ex.window_vector(x.window) for x in windows]), head)):
                w.parts = {**w.parts, "quotable": round(float(q), 3)}
        for w in windows:
            w.parts = {k: v for k, v in w.parts.items() if head is not None or k != "quotable"}
            w.score = ex.weighted_score(w.parts, cfg)
        return sorted(windows, key=lambda w: -w.score)

    top = ex.candidate_quotes(rescore(item["full"]), item["keyed"], cfg, more=rescore(item["short"]))[: qe.TOP]
    return sum(any(finds_quote(q["text"], c.text) for c in top) for q in item["gold"].quotes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="leave-one-interview-out recall@10 on the tune split")
    ap.add_argument("--out", type=Path, default=REPO / "config" / "quotable.json")
    args = ap.parse_args(argv)
    settings = load_settings()
    items = examples(settings)
    if args.check:
        tune = [i for i, it in enumerate(items) if it["set"].endswith(":tune")]
        gold = sum(len(items[i]["gold"].quotes) for i in tune)
        without = sum(recall(items[i], None, settings) for i in tune)
        loo = sum(recall(items[i], head_of(fit(items[:i] + items[i + 1:]), items, settings), settings) for i in tune)
        print(f"tune split, script text, recall@10: without the head {without / gold:.3f}, "
              f"with a head fitted without that interview {loo / gold:.3f} ({gold} gold quotes)")
        return 0
    head = head_of(fit(items), items, settings)
    write_model(args.out, head)
    print(f"wrote {args.out}: {head.positives} picked and {head.negatives} other windows from {', '.join(head.trained_on)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
