"""The project's vocabulary for the engine: built from config + sidecar names + codebook, given to every
batch and every 30 s window, and never written anywhere (tasks/transcribe/vocabulary.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from storypipe.core.jsonio import write_model
from storypipe.core.models import Metadata
from storypipe.tasks import transcribe
from storypipe.tasks.common import audio
from storypipe.tasks.common.themes import PROJECT_THEMES, load_codebook
from storypipe.tasks.transcribe import vocabulary
from storypipe.tasks.transcribe.engines import EngineResult
from tests.support import audio_fixtures as af
from tests.support.factories import make_story
from tests.unit.transcribe.test_transcribe import FakeEngine, speech_with_silence

RATE = 16000
NAMES = ["Ngozi Okafor", "Possil", "Northside Recovery Hub"]


def cfg_with(settings, **over):
    return settings.transcribe.model_copy(update=over)


def test_config_terms_come_first_then_names_then_codebook_each_once(settings):
    cfg = cfg_with(settings, vocabulary=["co-production", "Lived experience", "peer support"])
    vocab = vocabulary.build_vocabulary(cfg, ["Ngozi", "co-Production"], ["Lived experience", "Trust", "trust"])
    assert vocab.terms == ("co-production", "Lived experience", "peer support", "Ngozi", "Trust")
    assert vocab.counts == {"config": 3, "sidecar": 1, "codebook": 1}
    assert vocab.prompt == "Glossary: co-production, Lived experience, peer support, Ngozi, Trust."


def test_the_prompt_is_capped_by_terms_and_characters(settings):
    many = [f"term{i}" for i in range(50)]
    vocab = vocabulary.build_vocabulary(cfg_with(settings, vocabulary=many, vocabulary_max_terms=5), [], [])
    assert vocab.terms == tuple(many[:5]) and vocab.left_out == 45
    short = cfg_with(settings, vocabulary=["co-production", "a rather long phrase that will not fit", "peer support"],
                     vocabulary_max_chars=len("Glossary: co-production, peer support."))
    vocab = vocabulary.build_vocabulary(short, [], [])
    assert vocab.terms == ("co-production", "peer support") and len(vocab.prompt) <= short.vocabulary_max_chars


def test_shipped_vocabulary_fits_whispers_prompt(settings):
    """The shipped config with a long list of names stays far inside Whisper's 223 prompt tokens."""
    book = vocabulary.codebook_terms(load_codebook(PROJECT_THEMES), settings.transcribe.vocabulary_codebook)
    names = [f"Somebody Longnamedperson{i}" for i in range(40)]
    vocab = vocabulary.build_vocabulary(settings.transcribe, names, book)
    assert "co-production" in vocab.terms and len(vocab.prompt) <= settings.transcribe.vocabulary_max_chars
    tokenizer = pytest.importorskip("whisper.tokenizer").get_tokenizer(multilingual=False)
    assert len(tokenizer.encode(" " + vocab.prompt)) < 223


def test_nothing_to_say_means_no_prompt(settings):
    cfg = cfg_with(settings, vocabulary=[], vocabulary_codebook="none")
    vocab = vocabulary.build_vocabulary(cfg, [], [])
    assert vocab.prompt is None and vocab.describe() == "no vocabulary given to the engine"


def test_sidecar_names_only_when_the_story_has_them():
    assert vocabulary.sidecar_names(None) == []
    assert vocabulary.sidecar_names(Metadata()) == []
    meta = Metadata(storyteller="R.", interviewer="Sam", names=["Ngozi Okafor", "  Possil ", "J."])
    assert vocabulary.sidecar_names(meta) == ["Sam", "Ngozi Okafor", "Possil"]  # initials are not words to spell


