#!/usr/bin/env python3
"""Generates Hugging Face reference cases for tuneforge's C++ parity checker.

Every number written here comes from the upstream libraries (transformers, PEFT, torch) run in fp32 on the
CPU. For each case this builds a tiny random model of one family, saves it with `save_pretrained`, runs the
input batches, greedy decoding and a LoRA round (PEFT forward, gradients, one AdamW step, merge), and writes
everything in the layout that services/trainer/model/hf_parity.cc reads (see
shared/testdata/hf_reference/README.md):

    DIR/<case>/config.json, generation_config.json, model.safetensors   (save_pretrained)
    DIR/<case>/inputs.json                                               (inputs, reference numbers, sha256s)
    DIR/<case>/logits.safetensors                                        (<batch>.logits, [B,T,V])
    DIR/<case>/lora/adapter_config.json, adapter_model.safetensors       (PeftModel.save_pretrained)
    DIR/<case>/lora/grads_step0.safetensors, adapter_after_1_adamw_step.safetensors, lora_logits.safetensors

Usage:
    make_hf_reference.py --out DIR [--attn eager|sdpa] [--seed N] [--cases llama,mistral,...]

Without --seed a random base seed is drawn; it is printed first (with the command that replays it) and every
seed derived from it is recorded in inputs.json. The same seed gives byte-identical files on the same
machine and library versions.

Beyond the transformers 4.44 set described in that README:
- a `llama_mha` case (4 kv heads, tied head) and a fifth batch `packed` (attention_mask = segment ids,
  restarting position_ids; reference = every example run alone);
- labels are also -100 at the first real token of a left-padded row (see make_batches);
- qwen2's adapter uses rsLoRA (scaling = alpha / sqrt(r));
- config.json is what transformers 5 writes: `rope_parameters` instead of rope_theta/rope_scaling, `dtype`
  instead of torch_dtype, `tie_word_embeddings` always present, gemma's activation in `hidden_act`.
"""

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import shutil
import struct
import sys
import time

# PEFT stores target_modules as a Python set, so the order it writes them in adapter_config.json follows
# string hashing. A fixed hash seed makes that file byte-identical between runs; it has to be set before the
# interpreter starts, hence the re-exec.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

# Never reach the Hub: every model is built from a config with random weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# ---------------------------------------------------------------------------------------------------------
# The cases. Shapes are shared (README "Models"); each entry adds the family-specific config keys.
# ---------------------------------------------------------------------------------------------------------

VOCAB, HIDDEN, INTERMEDIATE, LAYERS, HEADS = 320, 48, 96, 3, 4
COMMON_CONFIG = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
                     num_hidden_layers=LAYERS, num_attention_heads=HEADS, initializer_range=0.1)

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PHI3_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]

LONGROPE_SHORT = [1.0, 1.02, 1.15, 1.3, 1.6, 2.0]
LONGROPE_LONG = [1.0, 1.5, 2.4, 3.9, 6.3, 10.2]

# name -> (model class name, config kwargs, LoRA target modules, extra LoraConfig kwargs)
CASES = {
    "llama": ("LlamaForCausalLM",
              dict(num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=False),
              LLAMA_TARGETS, {}),
    # Multi-head attention (no grouping) and a tied head: the other end from gemma's MQA.
    "llama_mha": ("LlamaForCausalLM",
                  dict(num_key_value_heads=4, rms_norm_eps=1e-6, tie_word_embeddings=True),
                  LLAMA_TARGETS, {}),
    # Frequencies fall in all three llama3 bands with head_dim 12 and theta 5e5.
    "llama3_rope": ("LlamaForCausalLM",
                    dict(num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=False,
                         max_position_embeddings=384,
                         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=16.0,
                                              low_freq_factor=0.5, high_freq_factor=3.0,
                                              original_max_position_embeddings=48)),
                    LLAMA_TARGETS, {}),
    # A window shorter than every batch, so it matters even without a mask.
    "mistral": ("MistralForCausalLM",
                dict(num_key_value_heads=2, sliding_window=5, tie_word_embeddings=False),
                LLAMA_TARGETS, {}),
    # q/k/v biases, theta 1e6; the LoRA here uses rsLoRA scaling (alpha / sqrt(r)).
    "qwen2": ("Qwen2ForCausalLM",
              dict(num_key_value_heads=2, tie_word_embeddings=False,
                   rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
              LLAMA_TARGETS, {"use_rslora": True}),
    # Fused qkv_proj / gate_up_proj. The class defaults put eos/pad at 32000, outside this vocabulary.
    "phi3": ("Phi3ForCausalLM",
             dict(num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                  tie_word_embeddings=False),
             PHI3_TARGETS, {}),
    # original_max_position_embeddings 6: batches of 12 use long_factor, the 6-token greedy prompt short.
    "phi3_longrope": ("Phi3ForCausalLM",
                      dict(num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                           tie_word_embeddings=False, max_position_embeddings=96,
                           original_max_position_embeddings=6,
                           rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                                                short_factor=LONGROPE_SHORT, long_factor=LONGROPE_LONG)),
                      PHI3_TARGETS, {}),
    # MQA, head_dim 24 != hidden/heads, tied head, (1+w) norms, scaled embeddings, tanh gelu.
    "gemma": ("GemmaForCausalLM",
              dict(num_key_value_heads=1, head_dim=24, hidden_act="gelu_pytorch_tanh"),
              LLAMA_TARGETS, {}),
}

