"""Random-weight Hugging Face models of real shapes, and token inputs, for the engine benchmarks and the GPU check.

Models are built by transformers itself (from_config, its own initialisation, seeded) and written with
save_pretrained, so tuneforge reads exactly what transformers writes. Shapes are those of the published models'
config.json files; only the weights are random.
"""
import os

import torch

# name -> (transformers config class name, keyword arguments)
SHAPES = {
    # Qwen/Qwen2.5-0.5B: tied embeddings, qkv bias, 14 heads / 2 kv heads, vocab 151936.
    "qwen2.5-0.5b": ("Qwen2Config", dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
        rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False)),
    # meta-llama/Llama-3.1-8B with 8 of its 32 layers: llama3 rope scaling, 32 heads / 8 kv heads, untied head.
    "llama3.1-8b-8layers": ("LlamaConfig", dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=8,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192})),
    # The CPU training-step bench model (bench/train_step.sh): 57 M parameters.
    "bench-llama": ("LlamaConfig", dict(
        vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8,
        num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=False)),
    # Small models with the features of the two GPU shapes, for `gpu_check.sh --cpu`.
    "tiny-qwen2": ("Qwen2Config", dict(
        vocab_size=2048, hidden_size=128, intermediate_size=352, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, use_sliding_window=False)),
    "tiny-llama3": ("LlamaConfig", dict(
        vocab_size=2048, hidden_size=128, intermediate_size=448, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
        tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64})),
}


def make_model(name, out_dir, seed=1234, device="cpu", dtype=torch.bfloat16):
    """Writes model `name` with random weights to out_dir (once: an existing complete directory is kept)."""
    import transformers

    done = os.path.join(out_dir, ".complete")
    if os.path.exists(done):
        return out_dir
    class_name, kwargs = SHAPES[name]
    config = getattr(transformers, class_name)(**kwargs)
    torch.manual_seed(seed)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(out_dir, safe_serialization=True)
    del model
    open(done, "w").close()
    return out_dir


def make_inputs(path, vocab_size, batch, seq, seed, pad=0):
    """Writes input_ids [batch, seq] (uniform in [0, vocab)) and, with pad > 0, an attention_mask whose first row
    starts with pad padding positions (left padding: those queries see no key) and whose last row ends with pad
    padding positions (right padding)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    tensors = {"input_ids": torch.randint(0, vocab_size, (batch, seq), generator=g, dtype=torch.long)}
    if pad > 0:
        mask = torch.ones(batch, seq, dtype=torch.long)
        mask[0, :pad] = 0
        mask[-1, seq - pad:] = 0
        tensors["attention_mask"] = mask
    save_file(tensors, path)
    return path


def vocab_size(name):
    return SHAPES[name][1]["vocab_size"]


def make_sequence_set(out_dir, vocab_size, count, min_len, max_len, row_len, seed):
    """Writes one set of `count` sequences (lengths uniform in [min_len, max_len], tokens uniform) in three batch
    forms, all with every token after a sequence's first as a label, so that each form's loss is the same function:
      packed.safetensors: tuneforge's packing, sequences end to end in rows of row_len (greedy, in order; the rest
        of a row is padding), attention_mask = the 1-based sequence index in its row (0 on padding), position_ids
        restarting at 0, labels -100 on each sequence's first token and on padding;
      padded.safetensors: one sequence a row, right-padded to the longest (attention_mask 1/0);
      flat.safetensors: all sequences in one row with restarting position_ids and no mask, the form of transformers'
        DataCollatorWithFlattening (transformers attends within each sequence from the position ids);
      padding_free.safetensors: the same row with attention_mask = the 1-based sequence index, tuneforge's
        padding-free batch.
    Returns the lengths."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (count,), generator=g).tolist()
    seqs = [torch.randint(0, vocab_size, (n,), generator=g, dtype=torch.long) for n in lengths]
    rows, used = [], row_len + 1
    for i, n in enumerate(lengths):
        if used + n > row_len:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += n

    def labelled(seq):
        labels = seq.clone()
        labels[0] = -100
        return labels

    shape = (len(rows), row_len)
    packed = {k: torch.zeros(shape, dtype=torch.long) for k in ("input_ids", "attention_mask", "position_ids")}
    packed["labels"] = torch.full(shape, -100, dtype=torch.long)
    for r, members in enumerate(rows):
        at = 0
        for segment, i in enumerate(members, start=1):
            n = lengths[i]
            packed["input_ids"][r, at:at + n] = seqs[i]
            packed["attention_mask"][r, at:at + n] = segment
            packed["position_ids"][r, at:at + n] = torch.arange(n)
            packed["labels"][r, at:at + n] = labelled(seqs[i])
            at += n
    save_file(packed, os.path.join(out_dir, "packed.safetensors"))

    longest = max(lengths)
    padded = {"input_ids": torch.zeros((count, longest), dtype=torch.long),
              "attention_mask": torch.zeros((count, longest), dtype=torch.long),
              "labels": torch.full((count, longest), -100, dtype=torch.long)}
    for i, seq in enumerate(seqs):
        padded["input_ids"][i, :lengths[i]] = seq
        padded["attention_mask"][i, :lengths[i]] = 1
        padded["labels"][i, :lengths[i]] = labelled(seq)
    save_file(padded, os.path.join(out_dir, "padded.safetensors"))

    flat = {"input_ids": torch.cat(seqs).unsqueeze(0),
            "position_ids": torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0),
            "labels": torch.cat([labelled(s) for s in seqs]).unsqueeze(0)}
    save_file(flat, os.path.join(out_dir, "flat.safetensors"))
    flat["attention_mask"] = torch.cat([torch.full((n,), i + 1) for i, n in enumerate(lengths)]).unsqueeze(0)
    save_file(flat, os.path.join(out_dir, "padding_free.safetensors"))
    return lengths
