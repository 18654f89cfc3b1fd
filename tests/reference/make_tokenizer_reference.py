#!/usr/bin/env python3
"""Builds tokenizer.json files with the real `tokenizers` library and records what it and transformers make of
them, for tests/trainer/tokenizer_upstream_test.cc.

Every tokenizer here is made now: vocabularies and merges are trained with `tokenizers`' BpeTrainer on a generated
multilingual corpus, then assembled into the layouts the model families ship (byte-level BPE as Llama 3 and
Qwen 2.5, SentencePiece-style BPE with byte fallback as Llama 2, Mistral, Phi-3 and Gemma), with added and
special tokens in every lstrip / rstrip / single_word / normalized / special combination. Each file is saved by
the library and loaded back from disk before any reference is taken, so the references describe exactly the file
the C++ test reads.

Written under --out DIR:

    DIR/manifest.json                  seed, library versions, the tokenizers (name, what they cover, expect)
    DIR/<name>/tokenizer.json          one per tokenizer
    DIR/cases.jsonl                    one line per (tokenizer, text): ids with and without add_special_tokens,
                                       decode(skip_special_tokens=False/True) of the ids with special tokens
    DIR/decode_cases.jsonl             random id sequences (broken UTF-8, lone byte tokens, specials anywhere)
                                       and tokenizers' decode of them
    DIR/chat/<family>/tokenizer.json, tokenizer_config.json
                                       chat templates written for this test after the published ones' logic
    DIR/chat_cases.jsonl               apply_chat_template(tokenize=False) of each conversation, with and
                                       without add_generation_prompt (or the template's error message), and
                                       tokenizers' ids of the rendered text

`expect` is "match" for tokenizers built only from components tuneforge supports, and "match_or_refuse" for
ones that use a component it does not (NFKC, Digits, Punctuation, ...): those must either be refused when
loaded, with an error naming the component, or match like the others.

Usage:
    make_tokenizer_reference.py --out DIR [--seed N]

Without --seed a random seed is drawn; it is printed first with the command that replays it. The same seed
gives the same files with the same library versions.
"""

import argparse
import json
import os
import random
import shutil
import sys
import time
import unicodedata

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
import tokenizers

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPIECE = "\u2581"

# ---------------------------------------------------------------------------------------------------------
# The corpus: sentences written for this file, mixed at random with numbers, emoji, code and odd whitespace.
# ---------------------------------------------------------------------------------------------------------

SENTENCES = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "I'm sure they'll say it's fine, but we've seen what you'd do and I'D rather not.",
        "Fine-tuning a language model needs clean data, a sensible learning rate and patience.",
        "She sells sea shells by the sea shore; the shells she sells are surely sea shells.",
        "Don't panic! Read the manual, then read it again...",
        "HTTP/1.1 200 OK -- content-length: 1024 bytes (approximately).",
        "Tokenizers split text into pieces: words, sub-words, bytes.",
    ],
    "de": [
        "Größenwahn ist keine Straßenbahn, aber Übermut tut selten gut.",
        "Können Sie mir bitte sagen, wo der Bahnhof ist?",
        "Die Donaudampfschifffahrtsgesellschaft beschäftigt über 300 Mitarbeiter.",
        "Äpfel, Öl und Übungen: schön müßig.",
    ],
    "fr": [
        "L'élève a déjà mangé à l'hôtel près de la forêt.",
        "Où est la bibliothèque ? Ça dépend… peut-être là-bas.",
        "« Bonjour », dit-il, « c'est l'été, n'est-ce pas ? »",
        "Les cœurs façonnés par l'œuvre d'Ève.",
    ],
    "ru": [
        "Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "Обучение модели заняло три часа и двенадцать минут.",
        "Ёжик в тумане — любимый мультфильм многих людей.",
    ],
    "zh": [
        "我们今天去公园散步，天气非常好。",
        "机器学习模型需要大量的数据进行训练。",
        "你好，世界！这是一个测试句子。",
        "北京欢迎你，上海也欢迎你。",
    ],
    "ja": [
        "東京は日本の首都です。",
        "わたしはコーヒーが好きです、でもお茶も飲みます。",
        "カタカナとひらがなと漢字を混ぜて書きます。",
        "今日は良い天気ですね！",
    ],
    "ar": [
        "مرحبا بالعالم، كيف حالك اليوم؟",
        "تعلم الآلة مجال مثير للاهتمام.",
        "اللغة العربية جميلة جدا.",
    ],
    "hi": [
        "नमस्ते दुनिया, आप कैसे हैं?",
        "मशीन लर्निंग एक रोचक विषय है।",
        "हिन्दी में लिखना आसान है।",
    ],
    "ko": ["안녕하세요, 만나서 반갑습니다.", "한국어 문장을 토큰으로 나눕니다."],
    "el": ["Γειά σου Κόσμε! Τι κάνεις;"],
    "code": [
        "def square(x):\n    return x ** 2  # TODO: vectorise\n",
        "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
        '{"key": [1, 2.5, null], "ok": true, "nested": {"a": "b"}}',
        "<div class=\"box\">&nbsp;&lt;tag&gt;</div>",
        "if x != y and not z:\n        print(f\"{x=} {y!r}\")\n\n\n",
        "std::vector<int32_t> ids; ids.push_back(0x7fffffff);",
        "$ ls -la /usr/local/bin | grep -v '^d' > out.txt 2>&1",
        "    indented    with    spaces\t\tand\ttabs   ",
    ],
}

NUMBERS = ["0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "-273.15", "1,000,000", "1e-9",
           "2024-03-15", "12:30:45", "0x1F", "+49 30 1234567", "50%", "$9.99", "€12,50", "½", "²³", "١٢٣",
           "१२३४", "Ⅻ", "①②", "０１２３"]
EMOJI = ["🙂", "👍🏽", "👩‍👩‍👧", "🇩🇪", "❤️", "🤖", "🎉🎉", "☕", "😀😃😄", "✅", "🧑‍💻"]
WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\n\n\n", "\u00a0", "\u3000", "\u2009",
              "\u0085", "\u2028", "\u200b", "\ufeff", " \t ", "\r", "\u180e", "\x0b\x0c", "\u1680"]
