"""`synthetic_entities`: an offline named-entity set, BIO tags over PER, ORG, LOC and MISC.

Sentences are generated deterministically from 86 templates of news, business, sport,
culture, science and travel text, with realistic capitalisation: names and each
sentence's first word are capitalised, and so are some words outside any entity
("President", "Senator"). Entities run over several words ("Rio de Janeiro",
"Ana van Dijk", "the University of Lagos", where "the" is untagged), hold other
names ("Kenyan Airways" is an ORG, "Kenyan" alone MISC), come in lists ("Lima ,
Quito and Accra"), open sentences, and come several to a sentence. MISC holds
nationalities, languages, events and products.

It tests tagging, not memory: every name pool (first names, surnames, organisation
stems, acronyms, cities, countries, rivers and mountains, nationalities, languages) is
cut in fifths by position; train draws from three, validation from the fourth, test
from the fifth. So validation and test names are all unseen in training (and each
other), and validation predicts test. A model must tag a new name from its shape
(capitalised, not sentence-initial) and its context ("President _", "_ said", "in _",
"shares of _"): tagging each token with its most frequent training tag scores an
entity F1 of 3% on test, a logistic regression on word shape and neighbouring words
94%. A few ambiguous words are shared by every split on purpose, and only context
tells their readings apart: "Jordan" (a person or a country), "Washington", "Paris",
"Lincoln", "Georgia", "Chelsea" (a person, a place or a club), "Ford" (a person or a
company), "Apple" / "Amazon" / "Shell" / "Orange" / "Jaguar" (a company, or a common
noun: "Apple growers", "an apple", "the Amazon").

Tokens are words, numbers and single punctuation marks (, . ; : ( ) &); no token holds
whitespace, an apostrophe or a hyphen, so the text `tokens_to_text` makes (a space join)
splits back into the same tokens.
"""

from __future__ import annotations

import functools

import numpy as np

from zoo.data.registry import register_dataset

NAME = "synthetic_entities"
TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
SPLITS = {"train": (3000, 201), "validation": (300, 202), "test": (500, 203)}
MAX_TOKENS = 40
# Which fifths (by position, `index % 5`) of every name pool each split draws from.
POOL_PARTS = {"train": (0, 1, 2), "validation": (3,), "test": (4,)}

