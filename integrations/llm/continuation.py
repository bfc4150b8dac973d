"""Continuing an answer that broke mid-stream on another model, so that the caller reads
one answer: the conversation to send (the partial answer as an assistant prefix where
the protocol takes one, else with an instruction to go on), and the stitching of the
continuation's events into the broken stream's.

A continuation may repeat the end of what was said (models that were told to go on
often restate the last words, or start again from the top); the stitcher holds its
first characters back until it can see how much of them the caller has already read,
and drops that much. Nothing here knows Django or a wire format.
"""

from __future__ import annotations

import re
from dataclasses import replace

from integrations.llm.chat import (
    BlockDelta,
    BlockEnded,
    BlockStarted,
    Prompt,
    text_message,
)

INSTRUCTION = (
    "Your previous answer was cut off. Continue it from exactly where it stopped: do not "
    "repeat anything already written, do not start again, and do not mention the "
    "interruption."
)
MIN_OVERLAP = 12  # characters a restated tail shares with the partial answer, at least
MIN_WORDS = 3  # or at least this many, two words from a word's start
LOOKAHEAD = 2000  # the most the stitcher holds back while deciding


def prompt(asked: Prompt, partial: str, prefill: bool) -> Prompt:
    """What the next model is sent to continue `partial`. A prefill may not end with
    whitespace (Anthropic refuses it), so that is trimmed; the stitcher drops it again
    from the continuation's start."""
    if prefill:
        said = text_message("assistant", partial.rstrip())
        return replace(asked, messages=(*asked.messages, said))
    said = text_message("assistant", partial)
    return replace(asked, messages=(*asked.messages, said, text_message("user", INSTRUCTION)))


def overlap(partial: str, head: str) -> int:
    """How many leading characters of `head` the caller has already read at the end of
    `partial`: a restart from the top; a restated tail (MIN_OVERLAP characters, or two
    words from a word's start: "a real cal" then "a real call"); or the word the break
    cut, written again whole ("sixtee" then "sixteen"). An exact continuation never
    begins with the partial answer's last word, so none of these cuts into one."""
    if head.startswith(partial):
        return len(partial)
    for size in range(min(len(partial), len(head)), MIN_WORDS - 1, -1):
        if not partial.endswith(head[:size]):
            continue
        begins_word = size == len(partial) or not partial[-size - 1].isalnum()
        if size >= MIN_OVERLAP or (begins_word and " " in head[:size].strip()):
            return size
    fragment = re.search(r"\S+$", partial)
    if fragment and len(head) > len(fragment[0]) and head.startswith(fragment[0]):
        return len(fragment[0])
    return 0


class Stitcher:
    """Maps a continuation's events into the broken stream: its first text block goes on
    in the block that broke (its start is dropped), other blocks take fresh indexes, and
    its reasoning (a thought about how to go on) is not shown."""

    def __init__(self, partial: str, text_index: int, next_index: int, prefilled: bool = False):
        self.partial = partial
        self.prefilled = prefilled  # the model went on from the partial answer itself
        self.text_index = text_index
        self.next_index = next_index
        self.map: dict[int, int] = {}
        self.dropped: set[int] = set()
        self.held = ""
        self.deciding = True

    def feed(self, event) -> list:
        if isinstance(event, BlockStarted | BlockDelta) and event.index not in self.map:
            if event.index in self.dropped or event.kind == "reasoning":
                self.dropped.add(event.index)
                return []
            if event.kind == "text" and self.text_index not in self.map.values():
                self.map[event.index] = self.text_index
                if isinstance(event, BlockStarted):
                    return []
            else:
                self.map[event.index] = self.next_index
                self.next_index += 1
        index = self.map.get(getattr(event, "index", None))
        if isinstance(event, BlockStarted | BlockDelta | BlockEnded):
            if event.index in self.dropped:
                return []
            if isinstance(event, BlockDelta) and index == self.text_index and self.deciding:
                self.held += event.text
                return self._decided() if len(self.held) >= self._enough() else []
            return [*self.flush(), replace(event, index=index)]
        return [*self.flush(), event]

    def flush(self) -> list:
        """The held text, once it is known how much of it repeats the partial answer."""
        return self._decided() if self.deciding else []

    def _enough(self) -> int:
        return min(len(self.partial) + 1, LOOKAHEAD)

    def _decided(self) -> list:
        self.deciding = False
        # A prefilled model writes the rest and nothing twice; one told to go on may
        # restate what was said.
        text = self.held if self.prefilled else self.held[overlap(self.partial, self.held) :]
        if self.partial != self.partial.rstrip() or not self.partial:
            text = text.lstrip()  # the caller has the space; a prefill had it trimmed
        self.held = ""
        return [BlockDelta(self.text_index, "text", text)] if text else []


def seam(partial: str, continuation: str, prefilled: bool = False) -> str:
    """The text a caller reads when `continuation` (as the next model wrote it) is
    stitched after `partial`: what the stitcher emits, for measuring it."""
    stitcher = Stitcher(partial, 0, 1, prefilled)
    out = [partial]
    for event in [BlockStarted(0, "text"), BlockDelta(0, "text", continuation)]:
        out += [e.text for e in stitcher.feed(event) if isinstance(e, BlockDelta)]
    out += [e.text for e in stitcher.flush() if isinstance(e, BlockDelta)]
    return "".join(out)