def test_codebook_terms_names_descriptors_or_none():
    book = load_codebook(PROJECT_THEMES)
    names = vocabulary.codebook_terms(book, "names")
    assert "Sharing power" in names and "Co-learning" in names and len(names) == len(book.themes)
    described = vocabulary.codebook_terms(book, "descriptors")
    assert set(names) < set(described) and "having a voice" in described
    assert not any("(" in t for t in described) and "" not in described  # "(general difficulty)" is a note
    assert vocabulary.codebook_terms(book, "none") == []


def test_story_vocabulary_uses_the_roots_codebook_and_sidecar(tmp_path, settings):
    (tmp_path / "themes.toml").write_text(
        '[[themes]]\nid = "belonging"\nname = "Belonging"\n'
        '  [[themes.descriptors]]\n  text = "feeling at home"\n  cues = ["home"]\n')
    story = make_story(names=NAMES, storyteller="R.")
    vocab = vocabulary.story_vocabulary(story, tmp_path, settings, "en")
    assert "Belonging" in vocab.terms and "Sharing power" not in vocab.terms
    assert [t for t in vocab.terms if t in NAMES] == NAMES
    no_names = settings.model_copy(update={"transcribe": cfg_with(settings, vocabulary_sidecar_names=False)})
    assert not set(NAMES) & set(vocabulary.story_vocabulary(story, tmp_path, no_names, "en").terms)


def test_a_broken_codebook_leaves_its_terms_out_with_a_warning(tmp_path, settings, caplog):
    (tmp_path / "themes.toml").write_text("this is not toml [")
    with caplog.at_level(logging.WARNING, logger="storypipe"):
        vocab = vocabulary.story_vocabulary(make_story(), tmp_path, settings, None)
    assert "co-production" in vocab.terms and vocab.counts["codebook"] == 0
    assert "codebook" in caplog.text


def test_an_english_vocabulary_is_not_given_to_a_welsh_story(tmp_path, settings):
    story = make_story(names=NAMES)
    assert vocabulary.story_vocabulary(story, tmp_path, settings, "cy").prompt is None
    assert vocabulary.story_vocabulary(story, tmp_path, settings, "en-GB").prompt
    assert vocabulary.story_vocabulary(story, tmp_path, settings, None).prompt  # English-only model / detection


def test_every_batch_gets_the_same_prompt(settings, tmp_path):
    engine = FakeEngine()
    cfg = settings.model_copy(update={"transcribe": settings.transcribe.model_copy(
        update={"batch_s": 1.2, "parallel_min_batch_s": 0.5})})
    mono = speech_with_silence(tmp_path, 1.0, 1.0)
    transcribe.transcribe_speech(engine, mono, cfg, "en", "t", prompt="Glossary: co-production.")
    assert len(engine.prompts) >= 3 and set(engine.prompts) == {"Glossary: co-production."}


class _Recorder:
    """Stands in for the loaded model of an engine: records the keywords of each transcribe call."""

    def __init__(self):
        self.kwargs = []

    def transcribe(self, *args, **kwargs):
        self.kwargs.append(kwargs)
        info = type("Info", (), {"language": "en", "language_probability": 1.0})()
        return iter(()), info


def test_openai_whisper_carries_the_prompt_into_every_window(monkeypatch, settings):
    import whisper

    from storypipe.tasks.transcribe.engine_openai import OpenAIWhisperEngine

    seen = []
    monkeypatch.setattr(whisper, "transcribe", lambda model, audio, **kw: seen.append(kw) or {"segments": []})
    engine = object.__new__(OpenAIWhisperEngine)
    engine.settings, engine.multilingual, engine._whisper, engine.model = settings.transcribe, False, None, "tiny.en"
    engine.transcribe(np.zeros(RATE, dtype=np.float32), [(0.0, 1.0)], "en", prompt="Glossary: co-production.")
    engine.transcribe(np.zeros(RATE, dtype=np.float32), [(0.0, 1.0)], "en")
    assert seen[0]["initial_prompt"] == "Glossary: co-production." and seen[0]["carry_initial_prompt"] is True
    assert seen[1]["initial_prompt"] is None and seen[1]["carry_initial_prompt"] is False


