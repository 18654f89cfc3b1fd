#!/usr/bin/env python3
# Writes the tokenizer benchmark corpus: a deterministic multilingual JSONL file (one JSON string per line,
# one document each) of at least 10 MiB, from a fixed seed and the texts of the shared tokenizer cases.jsonl.
# Usage: make_tokenizer_corpus.py CASES_JSONL OUT_JSONL [TARGET_BYTES]   (standard library only)
import json
import random
import sys

SEED = 20240611
DEFAULT_TARGET_BYTES = 10_500_000  # UTF-8 bytes of document text, a little over 10 MiB

# Common words per language, roughly most frequent first (the draw is Zipf-like over this order).
WORDS = {
    "en": """the of and to in is that it for was on are as with he they at be this from have or by one had
        not but what all were when we there can an your which their said if do will each about how up out them
        then she many some so these would other into has more her two like him see time could no make than first
        been its who now people my made over did down only way find use may water long little very after words
        called just where most know get through back much before go good new write our used me man too any day
        same right look think also around another came come work three word must because does part even place
        well such here take why things help put years different away again off went old number great tell men
        say small every found still between name should home big give air line set own under read last never us
        left end along while might next sound below saw something thought both few those always looked show
        large often together asked house world going want school important until form food keep children feet
        land side without boy once animals life enough took sometimes four head above kind began almost live
        page got earth need far hand high year mother light parts country father let night following picture
        being study second eyes soon times story boys since white days paper hard near sentence better best
        across during today others however sure means knew try told young miles sun ways thing whole hear
        example heard several change answer room sea against top turned learn point city play toward five using
        himself usually money seen car morning given trying system model training data tokenizer language""",
    "de": """der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an
        werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum war haben nur
        oder aber vor zur bis mehr durch man sein wurde sei hatte kann gegen vom können schon wenn habe seine
        ihre dann unter wir soll ich eines jahr zwei jahren diese dieser wieder keine seiner worden will
        zwischen immer millionen was sagte gibt alle seit muss doch jetzt neue ab drei weil ihr ihm also großen
        müssen heute stadt bundesregierung menschen zeit straße größte möglich während früher schließlich
        gemäß natürlich übernehmen Mädchen Bücher Grüße Fußball Geschäftsführer Entwicklung Verantwortung
        Wirtschaft Öffentlichkeit Gesellschaft Regierung Unternehmen Sprache Wörter Beispiel""",
    "fr": """de la le et les des en un du une que est pour qui dans par plus pas au sur ne se il sont ce
        avec mais ou son sa elle nous vous ont été leur aux comme fait tout cette même ses bien sans peut deux
        entre où aussi dont ces après être avoir très faire était encore déjà lui notre tous autre temps depuis
        leurs avant quand moins là ainsi cela année années français française société développement économie
        gouvernement président problème système première dernière élèves écrit génération à ça où naïf façon
        garçon cœur œuvre fenêtre hôpital forêt château théâtre réponse données modèle apprentissage""",
    "ru": """и в не на я быть он с что а по это она этот к но они мы как из у который то за свой что весь
        год от так о для ты же все тот мочь вы человек такой его сказать только или еще бы себя один как уже
        до время если сам когда другой вот говорить наш мой знать стать при чтобы дело жизнь кто первый
        очень два день ее новый рука даже во со раз где там под можно ну какой после их работа без самый
        потом надо хотеть ли слово идти большой должен место иметь ничто Россия Москва страна город вопрос
        правительство развитие система данные модель обучение язык текст пример""",
    "ar": """في من على أن إلى التي الذي عن مع هذا هذه كان ما لا كل بين قد وقد ذلك أو ثم بعد عند حتى
        كما إن لم هو هي يكون قال تم العالم العربية اللغة الحكومة الرئيس المدينة الناس اليوم السنة الوقت
        العمل البيت الكتاب المدرسة الطالب المعلم الجامعة البحث العلم التعليم التكنولوجيا الحاسوب البيانات
        النموذج التدريب جميلة جدا كبير صغير جديد قديم مرحبا شكرا""",
    "hi": """के है में की और को से का एक पर यह भी हैं कि था ने लिए नहीं तो किया गया कर इस जो हो होता
        साथ कहा अपने वह थे बहुत सकता दिया रहा जा हम आप मैं उन्होंने भारत सरकार देश लोगों समय काम दिन
        साल बात शहर पानी भाषा हिन्दी दुनिया नमस्ते विद्यालय छात्र शिक्षक विश्वविद्यालय विज्ञान तकनीक
        कंप्यूटर डेटा मॉडल प्रशिक्षण वाक्य उदाहरण""",
}
# Languages written without spaces: words are glued, punctuation is the script's own.
WORDS_CJK = {
    "zh": """的 是 在 不 了 有 和 人 这 中 大 为 上 个 国 我 以 要 他 时 来 用 们 生 到 作 地 于 出 就 分
        对 成 会 可 主 发 年 动 同 工 也 能 下 过 子 说 产 种 面 而 方 后 多 定 行 学 法 所 民 得 经 十 三 之
        进 着 等 部 度 家 电 力 里 如 水 化 高 自 二 理 起 小 物 现 实 加 量 都 两 体 制 机 当 使 点 从 业 本
        去 把 性 好 应 开 它 合 还 因 由 其 些 然 前 外 天 政 四 日 那 社 义 事 平 形 相 全 表 间 样 与 关 各
        重 新 线 内 数 正 心 反 你 明 看 原 又 么 利 比 或 但 质 气 第 向 道 命 此 变 条 只 没 结 解 问 意 建
        月 公 无 系 军 很 情 者 最 立 代 想 已 通 并 提 直 题 党 程 展 五 果 料 象 员 革 位 入 常 文 总 次 品
        式 活 设 及 管 特 件 长 求 老 头 基 资 边 流 路 级 少 图 山 统 接 知 较 将 组 见 计 别 她 手 角 期 根
        论 运 农 指 几 九 区 强 放 决 西 被 干 做 必 战 先 回 则 任 取 据 处 队 南 给 色 光 门 即 保 治 北 造
        百 规 热 领 七 海 口 东 导 器 压 志 世 金 增 争 济 阶 油 思 术 极 交 受 联 什 认 六 共 权 收 证 改 清
        中国 我们 一个 没有 自己 这个 可以 他们 什么 时候 人工智能 机器学习 模型 训练 数据 分词器 语言
        世界 你好 北京 上海 经济 发展 社会 技术 研究""",
    "ja": """の に は を た が で て と し れ さ ある いる も する から な こと として い や れる など なっ
        ない この ため その あっ よう また もの という あり まで られ なる へ か だ これ によって により おり
        より による ず なり られる において ば なかっ なく しかし について せ だっ その後 できる それ う
        日本 東京 時間 今日 明日 学校 先生 学生 会社 仕事 電話 世界 言葉 日本語 英語 勉強 友達 天気
        コンピューター データ モデル トークナイザー プログラム インターネット ソフトウェア ニュース
        ありがとう こんにちは すみません おはよう 大丈夫 本当に 少し たくさん 新しい 大きい 小さい""",
}
SYLLABLES = {
    "en": "ba be bi bo bu ca co cu da de di do du fa fe fi fo ga ge go gu ha he hi ho la le li lo lu ma me mi "
          "mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo wa we "
          "ya yo za ze str tion ing ment ness able ous ive pre con pro ex",
    "de": "ba be bi bo bu da de di do ge gi go ha he hi ka ke ki ko la le li lo ma me mi mo na ne ni no ra re "
          "ri ro sa se si so ta te ti to wa we wi ä ö ü ß sch ch ung heit keit lich ver be zer ent",
    "fr": "ba be bi bo ca ce ci co da de di do fa fe fi fo la le li lo ma me mi mo na ne ni no pa pe pi po ra "
          "re ri ro sa se si so ta te ti to va ve vi vo é è ê ç à eau ou oi ain ion ent",
    "ru": "ба бе би бо бу ва ве ви во да де ди до ка ке ки ко ла ле ли ло ма ме ми мо на не ни но па пе пи по "
          "ра ре ри ро са се си со та те ти то ча че чи жа жи ша ши ща ы ь ъ ю я ё ость ение",
}
EMOJI = ["😀", "😂", "🙂", "🎉", "🚀", "❤️", "👍", "👍🏽", "🔥", "✨", "🤖", "🇩🇪", "🇯🇵", "👩‍💻", "👨‍👩‍👧",
         "1️⃣", "☀️", "🌍", "📈", "✅"]
