#!/usr/bin/env python3
"""Per-op profile of one LoRA training step: tuneforge (train_step_bench --profile) and transformers + PEFT
(hf_train_step.py --profile) on the same model, tokens, dtype and threads, each step recorded by the PyTorch profiler
as a Chrome trace, then summed per op: self time (the op's own time, without the ops it called) and calls. Prints
the ops that take the most time on either side, side by side, and both totals.

Usage: profile_step.py --build BUILD [--threads 2] [--dtype bf16] [--loss chunked|logits] [--top 25] [--keep DIR]
       (the model is the bench Llama of train_step.sh, written by bench_models.py)
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def self_times(trace_path):
    """op name -> [self microseconds, calls], over the CPU ops of a Chrome trace (kernels on a GPU count too)."""
    with open(trace_path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    by_thread = collections.defaultdict(list)
    totals = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        cat = e.get("cat", "")
        if cat in ("kernel", "gpu_memcpy", "gpu_memset"):
            t = totals["[gpu] " + e["name"]]
            t[0] += float(e["dur"])
            t[1] += 1
        elif cat in ("cpu_op", "operator"):
            by_thread[(e.get("pid"), e.get("tid"))].append(e)
    for events in by_thread.values():
        # Nested ops on one thread: an op's self time is its duration less that of the ops directly inside it.
        events.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        stack = []
        for e in events:
            start, end = float(e["ts"]), float(e["ts"]) + float(e["dur"])
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack:
                stack[-1][2][0] -= float(e["dur"])
            own = [float(e["dur"])]
            stack.append((start, end, own, e["name"]))
            t = totals[e["name"]]
            t[1] += 1
            e["_own"] = own
        for e in events:
            totals[e["name"]][0] += e["_own"][0]
    return totals


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--loss", choices=["chunked", "logits"], default="chunked")
    p.add_argument("--device", default="cpu")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--keep", default="", help="keep the model and traces in this folder")
    a = p.parse_args()

    import torch
    sys.path.insert(0, HERE)
    import bench_models

    work = a.keep or tempfile.mkdtemp()
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "model")
    inputs = os.path.join(work, "inputs.safetensors")
    if not os.path.exists(os.path.join(model, "config.json")):
        bench_models.make_model("bench-llama", model, dtype=torch.float32)
        bench_models.make_inputs(inputs, bench_models.vocab_size("bench-llama"), 4, 256, seed=5678)
    common = [f"--model={model}", f"--inputs={inputs}", f"--device={a.device}", f"--threads={a.threads}",
              "--warmup=2", "--steps=2", "--attn=sdpa", f"--dtype={a.dtype}"]
    ours_trace, hf_trace = os.path.join(work, "tuneforge.json"), os.path.join(work, "hf.json")
    subprocess.run([os.path.join(a.build, "bench", "train_step_bench"), *common, f"--loss={a.loss}",
                    f"--profile={ours_trace}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, os.path.join(HERE, "hf_train_step.py"), *common, f"--profile={hf_trace}"],
                   check=True, stdout=subprocess.DEVNULL)

    ours, hf = self_times(ours_trace), self_times(hf_trace)
    names = sorted(set(ours) | set(hf), key=lambda n: -max(ours.get(n, [0])[0], hf.get(n, [0])[0]))
    total_ours = sum(v[0] for v in ours.values()) / 1e3
    total_hf = sum(v[0] for v in hf.values()) / 1e3
    print(f"one step, {a.dtype}, {a.threads} threads, {a.device}, loss {a.loss}: self time of every op, ms")
    print(f"{'op':<44} {'ours ms':>9} {'calls':>6} {'HF ms':>9} {'calls':>6}")
    for n in names[: a.top]:
        o, h = ours.get(n, [0.0, 0]), hf.get(n, [0.0, 0])
        print(f"{n[:44]:<44} {o[0] / 1e3:>9.1f} {o[1]:>6} {h[0] / 1e3:>9.1f} {h[1]:>6}")
    print(f"{'all ops':<44} {total_ours:>9.1f} {sum(v[1] for v in ours.values()):>6} {total_hf:>9.1f} "
          f"{sum(v[1] for v in hf.values()):>6}")
    if not a.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
