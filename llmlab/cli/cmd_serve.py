"""`llmlab serve`: an OpenAI-compatible server and a chat page for a checkpoint."""

from __future__ import annotations

import ipaddress

import click

from llmlab.cli.cmd_generate import dtype_option
from llmlab.cli.common import device_option, load_checkpoint, model_option, quantize_option, threads_option


@click.command("serve")
@model_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface: set --api-key then).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--api-key", envvar="LLMLAB_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' on /v1 requests (or set LLMLAB_API_KEY).")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Requests generating together (rows of the running batch).")
@click.option("--max-queue", type=click.IntRange(min=1), default=256, show_default=True,
              help="Requests waiting for a row; more get 429.")
@click.option("--served-model-name", default=None, help="The model's name in the API (default: the --model path).")
@click.option("--safety-filter", is_flag=True, help="Screen prompts and replies with the SafetyFilter (refuse / cut).")
@device_option
@quantize_option
@dtype_option
@threads_option
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True, help="uvicorn's log level.")
def command(model_dir, host, port, api_key, max_batch, max_queue, served_model_name, safety_filter, device, dtype,
            threads, log_level):
    """Serve a model over the OpenAI API, with continuous batching, and a chat page at /.

    \b
    Examples:
      llmlab serve --model runs/quickstart/checkpoint
      llmlab serve --model DIR --port 8080 --api-key secret --max-batch 64
    Then open http://127.0.0.1:8000/ or use any OpenAI client with base_url http://127.0.0.1:8000/v1.

    \b
    Endpoints: POST /v1/chat/completions, POST /v1/completions (stream: true for server-sent
    events), GET /v1/models, GET /health, GET /metrics (Prometheus). SIGTERM or Ctrl-C lets
    running requests finish, answers new ones with 503, then exits; a second one exits at once.
    """
    from llmlab.serve import ServeConfig, create_app
    from llmlab.serve.runner import run

    if not _is_loopback(host) and not api_key:
        click.secho(f"warning: listening on {host} without --api-key: anyone who can reach it can use the model",
                    fg="yellow", err=True)
    model, tokenizer = load_checkpoint(model_dir, device, dtype=dtype, threads=threads)
    safety = None
    if safety_filter:
        from llmlab.eval.safety import SafetyFilter

        safety = SafetyFilter()
    config = ServeConfig(model_name=served_model_name or model_dir, api_key=api_key, max_batch=max_batch,
                         max_queue=max_queue)
    run(create_app(model, tokenizer, config, safety=safety), host, port, log_level,
        on_ready=lambda url: click.secho(f"llmlab serve: running on {url} (chat page {url}/, OpenAI API {url}/v1)",
                                         err=True, bold=True))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