FIRST_NAMES = """James Maria Ahmed Yuki Olga Pedro Fatima Liam Chen Amara Lars Priya Kwame Sofia Mateo
Aisha Hiroshi Elena Tomasz Nadia Omar Ingrid Rafael Mei Kofi Lucia Dmitri Zara Arjun Freya Diego
Leila Sven Ana Hassan Clara Jin Bianca Emeka Isabel Pavel Noor Felix Rosa Tariq Greta Luis Hana
Viktor Chiara Musa Astrid Carlos Yasmin Oskar Irene Kenji Marta Samuel Alina Ravi Helen Bruno Amina
Nikolai Julia Tunde Sara Marco Esther Andrei Lina Thomas Grace Abdul Nora Peter Ayla Henrik Laura
Ibrahim Monica Jonas Ruth Paolo Keiko Daniel Ella Stefan Farah Victor Anton Beatriz Malik Ines
Gabriel Olivia Hamid Teresa Lukas Miriam Ming Zainab Erik Paula Rashid Alice Kai Dalia Martin Elif
Simon Agnes Yusuf Carmen Adrian Lotte Sandeep Vera Jorge Anya Nils Camila Emil Tobias Renata Boris
Ivy Hugo Selma Wanjiru Rohan Mira Dario Hilde Kemal Sunita Joao Marit Obinna Paulina Reza Tove
Akira Zofia Ismail Leona Bashir Eva Goran Noemi Chidi Katya""".split()
SURNAMES = """Smith Garcia Nakamura Okafor Petrov Rossi Kowalski Haddad Mensah Lindqvist Fernandes Sato
Novak Kaya Dubois Mwangi Jensen Santos Chowdhury Tanaka Moreau Bianchi Okonkwo Hansen Silva Kim Park
Nguyen Tran Osei Abubakar Cortez Schmidt Fischer Weber Becker Wagner Keller Bauer Nilsson Larsen Berg
Virtanen Korhonen Horvat Popescu Ionescu Dimitrov Georgiou Papadopoulos Yilmaz Demir Celik Sharma
Gupta Patel Singh Rao Iyer Mehta Khan Hussain Rahman Karimi Tehrani Haidari Mahmoud Saleh Nasser
Farouk Diallo Traore Keita Toure Ndiaye Banda Phiri Moyo Dlamini Nkosi Achebe Adeyemi Balogun Eze
Nwosu Mutua Otieno Kariuki Wright Turner Hughes Evans Walker Hall Clarke Baker Price Reed Cooper
Bell Ward Murphy Kelly Byrne Walsh Doyle Brennan Sullivan Fraser Campbell Stewart Ross Grant Reid
Morales Torres Ramirez Flores Vargas Castillo Ortega Mendoza Rojas Herrera Medina Aguilar Navarro
Romero Delgado Wong Chan Liu Zhang Wang Huang Zhao Yamamoto Watanabe Suzuki Kobayashi Choi Jung
Kang Pham Bui Nagy Szabo Kovacs Varga Molnar Andersen Pedersen Eriksen Holm Dahl Lund Aalto Laine
Salo Dijk Souza Oliveira Ferreira Almeida Moretti Greco Conti""".split()
# Lowercase particles inside a full name: "Ana van Dijk" is one PER of three tokens.
PARTICLES = "van de da von al di del".split()
ORG_STEMS = """Northwind Bluepeak Vantor Helix Orbitel Quantra Solvane Brightwater Ironbridge Kestrel
Meridian Corvia Tessaro Alvion Zentrix Nordika Pinecrest Redfield Silverline Stonegate Trident
Veridian Westmark Halcyon Arcturus Lumina Caldera Granite Harbor Atlas Borealis Cobalt Dynamo Equinox
Falcon Greystone Horizon Ionix Juniper Keystone Lattice Mosaic Nimbus Obsidian Pioneer Quasar Radiant
Sterling Titan Umbra Vector Wavecrest Xenon Yarrow Zephyr Aurora Beacon Crescent Ember Glacier
Highland Ivorine Jasper Kinetic Lunar Magnolia Nova Onyx Prism Quill Riverside Sapphire Tundra Valiant
Willow Zenith Amberly Brookstone Clearwater Driftwood Evergreen Foxglove Goldcrest Hawthorn Ironwood
Kingsley Larkspur Millbrook Northgate Oakridge Pemberton Rosewood Southbank Thornbury Velora Castellan
Brightline Duratek Fenwick Garrow""".split()
ACRONYMS = """KTB ZNF QRM BVX DLT HMK PXR TSN WGC RFL CJV NBQ MDX GHT LZK SFR VKP YTM JQD XNB ARQ EKT
OMV PLD UFG IWB ZRT KDM QNV BHS FTX NLG RVC TKQ GZM HWD MXL SBK VPN CRT DKZ JNF WMB XQT PGL LHV
BRZ NKT QFM YDS ZVH""".split()
ORG_SUFFIXES = ("Systems Industries Bank Group Airlines Motors Energy Holdings Pharmaceuticals Technologies "
                "Labs Partners Foods Media Insurance Capital Logistics Telecom Mining Studios Foundation "
                "Institute").split()