def test_faster_whisper_gives_the_prompt_as_hotwords(settings):
    from storypipe.tasks.transcribe.engine_faster import FasterWhisperEngine

    engine = object.__new__(FasterWhisperEngine)
    engine.settings, engine.multilingual, engine._whisper = settings.transcribe, False, _Recorder()
    engine.transcribe(np.zeros(RATE, dtype=np.float32), [(0.0, 1.0)], "en", prompt="Glossary: co-production.")
    (kw,) = engine._whisper.kwargs
    assert kw["hotwords"] == "Glossary: co-production." and kw.get("initial_prompt") is None  # every window, not the first


def test_the_prompt_reaches_the_engine_and_is_never_written_or_logged(store, settings, monkeypatch, tmp_path, caplog):
    engine = FakeEngine()
    monkeypatch.setattr(transcribe, "get_engine", lambda cfg: engine)
    mono = speech_with_silence(tmp_path, 0.5, 0.5)
    story = make_story("s-12345678", "s.wav", names=NAMES, interviewer="Sam")
    write_model(store.story_dir(story.story_id) / "story.json", story)
    audio.write_wav(store.speech_wav(story.story_id), (mono * 32767).astype(np.int16), RATE)

    with caplog.at_level(logging.DEBUG):
        transcribe.transcribe_story(story.story_id, store, settings)

    (prompt,) = set(engine.prompts)
    assert prompt.startswith("Glossary: co-production") and all(n in prompt for n in NAMES)
    assert "vocabulary of" in caplog.text and not any(n in caplog.text for n in NAMES)
    for path in store.root.rglob("*"):  # story.json holds the sidecar's names, as it always did; no file holds the prompt
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            assert "Glossary" not in text and prompt not in text, path
    for name in ("transcript.json", "transcript.txt", "transcript.srt", "transcript.vtt"):
        assert "Northside Recovery Hub" not in (store.story_dir(story.story_id) / name).read_text("utf-8")


def test_the_cache_key_follows_the_vocabulary(tmp_path, settings):
    story = make_story("s-12345678", "s.wav")
    key = transcribe.cache_key(story, settings, tmp_path)
    named = make_story("s-12345678", "s.wav", names=["Ngozi"])
    assert transcribe.cache_key(named, settings, tmp_path) != key  # a sidecar name changes the prompt
    (tmp_path / "themes.toml").write_text(
        '[[themes]]\nid = "belonging"\nname = "Belonging"\n'
        '  [[themes.descriptors]]\n  text = "feeling at home"\n  cues = ["home"]\n')
    assert transcribe.cache_key(story, settings, tmp_path) != key  # so does the root's codebook


# ---- the real model ----

CO_PRODUCTION = "Co-production means we design the service together."


@pytest.fixture(scope="module")
def co_production_clip(tmp_path_factory):
    """"co-production" said by an espeak-ng voice that tiny.en, unprompted, writes "Copronuction"."""
    folder = tmp_path_factory.mktemp("vocab")
    path = af.speech(folder, "co.wav", CO_PRODUCTION, voice="en-us+m3", words_per_minute=150)
    return audio.decode_pcm16(path, RATE).astype(np.float32) / 32768


@pytest.mark.parametrize("engine_name", ["openai-whisper", "faster-whisper"])
def test_tiny_en_writes_co_production_with_the_vocabulary(settings, co_production_clip, engine_name):
    from storypipe.tasks.transcribe.engines import get_engine

    engine = get_engine(settings.transcribe.model_copy(update={"engine": engine_name}))
    prompt = vocabulary.story_vocabulary(make_story(), None, settings, "en").prompt
    segments = transcribe.transcribe_speech(engine, co_production_clip, settings, "en", "t", prompt=prompt)[0]
    text = " ".join(s.text for s in segments)
    assert "co-production" in text.lower(), text
    assert "glossary" not in text.lower()


