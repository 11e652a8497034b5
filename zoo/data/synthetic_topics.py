"""`synthetic_topics`: an offline topic-classification set for text models.

Sentences are generated deterministically: a few words from the topic's own
vocabulary, up to two distractor words from other topics, and shared filler words,
shuffled. A bag-of-words model can learn it; a model that ignores the words cannot,
so its test accuracy shows whether a text model learns at all (chance is 25%).
"""

from __future__ import annotations

import functools

import numpy as np

from zoo.data.registry import register_dataset

NAME = "synthetic_topics"
TOPICS = {
    "sports": "match goal team coach season league player score referee stadium tournament "
              "striker keeper trophy final penalty sprint medal athlete race champion defender "
              "midfield tackle innings wicket racket serve dribble marathon",
    "science": "atom molecule physics chemistry experiment theory telescope galaxy neuron enzyme "
               "protein genome quantum particle laboratory hypothesis microscope orbit fossil "
               "electron catalyst reactor species climate vaccine mutation asteroid specimen isotope",
    "business": "market stock profit revenue merger investor shares dividend startup bank loan "
                "inflation budget quarter earnings acquisition tariff export retail supplier "
                "contract ceo audit bond equity valuation pricing payroll invoice",
    "music": "guitar album melody chord concert singer band drummer lyrics orchestra symphony "
             "piano violin chorus tempo rhythm vinyl playlist encore soprano jazz opera "
             "remix bassist festival harmony ballad tune composer",
}
FILLER = (
    "the a an of to in on for with at by from and or but this that these those it they we "
    "he she was were is are be been has have had will would could should new old big small "
    "last next today week year people many some most more very just also about after before "
    "over under again still often report said says according local national group"
).split()
LABELS = tuple(TOPICS)
SPLITS = {"train": (4000, 1), "validation": (500, 2), "test": (500, 3)}


def make_sentences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` sentences (object array of str) and labels [n] int64 (index into LABELS)."""
    rng = np.random.default_rng(seed)
    vocab = [words.split() for words in TOPICS.values()]
    labels = rng.integers(0, len(LABELS), n)
    sentences = []
    for label in labels:
        words = list(rng.choice(vocab[label], rng.integers(2, 6)))
        for _ in range(rng.integers(0, 3)):  # distractors from other topics
            other = rng.choice([k for k in range(len(LABELS)) if k != label])
            words.append(rng.choice(vocab[other]))
        words += list(rng.choice(FILLER, rng.integers(6, 18)))
        rng.shuffle(words)
        sentences.append(" ".join(words).capitalize() + ".")
    return np.array(sentences, dtype=object), labels.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _splits():
    return {split: make_sentences(n, seed) for split, (n, seed) in SPLITS.items()}


# Short sentences: 32 tokens hold them (TFDS text sets default to 128).
@register_dataset(task="text_classification", label_names=LABELS, options={"sequence_length": 32})
def synthetic_topics(split):
    """Generated sentences on four topics (sports, science, business, music), offline."""
    return _splits()[split]
