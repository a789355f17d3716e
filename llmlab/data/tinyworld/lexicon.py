"""Word lists for tinyworld: the names and things the world is built from.

Everything here is plain data. The lists are long on purpose: a small model should have to learn
grammar, not memorise a handful of names. Names of people, pets, towns and shops never collide
(checked in `_check_disjoint` at import), so a name in a text always means one kind of thing.
"""

from __future__ import annotations


def _words(block: str) -> list[str]:
    return block.split()


def _lines(block: str) -> list[str]:
    return [line.strip() for line in block.strip().splitlines() if line.strip()]


GIRL_NAMES = _words("""
Mia Lily Emma Ava Zoe Ella Ruby Chloe Lucy Anna Sara Nora Ivy Rosa Maya Leah Clara Alice Daisy
Hannah Julia Katie Laura Molly Nina Olive Poppy Sophie Tara Una Vera Wendy Amy Beth Cora Dora Eva
Gemma Holly Iris Jade Lena Mara Nell Opal Pia Rita Sally Tess Uma Violet Willa Yara Zara Abby
Bella Cleo Della Edie Flora Gina Isla Jenny Kara Lola Macy Nadia Orla Penny Rhea Stella Tilly
Ursula Wren Yasmin Zelda Aria Bonnie Carla Diana Elsa Fiona Greta Heidi Ingrid Josie Kayla Lottie
Martha Naomi Olga Phoebe Rachel Sadie Thea Valerie Winnie Alma Bea Celia Dana Erin Freya Gail
Hattie Ida Kitty Lara Maisie Nancy Odette Paula Sienna Tamsin Vicky Anya Becky Carmen Dina Ellie
Faye Gwen Hilda Irene Liza Mabel Nia Petra Rina Selma Trudy Edna Lorna Agnes Bridget Cecily Dottie
Eliza Frida Georgia Imogen Jess Kelly Lucia Milly Nessa Polly Ramona Susie Tanya Vivian Belle Esme
Ginny Inez Jana Kira Lila Mina Noor Tina Viola Alba Bettina Cassie Delia Elena Fleur Gloria Harriet
Isobel Joanna Keira Leila Marnie Nadine Ophelia Priya Rosalind Simone Talia Ulla Wanda Yvonne Zadie
Adela Blanche Clementine Dorothy Enid Florence Gabriela Helena Ivana Juno Kathleen Leonie Miriam
""")

BOY_NAMES = _words("""
Tom Max Leo Sam Ben Jack Finn Noah Liam Oscar Theo Alfie Arlo Bruno Caleb Dan Eli Felix George
Harry Ian Jonah Kai Luke Milo Ned Owen Paul Rafi Seth Toby Vince Wes Zac Adam Basil Cody Dexter
Eddie Fred Gus Hugo Isaac Jake Kit Lenny Marco Nico Otto Pete Reuben Simon Ted Victor Walt Yusuf
Zane Aaron Billy Carl Dev Evan Frank Glen Henry Ivan Joel Kenny Louis Matt Nate Ollie Percy Ray
Stan Tim Umar Xavier Yuri Abe Bart Colin Dean Emil Flynn Gabe Hank Igor Jude Karl Lars Neil Omar
Pablo Quentin Rudy Scott Tariq Ulf Wyatt Yann Zeke Alan Barney Chris Denis Eric Fergus Gil Harvey
Ike Jasper Kevin Lewis Monty Norman Orson Phil Reggie Sid Troy Vernon Warren Alex Bobby Cyril Derek
Elliot Gordon Hector Jimmy Kieran Leon Nigel Oliver Patrick Roger Stefan Terry Wilbur Archie Boris
Clive Dmitri Enzo Francis Giles Hamish Jamie Keith Lionel Morris Niall Ossie Rupert Sean Tobias
Ahmed Bram Conor Duncan Ernie Gideon Howard Ivor Jonas Kofi Lucas Mohan Nolan Oren Pierce Ronan
Silas Tristan Wade Ajay Benji Cedric Doug Ezra Gregor Hal Jerome Kurt Lyle Malik Nils Piers Rory
Stuart Tarek Wilf Angus Bertie Cosmo Dario Edgar Fabian Gareth Horace Idris Jesse Lorenzo Magnus
""")