# Batches: B=3, T=12 for the padding cases (README "cases"), B=2 for packing.
BATCH, LENGTH, PAD_ID = 3, 12, 0
PAD_ROWS = {1: 4, 2: 2}  # row -> number of padded positions (row 0 is never padded)

# Packed rows: example lengths back to back, then padding. Every example is at most 6 tokens long, which is
# phi3_longrope's original_max_position_embeddings: HF picks the longrope factor list from the largest
# position in the whole batch, so an example longer than 6 would get long_factor when run alone but drag
# its shorter neighbours onto long_factor when packed. Keeping all examples <= 6 makes "run alone" and
# "packed" agree on the factor; examples of 6 are longer than mistral's window of 5.
PACKED_ROWS = [[5, 4, 3], [6, 5]]  # the second row ends with one padded position

GREEDY_PROMPT, GREEDY_NEW = 6, 8

LORA_R, LORA_ALPHA = 8, 16
ADAMW = dict(lr=5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def derive_seed(base, case, purpose):
    """A 31-bit seed per (base seed, case, purpose), stable across platforms and Python versions."""
    digest = hashlib.sha256(f"{base}/{case}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder; DIR/<case>/ is (re)written for each case")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="eager",
                   help="attn_implementation of every model (default eager)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: random, printed)")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ",".join(CASES))
    args = p.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown or not args.cases:
        p.error(f"unknown case(s) {unknown}; choose from {','.join(CASES)}")
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    elif not 0 <= args.seed < 2**63:
        p.error("--seed must be a non-negative integer")
    return args


args = parse_args()
# First thing on stdout: the seed and how to replay this exact run.
print(f"seed={args.seed}", flush=True)
print("replay: " + " ".join([sys.executable, sys.argv[0], "--out", args.out, "--attn", args.attn,
                             "--seed", str(args.seed), "--cases", ",".join(args.cases)]), flush=True)

import numpy as np  # noqa: E402  (imported after the seed line so it shows at once)
import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)  # fp32 reductions then do not depend on the machine's core count


# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------

def ids_list(t):
    return None if t is None else t.tolist()


def valid_max_abs(a, b, mask):
    """Max |a-b| over positions where mask != 0 (mask None = every position). Padded logits are
    implementation-defined, so they are never compared."""
    d = (a.double() - b.double()).abs()
    if mask is not None:
        d = d[mask != 0]
    return float(d.max())


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def write_tensors(path, tensors):
    """safetensors file of contiguous fp32 tensors (the safetensors library sorts the keys itself)."""
    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, path,
              metadata={"format": "pt"})
    verify_tensor_file(path, tensors)


def verify_tensor_file(path, expected):
    """Reads `path` back twice: with the safetensors library and with a plain header parser over numpy, and
    requires both to match `expected` bit for bit (fp32, little-endian, row-major, contiguous offsets)."""
    with safe_open(path, "pt") as f:
        assert set(f.keys()) == set(expected), (path, sorted(set(f.keys()) ^ set(expected)))
        for k in f.keys():
            assert torch.equal(f.get_tensor(k), expected[k].detach().to(torch.float32)), (path, k)
    with open(path, "rb") as f:
        raw = f.read()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    body = raw[8 + header_len:]
    spans = []
    for k, meta in header.items():
        if k == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (path, k, meta["dtype"])
        begin, end = meta["data_offsets"]
        spans.append((begin, end))
        arr = np.frombuffer(body[begin:end], dtype="<f4").reshape(meta["shape"])
        assert np.array_equal(arr, expected[k].detach().to(torch.float32).numpy(), equal_nan=True), (path, k)
    spans.sort()
    assert spans[0][0] == 0 and spans[-1][1] == len(body), path
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), path


