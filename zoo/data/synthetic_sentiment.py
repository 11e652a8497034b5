"""`synthetic_sentiment`: an offline two-class sentiment set that needs word order.

Reviews of films, restaurants, products, hotels, books and games are generated
deterministically from clauses whose polarity is composed, not listed: an adjective,
noun or verb of one polarity, flipped by a negator in front of it ("not bad",
"never boring", "hardly worth it", "did not disappoint"), flipped again by a
negating frame around the clause ("I would not say the plot was not clever"). In a
two-clause review the clauses disagree and the structure says which one counts: the
clause after "but" / "however" / "still", or the main clause beside an "although" /
"even though" / "while" clause, whichever side of it that clause stands.

So the sentiment words of a review appear about as often in either class, and a
bag-of-words model cannot count its way to the answer (a unigram logistic regression
scores 68% on test, with bigrams 75%), while the rule is exact and small: a
sequence model that reads negation scope and clause order (a small BiLSTM) scores over 98%.
Chance is 50%; the classes are balanced.
"""

from __future__ import annotations

import functools

import numpy as np

from zoo.data.registry import register_dataset

NAME = "synthetic_sentiment"
LABELS = ("negative", "positive")
SPLITS = {"train": (4000, 101), "validation": (500, 102), "test": (500, 103)}
MIN_WORDS, MAX_WORDS = 5, 30

# Per domain: singular subjects, plural subjects, neutral context sentences, "again"
# phrases for the recommend clause, and a gerund for the regret clause.
DOMAINS = {
    "film": (
        "the film,the movie,the plot,the acting,the script,the ending,the soundtrack,the dialogue,"
        "the pacing,the cinematography,the sequel,the lead actor,the story,the director",
        "the characters,the special effects,the jokes,the action scenes,the performances,the songs",
        "we saw it on a rainy sunday,I watched it with my parents,we went to the late showing,"
        "I streamed it last night,my brother picked it,we saw it at the old cinema downtown",
        "watch it again,see it again", "watching it"),
    "restaurant": (
        "the food,the service,the pasta,the pizza,the waiter,the dessert,the menu,the soup,"
        "the steak,the place,the coffee,the wine list,the curry,the chef",
        "the portions,the staff,the starters,the noodles,the prices,the drinks",
        "we went there on a friday,we booked a table for six,we had lunch there last week,"
        "my sister chose the place,we ordered the tasting menu,it was our first visit",
        "eat there again,go back", "going"),
    "product": (
        "the phone,this laptop,the battery,the screen,the camera,the charger,this blender,"
        "the keyboard,the kettle,the app,the vacuum cleaner,the case,the printer",
        "the headphones,the speakers,the buttons,the instructions,the cables,the settings",
        "I bought it for my brother,it arrived on tuesday,I have used it for a month,"
        "I ordered it online,it was a birthday present,I replaced my old one with it",
        "buy it again,order another one", "buying it"),
    "hotel": (
        "the room,the hotel,the bed,the breakfast,the pool,the view,the location,the lobby,"
        "the bathroom,the wifi,the reception desk,the gym,the shower",
        "the staff,the rooms,the towels,the beds,the cleaners,the balconies",
        "we stayed three nights,we checked in late,we booked it for our anniversary,"
        "I stayed there for work,we arrived after a long flight,it was a family trip",
        "stay there again,book it again", "booking it"),
    "book": (
        "the novel,the book,the plot,the prose,the author,the ending,the translation,"
        "the first chapter,the sequel,the narrator,the cover,the memoir",
        "the characters,the chapters,the illustrations,the descriptions,the poems,the footnotes",
        "I read it on holiday,my friend lent it to me,I finished it in two days,"
        "our book club picked it,I read it on the train,it was a gift from my aunt",
        "read it again,buy the sequel", "reading it"),
    "game": (
        "the game,the story,the soundtrack,the multiplayer mode,the final boss,the map,"
        "the combat,the campaign,the tutorial,the sequel,the art style",
        "the controls,the graphics,the levels,the puzzles,the missions,the voice actors",
        "I played it over the weekend,my kids begged for it,I got it on sale,"
        "we played it as a family,I finished it in a week,a friend recommended it",
        "play it again,buy the sequel", "buying it"),
}
DOMAINS = {name: tuple(part.split(",") for part in parts[:4]) + (parts[4],) for name, parts in DOMAINS.items()}

POSITIVE = ("good great excellent wonderful brilliant superb fantastic lovely enjoyable delightful "
            "impressive pleasant solid outstanding charming decent perfect amazing terrific").split()
NEGATIVE = ("bad terrible awful poor boring dull disappointing mediocre bland dreadful tedious weak "
            "horrible lousy forgettable annoying sloppy awkward").split()
INTENSIFIERS = ("very really truly extremely incredibly quite rather remarkably genuinely absolutely so "
                "pretty surprisingly consistently").split()
