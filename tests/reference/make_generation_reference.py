#!/usr/bin/env python3
"""Writes transformers' generate() outputs for the generated reference cases, for tests/trainer/generation_test.cc.

For every case directory that tests/reference/make_hf_reference.py wrote (the ctest fixture hf_reference_eager), this
loads the model with transformers (fp32, CPU, eager attention unless --attn says otherwise) and decodes one batch of
three prompts of different lengths, left padded, greedily (do_sample=False):

    greedy              the base model
    greedy_lora         the base model with the case's LoRA adapter in lora/ (PeftModel.from_pretrained)
    repetition_penalty  the base model, repetition_penalty=2
    eos                 the base model with eos_token_id = [a token one row generates early, one never generated]:
                        that row stops and is padded with pad_token_id while the others go on

and four sampled runs of the base model (do_sample=True, torch.manual_seed(seed) first; generate() draws with
torch.multinomial from the default CPU generator, which tuneforge's Generate reproduces from the same seed):

    sample_temperature  temperature=0.7, top_k=0
    sample_top_k        top_k=4
    sample_top_p        top_k=0, top_p=0.7
    sample_all          temperature=0.8, top_k=12, top_p=0.9, repetition_penalty

(the tiny models' next-token distributions are nearly flat, so leaving out any one setting changes the draws)

and writes OUT/<case>.json: the prompts, each run's generation settings (as generation_config.json keys), the new
tokens per row exactly as generate() returns them (sequences after the prompt, finished rows padded), why each row
stopped, and the sha256 of the model and adapter files it was made from.

Near-ties: a tiny random model can put two tokens within rounding of each other, where the argmax of two correct
implementations may differ. For every decision of every run this computes the margin between the best and the second
best processed score; prompts are redrawn (up to --attempts times) until every margin is at least --margin, and the
smallest margin is recorded. Each run is also decoded with use_cache=False, which must give the same tokens. A
sampled draw is torch.multinomial's race argmax(p / q), q ~ Exp(1): its q is replayed from the generator, and the run
is kept only where every draw wins by at least DRAW_MARGIN (log scale) over every token that could take its place,
counting those that top-k or top-p drop or keep by a hair (draw_margin).

The repetition penalty: transformers penalizes every id in the padded input_ids, so the pad id counts as "seen" in a
left-padded row; tuneforge penalizes a row's own tokens only. The run is kept only where both agree (checked with a
plain no-cache loop that implements tuneforge's rule), so the reference is transformers' output either way. The
sampled run with a penalty is kept only where another pad id (so another "seen" id in the padded rows) draws the same
tokens and where its draws, replayed with tuneforge's rule, give generate()'s tokens.

Usage: make_generation_reference.py --reference DIR --out DIR [--seed N] [--cases a,b] [--attn eager|sdpa]
Without --seed a random seed is drawn and printed first, with the command that replays it.
"""

import argparse
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

CASES = ["llama", "llama_mha", "llama3_rope", "mistral", "qwen2", "phi3", "phi3_longrope", "gemma"]
# Real prompt lengths of the three rows. The longest (9) is longer than mistral's window (5) and than phi3_longrope's
# original_max_position_embeddings (6), so longrope uses long_factor from the prompt on: transformers' Phi-3 drops
# its cache at the step that first crosses that length but then feeds only the last token (see
# make_hf_reference.py, hf_generate_switch_step), so its cached output there is not the model's.
PROMPT_LENGTHS = [9, 4, 7]
MAX_NEW, PAD_ID, FIRST_ID = 12, 0, 3
PENALTY = 2.0
# Sampled runs: name and the settings over do_sample=True (each also gets its own seed).
# A sampled run is kept when no draw is closer than DRAW_MARGIN to going another way (draw_margin); a token counts as
# one that top-k or top-p might keep or drop under rounding within these distances of the cut (scores, probabilities).
DRAW_MARGIN, SCORE_EDGE, CUMULATIVE_EDGE = 1e-4, 1e-4, 1e-5
SAMPLED = [("sample_temperature", dict(temperature=0.7, top_k=0)),
           ("sample_top_k", dict(top_k=4)),
           ("sample_top_p", dict(top_k=0, top_p=0.7)),
           ("sample_all", dict(temperature=0.8, top_k=12, top_p=0.9, repetition_penalty=PENALTY))]