CITIES = """Lagos Nairobi Accra Kampala Dakar Tunis Cairo Casablanca Lima Quito Bogota Caracas Montevideo
Havana Lisbon Madrid Porto Seville Valencia Milan Turin Naples Munich Hamburg Cologne Vienna Prague
Warsaw Krakow Budapest Bucharest Athens Istanbul Ankara Tehran Baghdad Beirut Amman Doha Dubai Riyadh
Karachi Lahore Delhi Mumbai Chennai Kolkata Dhaka Colombo Kathmandu Bangkok Hanoi Manila Jakarta Seoul
Busan Osaka Kyoto Tokyo Shanghai Beijing Taipei Melbourne Perth Auckland Wellington Toronto Montreal
Vancouver Chicago Boston Denver Seattle Atlanta Miami Phoenix Detroit Oslo Bergen Stockholm Helsinki
Copenhagen Dublin Cork Glasgow Edinburgh Leeds Bristol Lyon Marseille Bordeaux Geneva Zurich Basel
Rotterdam Antwerp Brussels Riga Tallinn Vilnius Kyiv Minsk Tbilisi Yerevan Baku Almaty Tashkent
Hobart Durban Harare Lusaka Maputo Luanda Kinshasa""".split() + [
    "Addis Ababa", "Buenos Aires", "Rio de Janeiro", "Sao Paulo", "New Delhi", "Kuala Lumpur",
    "Hong Kong", "Cape Town", "Tel Aviv", "Abu Dhabi", "Los Angeles", "San Francisco", "New York",
    "Mexico City", "Panama City"]
COUNTRIES = """Kenya Ghana Nigeria Senegal Ethiopia Uganda Tanzania Morocco Egypt Peru Ecuador Colombia
Chile Argentina Uruguay Cuba Portugal Spain Italy Germany Austria Poland Hungary Romania Greece Lebanon
Qatar Pakistan India Nepal Thailand Vietnam Indonesia Malaysia Japan Canada Mexico Brazil Norway Sweden
Finland Denmark Ireland Scotland France Switzerland Belgium Latvia Estonia Lithuania
Ukraine Armenia Azerbaijan Kazakhstan Mongolia Zambia Zimbabwe Mozambique Angola Bolivia Paraguay
Iceland Croatia Serbia""".split() + [
    "South Africa", "New Zealand", "Sri Lanka", "Costa Rica", "Saudi Arabia", "South Korea",
    "the Czech Republic", "the United States", "the United Kingdom", "Ivory Coast", "the Netherlands",
    "the Philippines", "the Bahamas"]
# Stems of rivers, lakes, mountains and islands ("the Tamsa River", "Mount Orvel").
GEO_STEMS = """Tamsa Orvel Kesra Belvin Dunmar Ostra Vellan Karsa Mirren Sotra Halden Brisa Corran Ulva
Tarn Eskel Morva Nerin Pallis Rhone Saba Tovar Ardel Benna Cleva Drava Elnor Faro Garda Hesta Ivel
Kelda Lorna Maren Nysa Oder Parsa Quella Ranna Selva Tiber Vesta Wenna""".split()
NATIONALITIES = """Kenyan Ghanaian Nigerian Senegalese Ethiopian Ugandan Moroccan Egyptian Peruvian Chilean
Argentine Cuban Portuguese Spanish Italian German Austrian Polish Hungarian Romanian Greek Lebanese
Pakistani Indian Nepalese Thai Vietnamese Indonesian Malaysian Japanese Korean Canadian Mexican
Brazilian Norwegian Swedish Finnish Danish Irish Scottish French Swiss Belgian Dutch Latvian Estonian
Ukrainian Armenian Mongolian Zambian Icelandic Croatian Serbian Chinese Australian American British
Russian Colombian Bolivian Tanzanian Cambodian""".split()
# Nationality words that also name a language ("Spanish"); a language slot draws these
# from the split's nationality pool, so they stay in the same split either way.
LANGUAGE_NATIONALITIES = set("""Portuguese Spanish Italian German Polish Hungarian Romanian Greek Japanese
Korean Norwegian Swedish Finnish Danish Irish French Dutch Latvian Estonian Ukrainian Armenian Mongolian
Icelandic Croatian Serbian Chinese Russian Vietnamese Indonesian Thai""".split())
# Languages that are no nationality word.
LANGUAGES = """Swahili Yoruba Hausa Amharic Tagalog Urdu Hindi Bengali Tamil Catalan Basque Welsh Quechua
Esperanto Farsi Pashto Igbo Xhosa Sinhala Khmer Gujarati Punjabi Maori Galician Sami""".split()
PRODUCT_MODELS = "X5 Z10 Pro Air Mini Ultra One Max S20 Go Lite 3 7 Neo Flex".split()

