"""llmlab tasks written as lm-evaluation-harness task folders (YAML + local JSONL data).

`write_task_folder(tasks, folder)` writes, for each `llmlab.eval.tasks.Task`:
    folder/<name>.yaml              the lm-eval task config (dataset_path: json, local data_files)
    folder/data/<name>/test.jsonl   the evaluated documents
    folder/data/<name>/train.jsonl  the few-shot pool, when it is not the documents themselves
and once, folder/tinyworld_harness.py: the `process_results` of generative tasks.

The YAML is generated at run time (not shipped in the package) because the data is: the tinyworld
tasks are built from whichever tinyworld folder (or world seed) the model was trained on, and
lm-eval's `data_files` must name those files. The folder stands on its own: `lm_eval --model hf
--include_path FOLDER --tasks tinyworld_reviews` runs it on an exported Hugging Face checkpoint.

The same prompt, few-shot draw and metric as `llmlab eval tasks` (tests/test_eval_harness.py):
- lm-eval renders description + examples + query as llmlab does, except that it does not delimit
  the description, so the YAML's description carries the few-shot delimiter itself;
- the few-shot pool is a separate split when the llmlab task has one, else the test split, which
  makes lm-eval drop the evaluated document from its draw, as llmlab's `Task.fewshot_examples`;
- multiple choice: lm-eval's own acc and acc_norm (argmax of log-likelihood, and of
  log-likelihood / len(choice) in characters);
- generative: `until` = the task's stop strings, `max_gen_toks` = its max_new_tokens, greedy; lm-eval
  has no metric for llmlab's "final number" extraction, so exact_match and contains are computed
  by `llmlab.eval.tasks.score_generation` through `process_results`, on lm-eval's generations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from llmlab.errors import ConfigError, OutputError

MARKER = ".llmlab-harness-tasks"  # a folder holding it is llmlab's to rewrite
UTILS_MODULE = "tinyworld_harness"
_UTILS_SOURCE = '''"""process_results of llmlab's generative tasks (written by llmlab.eval.harness_tasks)."""
from llmlab.eval.harness_tasks import process_generation as process_results  # noqa: F401
'''


def harness_doc(task: Any, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a document that lm-eval sees (and compares, to keep a document out of its own
    few-shot examples): llmlab's `Task.doc_key` as a record."""
    if task.kind == "multiple_choice":
        return {"query": doc["query"], "choices": list(doc["choices"]), "gold": int(doc["gold"])}
    return {"query": doc["query"], "answer": [str(a) for a in doc["answer"]], "target": task.target(doc),
            "extract": doc.get("extract") or ""}


def process_generation(doc: Mapping[str, Any], results: Sequence[str]) -> dict[str, float]:
    """lm-eval `process_results` for a generative task: llmlab's exact_match and contains."""
    from llmlab.eval.tasks import score_generation

    return score_generation(results[0], doc["answer"], doc.get("extract") or None)


def task_config(task: Any, data_dir: Path) -> dict[str, Any]:
    """The lm-eval YAML config of `task` (a dict), its data in `data_dir`."""
    shared_pool = task.fewshot_docs is task.docs
    files = {"test": str((data_dir / "test.jsonl").resolve())}
    if not shared_pool:
        files["train"] = str((data_dir / "train.jsonl").resolve())
    cfg: dict[str, Any] = {
        "task": task.name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": files},
        "test_split": "test",
        "fewshot_split": "test" if shared_pool else "train",
        "doc_to_text": "query",
        "target_delimiter": task.target_delimiter,
        "fewshot_delimiter": task.fewshot_delimiter,
        "metadata": {"version": 1.0, "about": task.about or task.name},
    }
    if task.description:
        # lm-eval joins the description to what follows without a delimiter (its YAMLs end theirs in "\n\n").
        cfg["description"] = task.description + task.fewshot_delimiter
    if task.shots:
        # A YAML num_fewshot of 0 would make lm-eval ignore --num-fewshot; leave it out instead.
        cfg["num_fewshot"] = task.shots
    if task.kind == "multiple_choice":
        cfg.update(output_type="multiple_choice", doc_to_choice="choices", doc_to_target="gold",
                   metric_list=[{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                for m in ("acc", "acc_norm")])
    else:
        cfg.update(output_type="generate_until", doc_to_target="target",
                   generation_kwargs={"until": list(task.stop), "max_gen_toks": task.max_new_tokens,
                                      "do_sample": False, "temperature": 0.0},
                   metric_list=[{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                for m in ("exact_match", "contains")])
    return cfg


class _Dumper(yaml.SafeDumper):
    """Strings with newlines or outer spaces (delimiters, stop strings) as "\\n\\n", readable in the file."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style='"' if value != value.strip() or "\n" in value else None))


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_task_folder(tasks: Sequence[Any], folder: str | Path) -> list[str]:
    """Write `tasks` as an lm-eval include folder (see the module docstring); returns their names.
    The folder must be new, empty, or one this function wrote before (its files are then rewritten)."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).is_file():
        raise OutputError(f"{folder} is not empty and was not written by llmlab eval harness; "
                          "choose a new or empty folder for the task files")
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"two tasks are named {dupes[0]!r}; lm-eval needs unique task names")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("lm-eval task folder written by llmlab eval harness\n", encoding="utf-8")
    for task in tasks:
        data_dir = folder / "data" / task.name
        _write_jsonl(data_dir / "test.jsonl", [harness_doc(task, d) for d in task.docs])
        if task.fewshot_docs is not task.docs:
            _write_jsonl(data_dir / "train.jsonl", [harness_doc(task, d) for d in task.fewshot_docs])
        text = yaml.dump(task_config(task, data_dir), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
        if task.kind == "generate":
            text += f"process_results: !function {UTILS_MODULE}.process_results\n"
        (folder / f"{task.name}.yaml").write_text(text, encoding="utf-8")
    if any(t.kind == "generate" for t in tasks):
        (folder / f"{UTILS_MODULE}.py").write_text(_UTILS_SOURCE, encoding="utf-8")
    return names
