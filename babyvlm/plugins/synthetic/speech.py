"""Language of the synthetic world: a caregiver's child-directed speech and an adult narrator's Ego4D narrations.

Caregiver utterances are timed against what the camera sees: most label or ask about a visible object
(the most salient one, by visible area), some count several objects of one kind, some talk about
things that are not in view, some are plain chatter, and the child sometimes vocalises. Speech is
noisy the way real speech is (fillers, repetitions). Three renderings of each utterance exist: the
truth (what was said), the human transcriber's line (capitalised, punctuated, with ``*actions*``,
``[notes]``, ``(asides)`` and ``--``) and the ASR hypothesis (lower case, fillers dropped, some
words misrecognised).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from babyvlm.plugins.synthetic.vocabulary import BY_NAME, Category, development
from babyvlm.plugins.synthetic.world import Event, Visible

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]

LABEL_YOUNG = ["{obj}!", "look, {a} {obj}!", "that's {a} {obj}.", "see the {obj}?", "hi {obj}!", "look at the {obj}!",
               "oh, {a} {obj}!", "{obj}, {obj}!"]
LABEL_OLDER = ["can you give me the {obj}?", "where's the {obj}?", "is that {a} {obj}?", "you want the {obj}?",
               "the {obj} is {colour}.", "look at the {colour} {obj}!", "what's that? that's {a} {obj}.",
               "put the {obj} in there.", "can you get the {obj}?", "there's the {obj}!", "be gentle with the {obj}."]
PAIR = ["do you want the {obj} or the {obj2}?", "the {obj} and the {obj2}!", "look, {a} {obj} and {a2} {obj2}."]
COUNT = ["{n} {objs}!", "look, {n} {objs}.", "how many {objs}? {n}!", "so many {objs}!", "let's count the {objs}. {count}!"]
EVENT = {"enter": ["here comes the {obj}!", "oh, who brought the {obj}?", "look, the {obj}!"],
         "leave": ["bye bye {obj}!", "where's the {obj} going?", "oh, the {obj} is going away."],
         "move": ["whoa, the {obj}!", "who's moving the {obj}?", "there goes the {obj}."],
         "roll": ["the {obj} is rolling!", "roll the {obj}!", "uh oh, the {obj} rolled away."]}
ABSENT_GONE = ["where did the {obj} go?", "where's the {obj}? all gone!", "the {obj} went away."]
ABSENT = ["do you want your {obj}?", "let's find the {obj}.", "daddy has the {obj}.", "we'll get the {obj} later.",
          "remember the {obj}?", "is the {obj} upstairs?"]
CHATTER = ["good job!", "are you hungry?", "what are you doing?", "okay.", "uh oh!", "let's go.", "you're so silly!",
           "yeah.", "all done.", "come here.", "peekaboo!", "that's right.", "mm hmm.", "say hi!", "are you tired?",
           "no no no.", "what's that noise?", "you did it!", "wanna go outside?", "I love you."]
FILLERS = ["um", "oh", "uh", "so", "okay", "hey"]
CHILD_WORDS = ["mama", "dada", "uh oh", "no", "more", "bye bye", "hi"]

ASR_CONFUSIONS = {"the": "a", "you": "ya", "want": "wanna", "that's": "that", "is": "as", "look": "luke", "at": "that",
                  "ball": "bowl", "cat": "hat", "duck": "dock", "cup": "cop", "book": "look", "bear": "bare",
                  "sock": "soc", "key": "he", "car": "far", "dog": "dug"}


@dataclass(frozen=True)
class SpokenUtterance:
    start: float  # seconds
    end: float
    role: str  # mother | father | child
    kind: str  # visible | pair | count | event | absent | chatter | child | babble
    line: str  # as written: punctuated, child-directed register
    mentions: tuple[str, ...]  # vocabulary words in the utterance
    visible: tuple[str, ...]  # of those, the ones visible while it was said

    @property
    def text(self) -> str:
        """What was said, normalised: lower case, no punctuation (empty for non-speech)."""
        return normalise(self.line)


def normalise(line: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", line.lower()).split())


def mentioned(text: str) -> tuple[str, ...]:
    """Vocabulary words (singular or plural) in ``text``, in order, without repeats."""
    words, found = normalise(text).split(), []
    plural_of = {c.plural: c.name for c in BY_NAME.values()}
    for word in words:
        name = word if word in BY_NAME else plural_of.get(word)
        if name and name not in found:
            found.append(name)
    return tuple(found)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class CaregiverSpeech:
    """Generates one video's utterances from what is visible frame by frame."""

    def __init__(self, rng: np.random.Generator, *, visibility: list[list[Visible]], events: list[Event], fps: float,
                 age_months: float, vocabulary: tuple[Category, ...], caregivers: tuple[str, str]):
        self.rng, self.visibility, self.events, self.fps = rng, visibility, events, fps
        self.age, self.p = age_months, development(age_months)
        self.vocabulary = vocabulary
        self.primary, self.secondary = caregivers
        self.duration = len(visibility) / fps

    def utterances(self) -> list[SpokenUtterance]:
        out: list[SpokenUtterance] = []
        t = float(self.rng.uniform(0.3, 2.0))
        while True:
            line, kind, role = self._compose(t)
            seconds = 0.45 + 0.3 * max(1, len(line.split())) + float(self.rng.uniform(0, 0.4))
            end = t + seconds
            if end > self.duration - 0.2:
                break
            mentions = mentioned(line)
            seen = self._seen(t, end)
            out.append(SpokenUtterance(round(t, 3), round(end, 3), role, kind, line, mentions,
                                       tuple(m for m in mentions if m in seen)))
            # speech is at least ~1.4 s apart, so every utterance starts in its own second of the CSV
            t = end + 0.8 + float(self.rng.exponential(2.2 - 0.8 * self.p))
        return out

    # ---- what is in view ----------------------------------------------------------------
    def _frames(self, start: float, end: float) -> range:
        first = min(len(self.visibility) - 1, int(start * self.fps))
        return range(first, max(first + 1, min(len(self.visibility), int(np.ceil(end * self.fps)))))

    def _seen(self, start: float, end: float) -> set[str]:
        return {v.category for i in self._frames(start, end) for v in self.visibility[i]}

    def _salience(self, start: float, end: float) -> tuple[Counter, Counter]:
        """Visible area per category and the largest number of one category seen at once."""
        area, count = Counter(), Counter()
        for i in self._frames(start, end):
            per_frame = Counter(v.category for v in self.visibility[i])
            for v in self.visibility[i]:
                area[v.category] += v.area
            for name, n in per_frame.items():
                count[name] = max(count[name], n)
        return area, count

    # ---- composing ----------------------------------------------------------------------
    def _compose(self, t: float) -> tuple[str, str, str]:
        rng = self.rng
        role = self.primary if rng.random() < 0.8 else self.secondary
        if rng.random() < 0.05 + 0.04 * self.p:
            return self._child(t), "child" if self.age >= 12 else "babble", "child"
        area, count = self._salience(t, t + 1.5)
        event = next((e for e in self.events if t - 1.0 <= e.start <= t + 0.5 and e.category in area), None)
        choice = rng.random()
        if event is not None and choice < 0.6:
            return self._fill(rng.choice(EVENT[event.kind]), event.category), "event", role
        if area and choice < 0.7:
            return self._about_visible(area, count), "visible", role
        if choice < 0.82:
            return self._about_absent(t, area), "absent", role
        return self._noisy(str(rng.choice(CHATTER))), "chatter", role

    def _about_visible(self, area: Counter, count: Counter) -> str:
        rng = self.rng
        names = list(area)
        weights = np.asarray([area[n] for n in names], np.float64)
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        if count[name] >= 2 and rng.random() < 0.45:
            return self._counting(name, count[name])
        if len(names) >= 2 and rng.random() < 0.15 + 0.15 * self.p:
            other = next(n for n in sorted(names, key=lambda n: -area[n]) if n != name)
            return self._noisy(self._fill(rng.choice(PAIR), name, other))
        templates = LABEL_YOUNG + (LABEL_OLDER if rng.random() < 0.2 + 0.6 * self.p else [])
        template = str(rng.choice(templates))
        if "{colour}" in template and not BY_NAME[name].colour:
            template = "look at the {obj}!"
        return self._noisy(self._fill(template, name))

    def _counting(self, name: str, n: int) -> str:
        template = str(self.rng.choice(COUNT))
        plural = BY_NAME[name].plural
        counted = ", ".join(NUMBER_WORDS[1:n + 1])
        return template.format(n=NUMBER_WORDS[n], objs=plural, count=counted)

    def _about_absent(self, t: float, area: Counter) -> str:
        rng = self.rng
        recent = self._seen(max(0.0, t - 10), t) - set(area)
        if recent and rng.random() < 0.5:
            return self._noisy(self._fill(rng.choice(ABSENT_GONE), sorted(recent)[int(rng.integers(len(recent)))]))
        absent = [c.name for c in self.vocabulary if c.name not in area]
        if not absent:
            return self._noisy(str(rng.choice(CHATTER)))
        return self._noisy(self._fill(rng.choice(ABSENT), absent[int(rng.integers(len(absent)))]))

    def _child(self, t: float) -> str:
        rng = self.rng
        if self.age < 12:
            return ""  # babbling: the transcript has only a note
        area, _ = self._salience(t, t + 1.0)
        if area and rng.random() < 0.6:
            word = sorted(area)[int(rng.integers(len(area)))]
            if self.age >= 24 and rng.random() < 0.5:
                return f"{rng.choice(['big', 'more', 'my', 'daddy'])} {word}!"
            return f"{word}!"
        return f"{rng.choice(CHILD_WORDS)}!"

    def _fill(self, template: str, name: str, other: str | None = None) -> str:
        cat = BY_NAME[name]
        second = BY_NAME[other] if other else cat
        return template.format(obj=name, objs=cat.plural, a=_article(name), colour=cat.colour,
                               obj2=second.name, a2=_article(second.name))

    def _noisy(self, line: str) -> str:
        """Spontaneous-speech noise that is really said: fillers and repetitions."""
        rng = self.rng
        if rng.random() < 0.15:
            line = f"{rng.choice(FILLERS)}, {line}"
        if rng.random() < 0.1:
            first = line.split()[0]
            line = f"{first} {line}"
        return line


