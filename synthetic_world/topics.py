"""The topics of the synthetic world and the captions and hashtags drawn from them.

Each of the 16 topics has 20 caption words, 8 hashtags and a typical video length. A video's text
is drawn mostly from its topics' vocabularies (plus generic filler), so captions and hashtags carry
topic signal a content model can learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Topic:
    """A content topic: its caption vocabulary, hashtags and typical video length."""

    name: str
    words: tuple[str, ...]
    hashtags: tuple[str, ...]
    median_duration_s: float


def _topic(name: str, words: str, hashtags: str, median_duration_s: float) -> Topic:
    return Topic(name, tuple(words.split()), tuple(f"#{h}" for h in hashtags.split()), median_duration_s)


TOPICS: tuple[Topic, ...] = (
    _topic(
        "cooking",
        "recipe pasta garlic oven bake kitchen sauce chef dinner spicy noodles dessert butter "
        "homemade grill dough flavor tasty meal ramen",
        "recipe foodtok cooking homemade easyrecipe chef dinner baking",
        35,
    ),
    _topic(
        "fitness",
        "workout gym squat cardio reps muscle protein abs stretch deadlift sweat training "
        "core lift plank routine gains mobility hiit pushups",
        "fitness gymtok workout gains legday fitcheck training hiit",
        30,
    ),
    _topic(
        "gaming",
        "gameplay boss level controller speedrun console loot clutch stream noob respawn "
        "ranked headshot lobby quest pixel glitch arcade combo victory",
        "gaming gamer twitch speedrun esports gameplay ps5 nintendo",
        25,
    ),
    _topic(
        "music",
        "guitar song melody beat piano vocals chorus album cover remix drums bass lyrics "
        "acoustic concert studio tune rhythm singer harmony",
        "music newmusic cover singer guitar piano producer livemusic",
        22,
    ),
    _topic(
        "dance",
        "choreo dance moves challenge steps groove tutorial popping spin hiphop ballet "
        "trend footwork duet freestyle twirl salsa rehearsal tempo stage",
        "dance dancechallenge choreography dancer hiphop ballet trend duet",
        15,
    ),
    _topic(
        "comedy",
        "prank joke skit funny laugh roast parody sketch awkward meme punchline hilarious "
        "standup blooper sarcasm impression silly comedian giggle pov",
        "comedy funny skit prank meme lol standup parody",
        18,
    ),
    _topic(
        "pets",
        "puppy kitten dog cat paws fluffy bark meow vet leash treats zoomies adopt rescue "
        "whiskers purr fetch hamster parrot cuddle",
        "pets dogsoftiktok catsoftiktok puppy kitten rescue cute petlover",
        14,
    ),
    _topic(
        "travel",
        "beach flight hotel island passport sunset mountains hike backpack roadtrip tokyo "
        "paris cruise resort airport itinerary hostel village waterfall explore",
        "travel wanderlust traveltok vacation roadtrip explore beach backpacking",
        28,
    ),
    _topic(
        "fashion",
        "outfit thrift denim sneakers jacket haul streetwear vintage dress closet style "
        "accessories boots runway tailoring linen capsule lookbook hoodie tote",
        "fashion ootd outfit thrift streetwear style haul vintage",
        20,
    ),
    _topic(
        "beauty",
        "makeup skincare lipstick foundation serum eyeliner blush contour glow primer "
        "moisturizer mascara nails brows concealer palette sunscreen toner lashes highlighter",
        "beauty makeup skincare grwm nails glowup makeuptutorial selfcare",
        32,
    ),
    _topic(
        "tech",
        "smartphone laptop unboxing gadget battery review chip camera keyboard setup coding "
        "software update specs benchmark charger headphones monitor app robot",
        "tech gadgets unboxing techtok coding setup review iphone",
        40,
    ),
    _topic(
        "sports",
        "goal dunk match highlights referee stadium striker buzzer penalty tennis football "
        "basketball sprint coach rookie championship dribble serve knockout league",
        "sports football nba soccer highlights goal tennis athlete",
        20,
    ),
    _topic(
        "diy",
        "woodworking paint drill crafts glue upcycle shelf restore sanding hack build tools "
        "project resin sewing knit decor garden planter pallet",
        "diy crafts woodworking homedecor upcycling lifehack maker handmade",
        45,
    ),
    _topic(
        "science",
        "experiment physics chemistry space planet telescope atoms lab molecule biology "
        "rocket gravity fossil microscope quantum reaction galaxy climate volcano eclipse",
        "science sciencetok space physics chemistry nasa experiment stem",
        38,
    ),
    _topic(
        "cars",
        "engine horsepower drift turbo exhaust supercar garage detailing wheels mechanic "
        "racetrack torque restoration electric sedan convertible burnout dyno gearbox carshow",
        "cars cartok supercar jdm carsoftiktok drift mechanic racing",
        26,
    ),
    _topic(
        "nature",
        "forest wildlife ocean birds river storm flowers whale camping sunrise desert bees "
        "jungle glacier meadow fox deer coral canyon aurora",
        "nature wildlife outdoors earth naturelover birds ocean hiking",
        24,
    ),
)
_GENERIC_TEXT = (
    "the this my you and wow so best new day today watch wait for it just finally look "
    "time love how what real part one more never again like that when your with try"
)
GENERIC_WORDS = tuple(_GENERIC_TEXT.split())  # filler words shared by every topic
GENERIC_HASHTAGS = ("#fyp", "#foryou", "#viral", "#trending", "#foryoupage", "#daily")
N_TOPICS = len(TOPICS)
_WORDS_PER_TOPIC = 20
_HASHTAGS_PER_TOPIC = 8
assert all(len(t.words) == _WORDS_PER_TOPIC and len(t.hashtags) == _HASHTAGS_PER_TOPIC for t in TOPICS)


def texts(rng: np.random.Generator, topic: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Captions (6-14 words) and 1-4 distinct hashtags, mostly from the videos' topics.

    Args:
        rng: the generator of the batch of videos (draw order is part of the world's definition).
        topic: main topic index per video, shape ``(n,)``.
        second: second topic index per video, ``-1`` where there is none, shape ``(n,)``.

    Returns:
        ``(captions, hashtags)``: object arrays of shape ``(n,)`` holding a string and a list of
        strings per video.
    """
    n = len(topic)
    vocab = np.array([w for t in TOPICS for w in t.words] + list(GENERIC_WORDS), dtype=object)
    tags = np.array([h for t in TOPICS for h in t.hashtags] + list(GENERIC_HASHTAGS), dtype=object)
    other = np.where(second >= 0, second, topic)[:, None]

    u = rng.random((n, 14))
    word_topic = np.where(u < 0.55, topic[:, None], other)
    topical = word_topic * _WORDS_PER_TOPIC + rng.integers(0, _WORDS_PER_TOPIC, (n, 14))
    generic = N_TOPICS * _WORDS_PER_TOPIC + rng.integers(0, len(GENERIC_WORDS), (n, 14))
    words = vocab[np.where(u < 0.72, topical, generic)]
    n_words = rng.integers(6, 15, n)

    v = rng.random((n, 4))
    tag_topic = np.where(v < 0.6, topic[:, None], other)
    topical_tags = tag_topic * _HASHTAGS_PER_TOPIC + rng.integers(0, _HASHTAGS_PER_TOPIC, (n, 4))
    generic_tags = N_TOPICS * _HASHTAGS_PER_TOPIC + rng.integers(0, len(GENERIC_HASHTAGS), (n, 4))
    picked = tags[np.where(v < 0.8, topical_tags, generic_tags)]
    n_tags = rng.integers(1, 5, n)

    captions = np.empty(n, dtype=object)
    hashtags = np.empty(n, dtype=object)
    for i in range(n):  # one short string per video, not per event
        captions[i] = " ".join(words[i, : n_words[i]])
        hashtags[i] = list(dict.fromkeys(picked[i, : n_tags[i]]))
    return captions, hashtags
