"""The shared prompt encoder: wordllama embeddings read offline, and hashed char n-grams."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from orchestrator.routing import encoder


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network blocked by the test")


def test_encoder_loads_and_embeds_with_sockets_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a process that may open no socket
    monkeypatch.setattr(socket, "socket", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    # When a fresh encoder is loaded from the installed wheel and embeds a prompt
    fresh = encoder._Encoder(encoder.package_dir())
    ids = fresh.ids(["Write a Python function that merges two sorted lists."])[0]
    vector = fresh.mean(ids)
    # Then it has the wordllama shape and unit length
    assert vector.shape == (encoder.DIM,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_embedding_matches_wordllama_itself() -> None:
    # Given wordllama's own loader, pointed at its package folder with downloads off
    from wordllama import WordLlama

    model = WordLlama.load(cache_dir=encoder.package_dir(), disable_download=True)
    text = "Пожалуйста, переведите это письмо на испанский. 谢谢。 def f(x): return x"
    # When both embed the same short prompt
    ours = encoder.embed(text)
    theirs = model.embed(text, norm=True)[0]
    # Then the numbers agree
    assert np.allclose(ours, theirs, atol=1e-5)


def test_long_prompts_are_read_through_a_bounded_window() -> None:
    # Given two long prompts that differ only in their middle
    head, tail = "Summarise the report below. " * 60, " Thanks!" * 100
    a, b = head + "alpha " * 500 + tail, head + "omega " * 500 + tail
    # When they are encoded
    # Then the window hides the middle: same embedding and n-grams
    assert len(encoder.window(a)) == encoder.HEAD_CHARS + encoder.TAIL_CHARS + 1
    assert np.array_equal(encoder.embed(a), encoder.embed(b))
    assert np.array_equal(encoder.ngrams(a).ids, encoder.ngrams(b).ids)


def test_char_ngrams_are_sparse_normalised_and_case_blind() -> None:
    # Given the same text in two cases, and an empty text
    upper, lower = encoder.ngrams("SELECT * FROM users;"), encoder.ngrams("select * from users;")
    # Then n-grams ignore case, are sorted unique bucket ids with unit norm, and empty is empty
    assert np.array_equal(upper.ids, lower.ids)
    assert np.all(np.diff(upper.ids) > 0) and upper.ids.max() < encoder.GRAM_BUCKETS
    assert abs(float(np.linalg.norm(upper.values)) - 1.0) < 1e-5
    assert encoder.ngrams("   ").ids.size == 0
    assert not encoder.embed("").any()


def test_batch_embedding_equals_one_at_a_time() -> None:
    texts = ["Hola, ¿qué tal?", "Prove that sqrt(2) is irrational.", ""]
    batch = encoder.embed_many(texts)
    assert np.allclose(batch, np.stack([encoder.embed(t) for t in texts]), atol=1e-6)


def test_a_prompt_embedded_twice_in_a_row_is_tokenized_once() -> None:
    # Given a prompt embedded for its tier
    text = "Explain the difference between a process and a thread."
    first = encoder.embed(text)
    # When the strong/weak scorer embeds the same prompt next
    second = encoder.embed(text)
    # Then it gets the same (read-only) vector back, and another prompt gets its own
    assert second is first and not second.flags.writeable
    assert encoder.ngrams(text) is encoder.ngrams(text)
    assert not np.array_equal(encoder.embed("Bonjour !"), first)