# ---- the two written renderings of an utterance ----------------------------------------------
def transcriber_line(rng: np.random.Generator, utterance: SpokenUtterance) -> str:
    """The human transcript's cell: capitalised and punctuated, with the transcriber's markup."""
    if utterance.kind == "babble":
        return str(rng.choice(["[babbling]", "*babbles*", "[crying]", "*coos*", "[vocalizes]"]))
    line = utterance.line[0].upper() + utterance.line[1:]
    roll = rng.random()
    if roll < 0.08:
        line = f"{line} *laughs*"
    elif roll < 0.14:
        line = f"(to sibling) {line}"
    elif roll < 0.19:
        words = line.split()
        replaceable = [k for k, w in enumerate(words) if normalise(w) not in BY_NAME and normalise(w)]
        if len(replaceable) > 1:
            words[replaceable[int(rng.integers(len(replaceable)))]] = "[inaudible]"
            line = " ".join(words)
    elif roll < 0.24:
        line = f"{line} --"
    elif roll < 0.27:
        line = f"*claps* {line}"
    return line


def asr_line(rng: np.random.Generator, utterance: SpokenUtterance) -> str:
    """What a speech recogniser would return: lower case, no punctuation, fillers often lost, some errors."""
    words = []
    for word in utterance.text.split():
        if word in FILLERS and rng.random() < 0.5:
            continue
        error = 0.06 if word in BY_NAME else 0.05
        if word in ASR_CONFUSIONS and rng.random() < error:
            word = ASR_CONFUSIONS[word]
        elif word not in BY_NAME and rng.random() < 0.02:
            continue  # dropped short word
        words.append(word)
    return " ".join(words)


