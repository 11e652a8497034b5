"""`synthetic_summaries`: an offline summarization set whose summary picks and reorders facts.

Each document is a short news story of 4 to 7 sentences (40 to 65 words, lower case,
each sentence ending in "."), of one of three kinds, and its summary one canonical
sentence of 9 to 13 words with no punctuation:

    match:    "<winner> beat <loser> <goals> <goals> in <city> on <day>"
    takeover: "<buyer> bought <company> for <n> million dollars in <month>"
    storm:    "storm <name> hit <city> on <day> with winds of <n> kilometres per hour"

The facts are spread over two or three sentences of the story in varied phrasings
that name them in different orders ("united lost 3 1 to rovers", "the match took
place in lisbon", "on monday ..."), among distractor sentences that hold the same kinds
of facts about something else: last season's meeting of the same teams in another
city, a rival's lower bid, the month talks began, next week's forecast of another
storm, a crowd, a price rise, quotes and names of people. A cue word tells them apart
("last season", "had offered", "talks began", "forecasters expect"), so one summary is
right, and the story usually opens with background, so the first sentence is rarely
the key one: the lead baseline (the first sentence as the summary) scores a ROUGE-L F
of 0.14 on test (`rouge_score`, its default tokenizer), while a model must find the key
facts, drop the distractors and write them in the summary's order (a 2-layer
keras-hub Transformer encoder-decoder of width 64, trained for 2.5 minutes on 2 CPU
cores, scored ROUGE-L 0.87 with 25% of test summaries exact; its errors are
distractors: a calm city, a rival team, another day). A test story:

    it rained all afternoon. a crowd of 16000 came to watch. next wednesday athletic will
    play tigers in warsaw. last season lions beat athletic 1 0 in warsaw. fans had waited
    weeks for this game. the teams met on friday. in porto it finished 3 0 to athletic
    against lions.
    -> athletic beat lions 3 0 in porto on friday

Names and values come from pools shared by every split (a model can only write words
it has seen in training targets, and every summary word of validation and test occurs
in train summaries), but the pairs are held apart: about one (winner, loser), (buyer,
company) and (storm, city) pair in five occurs only in validation and test, never in
train, so every test summary is a combination unseen in training.
"""

from __future__ import annotations

import functools

import numpy as np

from zoo.data.registry import register_dataset

NAME = "synthetic_summaries"
SPLITS = {"train": (8000, 401), "validation": (500, 402), "test": (500, 403)}
MIN_SENTENCES, MAX_SENTENCES = 4, 7
MIN_WORDS, MAX_WORDS = 40, 90
# A pair (i, j) of pool indices is held out of train when (i + 3 * j) % HOLD_OUT == 0.
HOLD_OUT = 5
# How often a background sentence opens the story.
P_BACKGROUND_FIRST = 0.85

TEAMS = ("rovers united rangers wanderers albion county harriers dynamo olympic sporting athletic celtic "
         "spartans falcons eagles lions tigers sharks wolves hornets comets titans pirates vikings").split()
COMPANIES = ("northwind bluepeak vantor helix orbitel quantra kestrel meridian corvia zentrix nordika pinecrest "
             "redfield stonegate trident halcyon lumina caldera equinox juniper keystone mosaic nimbus prism").split()
STORMS = "ana bella ciara dennis ellen franz gloria hugo iris jorge karim lola malik nadia otto petra".split()
CITIES = ("lisbon porto madrid milan turin vienna prague warsaw oslo dublin leeds bristol lyon geneva zurich "
          "riga tallinn kyiv lima quito").split()
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTHS = "january february march april may june july august september october november december".split()
FIRST_NAMES = "maria james anna tom sofia omar lena paul nina ravi ella marco".split()
SURNAMES = "silva moreau jensen novak rossi khan okafor tanaka berg walsh keller diallo".split()
PRODUCTS = "software for banks,batteries,frozen food,medical scanners,garden tools,travel apps".split(",")
PRICES = list(range(20, 100, 5))  # millions
SPEEDS = list(range(90, 170, 10))  # kilometres per hour


def _pick(rng, items, avoid=()):
    choices = [item for item in items if item not in avoid] if avoid else items
    return choices[rng.integers(len(choices))]


def _held(i: int, j: int) -> bool:
    return (i + 3 * j) % HOLD_OUT == 0


def _pair(rng, pool_a, pool_b, held_out):
    """Two distinct entities whose pair is held out (validation, test) or not (train)."""
    while True:
        i, j = rng.integers(len(pool_a)), rng.integers(len(pool_b))
        if pool_a[i] != pool_b[j] and _held(int(i), int(j)) == held_out:
            return pool_a[i], pool_b[j]


