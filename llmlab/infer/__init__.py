"""Inference: the one place in llmlab that turns logits into tokens.

    from llmlab.infer import generate_text, Engine, GenerationConfig
    generate_text(model, tokenizer, "Once upon a time", max_new_tokens=50)

Chat, prompting, content generation, evaluation and the server all call the engine; evaluation
and alignment reuse the scoring functions (log-likelihoods without sampling).
"""

from llmlab.infer.chat import LLMChatbot
from llmlab.infer.content import ContentGenerator, extract_code
from llmlab.infer.engine import Engine, GenerationResult, StepOutput, TextStream, generate_text
from llmlab.infer.params import GenerationConfig
from llmlab.infer.prompting import (
    ClassificationResult,
    PromptTemplate,
    ReasoningResult,
    chain_of_thought_prompt,
    chain_of_thought_reasoning,
    extract_answer,
    few_shot_classification,
    few_shot_generate,
    few_shot_prompt,
    zero_shot_prompt,
)
from llmlab.infer.sampling import sample_token
from llmlab.infer.scoring import encode_pair, score_continuations, score_token_pairs, sequence_logprobs, token_logprobs

__all__ = [
    "ClassificationResult", "ContentGenerator", "Engine", "GenerationConfig", "GenerationResult", "LLMChatbot",
    "PromptTemplate", "ReasoningResult", "StepOutput", "TextStream", "chain_of_thought_prompt",
    "chain_of_thought_reasoning", "encode_pair", "extract_answer", "extract_code", "few_shot_classification",
    "few_shot_generate", "few_shot_prompt", "generate_text", "sample_token", "score_continuations",
    "score_token_pairs", "sequence_logprobs", "token_logprobs", "zero_shot_prompt",
]