# ---- Ego4D narrations ------------------------------------------------------------------------
SURFACES = {"kitchen": "counter", "workshop": "workbench", "garden": "ground"}
NARRATE_EVENT = {
    "enter": ["#O a person X places the {obj} on the {surface}", "#C C places the {obj} on the {surface}",
              "#O a woman X puts the {obj} down"],
    "leave": ["#C C takes the {obj} away", "#O a man Y picks up the {obj}", "#C C removes the {obj} from the {surface}"],
    "move": ["#C C picks up the {obj}", "#C C moves the {obj}", "#C C lifts the {obj}"],
    "roll": ["#C C pushes the {obj}", "#C C rolls the {obj} across the {surface}"],
}
GENERIC_ACTIONS = ["#C C looks at the {obj}", "#C C holds the {obj} in {hand} hand", "#C C touches the {obj}",
                   "#C C picks up the {obj}", "#C C moves the {obj} on the {surface}", "#C C wipes the {obj} with a cloth"]
OBJECT_ACTIONS = {
    "cup": ["#C C drinks from the cup", "#C C fills the cup with water"], "bowl": ["#C C stirs the food in the bowl"],
    "spoon": ["#C C stirs with the spoon"], "apple": ["#C C cuts the apple with a knife"],
    "banana": ["#C C peels the banana"], "book": ["#C C opens the book", "#C C flips a page of the book"],
    "phone": ["#C C checks the phone", "#C C scrolls on the phone"], "bottle": ["#C C opens the bottle"],
    "cookie": ["#C C eats the cookie"], "hat": ["#C C puts on the hat"], "sock": ["#C C folds the sock"],
    "shoe": ["#C C ties the shoe"], "ball": ["#C C throws the ball"], "chair": ["#C C sits on the chair"],
    "clock": ["#C C checks the clock"], "block": ["#C C stacks the block"], "flower": ["#C C waters the flower"],
    "key": ["#C C turns the key"], "dog": ["#C C pets the dog"], "cat": ["#C C pets the cat"],
    "fish": ["#C C feeds the fish"], "car": ["#C C pushes the car"], "truck": ["#C C pushes the truck"],
}
SETTING_ACTIONS = {"kitchen": ["#C C wipes the counter", "#C C opens the tap", "#C C looks around the kitchen"],
                   "workshop": ["#C C picks a screwdriver from the workbench", "#C C looks around the workshop"],
                   "garden": ["#C C waters the plants", "#C C walks around the garden"]}