def derive_seed(base, case, purpose):
    digest = hashlib.sha256(f"{base}/{case}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", required=True, help="the folder of make_hf_reference.py's cases")
    p.add_argument("--out", required=True, help="output folder; OUT/<case>.json is (re)written")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: random, printed)")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    p.add_argument("--margin", type=float, default=1e-3,
                   help="smallest top-1 / top-2 score gap accepted at any greedy decision (default 1e-3)")
    p.add_argument("--attempts", type=int, default=100, help="prompt draws to try per case before giving up")
    args = p.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown or not args.cases:
        p.error(f"unknown case(s) {unknown}; choose from {','.join(CASES)}")
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    return args


args = parse_args()
print(f"seed={args.seed}", flush=True)
print("replay: " + " ".join([sys.executable, sys.argv[0], "--reference", args.reference, "--out", args.out,
                             "--seed", str(args.seed), "--cases", ",".join(args.cases), "--attn", args.attn,
                             "--margin", str(args.margin)]), flush=True)

import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402

transformers.logging.set_verbosity_error()
torch.set_num_threads(1)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(case_dir, adapter):
    model = transformers.AutoModelForCausalLM.from_pretrained(case_dir, attn_implementation=args.attn,
                                                              dtype=torch.float32)
    # Only what each run passes applies: no EOS or sampling defaults from the saved generation_config.json.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = PAD_ID
    if adapter:
        model = peft.PeftModel.from_pretrained(model, os.path.join(case_dir, "lora"))
    return model.eval()


def left_padded(prompts, pad_id=PAD_ID):
    longest = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, longest - len(p):] = torch.tensor(p)
        mask[r, longest - len(p):] = 1
    return ids, mask


@torch.no_grad()
def hf_generate(model, prompts, settings, use_cache, logits=False):
    """generate() with `settings` (generation_config.json keys, plus tuneforge's `seed` for sampling); new tokens
    [B, steps] and processed scores [B, steps, V] (with logits=True the raw logits instead). The prompts are left
    padded with pad_token_id."""
    ids, mask = left_padded(prompts, settings.get("pad_token_id", PAD_ID))
    kwargs = dict(settings)
    if "eos_token_id" not in kwargs:
        kwargs["eos_token_id"] = None
    seed = kwargs.pop("seed", None)
    if seed is not None:
        torch.manual_seed(seed)
    out = model.generate(input_ids=ids, attention_mask=mask, use_cache=use_cache, return_dict_in_generate=True,
                         output_scores=not logits, output_logits=logits, **kwargs)
    return out.sequences[:, ids.shape[1]:], torch.stack(out.logits if logits else out.scores, dim=1)


@torch.no_grad()
def sampled_generate(model, prompts, settings):
    """hf_generate with its cache for a sampled run, also returning its raw logits [B, steps, V] and the Exp(1)
    variates of every torch.multinomial call ([B, V] per step), replayed from the generator state the call began
    with: torch.multinomial(probs, 1) picks argmax(probs / q) with q = empty_like(probs).exponential_(1)."""
    draws, real = [], torch.multinomial

    def recording(probs, *a, **kw):
        state = torch.get_rng_state()
        picked = real(probs, *a, **kw)
        after = torch.get_rng_state()
        torch.set_rng_state(state)
        draws.append(torch.empty_like(probs).exponential_(1))
        torch.set_rng_state(after)
        return picked

    torch.multinomial = recording
    try:
        new, logits = hf_generate(model, prompts, settings, use_cache=True, logits=True)
    finally:
        torch.multinomial = real
    return new, logits, draws


def draw_margin(prompts, settings, new, logits, draws):
    """How far every draw of a sampled run is from going another way under rounding, as the smallest gap (log scale)
    between the winner's race entry log(p) - log(q) and any token that could take its place: another kept token, or
    one that top-k or top-p dropped by less than SCORE_EDGE / CUMULATIVE_EDGE (0 when the winner itself sits that
    close to being dropped). The processing is tuneforge's (a row's own tokens are penalized); -inf when the replayed
    draws do not give generate()'s tokens."""
    penalty, temperature = settings.get("repetition_penalty", 1.0), settings.get("temperature", 1.0)
    top_k, top_p = settings.get("top_k", 50), settings.get("top_p", 1.0)
    inf = float("inf")
    worst = inf
    for r, prompt in enumerate(prompts):
        seen = set(prompt)
        for t, q in enumerate(draws):
            s = logits[r, t].float().clone()
            if penalty != 1.0:
                idx = torch.tensor(sorted(seen))
                v = s[idx]
                s[idx] = torch.where(v < 0, v * penalty, v / penalty)
            if temperature != 1.0:
                s = s / temperature
            kept = torch.ones_like(s, dtype=torch.bool)
            edge = torch.zeros_like(kept)
            if 0 < top_k < s.numel():
                kth, first_dropped = s.topk(top_k + 1).values[-2:]
                kept &= s >= kth
                if kth - first_dropped < SCORE_EDGE:  # the cut is that close: who is k-th may change
                    edge |= (s >= first_dropped - SCORE_EDGE) & (s <= kth + SCORE_EDGE)
            if top_p < 1.0:
                masked = s.masked_fill(~kept, -inf)
                sorted_scores, order = masked.sort()
                cumulative = sorted_scores.softmax(-1).cumsum(-1)
                remove_sorted = cumulative <= 1 - top_p
                remove_sorted[-1] = False
                remove, near = torch.zeros_like(kept), torch.zeros_like(kept)
                remove[order] = remove_sorted
                near[order] = (cumulative - (1 - top_p)).abs() < CUMULATIVE_EDGE
                kept &= ~remove
                edge |= near & (masked > -inf)
            race = s - q[r].log()
            winner = int(race.masked_fill(~kept, -inf).argmax())
            if winner != int(new[r, t]):  # transformers' pad-id penalty, or a torch that samples otherwise
                return -inf
            rivals = race.masked_fill(~(kept | edge), -inf)
            rivals[winner] = -inf
            margin = 0.0 if edge[winner] else float(race[winner] - rivals.max())
            worst = min(worst, margin)
            seen.add(winner)
    return worst