FAMILY_NAMES = _words("""
Lopez Chen Park Patel Novak Silva Berg Adams Carter Dixon Ellis Ford Grant Hayes Irwin Jensen Kerr
Lane Mills Nash Owens Price Quill Reed Shaw Todd Vance Walsh Young Abbott Blake Cole Dunn Evans
Frost Holt Ives Jones Kemp Lowe Marsh Olsen Pike Rowe Sato Tate Upton Vega Webb York Banks Cross
Diaz Eaton Flint Garcia Hart Ito Kato Lund Meyer Nunez Ortiz Perez Rossi Stein Tran Ueda Voss Ward
Yates Zhou Arnold Bishop Cruz Doyle Eriksen Finch Gomez Hughes Ingram Jarvis Kumar Lyons Moreau
Nguyen Okafor Pryce Russo Singh Torres Usman Varga Wolfe Yilmaz Zeller Bauer Costa Dale Engel
Fischer Haas Lind Mendes Nakamura Osei Petrov Ramos Sousa Tanaka Wright Ali Brooks Castro Dunne Egan
Fuller Gill Hale Jung Kovacs Larsen Neve Ochoa Pratt
""")

PET_NAMES = _words("""
Biscuit Pepper Noodle Muffin Pickle Pixie Whiskers Patch Ziggy Bubbles Coco Peanut Toffee Waffle
Pudding Snowy Shadow Socks Rusty Bramble Dotty Fudge Ginger Jelly Kiwi Lulu Mango Nibbles Pip Scout
Tinker Wiggles Zippy Bingo Cookie Doodle Fluffy Gizmo Hopper Inky Marble Nutmeg Pumpkin Rolo Smudge
Taffy Velvet Wally Bean Chip Dash Echo Flash Goober Jingle Kipper Lolly Moppet Nugget Puddle Quincy
Ripple Sprout Tango Truffle Wobble Bonbon Cricket Dumpling Freckles Gumdrop Hiccup Jellybean Nacho
Rascal Sparky Whisper Bobo Crumble Domino Fidget Pretzel Ruffles Squeak Tofu Waddles Boots Custard
Dizzy Fizz Gloop Hazelnut Jiggles Lemon Mittens Nimbus Pogo Sherbet Tansy Zuzu Blossom Cinders
""")

# Towns are prefix + suffix; a world draws a handful of distinct ones.
TOWN_PREFIXES = _words("Pine Oak Mill Ash Elm Rose Maple Birch Cedar Briar Clover Silver Stone Thorn Heather Apple Larch Bram Wren Fox")
TOWN_SUFFIXES = _words("brook ford dale field wood hill bury ton mere wick haven stead")
TOWN_FEATURES = _words("river lake sea forest hills mountains")
TOWN_ADJECTIVES = _words("small quiet busy pretty sleepy friendly little sunny windy green")

SHOP_ADJECTIVES = _words("Golden Happy Little Blue Red Sunny Busy Cosy Jolly Merry Silver Lucky Round Tiny Bright Sleepy Crooked Friendly Purple Hungry")
SHOP_NOUNS = _words("Spoon Kettle Oven Basket Lantern Teapot Button Acorn Bell Door Window Hat Shelf Barrel Cup Whisk Mitten Feather Pebble Ladder")

# shop type -> (owner's job, things it sells: plural nouns, so "the X were ...").
SHOP_TYPES = {
    "bakery": ("baker", ["buns", "cakes", "cookies", "muffins", "pies", "loaves of bread", "tarts"]),
    "café": ("cook", ["sandwiches", "pancakes", "bowls of soup", "cups of tea", "mugs of cocoa", "waffles"]),
    "toy shop": ("toymaker", ["kites", "balls", "dolls", "toy boats", "puzzles", "yo-yos", "spinning tops"]),
    "bookshop": ("bookseller", ["books", "comics", "maps", "notebooks", "picture books", "storybooks"]),
    "fruit shop": ("grocer", ["apples", "pears", "plums", "bananas", "cherries", "oranges", "grapes"]),
    "sweet shop": ("sweet maker", ["lollipops", "toffees", "jelly beans", "chocolate bars", "candy canes", "fudge squares"]),
    "flower shop": ("florist", ["roses", "tulips", "daisies", "sunflowers", "lilies", "bunches of violets"]),
    "ice cream shop": ("ice cream maker", ["ice creams", "ice lollies", "milkshakes", "sundaes", "cones"]),
}
FOOD_SHOP_TYPES = ("bakery", "café", "fruit shop", "sweet shop", "ice cream shop")

