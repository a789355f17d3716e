"""`llmlab serve`: an OpenAI-compatible HTTP server on the engine's continuous batching, and a chat page.

    from llmlab.serve import create_app, ServeConfig
    app = create_app(model, tokenizer, ServeConfig(model_name="tiny"))   # a FastAPI app

Modules: `app` (routes, auth, errors), `loop` (the thread driving Engine.step()), `completion`
(one request's choices to OpenAI's response objects and server-sent events), `protocol` (request
bodies and logprobs objects), `metrics` (Prometheus text), `errors` (OpenAI's error shape),
`runner` (uvicorn with a graceful SIGTERM drain; `spawn` starts `llmlab serve` as a child process),
`static/chat.html` (the page). The engine (`llmlab.infer`) is the only thing that samples.
"""

from llmlab.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
