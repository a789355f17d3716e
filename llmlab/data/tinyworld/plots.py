"""Story plots: for each, templates for a setup, a problem, middle beats and two kinds of ending.

Every plot is data plus a `prepare` function that picks its props (what is lost, which contest,
which shop) once per story and returns False when the plot does not fit the person (a goldfish
cannot run away). Template syntax: see grammar.py. Two rules keep the world consistent and the
corpus varied:

- A sentence that states a fact of the world names its subject ("{P}'s dog {pet}"), so parse.py
  can check it against the knowledge base.
- Every sentence has at least two slots that vary between stories (a person and a thing, a place or
  a time), so that at tens of millions of tokens very few sentences repeat exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from llmlab.data.tinyworld import lexicon as L
from llmlab.data.tinyworld.grammar import render

Ctx = dict[str, Any]


@dataclass
class Plot:
    name: str
    setup: list[str]
    problem: list[str]
    middle: list[str]
    happy: list[str]
    sad: list[str]
    summary_happy: list[str]
    summary_sad: list[str]
    prepare: Callable[[Any, Any, Ctx, random.Random], bool] = field(default=lambda w, p, c, r: True)
    adults: bool = True  # whether grown-ups can be the hero


def pick_thing(p: Any, ctx: Ctx, rng: random.Random) -> None:
    nouns = L.TOYS if p.is_child else ADULT_THINGS
    noun, colour = rng.choice(nouns), rng.choice(L.COLOURS)
    adj = rng.choice(L.OBJECT_ADJECTIVES)
    ctx.update(obj=f"{adj} {colour} {noun}" if rng.random() < 0.3 else f"{colour} {noun}",
               obj_noun=noun, obj_colour=colour)


ADULT_THINGS = ["hat", "scarf", "umbrella", "backpack", "kite", "music box", "lantern", "watch", "notebook",
                "teapot", "walking stick", "flute", "basket", "straw hat", "fishing rod"]
PLAYING = ["chasing butterflies", "rolling down the grass", "picking daisies", "looking at a beetle",
           "skipping stones", "climbing on the rocks", "counting clouds", "playing tag", "making a daisy chain",
           "watching the ducks", "kicking leaves", "building a little dam"]
DUSK = ["orange", "pink", "purple", "dark blue", "grey", "golden"]
HELPERS = ["old lady with a cane", "park keeper", "boy on a bike", "girl with a red umbrella", "postman",
           "farmer with a cart", "lady walking her dog", "man selling balloons"]
DEADLINES = ["dinner time", "the sun goes down", "the church bell rings", "it gets dark", "tea time", "bedtime"]
PET_BEDS = {"dog": "basket", "cat": "cushion", "rabbit": "hutch", "hamster": "cage", "parrot": "perch",
            "tortoise": "box", "pony": "stable", "duck": "pen", "goat": "pen", "guinea pig": "hutch", "goldfish": "bowl"}
SHELTERS = ["old shed", "big oak tree", "bandstand", "bus shelter", "little bridge", "wooden porch"]
PICNIC_FOOD = ["lemonade", "sandwiches", "cherries", "boiled eggs", "little cakes", "apple juice", "crisps", "grapes"]
CONTESTS = {  # contest -> what winning means
    "running race": "ran faster than everyone", "kite contest": "flew the highest kite",
    "cake contest": "baked the best cake", "singing contest": "sang the sweetest song",
    "drawing contest": "drew the finest picture", "spelling contest": "spelled every word right",
    "sack race": "hopped over the line first", "pumpkin contest": "grew the biggest pumpkin",
    "dance contest": "danced the best dance", "sandcastle contest": "built the tallest sandcastle",
}
PRIZES = ["a golden cup", "a big blue ribbon", "a shiny medal", "a basket of apples", "a new kite",
          "a box of paints", "a silver star", "a jar of honey", "a storybook", "a little trophy"]
MISHAPS = ["woke up with a sore throat", "tripped on a loose shoelace", "could not find {his} lucky socks",
           "felt butterflies in {his} tummy", "got mud all over {his} clothes", "arrived late and out of breath"]
RELATIVES_CHILD = ["mum", "dad", "grandma", "grandpa", "aunt", "uncle", "big sister", "big brother"]
RELATIVES_ADULT = ["sister", "brother", "neighbour", "cousin", "old aunt", "grown-up son", "grown-up daughter"]
FEARS = {  # what frightens, what the hero must do, how doing it reads afterwards
    "the dark": ("walk home from {place} after sunset", "walked all the way home in the dark"),
    "thunder": ("stay home while a storm rumbled over {town}", "listened to the storm without hiding"),
    "deep water": ("swim across the pond near {place}", "swam all the way across the pond"),
    "the big dog next door": ("fetch {his} ball from the neighbour's garden", "fetched the ball from the garden"),
    "high places": ("climb the tall ladder at {place}", "climbed right to the top of the ladder"),
    "the school play": ("sing a song on the stage in {town}", "sang the whole song on the stage"),
    "the old mill": ("carry a message past the old mill by {place}", "walked right past the old mill"),
}
BUILDS = {  # thing -> material
    "treehouse": "planks and nails", "birdhouse": "wood and glue", "den of branches": "branches and leaves",
    "tower of blocks": "wooden blocks", "snowman": "fresh snow", "blanket fort": "blankets and chairs",
    "go-kart": "old wheels and a crate", "paper boat": "paper and string", "scarecrow": "straw and old clothes",
}
DESTROYERS = ["a big gust of wind blew hard", "a muddy dog ran right through it", "heavy rain began to pour",
              "a goat from the farm bumped into it", "the ground gave a little wobble", "a football flew over the hedge"]
SKILLS = ["ride a bike", "swim", "whistle a tune", "juggle three balls", "skip with a rope", "play the flute",
          "do a cartwheel", "bake bread", "fly a kite", "row a little boat", "knit a scarf", "paint a portrait"]
SKILL_FAILS = ["fell over", "got in a muddle", "dropped everything", "made a funny noise", "went the wrong way",
               "had to stop and start again", "ended up in a heap"]
PLANTS = ["sunflower", "tomato plant", "pumpkin", "bean plant", "rose bush", "strawberry plant", "apple tree"]
GIFTS = [  # (gift, the noun later sentences use for it)
    ("a card with a painted {colour} bird", "card"), ("a bracelet of {colour} beads", "bracelet"),
    ("a clay pot painted {colour}", "clay pot"), ("a scarf with {colour} stripes", "scarf"),
    ("a little wooden box", "wooden box"), ("a kite with a long {colour} tail", "kite"),
    ("a jar of home-made jam", "jar of jam"), ("a picture of {F} and {pet}", "picture"),
]
STUCK = {"cat": "up the tallest tree at {place}", "parrot": "on the roof of the old shed",
         "goat": "on top of the garden wall", "duck": "in the muddy ditch by {place}",
         "rabbit": "under the garden shed", "guinea pig": "behind the old stove"}
COOKABLE = [f for f in L.FOODS if f not in ("strawberries", "bananas")]


def _prep_lost_pet(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    return p.pet_species in L.ROAMING_PETS


def _prep_contest(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    contest = rng.choice(list(CONTESTS))
    if contest == "sandcastle contest" and ctx["near"] not in ("sea", "lake"):
        contest = "running race"
    ctx.update(contest=contest, contest_win=CONTESTS[contest], prize=rng.choice(PRIZES),
               mishap=render(rng.choice(MISHAPS), ctx, rng, capitalise=False))
    return True


def _prep_baking(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    return p.favourite_food in COOKABLE


def _prep_shop(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    shops = [s for s in w.shops_in(p.home_town) if s.owner != p.id]
    if not shops:
        return False
    shop = rng.choice(shops)
    owner = w.person(shop.owner)
    ctx.update(shop=shop.the, shop_type=shop.type, item=rng.choice(shop.items), O=owner.first,
               o_job=owner.job, o_he=owner.pronouns["he"], o_him=owner.pronouns["him"],
               coins=rng.choice(["three", "four", "five", "six", "seven", "eight", "ten", "twelve"]))
    return True


def _prep_fear(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    fear = rng.choice(list(FEARS))
    task, done = FEARS[fear]
    ctx.update(fear=fear, fear_task=render(task, ctx, rng, capitalise=False), fear_done=done)
    return True


def _prep_build(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    build = rng.choice(list(BUILDS))
    ctx.update(build=build, material=BUILDS[build], destroyer=rng.choice(DESTROYERS))
    return True


def _prep_skill(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    ctx.update(skill=rng.choice(SKILLS), skill_fail=rng.choice(SKILL_FAILS))
    return True


def _prep_garden(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    plant = rng.choice(PLANTS)
    ctx.update(plant=plant, plants=plant + ("es" if plant.endswith("sh") else "s"))
    return True


def _prep_gift(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    gift, noun = rng.choice(GIFTS)
    gift = render(gift, {**ctx, "colour": rng.choice(L.COLOURS)}, rng, capitalise=False)
    ctx.update(gift=gift, gift_noun=noun)
    return True


def _prep_neighbour(w: Any, p: Any, ctx: Ctx, rng: random.Random) -> bool:
    friends = set(p.friends)
    # A neighbour who is not the friend in the story, so pronoun references stay clear.
    options = [q for q in w.people if q.home_town == p.home_town and q.id != p.id and q.pet_species in STUCK
               and q.first != ctx["F"] and q.id not in friends]
    if not options:
        return False
    n = rng.choice(options)
    ctx.update(N=n.first, n_he=n.pronouns["he"], n_his=n.pronouns["his"], n_him=n.pronouns["him"],
               n_pet=n.pet_name, n_species=n.pet_species,
               n_stuck=render(STUCK[n.pet_species], ctx, rng, capitalise=False), n_kind=n.kind)
    ctx["people_extra"] = [n.id]
    return True


PLOTS: list[Plot] = [
    Plot(
        "lost_thing",
        setup=[
            "{time}, {P} took {his} {obj} to {place} to play with {F}.",
            "{time}, {P} and {F} went to {place}, and {P} brought {his} {obj} along.",
            "{time}, {P} carried {his} {obj} all the way to {place}, humming a {~song} song.",
            "{time}, {P} hurried to {place} with {his} {obj} tucked under {his} arm.",
        ],
        problem=[
            "While {he} was {playing}, {P} put the {obj_noun} down by the {hide}. When {he} turned around, the {obj} was gone from {place}!",
            "{P} played {for a while|all {day_part}|until {his} cheeks were pink}, but when it was time to go home, the {obj} was nowhere to be found.",
            "A strong gust of wind pulled the {obj} out of {P}'s hands, and it {vanished|tumbled away|flew off} behind the {hide}.",
            "{P} set the {obj} down on the {hide2} for just a moment, and when {he} looked back, it had disappeared from {place}.",
        ],
        middle=[
            '"Oh no, where is my {obj_noun}?" cried {P}, looking all around {place}.',
            "{P} looked under the {hide}, behind the {hide2} and even inside {his} {coat|pockets|boots}, but the {obj_noun} was not there.",
            "{F} came to help, and the two friends searched {place} from one end to the other for the {obj}.",
            '"Don\'t worry, {P}, we will find your {obj_noun} before {deadline}," said {F}.',
            "{P} asked everyone at {place} if they had seen {@obj}, but nobody had noticed one {that day|that {day_part}|all week}.",
        ],
        happy=[
            "At last, {F} spotted something {obj_colour} under the {hide}. It was {P}'s {obj}! {P} {~joy} and hugged {F}.",
            "Just then, {P} saw the {obj} peeking out from behind the {hide2}. {P} held the {obj_noun} tight and {~joy}.",
            "A kind {helper} found the {obj} near the {hide} and gave it back to {P}. {P} was so happy to have the {obj_noun} back that {he} thanked the {helper} again and again.",
        ],
        sad=[
            "They searched until the sky turned {dusk}, but the {obj} was never found. {P} walked home from {place} slowly and {~sorrow}.",
            "{P}'s {obj} was gone for good. That night, {P} {~sorrow} and missed {his} {obj_noun} very much.",
            "{P} never saw {his} {obj} again. {P} felt sad and lonely as {he} walked home from {place} without {his} {obj_noun}.",
        ],
        summary_happy=["{P} lost {his} {obj} at {place}, but {F} helped {him} find it again.",
                       "After losing {his} {obj} at {place}, {P} got it back."],
        summary_sad=["{P} lost {his} {obj} at {place} and, even with {F}'s help, never found it.",
                     "{P}'s {obj} went missing at {place} and was never found."],
    ),
    Plot(
        "lost_pet",
        setup=[
            "{time}, {P} took {pet} out to {place} for a {walk|run|little adventure}.",
            "{time}, {P} left the garden gate open by mistake while {he} was {busy}.",
            "{time}, {P} was playing with {pet} near the {hide} at {place}.",
        ],
        problem=[
            "Suddenly, {pet} {pet_move} away from {P} and disappeared behind the {hide}.",
            "When {P} came back from {busy2}, {pet} was gone, and the gate was swinging in the {~weather} wind.",
            "A loud bang scared {pet}, who {pet_move} off across {place} and was soon out of {P}'s sight.",
        ],
        middle=[
            '"Where are you, {pet}?" called {P}, running up and down {place}.',
            "{P} asked {F} to help, and they looked behind every {hide} and under every {hide2} in {town}.",
            '{F} said, "Let\'s leave a bowl of {pet_food} by the door, {P}, so that {pet} can smell it and come back."',
            "{P} made {~colour} signs with a drawing of {pet} and put them up {all over {town}|on every {hide} near {place}|at the end of every street}.",
            "{P} remembered that {pet} liked to {pet_like}, so {he} looked in all those places near {place}.",
        ],
        happy=[
            "Just before dark, {P} heard a noise by the {hide2}. It was {pet}, curled up {behind|under|beside} the {hide} at {place}! {P} hugged {pet} tight and {~joy}.",
            "The next morning, {F} knocked on {P}'s door with {pet}, safe and sound after a night at {place}! {P} {~joy} and thanked {F} a hundred times.",
            "At last they found {pet} fast asleep under the {hide}, happy and safe. {P} was so glad that {he} {~joy} all the way home from {place}.",
        ],
        sad=[
            "They looked all over {place}, but {pet} did not come home that night. {P} sat by the window, feeling {~sad}, and worried that {pet} was cold, scared and lost somewhere out in the {~weather} night.",
            "Days went by, and {P}'s {species} {pet} never came back from {place}. {P} missed {pet} every day and {~sorrow} whenever {he} walked past {place} and the empty {pet_bed}.",
        ],
        summary_happy=["{P}'s {species} {pet} wandered off from {place}, and {P} found {pet} again.",
                       "When {pet} went missing near {place}, {P} and {F} searched until {pet} came home safe."],
        summary_sad=["{P}'s {species} {pet} wandered off from {place} and never came home.",
                     "{pet} went missing near {place}, and {P} never found {pet} again."],
        prepare=_prep_lost_pet,
    ),
    Plot(
        "rainy_picnic",
        setup=[
            "{time_good}, {P} and {F} packed a picnic basket with {food} and {picnic_food}.",
            "{time_good}, {P} invited {F} to a picnic at {place}, and {he} made {food} for it.",
            "{time_good}, {P} spread a {~colour} blanket on the grass at {place} for a picnic with {F}.",
        ],
        problem=[
            "But just as {P} and {F} sat down on the {~colour} blanket, dark clouds rolled in over {place}.",
            "{P} and {F} had only eaten one bite of {food} when thunder rumbled over {place} and the rain came pouring down.",
            "Soon a cold wind began to blow across {place}, and big drops of rain fell on {P}'s {food} and the {picnic_food}.",
        ],
        middle=[
            '"Quick, to the {shelter}!" shouted {F}, grabbing the basket with the {food} and the {picnic_food}.',
            "{P} and {F} ran under the {shelter} and watched the rain splash on {place}.",
            '"Our picnic is {ruined|spoiled|all wet}, {F}," said {P}, looking sadly at the wet {food} and the soggy {picnic_food}.',
        ],
        happy=[
            "Then {F} had a {clever|bright|wonderful} idea about the {food}. They spread the {~colour} blanket on the floor of {P}'s kitchen and had the picnic inside, laughing and eating {food} until the rain stopped.",
            "After a while, the rain stopped, and {P} and {F} came out from under the {shelter} to see a rainbow over {place}. {P} and {F} ate their {food} and {picnic_food} in the sunshine and had the best picnic ever.",
        ],
        sad=[
            "The rain did not stop all {~day_part}, and {place} turned into one big puddle around {P} and {F}. {P} and {F} walked home from {place} wet, cold and miserable, and the {food} {food_was} soggy and spoiled.",
            "By the time the storm had passed over {place}, it was too dark for {P} and {F} to have a picnic. {P} sadly threw away the soggy {food} and said goodbye to {F}.",
        ],
        summary_happy=["{P} and {F} had a picnic at {place} that was rained on, but they still had fun.",
                       "Rain spoiled the picnic at {place} for a while, but {P} and {F} still enjoyed their {food}."],
        summary_sad=["{P} and {F}'s picnic at {place} was spoiled by the rain.",
                     "The rain ruined the picnic that {P} and {F} had planned at {place}."],
    ),
    Plot(
        "broken_thing",
        setup=[
            "{time}, {P} was playing with {his} {obj} at {place}.",
            "{time}, {F} asked to borrow {P}'s {obj}, and {P} said yes.",
            "{time}, {P} got {@obj} as a present from {his} {relative}.",
        ],
        problem=[
            "But then the {obj_noun} slipped out of {P}'s hands, fell onto the {stones|floor|path|steps} and broke into {two|three|four|many} pieces.",
            "{F} pulled too hard, and with a loud snap, {P}'s {obj} broke in two.",
            "{P} left the {obj} on the {hide2}, and a big cart rolled right over it on its way past {place}.",
        ],
        middle=[
            '"My {obj_noun}!" cried {P}, and tears filled {his} eyes as {he} looked at the pieces.',
            "{P} picked up the pieces of the {obj} and carried them home from {place} very carefully.",
            '"Maybe we can fix it, {P}," said {F}, looking closely at the broken {obj}.',
            "{P} found some glue, some tape and a piece of {~colour} string, and sat down at the table with the {obj}.",
        ],
        happy=[
            "{P} and {F} worked together, and soon the {obj} was as good as new. {P} {~joy} and gave {F} a big hug.",
            "{P}'s {relative} came to help, and with a little glue the {obj} was fixed. {P} was so happy that {he} danced around the kitchen with the {obj}.",
        ],
        sad=[
            "{P} tried and tried, but the {obj} could not be fixed. {P} put the broken pieces of the {obj_noun} in a box and {~sorrow}.",
            "{P}'s {obj} was broken for good. {P} {~sorrow}, because {he} knew {he} would never play with {his} {obj_noun} again.",
        ],
        summary_happy=["{P}'s {obj} broke, and {P} fixed it with help from {F}.",
                       "When {P}'s {obj} broke, {P} mended it and was happy again."],
        summary_sad=["{P}'s {obj} broke and could not be fixed.",
                     "{P}'s {obj} broke into pieces, and {P} was never able to mend it."],
    ),
    Plot(
        "contest",
        setup=[
            "{time}, there was a {contest} in {town}, and {P} wanted to win {prize} more than anything.",
            "{time}, everyone in {town} gathered at {place} for the big {contest}, and {P} was there too.",
            "{P} had practised for the {contest} in {town} every day for {two|three|four|six} weeks.",
        ],
        problem=[
            "But on the day of the {contest}, {P} {mishap}.",
            "When it was {P}'s turn in the {contest}, {his} hands shook and {his} knees felt like jelly.",
            "The other {others} in the {contest} looked so good that {P} started to worry about losing.",
        ],
        middle=[
            '"You can do it, {P}!" shouted {F} from the crowd at {place}.',
            "{P} took a deep breath, looked around {place} and thought about {pet}, {food} and {~activity}.",
            '{P} remembered what {his} {relative} always said: "Just do your best, {P}, and have fun."',
        ],
        happy=[
            "In the end, {P} {contest_win}, and the prize was {prize}! Everyone at {place} cheered, and {P} {~joy}.",
            "{P} did not come first, but {he} came second and got a shiny {~colour} ribbon. {P} smiled happily all the way home from {place} with {F}.",
        ],
        sad=[
            "{P} tried {his} best, but {he} came last in the {contest}. {P} walked home from {place} with tears in {his} eyes, feeling {~sad}.",
            "The {contest} went badly, and {P} did not win anything. {P} {~sorrow} and did not want to talk to anyone, not even {F}.",
        ],
        summary_happy=["{P} took part in the {contest} in {town} and did very well.",
                       "{P} was nervous at the {contest}, but {he} did well and was proud."],
        summary_sad=["{P} took part in the {contest} in {town} and lost.",
                     "{P} tried hard at the {contest} but did not win anything."],
        prepare=_prep_contest,
    ),
    Plot(
        "cooking",
        setup=[
            "{time}, {P} decided to make {food} for {F}, because it was {F}'s birthday.",
            "{time}, {P} wanted to surprise {his} {relative} with a big plate of {food}.",
            "{time}, {P} put on {@~colour} apron and got ready to make {food} for everyone in the house.",
        ],
        problem=[
            "{P} mixed everything in a {~colour} bowl, but {he} forgot to watch the stove, and soon the {food} {food_was} burning.",
            "While the {food} {food_was} cooking, {P} went out to {place} with {pet} and forgot all about it.",
            "{P} tripped over {pet} on the way to the {~colour} table, and the {food} went all over the kitchen floor.",
        ],
        middle=[
            '"{Oh dear|Oh no|What a mess}, what will I give {F} now?" said {P}, looking at the {food} all over the kitchen {floor|table|stove|walls}.',
            "{P}'s {relative} came into the kitchen and opened the window to let the smoke out over {place}.",
            "{P} looked in the {~colour} cupboard and the {pantry|fridge|bread bin} to see if there was enough left to make {food} again.",
        ],
        happy=[
            "{P} started again, and this time the {food} came out just right. When {F} tasted the {food}, {f_he} {smiled|grinned|laughed|beamed|clapped} and said it was {the best {food} in {town}|just perfect|even better than {f_his} own}.",
            "With a little help from {his} {relative}, {P} made the {food} again, and everyone ate it happily and asked for more.",
        ],
        sad=[
            "{P} looked in {every cupboard|the {~colour} cupboard|the pantry}, but there was nothing left to cook with, and the shops in {town} were closed for the {~day_part}. {P} had no {food} to give, and {he} felt {~sad} all evening.",
            "{P} tried to make the {food} a second time, but it burned too. {P} sat on the kitchen floor next to the ruined {food} and {~sorrow}.",
        ],
        summary_happy=["{P} tried to make {food} for {F}'s birthday, and after a mistake, it turned out well.",
                       "After a kitchen accident, {P} made {food} again and everyone loved it."],
        summary_sad=["{P} tried to make {food}, but it went wrong and {P} had nothing to give.",
                     "{P}'s {food} {food_was} ruined in the kitchen, and there was no way to make more."],
        prepare=_prep_baking,
    ),
    Plot(
        "shop_visit",
        setup=[
            "{time}, {P} took {coins} coins to {shop}, the {shop_type} in {town}, to buy some {item}.",
            "{time}, {P} walked to {shop} in {town} with {F} to buy {item} for {his} {relative}.",
            "{time}, {P} went to {shop} in {town}, because {his} {relative} needed {item}.",
        ],
        problem=[
            'But when {P} got to {shop}, the shelf where the {item} usually stood was empty. "I\'m sorry, {P}, we have sold all our {item} today," said {O}, the {o_job}.',
            "On the way, {P} dropped {his} coins through a crack in the {~colour} gate, and at {shop} {he} did not have enough for the {item}.",
            "At {shop}, {P} saw that the {item} cost more than the {coins} coins {he} had brought.",
        ],
        middle=[
            '"Please, {O}, the {item} are for my {relative}, who is not feeling well," said {P}.',
            "{P} looked at all the other things at {shop}, but nothing seemed quite as good as the {item}.",
            "{P} counted {his} {coins} coins again, slowly, one by one, on the counter at {shop}, wondering if there were enough for the {item}.",
        ],
        happy=[
            "{O}, the {o_job} at {shop}, smiled and went through the {~colour} door into the back room. {^o_he} came out with some {item} {o_he} had saved and gave them to {P}, who {~joy}.",
            '"You are a kind {kid}, {P}," said {O}, the {o_job}, and {o_he} gave {him} the {item} for what {he} had. {P} felt so happy that {he} hummed a {~song} song all the way home from {shop} to {his} {relative}.',
        ],
        sad=[
            "{P} had to leave {shop} with empty hands. {P} felt {~sad}, and the walk back through {town} without the {item} seemed very long.",
            "There was nothing {O}, the {o_job} at {shop}, could do for {P}. {P} went home without the {item}, and {his} {relative} had nothing that day, which made {P} very sad.",
        ],
        summary_happy=["{P} went to {shop} to buy {item}, and {O} helped {him} get some.",
                       "{P} nearly came home from {shop} without {item}, but {O} was kind and helped."],
        summary_sad=["{P} went to {shop} to buy {item} but came home with nothing.",
                     "{P} could not buy the {item} at {shop} and went home empty-handed."],
        prepare=_prep_shop,
    ),
    Plot(
        "quarrel",
        setup=[
            "{time}, {P} and {F} were playing with {P}'s {obj} at {place}.",
            "{time}, {P} and {F} met at {place} to play with {P}'s new {obj}.",
        ],
        problem=[
            'Soon {P} and {F} began to argue about whose turn it was to {hold|carry|play with} the {obj_noun}. "It\'s my {obj_noun}, {F}!" shouted {P}, and {F} stamped {f_his} foot.',
            "{F} said something unkind about {P}'s {obj}, and {P} got very cross and went red in the face.",
            "{F} wanted to play {a different game|something else|with the {obj_noun} alone}, and soon {P} and {F} were shouting at each other at {place}.",
        ],
        middle=[
            "{P} went home alone and sat on {his} bed with the {obj}, feeling cross and {~sad}.",
            "{F} stayed at {place} and kicked a stone, thinking about what {f_he} had said to {P}.",
            "That evening, {P} thought about all the fun {he} and {F} had shared at {place}, {~when} and every day.",
        ],
        happy=[
            "The next morning, {P} knocked on {F}'s door and said sorry. {F} said sorry too, and they shared the {obj} and played happily at {place} all day.",
            "The next day, {F} came to {P}'s house with a {~colour} flower and a smile. {P} and {F} hugged, laughed about the silly fight over the {obj_noun} and were friends again.",
        ],
        sad=[
            "{P} and {F} did not speak to each other for {a long time|many days|weeks|the rest of the month}, not even at {place}. {P} missed {F}, and playing alone with the {obj} was no fun at all.",
            "After that day, {F} played with other friends, and {P} sat alone at {place}, feeling {~sad} and lonely.",
        ],
        summary_happy=["{P} and {F} argued about {P}'s {obj} but made friends again.",
                       "A fight over {P}'s {obj} ended with {P} and {F} saying sorry and playing together."],
        summary_sad=["{P} and {F} argued about {P}'s {obj} and stopped playing together.",
                     "A fight over {P}'s {obj} left {P} and {F} apart and unhappy."],
    ),
    Plot(
        "fear",
        setup=[
            "{time}, {P} had to {fear_task}, but {he} was very afraid of {fear}.",
            "{P} had always been afraid of {fear}, and {time_lc} {he} had to {fear_task}.",
        ],
        problem=[
            "{P}'s knees shook, and {his} heart went thump, thump, thump as {he} thought about {fear}.",
            "{P} stood very still at {place}, and {he} felt too scared of {fear} to move.",
        ],
        middle=[
            '{F} held {P}\'s hand and said, "I will stay with you the whole time, {P}."',
            "{P} thought of {pet}, who was never afraid of {fear}, and took a deep breath.",
            "{P} counted slowly to {five|ten|twenty} and sang {his} favourite song about {~activity} under {his} breath.",
        ],
        happy=[
            "Step by step, {P} {fear_done}, {holding {F}'s hand|humming a {~song} song|thinking of {pet}}, and it was not so scary after all. {P} felt proud and brave, and {he} {~joy}.",
            "In the end, {P} {fear_done} while {F} {watched|waited|cheered} at {place}. {F} cheered, and {P} laughed, because {he} was not afraid of {fear} any more.",
        ],
        sad=[
            "But {P} was too scared of {fear}. {P} ran home from {place} and hid under {his} {~colour} blanket, feeling small and sad, and {~sorrow}.",
            "{P} could not {fear_task}. {P} turned back, and all evening {he} felt {~sad} and ashamed about being afraid of {fear}.",
        ],
        summary_happy=["{P} was afraid of {fear}, but {he} was brave and {fear_done}.",
                       "With {F}'s help, {P} faced {his} fear of {fear}."],
        summary_sad=["{P} was too afraid of {fear} and gave up.",
                     "{P}'s fear of {fear} was too strong, and {he} turned back."],
        prepare=_prep_fear,
        adults=False,
    ),
    Plot(
        "building",
        setup=[
            "{time}, {P} and {F} decided to build {@build} at {place}.",
            "{time}, {P} found some {material} and had a wonderful idea: {he} would build {@build} with {F}.",
        ],
        problem=[
            "{P} and {F} worked on the {build} all {day_part}, but just as they finished, {destroyer} and it fell down at {place}.",
            "The {build} was almost finished when {destroyer}, and {P} heard a terrible crash at {place}.",
        ],
        middle=[
            '"All our work on the {build}!" said {F}, staring at the pile of {material} at {place}.',
            "{P} sat down on the grass at {place} and looked at what was left of the {build}, trying not to cry.",
            "{P} picked up the {material} one piece at a time while {pet} watched from the {hide}.",
        ],
        happy=[
            "So {P} and {F} built the {build} again, bigger and stronger than before. {P} and {F} sat next to the new {build}, laughing happily until the stars came out over {place}.",
            "This time {P}'s {relative} came to help, and the new {build} was the best one in {town}. {P} {~joy} when the {build} was finished, and {he} showed it to everyone at {place}.",
        ],
        sad=[
            "It was too late for {P} to start the {build} again. {P} looked at the broken {build} and felt {~sad}, and {he} never tried to build one again.",
            "Nothing useful was left of {P}'s {material}, so the {build} could not be made again. {P} and {F} went home from {place} feeling very sad.",
        ],
        summary_happy=["{P} and {F} built {@build}, and when it fell down, they built it again even better.",
                       "The {build} that {P} made at {place} fell down, but {P} built it again and was proud."],
        summary_sad=["{P} built {@build} at {place}, but it fell down and could not be made again.",
                     "The {build} that {P} and {F} made fell down, and they gave up."],
        prepare=_prep_build,
    ),
    Plot(
        "new_skill",
        setup=[
            "{time}, {P} decided to learn to {skill} before {F}'s birthday.",
            "{P} had always wanted to {skill}, and {time_lc} {he} finally decided to try at {place}.",
        ],
        problem=[
            "But learning to {skill} was much harder than it looked, and every time {P} tried, {he} {skill_fail}.",
            "{P} tried to {skill} again and again at {place}, but {he} {skill_fail} every time.",
        ],
        middle=[
            "{F} showed {P} how to {skill}, slowly and carefully, at {place}.",
            '"Don\'t give up, {P}, because everyone {skill_fail} at first," said {F}, {smiling|patting {P} on the back|helping {P} up|laughing kindly}.',
            "{P} practised every {~day_part} at {place} while {pet} watched.",
        ],
        happy=[
            'One {~good_weather} {~day_part}, {P} tried one more time, and at last {he} could {skill}! {P} {~joy} and shouted, "I did it, {F}!"',
            "After many days of practice at {place}, {P} could {skill} better than anyone in {town}, and {he} felt very proud and happy.",
        ],
        sad=[
            "After many days of trying, {P} still could not {skill}. {P} felt {~sad} and disappointed, put everything away and gave up trying to {skill} for good.",
            "{P} never learned to {skill}. Whenever {P} saw someone at {place} who could {skill}, {he} {~sorrow}.",
        ],
        summary_happy=["{P} learned to {skill} after a lot of practice.",
                       "With {F}'s help and a lot of practice, {P} learned to {skill}."],
        summary_sad=["{P} tried to learn to {skill} but gave up.",
                     "{P} practised at {place} but never learned to {skill}."],
        prepare=_prep_skill,
    ),
    Plot(
        "garden",
        setup=[
            "{time}, {P} planted a little {plant} in the corner of {his} garden in {town}.",
            "{time}, {F} gave {P} a seed, and {P} planted it to grow a {plant}.",
        ],
        problem=[
            "Days went by, but {P}'s {plant} did not grow at all, and {P} began to worry.",
            "Then {P}'s {species}, {pet}, dug up the soil, and the little {plant} lay on its side in the {~weather} wind.",
            "There was no rain for weeks, and the leaves of {P}'s {plant} turned dry and brown.",
        ],
        middle=[
            "{P} watered the {plant} every {~day_part} with a {~colour} watering can.",
            '"Plants need sun, water and time," said {P}\'s {relative}, looking at the {plant}.',
            "{P} put a little fence of {~colour} sticks around the {plant} to keep {pet} away.",
        ],
        happy=[
            "One {~good_weather} morning, {P} ran outside and saw that the {plant} had grown tall and green. {P} {~joy} and called {F} to come and see.",
            "By the end of the summer, {P}'s {plant} was the best in {town}. {P} was so proud that {he} showed the {plant} to {F} and everyone else.",
        ],
        sad=[
            "But {P}'s {plant} never grew again. {P} pulled up the dead stalk and felt {~sad} as {he} put away the {~colour} watering can.",
            "The {plant} died, and the corner of {P}'s garden stayed bare. {P} looked at the empty soil by the {hide} and {~sorrow}.",
        ],
        summary_happy=["{P} planted a {plant}, took good care of it, and it grew tall.",
                       "{P}'s {plant} had a hard start, but with care it grew."],
        summary_sad=["{P} planted a {plant}, but it died.",
                     "{P}'s {plant} never grew, no matter how hard {P} tried."],
        prepare=_prep_garden,
    ),
    Plot(
        "gift",
        setup=[
            "{time}, {P} remembered that it was almost {F}'s birthday, so {he} decided to make {gift}.",
            "{time}, {P} sat at the kitchen table to make a present for {his} friend {F}: {gift}.",
        ],
        problem=[
            "But on the way to {F}'s house, {P} tripped on the path and dropped the {gift_noun} in a puddle.",
            "But {P}'s {species}, {pet}, knocked the {gift_noun} off the table, and it landed on the floor with a crash.",
            "When {P} was almost done, {he} noticed that the {gift_noun} did not look the way {he} had hoped, because {gift_flaw}.",
        ],
        middle=[
            "{P} looked at the {gift_noun} and wondered if {F} would still like it.",
            "{P} wiped the {gift_noun} with a {~colour} cloth and thought hard about what to do before the party.",
            '"A gift is about love, not about being perfect," said {P}\'s {relative} about the {gift_noun}.',
        ],
        happy=[
            "When {F} opened the present from {P} {at the party|in the {~room}|by the {hide}}, {f_he} smiled so widely that {P} {~joy}. {F} said it was the best {gift_noun} {f_he} had ever had, and {P} {~joy}.",
            "{F} loved the {gift_noun} and kept it on {f_his} shelf for years. {P} {~joy} when {he} saw how much {F} liked it.",
        ],
        sad=[
            "The {gift_noun} was ruined, and {P} arrived at the party with nothing. {P} felt sad and sat quietly in the corner of the {~room} while {F} opened the other presents.",
            "{P} was too upset to give {F} the broken {gift_noun}, and {he} went home and {~sorrow}.",
        ],
        summary_happy=["{P} made a birthday gift for {F}, and {F} loved it.",
                       "{P}'s home-made gift for {F} had a mishap, but {F} loved it anyway."],
        summary_sad=["{P} made a birthday gift for {F}, but it was ruined.",
                     "{P}'s home-made gift for {F} was spoiled before the party."],
        prepare=_prep_gift,
    ),
    Plot(
        "helping",
        setup=[
            "{time}, {P} heard someone calling for help near {place}. It was {N}, {@n_kind} who lived near {P} in {town}, waving {n_his} {~colour} scarf.",
            "{time}, {P} saw {N} looking worried at the end of the street in {town}.",
        ],
        problem=[
            '"{P}, my {n_species} {n_pet} is stuck {n_stuck} and cannot get down," {cried|called|said} {N}, {pointing at the {hide}|waving {n_his} arms|looking very worried}.',
            "{N}'s {n_species}, {n_pet}, was stuck {n_stuck}, and {N} did not know what to do.",
        ],
        middle=[
            "{P} ran to get {F}, and together they looked for a way to reach {n_pet} {n_stuck}.",
            "{P} fetched a long ladder from {his} {relative}'s shed and carried it past {place}.",
            '"Don\'t be scared, {n_pet}, because {F} and I are coming to help you," said {P} {softly|gently|quietly} {from the {hide}|from below|as {he} climbed}.',
        ],
        happy=[
            "Slowly and carefully, {P} climbed up the {~colour} ladder to {n_pet} and brought {n_pet} back to {N} safe and sound. {N} was so happy that {n_he} gave {P} a big hug and a slice of {~cake}.",
            "With {F}'s help, {P} got {n_pet} out at last. {N} thanked {P} and {F} again and again, and {P} {~joy}.",
        ],
        sad=[
            "But {P} could not reach {n_pet}, even from the top of the ladder, and the sky over {place} was getting dark. {P} went home feeling {~sad}, and {N} sat outside all night, worried about {n_pet}.",
            "{P} tried everything, but {n_pet} was too far away. {P} felt sad and useless as {he} walked home past {place}.",
        ],
        summary_happy=["{P} helped {N} rescue {n_pet}, {N}'s {n_species}.",
                       "{P} and {F} rescued {N}'s {n_species} {n_pet}, who was stuck."],
        summary_sad=["{P} tried to help {N}'s {n_species} {n_pet}, but could not reach it.",
                     "{P} could not rescue {N}'s {n_species} {n_pet}."],
        prepare=_prep_neighbour,
    ),
]

# Word lists for the templates above. Those in STORY_CONSTANTS are drawn once per story (the
# shelter they run under is the one they come out from); the others vary at every use.
STORY_CONSTANTS = ("playing", "dusk", "helper", "deadline", "shelter", "picnic_food", "busy", "busy2")
PLOT_LISTS: dict[str, list[str]] = {
    "playing": PLAYING, "dusk": DUSK, "helper": HELPERS, "deadline": DEADLINES, "shelter": SHELTERS,
    "picnic_food": PICNIC_FOOD, "busy": ["feeding the hens", "reading a book", "painting the fence",
                                         "hanging up the washing", "watering the plants", "tidying the toy box"],
    "busy2": ["the shop", "the garden", "the kitchen", "school", "the market", "the attic"],
    "joy": ["laughed with joy", "danced on the spot", "cheered as loudly as {he} could", "smiled from ear to ear",
            "spun around in happy circles", "jumped up and down with joy", "clapped {his} hands with delight",
            "grinned the biggest grin", "laughed and laughed", "hugged everyone nearby"],
    "sorrow": ["cried quietly", "felt a lump in {his} throat", "sighed a long, sad sigh", "wiped away a tear",
               "looked sadly at {his} feet", "felt {his} eyes fill with tears", "sniffed sadly", "cried into {his} pillow"],
    "gift_flaw": ["the paint was smudged", "one side was crooked", "the glue had dried in lumps", "a corner had torn",
                  "the colours had run together", "a piece had come loose"],
    "room": ["kitchen", "living room", "garden", "hall", "front room", "porch"],
    "cake": ["honey cake", "apple cake", "lemon cake", "cherry pie", "plum tart", "ginger cake"],
}


def pet_food(species: str) -> str:
    return {"dog": "dog biscuits", "cat": "fish", "rabbit": "carrots", "hamster": "seeds", "parrot": "seeds",
            "tortoise": "lettuce", "pony": "apples", "duck": "bread crumbs", "goat": "hay",
            "guinea pig": "lettuce"}.get(species, "treats")

