"""The offline seq2seq sets: synthetic_translation and synthetic_summaries."""

import re

import numpy as np
import pytest

from zoo.data import synthetic_summaries as summaries, synthetic_translation as translation
from zoo.data.registry import get_dataset

MODULES = {"synthetic_translation": translation, "synthetic_summaries": summaries}
SPLITS = ("train", "validation", "test")


def _arrays(name, split):
    return get_dataset(name).arrays(split)


def _tokens(text):
    # As the seq2seq tokenizer splits: whitespace, punctuation at a word's ends split off.
    return re.findall(r"\w+|[^\w\s]", text)


@pytest.mark.parametrize("name", MODULES)
def test_sizes_lengths_and_options(name):
    dataset = get_dataset(name)
    assert dataset.task == "seq2seq" and dataset.offline and dataset.citation.endswith(f"{name}.py")
    for split in SPLITS:
        sources, targets = _arrays(name, split)
        assert len(sources) == len(targets) == MODULES[name].SPLITS[split][0]
        assert max(len(_tokens(s)) for s in sources) <= dataset.options["source_length"]
        # target_length holds [START] and the words; [END] follows the last word.
        assert max(len(t.split()) for t in targets) <= dataset.options["target_length"] - 2
        assert all(re.fullmatch(r"[a-z0-9]+( [a-z0-9]+)*", t) for t in targets)


@pytest.mark.parametrize("name, make", [("synthetic_translation", translation.make_pairs),
                                        ("synthetic_summaries", summaries.make_documents)])
def test_generation_is_deterministic(name, make):
    seed = MODULES[name].SPLITS["train"][1]
    first, again = make(50, seed, held_out=False), make(50, seed, held_out=False)
    sources, targets = _arrays(name, "train")
    for got in (first, again):  # the same arrays twice, and the head of the cached split
        np.testing.assert_array_equal(got[0], sources[:50])
        np.testing.assert_array_equal(got[1], targets[:50])


@pytest.mark.parametrize("name", MODULES)
def test_splits_are_disjoint_and_every_target_word_is_trained(name):
    seen, train_words = set(), {w for t in _arrays(name, "train")[1] for w in t.split()}
    for split in SPLITS:
        sources, targets = _arrays(name, split)
        assert len(set(sources)) == len(sources) and not seen & set(sources), split
        seen |= set(sources)
        if split != "train":
            assert {w for t in targets for w in t.split()} <= train_words, split


# ---------------------------------------------------------------- translation

EXAMPLES = {  # the docstring's pairs, checked by hand against its rules
    "my girl did not find my horses in the big houses":
        "simop mina zeramim viddai lai nu mokobes minei ko dufeznuat pa",
    "these small white girls will not wait near those gardens today":
        "simopim dofkai poksai ekai badokes osei pe odob magebnuant vi",
}


def test_translation_of_hand_picked_sentences():
    pairs = dict(zip(*_arrays("synthetic_translation", "train")))
    for source, target in EXAMPLES.items():
        assert pairs[source] == target


def test_translation_follows_tense_negation_object_and_agreement_rules():
    verbs = {form: verb for verb in translation.VERBS for form in verb[:3]}
    determiners = {stem + suffix: key for stem in translation.DETERMINERS.values()
                   for key, suffix in translation.ADJECTIVE_AGREEMENT.items()}
    agreement = {suffix: key for key, suffix in translation.VERB_AGREEMENT.items()}
    for source, target in zip(*_arrays("synthetic_translation", "train")):
        src, tgt = source.split(), target.split()
        tense = "past" if "did" in src or any(verbs.get(w, "")[2:3] == (w,) for w in src) else \
            "future" if "will" in src else "present"
        assert (tgt[-1] if tgt[-1] in ("pa", "vi") else None) == translation.TENSE_PARTICLE[tense], source
        verb_form = tgt[-2] if tense != "present" else tgt[-1]
        suffix = max((s for s in agreement if verb_form.endswith(s)), key=len)
        assert verb_form[:-len(suffix)].endswith(translation.NEGATION) == ("not" in src), source
        transitive = next(verbs[w][3] for w in src if w in verbs)
        assert tgt.count(translation.OBJECT_MARKER) == transitive, source
        # The verb agrees with the subject: the first determiner of the target is the subject's.
        subject_det = next(w for w in tgt if w in determiners)
        assert determiners[subject_det] == agreement[suffix], source


def _pairs(source):
    """(adjective, noun) and (subject noun, verb) lemma pairs of a source sentence."""
    nouns = {form: n[0] for n in translation.NOUNS for form in n[:2]}
    adjectives = {a for a, _ in translation.ADJECTIVES}
    verbs = {form: v[0] for v in translation.VERBS for form in v[:3]}
    words, pairs = source.split(), set()
    for i, word in enumerate(words):
        if word in nouns:
            pairs |= {(a, nouns[word]) for a in words[max(i - 2, 0):i] if a in adjectives}
    subject = next(nouns[w] for w in words if w in nouns)
    return pairs | {(subject, next(verbs[w] for w in words if w in verbs))}


def test_translation_test_sentences_hold_combinations_unseen_in_train():
    trained = set().union(*map(_pairs, _arrays("synthetic_translation", "train")[0]))
    for split in ("validation", "test"):
        assert all(_pairs(s) - trained for s in _arrays("synthetic_translation", split)[0])


# ---------------------------------------------------------------- summaries

TEMPLATE_WORDS = set("beat in on bought for million dollars storm hit with winds of kilometres per hour".split())
ENTITIES = set(summaries.TEAMS + summaries.COMPANIES + summaries.STORMS + summaries.CITIES + summaries.DAYS
               + summaries.MONTHS)


def test_summary_facts_are_in_the_document_but_not_in_its_first_sentence():
    documents, targets = _arrays("synthetic_summaries", "test")
    lead_has_all = distracted = 0
    for document, summary in zip(documents, targets):
        words, facts = _tokens(document), [w for w in summary.split() if w not in TEMPLATE_WORDS]
        assert set(facts) <= set(words), (document, summary)
        lead_has_all += set(facts) <= set(_tokens(document.split(".")[0]))
        distracted += bool((set(words) & ENTITIES) - set(facts))
    assert lead_has_all < 0.05 * len(documents)
    assert distracted > 0.9 * len(documents)  # another team, company, storm, place or time


def _entity_pair(summary):
    words = summary.split()
    return (words[1], words[3]) if words[0] == "storm" else (words[0], words[2])


def test_summary_test_pairs_are_unseen_in_train():
    trained = {_entity_pair(s) for s in _arrays("synthetic_summaries", "train")[1]}
    assert not trained & {_entity_pair(s) for s in _arrays("synthetic_summaries", "test")[1]}


def test_lead_sentence_baseline_scores_low():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    documents, targets = _arrays("synthetic_summaries", "test")
    lead = np.mean([scorer.score(t, d.split(".")[0])["rougeL"].fmeasure for d, t in zip(documents, targets)])
    assert lead < 0.4