# Shared by every split on purpose: only context tells the readings apart.
AMBIGUOUS_FIRST = "Jordan Paris Georgia Chelsea Florence Victoria Sydney Austin Madison Dakota Santiago".split()
AMBIGUOUS_LAST = "Jordan Washington Lincoln Ford Houston".split()
AMBIGUOUS_LOC = ("Jordan Washington Paris Lincoln Georgia Chelsea Florence Victoria Sydney Austin Madison "
                 "Houston Santiago Turkey China Nice").split() + ["North Dakota"]
AMBIGUOUS_ORG = "Apple Amazon Shell Orange Jaguar Ford Chelsea".split()
P_AMBIGUOUS = 0.1

ROLES = ["chief executive", "finance minister", "spokesman", "spokeswoman", "coach", "founder",
         "director", "chairman", "head of research", "captain", "mayor", "chief economist", "lawyer",
         "treasurer", "deputy leader", "editor"]
TITLES = ["President", "Minister", "Dr", "Professor", "Mr", "Mrs", "Ms", "Judge", "Coach", "General",
          "Senator", "Captain", "Ambassador"]
MONTHS = "January February March April May June July August September October November December".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
ORDINALS = ["second", "third", "fourth", "fifth", "sixth", "seventh"]
NUMBERS = [str(k) for k in range(2, 60)]
YEARS = [str(k) for k in range(1950, 2025)]
SUBJECTS = ["law", "medicine", "economics", "physics", "music", "history", "engineering", "chemistry"]

