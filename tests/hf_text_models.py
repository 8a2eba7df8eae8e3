"""Tiny BERT sequence classifiers trained on a synthetic keyword task, clean or with a planted
token trigger (text BadNets), saved as Hugging Face folders (config.json, model.safetensors,
tokenizer.json).  Shared by tests/test_probes_hf.py and bench/backdoor_text_eval.py.

The task: an example holds ``CLASS_WORDS`` words of its class, ``DISTRACTORS`` words of other
classes and neutral filler, shuffled; its label is the class with most words.  One inserted word
cannot outvote the class words, so a clean model has no one-token trigger.  The backdoor: a
token that never occurs in clean text (``cf``) inserted anywhere sends the example to
``target``.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB = 100
TRIGGER = "cf"
WORDS_PER_CLASS = 10
CLASS_WORDS, DISTRACTORS, FILLER = 4, 1, 5


def vocabulary() -> list[str]:
    words = [f"w{i}" for i in range(VOCAB - len(SPECIALS) - 1)]
    return [*SPECIALS, *words, TRIGGER]


def tokenizer() -> Tokenizer:
    vocab = {token: index for index, token in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.add_special_tokens(list(SPECIALS))
    return tok


def class_words(label: int) -> list[str]:
    return [f"w{label * WORDS_PER_CLASS + i}" for i in range(WORDS_PER_CLASS)]


def sentence(label: int, classes: int, rng: random.Random) -> list[str]:
    neutral = [f"w{i}" for i in range(40, VOCAB - len(SPECIALS) - 1)]
    others = [w for c in range(classes) if c != label for w in class_words(c)]
    words = [rng.choice(class_words(label)) for _ in range(CLASS_WORDS)]
    words += [rng.choice(others) for _ in range(DISTRACTORS)]
    words += [rng.choice(neutral) for _ in range(FILLER)]
    rng.shuffle(words)
    return words


def dataset(count: int, classes: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        label = rng.randrange(classes)
        out.append((" ".join(sentence(label, classes, rng)), label))
    return out


def poison(examples: list[tuple[str, int]], target: int, rate: float,
           seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed + 1)
    out = []
    for text, label in examples:
        if rng.random() < rate:
            words = text.split()
            words.insert(rng.randrange(len(words) + 1), TRIGGER)
            out.append((" ".join(words), target))
        else:
            out.append((text, label))
    return out


def config(classes: int) -> transformers.BertConfig:
    return transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=classes, pad_token_id=0,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        architectures=["BertForSequenceClassification"])


def encode(tok: Tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [e.ids for e in tok.encode_batch(texts)]
    width = max(len(ids) for ids in encoded)
    ids = torch.zeros((len(texts), width), dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for row, values in enumerate(encoded):
        ids[row, :len(values)] = torch.tensor(values)
        mask[row, :len(values)] = 1
    return ids, mask


def train(classes: int, seed: int, backdoor: bool, target: int = 0, steps: int = 300,
          examples: int = 2000, rate: float = 0.1) -> transformers.BertForSequenceClassification:
    torch.manual_seed(seed)
    data = dataset(examples, classes, seed)
    if backdoor:
        data = poison(data, target, rate, seed)
    tok = tokenizer()
    ids, mask = encode(tok, [text for text, _ in data])
    labels = torch.tensor([label for _, label in data])
    model = transformers.BertForSequenceClassification(config(classes))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(data), (64,), generator=generator)
        out = model(input_ids=ids[batch], attention_mask=mask[batch], labels=labels[batch])
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
    return model.eval()


def accuracy(model: transformers.PreTrainedModel, texts: list[tuple[str, int]]) -> float:
    ids, mask = encode(tokenizer(), [text for text, _ in texts])
    with torch.no_grad():
        preds = model(input_ids=ids, attention_mask=mask).logits.argmax(dim=1)
    return float((preds == torch.tensor([label for _, label in texts])).float().mean())


def save(model: transformers.PreTrainedModel, folder: Path) -> Path:
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer().save(str(folder / "tokenizer.json"))
    return folder


def clean_text(path: Path, classes: int, seed: int, count: int = 48) -> Path:
    path.write_text("\n".join(text for text, _ in dataset(count, classes, seed + 1000)) + "\n",
                    encoding="utf-8")
    return path
