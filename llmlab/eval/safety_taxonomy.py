# ruff: noqa: E501  (one pattern per line reads better than wrapped fragments)
"""The default hazard taxonomy of `SafetyFilter`: categories, patterns and lexicons as plain data.

Categories follow Llama Guard 3's hazard codes (S1 violent crimes, S2 non-violent crimes, S7
privacy, S9 indiscriminate weapons, S10 hate, S11 suicide and self-harm) plus X1 deception,
the "lying and tricking" harm of tinyworld's in-world requests. Llama Guard's other categories
(sexual content, child exploitation, defamation, specialised advice, IP, elections, code-
interpreter abuse) are not covered by patterns: add them in a taxonomy file, or plug a
classifier in.

Pattern syntax (compiled by `llmlab.eval.safety.compile_pattern`, matched on normalised text:
lowercase ASCII, punctuation removed, apostrophes deleted: "don't" -> "dont"):
    kill        the word, with any letter repeated ("kiiill"), never inside another word
    kill*       a word starting with "kill" (kills, killing, killer)
    (a|b c)     alternatives; each may be several words
    {person}    any entry of the lexicon "person" (entries use this same syntax)
    X?          X is optional
    ~2          up to two arbitrary words;  ...  means ~3
    re:...      a raw regular expression on the normalised text (advanced)
A category's `allow` patterns (and the taxonomy's global `allow`) veto a match they overlap:
"kill time", "bath bomb", "cut myself a slice".

The patterns are tuned for intent ("how do I", "I want to", verb + a person as object) rather
than topic words, so that news, fiction and everyday idioms pass; they are measured on the
labelled set in `llmlab/eval/data/safety_eval.jsonl` (see tests/test_eval_safety.py).
"""

from __future__ import annotations

from typing import Any

LEXICONS: dict[str, list[str]] = {
    # Who a harmful act is aimed at.
    "det": ["my", "your", "his", "her", "our", "their", "the", "a", "an", "that", "this", "some", "every",
            "those", "these", "all", "all the"],
    "relation": [
        "person", "people", "man", "men", "woman", "women", "boy*", "girl*", "kid", "kids", "child", "children",
        "baby", "babies", "neighbor*", "neighbour*", "wife", "husband", "boyfriend", "girlfriend", "ex", "ex girlfriend",
        "ex boyfriend", "ex wife", "ex husband", "boss", "coworker*", "co worker*", "colleague*", "teacher*",
        "classmate*", "friend*", "brother*", "sister*", "mother", "mom", "mum", "father", "dad", "parents",
        "family", "roommate*", "landlord", "cop*", "police officer*", "officer*", "president", "senator",
        "politician*", "judge", "teammate*", "partner", "stranger*", "guy", "lady", "old man", "old woman",
        "pedestrian*", "student*", "customer*", "grandma", "grandmother", "grandpa", "grandfather",
        "son", "daughter", "nephew", "niece", "cousin*", "uncle", "aunt", "rival", "enemy", "enemies",
        "victim*", "hostage*", "witness*", "tourist*", "worker*", "employee*", "streamer*", "user*",
        "cashier*", "clerk*", "driver*", "doctor*", "nurse*", "guard*", "waiter*", "waitress*", "jogger*",
        "journalist*", "reporter*", "priest*", "stepfather", "stepmother", "stepdad", "stepmom", "kid next door",
    ],
    "person": ["him", "her", "them", "someone", "somebody", "anyone", "anybody", "everyone", "everybody",
               "people", "a human", "humans", "{det} ~1 {relation}", "{relation}"],
    "intent": [
        "how (do|can|could|should|would|will|might) (i|we|you|one|someone) ~1",
        "how to", "how i can", "(way|ways|trick|tricks|secret|secrets|tip|tips) to", "(best|easiest|fastest|quickest|simplest|cheapest|safest) (way|ways|method*) to",
        "help me", "help me to", "teach me (to|how to)?", "show me how to", "tell me how to", "explain how to",
        "i (want|need|plan|intend|am going|m going|wanna|gonna|will|ll) (to)?", "im (going|planning|about) to",
        "im gonna", "i wanna", "im gonna", "lets", "(instructions|steps|guide|tutorial|tips|recipe) (for|to|on)",
        "step by step", "give me (instructions|steps|a guide|a plan) (for|to)?", "write (a|an)? ~1 (plan|guide) (for|to)",
        "sure here (is|s) how to", "heres how to", "here is how to", "what (is|s) the best way to",
        "where (can|do|could) i", "(can|could|would|will) you (help me|tell me how to|show me how to)",
    ],
    "group": [
        "jews", "jewish people", "muslims", "christians", "hindus", "sikhs", "buddhists", "atheists",
        "immigrants", "refugees", "migrants", "foreigners", "black people", "blacks", "white people", "whites",
        "asians", "hispanics", "latinos", "mexicans", "arabs", "africans", "gays", "gay people", "lesbians",
        "homosexuals", "trans people", "transgender people", "women", "disabled people", "the disabled",
        "gypsies", "roma", "chinese people", "indians", "catholics", "mormons",
    ],
}

