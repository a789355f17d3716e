"""Training runs never silently restart, and Ctrl-C + --resume is exact (issue 11, part B).

The run-directory rules (fresh, --resume, refuse) on pretrain and the fine-tuning commands, with
failures that leave metrics.jsonl and checkpoint/ byte for byte as they were; Ctrl-C that stops at a
step boundary for pretrain, SFT and PPO (a second Ctrl-C aborts), checked against uninterrupted runs
loss for loss; train_config.json paths that work from any directory, old relative ones included.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train import run_cli, shards, step_losses, train_args  # noqa: F401  (shards is a fixture)

from llmlab.cli.main import main
from llmlab.train.metrics_log import read_metrics

TESTS = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------- helpers
def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) with a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def start_cli(args: list[str], **env) -> subprocess.Popen:
    python_path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": python_path, **env}
    return subprocess.Popen([sys.executable, "-m", "llmlab.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env)


def run_to_end(args: list[str], **env) -> tuple[int, str]:
    """Run the CLI (with tests/ importable, for the reward function below); (exit code, stderr)."""
    proc = start_cli(args, **env)
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def ctrl_c_after(proc: subprocess.Popen, run_dir: Path, steps: int) -> tuple[int, str]:
    """Send one SIGINT once metrics.jsonl shows `steps` steps; (exit code, stderr)."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        done = step_losses(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
        if done and done[-1][0] >= steps:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def saved_loop(run_dir: Path) -> tuple[dict, dict]:
    state = torch.load(run_dir / "checkpoint" / "trainer_state.pt", weights_only=True)
    return state["loop"], state["data"]


def step_records(run_dir: Path) -> list[dict]:
    """Per-step metrics without the timing fields, which differ between any two runs."""
    timing = {"elapsed", "tokens_per_s", "mfu"}
    return [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(run_dir) if "loss" in r]


def interrupting_reward(prompts, responses):
    """The share of 'a' in each response. On the rollout numbered LLMLAB_TEST_SIGINT_AT (1-based) it
    first sends its own process LLMLAB_TEST_SIGINTS Ctrl-Cs: a user pressing Ctrl-C in the middle of
    a PPO step (during sampling), at a point that does not depend on timing."""
    interrupting_reward.calls = getattr(interrupting_reward, "calls", 0) + 1
    if interrupting_reward.calls == int(os.environ.get("LLMLAB_TEST_SIGINT_AT", "0")):
        for _ in range(int(os.environ.get("LLMLAB_TEST_SIGINTS", "1"))):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler runs here, before the next Ctrl-C
    return [r.count("a") / max(1, len(r)) for r in responses]


# ---------------------------------------------------------------------------- Ctrl-C: pretrain
PRETRAIN_STEPS = 300


def pretrain_args(shards, out: Path) -> list[str]:
    data, model_config = shards
    args = train_args(data, model_config, out, steps=PRETRAIN_STEPS) + ["--precision", "fp32"]
    args[args.index("--batch-size") + 1] = "8"
    args[args.index("--save-every") + 1] = "1000"  # the interrupt's own checkpoint is the one resumed
    return args


