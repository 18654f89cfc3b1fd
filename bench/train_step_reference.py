#!/usr/bin/env python3
# The PyTorch eager reference for train_step_bench: the same Llama, LoRA, weights, tokens and training step,
# written as plain nn.Modules the way transformers 4.44 (eager attention) and PEFT compute them.
# Usage: train_step_reference.py [--dtype=fp32|bf16|both] [--threads=N] [--warmup=2] [--steps=5]
import argparse
import ctypes
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS = 32000, 512, 1376, 8, 8, 4
HEAD_DIM = HIDDEN // HEADS
RMS_EPS, ROPE_THETA = 1e-5, 10000.0
LORA_R, LORA_ALPHA = 16, 32
WEIGHT_SEED, TOKEN_SEED, LORA_SEED = 1234, 5678, 42  # as in train_step_bench.cc
LEARNING_RATE = 1e-4


def openblas():
    """OpenBLAS as loaded by torch (through libblas.so.3), or None when another BLAS is installed."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib
    except OSError:
        return None


def expected_weight_shapes():
    """HF names and shapes of the checkpoint, as common/model_config.cc lists them."""
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,),
              "lm_head.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (HIDDEN,)
        shapes[p + "post_attention_layernorm.weight"] = (HIDDEN,)
        shapes[p + "self_attn.q_proj.weight"] = (HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.k_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.v_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.o_proj.weight"] = (HIDDEN, HEADS * HEAD_DIM)
        shapes[p + "mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[p + "mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[p + "mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
    return shapes


def random_weights():
    """randn * 0.02 in sorted-name order from one generator, norms ones: the same tensors as the C++ bench."""
    gen = torch.Generator().manual_seed(WEIGHT_SEED)
    out = {}
    for name, shape in sorted(expected_weight_shapes().items()):
        out[name] = torch.ones(shape) if name.endswith("norm.weight") else torch.randn(shape, generator=gen) * 0.02
    return out


class LoraLinear(nn.Module):
    """PEFT's lora.Linear: frozen base, y = x W^T + scaling * B(A(x)); A kaiming_uniform(a=sqrt(5)), B zeros."""

    def __init__(self, weight, lora_gen, dtype):
        super().__init__()
        out_features, in_features = weight.shape
        self.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
        bound = 1.0 / math.sqrt(in_features)
        a = torch.empty(LORA_R, in_features).uniform_(-bound, bound, generator=lora_gen)
        self.lora_A = nn.Parameter(a.to(dtype))
        self.lora_B = nn.Parameter(torch.zeros(out_features, LORA_R, dtype=dtype))
        self.scaling = LORA_ALPHA / LORA_R

    def forward(self, x):
        return F.linear(x, self.weight) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling


class RMSNorm(nn.Module):
    def __init__(self, weight, dtype):
        super().__init__()
        self.weight = nn.Parameter(weight.to(dtype), requires_grad=False)

    def forward(self, x):
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        return self.weight * h.to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, w, prefix, lora_gen, dtype):
        super().__init__()
        self.q_proj = LoraLinear(w[prefix + "q_proj.weight"], lora_gen, dtype)
        self.k_proj = LoraLinear(w[prefix + "k_proj.weight"], lora_gen, dtype)
        self.v_proj = LoraLinear(w[prefix + "v_proj.weight"], lora_gen, dtype)
        self.o_proj = LoraLinear(w[prefix + "o_proj.weight"], lora_gen, dtype)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.k_proj(x).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = self.v_proj(x).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = HEADS // KV_HEADS  # repeat_kv
        k = k[:, :, None].expand(b, KV_HEADS, rep, t, HEAD_DIM).reshape(b, HEADS, t, HEAD_DIM)
        v = v[:, :, None].expand(b, KV_HEADS, rep, t, HEAD_DIM).reshape(b, HEADS, t, HEAD_DIM)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(HEAD_DIM) + mask
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).contiguous().reshape(b, t, HIDDEN)
        return self.o_proj(out)