SUMMARIES = {"kitchen": "#Summary C worked in the kitchen and handled {objs}",
             "workshop": "#Summary C worked at a workbench with {objs}",
             "garden": "#Summary C spent time in a garden around {objs}"}
PARAPHRASE = [("picks up", "picks"), ("places", "puts"), ("the ", "a "), ("looks at", "stares at"),
              ("moves", "shifts")]


@dataclass(frozen=True)
class Narration:
    time: float
    text: str
    mentions: tuple[str, ...]


def narrations(rng: np.random.Generator, *, visibility: list[list[Visible]], events: list[Event], fps: float,
               settings: list[tuple[float, float, str]]) -> list[Narration]:
    """Pass-1 narrations: one per event that was seen, activity lines in between (about every 2-5 s)."""
    duration = len(visibility) / fps

    def setting_at(t: float) -> str:
        return next((s for start, end, s in settings if start <= t < end), settings[-1][2])

    def seen(t: float) -> list[str]:
        frame = min(len(visibility) - 1, int(t * fps))
        return sorted({v.category for v in visibility[frame]})

    out: list[Narration] = []
    for event in sorted(events, key=lambda e: (e.start, e.track_id)):
        t = event.start + float(rng.uniform(0, 0.4))
        if t < duration and event.category in seen(min(duration - 1e-3, (event.start + event.end) / 2)):
            template = str(rng.choice(NARRATE_EVENT[event.kind]))
            out.append(Narration(round(t, 3), template.format(obj=event.category, surface=SURFACES[setting_at(t)]),
                                 (event.category,)))
    t = float(rng.uniform(0.2, 1.5))
    while t < duration:
        if all(abs(n.time - t) > 1.5 for n in out):
            text = _activity(rng, seen(t), setting_at(t))
            out.append(Narration(round(t, 3), text, mentioned(text)))
        t += float(rng.uniform(2.0, 5.0))
    out.sort(key=lambda n: n.time)
    for k, n in enumerate(out):
        if rng.random() < 0.03:  # annotators flag what they are not sure of
            out[k] = Narration(n.time, n.text + " #unsure", n.mentions)
    return out


def _activity(rng: np.random.Generator, visible: list[str], setting: str) -> str:
    """What the wearer does now: mostly something with a visible object, sometimes with the place."""
    if not visible or rng.random() < 0.2:
        return str(rng.choice(SETTING_ACTIONS[setting]))
    obj = visible[int(rng.integers(len(visible)))]
    specific = OBJECT_ACTIONS.get(obj, [])
    template = str(rng.choice(specific)) if specific and rng.random() < 0.5 else str(rng.choice(GENERIC_ACTIONS))
    return template.format(obj=obj, hand=rng.choice(["her left", "his right", "the left", "the right"]),
                           surface=SURFACES[setting])


def second_pass(rng: np.random.Generator, first: list[Narration], duration: float) -> list[Narration]:
    """Another annotator: most of the same moments, shifted times, different wording, a few omissions."""
    out = []
    for n in first:
        if rng.random() < 0.12:
            continue
        text = n.text
        for old, new in PARAPHRASE:
            if old in text and rng.random() < 0.5:
                text = text.replace(old, new, 1)
        time = float(np.clip(n.time + rng.uniform(-0.6, 0.6), 0.0, max(0.0, duration - 1e-3)))
        out.append(Narration(round(time, 3), text, n.mentions))
    out.sort(key=lambda n: n.time)
    return out


def summary(setting: str, objects: list[str]) -> str:
    names = [BY_NAME[o].plural for o in objects[:3]] or ["things"]
    listing = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return SUMMARIES[setting].format(objs=listing)
