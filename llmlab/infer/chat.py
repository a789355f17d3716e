"""`LLMChatbot`: a multi-turn chat on top of the engine and the tokenizer's chat template.

The conversation is rendered with the tokenizer's chat template (ChatML by default: the format
tinyworld's SFT data uses), so the model sees exactly what it was fine-tuned on; the reply ends at
the end-of-turn token. A tokenizer without a template falls back to the lesson's plain
"Human: ... / Assistant: ..." format, stopping where the model starts a new "Human:" turn.

When the conversation no longer fits the context (leaving room for the reply), the oldest turns
are left out of the prompt; they stay in `conversation_history` (and in saved transcripts).

A reply stopped early (Ctrl-C, or the caller closing `stream`) is kept as far as it was generated
and marked `"interrupted": True`, so the history (what the model sees next) matches what the user
saw; saved transcripts carry the mark on that assistant message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from llmlab.errors import ConfigError, DataError, OutputError, json_error
from llmlab.infer.engine import Engine, GenerationResult
from llmlab.infer.params import GenerationConfig, checkpoint_defaults


class LLMChatbot:
    def __init__(
        self,
        model,
        tokenizer,
        system_prompt: str = "",
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        engine: Engine | None = None,
        **generation: Any,
    ):
        """max_new_tokens / temperature default to the checkpoint's generation_config, else 256 / 0.7.
        Other keywords are GenerationConfig fields (top_p, repetition_penalty, seed, ...)."""
        self.model = model
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.engine = engine or Engine(model, tokenizer, max_batch_size=1)
        stored = checkpoint_defaults(model)
        if max_new_tokens is None:
            max_new_tokens = stored.get("max_new_tokens", 256)
        if temperature is None:
            temperature = stored.get("temperature", 0.7)
        self.config: GenerationConfig = self.engine.make_config(
            max_new_tokens=max_new_tokens, temperature=temperature, **generation
        )
        self.conversation_history: list[dict[str, str]] = []  # the lesson's shape: {"user", "assistant"}
        self.trimmed_turns = 0  # turns left out of the last prompt to fit the context
        self.last_result: GenerationResult | None = None
        self.use_template = getattr(tokenizer, "chat_template", None) is not None

    # ------------------------------------------------------------------ the conversation
    def chat(self, user_message: str) -> str:
        """Reply to `user_message` and remember the turn; returns the reply (whitespace-trimmed)."""
        for _ in self.stream(user_message):
            pass
        return self.conversation_history[-1]["assistant"]

    def stream(self, user_message: str) -> Iterator[str]:
        """Reply piece by piece (for a terminal); the turn is remembered when the reply ends. Stopping
        early (closing the iterator, Ctrl-C) remembers the partial reply, marked "interrupted"."""
        prompt_ids = self.build_prompt(user_message)
        config = self.config
        if not self.use_template:
            config = config.replace(stop=list(config.stop) + ["\nHuman:"])
        pieces = []
        stream = self.engine.stream(prompt_ids, config)
        try:
            for piece in stream:
                pieces.append(piece)
                yield piece
        except (KeyboardInterrupt, GeneratorExit):
            stream.close()  # free the engine's row
            self.conversation_history.append({"user": user_message, "assistant": "".join(pieces).strip(),
                                              "interrupted": True})
            raise
        self.last_result = stream.result
        self.conversation_history.append({"user": user_message, "assistant": "".join(pieces).strip()})

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.conversation_history.clear()
        self.trimmed_turns = 0

    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation as chat messages (system, then user/assistant turns)."""
        return self._messages(self.conversation_history)

    def _messages(self, turns: list[dict[str, str]], user_message: str | None = None) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for turn in turns:
            messages += [{"role": "user", "content": turn["user"]}, {"role": "assistant", "content": turn["assistant"]}]
        if user_message is not None:
            messages.append({"role": "user", "content": user_message})
        return messages

    # ------------------------------------------------------------------ prompt and trimming
    def render(self, turns: list[dict[str, str]], user_message: str) -> list[int]:
        if self.use_template:
            return self.tokenizer.apply_chat_template(
                self._messages(turns, user_message), add_generation_prompt=True, tokenize=True
            )
        # The lesson's format, for tokenizers without a chat template.
        text = (self.system_prompt + "\n\n") if self.system_prompt else ""
        for turn in turns:
            text += f"Human: {turn['user']}\nAssistant: {turn['assistant']}\n\n"
        text += f"Human: {user_message}\nAssistant:"
        return self.tokenizer.encode(text)

    def build_prompt(self, user_message: str) -> list[int]:
        """The prompt's token ids with as many recent turns as fit, leaving room for the reply
        (max_new_tokens, but at most half the context)."""
        C = self.engine.context_length
        room = min(self.config.max_new_tokens or 256, C // 2)
        turns = self.conversation_history
        # Fewest turns dropped first; rendering is cheap next to generating.
        for dropped in range(len(turns) + 1):
            ids = self.render(turns[dropped:], user_message)
            if len(ids) + room <= C:
                self.trimmed_turns = dropped
                return ids
        if len(ids) < C:  # only the newest message is left: let the reply take what room remains
            self.trimmed_turns = len(turns)
            return ids
        raise ConfigError(
            f"this message (with the system prompt) takes {len(ids)} tokens, more than the model's context of {C}"
        )

    # ------------------------------------------------------------------ transcripts
    def save(self, path: str | Path) -> Path:
        """Write the conversation as JSON (system prompt, messages; an interrupted reply's message
        has "interrupted": true). The folder must exist: a mistyped one is not created."""
        path = Path(path)
        if not path.parent.is_dir():
            raise OutputError(f"cannot save to {path}: folder {path.parent} does not exist")
        messages = self.messages
        replies = [m for m in messages if m["role"] == "assistant"]
        for message, turn in zip(replies, self.conversation_history):
            if turn.get("interrupted"):
                message["interrupted"] = True
        data = {"system_prompt": self.system_prompt, "messages": messages}
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return path

    def load(self, path: str | Path) -> None:
        """Continue a conversation saved by `save`."""
        try:
            data = json.loads(Path(path).read_text())
            messages = data["messages"]
        except json.JSONDecodeError as exc:
            raise DataError(json_error(path, exc)) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read a chat transcript from {path}: {exc}") from None
        self.system_prompt = data.get("system_prompt", "")
        turns, pending = [], None
        for m in messages:
            if m.get("role") == "user":
                pending = m.get("content", "")
            elif m.get("role") == "assistant" and pending is not None:
                turns.append({"user": pending, "assistant": m.get("content", ""),
                              **({"interrupted": True} if m.get("interrupted") else {})})
                pending = None
        self.conversation_history = turns