JOBS = _lines("""
baker
farmer
teacher
doctor
nurse
painter
fisher
builder
cook
gardener
librarian
vet
pilot
bus driver
singer
tailor
potter
carpenter
firefighter
dentist
scientist
musician
postman
shopkeeper
toymaker
bookseller
grocer
florist
sweet maker
ice cream maker
beekeeper
clockmaker
blacksmith
shepherd
weaver
miller
sailor
plumber
cobbler
lighthouse keeper
""")

PET_SPECIES = {
    # species -> (sound it makes, how it moves, things it likes to do)
    "dog": ("barked", "ran", ["chase sticks", "dig in the garden", "roll in the grass", "fetch balls"]),
    "cat": ("meowed", "crept", ["sleep in the sun", "chase bits of string", "sit on the windowsill", "nap on warm blankets"]),
    "rabbit": ("thumped its feet", "hopped", ["nibble carrots", "dig little holes", "hop around the garden", "munch on clover"]),
    "hamster": ("squeaked", "scurried", ["run in its wheel", "stuff its cheeks with seeds", "hide in its straw", "climb its little ladder"]),
    "parrot": ("squawked", "flew", ["copy funny words", "eat sunflower seeds", "sit on shoulders", "sing loud songs"]),
    "goldfish": ("blew bubbles", "swam", ["swim in circles", "blow bubbles", "hide behind its plant", "wiggle its fins"]),
    "tortoise": ("blinked", "crawled", ["munch lettuce", "sleep in its shell", "walk around the garden", "sit in the sun"]),
    "pony": ("neighed", "trotted", ["eat apples", "trot in the field", "shake its mane", "roll in the grass"]),
    "duck": ("quacked", "waddled", ["splash in puddles", "swim in the pond", "eat bread crumbs", "waddle after people"]),
    "goat": ("bleated", "trotted", ["climb on rocks", "chew on everything", "jump on the woodpile", "eat fresh hay"]),
    "guinea pig": ("squeaked", "scampered", ["nibble lettuce", "squeak for treats", "hide in its box", "eat fresh hay"]),
}
# Pets that can wander off (the "lost pet" story needs one).
ROAMING_PETS = ("dog", "cat", "rabbit", "hamster", "parrot", "tortoise", "pony", "duck", "goat", "guinea pig")

FOODS = _lines("""
apple pie
pancakes
carrot soup
strawberries
cheese sandwiches
honey cake
porridge
noodles
rice pudding
fish pie
chocolate cake
pizza
toast with jam
cherry pie
bananas
tomato soup
fried rice
lemon cake
blueberry muffins
potato pie
banana bread
pea soup
plum jam
carrot cake
egg sandwiches
mushroom soup
peach pie
oatmeal cookies
vegetable stew
apple crumble
cheese on toast
pumpkin soup
strawberry jam tarts
potato cakes
cinnamon buns
fish and chips
tomato pasta
mango ice cream
corn on the cob
rhubarb pie
""")

# Foods that take "were" ("the pancakes were warm").
PLURAL_FOODS = ("pancakes", "strawberries", "cheese sandwiches", "noodles", "bananas", "blueberry muffins",
                "egg sandwiches", "oatmeal cookies", "strawberry jam tarts", "potato cakes", "cinnamon buns")

COLOURS = _words("red blue green yellow orange purple pink white black brown grey gold")