def test_openai_whisper_gives_the_prompt_to_each_30_s_window(settings, monkeypatch, tmp_path):
    """Speech longer than one window: every window Whisper decodes opens with the prompt's tokens."""
    import whisper
    from whisper.model import Whisper

    from storypipe.tasks.transcribe.engines import get_engine

    cfg = settings.transcribe.model_copy(update={"engine": "openai-whisper", "beam_size": 1, "word_timestamps": False})
    engine = get_engine(cfg)
    text = " ".join([CO_PRODUCTION, "We met every week in the library and talked about what mattered."] * 5)
    clip = audio.decode_pcm16(af.speech(tmp_path, "long.wav", text, words_per_minute=170), RATE)
    mono = clip.astype(np.float32) / 32768
    assert len(mono) / RATE > 30
    prompts, decode = [], Whisper.decode
    monkeypatch.setattr(Whisper, "decode", lambda self, mel, options: prompts.append(options.prompt) or decode(self, mel, options))
    prompt = "Glossary: co-production, peer support."
    engine.transcribe(mono, [(0.0, round(len(mono) / RATE, 3))], "en", prompt=prompt)
    wanted = whisper.tokenizer.get_tokenizer(multilingual=False).encode(" " + prompt)
    assert len(prompts) >= 2 and all(list(p[: len(wanted)]) == wanted for p in prompts)


# ---- the prompt never costs speech: what the prompted pass left out or doubted is heard again ----


def seg(i, start, end, text, nsp=0.05, logprob=-0.2):
    from storypipe.core.models import Segment, Word

    words = text.split()
    step = (end - start) / len(words)
    return Segment(id=i, start=start, end=end, text=text, avg_logprob=logprob, no_speech_prob=nsp,
                   words=[Word(word=" " + w, start=start + k * step, end=start + (k + 1) * step, probability=0.9)
                          for k, w in enumerate(words)])


class PlainEngine:
    """Without a prompt, hears `plain` (segments); records the clips it was asked for."""

    name, model, multilingual = "fake", "fake", False

    def __init__(self, plain):
        self.plain, self.asked = plain, []

    def transcribe(self, speech, clips, language, prompt=None):
        assert prompt is None
        self.asked.append(clips)
        inside = [s for s in self.plain if any(a <= s.start and s.end <= b for a, b in clips)]
        return EngineResult(inside, "en")


def test_speech_the_prompted_pass_left_without_words_is_heard_again(settings):
    cfg = settings.transcribe
    prompted = EngineResult([seg(0, 8.3, 20.0, "when you have got the main things on the front")], "en")
    engine = PlainEngine([seg(0, 0.5, 7.9, "text button and symbols you don't understand"),
                          seg(1, 8.3, 20.0, "when you've got the main things on the front")])
    result, again = vocabulary.hear_again(engine, np.zeros(25 * RATE, np.float32), 25.0, prompted, "en", cfg)
    # Each stretch is heard with the speech before it (context), only its own words kept.
    context = settings.transcribe.vocabulary_recheck_context_s
    assert engine.asked == [[(0.0, 8.3), (20.0 - context, 25.0)]] and again == 2
    assert [s.text for s in result.segments] == ["text button and symbols you don't understand",
                                                 "when you have got the main things on the front"]
    assert [s.id for s in result.segments] == [0, 1]


def test_a_short_doubtful_segment_stays_only_if_heard_without_the_prompt(settings):
    cfg = settings.transcribe
    speech = seg(0, 0.2, 10.4, "and so my fellow Americans ask not what your country can do")
    thanks = seg(1, 10.45, 10.7, "Thank you.", nsp=0.83, logprob=-0.7)
    yes = seg(2, 10.8, 11.2, "Yes.", nsp=0.7)
    engine = PlainEngine([seg(0, 10.8, 11.2, "Yes.")])
    result, again = vocabulary.hear_again(engine, np.zeros(12 * RATE, np.float32), 11.5,
                                          EngineResult([speech, thanks, yes], "en"), "en", cfg)
    assert [s.text for s in result.segments] == [speech.text, "Yes."] and again == 2