# Ranges of assigned code points (old enough for every Unicode table involved) to draw odd characters from.
CHAR_RANGES = [(0x21, 0x7E), (0xA1, 0xFF), (0x100, 0x17F), (0x391, 0x3C9), (0x410, 0x44F), (0x5D0, 0x5EA),
               (0x621, 0x64A), (0x905, 0x939), (0xE01, 0xE2E), (0x3041, 0x3096), (0x30A1, 0x30FA),
               (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0x1F600, 0x1F64F), (0x300, 0x36F), (0x2000, 0x206F),
               (0xFF01, 0xFF5E)]


def random_fragment(rng):
    kind = rng.random()
    if kind < 0.55:
        lang = rng.choice(sorted(SENTENCES))
        s = rng.choice(SENTENCES[lang])
        if rng.random() < 0.4:  # a piece of the sentence
            words = s.split(" ")
            a = rng.randrange(len(words))
            s = " ".join(words[a:a + rng.randint(1, 5)])
        return s
    if kind < 0.68:
        return rng.choice(NUMBERS)
    if kind < 0.76:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3)))
    if kind < 0.86:
        return "".join(chr(rng.randint(*rng.choice(CHAR_RANGES))) for _ in range(rng.randint(1, 8)))
    if kind < 0.93:
        return str(rng.randint(0, 10 ** rng.randint(1, 15)))
    return rng.choice(WHITESPACE)


def random_text(rng):
    parts = [random_fragment(rng) for _ in range(rng.randint(1, 5))]
    seps = [rng.choice([" ", " ", " ", "", "\n"] + WHITESPACE) for _ in parts]
    text = "".join(p + s for p, s in zip(parts, seps))[: rng.randint(1, 400)]
    r = rng.random()
    if r < 0.1:
        text = text.upper()
    elif r < 0.2:
        text = unicodedata.normalize("NFD", text)  # decomposed accents, for the NFC normalizer
    elif r < 0.25:
        text = rng.choice(WHITESPACE) + text + rng.choice(WHITESPACE)
    return text


FIXED_TEXTS = [
    "", " ", "  ", "\n", "\t", "\r\n", "\n\n\n", "a", "Hello", " Hello", "Hello ", "  Hello  world  ",
    "Hello world", "hello\nworld", "line one\r\nline two\r\n", "tab\tseparated\tvalues",
    "don't won't I'm you're they've she'll he'd IT'S WE'LL", "'s 's's", "it'ſ IT'Ş he'Ll", "a  b   c    d",
    "1234567890", "3.14159265358979", "12 345 678,90", "x=1+2*3/4-5", "!!!???...", "....", "—–-",
    "café", "cafe\u0301", "e\u0301\u0302", "Å Å Å", "ﬁ ﬂ ﬀ", "①②③", "２０２４年", "ｶﾀｶﾅ", "\u212b",
    "中文English混合русский", "日本語のテキストです。", "한국어", "עברית", "🙂🙂🙂", "👩‍👩‍👧 👍🏽 🇩🇪",
    "\u00a0nbsp\u00a0", "\u3000ideographic\u3000space", "a\u0085b", "a\u2028b", "zero\u200bwidth", "\ufeffbom",
    "<s>", "</s>", "<unk>", "<0x41>", "▁", "▁▁hello", "hello▁world", " ▁ ", "Ġ", "ĠĠ", "Ċ",
    "    def f():\n        pass\n", "\n\n\n\n\n\n", "                ", "a" * 300, "ab" * 150,
]


def make_corpus(rng, n):
    lines = []
    for lang, sents in SENTENCES.items():
        lines.extend(sents * 8)
    while len(lines) < n:
        lines.append(random_text(rng))
    rng.shuffle(lines)
    return lines


# ---------------------------------------------------------------------------------------------------------
# Training and assembling tokenizers.
# ---------------------------------------------------------------------------------------------------------

def train(corpus, pre_tokenizer, vocab_size, normalizer=None, limit_alphabet=None, initial_alphabet=()):
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    kwargs = dict(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                  initial_alphabet=list(initial_alphabet))
    if limit_alphabet is not None:
        kwargs["limit_alphabet"] = limit_alphabet
    tok.train_from_iterator(corpus, trainers.BpeTrainer(**kwargs))
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return [t for t, _ in vocab], merges


def bpe(vocab_list, merges, **kwargs):
    return models.BPE(vocab={t: i for i, t in enumerate(vocab_list)}, merges=list(merges), dropout=None, **kwargs)


def template(bos, bos_id):
    return processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1",
                                         special_tokens=[(bos, bos_id)])


def sp_vocab(trained, byte_range=range(256)):
    """SentencePiece layout: <unk>, <s>, </s>, the byte tokens, then what the trainer learned."""
    head = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in byte_range]
    seen = set(head)
    return head + [t for t in trained if t not in seen]