@torch.no_grad()
def own_penalty_loop(model, prompts, penalty):
    """Greedy decoding without a cache where a row's repetition penalty covers its own tokens only (no pad id)."""
    ids, mask = left_padded(prompts)
    seen = [set(p) for p in prompts]
    new = []
    for _ in range(MAX_NEW):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits[:, -1].float()
        for r in range(len(prompts)):
            idx = torch.tensor(sorted(seen[r]))
            s = logits[r, idx]
            logits[r, idx] = torch.where(s < 0, s * penalty, s / penalty)
        nxt = logits.argmax(-1)
        for r in range(len(prompts)):
            seen[r].add(int(nxt[r]))
        new.append(nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(nxt)[:, None]], 1)
    return torch.stack(new, 1)


def finish_reasons(new, eos):
    """Per row: 'eos' when it generated an EOS id (then pad follows), else 'length'; and the steps it decided."""
    reasons, steps = [], []
    for row in new.tolist():
        hit = next((i for i, t in enumerate(row) if t in eos), None)
        reasons.append("eos" if hit is not None else "length")
        steps.append(len(row) if hit is None else hit + 1)
    return reasons, steps


def min_margin(scores, steps):
    """Smallest top-1 minus top-2 processed score over every decision each row made itself."""
    top2 = scores.topk(2, dim=-1).values
    gaps = top2[..., 0] - top2[..., 1]
    return min(float(gaps[r, :steps[r]].min()) for r in range(gaps.shape[0]))


def pick_eos(greedy_new):
    """An id that row 1 generates early (so it stops) and row 0 never generates (so the batch goes on), plus an id
    nobody generates (EOS lists are honoured as a whole)."""
    rows = greedy_new.tolist()
    for r in (1, 2):
        for step in range(2, MAX_NEW - 3):
            t = rows[r][step]
            if t not in rows[0] and t not in rows[r][:step]:
                everything = {x for row in rows for x in row}
                unused = next(x for x in range(FIRST_ID, 10**6) if x not in everything)
                return [t, unused]
    return None


