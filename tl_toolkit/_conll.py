"""``data.format: conll``: CoNLL column files, one token a line.

The first column is the word and the last the tag (POS and chunk columns in
between are ignored); a blank line ends a sentence; ``-DOCSTART-`` lines
(document boundaries) are skipped. The words land in ``data.text_column`` and
the tags in ``data.label_column``, one list per sentence, as the JSON Lines
form of the same data holds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import UserError

if TYPE_CHECKING:
    import datasets

    from ._recipe import DataConfig

__all__ = ["read_conll"]


def read_conll(path: Path, data: DataConfig, split: str) -> datasets.Dataset:
    """The sentences of one CoNLL file as a dataset of word lists and tag lists.

    Raises:
        UserError: a token line with a single column, naming the file and line; a file with no sentence.
    """
    import datasets

    words: list[list[str]] = []
    tags: list[list[str]] = []
    sentence: list[str] = []
    sentence_tags: list[str] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if sentence:
                    words.append(sentence)
                    tags.append(sentence_tags)
                    sentence, sentence_tags = [], []
                continue
            if len(fields) < 2:
                raise UserError(f"data.{split}: line {number} of {str(path)!r} has one column ({line.strip()!r}); "
                                f"a CoNLL line holds the word first and the tag last, separated by spaces")
            sentence.append(fields[0])
            sentence_tags.append(fields[-1])
    if sentence:
        words.append(sentence)
        tags.append(sentence_tags)
    if not words:
        raise UserError(f"data.{split}: {str(path)!r} holds no sentences; give a CoNLL file with one "
                        f"'word ... tag' line per token and a blank line between sentences")
    return datasets.Dataset.from_dict({data.text_column: words, data.label_column: tags})