# Each flips what follows. Most read naturally before either polarity ("hardly bad"
# is rare in reviews but unambiguous), so none of them is a cue to the class.
NEGATORS = ["not", "never", "hardly", "far from", "not exactly", "not really", "anything but",
            "by no means", "no longer", "not at all", "nowhere near", "barely", "not remotely"]
# "Too X" is negative whatever X is, and "not too X" positive: polarity from structure alone.
TOO_WHAT = "long short loud sweet salty expensive small crowded predictable complicated slow quiet busy".split()
TOO = ["too", "far too", "way too", "much too", "a bit too", "slightly too", "a little too"]
NOT_TOO = ["not too", "never too", "not overly", "not too", "not at all too"]
NOUNS = {"positive": "delight treat gem pleasure triumph bargain joy success winner revelation".split(),
         "negative": "disappointment mess letdown disaster chore failure ripoff nightmare".split()
                     + ["waste of money", "waste of time"]}
NOUN_ADJ = ["real", "total", "complete", "absolute", "genuine", "true", "proper", ""]
NOUN_NEGATORS = ["not", "hardly", "far from", "anything but", "never", "by no means"]
# (past tense, base form) verb phrases.
VERBS = {
    "positive": [("impressed me", "impress me"), ("won me over", "win me over"),
                 ("exceeded my expectations", "exceed my expectations"), ("delighted us", "delight us"),
                 ("stood out", "stand out"), ("delivered", "deliver"), ("worked well", "work well"),
                 ("made my day", "make my day"), ("held my attention", "hold my attention")],
    "negative": [("disappointed", "disappoint"), ("disappointed me", "disappoint me"),
                 ("let us down", "let us down"), ("fell flat", "fall flat"), ("bored me", "bore me"),
                 ("missed the mark", "miss the mark"), ("annoyed me", "annoy me"),
                 ("put me off", "put me off"), ("frustrated us", "frustrate us")],
}
WOULD = ["would", "will", "would happily", "would definitely", "will certainly", "would gladly"]
WOULD_NOT = ["would not", "will never", "would never", "will not", "cannot", "could never"]
# Frames around a clause: the first set keeps its polarity, the second flips it.
FRAMES_KEEP = ["I would say", "I think", "everyone agrees that", "it is true that", "I have to say",
               "I must admit", "I can confirm that", "my friends agreed that", "I feel that"]
FRAMES_FLIP = ["I would not say", "nobody could say", "it is not true that", "I cannot say",
               "no one would claim", "I do not think", "I would never say", "nobody thinks",
               "I refuse to say"]
# Connectors: ("but"-like) the clause after decides; (subordinators) the other clause decides.
BUT = [[",", "but"], [";", "however", ","], [".", "still", ","], [",", "yet"], [".", "that said", ","],
       [".", "even so", ","], [",", "but", "in the end"], [".", "on the other hand", ","]]
ALTHOUGH = ["although", "though", "even though", "while", "even if", "despite the fact that", "whereas"]
PREFIXES = ["honestly ,", "to be honest ,", "overall ,", "in my opinion ,", "frankly ,", "all in all ,",
            "on the whole ,", "for what it is worth ,", "in short ,", "well ,", "so ,", "to sum up ,"]
SUFFIXES = ["to be honest", "in my opinion", "if you ask me", "for the price", "overall", "this time",
            "at least for me", "as far as I am concerned", "if I am honest", "all things considered"]

# How often each slot negates. Below 0.5, so a sentiment word leans (weakly) toward its
# own class: the bag-of-words score lands between chance and the sequence model's.
P_NEGATE = 0.2
P_FRAME = 0.2
# Review structures and their shares: one clause, or two that disagree.
STRUCTURES = {"single": 0.7, "but": 0.1, "although": 0.1, "main_although": 0.1}
# Clause kinds and their shares.
KINDS = {"adjective": 0.4, "too": 0.12, "noun": 0.12, "verb": 0.12, "would": 0.12, "regret": 0.12}


def _pick(rng, items):
    return items[rng.integers(len(items))]


def _kinds(rng, n):
    # Two clauses of one review differ in kind, so none reads "we will recommend it,
    # although we will never recommend it".
    return list(rng.choice(list(KINDS), n, replace=False, p=list(KINDS.values())))


