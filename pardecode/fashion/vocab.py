"""Vocabulary, prompts and token layout of the default Fashion-MNIST text-to-image model.

The layout copies Lumina-mGPT's (a Chameleon model): a text prompt in a fixed template, a separator,
then an image span [start-of-image, height, width, rows each ended by end-of-line, end-of-image].
Only the sizes shrink: a token is 2 px instead of 16 and a grid unit 2 tokens, as in Lumina-mGPT.

Ids are fixed (not derived from the prompt list) so checkpoints stay readable if phrasings change:
0 pad, 1 bos, 2 eos, 3 unk, 4..95 words, 96 separator, 97 start-of-image, 98 end-of-image,
99 end-of-line, 100 `<image>` (Chameleon's placeholder; never emitted), 104.. size tokens,
128.. image tokens (codebook entry i = 128 + i).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..core.errors import ConfigError
from . import CLASS_NAMES

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
WORD_LO, WORD_HI = 4, 96
SEPARATOR_ID, START_OF_IMAGE_ID, END_OF_IMAGE_ID, END_OF_LINE_ID, IMAGE_PLACEHOLDER_ID = 96, 97, 98, 99, 100
SIZE_TOKEN_BASE, N_SIZE_TOKENS = 104, 24
IMAGE_TOKEN_LO = 128
TOKENS_PER_GRID_UNIT = 2
PIXELS_PER_TOKEN = 2
DEFAULT_SIZE = (28, 28)
PROMPT_TEMPLATE = "Generate an image of {width}x{height} according to the following prompt:\n{prompt}"

SPECIAL_NAMES = {
    PAD_ID: "<pad>",
    BOS_ID: "<s>",
    EOS_ID: "</s>",
    UNK_ID: "<unk>",
    SEPARATOR_ID: "<sep>",
    START_OF_IMAGE_ID: "<soi>",
    END_OF_IMAGE_ID: "<eoi>",
    END_OF_LINE_ID: "<eol>",
    IMAGE_PLACEHOLDER_ID: "<image>",
}

_NOUNS: dict[int, tuple[str, ...]] = {
    0: ("a t-shirt", "a top", "a t-shirt/top", "a tee"),
    1: ("a pair of trousers", "trousers", "pants"),
    2: ("a pullover", "a sweater", "a jumper"),
    3: ("a dress",),
    4: ("a coat", "a jacket"),
    5: ("a sandal", "a pair of sandals"),
    6: ("a shirt", "a blouse"),
    7: ("a sneaker", "a trainer", "a running shoe"),
    8: ("a bag", "a handbag", "a purse"),
    9: ("an ankle boot", "a boot"),
}
_FRAMES = ("{}", "a photo of {}", "a picture of {}", "an image of {}")

PROMPTS_BY_CLASS: dict[str, tuple[str, ...]] = {
    CLASS_NAMES[c]: tuple(frame.format(noun) for frame in _FRAMES for noun in nouns) for c, nouns in _NOUNS.items()
}
"""Every training phrasing of each class (lower case), keyed by the Fashion-MNIST class name."""

_WORD_RE = re.compile(r"\w+|[^\w\s]+")  # what the `Whitespace` pre-tokenizer splits on


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def _core(noun: str) -> str:
    """The noun phrase without its article/quantifier, e.g. 'a pair of trousers' -> 'trousers'."""
    return re.sub(r"^(an? |pair of |a pair of )+", "", noun)


_CORE_TO_CLASS = {_core(n): c for c, nouns in _NOUNS.items() for n in nouns}
_CORE_RE = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(k) for k in sorted(_CORE_TO_CLASS, key=len, reverse=True)) + r")(?![\w-])"
)


def class_of_prompt(text: str) -> int | None:
    """Class index (into CLASS_NAMES) a prompt asks for, or None if it names no known garment.

    Matches whole garment words, longest first, so "t-shirt" is not read as "shirt".
    """
    match = _CORE_RE.search(text.lower())
    return None if match is None else _CORE_TO_CLASS[match.group(1)]


def word_list() -> list[str]:
    """The text words, in id order (WORD_LO + i)."""
    words = set(_words(PROMPT_TEMPLATE.format(width=DEFAULT_SIZE[0], height=DEFAULT_SIZE[1], prompt="")))
    for prompts in PROMPTS_BY_CLASS.values():
        for p in prompts:
            words.update(_words(p))
    out = sorted(words)
    if len(out) > WORD_HI - WORD_LO:
        raise ConfigError(f"{len(out)} words do not fit ids {WORD_LO}..{WORD_HI - 1}")
    return out


def image_token_name(i: int) -> str:
    """Chameleon's image-token naming: IMGIMG + decimal digits written A..J + 'Z' (entry 12 -> IMGIMGBCZ)."""
    return "IMGIMG" + "".join(chr(ord("A") + int(d)) for d in str(i)) + "Z"