# Slots: {PER} {FIRST} {LAST} (the surname of the sentence's last person) {ORG} {CLUB}
# {UNIV} {AIRLINE} {ACRO} {LOC} {CITY} {COUNTRY} {RIVER} {MOUNTAIN} {LAKE} {NAT} {LANG}
# {EVENT} {PRIZE} {PRODUCT}, lists {PERS} {ORGS} {LOCS} {CITIES} {COUNTRIES} {NATS}, and
# untagged fillers {role} {title} {num} {ordinal} {year} {month} {day} {subject}.
TEMPLATES = [
    # business
    "{ORG} said on {day} that it would open a new office in {CITY} .",
    "Shares of {ORG} fell {num} percent after the company warned about weak demand in {COUNTRY} .",
    "{ORG} agreed to buy {ORG} for {num} million dollars , people familiar with the deal said .",
    "{PER} , the {role} of {ORG} , will step down in {month} .",
    "{ORG} hired {PER} from {ORG} to lead its business in {LOCS} .",
    "Analysts at {ORG} expect the {PRODUCT} to sell well in {COUNTRY} .",
    "The {PRODUCT} , made by {ORG} , goes on sale in {month} .",
    "{ORG} reported higher profits in {LOCS} but lower sales at home .",
    "{PER} founded {ORG} in {CITY} in {year} .",
    "In {year} , {ORG} moved its headquarters from {CITY} to {CITY} .",
    "{ORG} ( {ACRO} ) opened a branch in {CITY} on {day} .",
    "{ORGS} have all cut prices in {COUNTRY} .",
    "The {NAT} company {ORG} makes parts for the {PRODUCT} .",
    "{ORG} to cut {num} jobs in {COUNTRY} ; unions in {CITY} plan a strike .",
    "Sales of the {PRODUCT} in {COUNTRY} doubled after {PER} praised it online .",
    "{PERS} were named to the board of {ORG} .",
    "{ACRO} , the {NAT} regulator , fined {ORG} {num} million dollars .",
    # politics
    "{title} {PER} met {NAT} officials in {CITY} on {day} .",
    "{PER} , the {NAT} foreign minister , arrived in {CITY} for talks with {PER} .",
    "The talks between {COUNTRY} and {COUNTRY} resumed in {CITY} after a pause of {num} weeks .",
    "Minister {PER} said the government of {COUNTRY} would not change its plans .",
    "Officials from {COUNTRIES} signed the agreement in {CITY} .",
    "{PER} won the election in {LOC} with {num} percent of the vote .",
    "Protesters gathered outside the {NAT} embassy in {CITY} on {day} .",
    "The mayor of {CITY} , {PER} , opened a new bridge over {RIVER} .",
    "The {NAT} ambassador to {COUNTRY} , {PER} , was recalled on {day} .",
    "According to {PER} , the {NAT} economy will grow by {num} percent this year .",
    "The {NAT} and {NAT} delegations left {CITY} without an agreement .",
    "{LOC} : {num} people were hurt when a bus crashed near {CITY} .",
    "Senator {PER} asked whether {ORG} had paid any tax in {LOC} .",
    # sport
    "{PER} scored twice as {CLUB} beat {CLUB} {num} to {num} in {CITY} .",
    "{PER} won the {EVENT} for the {ordinal} time .",
    "The {NAT} team arrived in {CITY} for the {EVENT} .",
    "{PER} of {COUNTRY} finished second behind {PER} at the {EVENT} .",
    "{CLUB} signed the {NAT} striker {PER} on a {num} year contract .",
    "Coach {PER} named {PERS} in the squad to face {COUNTRY} .",
    "{PER} broke the course record at the {EVENT} on {day} .",
    "Police in {CITY} arrested {num} people after the match between {CLUB} and {CLUB} .",
    "Fans of {CLUB} celebrated in the streets of {CITY} until morning .",
    "{LAST} , who joined {CLUB} from {CLUB} in {year} , is out for {num} weeks .",
    # culture
    "The novel by {PER} was translated from {LANG} into {LANG} .",
    "{PER} speaks {LANG} , {LANG} and {LANG} .",
    "The film , directed by {PER} , premiered at the {EVENT} .",
    "{PER} and {PER} will perform at the {EVENT} in {month} .",
    "The {NAT} author {PER} won the {PRIZE} for her latest book .",
    "A show of {NAT} painting opens next week at a gallery in {CITY} run by {ORG} .",
    "Most people in {LOC} speak {LANG} at home and {LANG} at school .",
    "{PER} wrote the songs in {LANG} ; the band recorded them in {CITY} .",
    "The {EVENT} will take place in {CITY} from {num} to {num} {month} .",
    "Tourists from {COUNTRIES} filled the hotels of {CITY} during the {EVENT} .",
    # science and technology
    "Researchers at {UNIV} found that the drug worked in {num} of {num} patients .",
    "{PER} , a professor at {UNIV} , led the study with colleagues from {ORG} .",
    "The {PRODUCT} uses a chip designed by {ORG} in {CITY} .",
    "{ORG} released an update for the {PRODUCT} on {day} .",
    "Scientists from {COUNTRY} and {COUNTRY} will study the glaciers on {MOUNTAIN} .",
    "{PER} studied {subject} at {UNIV} before joining {ORG} .",
    "Dr {PER} of {UNIV} said the results surprised her team .",
    "A team led by {PER} and {PER} mapped the floor of {LAKE} .",
    # travel and places
    "Flights from {CITY} to {CITY} were cancelled because of the storm .",
    "{RIVER} flows through {LOCS} before it reaches the sea .",
    "We spent {num} days in {CITY} and then took the train to {CITY} .",
    "{MOUNTAIN} is the highest peak in {COUNTRY} .",
    "{AIRLINE} will start direct flights between {CITY} and {CITY} in {month} .",
    "Heavy rain flooded parts of {LOC} and {LOC} on {day} .",
    "The road from {CITY} to {LAKE} was closed for repairs .",
    "{CITY} , the capital of {COUNTRY} , has grown by {num} percent since {year} .",
    "{CITIES} are the most visited cities in {COUNTRY} .",
    # people and courts
    "{FIRST} moved to {CITY} when she was {num} .",
    "My friend {FIRST} works for {ORG} in {CITY} .",
    "{PER} was born in {CITY} , {COUNTRY} , in {year} .",
    "{PER} told reporters in {CITY} that {ORG} had done nothing wrong .",
    "Judge {PER} ruled that {ORG} must pay {num} million dollars to {PER} .",
    "Lawyers for {PER} said they would appeal the decision ; {LAST} denies the charges .",
    "{PER} , who grew up in {LOC} , now lives in {CITY} with her family .",
    "{PER} and her husband {PER} run a small bakery in {CITY} .",
    "He asked whether {PER} had ever visited {LOC} .",
    "{NATS} fans travelled to {CITY} for the final .",
    # common nouns that are also names: untagged here, tagged where a slot draws them
    "{FIRST} ate an apple and an orange on the train to {CITY} .",
    "{PER} cooked a turkey for {num} guests at her home in {CITY} .",
    "Apple growers in {COUNTRY} expect a smaller harvest this year .",
    "Orange trees line the streets of {CITY} .",
    "The shops in {CITY} sell fine china and old silver .",
    "A jaguar was seen near a village in {COUNTRY} last week .",
    "{FIRST} found a shell on the beach near {CITY} .",
    "The weather in {CITY} was nice , so {FIRST} walked to work .",
    "Shell companies in {LOC} hid the money , {PER} said .",
]


