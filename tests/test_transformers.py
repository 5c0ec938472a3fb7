"""The Transformers callback with a tiny model built from a config (no download): the Tortoise follows the Hare
once per optimizer step (its closed form over the Hare's values, with gradient accumulation), scheduled evaluations
see the Tortoise while training goes on unchanged, evaluate="both" logs both networks with training unchanged, and
a run resumed from a checkpoint ends with the Tortoise of an uninterrupted one."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from hare_tortoise.integrations.transformers import HareTortoiseCallback  # noqa: E402


def model():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    return transformers.BertForSequenceClassification(config)


def data(n=48):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 40, (n, 8), generator=g)
    return [{"input_ids": row, "labels": int(row[0] % 2)} for row in ids]


def trainer(callbacks, out, **settings):
    # a constant learning rate: a run cut short by max_steps then trains as the first steps of a longer one
    args = transformers.TrainingArguments(**{
        "output_dir": str(out), "per_device_train_batch_size": 8, "learning_rate": 1e-2, "num_train_epochs": 2,
        "lr_scheduler_type": "constant", "use_cpu": True, "report_to": [], "save_strategy": "no",
        "logging_strategy": "no", "seed": 0, "disable_tqdm": True, **settings})
    return transformers.Trainer(model=model(), args=args, train_dataset=data(), eval_dataset=data(16),
                                callbacks=callbacks)


class Recorder(transformers.TrainerCallback):
    """The Hare's parameters after every optimizer step, and during evaluations whether they are the Tortoise's."""

    def __init__(self, callback):
        self.callback, self.hares, self.evaluated_tortoise = callback, [], []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.callback._swapped:  # the Hare as it trained (not swapped for an evaluation)
            self.hares.append({k: v.detach().double().clone() for k, v in model.named_parameters()})

    def on_prediction_step(self, args, state, control, model=None, **kwargs):
        tortoise = dict(self.callback.tortoise.named_parameters())
        self.evaluated_tortoise.append(all(torch.equal(p, tortoise[k]) for k, p in model.named_parameters()))


def test_the_tortoise_is_the_closed_form_of_the_hares_of_each_optimizer_step(tmp_path):
    callback = HareTortoiseCallback(momentum=0.8)
    recorder = Recorder(callback)
    run = trainer([callback, recorder], tmp_path, gradient_accumulation_steps=2)
    initial = {k: v.detach().double().clone() for k, v in run.model.named_parameters()}
    run.train()
    steps = len(recorder.hares)
    assert steps == callback.pair.num_updates == 2 * 48 // 16  # 2 epochs of 3 accumulated steps
    for name, value in callback.tortoise.named_parameters():
        expected = 0.8**steps * initial[name] + sum(0.2 * 0.8 ** (steps - k) * recorder.hares[k - 1][name]
                                                    for k in range(1, steps + 1))
        torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)


def test_scheduled_evaluations_see_the_tortoise_and_training_is_unchanged(tmp_path):
    seen = HareTortoiseCallback(momentum=0.8, reset_every_epochs=1)
    recorder = Recorder(seen)
    evaluated = trainer([seen, recorder], tmp_path / "a", eval_strategy="steps", eval_steps=2)
    evaluated.train()
    assert recorder.evaluated_tortoise and all(recorder.evaluated_tortoise)
    plain = HareTortoiseCallback(momentum=0.8, reset_every_epochs=1, evaluate="hare")
    reference = trainer([plain], tmp_path / "b", eval_strategy="steps", eval_steps=2)
    reference.train()
    assert seen.resets == plain.resets == 2
    for (name, a), (_, b) in zip(evaluated.model.named_parameters(), reference.model.named_parameters()):
        assert torch.equal(a, b), name  # the swaps changed nothing in training
    assert all(torch.equal(a, b) for a, b in zip(seen.tortoise.parameters(), plain.tortoise.parameters()))


def test_a_run_resumed_from_a_checkpoint_ends_with_the_tortoise_of_an_uninterrupted_one(tmp_path):
    whole = HareTortoiseCallback(momentum=0.8, reset_every_steps=4)
    trainer([whole], tmp_path / "whole").train()
    first = HareTortoiseCallback(momentum=0.8, reset_every_steps=4)
    trainer([first], tmp_path / "cut", save_strategy="steps", save_steps=6, max_steps=6).train()
    resumed = HareTortoiseCallback(momentum=0.8, reset_every_steps=4)
    trainer([resumed], tmp_path / "cut").train(resume_from_checkpoint=str(tmp_path / "cut" / "checkpoint-6"))
    assert resumed.pair.num_updates == whole.pair.num_updates == 12 and resumed.resets == whole.resets == 3
    for a, b in zip(resumed.tortoise.parameters(), whole.tortoise.parameters()):
        torch.testing.assert_close(a, b)


def test_an_evaluation_started_by_hand_sees_the_hare_or_in_tortoise_in_hare_the_tortoise(tmp_path):
    callback = HareTortoiseCallback(momentum=0.8)
    recorder = Recorder(callback)
    run = trainer([callback, recorder], tmp_path)
    run.train()
    hare = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.evaluate()
    assert recorder.evaluated_tortoise and not any(recorder.evaluated_tortoise)
    recorder.evaluated_tortoise.clear()
    with callback.tortoise_in_hare():
        metrics = run.evaluate(metric_key_prefix="eval_tortoise")
    assert recorder.evaluated_tortoise and all(recorder.evaluated_tortoise) and "eval_tortoise_loss" in metrics
    assert all(torch.equal(v, hare[k]) for k, v in run.model.state_dict().items())  # the Hare back, bit for bit


class Logged(transformers.TrainerCallback):
    """Every row the Trainer logs."""

    def __init__(self):
        self.rows = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.rows.append(dict(logs))


def test_evaluate_both_logs_the_hares_then_the_tortoises_metrics_and_training_is_unchanged(tmp_path):
    both, logged = HareTortoiseCallback(momentum=0.8, reset_every_epochs=1, evaluate="both"), Logged()
    recorder = Recorder(both)
    run = trainer([recorder, logged], tmp_path / "a", eval_strategy="steps", eval_steps=2)
    both.add_to(run)
    run.train()
    evaluations = [row for row in logged.rows if any(key.startswith("eval_") for key in row)]
    assert len(evaluations) == 2 * 6  # 12 steps, an evaluation every 2: the Hare's row, then the Tortoise's
    assert all("eval_loss" in hare and "eval_tortoise_loss" in tortoise
               for hare, tortoise in zip(evaluations[::2], evaluations[1::2]))
    assert all(hare["eval_loss"] != tortoise["eval_tortoise_loss"]  # two networks, two losses
               for hare, tortoise in zip(evaluations[::2], evaluations[1::2]))
    # each evaluation's 2 batches: the Hare's own values, then the Tortoise's
    assert recorder.evaluated_tortoise == [False, False, True, True] * 6
    plain = HareTortoiseCallback(momentum=0.8, reset_every_epochs=1, evaluate="hare")
    reference = trainer([plain], tmp_path / "b", eval_strategy="steps", eval_steps=2)
    reference.train()
    for (name, a), (_, b) in zip(run.model.named_parameters(), reference.model.named_parameters()):
        assert torch.equal(a, b), name
    # by hand too (the last epoch's reset made the Hare the Tortoise, so both losses are one here)
    metrics = run.evaluate()
    with plain.tortoise_in_hare():
        by_hand = reference.evaluate(metric_key_prefix="eval_tortoise")
    assert metrics["eval_loss"] == reference.evaluate()["eval_loss"]
    assert metrics["eval_tortoise_loss"] == by_hand["eval_tortoise_loss"]


def test_evaluate_both_needs_the_trainer_and_says_how_to_give_it(tmp_path):
    callback = HareTortoiseCallback(evaluate="both")
    with pytest.raises(ValueError, match=r"callback.add_to\(trainer\)"):
        trainer([callback], tmp_path).train()
    run = trainer([], tmp_path / "b")
    added = HareTortoiseCallback(evaluate="both").add_to(run)
    with pytest.raises(ValueError, match="once training has begun"):
        run.evaluate()  # before training there is no Tortoise: refused before the Hare's evaluation
    with pytest.raises(ValueError, match="already added"):
        added.add_to(run)
