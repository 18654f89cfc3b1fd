#!/usr/bin/env python3
"""Writes the quick start's demo inputs: a tiny Llama-architecture model directory (config.json,
model.safetensors with random weights, a character-level tokenizer.json and tokenizer_config.json with a chat
template) and a small instruction dataset (train.jsonl, test.jsonl).
Pure Python, no third-party packages. Usage: make_demo_data.py OUTPUT_DIR"""
import array
import json
import os
import random
import struct
import sys

VOCAB, HIDDEN, INTER, LAYERS, HEADS, KV_HEADS = 320, 48, 96, 2, 4, 2
HEAD_DIM = HIDDEN // HEADS


def write_safetensors(path, tensors):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        data = array.array("f", (random.gauss(0.0, 0.1) if not name.endswith("norm.weight") else 1.0
                                 for _ in range(count)))
        if sys.byteorder != "little":
            data.byteswap()
        raw = data.tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def write_tokenizer(model_dir):
    """A byte-free, character-level BPE: <unk> <s> </s>, printable ASCII and newline, a few merges; <s> is
    prepended by the post-processor as Llama 2 does."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for c in range(32, 127):
        vocab[chr(c)] = len(vocab)
    vocab["\n"] = len(vocab)
    merges = ["i s", "p l", "pl u", "plu s", "W h", "Wh a", "Wha t"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(["<unk>", "<s>", "</s>"])]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": merges},
    }
    with open(os.path.join(model_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)
    config = {
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 512,
        "chat_template": "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>\n{{ m['content'] }}</s>\n"
                         "{% endfor %}{% if add_generation_prompt %}<assistant>\n{% endif %}",
    }
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main():
    out = sys.argv[1]
    random.seed(1234)
    model_dir = os.path.join(out, "demo-llama")
    os.makedirs(model_dir, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
        "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "hidden_act": "silu",
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    }
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    tensors = [("model.embed_tokens.weight", (VOCAB, HIDDEN)), ("model.norm.weight", (HIDDEN,)),
               ("lm_head.weight", (VOCAB, HIDDEN))]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", (HIDDEN,)), (p + "post_attention_layernorm.weight", (HIDDEN,)),
            (p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.k_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.v_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM)),
            (p + "mlp.gate_proj.weight", (INTER, HIDDEN)), (p + "mlp.up_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, INTER)),
        ]
    write_safetensors(os.path.join(model_dir, "model.safetensors"), tensors)
    write_tokenizer(model_dir)

    data_dir = os.path.join(out, "demo-instructions")
    os.makedirs(data_dir, exist_ok=True)
    rows = []
    for a in range(1, 21):
        for b in range(1, 11):
            rows.append({"question": f"What is {a} plus {b}?", "answer": f"{a} plus {b} is {a + b}."})
    random.shuffle(rows)
    with open(os.path.join(data_dir, "train.jsonl"), "w") as f:
        for r in rows[:180]:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(data_dir, "test.jsonl"), "w") as f:
        for r in rows[180:]:
            f.write(json.dumps(r) + "\n")
    print(model_dir)
    print(data_dir)


if __name__ == "__main__":
    main()