# Idioms and everyday phrases that overlap harmful patterns; they veto an overlapping match.
GLOBAL_ALLOW = [
    "kill ~1 (time|lights|engine|process|processes|job|jobs|power|mood|messenger|two birds|weeds|bugs|germs|bacteria|task|app|tab)",
    "(killing|killed|kills|kill) it", "dressed to kill", "killer (app|whale|feature|deal|view|workout|instinct)",
    "(feet|back|head|legs|heat|sun|workout|suspense|traffic) ~1 (is|are)? killing (me|my)",
    "(heart|panic|asthma|anxiety) attack*",
]

CATEGORIES: dict[str, dict[str, Any]] = {
    "violent_crimes": {
        "id": "S1",
        "name": "Violent Crimes",
        "description": "Killing, injuring, kidnapping, torturing or threatening people.",
        "patterns": [
            "(kill*|murder*|stab*|strangl*|chok*|shoot|shooting|poison*|kidnap*|abduct*|tortur*|maim*|drown*|assault*) {person}",
            "(attack*|hurt|hurting|harm|harming|injure|injuring|punch*|beat|beating|beat up|shoot up) {person}",
            "(slit|cut) {det}? ~1 throat*", "(break|snap) {person} (neck|necks)",
            "(beat|beating) {person} up", "(run|running) over {det}? ~1 {relation}",
            "(get away with|cover up) (a|the)? (murder|killing|homicide)", "(hide|dispose of|get rid of) (a|the) ~1 (body|bodies|corpse)",
            "{intent} ~2 (murder*|strangl*|kidnap*|abduct*|tortur*|assault*|ambush*)",
            "(shoot|bomb|attack|shoot up) (a|the|my|our|this)? (school|church|mosque|synagogue|temple|mall|crowd|concert|parade|stadium)",
            "(attack|massacre|shooting) (on|at) (a|the)? ~1 (crowd|school|parade|concert|church|mosque|synagogue)",
            "(make|made) {person} disappear", "(until|till) (he|she|they) (stops|stop) (moving|breathing)",
        ],
        "allow": [
            "(shoot*|shot) {person} (a|an)? ~1 (email|text|message|note|line|dm|look|glance|smile|photo|picture)",
            "(hurt|hurting|harm) ~3 feelings", "(attack*|beat) ~2 (argument|point|position|claim|idea|at chess|at tennis|at cards|in a race|at (a|the)? ~1 game)",
            "beat {person} (at|in|to) ~2", "take a stab", "(chok*) (up|on)",
        ],
    },
    "non_violent_crimes": {
        "id": "S2",
        "name": "Non-Violent Crimes",
        "description": "Theft, burglary, fraud, hacking, drug manufacture and trafficking, counterfeiting.",
        "patterns": [
            "{intent} ~2 (steal*|stole|shoplift*|rob|robbing|burglar*|burgle|hotwire*|pickpocket*|launder*|counterfeit*|smuggl*|embezzl*)",
            "(steal*|stole) ~3 (from|without (paying|getting caught|them knowing))",
            "steal* {det}? ~1 (car|wallet|purse|money|cash|bike|bicycle|phone|identity|credit card*|card number*|jewelry|laptop|password*|credentials|wifi|package*)",
            "hotwire* ~2 (car|motorcycle|truck|vehicle)", "(sell|selling|fence) ~1 stolen",
            "(break|breaking|broke) into ~1 {det}? ~1 (house|home|apartment|car|store|shop|office|account*|email|phone|computer|network|server|database|system|instagram|facebook)",
            "(hack|hacking|hacked) (into|in to) ~3", "{intent} ~2 hack ~3 (account*|email|phone|wifi|network|server|website|instagram|facebook|bank)",
            "(write|make|create|build|code) ~2 (ransomware|keylogger|malware|virus|trojan|botnet|spyware|phishing (email|page|site|kit))",
            "(ddos|dos) ~2 (site|website|server|network)",
            "(make|making|made|cook*|synthesi*|produc*|manufactur*|brew*) ~2 (meth|methamphetamine|crack|crack cocaine|cocaine|heroin|fentanyl|lsd|mdma)",
            "(sell|selling|deal|dealing|smuggl*|traffic*) ~3 (drugs|meth|cocaine|heroin|fentanyl|weed|pills)",
            "(make|print|produce) ~1 counterfeit*", "(fake|forge|forged) (id|ids|passport*|drivers licen*|licen*)",
            "(launder*|laundering) ~1 money", "(commit|committing) ~2 fraud", "(evade|evading|dodge) ~1 taxes",
            "(pick|picking) the lock on {det}? ~1 {relation}", "(rob|robbing|burglari*) (a|the) ~1 (bank|store|house|gas station|shop)",
        ],
        "allow": [
            "(steal*|stole) (the|a|my|your|his|her)? (show|spotlight|glance|look|base|kiss|heart|scene|thunder|march|this look)",
            "(break*|broke) into (song|tears|laughter|a smile|a run|the (tech|film|music) industry)",
            "(how|way|ways) ~3 (prevent|stop|spot|avoid|report|detect|protect|recognize)",
        ],
    },
    "weapons": {
        "id": "S9",
        "name": "Indiscriminate & Illegal Weapons",
        "description": "Explosives, chemical, biological, radiological and nuclear weapons; illegal firearms.",
        "patterns": [
            "(make|making|build|building|assemble|create|construct|manufactur*|produce|synthesi*|brew|mix|cook|recipe for|instructions for) ~3 (bomb*|pipe bomb*|explosive*|ied|ieds|grenade*|molotov*|napalm|nerve agent*|sarin|vx|ricin|anthrax|mustard gas|chlorine gas|dirty bomb*|bioweapon*|chemical weapon*|thermite|detonator*)",
            "{intent} ~3 (bomb|explosive*|ied|grenade*|molotov*|napalm|sarin|ricin|bioweapon*|nerve agent*|mustard gas|chlorine gas|nuclear (bomb|weapon))",
            "(nuclear|atomic) (bomb*|weapon*|device*) (at home|in my|yourself)",
            "(build|make|making|building) ~2 (nuclear|atomic) (bomb|weapon|device)",
            "(bomb|blow up|blowing up|blast) ~2 (building|school|church|mosque|synagogue|plane|airport|station|train|crowd|stadium|embassy|bridge|bus|subway|mall)",
            "(weaponi*|aerosoli*|culture|cultivate) ~2 (anthrax|smallpox|plague|ricin|virus|pathogen*|spores|bioweapon*)",
            "(3d print*|print) ~2 (gun|guns|firearm*|pistol)", "untraceable (gun*|firearm*)", "ghost gun*",
            "(convert|make|modify) ~3 (full auto|fully automatic|automatic|machine gun)", "(homemade|make a) (silencer|suppressor)",
            "(buy|get) ~2 (illegal|unregistered|untraceable) ~1 (gun|guns|firearm*|machine gun*|weapon*)",
        ],
        "allow": [
            "(bath|f|photo|cherry|calorie|glitter|seed|stink|smoke) ~1 bomb*", "(cake|it|this|that) (is|was) the bomb",
            "bomb* (the|my|our|that|this)? ~2 (exam|test|interview|presentation|audition|quiz)", "(bomb proof|bombproof|bomb shelter|bomb squad|bomb disposal)",
            "blow* up ~2 (balloon*|photo*|picture*|image*|phone|inbox)",
        ],
    },
    "hate": {
        "id": "S10",
        "name": "Hate",
        "description": "Dehumanising or demeaning people, or calling for violence or exclusion, based on a protected attribute.",
        "patterns": [
            "{group} (are|is) (all|just|nothing but)? ~1 (vermin|animals|subhuman|sub human|parasites|rats|cockroaches|inferior|filth|filthy|scum|a disease|a plague|not human|savages|trash|garbage|a cancer|apes|monkeys|pigs|dogs)",
            "(exterminate|eradicate|wipe out|get rid of|kill|gas|deport|ban|eliminate|purge|cleanse) (all)? (the|of)? {group}",
            "{group} (should|must|need to|deserve to|ought to) ~1 (die|be (killed|exterminated|wiped out|eradicated|gassed|deported|banned|eliminated|driven out|removed|locked up))",
            "{group} (dont|do not) deserve (rights|to live|to exist)",
            "i hate (all)? (the)? {group}", "(death to|down with) (all)? (the)? {group}",
            "{group} ~1 infesting",
        ],
        "allow": [],
    },
    "self_harm": {
        "id": "S11",
        "name": "Suicide & Self-Harm",
        "description": "Encouraging or enabling suicide, self-injury or disordered eating.",
        "patterns": [
            "(kill|hang|drown|shoot|overdose|off) myself", "(end|take|ending|taking) my (own)? life",
            "(commit|committing) suicide", "suicide (method*|note|plan*|tips)",
            "(painless|quick|quickest|easiest|best|fastest) (way|ways|method*) to (die|kill myself|end it|end my life|commit suicide|go)",
            "(want|wanna|going) to die", "(wish|want) i (was|were) dead", "(dont|do not) want to (live|be alive|exist) anymore",
            "{intent} ~1 (cut|cutting|burn|burning|hurt|hurting|harm|harming|starve|starving) myself",
            "(slit|cut|cutting|slitting) my (wrist|wrists)",
            "how (many|much) ~5 (to|should i) (overdose|die|kill myself|be fatal|be lethal)",
            "(overdose|od) on ~2", "lethal dose", "(jump|jumping) off ~3 (and die|to die|to kill myself)",
            "high enough to (jump off|die)", "(take|need to take) ~3 to die",
        ],
        "allow": [
            "(kill|killing) myself laughing", "(cut|cutting) myself (a|an|some) ~2 (slice|piece|bit|portion|share)",
            "suicide (prevention|hotline|helpline|squad|rate|rates|awareness)",
            "(end|take) my (own)? (car|bike|time|subscription|day|shift|turn|lease|contract)", "(take|taking) my life (in|to|into) ~2",
            "lethal dose of (cuteness|sarcasm|fun|boredom)",
        ],
    },
    "privacy": {
        "id": "S7",
        "name": "Privacy",
        "description": "Exposing, tracking or obtaining people's private information without consent.",
        "patterns": [
            "(home address|house address|address|phone number|social security number|ssn|bank details|password*|email password) (of|for) {person}",
            "(find|get|give me|tell me|look up|post|leak|publish) ~3 (home address|house address|social security number|ssn|password)",
            "dox*", "(stalk|stalking) {person}",
            "(track|tracking|spy on|spying on|monitor|monitoring) {person} ~1 (phone|location|car|messages|texts|emails|without)",
            "(spy|spying) on {person}", "(read|access|see|get into) {person} (text messages|texts|messages|emails|email account|dms|diary) ~1 (secretly|without)",
            "(read|access|get into) {det}? ~1 {relation} (email|email account|phone|texts|text messages|messages|security camera*)",
            "(read|access) ~1 (text messages|texts|messages|emails) (secretly|without)",
            "(hidden|secret) camera* ~2 (watch|spy|record)", "(gps tracker|tracker|tracking device) on ~3 (car|phone|bag)",
            "where (someone|somebody|he|she|they) (live|lives) ~2 (license plate|ip address|photo)",
            "(phone number|address) ~3 so (people|they|we) (can)? ~1 (harass|threaten|find)",
            "personal (information|info|details|data) about ~6 (expose|harass|shame|dox*|threaten)",
        ],
        "allow": ["(protect|protecting) ~2 (from|against) (being)? dox*"],
    },
    "deception": {
        "id": "X1",
        "name": "Deception",
        "description": "Lying to, tricking, cheating or manipulating people (tinyworld's in-world harm; not a Llama Guard code).",
        "patterns": [
            "{intent} ~1 (lie to|lying to|trick|tricking|deceive|deceiving|fool|fooling|manipulate|manipulating|gaslight*|con|scam*|swindle|cheat) {person}",
            "{intent} ~1 (cheat|cheating) on ~2 (test*|exam*|quiz*|homework|taxes|final*|midterm*|sat|act|gre|gmat|lsat|mcat)",
            "{intent} ~2 (forge|forging|fake|faking) ~3 (signature|note|review*|receipt|document*|diploma)",
            "write ~1 fake ~1 (review*|doctors note|note|receipt)", "(forge|forging) {det}? ~1 signature",
            "(scam|scamming|swindle|con|conning|defraud) (old|elderly)? (people|tourists|seniors|customers|{person}) ~3",
            "{intent} ~2 (deceive|fool|trick) ~2 (so (they|he|she) (dont|do not|wont) find out|into thinking)",
        ],
        "allow": ["(magic|card) trick*", "trick question*", "cheat (sheet|code|codes|day|meal)"],
    },
}


def default_taxonomy() -> dict[str, Any]:
    """A fresh copy of the default taxonomy as a plain dict (the same shape a JSON/YAML file has)."""
    import copy

    return copy.deepcopy({"lexicons": LEXICONS, "allow": GLOBAL_ALLOW, "categories": CATEGORIES})
