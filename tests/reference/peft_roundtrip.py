#!/usr/bin/env python3
"""PEFT round trip of tuneforge adapters, the Python half of tests/e2e/peft_roundtrip_test.sh.

Hugging Face transformers and PEFT are the reference here: they build the tiny base models, make adapters of
their own, and load the adapters tuneforge trained. The C++ side (tuneforge-parity logits) writes tuneforge's
logits for the same inputs; `check-adapter` compares the two.

    make-model FAMILY DIR --seed N
        A tiny random FAMILY (llama | phi3) model: AutoModelForCausalLM.from_config + save_pretrained, the demo
        character tokenizer of scripts/make_demo_data.py (so a fine-tuning job can tokenize its dataset), and
        DIR/inputs.safetensors: int64 input_ids [3,16] with right-padded rows and their attention_mask.
    make-adapter --model DIR --out DIR --seed N --targets q_proj,v_proj [--r 8] [--alpha 16] [--rslora] [--steps 3]
                 [--dropout 0.1]
        get_peft_model on the base, a few AdamW steps on random tokens (so every lora_B is non-zero),
        save_pretrained.
    check-adapter --model DIR --inputs FILE --attn eager|sdpa --case KEY=VALUE,... [--case ...]
        For each case (adapter=DIR, logits=FILE [tuneforge's], name=, and what adapter_config.json must say:
        r=, alpha=, rslora=0|1, targets=a+b; corrupt=1 makes it a negative control), loads base + adapter with
        PeftModel.from_pretrained and checks:
          - adapter_config.json has the expected r / lora_alpha / use_rslora / target_modules;
          - PEFT took every tensor of adapter_model.safetensors: the file's keys and PEFT's LoRA weights are the
            same set (nothing dropped, nothing left at PEFT's init), with bit-equal values;
          - every lora_B is non-zero (the adapter was trained) and PEFT's scaling is alpha/r (alpha/sqrt(r) with
            rsLoRA);
          - PEFT's fp32 logits equal tuneforge's within --tol (1e-4) at every unpadded position, and the adapter
            moves the logits by far more than that (else the comparison proves nothing).
        corrupt=1: PEFT loads a copy of the adapter whose first lora_B is scaled by 1.01 while tuneforge's logits
        came from the original; the logits check must then FAIL (shows the comparison can fail).
        Prints one "ok   ..." or "FAIL ..." line per check with what it compared and the max diff; exits 1 if
        any check failed.
    check-merged --model DIR --adapter DIR --merged DIR --inputs FILE --name NAME [--dtype fp32|bf16|fp16]
                 [--shards single|sharded] [--attn eager|sdpa]
        A merged export written by tuneforge (`tuneforge models export --type merged`), loaded by transformers
        alone (AutoModelForCausalLM.from_pretrained, AutoTokenizer), against PEFT's PeftModel(base, adapter):
          - the layout: config.json's torch_dtype, model.safetensors alone or model-0000i-of-0000n shards with an
            index whose weight_map lists every tensor of the shards, generation_config.json, the tokenizer files;
          - every stored tensor has the dtype asked for and equals PEFT's merge_and_unload() (fp32: within 1e-5;
            bf16 / fp16: within one rounding step of PEFT's fp32 merge);
          - fp32 exports: the merged model's fp32 logits equal PeftModel(base, adapter)'s within --tol (1e-4) at
            every unpadded position, and the adapter moves the logits by far more than that;
          - the tokenizer encodes a sample text as the base's does.
    check-eval --model DIR --rows FILE.jsonl --input-template T --completion-template T --result FILE.json
               [--adapter NAME=DIR ...]
        An evaluation job's results (`tuneforge eval get --output json`) against transformers and PEFT on the same
        rows: each example is the template-rendered prompt and completion tokenized as tuneforge's template prompts
        are (prompt + completion with special tokens, the prompt's tokens without a loss, EOS appended), and each
        candidate's loss must equal the token-weighted mean of transformers' loss (the base, then PeftModel(base,
        adapter) for each adapter) within 1e-4, with the same label token count; perplexity = exp(loss); the
        adapters must change the loss (so the comparison is not vacuous).

Every random choice comes from --seed (printed).
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from make_demo_data import write_tokenizer  # noqa: E402  (the demo's character tokenizer, ids 0..105)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

torch.set_num_threads(1)

TOKENIZER_VOCAB = 106  # what write_tokenizer defines: <unk> <s> </s>, printable ASCII, "\n", 7 merges
VOCAB, HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS = 128, 48, 96, 2, 4, 2
BATCH, LENGTH, PAD_ID = 3, 16, 0
PAD_ROWS = {1: 5, 2: 3}  # row -> padded positions at the end

FAMILIES = {
    "llama": ("LlamaConfig", dict(rms_norm_eps=1e-6)),
    # The class defaults put bos/eos/pad at 32000, outside this vocabulary.
    "phi3": ("Phi3Config", dict(pad_token_id=0)),
}


def seeded(seed, purpose):
    """A generator per (seed, purpose), so adding a draw somewhere does not shift every other one."""
    return torch.Generator().manual_seed((seed * 1000003 + sum(map(ord, purpose))) & 0x7FFFFFFF)


def quiet_hf():
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


# ---------------------------------------------------------------------------------------------------------
# make-model
# ---------------------------------------------------------------------------------------------------------

def make_model(args):
    transformers = quiet_hf()
    cls_name, extra = FAMILIES[args.family]
    config = getattr(transformers, cls_name)(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256,
        initializer_range=0.1, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, **extra)
    torch.manual_seed(seeded(args.seed, "model").initial_seed())
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Norm weights away from 1, so a port that confuses w with 1+w (or skips a norm) cannot match.
    gen = seeded(args.seed, "norms")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    os.makedirs(args.dir, exist_ok=True)
    model.save_pretrained(args.dir)
    write_tokenizer(args.dir)

    gen = seeded(args.seed, "inputs")
    ids = torch.randint(3, TOKENIZER_VOCAB, (BATCH, LENGTH), generator=gen)
    mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    for row, n in PAD_ROWS.items():
        mask[row, LENGTH - n:] = 0
    ids = ids.masked_fill(mask == 0, PAD_ID)
    save_file({"input_ids": ids.contiguous(), "attention_mask": mask.contiguous()},
              os.path.join(args.dir, "inputs.safetensors"))
    print(f"make-model {args.family} seed={args.seed}: {type(model).__name__} vocab {VOCAB}, hidden {HIDDEN}, "
          f"{LAYERS} layers, {HEADS} heads / {KV_HEADS} kv -> {args.dir} (+ tokenizer, inputs [{BATCH},{LENGTH}])")


# ---------------------------------------------------------------------------------------------------------
# make-adapter
# ---------------------------------------------------------------------------------------------------------

def make_adapter(args):
    transformers = quiet_hf()
    import peft
    base = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                             attn_implementation="eager")
    targets = args.targets.split(",")
    config = peft.LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout, bias="none",
                             target_modules=targets, use_rslora=args.rslora, task_type="CAUSAL_LM")
    torch.manual_seed(seeded(args.seed, "lora_A").initial_seed())  # PEFT's own lora_A init draws from it
    pm = peft.get_peft_model(base, config)
    params = [p for n, p in pm.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr)
    gen = seeded(args.seed, "batches")
    pm.train()
    losses = []
    for _ in range(args.steps):
        ids = torch.randint(3, TOKENIZER_VOCAB, (4, LENGTH), generator=gen)
        loss = pm(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    zero_b = [n for n, p in pm.named_parameters() if ".lora_B." in n and not bool(p.detach().abs().max() > 0)]
    if zero_b:
        raise SystemExit(f"make-adapter: lora_B still zero after {args.steps} steps: {zero_b[:3]}")
    pm.eval()
    # save_embedding_layers=False: no embedding was trained (and PEFT would look up the base on the Hub).
    pm.save_pretrained(args.out, safe_serialization=True, save_embedding_layers=False)
    print(f"make-adapter seed={args.seed}: PEFT LoRA r={args.r} alpha={args.alpha} rslora={args.rslora} "
          f"dropout={args.dropout} "
          f"targets={targets}, {args.steps} AdamW steps (lr {args.lr}, loss {losses[0]:.4f} -> {losses[-1]:.4f}), "
          f"{len(params)} tensors -> {args.out}")


# ---------------------------------------------------------------------------------------------------------
# check-adapter
# ---------------------------------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.failures = 0

    def check(self, passed, text):
        if not passed:
            self.failures += 1
        print(("ok   " if passed else "FAIL ") + text, flush=True)


def parse_case(text):
    case = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--case: '{item}' is not key=value")
        case[key] = value
    for key in ("adapter", "logits"):
        if key not in case:
            raise SystemExit(f"--case {text}: needs {key}=")
    case.setdefault("name", os.path.basename(case["adapter"].rstrip("/")))
    return case


def disk_name(param_name):
    """named_parameters() name -> the key PEFT writes (the adapter name is dropped)."""
    return param_name.replace(".default.", ".")


def corrupted_copy(adapter_dir, tmp):
    """A copy of the adapter with its first lora_B (by name) scaled by 1.01."""
    out = os.path.join(tmp, "corrupted")
    shutil.copytree(adapter_dir, out)
    path = os.path.join(out, "adapter_model.safetensors")
    tensors = load_file(path)
    victim = sorted(k for k in tensors if ".lora_B." in k)[0]
    tensors[victim] = tensors[victim] * 1.01
    save_file(tensors, path, metadata={"format": "pt"})
    return out, victim


def check_case(rep, case, model_dir, inputs, base_logits, attn, tol, transformers, peft):
    name = case["name"]
    adapter_dir = case["adapter"]
    corrupt = case.get("corrupt") == "1"
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)

    # adapter_config.json says what the job (or make-adapter) asked for.
    if not corrupt:
        written = dict(r=config.get("r"), alpha=config.get("lora_alpha"), rslora=bool(config.get("use_rslora")),
                       targets=sorted(config.get("target_modules") or []))
        wanted = {}
        if "r" in case:
            wanted["r"] = int(case["r"])
        if "alpha" in case:
            wanted["alpha"] = float(case["alpha"])
        if "rslora" in case:
            wanted["rslora"] = case["rslora"] == "1"
        if "targets" in case:
            wanted["targets"] = sorted(case["targets"].split("+"))
        differs = {k: (written[k], v) for k, v in wanted.items() if written[k] != v}
        rep.check(not differs, f"{name}: adapter_config.json r={written['r']} lora_alpha={written['alpha']} "
                               f"use_rslora={written['rslora']} target_modules={written['targets']} "
                               f"(lora_dropout={config.get('lora_dropout')}, inactive at inference)"
                               + (f"; expected {differs}" if differs else ""))

    tmp = tempfile.mkdtemp(prefix="peft-roundtrip-")
    try:
        victim = None
        if corrupt:
            adapter_dir, victim = corrupted_copy(adapter_dir, tmp)
        file_tensors = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
        base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                                 attn_implementation=attn)
        pm = peft.PeftModel.from_pretrained(base, adapter_dir).eval()
        lora = {disk_name(n): p.detach() for n, p in pm.named_parameters() if ".lora_" in n}

        if not corrupt:
            dropped = sorted(set(file_tensors) - set(lora))
            at_init = sorted(set(lora) - set(file_tensors))
            rep.check(not dropped and not at_init and lora,
                      f"{name}: PEFT's LoRA weights are exactly the file's {len(file_tensors)} tensors"
                      + (f"; PEFT did not take {dropped[:4]}" if dropped else "")
                      + (f"; left at PEFT's init (not in the file) {at_init[:4]}" if at_init else ""))
            worst, worst_key = 0.0, ""
            for key in sorted(set(file_tensors) & set(lora)):
                a, b = file_tensors[key], lora[key]
                d = float("inf") if a.shape != b.shape else float((a.double() - b.double()).abs().max())
                if d >= worst:
                    worst, worst_key = d, key
            rep.check(worst == 0.0, f"{name}: PEFT's LoRA values vs adapter_model.safetensors, max abs diff "
                                    f"{worst:.3e} (worst {worst_key}; must be bit-equal)")
            b_norms = {k: float(t.double().norm()) for k, t in file_tensors.items() if ".lora_B." in k}
            smallest = min(b_norms, key=b_norms.get)
            rep.check(b_norms[smallest] > 0, f"{name}: every lora_B of the file is non-zero "
                                             f"(smallest norm {b_norms[smallest]:.3e}, {smallest})")
            r = config.get("r", 8)
            alpha = config.get("lora_alpha", 8)
            expected = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
            scalings = {float(m.scaling["default"]) for _, m in pm.named_modules()
                        if hasattr(m, "scaling") and isinstance(m.scaling, dict) and "default" in m.scaling}
            rep.check(scalings and all(abs(s - expected) <= 1e-12 for s in scalings),
                      f"{name}: PEFT's scaling {sorted(scalings)} = "
                      f"{'alpha/sqrt(r)' if config.get('use_rslora') else 'alpha/r'} = {expected:.6g}")

        with torch.no_grad():
            peft_logits = pm(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                             use_cache=False).logits.float()
        ours = load_file(case["logits"])["logits"]
        valid = inputs["attention_mask"] != 0
        if ours.shape != peft_logits.shape:
            rep.check(False, f"{name}: tuneforge's logits have shape {list(ours.shape)}, PEFT's "
                             f"{list(peft_logits.shape)}")
            return
        diff = float((ours.double() - peft_logits.double()).abs()[valid].max())
        effect = float((peft_logits.double() - base_logits.double()).abs()[valid].max())
        scale = float(peft_logits.abs()[valid].max())
        if corrupt:
            rep.check(diff > tol, f"{name}: negative control: PEFT on a copy with {victim} x1.01 vs tuneforge on "
                                  f"the original: max abs diff {diff:.3e} > tol {tol:.0e} (the comparison sees it)")
            return
        rep.check(diff <= tol, f"{name}: fp32 logits [{','.join(map(str, ours.shape))}] at "
                               f"{int(valid.sum())} unpadded positions, {attn}: tuneforge vs PEFT max abs diff "
                               f"{diff:.3e} (tol {tol:.0e}; |logits| up to {scale:.3f})")
        rep.check(effect > 100 * tol, f"{name}: the adapter moves PEFT's logits by up to {effect:.3e} from the base "
                                      f"(> {100 * tol:.0e}, so the comparison is not vacuous)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_adapter(args):
    transformers = quiet_hf()
    import peft
    peft_logger = __import__("logging").getLogger("peft")
    peft_logger.setLevel("ERROR")
    inputs = load_file(args.inputs)
    base = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                             attn_implementation=args.attn).eval()
    with torch.no_grad():
        base_logits = base(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                           use_cache=False).logits.float()
    rep = Report()
    for text in args.case:
        case = parse_case(text)
        try:
            check_case(rep, case, args.model, inputs, base_logits, args.attn, args.tol, transformers, peft)
        except Exception as e:  # a missing or unreadable adapter is a failed check, not the end of the run
            rep.check(False, f"{case['name']}: cannot be checked: {type(e).__name__}: {e}")
    return 1 if rep.failures else 0


# ---------------------------------------------------------------------------------------------------------
# check-merged
# ---------------------------------------------------------------------------------------------------------

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CONFIG_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def check_merged(args):
    transformers = quiet_hf()
    import peft
    import logging
    logging.getLogger("peft").setLevel("ERROR")
    rep = Report()
    name, merged = args.name, args.merged
    want = TORCH_DTYPES[args.dtype]

    # Layout.
    with open(os.path.join(merged, "config.json")) as f:
        config = json.load(f)
    stored = config.get("torch_dtype", config.get("dtype"))
    rep.check(stored == CONFIG_DTYPES[args.dtype], f"{name}: config.json dtype {stored!r} "
                                                   f"(expected {CONFIG_DTYPES[args.dtype]!r})")
    single = os.path.exists(os.path.join(merged, "model.safetensors"))
    index_path = os.path.join(merged, "model.safetensors.index.json")
    shard_files = sorted(f for f in os.listdir(merged) if f.startswith("model-") and f.endswith(".safetensors"))
    tensors = {}
    if args.shards == "single":
        rep.check(single and not shard_files and not os.path.exists(index_path),
                  f"{name}: one model.safetensors, no shards or index (files: {sorted(os.listdir(merged))})")
        if single:
            tensors = load_file(os.path.join(merged, "model.safetensors"))
    else:
        index = json.load(open(index_path)) if os.path.exists(index_path) else {"weight_map": {}}
        for shard in shard_files:
            for key, value in load_file(os.path.join(merged, shard)).items():
                tensors[key] = value
                if index["weight_map"].get(key) != shard:
                    rep.check(False, f"{name}: index maps {key} to {index['weight_map'].get(key)!r}, found in {shard}")
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        rep.check(not single and len(shard_files) >= 2 and set(index["weight_map"]) == set(tensors)
                  and index.get("metadata", {}).get("total_size") == total,
                  f"{name}: {len(shard_files)} shards + model.safetensors.index.json covering all {len(tensors)} "
                  f"tensors, total_size {index.get('metadata', {}).get('total_size')} (bytes {total})")
    for extra in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        rep.check(os.path.exists(os.path.join(merged, extra)), f"{name}: {extra} is there")

    # Weights against PEFT's own merge.
    base = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                             attn_implementation=args.attn).eval()
    pm = peft.PeftModel.from_pretrained(base, args.adapter).eval()
    inputs = load_file(args.inputs)
    with torch.no_grad():
        peft_logits = pm(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                         use_cache=False).logits.float()
    with pm.disable_adapter(), torch.no_grad():
        base_logits = pm(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                         use_cache=False).logits.float()
    reference = {k: v.detach().clone() for k, v in pm.merge_and_unload().state_dict().items()}
    wrong_dtype = sorted(k for k, t in tensors.items() if t.dtype != want)
    rep.check(tensors and not wrong_dtype, f"{name}: all {len(tensors)} stored tensors are {want}"
                                           + (f"; not: {wrong_dtype[:3]}" if wrong_dtype else ""))
    missing = sorted(set(reference) - set(tensors))
    # A model whose lm_head is tied to the embedding stores it once.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.get("tie_word_embeddings"))]
    extra = sorted(set(tensors) - set(reference))
    rep.check(not missing and not extra, f"{name}: tensor names are transformers' own"
                                         + (f"; missing {missing[:3]}" if missing else "")
                                         + (f"; unexpected {extra[:3]}" if extra else ""))
    worst, worst_key = 0.0, ""
    for key in sorted(set(tensors) & set(reference)):
        ref = reference[key].double()
        got = tensors[key].double()
        if got.shape != ref.shape:
            worst, worst_key = float("inf"), key
            continue
        if args.dtype == "fp32":
            d = float((got - ref).abs().max())
        else:  # one rounding step of the stored dtype, relative to each value
            d = float(((got - ref).abs() / (ref.abs() * torch.finfo(want).eps + 1e-30)).max())
        if d >= worst:
            worst, worst_key = d, key
    bound = 1e-5 if args.dtype == "fp32" else 1.0
    rep.check(worst <= bound, f"{name}: stored weights vs PEFT merge_and_unload(), worst "
                              f"{'abs diff' if args.dtype == 'fp32' else 'diff in rounding steps'} {worst:.3e} "
                              f"(bound {bound:g}; worst {worst_key})")

    # The merged directory as a user loads it.
    merged_model = transformers.AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32,
                                                                     attn_implementation=args.attn).eval()
    valid = inputs["attention_mask"] != 0
    with torch.no_grad():
        logits = merged_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                              use_cache=False).logits.float()
    diff = float((logits.double() - peft_logits.double()).abs()[valid].max())
    effect = float((peft_logits.double() - base_logits.double()).abs()[valid].max())
    tol = args.tol if args.dtype == "fp32" else 0.05
    rep.check(diff <= tol, f"{name}: merged model's logits (loaded by transformers, stored {args.dtype}) vs "
                           f"PeftModel(base, adapter) fp32, {int(valid.sum())} unpadded positions: max abs diff "
                           f"{diff:.3e} (tol {tol:.0e})")
    rep.check(effect > 100 * args.tol, f"{name}: the adapter moves the logits by up to {effect:.3e} "
                                       f"(> {100 * args.tol:.0e}, so the comparison is not vacuous)")
    tokenizer = transformers.AutoTokenizer.from_pretrained(merged)
    base_tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    text = "Q: what is tuneforge?\nA: a fine-tuning backend."
    rep.check(tokenizer(text)["input_ids"] == base_tokenizer(text)["input_ids"],
              f"{name}: the merged directory's tokenizer encodes as the base's")
    return 1 if rep.failures else 0


# ---------------------------------------------------------------------------------------------------------
# check-eval
# ---------------------------------------------------------------------------------------------------------

def render(template, row):
    out = template
    for key, value in row.items():
        out = out.replace("{" + key + "}", str(value))
    return out


def check_eval(args):
    transformers = quiet_hf()
    import peft
    import logging
    logging.getLogger("peft").setLevel("ERROR")
    rep = Report()
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token) if tokenizer.eos_token else None
    examples = []
    with open(args.rows) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            prompt, completion = render(args.input_template, row), render(args.completion_template, row)
            ids = tokenizer(prompt + completion, add_special_tokens=True)["input_ids"]
            prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
            n = 0
            while n < min(len(ids), len(prompt_ids)) and ids[n] == prompt_ids[n]:
                n += 1
            labels = [-100] * n + ids[n:]
            if eos is not None and (not ids or ids[-1] != eos):
                ids, labels = ids + [eos], labels + [eos]
            examples.append((ids, labels))
    with open(args.result) as f:
        job = json.load(f)["job"]
    results = job.get("results", [])
    candidates = [("base", None)] + [tuple(a.split("=", 1)) for a in args.adapter]
    rep.check(len(results) == len(candidates), f"eval: {len(results)} results for {len(candidates)} candidates")

    def loss_of(model):
        total, count = 0.0, 0
        with torch.no_grad():
            for ids, labels in examples:
                logits = model(input_ids=torch.tensor([ids])).logits.float()[0]
                target = torch.tensor(labels)
                total += float(torch.nn.functional.cross_entropy(logits[:-1], target[1:], ignore_index=-100,
                                                                 reduction="sum"))
                count += int((target[1:] != -100).sum())
        return total / count, count

    losses = {}
    for (name, adapter_dir), result in zip(candidates, results):
        base = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                                 attn_implementation="eager").eval()
        model = base if adapter_dir is None else peft.PeftModel.from_pretrained(base, adapter_dir).eval()
        want, count = loss_of(model)
        losses[name] = want
        got = float(result.get("loss", "nan"))
        rep.check(abs(got - want) <= args.tol and int(result.get("label_tokens", result.get("labelTokens", 0))) == count,
                  f"eval {name}: tuneforge loss {got:.6f} vs transformers{'' if adapter_dir is None else ' + PEFT'} "
                  f"{want:.6f} over {count} label tokens (tuneforge: {result.get('label_tokens', result.get('labelTokens'))}); "
                  f"diff {abs(got - want):.2e} (tol {args.tol:.0e})")
        rep.check(abs(float(result.get("perplexity", 0)) - math.exp(got)) <= 1e-6 * math.exp(got),
                  f"eval {name}: perplexity {result.get('perplexity')} = exp(loss)")
        rep.check(result.get("adapter_name", result.get("adapterName", "")) == ("" if adapter_dir is None else name),
                  f"eval {name}: result in its place (adapter_name {result.get('adapter_name', result.get('adapterName', ''))!r})")
    moved = [n for n in losses if n != "base" and abs(losses[n] - losses["base"]) > 100 * args.tol]
    rep.check(len(moved) == len(losses) - 1, f"eval: every adapter changes the loss by more than {100 * args.tol:.0e} "
                                             f"(so the comparison is not vacuous): {losses}")
    return 1 if rep.failures else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("family", choices=sorted(FAMILIES))
    m.add_argument("dir")
    m.add_argument("--seed", type=int, required=True)
    a = sub.add_parser("make-adapter")
    a.add_argument("--model", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--seed", type=int, required=True)
    a.add_argument("--targets", required=True, help="comma-separated module names")
    a.add_argument("--r", type=int, default=8)
    a.add_argument("--alpha", type=float, default=16)
    a.add_argument("--rslora", action="store_true")
    a.add_argument("--steps", type=int, default=3)
    a.add_argument("--lr", type=float, default=1e-2)
    a.add_argument("--dropout", type=float, default=0.1,
                   help="lora_dropout while training (saved in adapter_config.json; no effect at inference)")
    c = sub.add_parser("check-adapter")
    c.add_argument("--model", required=True)
    c.add_argument("--inputs", required=True)
    c.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    c.add_argument("--tol", type=float, default=1e-4)
    c.add_argument("--case", action="append", required=True)
    g = sub.add_parser("check-merged")
    g.add_argument("--model", required=True)
    g.add_argument("--adapter", required=True)
    g.add_argument("--merged", required=True)
    g.add_argument("--inputs", required=True)
    g.add_argument("--name", required=True)
    g.add_argument("--dtype", choices=sorted(TORCH_DTYPES), default="fp32")
    g.add_argument("--shards", choices=["single", "sharded"], default="single")
    g.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    g.add_argument("--tol", type=float, default=1e-4)
    e = sub.add_parser("check-eval")
    e.add_argument("--model", required=True)
    e.add_argument("--rows", required=True)
    e.add_argument("--input-template", required=True)
    e.add_argument("--completion-template", required=True)
    e.add_argument("--result", required=True)
    e.add_argument("--adapter", action="append", default=[], help="NAME=DIR, in the job's order")
    e.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    if args.command == "check-eval":
        sys.exit(check_eval(args))
    if args.command == "check-merged":
        sys.exit(check_merged(args))
    if args.command == "make-model":
        make_model(args)
    elif args.command == "make-adapter":
        make_adapter(args)
    else:
        sys.exit(check_adapter(args))


if __name__ == "__main__":
    main()