def _parts(names, split):
    return [name for i, name in enumerate(names) if i % 5 in POOL_PARTS[split]]


@functools.lru_cache(maxsize=None)
def _pools(split):
    if split not in POOL_PARTS:
        raise ValueError(f"synthetic_entities has no split {split!r}; its splits are {', '.join(POOL_PARTS)}.")
    pools = dict(first=FIRST_NAMES, last=SURNAMES, stem=ORG_STEMS, acronym=ACRONYMS, city=CITIES,
                 country=COUNTRIES, geo=GEO_STEMS, nationality=NATIONALITIES, language=LANGUAGES)
    return {key: _parts(names, split) for key, names in pools.items()}


class _Sentence:
    """Fills one template: tokens, their tags, and the last person named (for {LAST})."""

    def __init__(self, rng, pools):
        self.rng, self.pools = rng, pools
        self.tokens, self.tags, self.last_surname = [], [], None

    def pick(self, items):
        return items[self.rng.integers(len(items))]

    def chance(self, p):
        return self.rng.random() < p

    def add(self, words, kind=None):
        # `kind` None: untagged words; else one entity, B- on its first token.
        for i, word in enumerate(words.split()):
            self.tokens.append(word)
            self.tags.append("O" if kind is None else f"{'I' if i else 'B'}-{kind}")

    def the(self, words, kind):
        # "the" before an ORG, LOC or MISC name is no part of it.
        self.add("the")
        self.add(words, kind)

    def person(self):
        p = self.pools
        first = self.pick(AMBIGUOUS_FIRST) if self.chance(P_AMBIGUOUS) else self.pick(p["first"])
        last = self.pick(AMBIGUOUS_LAST) if self.chance(P_AMBIGUOUS) else self.pick(p["last"])
        if last == first:  # "Jordan Jordan"
            last = self.pick(p["last"])
        form = self.rng.random()
        if form < 0.08:
            name = last  # surname alone, as a second mention would be
        elif form < 0.16:
            name = f"{first} {self.pick(PARTICLES)} {last}"
        elif form < 0.22:
            name = f"{first} {self.pick(p['first'])} {last}"
        else:
            name = f"{first} {last}"
        self.last_surname = last
        self.add(name, "PER")

    def first_name(self):
        self.add(self.pick(AMBIGUOUS_FIRST) if self.chance(P_AMBIGUOUS) else self.pick(self.pools["first"]), "PER")

    def organisation(self):
        p, form = self.pools, self.rng.random()
        if self.chance(P_AMBIGUOUS):
            self.add(self.pick(AMBIGUOUS_ORG), "ORG")
        elif form < 0.4:
            self.add(f"{self.pick(p['stem'])} {self.pick(ORG_SUFFIXES)}", "ORG")
        elif form < 0.55:
            self.add(self.pick(p["stem"]), "ORG")
        elif form < 0.65:
            self.add(f"{self.pick(p['last'])} & {self.pick(p['last'])}", "ORG")
        elif form < 0.75:
            self.add(self.pick(p["acronym"]), "ORG")
        elif form < 0.85:
            self.the(f"Bank of {self.pick(p['country']).removeprefix('the ')}", "ORG")
        elif form < 0.93:
            suffix = self.pick(["Airlines", "Telecom", "Railways", "Post"])
            self.add(f"{self.pick(p['nationality'])} {suffix}", "ORG")
        else:
            self.add(f"{self.pick(p['city']).removesuffix(' City')} City Council", "ORG")

    def club(self):
        if self.chance(0.1):
            self.add("Chelsea", "ORG")
            return
        city = self.pick(self.pools["city"])
        suffixes = ["United", "Rovers", "Athletic", "Wanderers"] + ([] if city.endswith("City") else ["City"])
        self.add(f"{city} {self.pick(suffixes)}", "ORG")

    def university(self):
        p = self.pools
        if self.chance(0.5):
            self.the(f"University of {self.pick(p['city'])}", "ORG")
        else:
            self.add(f"{self.pick(p['stem'])} {self.pick(['University', 'Institute', 'College'])}", "ORG")

    def airline(self):
        p = self.pools
        self.add(f"{self.pick(p['nationality'] + p['stem'])} {self.pick(['Airlines', 'Airways', 'Air'])}", "ORG")

    def location(self):
        p, form = self.pools, self.rng.random()
        if self.chance(P_AMBIGUOUS):
            if self.chance(0.15):
                self.the(self.pick(["Amazon", "Amazon River", "Jordan River"]), "LOC")
            else:
                self.add(self.pick(AMBIGUOUS_LOC), "LOC")
        elif form < 0.5:
            self.add(self.pick(p["city"]), "LOC")
        elif form < 0.8:
            self.country()
        else:
            self.pick([self.river, self.mountain, self.lake])()

    def country(self):
        name = self.pick(self.pools["country"])
        if name.startswith("the "):
            self.the(name[4:], "LOC")
        else:
            self.add(name, "LOC")

    def river(self):
        self.the(f"{self.pick(self.pools['geo'])} River", "LOC")

    def mountain(self):
        stem = self.pick(self.pools["geo"])
        if self.chance(0.7):
            self.add(f"Mount {stem}", "LOC")
        else:
            self.the(f"{stem} Mountains", "LOC")

    def lake(self):
        self.add(f"Lake {self.pick(self.pools['geo'])}", "LOC")

    def event(self):
        p, form = self.pools, self.rng.random()
        if form < 0.25:
            suffix = self.pick(["Marathon", "Film Festival", "Book Fair", "Jazz Festival"])
            self.add(f"{self.pick(p['city'])} {suffix}", "MISC")
        elif form < 0.5:
            self.add(f"{self.pick(p['nationality'])} {self.pick(['Open', 'Grand Prix', 'Cup', 'Masters'])}", "MISC")
        elif form < 0.65:
            self.add(self.pick(["World Cup", "Olympic Games", "Champions League", "Tour de France"]), "MISC")
        else:
            self.add(f"{self.pick(p['stem'])} {self.pick(['Cup', 'Classic', 'Festival', 'Games', 'Awards'])}", "MISC")

    def prize(self):
        self.add(f"{self.pick(self.pools['last'])} Prize", "MISC")

    def product(self):
        self.add(f"{self.pick(self.pools['stem'])} {self.pick(PRODUCT_MODELS)}", "MISC")

    def language(self):
        p = self.pools
        spoken = [n for n in p["nationality"] if n in LANGUAGE_NATIONALITIES]
        self.add(self.pick(p["language"] if self.chance(0.6) else spoken), "MISC")

    def listing(self, fill):
        # "A , B and C": two to four entities, commas untagged.
        n = int(self.rng.integers(2, 5))
        for i in range(n):
            fill()
            if i < n - 2:
                self.add(",")
            elif i == n - 2:
                self.add("and")

    def fill(self, slot):
        p = self.pools
        entities = {
            "PER": self.person, "ORG": self.organisation, "CLUB": self.club, "UNIV": self.university,
            "AIRLINE": self.airline, "LOC": self.location, "RIVER": self.river, "MOUNTAIN": self.mountain,
            "LAKE": self.lake, "EVENT": self.event, "PRIZE": self.prize, "PRODUCT": self.product,
            "LANG": self.language,
            "FIRST": self.first_name,
            "ACRO": lambda: self.add(self.pick(p["acronym"]), "ORG"),
            "CITY": lambda: self.add(self.pick(p["city"]), "LOC"),
            "COUNTRY": self.country,
            "NAT": lambda: self.add(self.pick(p["nationality"]), "MISC"),
        }
        lists = {"PERS": "PER", "ORGS": "ORG", "LOCS": "LOC", "CITIES": "CITY", "COUNTRIES": "COUNTRY",
                 "NATS": "NAT"}
        fillers = {"role": ROLES, "title": TITLES, "month": MONTHS, "day": DAYS, "subject": SUBJECTS,
                   "ordinal": ORDINALS, "num": NUMBERS, "year": YEARS}
        if slot in entities:
            entities[slot]()
        elif slot in lists:
            self.listing(entities[lists[slot]])
        elif slot == "LAST":
            self.add(self.last_surname or self.pick(p["last"]), "PER")
        else:
            self.add(self.pick(fillers[slot]))


