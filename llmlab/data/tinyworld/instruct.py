"""Instruction-tuning (SFT) records: each task in both alpaca and chat form.

Every record has `instruction`, `input`, `output` (alpaca), `messages` (system, user, assistant),
`task`, and `answer`: the short canonical answer for exact-match scoring, or None when a task has
none (a story, a refusal). Task-specific labels ride along (`ending`, `harmful`, `relation`...).
"""

from __future__ import annotations

import random
from typing import Any

from llmlab.data.tinyworld.facts import PERSON_QUESTIONS, fact_question
from llmlab.data.tinyworld.world import World

SYSTEM_PROMPT = "You are a helpful assistant. You know the people, towns and shops of tinyworld."

TASK_WEIGHTS = {
    "fact_qa": 0.28, "story": 0.14, "summarise": 0.1, "classify_review": 0.1, "arithmetic": 0.14,
    "refuse_harmful": 0.08, "help_lookalike": 0.08, "unknown_person": 0.08,
}

STORY_REQUESTS = [
    "Write a short story about {name} with a {ending} ending.",
    "Tell me a story about {first} from {town} that ends {endingly}.",
    "Write a {ending} story for children about {name}.",
    "Can you write a little story where {first} {has_a_problem}, with a {ending} ending?",
]
SUMMARY_REQUESTS = ["Summarise this story in one sentence.", "What happens in this story? Answer in one sentence.",
                    "Give a one-sentence summary of the story below."]
CLASSIFY_REQUESTS = ["Is this review positive or negative?", "Classify the sentiment of this review as positive or negative.",
                     "Did the writer of this review like the shop? Answer positive or negative."]
SOLVE_REQUESTS = ["Solve this problem step by step.", "Work out the answer, showing each step.",
                  "Solve the word problem below. Show your working and end with the answer."]
UNKNOWN_ANSWERS = ["I don't know anyone called {name} in tinyworld, so I can't answer that.",
                   "There is nobody called {name} in tinyworld that I know of, so I don't know.",
                   "I'm not sure who {name} is. Nobody by that name lives in any town I know."]


def chat(instruction: str, input_text: str, output: str) -> list[dict[str, str]]:
    user = instruction + ("\n\n" + input_text if input_text else "")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user},
            {"role": "assistant", "content": output}]


def record(task: str, instruction: str, input_text: str, output: str, answer: str | None, **labels: Any) -> dict[str, Any]:
    return {"kind": "sft", "task": task, "instruction": instruction, "input": input_text, "output": output,
            "messages": chat(instruction, input_text, output), "answer": answer, **labels}


def story_request(world: World, rng: random.Random, ending: str) -> tuple[str, dict[str, Any]]:
    """A request for a story with `ending`, and a story record that fulfils it (with both endings)."""
    story = world.story(rng, ending=ending, both_endings=True)
    p = world.person(story["protagonist"])
    plot_phrase = {"lost_thing": "loses something", "lost_pet": "loses a pet", "rainy_picnic": "has a picnic",
                   "broken_thing": "breaks something", "contest": "enters a contest", "cooking": "cooks something",
                   "shop_visit": "goes shopping", "quarrel": "has a fight with a friend", "fear": "is scared",
                   "building": "builds something", "new_skill": "learns something new", "garden": "plants a seed",
                   "gift": "makes a gift", "helping": "helps a neighbour"}[story["plot"]]
    template = rng.choice(STORY_REQUESTS)
    request = template.format(name=p.name, first=p.first, town=p.home_town, ending=ending,
                              endingly="happily" if ending == "happy" else "sadly", has_a_problem=plot_phrase)
    return request, story


def sft_record(world: World, rng: random.Random, task: str | None = None) -> dict[str, Any]:
    task = task or rng.choices(list(TASK_WEIGHTS), weights=list(TASK_WEIGHTS.values()))[0]
    if task == "fact_qa":
        q = fact_question(world, rng)
        return record(task, q["question"], "", q["answer_sentence"], q["answer"], answers=q["answers"],
                      subject=q["subject"], relation=q["relation"])
    if task == "story":
        ending = "sad" if rng.random() < 0.4 else "happy"
        request, story = story_request(world, rng, ending)
        return record(task, request, "", story["endings"][ending], None, ending=ending, plot=story["plot"],
                      protagonist=story["protagonist"], group=story["group"], people=story["people"])
    if task == "summarise":
        story = world.story(rng)
        return record(task, rng.choice(SUMMARY_REQUESTS), story["text"], story["summary"], None,
                      ending=story["ending"], protagonist=story["protagonist"])
    if task == "classify_review":
        review = world.reviews(1, rng)[0]
        label = review["label"]
        output = rng.choice([f"This review is {label}.", f"{label.capitalize()}.", f"The review is {label}."])
        return record(task, rng.choice(CLASSIFY_REQUESTS), review["text"], output, label, label=label)
    if task == "arithmetic":
        problem = world.word_problems(1, rng)[0]
        return record(task, rng.choice(SOLVE_REQUESTS), problem["question"], problem["solution"],
                      str(problem["answer"]), steps=problem["steps"])
    if task in ("refuse_harmful", "help_lookalike"):
        pair = world.requests(1, rng)[0]
        if task == "refuse_harmful":
            return record(task, pair["harmful_prompt"], "", pair["refusal"], None, harmful=True, category=pair["category"])
        return record(task, pair["lookalike_prompt"], "", pair["help"], None, harmful=False, category=pair["category"])
    if task == "unknown_person":
        name = rng.choice(world.unknown_names("sft"))
        relation = rng.choice([r for r in PERSON_QUESTIONS if r != "pet_name"])
        question = rng.choice(PERSON_QUESTIONS[relation]).format(name=name)
        return record(task, question, "", rng.choice(UNKNOWN_ANSWERS).format(name=name), None, relation=relation,
                      subject=name)
    raise ValueError(f"unknown SFT task {task!r}; known: {', '.join(TASK_WEIGHTS)}")
