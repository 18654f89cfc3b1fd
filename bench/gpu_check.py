#!/usr/bin/env python3
"""The GPU check's measurements, run by bench/gpu_check.sh after it has built the engine:

(a) logits: tuneforge's fp32 logits against transformers' on the same device, eager and sdpa, on a batch without
    padding and one with a left- and a right-padded row: max abs difference at real tokens and argmax agreement.
(b) training: a bf16 LoRA step (r=16 on every linear layer of the blocks, AdamW), tuneforge against transformers +
    PEFT with SDPA on the same model, tokens and steps: tokens/s and peak GPU memory, as ratios. Then (first shape
    only) tuneforge alone in five variants against its default: eager attention, the loss over whole logits, the
    unfused elementwise ops, activation checkpointing, and checkpointing with the layer inputs offloaded to host
    memory.
(c) adapter: the adapter tuneforge trained in (b), loaded by PEFT (PeftModel.from_pretrained): every tensor of the
    file taken, and PEFT's fp32 logits against tuneforge's with the same adapter.
(d) sequences of mixed lengths: a bf16 LoRA step over one set of sequences, tuneforge padding-free (per-sequence
    attention: flash attention's variable-length kernel on CUDA) and padded, transformers + PEFT flattened (one row,
    restarting position ids) and padded: tokens/s against transformers' faster form, and the first losses, which
    agree when every form computes the same function.
(e) long sequences (first shape): memory per token of a bf16 LoRA step of batch 1 at two lengths on each side, each
    without and with activation checkpointing, and on a GPU the longest sequence that trains in 40 GiB by the fit,
    each side in its better form.
(f) fused ops: fused_ops_check compares RoPE, the gated activation, the LoRA down-projection under dropout, the chunked
    loss, the fused AdamW step and the 8-bit encoder with the plain forms they replace, on the device (run first).
(g) profile (first shape): one step of each side under the PyTorch profiler, summed per op and per GPU kernel (the
    per-op profile of bench/profile_step.py on the device).

Models have real shapes and random weights (bench_models.py). With --cpu the same checks run on small models on the
CPU, so the script keeps working between GPU loans. Prints a table last; logs and figures go to --out.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_models  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(msg, flush=True)


def run(cmd, logfile, check=True):
    """Runs cmd, teeing its output to logfile; returns the output. Raises on a non-zero exit when check is set."""
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(logfile, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + proc.stdout)
    tail = "\n".join(proc.stdout.splitlines()[-6:])
    log(f"  ({time.perf_counter() - t0:.1f} s) {tail}")
    if check and proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{proc.stdout[-4000:]}")
    return proc.stdout


def result_line(output):
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return dict(kv.split("=", 1) for kv in line.split()[1:])
    raise RuntimeError("no RESULT line in:\n" + output[-2000:])


def free_cuda():
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def hf_model(model_dir, attn, device):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                              attn_implementation=attn).to(device)
    return model.eval()


def hf_forward(model, inputs, device):
    t = load_file(inputs)
    with torch.no_grad():
        out = model(input_ids=t["input_ids"].to(device),
                    attention_mask=t["attention_mask"].to(device) if "attention_mask" in t else None).logits
    return out.float().cpu()


def peft_took_every_tensor(peft_model, adapter_dir):
    """Every tensor of adapter_model.safetensors must be in the PEFT model, bit for bit (after its dtype cast)."""
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    state = {k: v for k, v in peft_model.state_dict().items() if "lora_" in k}
    # PEFT's in-memory names carry the adapter name: ...q_proj.lora_A.default.weight
    loaded = {k.replace(".default.weight", ".weight"): v for k, v in state.items()}
    missing = [k for k in saved if k not in loaded]
    extra = [k for k in loaded if k not in saved]
    worst = max((float((loaded[k].float().cpu() - saved[k].float()).abs().max()) for k in saved if k in loaded),
                default=float("inf"))
    return {"tensors_in_file": len(saved), "missing_in_peft": len(missing), "peft_not_in_file": len(extra),
            "max_abs_weight_diff": worst, "missing_examples": missing[:3]}


def compare(ours, ref, inputs):
    """Max abs difference at real tokens and argmax agreement (fraction of real tokens)."""
    t = load_file(inputs)
    valid = t["attention_mask"].bool() if "attention_mask" in t else torch.ones(ours.shape[:2], dtype=torch.bool)
    diff = (ours - ref).abs().amax(-1)[valid]
    agree = (ours.argmax(-1) == ref.argmax(-1))[valid].float().mean()
    return float(diff.max()), float(agree)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, help="build directory with tuneforge-parity and train_step_bench")
    p.add_argument("--work", required=True, help="where models, inputs and logits are written")
    p.add_argument("--out", required=True, help="where logs and results.json go")
    p.add_argument("--cpu", action="store_true", help="small shapes on the CPU")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--until", type=float, default=0,
                   help="a deadline (seconds since the epoch): the optional parts, then the second shape, are skipped "
                        "when too little time is left for them")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    logfile = os.path.join(a.out, "gpu_check.log")

    import peft
    import transformers

    transformers.logging.disable_progress_bar()
    if not a.cpu and not torch.cuda.is_available():
        sys.exit("no GPU visible to torch; run with --cpu for the CPU form of the check")
    device = "cpu" if a.cpu else "cuda"
    if a.cpu:
        shapes = ["tiny-qwen2", "tiny-llama3"]
        logits_batch, logits_seq, pad = 2, 48, 16
        train_batch, train_seq, warmup, steps = 2, 64, 1, a.steps or 3
        sequences = dict(count=4, min_len=8, max_len=40, row_len=64)
        threads = ["--threads=2"]
    else:
        shapes = ["qwen2.5-0.5b", "llama3.1-8b-8layers"]
        logits_batch, logits_seq, pad = 2, 512, 128
        train_batch, train_seq, warmup, steps = 8, 1024, 3, a.steps or 10
        sequences = dict(count=16, min_len=64, max_len=1024, row_len=2048)
        threads = []
    env = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
           "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}
    log(f"gpu_check: {env}")
    parity = os.path.join(a.build, "services", "trainer", "tuneforge-parity")
    bench = os.path.join(a.build, "bench", "train_step_bench")
    hf_tool = [sys.executable, os.path.join(HERE, "hf_train_step.py")]
    results = {"env": env, "shapes": {}, "skipped": []}

    def time_left():
        return a.until - time.time() if a.until > 0 else float("inf")

    def save():  # after each part, so that a check cut short still leaves what it measured
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)

    def affordable(what, seconds):
        if time_left() >= seconds:
            return True
        log(f"== skipped {what}: {time_left():.0f} s left before the deadline, it needs about {seconds} s")
        results["skipped"].append(what)
        return False

    # Rough GPU costs in seconds (model loads dominate), for the deadline.
    cost = ({"shape": 300, "variants": 120, "long": 180, "profile": 60} if device == "cuda"
            else {"shape": 0, "variants": 0, "long": 0, "profile": 0})
    context = {}  # per shape, what the optional parts after the loop need

    # (f) the fused ops against the plain ones they replace, on the device, before any model.
    checks = []
    for line in run([os.path.join(a.build, "bench", "fused_ops_check"), f"--device={device}"], logfile,
                    check=False).splitlines():
        if line.startswith("CHECK "):
            fields = line.split()
            checks.append({"name": fields[1], **dict(kv.split("=", 1) for kv in fields[2:])})
    results["fused_ops"] = checks
    save()
    for shape in shapes:
        if shape != shapes[0] and not affordable(shape, cost["shape"]):
            continue
        r = {}
        model_dir = os.path.join(a.work, shape)
        t0 = time.perf_counter()
        bench_models.make_model(shape, model_dir, device=device)
        log(f"== {shape}: model ready in {time.perf_counter() - t0:.1f} s ({model_dir})")
        vocab = bench_models.vocab_size(shape)

        # (a) logits, fp32, eager and sdpa, without and with padding. Each side loads the model once per
        # attention implementation.
        cases = {case: bench_models.make_inputs(os.path.join(a.work, f"{shape}-{case}.safetensors"), vocab,
                                                logits_batch, logits_seq, seed=7, pad=n)
                 for case, n in (("nomask", 0), ("padded", pad))}
        refs = {}
        for attn in ("eager", "sdpa"):
            model = hf_model(model_dir, attn, device)
            for case, inputs in cases.items():
                refs[case, attn] = hf_forward(model, inputs, device)
            del model
            free_cuda()
        for attn in ("eager", "sdpa"):
            outs = {case: os.path.join(a.work, f"{shape}-{case}-{attn}-logits.safetensors") for case in cases}
            run([parity, "logits", f"--model={model_dir}", "--inputs=" + ",".join(cases.values()),
                 "--out=" + ",".join(outs.values()), f"--device={device}", f"--attn={attn}", "--dtype=fp32"], logfile)
            for case, inputs in cases.items():
                ours = load_file(outs[case])["logits"]
                diff, agree = compare(ours, refs[case, attn], inputs)
                r[f"logits/{case}/{attn}"] = {"max_abs": diff, "argmax_agree": agree}
                log(f"  logits {case} {attn}: max abs diff {diff:.3e}, argmax agreement {agree:.4f}")
                os.remove(outs[case])
        for case, inputs in cases.items():
            spread, _ = compare(refs[case, "sdpa"], refs[case, "eager"], inputs)
            r[f"logits/{case}/transformers sdpa vs eager"] = {"max_abs": spread}

        # (b) bf16 LoRA training step, same tokens and steps; tuneforge also with each technique's "before" or
        # alternative (eager attention, the loss over whole logits, transformers' elementwise op sequences) and with
        # the memory options (checkpointing, and checkpointing with the layer inputs offloaded to host memory).
        train_inputs = bench_models.make_inputs(os.path.join(a.work, f"{shape}-train.safetensors"), vocab,
                                                train_batch, train_seq, seed=11)
        adapter = os.path.join(a.work, f"{shape}-adapter")
        common = [f"--model={model_dir}", f"--inputs={train_inputs}", f"--device={device}", "--dtype=bf16",
                  f"--warmup={warmup}", f"--steps={steps}", "--lora-r=16", "--lora-alpha=32"] + threads
        ours = result_line(run([bench] + common + ["--attn=sdpa", f"--save-adapter={adapter}"], logfile))
        free_cuda()
        theirs = result_line(run(hf_tool + common + ["--attn=sdpa"], logfile))
        free_cuda()
        r["train"] = {"tuneforge": ours, "transformers+peft": theirs}

        # (c) the adapter trained above, loaded by PEFT, fp32 logits against ours with the same adapter.
        inputs = cases["nomask"]
        model = peft.PeftModel.from_pretrained(hf_model(model_dir, "sdpa", device), adapter).eval()
        took = peft_took_every_tensor(model, adapter)
        ref = hf_forward(model, inputs, device)
        del model
        free_cuda()
        out = os.path.join(a.work, f"{shape}-adapter-logits.safetensors")
        run([parity, "logits", f"--model={model_dir}", f"--adapter={adapter}", f"--inputs={inputs}", f"--out={out}",
             f"--device={device}", "--attn=sdpa", "--dtype=fp32"], logfile)
        diff, agree = compare(load_file(out)["logits"], ref, inputs)
        effect, _ = compare(ref, refs["nomask", "sdpa"], inputs)
        r["adapter"] = {"peft_load": took, "max_abs": diff, "argmax_agree": agree, "adapter_effect_max_abs": effect}
        log(f"  adapter in PEFT: {took}; logits max abs diff {diff:.3e} (the adapter moves logits by up to "
            f"{effect:.3e})")
        del refs

        # (d) sequences of mixed lengths in each batch form, same loss over the same label tokens.
        seq_dir = os.path.join(a.work, f"{shape}-sequences")
        os.makedirs(seq_dir, exist_ok=True)
        lengths = bench_models.make_sequence_set(seq_dir, vocab, seed=13, **sequences)
        forms = {}
        base = [f"--model={model_dir}", f"--device={device}", "--dtype=bf16", f"--warmup={warmup}", f"--steps={steps}",
                "--lora-r=16", "--lora-alpha=32", "--attn=sdpa"] + threads
        for name, tool, form in (("tuneforge padding-free", [bench], "padding_free"),
                                 ("tuneforge padded", [bench], "padded"),
                                 ("transformers+peft flattened", hf_tool, "flat"),
                                 ("transformers+peft padded", hf_tool, "padded")):
            forms[name] = result_line(run(tool + base + [f"--inputs={os.path.join(seq_dir, form + '.safetensors')}"],
                                          logfile))
            free_cuda()
        r["sequences"] = {"lengths": lengths, "forms": forms}
        results["shapes"][shape] = r
        context[shape] = {"vocab": vocab, "common": common, "base": base}
        save()

    # The first shape again, once every shape has its main checks: the optional parts.
    shape = shapes[0]
    if shape in results["shapes"]:
        r = results["shapes"][shape]
        vocab, common, base = (context[shape][k] for k in ("vocab", "common", "base"))
        # (b) continued: tuneforge's variants against its default.
        if affordable("variants", cost["variants"]):
            for name, flags in (("eager", ["--attn=eager"]), ("whole logits", ["--attn=sdpa", "--loss=logits"]),
                                ("unfused", ["--attn=sdpa", "--fused=0"]),
                                ("checkpointing", ["--attn=sdpa", "--checkpointing=1"]),
                                ("checkpointing+offload", ["--attn=sdpa", "--checkpointing=1", "--offload=1"])):
                r["train"][f"tuneforge {name}"] = result_line(run([bench] + common + flags, logfile))
                free_cuda()
            save()

        # (e) long sequences: one step of batch 1 at two lengths on each side, without and with activation
        # checkpointing. The growth between them is the memory a token costs; with the part that does not grow, it
        # gives the longest sequence that trains within a memory budget.
        if affordable("long sequences", cost["long"]):
            long_lengths = (128, 512) if a.cpu else (4096, 16384)
            key = "train_rss_mib" if a.cpu else "peak_mem_mib"
            sides = {}
            for name, tool in (("tuneforge", [bench]),
                               ("transformers+peft", hf_tool)):
                for checkpointing in ("0", "1"):
                    peaks = []
                    for n in long_lengths:
                        inputs = bench_models.make_inputs(os.path.join(a.work, f"{shape}-long{n}.safetensors"), vocab,
                                                          1, n, seed=17)
                        one_step = [f for f in base if not f.startswith(("--warmup=", "--steps="))]
                        res = result_line(run(tool + one_step + ["--warmup=1", "--steps=1", f"--inputs={inputs}",
                                                                 f"--checkpointing={checkpointing}"], logfile))
                        free_cuda()
                        peaks.append(float(res[key]))
                    slope = (peaks[1] - peaks[0]) / (long_lengths[1] - long_lengths[0])
                    sides[name + (" checkpointing" if checkpointing == "1" else "")] = {
                        "peak_mib": peaks, "mib_per_token": slope, "fixed_mib": peaks[0] - slope * long_lengths[0]}
            r["long"] = {"lengths": list(long_lengths), "measure": key, "sides": sides}
            save()

        # (g) where a step's time goes: one step of each side under the profiler, summed per op (self time) and, on
        # a GPU, per kernel.
        if affordable("profile", cost["profile"]):
            from profile_step import self_times
            profile = {}
            for name, tool in (("tuneforge", [bench]),
                               ("transformers+peft", hf_tool)):
                trace = os.path.join(a.work, f"{shape}-profile-{name}.json")
                run(tool + [f for f in common if not f.startswith(("--warmup=", "--steps="))]
                    + ["--attn=sdpa", "--warmup=2", "--steps=1", f"--profile={trace}"], logfile)
                free_cuda()
                totals = self_times(trace)
                kernels = {n: v for n, v in totals.items() if n.startswith("[gpu] ")}
                ops = {n: v for n, v in totals.items() if not n.startswith("[gpu] ")}
                top = lambda d: [[n, round(v[0] / 1e3, 3), v[1]] for n, v in  # noqa: E731
                                 sorted(d.items(), key=lambda kv: -kv[1][0])[:20]]
                profile[name] = {"kernel_ms": sum(v[0] for v in kernels.values()) / 1e3,
                                 "kernels": sum(v[1] for v in kernels.values()),
                                 "op_ms": sum(v[0] for v in ops.values()) / 1e3, "top_kernels": top(kernels),
                                 "top_ops": top(ops)}
                os.remove(trace)
            r["profile"] = profile
            save()

    save()

    # The table.
    log("\n== gpu_check results: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    log(f"{'shape':22} {'check':34} {'value':>12}  note")
    ok = True
    for shape, r in results["shapes"].items():
        for case in ("nomask", "padded"):
            for attn in ("eager", "sdpa"):
                c = r[f"logits/{case}/{attn}"]
                log(f"{shape:22} {'(a) fp32 logits ' + case + ' ' + attn:34} {c['max_abs']:12.3e}  max abs diff; "
                    f"argmax agreement {c['argmax_agree']:.4f}")
            log(f"{shape:22} {'    transformers sdpa vs eager':34} "
                f"{r[f'logits/{case}/transformers sdpa vs eager']['max_abs']:12.3e}  (their own spread)")
        ours, theirs = r["train"]["tuneforge"], r["train"]["transformers+peft"]
        speed = float(ours["tokens_per_s"]) / float(theirs["tokens_per_s"])
        log(f"{shape:22} {'(b) bf16 LoRA tokens/s ratio':34} {speed:12.2f}  tuneforge {float(ours['tokens_per_s']):.0f}"
            f" vs transformers+PEFT {float(theirs['tokens_per_s']):.0f} tok/s (batch {ours['batch']} x {ours['seq']})")
        if ours["peak_mem_mib"] != "n/a" and theirs["peak_mem_mib"] != "n/a":
            mem = float(ours["peak_mem_mib"]) / float(theirs["peak_mem_mib"])
            log(f"{shape:22} {'    peak memory ratio':34} {mem:12.2f}  {float(ours['peak_mem_mib']) / 1024:.1f} vs "
                f"{float(theirs['peak_mem_mib']) / 1024:.1f} GiB allocated")
        for name in ("eager", "whole logits", "unfused", "checkpointing", "checkpointing+offload"):
            v = r["train"].get(f"tuneforge {name}")
            if v is None:
                continue
            log(f"{shape:22} {'    ' + name:34} "
                f"{float(v['tokens_per_s']) / float(ours['tokens_per_s']):12.2f}  x default tok/s; "
                f"{float(v['tokens_per_s']):.0f} "
                f"tok/s, {v['peak_mem_mib']} MiB (default {ours['peak_mem_mib']}), "
                f"last loss {float(v['last_loss']):.6f}")
            # The same function in every variant but eager attention (another kernel), within bf16 noise.
            if name != "eager":
                ok = ok and abs(float(v["last_loss"]) - float(ours["last_loss"])) < 5e-2
        log(f"{shape:22} {'    first loss':34} {float(ours['first_loss']):12.6f}  transformers+PEFT "
            f"{float(theirs['first_loss']):.6f}")
        ad = r["adapter"]
        took = ad["peft_load"]
        log(f"{shape:22} {'(c) adapter in PEFT: logits':34} {ad['max_abs']:12.3e}  max abs diff; PEFT took "
            f"{took['tensors_in_file'] - took['missing_in_peft']}/{took['tensors_in_file']} tensors (max weight diff "
            f"{took['max_abs_weight_diff']:.1e}); adapter effect {ad['adapter_effect_max_abs']:.3e}")
        ok = ok and took["missing_in_peft"] == 0 and took["peft_not_in_file"] == 0 and ad["max_abs"] < 1e-3
        ok = ok and all(r[f"logits/{c}/{t}"]["max_abs"] < 1e-3 for c in ("nomask", "padded") for t in ("eager", "sdpa"))
        ok = ok and abs(float(ours["first_loss"]) - float(theirs["first_loss"])) < 5e-2
        forms = r["sequences"]["forms"]
        best = max((f for n, f in forms.items() if n.startswith("transformers")),
                   key=lambda f: float(f["tokens_per_s"]))
        for name, f in forms.items():
            mem = f" {float(f['peak_mem_mib']) / 1024:.1f} GiB" if f["peak_mem_mib"] != "n/a" else ""
            log(f"{shape:22} {'(d) ' + name:34} {float(f['tokens_per_s']) / float(best['tokens_per_s']):12.2f}  "
                f"x the best transformers form; {float(f['tokens_per_s']):.0f} tok/s,{mem} attention "
                f"{f.get('attention', 'sdpa')}, first loss {float(f['first_loss']):.6f}")
        first = [float(f["first_loss"]) for f in forms.values()]
        ok = ok and max(first) - min(first) < 5e-2
        ok = ok and forms["tuneforge padding-free"]["attention"] == ("varlen" if device == "cuda" else "per-sequence")
        if "long" in r:
            long_sides = r["long"]["sides"]
            for form in ("", " checkpointing"):
                ours_side, theirs_side = long_sides["tuneforge" + form], long_sides["transformers+peft" + form]
                ratio = theirs_side["mib_per_token"] / max(ours_side["mib_per_token"], 1e-9)
                label = "(e) memory per token, theirs/ours" if not form else "    the same, both checkpointing"
                log(f"{shape:22} {label:34} {ratio:12.2f}  "
                    f"{ours_side['mib_per_token']:.3f} vs {theirs_side['mib_per_token']:.3f} MiB per token "
                    f"({r['long']['measure']} at {r['long']['lengths']} tokens, batch 1)")
            if device == "cuda":
                budget = 40 * 1024
                longest = {n: (budget - v["fixed_mib"]) / max(v["mib_per_token"], 1e-9) for n, v in long_sides.items()}
                ours_best = max(v for n, v in longest.items() if n.startswith("tuneforge"))
                theirs_best = max(v for n, v in longest.items() if n.startswith("transformers"))
                log(f"{shape:22} {'    longest sequence in 40 GiB':34} {ours_best / theirs_best:12.2f}  each side's "
                    f"longer form: tuneforge {ours_best:.0f} vs transformers+PEFT {theirs_best:.0f} tokens (linear "
                    f"in length; " + ", ".join(f"{n} {v:.0f}" for n, v in longest.items()) + ")")
        if "profile" in r:
            for name, prof in r["profile"].items():
                what = (f"{prof['kernel_ms']:.1f} ms in {prof['kernels']} kernels, top: "
                        + ", ".join(f"{n[6:40]} {ms:.1f}" for n, ms, _ in prof["top_kernels"][:4])
                        if prof["kernels"] else
                        "top ops: " + ", ".join(f"{n} {ms:.1f}" for n, ms, _ in prof["top_ops"][:4]))
                log(f"{shape:22} {'(g) profile, ' + name:34} {prof['op_ms']:12.1f}  ms of op self time; "
                    + what)
                # A profile that recorded nothing (no ops; on a GPU, no kernels) means the profiler did not run.
                ok = ok and prof["op_ms"] > 0 and (prof["kernels"] > 0 or device != "cuda")
    failed = [c for c in results["fused_ops"] if c["ok"] != "1"]
    worst = max(results["fused_ops"], key=lambda c: float(c["max_abs"]) / max(float(c["tol"]), 1e-30), default=None)
    log(f"{'device':22} {'(f) fused ops vs plain: failures':34} {len(failed):12d}  of {len(results['fused_ops'])} "
        f"checks" + (f"; closest to its tolerance: {worst['name']} {worst['dtype']} {float(worst['max_abs']):.2e} "
                     f"(tolerance {float(worst['tol']):.2e})" if worst else ""))
    for c in failed:
        log(f"{'':22} {'    FAILED ' + c['name'] + ' ' + c['dtype']:34} {float(c['max_abs']):12.3e}  tolerance "
            f"{float(c['tol']):.3e}")
    ok = ok and not failed and len(results["fused_ops"]) > 0
    if results["skipped"]:
        log("skipped for the deadline: " + ", ".join(results["skipped"]))
    log("gpu_check: " + ("PASS" if ok else "FAIL (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