def _sentence(rng, pools):
    sentence = _Sentence(rng, pools)
    for word in TEMPLATES[rng.integers(len(TEMPLATES))].split():
        if word.startswith("{"):
            sentence.fill(word[1:-1])
        else:
            sentence.add(word)
    tokens = sentence.tokens
    tokens[0] = tokens[0][0].upper() + tokens[0][1:]  # "the Bank of ..." opens as "The Bank of ..."
    return tokens, sentence.tags


def make_sentences(n: int, seed: int, split: str) -> tuple[list[list[str]], list[list[str]]]:
    """`n` sentences as token lists and their tag names (from TAGS), names from `split`'s pools."""
    rng = np.random.default_rng(seed)
    pools = _pools(split)
    sentences, tags = [], []
    while len(sentences) < n:
        tokens, labels = _sentence(rng, pools)
        if len(tokens) <= MAX_TOKENS:  # long lists can overflow; draw again
            sentences.append(tokens)
            tags.append(labels)
    return sentences, tags


def tokens_to_text(tokens) -> str:
    """The sentence as text: tokens joined by spaces. Every punctuation mark is its own
    token and no token holds whitespace, so the served model's in-graph splitter (which
    separates punctuation, then splits on whitespace) gives back exactly `tokens`."""
    return " ".join(tokens)


@functools.lru_cache(maxsize=None)
def _splits():
    return {split: make_sentences(n, seed, split) for split, (n, seed) in SPLITS.items()}


# 40 tokens hold every sentence (lists are the longest; longer draws are dropped).
@register_dataset(task="token_classification", label_names=TAGS, options={"sequence_length": MAX_TOKENS})
def synthetic_entities(split):
    """Generated sentences tagged BIO over PER, ORG, LOC and MISC, test names unseen in train, offline."""
    import tensorflow as tf

    tokens, tags = _splits()[split]
    tag_ids = [[TAGS.index(tag) for tag in sentence] for sentence in tags]
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.ragged.constant(tokens, dtype=tf.string), tf.ragged.constant(tag_ids, dtype=tf.int64)))
    # Rows of a ragged tensor come out typed as RaggedTensorSpec (ragged_rank 0), which
    # `padded_batch` refuses; an identity map retypes them as plain TensorSpec [None].
    return ds.map(lambda tokens, tag_ids: (tokens, tag_ids))
