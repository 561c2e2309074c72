"""Tokenizers shared between encoders of identical tokenizer files, on the real MiniLM checkpoint."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from functions.text.encoder import SentenceEncoder, default_checkpoint, shared_tokenizer, tokenizer_digest


def linked_checkpoint(root: Path, name: str, edit: dict[str, dict] | None = None) -> Path:
    """A checkpoint directory of symlinks to the packaged one, with some JSON files rewritten."""
    source, target = default_checkpoint(), root / name
    target.mkdir()
    for item in source.iterdir():
        if edit and item.name in edit:
            (target / item.name).write_text(json.dumps({**json.loads(item.read_text()), **edit[item.name]}))
        else:
            (target / item.name).symlink_to(item)
    return target


@pytest.mark.parametrize(
    ("edit", "same"),
    [
        (None, True),
        ({"config.json": {"comment": "new weights, same vocabulary"}}, True),
        ({"sentence_bert_config.json": {"max_seq_length": 128}}, True),
        ({"tokenizer_config.json": {"do_lower_case": False}}, False),
        ({"special_tokens_map.json": {"unk_token": "[UNKNOWN]"}}, False),
    ],
)
def test_tokenizer_digest_follows_the_tokenizer_files_only(tmp_path, edit, same):
    changed = linked_checkpoint(tmp_path, "changed", edit)
    assert (tokenizer_digest(changed) == tokenizer_digest(default_checkpoint())) is same


def test_encoders_share_a_tokenizer_only_when_its_files_are_identical(tmp_path):
    first = shared_tokenizer(default_checkpoint())
    assert shared_tokenizer(linked_checkpoint(tmp_path, "same")) is first
    other = shared_tokenizer(linked_checkpoint(tmp_path, "cased", {"tokenizer_config.json": {"do_lower_case": False}}))
    assert other is not first
    assert first(["Hello"])["input_ids"] != other(["Hello"])["input_ids"]  # cased vocabulary lookups differ


def test_a_shared_tokenizer_gives_the_same_ids_under_concurrent_calls_with_different_settings():
    tokenizer = shared_tokenizer(default_checkpoint())
    text = ["a sentence long enough to be cut short by the smaller of the two limits " * 3]
    expected = {n: tokenizer(text, truncation=True, max_length=n)["input_ids"] for n in (8, 64)}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(200):
                assert tokenizer(text, truncation=True, max_length=n)["input_ids"] == expected[n]
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in (8, 64, 8, 64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(expected[8][0]) == 8 and len(expected[64][0]) > 8


def test_a_second_encoder_of_the_same_checkpoint_reuses_the_tokenizer_and_encodes_alike():
    one, two = SentenceEncoder(default_checkpoint()), SentenceEncoder(default_checkpoint())
    assert one.tokenizer is two.tokenizer
    assert one.model is not two.model
    assert (one.encode(["same words"]) == two.encode(["same words"])).all()