def _clause(rng, domain, positive, kind, frame=True):
    """Words of one clause of `kind` whose composed polarity is `positive`."""
    singular, plural, _context, again, gerund = DOMAINS[domain]
    plural_subject = rng.random() < 0.3
    subject = _pick(rng, plural if plural_subject else singular)
    past = rng.random() < 0.5
    be = ("were" if past else "are") if plural_subject else ("was" if past else "is")
    negate = rng.random() < P_NEGATE
    base = positive != negate  # the polarity of the word before negation
    if kind == "adjective":
        adjective = _pick(rng, POSITIVE if base else NEGATIVE)
        if rng.random() < 0.35:
            adjective = f"{_pick(rng, INTENSIFIERS)} {adjective}"
        if base and rng.random() < 0.1:
            adjective = "worth it"  # a multi-word adjective: "hardly worth it"
        words = [subject, be] + ([_pick(rng, NEGATORS)] if negate else []) + [adjective]
    elif kind == "too":
        # "too long" is negative; "not too long" positive.
        words = [subject, be, _pick(rng, NOT_TOO if positive else TOO), _pick(rng, TOO_WHAT)]
    elif kind == "noun":
        noun = _pick(rng, NOUNS["positive" if base else "negative"])
        modifier = _pick(rng, NOUN_ADJ)
        phrase = f"{modifier} {noun}".strip()
        article = "an" if phrase[0] in "aeiou" else "a"
        if negate and rng.random() < 0.3:
            words = [subject, be, "no", phrase]
        else:
            words = [subject, be] + ([_pick(rng, NOUN_NEGATORS)] if negate else []) + [f"{article} {phrase}"]
    elif kind == "verb":
        past_form, base_form = _pick(rng, VERBS["positive" if base else "negative"])
        if negate:
            negator = _pick(rng, ["did not", "never", "did not once", "do not" if plural_subject else "does not"])
            words = [subject, negator, past_form if negator == "never" else base_form]
        else:
            words = [subject, past_form]
    elif kind == "would":
        # Only positive phrases: "I would not recommend it" is the negative.
        phrase = _pick(rng, again + ["recommend it", "recommend it to friends"])
        words = [_pick(rng, ["I", "we"]), _pick(rng, WOULD if positive else WOULD_NOT), phrase]
    else:
        # "I regret buying it" is negative; "I do not regret buying it" positive.
        verb = _pick(rng, ["do not regret", "never regretted", "will not regret"]) if positive else \
            _pick(rng, ["regret", "already regret", "regretted"])
        words = [_pick(rng, ["I", "we"]), verb, gerund]
    if frame and kind in ("adjective", "noun") and rng.random() < P_FRAME:
        if rng.random() < 0.5:
            # "I would not say the food was not good": the frame flips a clause that was
            # drawn for the other polarity (and may have flipped itself). One frame at most.
            inner = _clause(rng, domain, not positive, _kinds(rng, 1)[0], frame=False)
            return _pick(rng, FRAMES_FLIP).split() + inner
        words = [_pick(rng, FRAMES_KEEP)] + words
    return " ".join(words).split()


def _review(rng, positive):
    domain = _pick(rng, list(DOMAINS))
    structure = rng.choice(list(STRUCTURES), p=list(STRUCTURES.values()))
    first, second = _kinds(rng, 2)
    if structure == "single":
        words = _clause(rng, domain, positive, first)
    elif structure == "but":
        words = (_clause(rng, domain, not positive, first) + _pick(rng, BUT)
                 + _clause(rng, domain, positive, second))
    elif structure == "although":
        words = (_pick(rng, ALTHOUGH).split() + _clause(rng, domain, not positive, first) + [","]
                 + _clause(rng, domain, positive, second))
    else:
        words = (_clause(rng, domain, positive, first) + [","] + _pick(rng, ALTHOUGH).split()
                 + _clause(rng, domain, not positive, second))
    words = " ".join(words).split()
    # Neutral padding varies the length and position without touching the label.
    if rng.random() < 0.3:
        words = _pick(rng, PREFIXES).split() + words
    if rng.random() < 0.25:
        words = words + _pick(rng, SUFFIXES).split()
    if rng.random() < 0.3:
        words = _pick(rng, DOMAINS[domain][2]).split() + ["."] + words
    return words


def _text(words):
    text = " ".join(words)
    for mark in ",;.":
        text = text.replace(f" {mark}", mark)
    # Capitalise each sentence's first word.
    sentences = [s.strip() for s in text.split(".") if s.strip()]
    return " ".join(s[0].upper() + s[1:] + "." for s in sentences)


def make_sentences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` reviews (object array of str) and labels [n] int64 (index into LABELS)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2  # balanced: exactly half of each class
    rng.shuffle(labels)
    sentences = []
    for label in labels:
        while True:
            words = _review(rng, bool(label))
            count = sum(w not in (",", ";", ".") for w in words)
            if MIN_WORDS <= count <= MAX_WORDS:
                break
        sentences.append(_text(words))
    return np.array(sentences, dtype=object), labels.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _splits():
    return {split: make_sentences(n, seed) for split, (n, seed) in SPLITS.items()}


# At most MAX_WORDS words a review, so 32 tokens hold every one unpadded.
@register_dataset(task="text_classification", label_names=LABELS, options={"sequence_length": 32})
def synthetic_sentiment(split):
    """Generated two-class reviews with negation and contrast, so word order matters, offline."""
    return _splits()[split]