@pytest.mark.slow
def test_ctrl_c_stops_pretrain_at_a_step_boundary_and_resume_is_bit_exact(shards, tmp_path):
    straight = run_cli(pretrain_args(shards, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    expected = step_losses(tmp_path / "straight")
    assert len(expected) == PRETRAIN_STEPS

    run = tmp_path / "run"
    code, err = ctrl_c_after(start_cli(pretrain_args(shards, run)), run, steps=5)
    assert code == 130, err
    loop, data = saved_loop(run)
    assert 5 <= loop["step"] < PRETRAIN_STEPS
    assert data["consumed"] == loop["step"] * 8  # windows consumed = steps taken x batch size, no more
    assert [s for s, _ in step_losses(run)] == list(range(1, loop["step"] + 1))
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert lines == [f"interrupted at step {loop['step']}; checkpoint saved to {run / 'checkpoint'}. "
                     "Continue with the same `llmlab pretrain` command plus --resume."], err
    assert "quickstart" not in err

    resumed = run_cli(["pretrain", "--out", str(run), "--resume"])  # the saved settings apply
    assert resumed.returncode == 0, resumed.stderr
    assert step_losses(run) == expected  # equal, not close


@pytest.mark.slow
def test_ctrl_c_under_torchrun_stops_every_process_at_the_same_step(shards, tmp_path):
    """A terminal's Ctrl-C reaches every process of the group (torchrun's agent relays it once more):
    all ranks stop at one step boundary, save their state, and the run resumes bit for bit."""
    data, model_config = shards

    def torchrun(out: Path, *extra: str) -> subprocess.Popen:
        args = train_args(data, model_config, out, steps=120) + ["--precision", "fp32", "--save-every", "1000"]
        return subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "llmlab.cli.main", *args, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"})

    def finish(proc: subprocess.Popen) -> None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]

    finish(torchrun(tmp_path / "straight"))
    run = tmp_path / "run"
    proc = torchrun(run)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(step_losses(run)) < 5:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    _, err = proc.communicate(timeout=300)
    loop, position = saved_loop(run)
    assert 5 <= loop["step"] < 120 and position["consumed"] == loop["step"] * 4 * 2  # both ranks' windows
    assert (run / "checkpoint" / "rng_state_1.pt").is_file()
    assert len([line for line in err.splitlines() if line.startswith("interrupted at step")]) == 1, err[-2000:]
    assert "second Ctrl-C" not in err  # the agent's relayed Ctrl-C is the same one
    finish(torchrun(run, "--resume"))
    assert step_losses(run) == step_losses(tmp_path / "straight")


# ---------------------------------------------------------------------------- Ctrl-C: SFT
SFT_STEPS = 150


def sft_args(finetune_checkpoint, tmp_path: Path, out: Path) -> list[str]:
    data = tmp_path / "sft.jsonl"
    if not data.is_file():
        names = ["Mia", "Tom", "Sam", "Lily", "Ben"]
        data.write_text("\n".join(json.dumps({"messages": [
            {"role": "user", "content": f"Where does {n} live?"},
            {"role": "assistant", "content": f"{n} lives in Pinebrook."}]}) for n in names * 20) + "\n")
    return ["sft", "--model", str(finetune_checkpoint), "--data", str(data), "--out", str(out),
            "--max-steps", str(SFT_STEPS), "--batch-size", "4", "--lr", "1e-3", "--eval-every", "1000",
            "--save-every", "1000", "--samples", "0", "--threads", "1", "--no-progress", "--precision", "fp32"]


@pytest.mark.slow
def test_ctrl_c_stops_sft_at_a_step_boundary_and_resume_is_bit_exact(finetune_checkpoint, tmp_path):
    straight = run_cli(sft_args(finetune_checkpoint, tmp_path, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    expected = step_records(tmp_path / "straight")
    assert len(expected) == SFT_STEPS

    run = tmp_path / "run"
    code, err = ctrl_c_after(start_cli(sft_args(finetune_checkpoint, tmp_path, run)), run, steps=5)
    assert code == 130, err
    step = saved_loop(run)[0]["step"]
    assert 5 <= step < SFT_STEPS
    assert [line for line in err.splitlines() if "interrupted" in line] == [
        f"interrupted at step {step}; checkpoint saved to {run / 'checkpoint'}. "
        "Continue with the same `llmlab sft` command plus --resume."], err

    resumed = run_cli(["sft", "--out", str(run), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert step_records(run) == expected


# ---------------------------------------------------------------------------- Ctrl-C: PPO
def ppo_args(finetune_checkpoint, tmp_path: Path, out: Path) -> list[str]:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(["Once upon a time", "Mia had", "Tom lives in", "The shop"]) + "\n")
    return ["ppo", "--policy", str(finetune_checkpoint), "--prompts", str(prompts), "--out", str(out),
            "--reward", "test_reliability_training:interrupting_reward", "--rollouts", "3", "--rollout-batch", "4",
            "--minibatch-size", "2", "--ppo-epochs", "2", "--max-new-tokens", "6", "--lr", "1e-2", "--threads", "1",
            "--no-progress", "--precision", "fp32", "--save-every", "2"]


@pytest.mark.slow
def test_ctrl_c_during_a_ppo_rollout_finishes_the_step_and_resumes_exactly(finetune_checkpoint, tmp_path):
    code, err = run_to_end(ppo_args(finetune_checkpoint, tmp_path, tmp_path / "straight"))
    assert code == 0, err
    expected = step_records(tmp_path / "straight")
    assert len(expected) == 3 * 2 * 2

    run = tmp_path / "run"
    # Ctrl-C while rollout 2 is sampled, inside step 5 (rollout 1 gave steps 1-4).
    code, err = run_to_end(ppo_args(finetune_checkpoint, tmp_path, run), LLMLAB_TEST_SIGINT_AT="2")
    assert code == 130, err
    loop, data = saved_loop(run)
    assert loop["step"] == 5 and data["rollouts"] == 2 and len(data["queue"]) == 3  # 4 minibatches, 1 used
    assert "Continue with the same `llmlab ppo` command plus --resume." in err

    code, err = run_to_end(["ppo", "--out", str(run), "--resume"])
    assert code == 0, err
    assert step_records(run) == expected
    assert (run / "rollouts.jsonl").read_text().count("\n") == 3


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once_without_saving(finetune_checkpoint, tmp_path):
    run = tmp_path / "run"
    # Two Ctrl-Cs inside step 5; the last checkpoint is step 4's (--save-every 2).
    code, err = run_to_end(ppo_args(finetune_checkpoint, tmp_path, run), LLMLAB_TEST_SIGINT_AT="2",
                           LLMLAB_TEST_SIGINTS="2")
    assert code == 130, err
    assert saved_loop(run)[0]["step"] == 4  # step 5 was neither finished nor saved
    assert [line for line in err.splitlines() if "aborted" in line or "interrupted" in line] == [
        f"second Ctrl-C: aborted without saving; the last checkpoint is {run / 'checkpoint'} (step 4). "
        "Continue with the same `llmlab ppo` command plus --resume."], err
    assert not list(run.glob(".checkpoint.*"))  # no half-written checkpoint left behind


def test_signal_handlers_stop_once_abort_on_the_second_ctrl_c_and_are_restored(monkeypatch):
    from llmlab.errors import Interrupted
    from llmlab.train.trainer import StopSignals

    def previous(signum, frame):
        pass

    old_int, old_term = signal.signal(signal.SIGINT, previous), signal.getsignal(signal.SIGTERM)
    try:
        with StopSignals(lambda: ("second Ctrl-C: aborted", "ckpt"), announce=False) as stop:
            assert signal.getsignal(signal.SIGINT) == stop._handle == signal.getsignal(signal.SIGTERM)
            stop._handle(signal.SIGTERM, None)
            stop._handle(signal.SIGTERM, None)  # repeated SIGTERMs (torchrun's agent) never abort
            assert stop.requested
            stop._handle(signal.SIGINT, None)  # the first Ctrl-C only asks to stop
            with pytest.raises(Interrupted, match="second Ctrl-C") as caught:
                stop._handle(signal.SIGINT, None)
            assert caught.value.checkpoint == "ckpt"
        assert signal.getsignal(signal.SIGINT) is previous and signal.getsignal(signal.SIGTERM) == old_term
        # Under torchrun the agent relays the terminal's Ctrl-C: the same one, arriving twice.
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
        with StopSignals(lambda: ("second Ctrl-C: aborted", None), announce=False) as stop:
            stop._handle(signal.SIGINT, None)
            stop._handle(signal.SIGINT, None)
            assert stop.requested
            stop.first_ctrl_c -= stop.RELAYED_SECONDS  # a real second Ctrl-C, a moment later
            with pytest.raises(Interrupted, match="second Ctrl-C"):
                stop._handle(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGINT, old_int)


def test_the_interrupt_message_names_the_command_that_was_run(capsys):
    from llmlab.cli.main import _print_interrupted
    from llmlab.errors import Interrupted

    stopped = Interrupted("interrupted at step 3; checkpoint saved to r/checkpoint", "r/checkpoint")
    cases = {
        ("pretrain", "--out", "r"): "Continue with the same `llmlab pretrain` command plus --resume.",
        ("dpo", "--out", "r", "--resume"): "Continue by running the same `llmlab dpo` command again.",
        ("quickstart", "--out", "q"): "Continue by running the same `llmlab quickstart` command again.",
    }
    for args, hint in cases.items():
        _print_interrupted(stopped, list(args))
        assert capsys.readouterr().err == f"interrupted at step 3; checkpoint saved to r/checkpoint. {hint}\n"
    _print_interrupted(KeyboardInterrupt(), ["eval", "perplexity"])
    assert capsys.readouterr().err == "interrupted\n"


# ---------------------------------------------------------------------------- the run-directory rules
@pytest.fixture(scope="module")
def finished_run(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "done"
    data, model_config = shards
    assert main(train_args(data, model_config, out, steps=3)) == 0
    return out


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "checkpoint" / "trainer_state.pt").unlink(), "trainer_state.pt is missing"),
    (lambda run: (run / "checkpoint" / "model.safetensors").unlink(), "model.safetensors is missing"),
    (lambda run: (run / "checkpoint" / "config.json").write_text("{"), "config.json is not valid JSON"),
    (lambda run: os.truncate(run / "checkpoint" / "trainer_state.pt", 100), "trainer_state.pt is corrupt or truncated"),
    (lambda run: os.truncate(run / "checkpoint" / "model.safetensors", 100),
     "model.safetensors is corrupt or truncated"),
])
def test_resume_of_a_damaged_checkpoint_fails_naming_the_file_and_changes_nothing(
        finished_run, tmp_path, capsys, damage, message):
    run = copy_run(finished_run, tmp_path / "run")
    damage(run)
    before = tree_digest(run)
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--resume", "--max-steps", "6"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    # Flags that would make a fresh start possible do not turn --resume into one.
    data = json.loads((run / "train_config.json").read_text())["data"]
    assert main(["pretrain", "--out", str(run), "--resume", "--data", data, "--max-steps", "6"]) == 1
    assert tree_digest(run) == before  # metrics.jsonl and checkpoint/ byte for byte


def test_resume_without_a_run_says_what_is_missing(tmp_path, capsys):
    capsys.readouterr()
    assert main(["pretrain", "--out", str(tmp_path / "nothing"), "--resume"]) == 1
    assert capsys.readouterr().err == f"error: cannot resume: {tmp_path / 'nothing'} does not exist (check --out)\n"
    (tmp_path / "empty").mkdir()
    assert main(["pretrain", "--out", str(tmp_path / "empty"), "--resume"]) == 1
    assert "has no checkpoint/ (no run was started there)" in capsys.readouterr().err
    assert not list((tmp_path / "empty").iterdir())
    # A run that stopped before its first checkpoint: its metrics are kept, not truncated.
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "metrics.jsonl").write_text('{"step": 1, "loss": 5.0}\n')
    assert main(["sft", "--out", str(tmp_path / "early"), "--resume"]) == 1
    assert "it holds only metrics.jsonl" in capsys.readouterr().err
    assert (tmp_path / "early" / "metrics.jsonl").read_text() == '{"step": 1, "loss": 5.0}\n'


