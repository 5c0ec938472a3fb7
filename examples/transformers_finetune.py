"""Hare & Tortoise in a Hugging Face Transformers fine-tuning, task after task: a small BERT built from a config (no
download) learns one labelling of random token sequences, then another, with `HareTortoiseCallback` (Lee et al.,
ICML 2024, arXiv:2406.02596); the Trainer's evaluations run on the Tortoise.

    python examples/transformers_finetune.py --epochs 3

Prints each task's evaluation loss and accuracy, measured on the Tortoise (needs the `transformers` extra).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
import transformers

from hare_tortoise.integrations.transformers import HareTortoiseCallback

TASKS = {"first token even": lambda ids: int(ids[0] % 2 == 0), "last token above 20": lambda ids: int(ids[-1] > 20)}


def task(label, n: int, seed: int) -> list[dict]:
    ids = torch.randint(1, 40, (n, 12), generator=torch.Generator().manual_seed(seed))
    return [{"input_ids": row, "labels": label(row)} for row in ids]


def accuracy(prediction) -> dict:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each task")
    parser.add_argument("--samples", type=int, default=512, help="training sequences of each task")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    callback = HareTortoiseCallback(momentum=0.99, reset_every_epochs=2)
    with tempfile.TemporaryDirectory() as out:
        for number, (name, label) in enumerate(TASKS.items()):
            settings = transformers.TrainingArguments(
                output_dir=out, num_train_epochs=args.epochs, per_device_train_batch_size=32, learning_rate=1e-3,
                eval_strategy="epoch", save_strategy="no", logging_strategy="no", report_to=[], use_cpu=True,
                disable_tqdm=True, seed=number)
            train, test = task(label, args.samples, 2 * number), task(label, args.samples // 2, 2 * number + 1)
            trainer = transformers.Trainer(model=model, args=settings, train_dataset=train, eval_dataset=test,
                                           callbacks=[callback], compute_metrics=accuracy)
            trainer.train()
            result = [entry for entry in trainer.state.log_history if "eval_accuracy" in entry][-1]
            print(f"task {name!r}: the Tortoise's evaluation loss {result['eval_loss']:.3f}, "
                  f"accuracy {result['eval_accuracy']:.3f}")


if __name__ == "__main__":
    main()
