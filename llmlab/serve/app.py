"""The FastAPI app: OpenAI's endpoints on the engine loop, health, metrics and the chat page.

    app = create_app(model, tokenizer, ServeConfig(model_name="tiny"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes: `GET /` (the chat page), `GET /health`, `GET /metrics`, `GET /v1/models`,
`POST /v1/chat/completions`, `POST /v1/completions`. With an API key set, the /v1 routes need
`Authorization: Bearer KEY`; the page, health and metrics stay open (the page asks for the key).

Draining (SIGTERM, see `llmlab serve`): `begin_drain()` makes new generation requests and
/health answer 503 while running ones finish; `idle` says when none is left.
"""

from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmlab.errors import ConfigError
from llmlab.infer.engine import Engine
from llmlab.serve.completion import Completion
from llmlab.serve.errors import APIError, bad_request, from_config_error
from llmlab.serve.loop import EngineLoop
from llmlab.serve.metrics import Metrics
from llmlab.serve.protocol import ChatCompletionRequest, CompletionRequest, TokenText

GENERATION_PATHS = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}


@dataclass
class ServeConfig:
    model_name: str
    api_key: str | None = None
    max_batch: int = 32
    max_queue: int = 256


class Server:
    """What the routes share: the engine loop, metrics, and the drain state."""

    def __init__(self, model, tokenizer, config: ServeConfig, safety=None):
        self.config = config
        self.tokenizer = tokenizer
        self.context_length = model.config.context_length
        self.loop = EngineLoop(Engine(model, tokenizer, max_batch_size=config.max_batch), None, max_queue=config.max_queue)
        self.metrics = Metrics(gauges={
            "llmlab_queue_depth": ("Requests waiting to join the running batch.", lambda: self.loop.num_waiting),
            "llmlab_running_rows": ("Rows of the running batch (requests generating).", lambda: self.loop.num_running),
            "llmlab_requests_in_flight": ("Generation requests being answered.", lambda: self.active),
        })
        self.loop.metrics = self.metrics
        self.token_text = TokenText(tokenizer)
        self.safety = safety
        self.draining = False
        self.active = 0  # generation requests whose response is not finished yet
        self.created = int(time.time())

    def begin_drain(self) -> None:
        self.draining = True

    @property
    def idle(self) -> bool:
        return self.active == 0 and not self.loop.engine.has_unfinished()

    # ------------------------------------------------------------------ checks every /v1 request passes
    def authorize(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise APIError(401, "missing API key: send the header 'Authorization: Bearer KEY' (llmlab serve "
                                "was started with --api-key)", "invalid_request_error", None, "invalid_api_key")
        if not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise APIError(401, "incorrect API key provided", "invalid_request_error", None, "invalid_api_key")

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.config.model_name:
            raise APIError(404, f"the model '{name}' does not exist; this server serves '{self.config.model_name}'",
                           "invalid_request_error", "model", "model_not_found")

    def check_open(self) -> None:
        if self.draining:
            raise APIError(503, "the server is shutting down and takes no new requests", "service_unavailable",
                           None, "shutting_down")


def create_app(model, tokenizer, config: ServeConfig, *, safety=None) -> FastAPI:
    """The app serving `model`; `safety` is a SafetyFilter (or None) screening prompts and replies."""
    server = Server(model, tokenizer, config, safety)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server.loop.start()
        try:
            yield
        finally:
            server.loop.stop()

    app = FastAPI(title="llmlab serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    _install_error_handlers(app, server)

    @app.get("/", response_class=HTMLResponse)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(resources.files("llmlab.serve").joinpath("static/chat.html").read_text(encoding="utf-8"))

    @app.get("/health")
    async def health() -> JSONResponse:
        if server.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # The key is checked as a dependency: before the body is validated, so a caller without the
    # key learns nothing about what the server accepts.
    authorized = [Depends(server.authorize)]

    @app.get("/v1/models", dependencies=authorized)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": config.model_name, "object": "model", "created": server.created, "owned_by": "llmlab",
            "max_model_len": server.context_length,
        }]}

    @app.post("/v1/chat/completions", dependencies=authorized)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        server.check_model(body.model)
        server.check_open()
        if getattr(tokenizer, "chat_template", None) is None:
            raise bad_request("this model's tokenizer has no chat template; use /v1/completions", "messages")
        messages = body.chat_messages()
        try:
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except Exception as exc:  # a template that raises (e.g. roles out of order) is the caller's doing
            raise bad_request(f"the chat template rejected the messages: {exc}", "messages") from None
        overrides = body.generation_overrides(len(prompt), server.context_length)
        flagged = safety is not None and not all(safety.is_safe(m["content"]) for m in messages if m["role"] != "assistant")
        return await _generate(request, body, [prompt], overrides, chat=True, flagged=flagged)

    @app.post("/v1/completions", dependencies=authorized)
    async def completions(body: CompletionRequest, request: Request) -> Response:
        server.check_model(body.model)
        server.check_open()
        prompts = [tokenizer.encode(p) if isinstance(p, str) else list(p) for p in body.prompts()]
        overrides = body.generation_overrides()
        flagged = safety is not None and not all(safety.is_safe(p) for p in body.prompts() if isinstance(p, str))
        return await _generate(request, body, prompts, overrides, chat=False, flagged=flagged)

    async def _generate(request: Request, body, prompts: list[list[int]], overrides: dict[str, Any], *, chat: bool,
                        flagged: bool) -> Response:
        engine = server.loop.engine
        prompt_param = "messages" if chat else "prompt"
        try:
            base = engine.make_config(**overrides)
            # n > 1 with a seed: choice i uses seed + i (as vLLM does), so choices differ and each repeats.
            configs = [base if base.seed is None else base.replace(seed=base.seed + j) for j in range(body.n)]
            for p in prompts:
                engine.encode(p)  # token ids outside the vocabulary: 400 before anything is queued
        except ConfigError as exc:
            raise from_config_error(exc, prompt_param) from None
        completion = Completion(server.loop, server.token_text, chat=chat, model_name=config.model_name, n=body.n,
                                want_logprobs="logprobs" in overrides, include_usage=body.include_usage,
                                safety=safety)
        try:
            completion.submit([p for p in prompts for _ in range(body.n)], configs * len(prompts),
                              stream=body.stream, refuse=flagged)
        except ConfigError as exc:
            raise from_config_error(exc, prompt_param) from None
        server.metrics.count_request(GENERATION_PATHS[request.url.path], 200)
        server.active += 1
        if body.stream:
            def closed() -> None:
                completion.abort()  # a no-op once every choice has finished
                server.active -= 1

            return _EventStream(completion.events(), closed)
        try:
            result = await completion.collect(request.is_disconnected)
        finally:
            server.active -= 1
        return JSONResponse(result) if result is not None else Response(status_code=204)

    return app


class _EventStream(StreamingResponse):
    """Server-sent events that run `on_close` however the response ends: finished, cancelled by a
    disconnect, or failed before its first byte (when the events never even start, nothing else
    would free their rows)."""

    def __init__(self, events, on_close):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def _install_error_handlers(app: FastAPI, server: Server) -> None:
    def respond(request: Request, error: APIError) -> JSONResponse:
        endpoint = GENERATION_PATHS.get(request.url.path)
        if endpoint is not None:
            server.metrics.count_request(endpoint, error.status)
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        # pydantic's first complaint, as one line naming the field ("temperature: Input should be a valid number").
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request body"}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            message, param = "the request body is not valid JSON", None
        elif first.get("type") == "missing":
            message = f"missing required parameter: '{param}'"
        else:
            message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return respond(request, bad_request(message, param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return respond(request, APIError(exc.status_code, message, kind))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("llmlab.serve").exception("unhandled error in %s", request.url.path)
        return respond(request, APIError(500, f"internal error: {type(exc).__name__}: {exc}", "server_error"))