def vocabulary(codebook_size: int) -> dict[str, int]:
    """name -> id for every id in [0, IMAGE_TOKEN_LO + codebook_size); unused ids are `<reserved_i>`."""
    names = {i: f"<reserved_{i}>" for i in range(IMAGE_TOKEN_LO)}
    names.update(SPECIAL_NAMES)
    names.update({WORD_LO + i: w for i, w in enumerate(word_list())})
    names.update({SIZE_TOKEN_BASE + k: f"<size_{k}>" for k in range(N_SIZE_TOKENS)})
    names.update({IMAGE_TOKEN_LO + i: image_token_name(i) for i in range(codebook_size)})
    return {name: i for i, name in names.items()}


def build_text_tokenizer(codebook_size: int):
    """A word-level `PreTrainedTokenizerFast`; like Chameleon's, it prepends bos unless told not to."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab=vocabulary(codebook_size), unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", BOS_ID)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=[
            SPECIAL_NAMES[i]
            for i in (SEPARATOR_ID, START_OF_IMAGE_ID, END_OF_IMAGE_ID, END_OF_LINE_ID, IMAGE_PLACEHOLDER_ID)
        ],
    )


def save_text_tokenizer(directory: str | os.PathLike, codebook_size: int) -> None:
    build_text_tokenizer(codebook_size).save_pretrained(str(Path(directory)))


def prompt_ids(prompt: str, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1]) -> list[int]:
    """[bos] + word ids of the templated prompt (what the saved text tokenizer returns)."""
    word_id = {w: WORD_LO + i for i, w in enumerate(word_list())}
    text = PROMPT_TEMPLATE.format(width=width, height=height, prompt=prompt)
    return [BOS_ID] + [word_id.get(w, UNK_ID) for w in _words(text)]


def image_header(rows: int, cols: int) -> list[int]:
    """[start-of-image, height token, width token] for a grid of rows x cols image tokens."""
    h, w = rows // TOKENS_PER_GRID_UNIT, cols // TOKENS_PER_GRID_UNIT
    if not (0 <= h < N_SIZE_TOKENS and 0 <= w < N_SIZE_TOKENS):
        raise ConfigError(f"grid {rows}x{cols} tokens needs size tokens < {N_SIZE_TOKENS}, got {h}, {w}")
    return [START_OF_IMAGE_ID, SIZE_TOKEN_BASE + h, SIZE_TOKEN_BASE + w]


def image_span(codes: torch.Tensor) -> torch.Tensor:
    """Long[N, rows*(cols+1)+1]: codebook ids [N, rows, cols] as image tokens, each row + eol, then eoi."""
    n, rows, _ = codes.shape
    eol = torch.full((n, rows, 1), END_OF_LINE_ID, dtype=torch.long)
    body = torch.cat([codes.long() + IMAGE_TOKEN_LO, eol], dim=2).reshape(n, -1)
    return torch.cat([body, torch.full((n, 1), END_OF_IMAGE_ID, dtype=torch.long)], dim=1)
