"""One module per model family; each builds its `Family` bundle and registers it on import.

`llmlab.interop.family.families()` imports this package, which imports every module in it, so a
new family is one new module here (see gpt2.py for a small complete one)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
