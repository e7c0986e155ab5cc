"""Random canaries: secrets with a known dose (number of training repetitions).

Two kinds, both drawn uniformly at random so a model can only know them by memorising them:
- ``passphrase``: "My secret passphrase is " + random words from a fixed word list;
- ``random_tokens``: a string of random tokens from the run's tokenizer vocabulary.
Dose 0 canaries are held-out controls from the same generator: the non-members.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from mnemoscope.errors import MnemoscopeError

DEFAULT_DOSES = (0, 1, 4, 16, 64)
CANARY_KINDS = ("passphrase", "random_tokens")

# A fixed list of common, unambiguous English words (order matters: it is the sampling space).
WORDS = """
acid acorn actor agent alarm album alley amber angle ankle apple apron arena armor arrow atlas attic audio autumn
badge baker bamboo banjo barrel basin beach beacon beard beetle bell bench berry bison blade blanket blossom bonnet
border bottle boulder bracket branch brick bridge bronze brush bucket buffalo bugle butter button cabin cactus camel
candle canoe canyon carpet carrot castle cedar cellar chalk cherry chess chimney cider cinema circus clover cobalt
comet copper coral cotton cougar crayon cricket crystal cupboard curtain cushion dagger daisy delta desert diamond
dolphin donkey dragon drum eagle easel echo ember engine falcon feather fender fiddle fig flag flame flute forest
fossil fountain fox galaxy garden garlic gazelle geyser ginger glacier globe goblet granite grape gravel guitar
hammer harbor harp hazel helmet heron hickory honey hornet igloo island ivory jacket jaguar jasmine jelly jungle
kayak kettle kitten ladder lagoon lantern lemon lentil lily lizard lobster locket lotus magnet mango maple marble
meadow melon mirror mitten monkey moose mosaic muffin mustard napkin nectar needle nutmeg oasis olive onion orchid
otter oyster paddle palace panda parrot peach pebble pepper piano pickle pillow pine planet plum pocket pony poppy
puzzle quartz quill rabbit radish raven reef ribbon river robin rocket rose saddle salmon sandal satin scarf shovel
silver sketch sled spider spruce squid statue summit swan tablet tiger timber tomato torch tulip tunnel turtle
umbrella valley velvet violin walnut walrus wagon whale willow window wizard yogurt zebra zipper
""".split()


@dataclass
class Canary:
    id: str
    kind: str
    text: str
    dose: int

    def to_dict(self) -> dict:
        return asdict(self)


def passphrase(rng: random.Random, n_words: int) -> str:
    return "My secret passphrase is " + " ".join(rng.choice(WORDS) for _ in range(n_words)) + "."


def text_tokens(tokenizer) -> list[int]:
    """Non-special vocabulary tokens that decode to whole characters on their own (no U+FFFD from
    a byte-level piece of a multi-byte character): any sequence of them decodes to valid text."""
    special = set(tokenizer.all_special_ids)
    return [i for i in range(len(tokenizer))
            if i not in special and "\ufffd" not in tokenizer.decode([i]) and tokenizer.decode([i]).strip()]


def random_token_string(rng: random.Random, tokenizer, n_tokens: int, vocab: list[int] | None = None) -> str:
    """Decode random whole-character vocabulary tokens into text (the canary is the text): valid
    UTF-8 that round-trips through the tokenizer (decode(encode(text)) == text)."""
    vocab = vocab if vocab is not None else text_tokens(tokenizer)
    while True:
        text = tokenizer.decode([rng.choice(vocab) for _ in range(n_tokens)]).strip()
        if text and tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text:
            return text


def check_canary_settings(c: dict, section: str = "canaries") -> None:
    """A lab's ``canaries`` section, checked before any work: doses are whole repetition counts
    that include 0 (the held-out controls every dose is compared with) and at least one dose > 0;
    at least one canary per dose and one control; known kinds."""
    doses = c["doses"]
    if not doses or 0 not in doses or max(doses) < 1 or min(doses) < 0:
        raise MnemoscopeError(f"{section}.doses must list 0 (the held-out controls) and at least one dose ≥ 1, "
                              f"none negative; got {doses!r}")
    for key in ("per_dose", "n_controls"):
        if c[key] < 1:
            raise MnemoscopeError(f"{section}.{key} must be ≥ 1, got {c[key]!r}")
    unknown = [k for k in c["kinds"] if k not in CANARY_KINDS]
    if not c["kinds"] or unknown:
        raise MnemoscopeError(f"{section}.kinds must name one or more of {', '.join(CANARY_KINDS)}; got {c['kinds']!r}")


def make_canaries(
    per_dose: int,
    doses: tuple[int, ...] = DEFAULT_DOSES,
    *,
    kinds: tuple[str, ...] = CANARY_KINDS,
    n_controls: int | None = None,
    passphrase_words: int = 10,
    random_tokens: int = 24,
    tokenizer=None,
    seed: int = 0,
) -> list[Canary]:
    """``per_dose`` canaries of each kind at each dose > 0, and ``n_controls`` (default
    ``per_dose``) held-out dose-0 controls of each kind, all from the same generator."""
    for d in doses:
        if d < 0:
            raise MnemoscopeError(f"canary dose {d} is negative: doses are repetition counts (0 = held out)")
    for kind in kinds:
        if kind not in CANARY_KINDS:
            raise MnemoscopeError(f"unknown canary kind '{kind}': use one of {', '.join(CANARY_KINDS)}")
    if "random_tokens" in kinds and tokenizer is None:
        raise MnemoscopeError("random_tokens canaries need the run's tokenizer")
    rng = random.Random(seed)
    vocab = text_tokens(tokenizer) if "random_tokens" in kinds else None
    canaries: list[Canary] = []
    seen: set[str] = set()
    for kind in kinds:
        for dose in sorted(set(doses)):
            count = (per_dose if n_controls is None else n_controls) if dose == 0 else per_dose
            for i in range(count):
                while True:  # canaries are unique by construction (re-draw on the rare collision)
                    if kind == "passphrase":
                        text = passphrase(rng, passphrase_words)
                    else:
                        text = random_token_string(rng, tokenizer, random_tokens, vocab)
                    if text not in seen:
                        break
                seen.add(text)
                canaries.append(Canary(id=f"{kind}-d{dose}-{i}", kind=kind, text=text, dose=dose))
    return canaries
