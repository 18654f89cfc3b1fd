#!/usr/bin/env python3
"""Writes the bench Llama of train_step_bench.cc (same config.json, random weights) as a Hugging Face model
directory, with the demo's character tokenizer, plus a dataset whose rows each fill max_seq_len tokens.
Needs numpy (in the project environment, scripts/python-env.sh). Usage: make_bench_model.py OUTPUT_DIR"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from make_demo_data import write_tokenizer  # noqa: E402

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "vocab_size": 32000, "hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 8,
    "num_attention_heads": 8, "num_key_value_heads": 4, "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
    "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
}


def main():
    out = sys.argv[1]
    model_dir = os.path.join(out, "bench-llama")
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    h, inter, layers = CONFIG["hidden_size"], CONFIG["intermediate_size"], CONFIG["num_hidden_layers"]
    heads, kv = CONFIG["num_attention_heads"], CONFIG["num_key_value_heads"]
    d = h // heads
    shapes = {"model.embed_tokens.weight": (CONFIG["vocab_size"], h), "model.norm.weight": (h,),
              "lm_head.weight": (CONFIG["vocab_size"], h)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                       p + "self_attn.q_proj.weight": (heads * d, h), p + "self_attn.k_proj.weight": (kv * d, h),
                       p + "self_attn.v_proj.weight": (kv * d, h), p + "self_attn.o_proj.weight": (h, heads * d),
                       p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
                       p + "mlp.down_proj.weight": (h, inter)})
    rng = np.random.default_rng(1234)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(shapes):
        shape = shapes[name]
        a = np.ones(shape, np.float32) if name.endswith("norm.weight") else \
            (rng.standard_normal(shape, dtype=np.float32) * 0.02)
        raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(model_dir, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    write_tokenizer(model_dir)
    data_dir = os.path.join(out, "bench-data")
    os.makedirs(data_dir, exist_ok=True)
    words = "the quick brown fox jumps over a lazy dog while seven tiny models learn to add numbers".split()
    for split, n in (("train", 400), ("test", 4)):
        with open(os.path.join(data_dir, split + ".jsonl"), "w") as f:
            for k in range(n):
                body = " ".join(words[(k + j) % len(words)] for j in range(80))  # ~400 characters > 256 tokens
                f.write(json.dumps({"text": body}) + "\n")
    print(model_dir)
    print(data_dir)


if __name__ == "__main__":
    main()
