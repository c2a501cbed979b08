"""The story the review tests work on (plain functions and over HTTP)."""

from __future__ import annotations

import pytest

from storypipe.core.jsonio import write_model
from tests.support import audio_fixtures as af
from tests.support.factories import ROS_ID, ROS_TEXT, make_story, make_transcript


@pytest.fixture
def ros_story(store, settings):
    """The `store` holding Ros's story "Heard": an interviewer's question and Ros's answer (one word
    unsure), transcribed, its quotes extracted, and a 2 s original recording. Returns the store."""
    from storypipe.tasks.extract import extract_story

    transcript = make_transcript([("interviewer", "What was it like for you at the start of the project?"),
                                  ("storyteller", ROS_TEXT)], ROS_ID)
    transcript.segments[1].words[2].low_confidence = True
    story = make_story(ROS_ID, "ros.wav", title="Heard", storyteller="Ros").advance("transcribed")
    write_model(store.story_dir(ROS_ID) / "story.json", story)
    write_model(store.story_dir(ROS_ID) / "transcript.json", transcript)
    extract_story(ROS_ID, store, settings)
    af.sine(store.original_dir(ROS_ID), "ros.wav", duration=2.0)
    return store