IDENTS = ["x", "y", "i", "j", "n", "data", "batch", "tokens", "model", "config", "result", "value", "index",
          "learning_rate", "num_layers", "hidden_size", "input_ids", "attention_mask", "logits", "loss",
          "optimizer", "step", "path", "buffer", "count", "items", "user_id", "response", "request", "kMaxSize"]
DOMAINS = ["example.com", "example.org", "huggingface.co", "docs.python.org", "en.wikipedia.org", "github.com"]
SENTENCE_END = {"en": ".", "de": ".", "fr": ".", "ru": ".", "ar": ".", "hi": "।", "zh": "。", "ja": "。"}
COMMA = {"en": ",", "de": ",", "fr": ",", "ru": ",", "ar": "،", "hi": ",", "zh": "，", "ja": "、"}


def zipf_weights(n):
    return [1.0 / (rank + 1) for rank in range(n)]


class Corpus:
    def __init__(self, cases_path):
        self.rng = random.Random(SEED)
        self.words = {k: v.split() for k, v in list(WORDS.items()) + list(WORDS_CJK.items())}
        self.weights = {k: zipf_weights(len(v)) for k, v in self.words.items()}
        self.syllables = {k: v.split() for k, v in SYLLABLES.items()}
        texts = {}
        with open(cases_path, encoding="utf-8") as f:
            for line in f:
                case = json.loads(line)
                texts[case["id"]] = case["text"]
        self.cases = [texts[k] for k in sorted(texts) if texts[k]]

    def number(self):
        r = self.rng
        kind = r.randrange(7)
        if kind == 0:
            return str(r.randrange(10 ** r.randint(1, 12)))
        if kind == 1:
            return f"{r.uniform(0, 1000):.{r.randint(1, 4)}f}"
        if kind == 2:
            return f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        if kind == 3:
            return f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}"
        if kind == 4:
            return f"${r.randint(1, 99999):,}.{r.randint(0, 99):02d}"
        if kind == 5:
            return f"{r.randint(0, 100)}%"
        return f"+49 {r.randint(100, 999)} {r.randint(1000000, 9999999)}"

    def url(self):
        r = self.rng
        path = "/".join(r.choice(IDENTS) for _ in range(r.randint(1, 4)))
        return f"https://{r.choice(DOMAINS)}/{path}?id={r.randint(1, 99999)}&lang={r.choice(list(WORDS))}"

    def word(self, lang):
        r = self.rng
        if lang in self.syllables and r.random() < 0.08:  # an invented word: the long tail of a vocabulary
            return "".join(r.choice(self.syllables[lang]) for _ in range(r.randint(2, 5)))
        return r.choices(self.words[lang], self.weights[lang])[0]

    def sentence(self, lang):
        r = self.rng
        parts = []
        for k in range(r.randint(4, 22)):
            roll = r.random()
            if roll < 0.04:
                parts.append(self.number())
            elif roll < 0.05:
                parts.append(r.choice(EMOJI))
            else:
                parts.append(self.word(lang))
            if k > 2 and r.random() < 0.08:
                parts[-1] += COMMA[lang]
        if lang in WORDS_CJK:
            text = "".join(parts)
        else:
            text = " ".join(parts)
            if lang in ("en", "de", "fr", "ru"):
                text = text[0].upper() + text[1:]
        end = SENTENCE_END[lang] if r.random() < 0.85 else r.choice(["?", "!", "...", ":"])
        return text + end

    def prose(self, lang, size):
        r = self.rng
        sep = "" if lang in WORDS_CJK else " "
        paragraphs, para, total = [], [], 0
        while total < size:
            s = self.sentence(lang)
            para.append(s)
            total += len(s.encode("utf-8")) + 1
            if r.random() < 0.15:
                paragraphs.append(sep.join(para))
                para = []
        if para:
            paragraphs.append(sep.join(para))
        return "\n\n".join(paragraphs)

    def code(self, size):
        r = self.rng
        out, total = [], 0
        while total < size:
            name, a, b = r.choice(IDENTS), r.choice(IDENTS), r.choice(IDENTS)
            kind = r.randrange(3)
            if kind == 0:
                block = (f"def compute_{name}({a}, {b}=None):\n"
                         f"    \"\"\"Return the {name} of {a} ({self.sentence('en')})\"\"\"\n"
                         f"    if {b} is None:\n        {b} = {self.number()}\n"
                         f"    for i in range(len({a})):\n        {a}[i] = {a}[i] * {b} + {r.randint(0, 255)}\n"
                         f"    return {{\"{name}\": {a}, \"url\": \"{self.url()}\"}}\n")
            elif kind == 1:
                block = (f"// {self.sentence('en')}\n"
                         f"int64_t Compute{name.title().replace('_', '')}(const std::vector<int>& {a}) {{\n"
                         f"  int64_t {b} = {r.randint(0, 1 << 20)};\n"
                         f"  for (size_t i = 0; i < {a}.size(); ++i) {b} += {a}[i] << {r.randint(1, 7)};\n"
                         f"  return {b} != 0 ? {b} : -1;\n}}\n")
            else:
                block = json.dumps({name: self.number(), a: [r.randint(-999, 999) for _ in range(r.randint(1, 6))],
                                    b: self.sentence(r.choice(list(WORDS))), "ok": r.random() < 0.5},
                                   ensure_ascii=False, indent=r.choice([None, 2])) + "\n"
            out.append(block)
            total += len(block.encode("utf-8"))
        return "\n".join(out)

    def mixed(self, size):
        # Chat- and web-like text: languages switch sentence by sentence, with URLs, numbers and emoji.
        r = self.rng
        langs = list(self.words)
        parts, total = [], 0
        while total < size:
            roll = r.random()
            if roll < 0.1:
                s = self.url()
            elif roll < 0.2:
                s = " ".join(r.choice(EMOJI) for _ in range(r.randint(1, 4)))
            elif roll < 0.25:
                s = r.choice(self.cases)
            else:
                s = self.sentence(r.choice(langs))
            parts.append(s)
            total += len(s.encode("utf-8")) + 1
        return "".join(p + r.choice([" ", " ", "\n", "\n\n", "\t"]) for p in parts).rstrip()

    def document(self):
        r = self.rng
        size = int(min(20000, max(40, r.lognormvariate(7.3, 0.9))))  # median about 1.5 KB
        kind = r.choices(["en", "de", "fr", "ru", "zh", "ja", "ar", "hi", "code", "mixed", "cases"],
                         [30, 7, 7, 8, 8, 6, 5, 5, 10, 10, 4])[0]
        if kind == "code":
            return self.code(size)
        if kind == "mixed":
            return self.mixed(size)
        if kind == "cases":
            return "\n".join(r.choice(self.cases) for _ in range(r.randint(1, 12)))
        return self.prose(kind, size)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: make_tokenizer_corpus.py CASES_JSONL OUT_JSONL [TARGET_BYTES]")
    target = int(sys.argv[3]) if len(sys.argv) == 4 else DEFAULT_TARGET_BYTES
    corpus = Corpus(sys.argv[1])
    docs, total = 0, 0
    with open(sys.argv[2], "w", encoding="utf-8", newline="\n") as out:
        while total < target:
            doc = corpus.document()
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            docs += 1
            total += len(doc.encode("utf-8"))
    print(f"corpus: {docs} documents, {total} bytes of text")


if __name__ == "__main__":
    main()
