"""Hugging Face interop: `import_hf` (a local GPT-2 / Llama-family folder -> llmlab checkpoint) and
`export_hf` (llmlab checkpoint -> a folder `transformers` loads). See docs/interop.md."""

from llmlab.interop.hf import ConversionResult, export_hf, import_hf

__all__ = ["ConversionResult", "export_hf", "import_hf"]
