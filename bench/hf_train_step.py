#!/usr/bin/env python3
"""The reference for train_step_bench: one LoRA training step with transformers + PEFT on the same model directory,
tokens and settings (LoRA on every linear layer of the blocks, dropout 0, AdamW lr 1e-4 wd 0.01, labels = inputs),
timed the same way (the device synchronised at every phase boundary). Prints the same RESULT line.

Usage: hf_train_step.py --model=DIR --inputs=FILE [--device=cpu|cuda|cuda:N] [--dtype=fp32|bf16] [--attn=sdpa|eager]
                        [--threads=N] [--warmup=2] [--steps=5] [--lora-r=16] [--lora-alpha=32] [--lora-dropout=0]
                        [--prompt-fraction=F] [--checkpointing=0|1] [--profile=TRACE.json]
"""
import argparse
import os
import resource
import statistics
import time

import torch

LEARNING_RATE, WEIGHT_DECAY = 1e-4, 0.01  # as train_step_bench.cc
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")



def status_bytes(name):
    """A "Name:   N kB" line of /proc/self/status in bytes, None when missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_resident():
    """Resets the resident high-water mark (Linux: clear_refs 5), as train_step_bench does; the resident size now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status_bytes("VmRSS:")

def cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--prompt-fraction", type=float, default=0.0,
                   help="the first share of each row's labels is -100 (an SFT prompt)")
    p.add_argument("--checkpointing", choices=["0", "1"], default="0",
                   help="1: activation checkpointing of every decoder layer (transformers' gradient_checkpointing)")
    p.add_argument("--profile", default="", help="one more step under torch.profiler, written as a Chrome trace")
    a = p.parse_args()

    import peft
    import transformers
    from safetensors.torch import load_file

    transformers.logging.disable_progress_bar()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    inputs = load_file(a.inputs)
    ids = inputs["input_ids"].to(device)
    if "labels" in inputs:
        labels = inputs["labels"].to(device)
    else:
        labels = ids.clone()
        labels[:, : int(a.prompt_fraction * ids.shape[1])] = -100
    # Optional: attention_mask (1 = token, 0 = padding) and position_ids (restarting at 0 per sequence: with no
    # mask transformers then attends within each sequence, the form of its DataCollatorWithFlattening).
    forward_args = {k: inputs[k].to(device) for k in ("attention_mask", "position_ids") if k in inputs}
    batch, seq = ids.shape
    tokens = int(inputs["attention_mask"].ne(0).sum()) if "attention_mask" in inputs else batch * seq

    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation=a.attn)
    model.config.use_cache = False
    model.to(device)
    if a.checkpointing == "1":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(42)
    config = peft.LoraConfig(r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout, target_modules="all-linear",
                             task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config)
    sync()
    load_s = time.perf_counter() - t0
    model.train()
    params = [t for t in model.parameters() if t.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    trainable = sum(t.numel() for t in params)
    total = sum(t.numel() for t in model.parameters())
    print(f"[transformers+peft {device} {a.dtype} {a.attn}] transformers {transformers.__version__}, peft "
          f"{peft.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; params {total}, "
          f"trainable {trainable}; batch {batch} x {seq}; loaded in {load_s:.1f} s", flush=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    resident_before = reset_peak_resident()
    steps, cpus, forwards, backwards, optims, losses = [], [], [], [], [], []
    for i in range(a.warmup + a.steps):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=labels, **forward_args).loss
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        cpu = cpu_seconds() - c0
        losses.append(loss.item())
        warm = " (warm-up)" if i < a.warmup else ""
        print(f"[transformers+peft] step {i}{warm}: {1e3 * (t3 - t0):.1f} ms (forward+loss {1e3 * (t1 - t0):.1f}, "
              f"backward {1e3 * (t2 - t1):.1f}, optimizer {1e3 * (t3 - t2):.1f}), cpu {1e3 * cpu:.0f} ms, "
              f"loss {losses[-1]:.6f}", flush=True)
        if i >= a.warmup:
            steps.append(t3 - t0)
            cpus.append(cpu)
            forwards.append(t1 - t0)
            backwards.append(t2 - t1)
            optims.append(t3 - t2)
    peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:.1f}" if device.type == "cuda" else "n/a"
    peak_resident = status_bytes("VmHWM:")
    train_rss = (f"{(peak_resident - resident_before) / 2**20:.1f}"
                 if peak_resident is not None and resident_before is not None else "n/a")
    step = statistics.median(steps)
    print(f"RESULT impl=transformers+peft device={device.type} dtype={a.dtype} attn={a.attn} "
          f"checkpointing={a.checkpointing} "
          f"threads={torch.get_num_threads()} batch={batch} seq={seq} tokens={tokens} tokens_per_s={tokens / step:.1f} "
          f"step_ms={1e3 * step:.2f} best_step_ms={1e3 * min(steps):.2f} cpu_ms={1e3 * statistics.median(cpus):.1f} "
          f"forward_ms={1e3 * statistics.median(forwards):.2f} backward_ms={1e3 * statistics.median(backwards):.2f} "
          f"optimizer_ms={1e3 * statistics.median(optims):.2f} peak_mem_mib={peak} train_rss_mib={train_rss} "
          f"first_loss={losses[0]:.6f} last_loss={losses[-1]:.6f}", flush=True)

    if a.profile:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            model(input_ids=ids, labels=labels, **forward_args).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
        prof.export_chrome_trace(a.profile)
        print(f"profile of one step written to {a.profile}", flush=True)


if __name__ == "__main__":
    main()