class Mlp(nn.Module):
    def __init__(self, w, prefix, lora_gen, dtype):
        super().__init__()
        self.gate_proj = LoraLinear(w[prefix + "gate_proj.weight"], lora_gen, dtype)
        self.up_proj = LoraLinear(w[prefix + "up_proj.weight"], lora_gen, dtype)
        self.down_proj = LoraLinear(w[prefix + "down_proj.weight"], lora_gen, dtype)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, w, i, lora_gen, dtype):
        super().__init__()
        p = f"model.layers.{i}."
        self.input_layernorm = RMSNorm(w[p + "input_layernorm.weight"], dtype)
        self.self_attn = Attention(w, p + "self_attn.", lora_gen, dtype)
        self.post_attention_layernorm = RMSNorm(w[p + "post_attention_layernorm.weight"], dtype)
        self.mlp = Mlp(w, p + "mlp.", lora_gen, dtype)

    def forward(self, h, cos, sin, mask):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class Llama(nn.Module):
    def __init__(self, w, dtype):
        super().__init__()
        lora_gen = torch.Generator().manual_seed(LORA_SEED)  # A matrices drawn layer by layer, q k v o gate up down
        self.embed_tokens = nn.Parameter(w["model.embed_tokens.weight"].to(dtype), requires_grad=False)
        self.layers = nn.ModuleList(DecoderLayer(w, i, lora_gen, dtype) for i in range(LAYERS))
        self.norm = RMSNorm(w["model.norm.weight"], dtype)
        self.lm_head = nn.Parameter(w["lm_head.weight"].to(dtype), requires_grad=False)
        self.dtype = dtype

    def forward(self, ids):
        b, t = ids.shape
        h = F.embedding(ids, self.embed_tokens)
        inv_freq = 1.0 / (ROPE_THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.int64).float() / HEAD_DIM))
        freqs = torch.arange(t).float()[None, :, None] * inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(self.dtype)[:, None], emb.sin().to(self.dtype)[:, None]
        mask = torch.full((t, t), torch.finfo(self.dtype).min, dtype=self.dtype).triu(1)
        mask = mask[None, None].expand(b, 1, t, t)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return F.linear(self.norm(h), self.lm_head).float()


def causal_lm_loss(logits, labels):
    return F.cross_entropy(logits[:, :-1].contiguous().view(-1, VOCAB), labels[:, 1:].contiguous().view(-1))


def run(dtype, label, args):
    model = Llama(random_weights(), dtype)
    model.train()
    lora = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(lora, lr=LEARNING_RATE, weight_decay=0.01)
    ids = torch.randint(0, VOCAB, (args.batch, args.seq), generator=torch.Generator().manual_seed(TOKEN_SEED))
    steps, cpus, forwards, backwards, optims, losses = [], [], [], [], [], []
    for i in range(args.warmup + args.steps):
        cpu0 = time.process_time()  # every thread of the process, as getrusage in the C++ bench
        t0 = time.perf_counter()
        loss = causal_lm_loss(model(ids), ids)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        t3 = time.perf_counter()
        cpu = time.process_time() - cpu0
        losses.append(loss.item())
        warm = " (warm-up)" if i < args.warmup else ""
        print(f"[eager {label}] step {i}{warm}: {1e3 * (t3 - t0):.0f} ms (forward+loss {1e3 * (t1 - t0):.0f}, "
              f"backward {1e3 * (t2 - t1):.0f}, optimizer {1e3 * (t3 - t2):.0f}), cpu {1e3 * cpu:.0f} ms, "
              f"loss {losses[-1]:.6f}", flush=True)
        if i >= args.warmup:
            steps.append(t3 - t0)
            cpus.append(cpu)
            forwards.append(t1 - t0)
            backwards.append(t2 - t1)
            optims.append(t3 - t2)
    step = statistics.median(steps)
    print(f"RESULT impl=eager dtype={label} threads={args.threads} tokens_per_s={args.batch * args.seq / step:.1f} "
          f"step_ms={1e3 * step:.1f} best_step_ms={1e3 * min(steps):.1f} "
          f"cpu_ms={1e3 * statistics.median(cpus):.1f} "
          f"forward_ms={1e3 * statistics.median(forwards):.1f} backward_ms={1e3 * statistics.median(backwards):.1f} "
          f"optimizer_ms={1e3 * statistics.median(optims):.1f} first_loss={losses[0]:.6f} last_loss={losses[-1]:.6f}",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dtype", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    args = parser.parse_args()

    blas = openblas()
    blas_at_start = blas.openblas_get_num_threads() if blas else -1
    torch.set_num_threads(args.threads)
    if blas:
        blas.openblas_set_num_threads(args.threads)  # torch.set_num_threads does not reach OpenBLAS's pool
    core = blas.openblas_get_corename().decode() if blas else "none (BLAS is not OpenBLAS)"
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"torch {torch.__version__} eager train step: openblas core {core}, openblas threads "
          f"{blas.openblas_get_num_threads() if blas else -1} (at start {blas_at_start}), torch threads "
          f"{torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
          f"load average {load}", flush=True)
    if args.dtype != "bf16":
        run(torch.float32, "fp32", args)
    if args.dtype != "fp32":
        run(torch.bfloat16, "bf16", args)


if __name__ == "__main__":
    main()