def _person(rng):
    return f"{_pick(rng, FIRST_NAMES)} {_pick(rng, SURNAMES)}"


def _match(rng, held_out):
    winner, loser = _pair(rng, TEAMS, TEAMS, held_out)
    goals = int(rng.integers(1, 6))
    score = f"{goals} {rng.integers(0, goals)}"
    city, day = _pick(rng, CITIES), _pick(rng, DAYS)
    summary = f"{winner} beat {loser} {score} in {city} on {day}"
    result = _pick(rng, [f"{winner} won {score} against {loser}", f"{loser} lost {score} to {winner}",
                         f"{loser} were beaten {score} by {winner}", f"{winner} beat {loser} {score}",
                         f"{winner} defeated {loser} {score}", f"it finished {score} to {winner} against {loser}"])
    place = [f"the game was played in {city}", f"the match took place in {city}",
             f"a crowd of {rng.integers(5, 60)}000 watched the game in {city}", f"the match was held in {city}"]
    when = [f"the game was played on {day}", f"the match took place on {day}", f"the teams met on {day}"]
    both = [f"the game was played in {city} on {day}", f"the teams met in {city} on {day}"]
    other_city, other_team = _pick(rng, CITIES, (city,)), _pick(rng, TEAMS, (winner, loser))
    a = int(rng.integers(1, 5))
    background = [
        f"{loser} had won their last three games", f"{winner} had not won in {city} for two years",
        f"fans had waited weeks for this game", f"the league table was tight before the weekend",
        f"{loser} came into the game without their captain", f"it rained all afternoon",
        f"{winner} are now second in the league",
    ]
    distractors = background + [
        f"last season {loser} beat {winner} {a} {rng.integers(0, a)} in {other_city}",
        f"next {_pick(rng, DAYS, (day,))} {winner} will play {other_team} in {other_city}",
        f"elsewhere {other_team} beat {_pick(rng, TEAMS, (winner, loser, other_team))} {a} {rng.integers(0, a)}",
        f"{_pick(rng, SURNAMES)} scored twice for {winner}",
        f"we played well today said {loser} coach {_person(rng)}",
        f"a crowd of {rng.integers(5, 60)}000 came to watch",
    ]
    return summary, result, [(f"in {city}", place), (f"on {day}", when)], both, background, distractors


def _takeover(rng, held_out):
    buyer, company = _pair(rng, COMPANIES, COMPANIES, held_out)
    price, month = _pick(rng, PRICES), _pick(rng, MONTHS)
    money = f"{price} million dollars"
    summary = f"{buyer} bought {company} for {money} in {month}"
    result = _pick(rng, [f"{buyer} bought {company}", f"{buyer} agreed to buy {company}",
                         f"{company} was sold to {buyer}", f"{company} agreed to be bought by {buyer}",
                         f"{buyer} has taken over {company}"])
    place = [f"the deal is worth {money}", f"{buyer} paid {money}", f"the price was {money}"]
    when = [f"the deal was signed in {month}", f"the sale was announced in {month}"]
    both = [f"the deal was signed in {month} for {money}", f"in {month} {buyer} paid {money}"]
    rival = _pick(rng, COMPANIES, (buyer, company))
    low = _pick(rng, [p for p in PRICES if p < price] or [10])
    background = [
        f"{company} makes {_pick(rng, PRODUCTS)} in {_pick(rng, CITIES)}",
        f"{company} was founded in {rng.integers(1980, 2016)}", f"{buyer} has {rng.integers(2, 40)}000 workers",
        f"investors had expected news for weeks", f"{company} lost money last year",
    ]
    distractors = background + [
        f"{rival} had offered {low} million dollars for {company}",
        f"last year {buyer} bought {_pick(rng, COMPANIES, (buyer, company, rival))} for {_pick(rng, PRICES)}"
        f" million dollars",
        f"talks between the two companies began in {_pick(rng, MONTHS, (month,))}",
        f"this is a great day for {company} said chief executive {_person(rng)}",
        f"shares of {buyer} rose {rng.integers(2, 12)} percent",
        f"analysts at {rival} called the price fair",
    ]
    return summary, result, [(f"for {money}", place), (f"in {month}", when)], both, background, distractors