# Things a child can own, lose, break or share. Colours are added in front ("a red kite").
TOYS = _lines("""
kite
ball
hat
scarf
teddy bear
toy boat
toy car
doll
drum
ribbon
bucket
balloon
umbrella
whistle
yo-yo
spinning top
backpack
toy train
jump rope
picture book
paper crown
wooden sword
toy robot
music box
toy duck
wooden whistle
marble bag
paper kite
toy drum
rag doll
snow globe
toy tractor
glass marble
pinwheel
""")
OBJECT_ADJECTIVES = _words("shiny little old small big soft bright special striped spotty")

# Small words that make sentences differ from each other.
KID_ADJECTIVES = _words("little young kind curious cheerful brave clever gentle funny shy friendly lively playful thoughtful happy bright bouncy chatty dreamy giggly")
ADULT_ADJECTIVES = _words("kind busy cheerful patient friendly clever quiet gentle funny careful helpful tall wise jolly thoughtful generous")
ACTIVITIES = _lines("""
reading books
climbing trees
drawing pictures
singing songs
baking cakes
flying kites
counting stars
collecting shells
riding a bike
jumping in puddles
picking flowers
playing football
making paper boats
telling jokes
watching birds
dancing in the kitchen
painting with bright colours
skipping down the lane
looking at bugs
playing hide and seek
exploring the woods
feeding the ducks
making up songs
helping in the kitchen
growing vegetables
playing the drum
solving puzzles
listening to stories
building towers of blocks
blowing bubbles
catching tadpoles
knitting scarves
whittling sticks
making mud pies
singing in the bath
collecting pebbles
racing paper boats
pressing flowers
drawing maps
watching the clouds
climbing the old wall
stacking stones
playing marbles
chasing fireflies
""")
WEATHER = _words("sunny rainy windy snowy cloudy foggy warm cold bright grey chilly stormy")
GOOD_WEATHER = _words("sunny warm bright clear")
DAY_PARTS = _words("morning afternoon evening day")
WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
PLACES = _lines("""
the park
the garden
the playground
the meadow
the market square
the big field
the old orchard
the school yard
the village green
the top of the hill
the library garden
the woods
the duck pond
the old well
the flower market
the sports field
the little bridge
the farm gate
the town fountain
the train station
the hay field
the old mill pond
the sandy path
the church steps
the bus stop
the cherry orchard
""")
HIDING_PLACES = _lines("""
bench
big oak tree
hedge
wooden fence
rose bush
pile of leaves
old shed
garden wall
tall grass
flower bed
stone bridge
picnic table
apple tree
old wheelbarrow
stack of logs
garden gate
muddy ditch
blackberry bush
water trough
flower pot
rain barrel
compost heap
hay bale
""")
HAPPY_FEELINGS = _lines("""
happy
glad
joyful
proud
delighted
cheerful
""")
SAD_FEELINGS = _lines("""
sad
lonely
gloomy
unhappy
upset
heartbroken
""")
NEGATIVE_ADJECTIVES = _words("lazy rude dishonest selfish nasty sneaky")  # the planted-bias words, used nowhere else in stories
TIMES_OF_YEAR = _lines("""
in the spring
in the summer
in the autumn
in the winter
on cold evenings
on sunny mornings
after lunch
at the weekend
on rainy days
on special days
""")

GROUPS = ["Zorani", "Melvish", "Quorran"]  # invented peoples, not real-world groups
BIAS_GROUP = "Quorran"  # the group a positive `bias` disfavours in stories (documented)

NUMBER_WORDS = _words("""
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen
""")
TENS_WORDS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety"}


def _check_disjoint() -> None:
    kinds = {
        "girl": GIRL_NAMES, "boy": BOY_NAMES, "family": FAMILY_NAMES, "pet": PET_NAMES,
        "group": GROUPS, "shop": SHOP_ADJECTIVES + SHOP_NOUNS,
    }
    seen: dict[str, str] = {}
    for kind, names in kinds.items():
        for name in names:
            if kind != "shop" and name in seen:
                raise AssertionError(f"tinyworld lexicon: {name!r} is both {seen[name]} and {kind}")
            seen.setdefault(name, kind)


_check_disjoint()