def sp_decoder(strip=True):
    steps = [decoders.Replace(SPIECE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if strip:
        steps.append(decoders.Strip(" ", 1, 0))
    return decoders.Sequence(steps)


def feature_tokens():
    """Added tokens in every option combination; the ids come from the library (after the vocabulary)."""
    return [
        ("special", [AddedToken("<|special|>", special=True, normalized=False),
                     AddedToken("<|lstrip|>", special=True, normalized=False, lstrip=True),
                     AddedToken("<|rstrip|>", special=True, normalized=False, rstrip=True),
                     AddedToken("<|both|>", special=True, normalized=False, lstrip=True, rstrip=True),
                     AddedToken("<|word|>", special=True, normalized=False, single_word=True),
                     AddedToken("<a>", special=True, normalized=False),
                     AddedToken("<a><b>", special=True, normalized=False),
                     AddedToken("<SN>", special=True, normalized=True)]),
        ("normal", [AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False, rstrip=True),
                    AddedToken("[WORD]", special=False, normalized=False, single_word=True),
                    AddedToken("wörd", special=False, normalized=True, single_word=True),
                    AddedToken("New York", special=False, normalized=True),
                    AddedToken("<norm>", special=False, normalized=True),
                    AddedToken("rm>!", special=False, normalized=False),
                    AddedToken("\n\n", special=False, normalized=False),
                    AddedToken("  ", special=False, normalized=False)]),
    ]


# Texts where the options and the two matching passes (raw tokens first, then normalized ones in normalized
# text) decide what matches.
FEATURE_TEXTS = [
    "<norm>!", "x<norm>!y", "<norm>", " <norm> ", "<a><b>", "<a><b><a>", "<a> <b>", "<a><b", "New York City",
    "New  York", "new york", "NewYork", " New York ", "wörd wörd", "wörds", "a wörd b", "wörd", "[WORD] [WORD]",
    "x[WORD]", "[WORD]x", "_[WORD]", "[WORD]_", "1[WORD]2", "é[WORD]", "[WORD]\u0301", "🙂[WORD]🙂", "—[WORD]—",
    "。[WORD]。", "Ⓐ[WORD]", "\u200d[WORD]", "a <|lstrip|> b", "a\u00a0\u3000<|lstrip|>",
    "<|rstrip|>\u0085\u2028x", "a  <|both|>  b", "<|both|><|both|>", "  <|both|>", "<|word|>", "x<|word|>",
    " <|word|> ", "<think>\n</think>\n\nok",
    "</think>   \t\n next", "a\n\n\nb", "a    b", "<SN>", "a <SN> b", "a<SN>b", "▁<SN>", "<|special|><|special|>",
]


def add_feature_tokens(tok):
    for kind, tokens in feature_tokens():
        if kind == "special":
            tok.add_special_tokens(tokens)
        else:
            tok.add_tokens(tokens)


class Built:
    """A tokenizer, what it covers, the added tokens to put in its texts, and what tuneforge must do with it."""

    def __init__(self, name, tok, covers, specials, expect="match", refuse_hint=None, string_merges=False,
                 edit_json=None):
        self.name, self.tok, self.covers, self.specials = name, tok, covers, specials
        self.expect, self.refuse_hint, self.string_merges = expect, refuse_hint, string_merges
        self.edit_json = edit_json  # changes the saved file (the library then loads the edited one)


def build_tokenizers(corpus):
    out = []
    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()

    # --- byte-level BPE, Llama 3 layout (ignore_merges, <|begin_of_text|> from the post-processor) ---
    llama3_pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    vocab, merges = train(corpus, llama3_pre, 1800, initial_alphabet=byte_alphabet)
    # Whole words in the vocabulary that no merge sequence reaches: only ignore_merges finds them.
    table = bytes_to_unicode()
    extra = ["".join(table[b] for b in w.encode("utf-8"))
             for w in [" quick", " language", " patience", "Größenwahn", " bibliothèque", " обучение",
                       " tokenizers", " Donaudampfschifffahrtsgesellschaft", "机器学习", " 🙂🙂"]]
    extra = [e for e in extra if e not in vocab]
    llama3_vocab = vocab + extra
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<|python_tag|>"]
    for ignore_merges, name in ((True, "llama3"), (False, "byte_level_merges")):
        tok = Tokenizer(bpe(llama3_vocab, merges, ignore_merges=ignore_merges))
        tok.pre_tokenizer = llama3_pre
        tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
        bos_id = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            template("<|begin_of_text|>", bos_id)])
        out.append(Built(name, tok, "byte-level BPE as Llama 3: Split(Llama 3 regex, Isolated) + ByteLevel "
                         f"(use_regex false), ignore_merges {str(ignore_merges).lower()} (with whole words in the "
                         "vocabulary that no merge reaches), Sequence[ByteLevel, TemplateProcessing] post-processor, "
                         "ByteLevel decoder", specials))

    # --- byte-level BPE, Qwen 2.5 layout (NFC, no BOS) with every added-token option ---
    qwen_pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    vocab, merges = train(corpus, qwen_pre, 1500, normalizer=normalizers.NFC(), initial_alphabet=byte_alphabet)
    tok = Tokenizer(bpe(vocab, merges))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = qwen_pre
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    qwen_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in qwen_specials])
    add_feature_tokens(tok)
    out.append(Built("qwen2", tok, "byte-level BPE as Qwen 2.5: NFC, Split(Qwen regex) + ByteLevel, ByteLevel "
                     "post-processor and decoder; added tokens with every lstrip/rstrip/single_word/normalized/"
                     "special option", qwen_specials + all_feature_contents()))

    # --- GPT-2 style ByteLevel with its built-in regex and add_prefix_space ---
    gpt2_pre = pre_tokenizers.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    vocab, merges = train(corpus, gpt2_pre, 1200, initial_alphabet=byte_alphabet)
    tok = Tokenizer(bpe(vocab, merges))
    tok.pre_tokenizer = gpt2_pre
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("<sep>", special=False, normalized=False, lstrip=True, rstrip=True)])
    out.append(Built("gpt2_prefix_space", tok, "ByteLevel pre-tokenizer with its built-in regex and "
                     "add_prefix_space true (applied after every added token)", ["<|endoftext|>", "<sep>"]))

    # --- SentencePiece-style BPE: trained on Metaspace pieces, reassembled as the families ship it ---
    sp_pre = pre_tokenizers.Metaspace(replacement=SPIECE, prepend_scheme="always", split=True)
    sp_trained, sp_merges = train(corpus, sp_pre, 1600, limit_alphabet=180)
    full_vocab = sp_vocab(sp_trained)

    # Llama 2: Prepend + Replace normalizer, no pre-tokenizer, byte fallback, merges as "a b" strings.
    tok = Tokenizer(bpe(full_vocab, sp_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE), normalizers.Replace(" ", SPIECE)])
    tok.decoder = sp_decoder()
    tok.post_processor = template("<s>", 1)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    out.append(Built("llama2", tok, "SentencePiece-style BPE as Llama 2: Sequence[Prepend, Replace] normalizer, "
                     "no pre-tokenizer, byte_fallback + fuse_unk, merges written as \"a b\" strings, "
                     "Replace/ByteFallback/Fuse/Strip decoder, <s> template", ["<unk>", "<s>", "</s>"],
                     string_merges=True))

    # Added-token ids in the file that the library does not use: it numbers added tokens itself (model id for
    # content the vocabulary has, then the next ids after the vocabulary, in file order; a repeated token keeps
    # its first id and takes the last options).
    def renumber(data):
        for entry in data["added_tokens"]:
            entry["id"] = {"<s>": 7, "<|im_start|>": 32000, "<|im_end|>": 32001}.get(entry["content"], entry["id"])
        data["added_tokens"].append(dict(data["added_tokens"][-1], id=5, lstrip=True))  # <|im_end|> again
    tok = Tokenizer(bpe(full_vocab, sp_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE), normalizers.Replace(" ", SPIECE)])
    tok.decoder = sp_decoder()
    tok.post_processor = template("<s>", 1)
    renumbered = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in renumbered])
    out.append(Built("llama2_renumbered", tok, "Llama 2 layout whose added_tokens ids in the file are wrong or "
                     "repeated (the library assigns its own)", renumbered, edit_json=renumber))

    # Phi-3: the Llama 2 layout plus chat tokens with rstrip, and every added-token option.
    tok = Tokenizer(bpe(full_vocab, sp_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE), normalizers.Replace(" ", SPIECE)])
    tok.decoder = sp_decoder()
    tok.post_processor = template("<s>", 1)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    phi_tokens = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False, rstrip=s != "<|endoftext|>")
                            for s in phi_tokens])
    add_feature_tokens(tok)
    out.append(Built("phi3", tok, "Llama 2 layout with Phi-3's chat tokens (rstrip) and added tokens with every "
                     "option under a Prepend+Replace normalizer (normalized tokens match their normalized form)",
                     ["<unk>", "<s>", "</s>"] + phi_tokens + all_feature_contents()))

    # Mistral (tokenizers >= 0.14 conversion): Metaspace(prepend_scheme first, split false), no normalizer.
    tok = Tokenizer(bpe(full_vocab, sp_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE, prepend_scheme="first", split=False)
    tok.decoder = sp_decoder()
    tok.post_processor = template("<s>", 1)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    tok.add_special_tokens([AddedToken("[INST]", special=True, normalized=False),
                            AddedToken("[/INST]", special=True, normalized=False)])
    add_feature_tokens(tok)
    out.append(Built("mistral", tok, "SentencePiece-style BPE as Mistral: Metaspace pre-tokenizer (prepend_scheme "
                     "first, split false), no normalizer, byte fallback, [INST] tokens, added tokens with every "
                     "option (normalized ones matched after the raw ones)",
                     ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"] + all_feature_contents()))

    # Gemma: Replace normalizer, Split(" ", MergedWithPrevious), no Strip in the decoder, whitespace added tokens.
    gemma_vocab = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    gemma_vocab += [t for t in sp_trained if t not in set(gemma_vocab)]
    tok = Tokenizer(bpe(gemma_vocab, sp_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", SPIECE)
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous", invert=False)
    tok.decoder = sp_decoder(strip=False)
    tok.post_processor = template("<bos>", 2)
    gemma_specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in gemma_specials])
    gemma_ws = ["\n\n", "\n\n\n", "\t\t", SPIECE * 2, SPIECE * 4]
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in gemma_ws])
    out.append(Built("gemma", tok, "SentencePiece-style BPE as Gemma: Replace normalizer, Split(' ', "
                     "MergedWithPrevious), Replace/ByteFallback/Fuse decoder, <bos> template, non-special "
                     "whitespace added tokens", gemma_specials + gemma_ws))

    # Metaspace everywhere (tokenizers' SentencePieceBPETokenizer, NFC instead of its NFKC): always + split,
    # the Metaspace decoder, and an unknown token without byte fallback.
    ws_tokens = [SPIECE * 2, SPIECE * 4, "a" + SPIECE + "b"]
    tok = Tokenizer(bpe(["<unk>"] + [t for t in sp_trained if t != "<unk>"] + ws_tokens, sp_merges,
                        unk_token="<unk>", fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=SPIECE, prepend_scheme="always", split=True)
    tok.add_special_tokens([AddedToken("<unk>", special=True, normalized=False),
                            AddedToken("<eos>", special=True, normalized=False)])
    out.append(Built("metaspace_unk", tok, "Metaspace pre-tokenizer (always, split) and Metaspace decoder, NFC, "
                     "<unk> without byte fallback and without fuse_unk", ["<unk>", "<eos>"]))

    # Byte fallback with only some byte tokens (3-byte UTF-8 yes, 4-byte no): fused <unk> for the rest;
    # Metaspace prepend_scheme never; a Sequence of two Split pre-tokenizers (Removed, Contiguous, invert).
    partial = [b for b in range(256) if b < 0xF0]
    tok = Tokenizer(bpe(sp_vocab(sp_trained, partial), sp_merges, unk_token="<unk>", fuse_unk=True,
                        byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Replace("\t", "    "), normalizers.NFC()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(r"[0-9]+"), behavior="contiguous", invert=False),
        pre_tokenizers.Split(tokenizers.Regex(r"[!?.]"), behavior="removed", invert=False),
        pre_tokenizers.Split(tokenizers.Regex(r"\p{Lo}+"), behavior="isolated", invert=True),
        pre_tokenizers.Metaspace(replacement=SPIECE, prepend_scheme="never", split=True)])
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement=SPIECE,
                                                                                 prepend_scheme="never")])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    out.append(Built("split_mix", tok, "byte fallback with some byte tokens missing (fused <unk>), NFD/Replace/NFC "
                     "normalizers, Split regexes with Contiguous, Removed and inverted Isolated behaviour, Metaspace "
                     "prepend_scheme never, ByteFallback + Metaspace decoder", ["<unk>", "<s>", "</s>"]))

    # Split with MergedWithNext / MergedWithPrevious and a String pattern, before ByteLevel.
    vocab, merges = train(corpus, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), 900,
                          initial_alphabet=byte_alphabet)
    tok = Tokenizer(bpe(vocab, merges))
    tok.normalizer = normalizers.NFD()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(r"\s+"), behavior="merged_with_next", invert=False),
        pre_tokenizers.Split(",", behavior="merged_with_previous", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    out.append(Built("split_merged", tok, "NFD normalizer, Split(\\s+, MergedWithNext) and Split(',', "
                     "MergedWithPrevious) before ByteLevel with its regex", ["<|endoftext|>"]))

    # Components tuneforge does not implement: each must be refused by name, or match.
    unsupported = [
        ("nfkc", "NFKC", lambda t: setattr(t, "normalizer", normalizers.NFKC())),
        ("nfkd", "NFKD", lambda t: setattr(t, "normalizer", normalizers.NFKD())),
        ("lowercase", "Lowercase", lambda t: setattr(t, "normalizer", normalizers.Lowercase())),
        ("strip_normalizer", "Strip", lambda t: setattr(t, "normalizer", normalizers.Strip())),
        ("replace_regex", "Replace", lambda t: setattr(t, "normalizer",
                                                       normalizers.Replace(tokenizers.Regex(r"\s+"), " "))),
        ("digits", "Digits", lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))),
        ("punctuation", "Punctuation", lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.Sequence([
            pre_tokenizers.Punctuation(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))),
        ("whitespace_split", "WhitespaceSplit", lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))),
        ("roberta_processing", "RobertaProcessing", lambda t: setattr(
            t, "post_processor", processors.RobertaProcessing(("<|endoftext|>", len(vocab)),
                                                              ("<|endoftext|>", len(vocab))))),
    ]
    for name, component, apply in unsupported:
        tok = Tokenizer(bpe(vocab, merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
        apply(tok)
        out.append(Built(name, tok, f"{component} (not implemented in tuneforge)", ["<|endoftext|>"],
                         expect="match_or_refuse", refuse_hint=component))
    return out


def bytes_to_unicode():
    """GPT-2's byte -> character table, as a list indexed by byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def all_feature_contents():
    return [t.content for _, tokens in feature_tokens() for t in tokens]


# ---------------------------------------------------------------------------------------------------------
# Texts with a tokenizer's added tokens inline, in the contexts that lstrip / rstrip / single_word look at.
# ---------------------------------------------------------------------------------------------------------

CONTEXTS = [
    "{w}{t}{w}", "{w} {t} {w}", "{w}  {t}  {w}", "{t}{w}", "{w}{t}", "{t}", "{t}{t}", " {t}", "{t} ", "  {t}  ",
    "{w}\n{t}\n{w}", "{w}\t{t}\t", "{w}\u00a0{t}\u3000{w}", "🙂{t}🙂", "中{t}文", "नमस्ते{t}", "{w}_{t}_{w}",
    "{w}.{t}.{w}", "{t}{w}{t}", "é{t}é", "{w}\u2028{t}\u0085{w}", "<{t}>", "{t}\n\n{w}", "{w} {t}{t} {w}",
]


def special_texts(rng, specials):
    words = ["Hello", "world", "x", "42", "über", "мир", "テスト", "a b", " ", "", "\n"]
    texts = []
    for s in specials:
        for ctx in rng.sample(CONTEXTS, 8):
            texts.append(ctx.format(t=s, w=rng.choice(words)))
    # Several different tokens in one text, and prefixes of tokens that must not match.
    for _ in range(12):
        picks = [rng.choice(specials) for _ in range(rng.randint(2, 4))]
        glue = [rng.choice(["", " ", "  ", "\n", random_fragment(rng)]) for _ in picks]
        texts.append("".join(g + p for g, p in zip(glue, picks)) + rng.choice(["", " ", "end"]))
    for s in specials[:6]:
        texts.append(s[:-1] + " " + s[1:])
    if "<norm>" in specials:
        texts.extend(FEATURE_TEXTS)
    return texts


# ---------------------------------------------------------------------------------------------------------
# Chat templates, written for this test after the logic of the published ones.
# ---------------------------------------------------------------------------------------------------------

CHAT_TEMPLATES = {
    # Llama 3.1: a system header with dates, tools in the first user message, ipython results.
    "llama3": {
        "tokenizer": "llama3", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "template": (
            "{{- bos_token }}\n"
            "{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n{%- endif %}\n"
            "{%- if not tools_in_user_message is defined %}\n"
            "    {%- set tools_in_user_message = true %}\n{%- endif %}\n"
            "{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}\n"
            "{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n"
            "{#- The system message comes out of the list first #}\n"
            "{%- if messages[0]['role'] == 'system' %}\n"
            "    {%- set system_message = messages[0]['content']|trim %}\n"
            "    {%- set messages = messages[1:] %}\n"
            "{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n"
            "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
            "{%- if tools is not none %}\n    {{- \"Environment: ipython\\n\" }}\n{%- endif %}\n"
            "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
            "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
            "{{- system_message }}\n{{- \"<|eot_id|>\" }}\n"
            "{%- if tools_in_user_message and not tools is none %}\n"
            "    {%- if messages | length != 0 %}\n"
            "        {%- set first_user_message = messages[0]['content']|trim %}\n"
            "        {%- set messages = messages[1:] %}\n"
            "    {%- else %}\n"
            "        {{- raise_exception(\"Cannot put tools in the first user message when there's no first user "
            "message!\") }}\n"
            "    {%- endif %}\n"
            "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
            "    {{- \"Given the following functions, please respond with a JSON for a function call \" }}\n"
            "    {{- \"with its proper arguments that best answers the given prompt.\\n\\n\" }}\n"
            "    {%- for t in tools %}\n        {{- t | tojson(indent=4) }}\n"
            "        {{- \"\\n\\n\" }}\n    {%- endfor %}\n"
            "    {{- first_user_message + \"<|eot_id|>\"}}\n"
            "{%- endif %}\n"
            "{%- for message in messages %}\n"
            "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n"
            "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
            "message['content'] | trim + '<|eot_id|>' }}\n"
            "    {%- elif 'tool_calls' in message %}\n"
            "        {%- set tool_call = message.tool_calls[0].function %}\n"
            "        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
            "        {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n"
            "        {{- '\"parameters\": ' }}\n        {{- tool_call.arguments | tojson }}\n        {{- \"}\" }}\n"
            "        {{- \"<|eot_id|>\" }}\n"
            "    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n"
            "        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n"
            "        {%- if message.content is mapping or message.content is iterable %}\n"
            "            {{- message.content | tojson }}\n"
            "        {%- else %}\n            {{- message.content }}\n        {%- endif %}\n"
            "        {{- \"<|eot_id|>\" }}\n"
            "    {%- endif %}\n"
            "{%- endfor %}\n"
            "{%- if add_generation_prompt %}\n"
            "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
            "{%- endif %}\n"),
    },
    # Llama 3.0: one line, bos on the first message only, filter precedence inside +.
    "llama3_0": {
        "tokenizer": "llama3", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "template": (
            "{% set loop_messages = messages %}{% for message in loop_messages %}"
            "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
            "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + "
            "content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    },
    # Qwen 2.5: default system prompt, tools as JSON lines, tool calls and grouped tool responses.
    "qwen2.5": {
        "tokenizer": "qwen2", "bos_token": None, "eos_token": "<|im_end|>",
        "template": (
            "{%- if tools %}\n"
            "    {{- '<|im_start|>system\\n' }}\n"
            "    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n"
            "    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
            "    {%- endif %}\n"
            "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
            "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
            "    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
            "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and "
            "arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, "
            "\\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
            "{%- else %}\n"
            "    {%- if messages[0]['role'] == 'system' %}\n"
            "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
            "    {%- else %}\n"
            "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\\n' }}\n"
            "    {%- endif %}\n"
            "{%- endif %}\n"
            "{%- for message in messages %}\n"
            "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
            "(message.role == \"assistant\" and not message.tool_calls) %}\n"
            "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
            "    {%- elif message.role == \"assistant\" %}\n"
            "        {{- '<|im_start|>' + message.role }}\n"
            "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n"
            "        {%- for tool_call in message.tool_calls %}\n"
            "            {%- if tool_call.function is defined %}\n"
            "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
            "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n"
            "            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n"
            "            {{- '}\\n</tool_call>' }}\n"
            "        {%- endfor %}\n"
            "        {{- '<|im_end|>\\n' }}\n"
            "    {%- elif message.role == \"tool\" %}\n"
            "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
            "            {{- '<|im_start|>user' }}\n        {%- endif %}\n"
            "        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n"
            "        {{- '\\n</tool_response>' }}\n"
            "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
            "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n"
            "    {%- endif %}\n"
            "{%- endfor %}\n"
            "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"),
    },
    # Llama 2: <<SYS>> folded into the first user turn, strict alternation, strip().
    "llama2": {
        "tokenizer": "llama2", "bos_token": "<s>", "eos_token": "</s>",
        "template": (
            "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
            "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
            "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
            "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
            "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
            "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
            "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
            "{% endfor %}"),
    },
    # Mistral: system prompt on the last user turn, namespace counters, roles checked with raise_exception.
    "mistral": {
        "tokenizer": "mistral", "bos_token": "<s>", "eos_token": "</s>",
        "template": (
            "{%- if messages[0]['role'] == 'system' %}\n"
            "    {%- set system_message = messages[0]['content'] %}\n"
            "    {%- set loop_messages = messages[1:] %}\n"
            "{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n"
            "{%- set ns = namespace(users=0) %}\n"
            "{%- for m in loop_messages %}{%- if m['role'] == 'user' %}{%- set ns.users = ns.users + 1 %}"
            "{%- endif %}{%- endfor %}\n"
            "{{- bos_token }}\n"
            "{%- set ns2 = namespace(seen=0) %}\n"
            "{%- for message in loop_messages %}\n"
            "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
            "        {{- raise_exception('After the optional system message, conversation roles must alternate "
            "user/assistant/user/assistant/...') }}\n"
            "    {%- endif %}\n"
            "    {%- if message['role'] == 'user' %}\n"
            "        {%- set ns2.seen = ns2.seen + 1 %}\n"
            "        {%- if ns2.seen == ns.users and system_message is defined %}\n"
            "            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}\n"
            "        {%- else %}\n            {{- '[INST] ' + message['content'] + '[/INST]' }}\n        {%- endif %}\n"
            "    {%- elif message['role'] == 'assistant' %}\n"
            "        {{- ' ' + message['content']|trim + eos_token }}\n"
            "    {%- else %}\n"
            "        {{- raise_exception('Only user and assistant roles are supported, with the exception of an "
            "initial optional system message!') }}\n"
            "    {%- endif %}\n"
            "{%- endfor %}\n"),
    },
    # Phi-3: <|role|> headers, system kept as its own turn, eos at the end of assistant turns.
    "phi3": {
        "tokenizer": "phi3", "bos_token": "<s>", "eos_token": "<|endoftext|>",
        "template": (
            "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
            "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
            "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
            "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"),
    },
    # Gemma: no system role, 'assistant' becomes 'model', trimmed content.
    "gemma": {
        "tokenizer": "gemma", "bos_token": "<bos>", "eos_token": "<eos>",
        "template": (
            "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
            "{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}"
            "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
            "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}"
            "{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + "
            "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
            "{{'<start_of_turn>model\n'}}{% endif %}"),
    },
    # Gemma 3 style: system folded into the first user turn, content as a list of typed parts.
    "gemma3": {
        "tokenizer": "gemma", "bos_token": "<bos>", "eos_token": "<eos>",
        "template": (
            "{{ bos_token }}\n"
            "{%- if messages[0]['role'] == 'system' -%}\n"
            "    {%- if messages[0]['content'] is string -%}\n"
            "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
            "    {%- else -%}\n"
            "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
            "    {%- endif -%}\n"
            "    {%- set loop_messages = messages[1:] -%}\n"
            "{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n"
            "{%- endif -%}\n"
            "{%- for message in loop_messages -%}\n"
            "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
            "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
            "    {%- endif -%}\n"
            "    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
            "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
            "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
            "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
            "    {%- elif message['content'] is iterable -%}\n"
            "        {%- for item in message['content'] -%}\n"
            "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
            "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
            "            {%- endif -%}\n"
            "        {%- endfor -%}\n"
            "    {%- else -%}\n        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n"
            "    {{ '<end_of_turn>\n' }}\n"
            "{%- endfor -%}\n"
            "{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n"),
    },
    # A template that tests `tools is none` without guarding `is defined`, as some published ones do.
    "tools_unguarded": {
        "tokenizer": "qwen2", "bos_token": None, "eos_token": "<|im_end|>",
        "template": (
            "{%- if tools is not none %}TOOLS:{{ tools | length }}\n{% endif %}"
            "{%- if documents is not none %}DOCS\n{% endif %}"
            "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
            "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    },
}

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city — «quoted», 日本語",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 3},
            "threshold": {"type": "number", "default": 2.5}},
            "required": ["city"]}}},
    {"type": "function", "function": {"name": "noop", "description": "Does nothing.",
                                      "parameters": {"type": "object", "properties": {}}}},
]


def conversations(rng):
    def say():
        return random_text(rng).replace("\r", "") or "ok"

    sys_msg = {"role": "system", "content": "You are a helpful assistant. Réponds en français si besoin."}
    convs = {
        "single_user": [{"role": "user", "content": "Hello! How are you?"}],
        "system_user": [sys_msg, {"role": "user", "content": "What is 2+2?"}],
        "multi_turn": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! What can I do?"},
                       {"role": "user", "content": "Tell me a joke about tokenizers."}],
        "system_multi_turn": [sys_msg, {"role": "user", "content": "Bonjour"},
                              {"role": "assistant", "content": "Bonjour ! Comment puis-je aider ?"},
                              {"role": "user", "content": "Traduis «chat» en allemand."},
                              {"role": "assistant", "content": "Katze."}],
        "whitespace_content": [{"role": "user", "content": "  \n padded question \t\n"},
                               {"role": "assistant", "content": "\n\nanswer with blank lines\n\n"},
                               {"role": "user", "content": "\u00a0\u3000unicode spaces\u2009\u00a0"}],
        "multilingual": [{"role": "user", "content": "你好，世界！Привет, мир! مرحبا 🙂"},
                         {"role": "assistant", "content": "こんにちは！नमस्ते 👍🏽"},
                         {"role": "user", "content": "Größe?"}],
        "special_tokens_in_content": [{"role": "user", "content": "What does <|eot_id|> or <s> mean? [INST]"},
                                      {"role": "assistant", "content": "They are <|im_end|> special </s> tokens."},
                                      {"role": "user", "content": "ok <end_of_turn>"}],
        "empty_content": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""},
                          {"role": "user", "content": " "}],
        "assistant_first": [{"role": "assistant", "content": "I speak first."},
                            {"role": "user", "content": "Odd."}],
        "two_users": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
        "system_only": [sys_msg],
        "tool_role": [{"role": "user", "content": "Weather in Paris?"},
                      {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                          "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": 2,
                                                               "ratio": 0.1, "big": 1e20, "neg": -3, "flag": True,
                                                               "none": None, "list": [1, "two", 3.0]}}}]},
                      {"role": "tool", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}"},
                      {"role": "tool", "content": "second result"},
                      {"role": "user", "content": "Thanks"}],
        "list_content": [{"role": "user", "content": [{"type": "text", "text": "  Describe  "},
                                                      {"type": "image"},
                                                      {"type": "text", "text": "this picture. "}]}],
        "random": [{"role": "user", "content": say()}, {"role": "assistant", "content": say()},
                   {"role": "user", "content": say()}],
        "random_system": [{"role": "system", "content": say()}, {"role": "user", "content": say()},
                          {"role": "assistant", "content": say()}, {"role": "user", "content": say()}],
    }
    return convs


# Conversation names each template is rendered with (others would only repeat errors the template raises on
# purpose or exercise keys it ignores); tools are passed for the ones listed under "tools".
CHAT_PLAN = {
    "llama3": {"conversations": "all", "tools": ["system_user", "multi_turn", "tool_role"]},
    "llama3_0": {"conversations": "all", "tools": []},
    "qwen2.5": {"conversations": "all", "tools": ["single_user", "system_user", "tool_role"]},
    "llama2": {"conversations": "all", "tools": []},
    "mistral": {"conversations": "all", "tools": []},
    "phi3": {"conversations": "all", "tools": []},
    "gemma": {"conversations": "all", "tools": []},
    "gemma3": {"conversations": "all", "tools": []},
    "tools_unguarded": {"conversations": ["single_user", "multi_turn"], "tools": ["single_user"]},
}


# ---------------------------------------------------------------------------------------------------------

def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def save_tokenizer(built, directory):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tokenizer.json")
    built.tok.save(path)
    if built.string_merges or built.edit_json:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if built.string_merges:  # the older layout of merges ("a b" strings), which the library still reads
            data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
        if built.edit_json:
            built.edit_json(data)
        write_json(path, data)
    loaded = Tokenizer.from_file(path)  # the references describe the file as written
    return path, loaded


def reference_cases(name, tok, texts):
    lines = []
    for i, text in enumerate(texts):
        plain = tok.encode(text, add_special_tokens=False).ids
        with_special = tok.encode(text, add_special_tokens=True).ids
        lines.append({"tokenizer": name, "index": i, "text": text, "ids": plain, "ids_with_special": with_special,
                      "decoded": tok.decode(with_special, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True)})
    return lines


def decode_cases(name, tok, rng, specials, count):
    size = tok.get_vocab_size(with_added_tokens=True)
    vocab = tok.get_vocab(with_added_tokens=True)
    byte_ids = sorted(i for t, i in vocab.items() if len(t) == 6 and t.startswith("<0x") and t.endswith(">"))
    special_ids = [vocab[s] for s in specials if s in vocab]
    # Tokens with several metaspace characters, which the Metaspace decoder treats specially at the start.
    spaced = sorted(i for t, i in vocab.items() if t.count(SPIECE) >= 2 or (SPIECE in t and not t.startswith(SPIECE)))
    fixed = []
    for i in spaced[:4]:
        fixed += [[i], [i, rng.randrange(size)], [rng.randrange(size), i], [i, i]]
    if byte_ids:
        fixed.append([vocab.get("<0xE4>", byte_ids[0]), vocab.get("<0xB8>", byte_ids[0])])  # truncated UTF-8
    lines = []
    for i, ids in enumerate(fixed):
        lines.append({"tokenizer": name, "index": count + i, "ids": ids,
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    for i in range(count):
        ids = []
        for _ in range(rng.randint(1, 14)):
            r = rng.random()
            if r < 0.3 and byte_ids:
                ids.append(rng.choice(byte_ids))
            elif r < 0.45 and special_ids:
                ids.append(rng.choice(special_ids))
            else:
                ids.append(rng.randrange(size))
        lines.append({"tokenizer": name, "index": i, "ids": ids,
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    return lines


def make_chat(out_dir, built_by_name, rng):
    from transformers import AutoTokenizer
    import jinja2
    import transformers

    convs = conversations(rng)
    cases = []
    for family, spec in CHAT_TEMPLATES.items():
        directory = os.path.join(out_dir, "chat", family)
        os.makedirs(directory, exist_ok=True)
        shutil.copyfile(os.path.join(out_dir, spec["tokenizer"], "tokenizer.json"),
                        os.path.join(directory, "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096,
                  "chat_template": spec["template"], "bos_token": spec["bos_token"], "eos_token": spec["eos_token"],
                  "clean_up_tokenization_spaces": False}
        write_json(os.path.join(directory, "tokenizer_config.json"), config)
        hf = AutoTokenizer.from_pretrained(directory)
        ids_tok = built_by_name[spec["tokenizer"]]
        plan = CHAT_PLAN[family]
        names = plan["conversations"]
        if names == "all":  # list content only where the template reads it (and once where it does not)
            names = [n for n in sorted(convs) if n != "list_content" or family in ("gemma3", "llama3_0")]
        runs = [(n, False) for n in names] + [(n, True) for n in plan["tools"]]
        for conv_name, with_tools in runs:
            for gen in (False, True):
                case = {"family": family, "conversation": conv_name, "add_generation_prompt": gen,
                        "messages": convs[conv_name]}
                kwargs = {}
                if with_tools:
                    case["tools"] = TOOLS
                    kwargs["tools"] = TOOLS
                try:
                    rendered = hf.apply_chat_template(convs[conv_name], tokenize=False, add_generation_prompt=gen,
                                                      **kwargs)
                    case["rendered"] = rendered
                    case["ids"] = ids_tok.encode(rendered, add_special_tokens=False).ids
                except jinja2.exceptions.TemplateError as e:  # raise_exception: the message must match
                    case["rendered"] = None
                    case["error"] = str(e)
                    case["error_type"] = "TemplateError"
                except (TypeError, ValueError) as e:  # e.g. str + list: any error will do
                    case["rendered"] = None
                    case["error"] = str(e)
                    case["error_type"] = type(e).__name__
                cases.append(case)
    return cases, transformers.__version__, jinja2.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory to write (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run; drawn at random when absent")
    parser.add_argument("--texts", type=int, default=160, help="random texts per tokenizer (besides fixed ones)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 31)
    print(f"make_tokenizer_reference: seed {seed} (replay: {os.path.basename(sys.argv[0])} --out {args.out} "
          f"--seed {seed})", flush=True)
    started = time.time()
    rng = random.Random(seed)

    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)

    corpus = make_corpus(random.Random(rng.random()), 3000)
    built = build_tokenizers(corpus)
    text_rng = random.Random(rng.random())
    common_texts = FIXED_TEXTS + [random_text(text_rng) for _ in range(args.texts)]

    manifest = {"seed": seed, "tokenizers_version": tokenizers.__version__, "tokenizers": []}
    cases, dcases, loaded = [], [], {}
    for b in built:
        _, tok = save_tokenizer(b, os.path.join(args.out, b.name))
        loaded[b.name] = tok
        texts = common_texts + special_texts(random.Random(rng.random()), b.specials)
        cases.extend(reference_cases(b.name, tok, texts))
        dcases.extend(decode_cases(b.name, tok, random.Random(rng.random()), b.specials, 40))
        entry = {"name": b.name, "covers": b.covers, "expect": b.expect, "texts": len(texts)}
        if b.refuse_hint:
            entry["component"] = b.refuse_hint
        manifest["tokenizers"].append(entry)

    with open(os.path.join(args.out, "cases.jsonl"), "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "decode_cases.jsonl"), "w", encoding="utf-8") as f:
        for c in dcases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")

    chat_cases, tf_version, jinja_version = make_chat(args.out, loaded, random.Random(rng.random()))
    with open(os.path.join(args.out, "chat_cases.jsonl"), "w", encoding="utf-8") as f:
        for c in chat_cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    manifest.update({"transformers_version": tf_version, "jinja2_version": jinja_version,
                     "chat_families": sorted(CHAT_TEMPLATES), "cases": len(cases), "decode_cases": len(dcases),
                     "chat_cases": len(chat_cases)})
    write_json(os.path.join(args.out, "manifest.json"), manifest)
    print(f"make_tokenizer_reference: {len(built)} tokenizers, {len(cases)} encode cases, {len(dcases)} decode "
          f"cases, {len(chat_cases)} chat cases in {time.time() - started:.1f} s (tokenizers "
          f"{tokenizers.__version__}, transformers {tf_version}) -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