def _storm(rng, held_out):
    name, city = _pair(rng, STORMS, CITIES, held_out)
    day, speed = _pick(rng, DAYS), _pick(rng, SPEEDS)
    winds = f"{speed} kilometres per hour"
    summary = f"storm {name} hit {city} on {day} with winds of {winds}"
    result = _pick(rng, [f"storm {name} hit {city}", f"storm {name} reached {city}", f"{city} was hit by storm {name}",
                         f"storm {name} swept across {city}"])
    place = [f"winds reached {winds}", f"gusts of {winds} were measured", f"the wind blew at {winds}"]
    when = [f"the storm arrived on {day}", f"the storm came on {day}"]
    both = [f"on {day} winds reached {winds}", f"the storm arrived on {day} with gusts of {winds}"]
    other_city, other_name = _pick(rng, CITIES, (city,)), _pick(rng, STORMS, (name,))
    background = [
        f"trees fell on many roads", f"{rng.integers(2, 90)}000 homes lost power",
        f"schools were closed for the day", f"the airport cancelled {rng.integers(20, 300)} flights",
        f"people were told to stay at home",
    ]
    distractors = background + [
        f"forecasters expect storm {other_name} to reach {other_city} on {_pick(rng, DAYS, (day,))}",
        f"last winter storm {_pick(rng, STORMS, (name, other_name))} brought winds of {_pick(rng, SPEEDS)}"
        f" kilometres per hour to {other_city}",
        f"in {_pick(rng, CITIES, (city, other_city))} the weather stayed calm",
        f"we have never seen anything like it said {_person(rng)}",
    ]
    return summary, result, [(f"with winds of {winds}", place), (f"on {day}", when)], both, background, distractors


KINDS = (_match, _takeover, _storm)


def _inline(rng, sentence, phrase):
    # Time and place may open the sentence ("on monday rovers beat ..."), others close it.
    if phrase.split()[0] in ("on", "in") and rng.random() < 0.5:
        return f"{phrase} {sentence}"
    return f"{sentence} {phrase}"


def _document(rng, held_out):
    """(document, summary) of one story."""
    kind = KINDS[rng.integers(len(KINDS))]
    summary, result, facts, both, background, distractors = kind(rng, held_out)
    # The two facts besides who did what to whom: both in one sentence of their own,
    # one or both inside the key sentence, or one sentence each.
    layout = rng.integers(5)
    if layout == 0:
        key = [result, _pick(rng, both)]
    elif layout in (1, 2):
        (inline, _), (_, own) = facts if layout == 1 else facts[::-1]
        key = [_inline(rng, result, inline), _pick(rng, own)]
    elif layout == 3:
        key = [result] + [_pick(rng, own) for _, own in facts]
    else:
        key = [_inline(rng, _inline(rng, result, facts[0][0]), facts[1][0])]
    count = int(rng.integers(MIN_SENTENCES, MAX_SENTENCES + 1)) - len(key)
    others = [distractors[i] for i in rng.permutation(len(distractors))[:count]]
    sentences = key + others
    order = [int(i) for i in rng.permutation(len(sentences))]
    if rng.random() < P_BACKGROUND_FIRST:
        # Open with background when one was drawn (a story rarely leads with its point here).
        opening = [i for i in order if sentences[i] in background] or [i for i in order if i >= len(key)]
        order.remove(opening[0])
        order.insert(0, opening[0])
    return " ".join(f"{sentences[i]}." for i in order), summary


def make_documents(n: int, seed: int, held_out: bool, exclude=frozenset()):
    """`n` distinct (document, summary) pairs, their entity pairs held out of train or not."""
    rng = np.random.default_rng(seed)
    documents, summaries, seen = [], [], set(exclude)
    while len(documents) < n:
        document, summary = _document(rng, held_out)
        sentences = document.count(".")
        if (document in seen or not MIN_SENTENCES <= sentences <= MAX_SENTENCES
                or not MIN_WORDS <= len(document.split()) <= MAX_WORDS):
            continue
        seen.add(document)
        documents.append(document)
        summaries.append(summary)
    return np.array(documents, dtype=object), np.array(summaries, dtype=object)


@functools.lru_cache(maxsize=None)
def _splits():
    splits, seen = {}, set()
    for split, (n, seed) in SPLITS.items():
        splits[split] = make_documents(n, seed, held_out=split != "train", exclude=seen)
        seen |= set(splits[split][0])
    return splits


# Documents hold at most 72 tokens (words and periods), summaries 13 words; the lengths
# leave room, and target_length counts [START].
SOURCE_LENGTH, TARGET_LENGTH = 80, 16


@register_dataset(task="seq2seq", options={"source_length": SOURCE_LENGTH, "target_length": TARGET_LENGTH},
                  citation="generated by zoo/data/synthetic_summaries.py")
def synthetic_summaries(split):
    """Generated news stories (matches, takeovers, storms) with one-sentence summaries of picked facts, offline."""
    return _splits()[split]