def test_a_fraction_of_a_second_is_heard_with_the_speech_before_it(settings):
    """Decoded alone, 0.3 s after the last word is where the plain pass itself invents ("Okay.")."""
    cfg = settings.transcribe
    speech = seg(0, 0.0, 2.7, "he was not an ill disposed young man")
    thanks = seg(1, 2.7, 2.95, "Thank you.", nsp=0.8, logprob=-0.7)
    plain = PlainEngine([seg(0, 0.0, 2.7, "he was not an ill disposed young man")])
    result, n = vocabulary.hear_again(plain, np.zeros(3 * RATE, np.float32), 2.95,
                                      EngineResult([speech, thanks], "en"), "en", cfg)
    assert plain.asked == [[(0.0, 2.95)]]  # from up to context_s before, not (2.7, 2.95) alone
    assert [s.text for s in result.segments] == [speech.text] and n == 1  # its words outside the doubt are not taken twice


def test_nothing_is_decoded_again_when_the_prompted_pass_is_whole(settings):
    engine = PlainEngine([])
    prompted = EngineResult([seg(0, 0.3, 9.8, "co-production means we design the service together")], "en")
    result, again = vocabulary.hear_again(engine, np.zeros(10 * RATE, np.float32), 10.0, prompted, "en",
                                          settings.transcribe)
    assert result is prompted and again == 0 and engine.asked == []


def test_a_passage_written_twice_is_heard_again_plainly(settings):
    """A prompted pass that lost its place wrote 20 s of a meeting again 20 s later (AMI, tiny.en)."""
    said = "because it doesn't make when you pick it up it doesn't make it really complicated"
    first, other = seg(0, 0.5, 5.0, said), seg(1, 5.2, 9.8, "actually that just raises a point I wonder")
    again = seg(2, 10.0, 14.8, said)
    engine = PlainEngine([seg(0, 10.0, 14.8, "I was thinking on the same lines instead of having too many")])
    result, n = vocabulary.hear_again(engine, np.zeros(15 * RATE, np.float32), 15.0,
                                      EngineResult([first, other, again], "en"), "en", settings.transcribe)
    assert [s.text for s in result.segments] == [said, other.text, engine.plain[0].text] and n == 1


def test_a_passage_said_again_minutes_later_is_not_heard_again(settings):
    """A refrain (or a recording that repeats) minutes apart is speech, not a pass that lost its place."""
    said = "because it doesn't make when you pick it up it doesn't make it really complicated"
    first, later = seg(0, 0.5, 5.0, said), seg(1, 200.0, 204.5, said)
    assert vocabulary.repeated([first, later], settings.transcribe.vocabulary_recheck_repeat_words) == set()
    near = seg(1, 40.0, 44.5, said)
    assert vocabulary.repeated([first, near], settings.transcribe.vocabulary_recheck_repeat_words) == {1}


def test_what_is_heard_again_takes_its_place_in_the_order_the_words_were_said(settings):
    """openai-whisper can start a segment seconds before its first word. The words heard again in
    the gap before it come first: sorted by the segment's own start, a turn would read out of order."""
    cfg = settings.transcribe
    late = seg(0, 12.0, 20.0, "so I came to the city in the spring of that year").model_copy(update={"start": 5.0})
    engine = PlainEngine([seg(0, 6.0, 11.0, "can you tell me how you came here")])
    result, again = vocabulary.hear_again(engine, np.zeros(21 * RATE, np.float32), 20.5,
                                          EngineResult([late], "en"), "en", cfg)
    assert again >= 1
    assert [s.text for s in result.segments] == ["can you tell me how you came here", late.text]
    starts = [w.start for s in result.segments for w in s.words]
    assert starts == sorted(starts)