def attempt(case, vocab, seed, base_seed, base, lora):
    gen = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(FIRST_ID, vocab, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]
    greedy = dict(max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=PAD_ID)
    plans = [("greedy", False, dict(greedy)), ("greedy_lora", True, dict(greedy)),
             ("repetition_penalty", False, dict(greedy, repetition_penalty=PENALTY))]
    runs, margins = [], []
    for name, adapter, settings in plans:
        model = lora if adapter else base
        new, scores = hf_generate(model, prompts, settings, use_cache=True)
        uncached, _ = hf_generate(model, prompts, settings, use_cache=False)
        reasons, steps = finish_reasons(new, [])
        margin = min_margin(scores, steps)
        if name == "repetition_penalty" and not torch.equal(own_penalty_loop(model, prompts, PENALTY), new):
            return None, f"{name}: transformers' pad-id penalty changes the output"
        runs.append(dict(name=name, adapter=adapter, generation_config=settings, new_tokens=new.tolist(),
                         finish_reasons=reasons, min_top2_margin=margin,
                         hf_use_cache_false_agrees=torch.equal(new, uncached)))
        margins.append(margin)
        if not torch.equal(new, uncached):
            return None, f"{name}: transformers with and without its cache disagree"
    eos = pick_eos(torch.tensor(runs[0]["new_tokens"]))
    if eos is None:
        return None, "no token suits as an EOS that stops one row only"
    settings = dict(greedy, eos_token_id=eos)
    new, scores = hf_generate(base, prompts, settings, use_cache=True)
    uncached, _ = hf_generate(base, prompts, settings, use_cache=False)
    reasons, steps = finish_reasons(new, eos)
    runs.append(dict(name="eos", adapter=False, generation_config=settings, new_tokens=new.tolist(),
                     finish_reasons=reasons, min_top2_margin=min_margin(scores, steps),
                     hf_use_cache_false_agrees=torch.equal(new, uncached)))
    margins.append(runs[-1]["min_top2_margin"])
    if "eos" not in reasons or "length" not in reasons:
        return None, f"eos run: rows finished {reasons}; want one by EOS and one by length"
    if min(margins) < args.margin:
        return None, f"smallest top-2 margin {min(margins):.2e} < {args.margin:g}"
    for name, extra in SAMPLED:
        settings = dict(greedy, do_sample=True, seed=derive_seed(base_seed, case, name), **extra)
        new, logits, draws = sampled_generate(base, prompts, settings)
        uncached, _ = hf_generate(base, prompts, settings, use_cache=False)
        if not torch.equal(new, uncached):
            return None, f"{name}: transformers with and without its cache drew different tokens"
        margin = draw_margin(prompts, settings, new, logits, draws)
        if margin == -float("inf"):
            return None, f"{name}: replaying the draws with tuneforge's penalty rule gives other tokens"
        if margin < DRAW_MARGIN:
            return None, f"{name}: a draw is {margin:.1e} from going another way"
        if "repetition_penalty" in extra:
            other_pad, _ = hf_generate(base, prompts, dict(settings, pad_token_id=PAD_ID + 1), use_cache=True)
            if not torch.equal(new, other_pad):
                return None, f"{name}: transformers' pad-id penalty changes the draws"
        runs.append(dict(name=name, adapter=False, generation_config=settings, new_tokens=new.tolist(),
                         finish_reasons=["length"] * len(prompts), min_draw_margin=margin,
                         hf_use_cache_false_agrees=True))
    return dict(prompts=prompts, runs=runs), ""


def make_case(case):
    case_dir = os.path.join(args.reference, case)
    if not os.path.exists(os.path.join(case_dir, "inputs.json")):
        raise SystemExit(f"{case_dir} is not a reference case (run make_hf_reference.py first)")
    base = load(case_dir, adapter=False)
    lora = load(case_dir, adapter=True)
    vocab = base.config.vocab_size
    reasons = []
    for n in range(args.attempts):
        doc, why = attempt(case, vocab, derive_seed(args.seed, case, f"prompts{n}"), args.seed, base, lora)
        if doc is not None:
            break
        reasons.append(why)
    else:
        raise SystemExit(f"{case}: no prompts in {args.attempts} draws gave clear decisions: {reasons[-3:]}")
    doc = dict(case=case, attn_implementation=args.attn, pad_token_id=PAD_ID, max_new_tokens=MAX_NEW, **doc,
               prompt_draw=dict(seed=args.seed, attempt=n, rejected=reasons,
                                derivation="sha256(f'{base}/{case}/prompts{attempt}')[:4] little-endian & 0x7fffffff"),
               files={"model.safetensors": sha256_of(os.path.join(case_dir, "model.safetensors")),
                      "lora/adapter_model.safetensors": sha256_of(
                          os.path.join(case_dir, "lora", "adapter_model.safetensors"))},
               versions=dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__),
               notes=["new_tokens are generate()'s sequences after the (left-padded) prompt; rows that finished are "
                      "padded with pad_token_id up to the longest row",
                      "position_ids are generate()'s: cumsum(attention_mask) - 1, padding at 0"])
    with open(os.path.join(args.out, f"{case}.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return doc


def main():
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
          f"attn {args.attn}, reference {args.reference}, out {args.out}", flush=True)
    for case in args.cases:
        t0 = time.time()
        doc = make_case(case)
        margin = min(r["min_top2_margin"] for r in doc["runs"] if "min_top2_margin" in r)
        draw = min(r["min_draw_margin"] for r in doc["runs"] if "min_draw_margin" in r)
        eos = next(r for r in doc["runs"] if r["name"] == "eos")
        print(f"{case:14s} {time.time() - t0:5.1f}s  prompts drawn {doc['prompt_draw']['attempt'] + 1}x  "
              f"smallest top-2 margin {margin:.2e}  draw margin {draw:.2e}  "
              f"eos run rows: {','.join(eos['finish_reasons'])}", flush=True)
    print(f"done: {len(args.cases)} case(s) in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