def model_class(name):
    return getattr(transformers, name)


def config_class(model_cls):
    return model_cls.config_class


# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------

def build_model(case, seeds, attn):
    """HF init under the model seed, then the README perturbation: every RMSNorm weight += 0.1*N(0,1) and
    every bias = 0.2*N(0,1), so a port that confuses w with 1+w or forgets a bias fails clearly."""
    cls_name, config_kwargs, _, _ = CASES[case]
    cls = model_class(cls_name)
    config = config_class(cls)(**COMMON_CONFIG, **copy.deepcopy(config_kwargs))
    torch.manual_seed(seeds["model"])
    model = cls(config)
    model.set_attn_implementation(attn)
    gen = torch.Generator().manual_seed(seeds["perturb"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


def load_saved(case, case_dir, attn):
    """The model read back from what save_pretrained wrote (tied heads re-tied by transformers)."""
    cls = model_class(CASES[case][0])
    model = cls.from_pretrained(case_dir, attn_implementation=attn, dtype=torch.float32)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------

def make_batches(seed):
    """The five batches. Token ids come from [3, VOCAB); the pad id 0 appears only at padded positions.
    Labels are the ids with -100 wherever no loss may be taken."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (BATCH, LENGTH), generator=gen)
    batches = {}

    batches["nomask"] = dict(input_ids=ids.clone(), attention_mask=None, position_ids=None, labels=ids.clone())

    def padded(left):
        mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
        for row, n in PAD_ROWS.items():
            if left:
                mask[row, :n] = 0
            else:
                mask[row, LENGTH - n:] = 0
        x = ids.masked_fill(mask == 0, PAD_ID)
        # No loss at padding, nor at a token whose prediction comes from a padded position (the first real
        # token of a left-padded row): padded logits are implementation-defined (eager vs sdpa move that loss
        # term by 1e-2 to 1e-1), so keeping it would make the reference loss depend on the attention kernel.
        after_pad = torch.zeros_like(mask, dtype=torch.bool)
        after_pad[:, 1:] = mask[:, :-1] == 0
        return x, mask, x.masked_fill((mask == 0) | after_pad, -100)

    x, mask, labels = padded(left=False)
    batches["right_pad"] = dict(input_ids=x, attention_mask=mask, position_ids=None, labels=labels)
    x, mask, labels = padded(left=True)
    batches["left_pad"] = dict(input_ids=x, attention_mask=mask, position_ids=None, labels=labels)
    # What generate() passes for left padding: cumsum(mask)-1, padded positions set to 1.
    genpos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    batches["left_pad_genpos"] = dict(input_ids=x.clone(), attention_mask=mask.clone(), position_ids=genpos,
                                      labels=labels.clone())

    # packed: segment ids 1,2,3 per example in attention_mask (0 = padding), positions restart at 0 for each
    # example, and no loss crosses an example boundary (the first token of every later example is -100).
    rows = len(PACKED_ROWS)
    pids = torch.randint(3, VOCAB, (rows, LENGTH), generator=gen)
    seg = torch.zeros(rows, LENGTH, dtype=torch.long)
    pos = torch.zeros(rows, LENGTH, dtype=torch.long)
    labels = torch.full((rows, LENGTH), -100, dtype=torch.long)
    segments = []  # (row, start, length)
    for r, lengths in enumerate(PACKED_ROWS):
        assert sum(lengths) <= LENGTH
        start = 0
        for s, n in enumerate(lengths):
            seg[r, start:start + n] = s + 1
            pos[r, start:start + n] = torch.arange(n)
            labels[r, start:start + n] = pids[r, start:start + n]
            if s > 0:
                labels[r, start] = -100
            segments.append((r, start, n))
            start += n
        pids[r, start:] = PAD_ID  # padding: segment 0, position 0, label -100
    batches["packed"] = dict(input_ids=pids, attention_mask=seg, position_ids=pos, labels=labels,
                             segments=segments)
    return batches


# ---------------------------------------------------------------------------------------------------------
# Forward passes
# ---------------------------------------------------------------------------------------------------------

@torch.no_grad()
def hf_forward(model, batch):
    """HF forward with the batch's mask and positions exactly as recorded (None = not passed)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], labels=batch["labels"], use_cache=False)
    return out.logits.float(), float(out.loss)


@torch.no_grad()
def packed_reference(model, batch):
    """The definition of correct packing: every example run alone (no padding, no mask, default positions),
    its logits placed at its positions. Padded positions keep zeros (never compared). The loss is HF's
    causal-LM loss on those logits with the packed labels."""
    ids = batch["input_ids"]
    logits = torch.zeros(ids.shape[0], ids.shape[1], VOCAB)
    for r, start, n in batch["segments"]:
        logits[r, start:start + n] = model(input_ids=ids[r:r + 1, start:start + n], use_cache=False).logits[0]
    loss = model.loss_function(logits=logits, labels=batch["labels"], vocab_size=VOCAB)
    return logits, float(loss)


@torch.no_grad()
def packed_sanity(model, batch, reference):
    """Two informational cross-checks of the packed reference:
    - HF on the packed rows with the restarting position_ids and no attention_mask (transformers 5 then
      derives a block-diagonal mask from the position_ids);
    - HF on all examples as one right-padded batch with an attention mask."""
    ids = batch["input_ids"]
    valid = batch["attention_mask"]
    hf_packed = model(input_ids=ids, position_ids=batch["position_ids"], use_cache=False).logits
    longest = max(n for _, _, n in batch["segments"])
    rows = torch.full((len(batch["segments"]), longest), PAD_ID, dtype=torch.long)
    mask = torch.zeros_like(rows)
    for i, (r, start, n) in enumerate(batch["segments"]):
        rows[i, :n] = ids[r, start:start + n]
        mask[i, :n] = 1
    padded = model(input_ids=rows, attention_mask=mask, use_cache=False).logits
    diff_padded = 0.0
    for i, (r, start, n) in enumerate(batch["segments"]):
        diff_padded = max(diff_padded, valid_max_abs(padded[i, :n], reference[r, start:start + n], None))
    return valid_max_abs(hf_packed, reference, valid), diff_padded


def case_logits(model, batch):
    if "segments" in batch:
        return packed_reference(model, batch)
    return hf_forward(model, batch)


@torch.no_grad()
def greedy(model, prompt):
    """Reference: a plain argmax loop without a cache that recomputes the whole sequence at every step.
    For information, HF generate(do_sample=False) with its KV cache, and its raw logits against the loop's."""
    seq = torch.tensor([prompt])
    tokens, maxima, step_logits = [], [], []
    for _ in range(GREEDY_NEW):
        last = model(input_ids=seq, use_cache=False).logits[0, -1]
        nxt = int(last.argmax())
        tokens.append(nxt)
        maxima.append(float(last.max()))
        step_logits.append(last)
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    # eos_token_id=None: run all 8 steps even if an eos id comes up (the loop above ignores eos too).
    gen = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=GREEDY_NEW, min_new_tokens=0,
                         eos_token_id=None, pad_token_id=PAD_ID, use_cache=True, return_dict_in_generate=True,
                         output_logits=True)
    hf_tokens = gen.sequences[0, len(prompt):].tolist()
    diffs = [float((a.float() - b[0].float()).abs().max()) for a, b in zip(step_logits, gen.logits)]
    section = dict(prompt=list(prompt), new_tokens=tokens, new_token_logits_max=maxima,
                   hf_generate_with_kv_cache_new_tokens=hf_tokens,
                   hf_generate_with_kv_cache_agrees=hf_tokens == tokens,
                   hf_generate_with_kv_cache_max_abs_logit_diff_per_step=diffs)
    orig = getattr(model.config, "original_max_position_embeddings", None)
    if model.config.rope_parameters.get("rope_type") == "longrope" and 1 <= orig + 1 - len(prompt) < GREEDY_NEW:
        # Phi-3's generate drops its KV cache at the step whose input first exceeds
        # original_max_position_embeddings, meaning to re-prefill with long_factor. Record what that step's
        # logits actually are: the same as the last token run alone at its position, with no context.
        step = orig + 1 - len(prompt)
        at = len(prompt) + step - 1
        lone = model(input_ids=gen.sequences[:, at:at + 1], position_ids=torch.tensor([[at]]),
                     use_cache=False).logits[0, -1]
        section["hf_generate_switch_step"] = step
        section["hf_generate_switch_step_vs_last_token_alone_max_abs_logits"] = float(
            (lone - gen.logits[step][0]).abs().max())
    return section


def longrope_choice(model):
    """Which factor list phi3's longrope used in the last forward: HF swaps inv_freq in place."""
    rot = model.model.rotary_emb
    return "short_factor" if torch.equal(rot.inv_freq, rot.original_inv_freq) else "long_factor"


def llama3_bands(config):
    """Per frequency: kept, smoothed or divided by `factor` (the README's llama3 band rule)."""
    rp = config.rope_parameters
    dim = config.head_dim
    inv = 1.0 / (rp["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    orig = rp["original_max_position_embeddings"]
    bands = []
    for f in inv.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < orig / rp["high_freq_factor"]:
            bands.append("kept")
        elif wavelen > orig / rp["low_freq_factor"]:
            bands.append("divided")
        else:
            bands.append("smoothed")
    return bands


# ---------------------------------------------------------------------------------------------------------
# LoRA
# ---------------------------------------------------------------------------------------------------------

def disk_name(param_name):
    """named_parameters() name -> the key PEFT writes (the adapter name is dropped)."""
    return param_name.replace(".default.", ".")


def lora_params(pm):
    return [(disk_name(n), p) for n, p in pm.named_parameters() if ".lora_A." in n or ".lora_B." in n]


def lora_section(case, case_dir, attn, seeds, batches, merged_target):
    _, _, targets, extra = CASES[case]
    lora_dir = os.path.join(case_dir, "lora")
    batch_case = "right_pad"
    b = batches[batch_case]
    fwd = dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"], use_cache=False)

    base = load_saved(case, case_dir, attn)
    with torch.no_grad():
        loss_base = float(base(**fwd).loss)
    base_weights = {k: v.detach().clone() for k, v in base.state_dict().items()}

    # lora_A: PEFT's own init (kaiming_uniform_(a=sqrt(5))) under the lora_A seed. lora_B: 0.1*randn in
    # named_parameters() order; PEFT's zeros would make the adapter a no-op.
    config = peft.LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, bias="none",
                             target_modules=list(targets), task_type="CAUSAL_LM", **extra)
    torch.manual_seed(seeds["lora_A"])
    pm = peft.get_peft_model(base, config)
    gen = torch.Generator().manual_seed(seeds["lora_B"])
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if ".lora_B." in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    pm.peft_config["default"].base_model_name_or_path = f"hf_reference/{case}"
    # save_embedding_layers=False: no embedding is trained, and PEFT would otherwise look for the base
    # model's config under base_model_name_or_path to decide.
    pm.save_pretrained(lora_dir, safe_serialization=True, save_embedding_layers=False)
    # PEFT also writes a generic model card; the layout has only the config and the weights.
    card = os.path.join(lora_dir, "README.md")
    if os.path.exists(card):
        os.remove(card)
    before = {k: p.detach().clone() for k, p in lora_params(pm)}
    verify_tensor_file(os.path.join(lora_dir, "adapter_model.safetensors"), before)
    first_module = next(m for n, m in pm.named_modules() if n.endswith(merged_target.rsplit(".", 1)[0])
                        and hasattr(m, "scaling"))
    scaling = float(first_module.scaling["default"])

    # Train mode (every dropout is 0): logits, mean loss, gradients of every LoRA tensor.
    pm.train()
    out = pm(**fwd)
    out.loss.backward()
    loss_with_adapter = float(out.loss.detach())
    params = lora_params(pm)
    grads = {k: p.grad.detach().clone() for k, p in params}
    write_tensors(os.path.join(lora_dir, "lora_logits.safetensors"), {f"{batch_case}.lora.logits": out.logits})
    write_tensors(os.path.join(lora_dir, "grads_step0.safetensors"), grads)

    # One AdamW step on the LoRA tensors only.
    opt = torch.optim.AdamW([p for _, p in params], **ADAMW)
    opt.step()
    write_tensors(os.path.join(lora_dir, "adapter_after_1_adamw_step.safetensors"),
                  {k: p.detach() for k, p in params})
    pm.eval()
    with torch.no_grad():
        loss_after = float(pm(**fwd).loss)

    # The saved (pre-step) adapter read back by PEFT, then merged by PEFT.
    reloaded = peft.PeftModel.from_pretrained(load_saved(case, case_dir, attn), lora_dir).eval()
    with torch.no_grad():
        loss_reloaded = float(reloaded(**fwd).loss)
    merged = reloaded.merge_and_unload().eval()
    with torch.no_grad():
        loss_merged = float(merged(**fwd).loss)
    merged_weights = merged.state_dict()
    worst_all, worst_target = 0.0, 0.0
    for k, a in before.items():
        if ".lora_A." not in k:
            continue
        bkey = k.replace(".lora_A.", ".lora_B.")
        wkey = k[len("base_model.model."):].replace(".lora_A.weight", ".weight")
        manual = base_weights[wkey] + scaling * (before[bkey] @ a)
        d = float((manual - merged_weights[wkey]).abs().max())
        worst_all = max(worst_all, d)
        if wkey == merged_target:
            worst_target = d
    target = merged_weights[merged_target].detach()

    cross = dict(peft_merge_and_unload_matches_W_plus_scaling_BA=worst_all <= 1e-6,
                 reloaded_adapter_loss_abs_diff=abs(loss_reloaded - loss_with_adapter),
                 merged_model_loss_abs_diff=abs(loss_merged - loss_with_adapter))
    cross["passed"] = (cross["peft_merge_and_unload_matches_W_plus_scaling_BA"]
                       and cross["reloaded_adapter_loss_abs_diff"] <= 1e-6
                       and cross["merged_model_loss_abs_diff"] <= 1e-5)
    section = dict(
        peft_config=dict(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=list(targets),
                         scaling=scaling, bias="none", use_rslora=bool(extra.get("use_rslora", False))),
        batch_case=batch_case,
        lora_A_init=f"torch.manual_seed({seeds['lora_A']}) then PEFT get_peft_model "
                    "(kaiming_uniform_(a=sqrt(5)))",
        lora_B_init=f"0.1 * torch.randn(shape, generator=torch.Generator().manual_seed({seeds['lora_B']})) "
                    "in named_parameters() order",
        loss_base=loss_base,
        loss_with_adapter=loss_with_adapter,
        loss_with_adapter_reloaded_via_PeftModel_from_pretrained=loss_reloaded,
        loss_with_merged_weights=loss_merged,
        grad_norms={k: float(g.double().norm()) for k, g in grads.items()},
        optimizer=dict(type="torch.optim.AdamW", lr=ADAMW["lr"], betas=list(ADAMW["betas"]), eps=ADAMW["eps"],
                       weight_decay=ADAMW["weight_decay"], steps=1, params="LoRA tensors only"),
        loss_after_1_adamw_step=loss_after,
        merged_target=merged_target,
        merged_shape=list(target.shape),
        merged_first8=target.reshape(-1)[:8].tolist(),
        merged_sum=float(target.double().sum()),
        merged_vs_peft_merge_and_unload_max_abs=worst_target,
        all_targets_merged_vs_peft_merge_and_unload_max_abs=worst_all,
        grad_entries_at_most_1e_5=int(sum(int((g.abs() <= 1e-5).sum()) for g in grads.values())),
        cross_checks=cross,
        files=dict(adapter="lora/adapter_model.safetensors", grads="lora/grads_step0.safetensors",
                   after_step="lora/adapter_after_1_adamw_step.safetensors",
                   logits_with_adapter="lora/lora_logits.safetensors"),
    )
    return section


# ---------------------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------------------

def versions():
    out = dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
               safetensors=safetensors.__version__, numpy=np.__version__, python=platform.python_version())
    for name in ("accelerate", "huggingface_hub"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def make_case(case, out_dir, attn, base_seed):
    cls_name, _, _, _ = CASES[case]
    case_dir = os.path.join(out_dir, case)
    if os.path.exists(case_dir):
        if not os.path.exists(os.path.join(case_dir, "inputs.json")):
            raise SystemExit(f"{case_dir} exists but is not a reference case (no inputs.json); not touching it")
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)
    seeds = dict(base=base_seed)
    seeds.update({p: derive_seed(base_seed, case, p) for p in ("model", "perturb", "inputs", "lora_A", "lora_B")})
    seeds["derivation"] = "sha256(f'{base}/{case}/{purpose}')[:4] little-endian & 0x7fffffff"

    model = build_model(case, seeds, attn)
    model.save_pretrained(case_dir, safe_serialization=True)
    tied = bool(model.config.tie_word_embeddings)
    with safe_open(os.path.join(case_dir, "model.safetensors"), "pt") as f:
        saved_keys = set(f.keys())
    assert ("lm_head.weight" in saved_keys) == (not tied), case
    verify_tensor_file(os.path.join(case_dir, "model.safetensors"),
                       {k: v for k, v in model.state_dict().items() if k in saved_keys})

    batches = make_batches(seeds["inputs"])
    other = "sdpa" if attn == "eager" else "eager"
    cases, logits, obs, rope_choice = {}, {}, {}, {}
    eager_vs_sdpa = {}
    for name, b in batches.items():
        lg, loss = case_logits(model, b)
        if case == "phi3_longrope" and name != "packed":
            rope_choice[name] = longrope_choice(model)
        logits[f"{name}.logits"] = lg
        cases[name] = dict(input_ids=ids_list(b["input_ids"]), attention_mask=ids_list(b["attention_mask"]),
                           position_ids=ids_list(b["position_ids"]), labels=ids_list(b["labels"]), loss=loss,
                           logits_key=f"{name}.logits")
        # The same batch under the other attention implementation: valid positions must agree closely.
        model.set_attn_implementation(other)
        lg_other, loss_other = case_logits(model, b)
        model.set_attn_implementation(attn)
        eager_vs_sdpa[name] = dict(max_abs_logits_valid_positions=valid_max_abs(lg, lg_other, b["attention_mask"]),
                                   abs_loss=abs(loss - loss_other))
    cases["packed"]["segments"] = [dict(row=r, start=s, length=n) for r, s, n in batches["packed"]["segments"]]
    write_tensors(os.path.join(case_dir, "logits.safetensors"), logits)

    # The saved files read back by transformers give the same logits (tied head re-tied, nothing lost).
    reloaded = load_saved(case, case_dir, attn)
    obs["reloaded_from_save_pretrained_max_abs_logits"] = valid_max_abs(
        hf_forward(reloaded, batches["right_pad"])[0], logits["right_pad.logits"], None)
    del reloaded

    # Tolerance observations: thread count, fp64, attention implementation, packing cross-checks.
    torch.set_num_threads(2)
    obs["right_pad_fp32_threads1_vs_threads2_max_abs_logits"] = valid_max_abs(
        hf_forward(model, batches["right_pad"])[0], logits["right_pad.logits"], None)
    torch.set_num_threads(1)
    model64 = copy.deepcopy(model).double()
    for name in ("nomask", "right_pad"):
        b = batches[name]
        lg64, loss64 = hf_forward(model64, b)
        cases[name]["loss_fp64"] = loss64
        obs[f"{name}_fp32_vs_fp64_max_abs_logits_valid_positions"] = valid_max_abs(
            lg64, logits[f"{name}.logits"], b["attention_mask"])
        obs[f"{name}_fp32_vs_fp64_abs_loss"] = abs(loss64 - cases[name]["loss"])
    del model64
    obs[f"{attn}_vs_{other}"] = eager_vs_sdpa
    hf_packed, padded = packed_sanity(model, batches["packed"], logits["packed.logits"])
    obs["packed_hf_position_ids_without_mask_max_abs_logits_valid_positions"] = hf_packed
    obs["packed_hf_right_padded_batch_of_examples_max_abs_logits"] = padded
    obs["left_pad_vs_left_pad_genpos_max_abs_logits_valid_positions"] = valid_max_abs(
        logits["left_pad.logits"], logits["left_pad_genpos.logits"], batches["left_pad"]["attention_mask"])
    obs["max_abs_logit_value_right_pad"] = float(logits["right_pad.logits"].abs().max())

    greedy_section = greedy(model, batches["nomask"]["input_ids"][0, :GREEDY_PROMPT].tolist())
    merged_target = "model.layers.0.self_attn." + ("qkv_proj" if "phi3" in case else "q_proj") + ".weight"
    lora = lora_section(case, case_dir, attn, seeds, batches, merged_target)

    notes = [
        "logits at positions where attention_mask==0 are implementation-defined (HF eager gives a query that "
        "sees no key uniform attention over all keys); compare only valid positions. In packed.logits such "
        "positions hold zeros.",
        "loss: HF shift semantics (logits[:, :-1] vs labels[:, 1:]), mean over all non-ignored target tokens "
        "of the whole batch. labels are -100 on padded positions and on the first real token of a left-padded "
        "row, whose prediction would come from a padded position (implementation-defined logits).",
        "position_ids=null means HF's default arange(0,T) for every row even when left padded.",
        "packed: attention_mask holds segment ids (1,2,3 per example in a row, 0 = padding); position_ids "
        "restart at 0 for every example; labels are -100 at the first token of every example after the first "
        "and at padding. The reference logits are each example run alone through HF (no padding, no mask), "
        "placed at its positions. transformers 5 casts a 2D attention_mask to bool, so HF itself cannot take "
        "segment ids there; it derives the same block-diagonal mask from restarting position_ids when no "
        "attention_mask is passed (tolerance_observations).",
        f"attn_implementation: the reference ran with '{attn}'; tolerance_observations['{attn}_vs_{other}'] "
        "compares the same batches under the other implementation.",
    ]
    if lora["peft_config"]["use_rslora"]:
        notes.append("lora: use_rslora=true, so scaling = lora_alpha / sqrt(r).")

    doc = dict(architecture=case, model_class=cls_name, dtype="float32", attn_implementation=attn,
               tied_lm_head_missing_from_safetensors=tied and "lm_head.weight" not in saved_keys)
    if case == "llama3_rope":
        doc["llama3_rope_bands_per_frequency"] = llama3_bands(model.config)
    if case == "phi3_longrope":
        # HF's rule: long_factor iff max(position_ids)+1 > original_max_position_embeddings, over the batch.
        orig = model.config.rope_parameters["original_max_position_embeddings"]
        rope_choice["packed (each example alone)"] = [
            "long_factor" if n > orig else "short_factor" for _, _, n in batches["packed"]["segments"]]
        rope_choice["greedy (no cache, per step)"] = [
            "long_factor" if GREEDY_PROMPT + i > orig else "short_factor" for i in range(GREEDY_NEW)]
        doc["longrope_factor_used_per_case"] = rope_choice
    doc.update(cases=cases, greedy=greedy_section, lora=lora, tolerance_observations=obs, versions=versions(),
               seeds=seeds, notes=notes)

    # sha256 and size of every file except inputs.json itself.
    files = {}
    for root, _, names in os.walk(case_dir):
        for n in names:
            path = os.path.join(root, n)
            rel = os.path.relpath(path, case_dir).replace(os.sep, "/")
            files[rel] = dict(bytes=os.path.getsize(path), sha256=sha256_of(path))
    doc["files"] = {k: files[k] for k in sorted(files)}
    with open(os.path.join(case_dir, "inputs.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return doc


def summary(case, doc, seconds):
    obs = doc["tolerance_observations"]
    attn = doc["attn_implementation"]
    other = "sdpa" if attn == "eager" else "eager"
    ev = max(v["max_abs_logits_valid_positions"] for v in obs[f"{attn}_vs_{other}"].values())
    lora = doc["lora"]
    g = doc["greedy"]
    print(f"{case:14s} {seconds:5.1f}s  loss nomask {doc['cases']['nomask']['loss']:.6f} "
          f"packed {doc['cases']['packed']['loss']:.6f}  {attn}-vs-{other} {ev:.2e}  "
          f"packed: HF-by-position_ids {obs['packed_hf_position_ids_without_mask_max_abs_logits_valid_positions']:.2e}"
          f" HF-padded {obs['packed_hf_right_padded_batch_of_examples_max_abs_logits']:.2e}  "
          f"fp64 {obs['right_pad_fp32_vs_fp64_max_abs_logits_valid_positions']:.2e}  "
          f"lora scaling {lora['peft_config']['scaling']:.4g} loss {lora['loss_base']:.4f}->"
          f"{lora['loss_with_adapter']:.4f}->{lora['loss_after_1_adamw_step']:.4f} "
          f"cross_checks {'ok' if lora['cross_checks']['passed'] else 'FAILED'}  "
          f"kv-cache generate {'agrees' if g['hf_generate_with_kv_cache_agrees'] else 'DIFFERS'} "
          f"(max logit diff {max(g['hf_generate_with_kv_cache_max_abs_logit_diff_per_step']):.2e})", flush=True)
    return ev


def main():
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
          f"attn {args.attn}, out {args.out}", flush=True)
    worst_ev, failed = 0.0, []
    for case in args.cases:
        t0 = time.time()
        doc = make_case(case, args.out, args.attn, args.seed)
        worst_ev = max(worst_ev, summary(case, doc, time.time() - t0))
        if not doc["lora"]["cross_checks"]["passed"]:
            failed.append(case)
    print(f"eager vs sdpa, valid positions, all cases: max abs logit diff {worst_ev:.2e}"
          f" ({'within' if worst_ev <= 1e-5 else 'ABOVE'} 1e-5)")
    print(f"done: {len(args.cases)} case(s) in {time.time() - start:.1f}s")
    if failed:
        raise SystemExit(f"LoRA cross-checks failed for: {', '.join(failed)}")


if __name__ == "__main__":
    main()