def test_a_new_run_never_takes_over_a_directory_with_another_runs_files(shards, finished_run, tmp_path, capsys):
    data, model_config = shards
    foreign = tmp_path / "foreign"
    (foreign / "checkpoint").mkdir(parents=True)
    (foreign / "checkpoint" / "model.safetensors").write_bytes(b"someone else's")
    (foreign / "metrics.jsonl").write_text('{"step": 7, "loss": 1.0}\n')
    before = tree_digest(foreign)
    capsys.readouterr()
    assert main(train_args(data, model_config, foreign, steps=2)) == 1
    err = capsys.readouterr().err
    assert "already holds checkpoint/, metrics.jsonl but no run that --resume can continue" in err, err
    assert main(train_args(data, model_config, foreign, steps=2) + ["--resume"]) == 1
    assert "checkpoint/config.json is missing" in capsys.readouterr().err
    assert tree_digest(foreign) == before
    # Our own finished run: without --resume refused, pointing at --resume.
    run = copy_run(finished_run, tmp_path / "own")
    before = tree_digest(run)
    assert main(train_args(data, model_config, run, steps=2)) == 1
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert tree_digest(run) == before


def test_fine_tuning_commands_share_the_run_directory_rules(finetune_checkpoint, finished_run, tmp_path, capsys):
    from llmlab.errors import CheckpointError, ConfigError
    from llmlab.train.dpo import run_dpo
    from llmlab.train.finetune_config import DPOConfig, PPOConfig, RewardConfig
    from llmlab.train.ppo import run_ppo
    from llmlab.train.reward import run_reward

    foreign = tmp_path / "foreign"
    (foreign / "checkpoint").mkdir(parents=True)
    (foreign / "metrics.jsonl").write_text("{}\n")
    before = tree_digest(foreign)
    capsys.readouterr()
    assert main(["sft", "--model", str(finetune_checkpoint), "--out", str(foreign), "--max-steps", "1"]) == 1
    assert "no run that --resume can continue" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no run that --resume can continue"):
        run_dpo(DPOConfig(model=str(finetune_checkpoint), out=str(foreign)))
    # A pretraining run is no reward run: its checkpoint lacks the head.
    run = copy_run(finished_run, tmp_path / "run")
    with pytest.raises(CheckpointError, match="reward_head.safetensors is missing"):
        run_reward(RewardConfig(model=str(finetune_checkpoint), out=str(run)), resume=True)
    # PPO's own files count too.
    ppo_dir = tmp_path / "ppo"
    ppo_dir.mkdir()
    (ppo_dir / "rollouts.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match="holds rollouts.jsonl"):
        run_ppo(PPOConfig(policy=str(finetune_checkpoint), out=str(ppo_dir)))
    assert tree_digest(foreign) == before and (ppo_dir / "rollouts.jsonl").read_text() == "{}\n"


def test_auto_resume_restarts_only_its_own_attempt_that_never_saved(tmp_path):
    from llmlab.errors import ConfigError
    from llmlab.train.run_dir import prepare_run_dir

    own = tmp_path / "own"
    own.mkdir()
    (own / "train_config.json").write_text(json.dumps({"out": str(own)}))
    (own / "metrics.jsonl").write_text('{"step": 1, "loss": 5.0}\n')
    assert prepare_run_dir(own, "auto") is False  # the quickstart, re-run after a crash at step 1
    with pytest.raises(ConfigError, match="already holds"):
        prepare_run_dir(own, False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "train_config.json").write_text(json.dumps({"out": str(tmp_path / "elsewhere")}))
    with pytest.raises(ConfigError, match="already holds train_config.json"):
        prepare_run_dir(other, "auto")
    assert prepare_run_dir(tmp_path / "new", "auto") is False and not (tmp_path / "new").exists()


def test_auto_resume_starts_a_run_then_continues_it(shards, tmp_path):
    """What the quickstart relies on: re-running the same call continues its run."""
    from llmlab.train.config import TrainConfig
    from llmlab.train.pretrain import run_pretraining

    data, model_config = shards
    cfg = TrainConfig(data=str(data), model_config=str(model_config), out=str(tmp_path / "run"), seq_len=32,
                      batch_size=2, max_steps=2, eval_every=1000, samples=0, threads=1, progress=False)
    assert run_pretraining(cfg, resume="auto", log=lambda *_: None)["step"] == 2
    cfg.max_steps = 3
    assert run_pretraining(cfg, resume="auto", log=lambda *_: None)["step"] == 3
    assert [s for s, _ in step_losses(tmp_path / "run")] == [1, 2, 3]


# ---------------------------------------------------------------------------- train_config.json paths
def test_saved_paths_are_absolute_and_resume_works_from_another_directory(shards, tmp_path, monkeypatch):
    import shutil

    data, model_config = shards
    home = tmp_path / "home"
    home.mkdir()
    shutil.copytree(data, home / "data")
    shutil.copy(model_config, home / "model.json")
    monkeypatch.chdir(home)
    args = train_args(Path("data"), Path("model.json"), Path("runs/x"), steps=2)
    assert main(args) == 0
    saved = json.loads((home / "runs/x/train_config.json").read_text())
    assert saved["data"] == str(home / "data") and saved["out"] == str(home / "runs/x")
    assert saved["model_config"] == str(home / "model.json") and saved["init_from"] is None
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--out", "home/runs/x", "--resume", "--max-steps", "3"]) == 0
    assert [s for s, _ in step_losses(home / "runs/x")] == [1, 2, 3]

    # Files written before paths were absolute: relative to where the run was started (home/).
    for file in (home / "runs/x/train_config.json", home / "runs/x/checkpoint/train_config.json"):
        old = json.loads(file.read_text())
        old.update(data="data", out="runs/x", model_config="model.json")
        file.write_text(json.dumps(old))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["pretrain", "--out", str(home / "runs/x"), "--resume", "--max-steps", "4"]) == 0
    assert [s for s, _ in step_losses(home / "runs/x")] == [1, 2, 3, 4]


def test_special_values_are_not_made_paths(tmp_path, monkeypatch):
    from llmlab.train.finetune_config import PPOConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinyworld").mkdir()  # a folder that happens to share the name
    cfg = PPOConfig(policy="ckpt", prompts="tinyworld", reward="mymod:score", out="r", val_data="hf:x")
    (tmp_path / "ckpt").mkdir()
    saved = cfg.to_dict_with_absolute_paths()
    assert saved["prompts"] == "tinyworld" and saved["reward"] == "mymod:score" and saved["val_data"] == "hf:x"
    assert saved["policy"] == str(tmp_path / "ckpt") and saved["out"] == "r"  # out does not exist yet
