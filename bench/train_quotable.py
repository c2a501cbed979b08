"""Teach the quotable model (tasks/extract/quotable.py) and write config/quotable.safetensors.

Training data: the scripts of annotated interviews as word-timed transcripts (no audio, so the labels
are exact): the tune and train splits of bench/interviews and every interview of bench/quotes. The
test and final splits are never read. Every window the extractor would consider is an example,
positive when it finds a workshop quote by the evaluation's own rule (quotes_eval.COVER and PURITY),
with three negatives drawn for each positive. The meaning model's top LAYERS layers and a linear
head over its mean-pooled output learn for EPOCHS passes; everything else stays as shipped.

    .venv/bin/python bench/train_quotable.py                 # writes config/quotable.safetensors
    .venv/bin/python bench/train_quotable.py --hold-out wj   # teaches without writer wj, scores recall@10 on wj

Then put the printed SHA-256 in config/pipeline.toml ([extract] quotable_sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench.quotes_eval as qe  # noqa: E402
from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.tasks import extract as ex  # noqa: E402
from storypipe.tasks.common import meaning  # noqa: E402
from storypipe.tasks.common.nlp import load_nlp, speaker_turns  # noqa: E402
from storypipe.tasks.common.themes import PROJECT_THEMES, tagger_for  # noqa: E402
from storypipe.tasks.common.theme_meaning import codebook_meaning  # noqa: E402

# Chosen by teaching without one writer and scoring that writer (bench/interviews/README.md).
LAYERS, EPOCHS, LEARNING_RATE, BATCH, NEGATIVES, SEED = 2, 1, 3e-5, 32, 3, 0
SETS = [(REPO / "bench" / "interviews", "tune"), (REPO / "bench" / "interviews", "train"), (REPO / "bench" / "quotes", "all")]


def writer_of(name: str) -> str:
    """bench/interviews names start with the writer ("wh-03-…"); bench/quotes has one writer."""
    return name[:2] if len(name) > 3 and name[0] == "w" and name[2] == "-" else "quotes"


def examples(settings) -> list[dict]:
    """Per interview: its windows (full length and shorter, as the extractor makes them), key phrases, gold."""
    cfg = settings.extract.model_copy(update={"quotable_model": ""})
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
            turns = ex.split_at_murmurs(ex.split_at_unheard(turns, *ex.unheard_limits(turns, cfg)), cfg.lexicon.murmurs)
            sents = [ex._sentences_of_turn(nlp, tagger, spk, w, cfg) for spk, w in turns]
            flat = [s for ss in sents for s in ss]
            for s, v in zip(flat, meaning.embed([s.text for s in flat], settings.meaning)):
                s.vector = v
            _, keyed = ex.keyphrases_of(list(nlp.pipe(" ".join(s.text for s in ss) for ss in sents if ss)), cfg)
            full = ex.score_windows(sents, keyed, cfg, tagger, themes, coder=coder)
            short = ex.score_windows(sents, keyed, cfg, tagger, themes, shorter=True, coder=coder)
            out.append({"writer": writer_of(g.name), "gold": g, "full": full, "short": short, "keyed": keyed,
                        "labels": [finds(g, text_of(w)) for w in full]})
    return out


def text_of(scored) -> str:
    return " ".join(s.text for s in scored.window)


def finds(g, text: str) -> bool:
    return any(qe.finds(q["text"], text) for q in g.quotes)


def teach(items: list[dict], settings):
    """The meaning model with its top LAYERS layers taught, and the head."""
    from transformers import AutoModel, AutoTokenizer

    random.seed(SEED)
    torch.manual_seed(SEED)
    folder = str(meaning.model_dir(settings.meaning))
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    enc = AutoModel.from_pretrained(folder, local_files_only=True)
    head = torch.nn.Linear(enc.config.hidden_size, 1)
    pos = [text_of(w) for it in items for w, lab in zip(it["full"], it["labels"]) if lab]
    neg = [text_of(w) for it in items for w, lab in zip(it["full"], it["labels"]) if not lab]
    random.shuffle(neg)
    data = [(t, 1.0) for t in pos] + [(t, 0.0) for t in neg[: NEGATIVES * len(pos)]]
    for p in enc.parameters():
        p.requires_grad = False
    for layer in enc.encoder.layer[-LAYERS:]:
        for p in layer.parameters():
            p.requires_grad = True
    params = [p for p in enc.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.01)
    loss_of = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(NEGATIVES)))
    enc.train()
    for epoch in range(EPOCHS):
        random.shuffle(data)
        started, total = time.monotonic(), 0.0
        for i in range(0, len(data), BATCH):
            batch = data[i: i + BATCH]
            tokens = tok([t for t, _ in batch], padding=True, truncation=True, max_length=settings.meaning.max_tokens,
                         return_tensors="pt")
            hidden = enc(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).float()
            logits = head((hidden * mask).sum(1) / mask.sum(1)).squeeze(-1)
            loss = loss_of(logits, torch.tensor([y for _, y in batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        print(f"epoch {epoch}: loss {total / len(data):.4f}, {len(data)} examples ({len(pos)} picked), "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    return enc, head, len(pos), min(len(neg), NEGATIVES * len(pos))


def save(path: Path, enc, head, items: list[dict], positives: int, negatives: int, settings) -> str:
    from safetensors.torch import save_file

    first = len(enc.encoder.layer) - LAYERS
    tensors = {f"encoder.{k}": v.detach().half().contiguous() for k, v in enc.state_dict().items()
               if any(k.startswith(f"encoder.layer.{i}.") for i in range(first, len(enc.encoder.layer)))}
    tensors["head.weight"] = head.weight.detach().half().contiguous()
    tensors["head.bias"] = head.bias.detach().half().contiguous()
    meta = {"base_sha256": settings.meaning.sha256, "layers": str(LAYERS), "epochs": str(EPOCHS),
            "learning_rate": str(LEARNING_RATE), "positives": str(positives), "negatives": str(negatives),
            "trained_on": json.dumps(sorted({it["writer"] for it in items})),
            "interviews": str(len(items))}
    save_file(tensors, str(path), metadata=meta)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recall(item: dict, quotable, settings, weight: float) -> tuple[int, int]:
    """Gold quotes found in the top 10, without the part and with it at this weight."""
    cfg = settings.extract
    found = []
    for use in (False, True):
        def rescore(windows):
            if use:
                p = quotable.probabilities([text_of(w) for w in windows])
            out = []
            for i, w in enumerate(windows):
                parts = {k: v for k, v in w.parts.items() if k != "quotable"}
                if use:
                    parts["quotable"] = float(p[i])
                weights = cfg.weights.model_copy(update={"quotable": weight if use else 0.0})
                out.append(ex.Scored(ex.weighted_score(parts, cfg.model_copy(update={"weights": weights})), w.window,
                                     parts, w.themes))
            return sorted(out, key=lambda x: -x.score)
        top = ex.candidate_quotes(rescore(item["full"]), item["keyed"], cfg, more=rescore(item["short"]))[: qe.TOP]
        found.append(sum(any(qe.finds(q["text"], c.text) for c in top) for q in item["gold"].quotes))
    return found[0], found[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hold-out", help="teach without these writers (comma-separated, e.g. wa,wb,wc for the tune "
                    "split) and score recall@10 on their interviews")
    ap.add_argument("--out", type=Path, default=REPO / "config" / "quotable.safetensors")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    settings = load_settings()
    items = examples(settings)
    if args.hold_out:
        from storypipe.tasks.extract.quotable import Quotable

        writers = set(args.hold_out.split(","))
        taught = [it for it in items if it["writer"] not in writers]
        held = [it for it in items if it["writer"] in writers]
        if not held:
            raise SystemExit(f"no interviews by writer {args.hold_out}")
        enc, head, _, _ = teach(taught, settings)
        enc.eval()
        head.eval()
        from transformers import AutoTokenizer

        # The taught model whole as the base, with no separate top: the same reading as the shipped split.
        model = Quotable(AutoTokenizer.from_pretrained(str(meaning.model_dir(settings.meaning))), enc,
                         torch.nn.ModuleList(), head, settings.meaning.max_tokens)
        gold = sum(len(it["gold"].quotes) for it in held)
        for weight in (settings.extract.weights.quotable, 7.5, 30.0):
            pairs = [recall(it, model, settings, weight) for it in held]
            print(f"writer {args.hold_out}, {len(held)} interviews, {gold} gold quotes: recall@10 without the part "
                  f"{sum(a for a, _ in pairs)}, with it at weight {weight} {sum(b for _, b in pairs)}")
        return 0
    enc, head, positives, negatives = teach(items, settings)
    digest = save(args.out, enc, head, items, positives, negatives, settings)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) from {len(items)} interviews; "
          f"SHA-256 {digest}: put it in [extract] quotable_sha256")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
