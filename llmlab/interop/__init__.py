"""Hugging Face interop: `import_hf` (a local GPT-2 / Llama-family folder -> llmlab checkpoint) and
`export_hf` (llmlab checkpoint -> a folder `transformers` loads); `export_gguf` (llmlab checkpoint
-> a GGUF file llama.cpp and Ollama run). See docs/interop.md."""

from llmlab.interop.gguf_export import GGUFResult, export_gguf
from llmlab.interop.hf import ConversionResult, export_hf, import_hf

__all__ = ["ConversionResult", "GGUFResult", "export_gguf", "export_hf", "import_hf"]
