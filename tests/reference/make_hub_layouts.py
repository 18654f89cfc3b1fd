#!/usr/bin/env python3
"""Writes small dataset repos and what the `datasets` library decides about each, for
tests/common/hub_dataset_layout_test.cc (common/hub_dataset_layout.h must decide the same from the file list and the
card).

Into --out, one folder per case: <case>/repo/ (the repo's files: README.md with YAML front matter where the case has a
card, data files, hidden files, __pycache__ and such), <case>/card.json (the front matter as yaml.safe_load reads it,
which is what the Hub serves as cardData; null when there is no README or it has no YAML) and <case>/expected.json:

  {"files": [every file of the repo, '/'-separated, sorted],
   "configs": [{"name", "module", "splits": [{"name", "files": [sorted, duplicates kept]}]}],  # datasets' order
   "default_config": name or null}
  or, where datasets refuses the repo, {"files": [...], "error": true, "message": "..."}.

The configs are get_dataset_config_names(), the default get_dataset_default_config_name(), and each config's splits
and files load_dataset_builder(repo, name=config).config.data_files. Everything runs offline with caches under --out.
manifest.json lists the cases and the versions used.

Usage: make_hub_layouts.py --out DIR
"""
import argparse
import gzip
import io
import json
import os
import shutil
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

# Before datasets is imported: it reads these once. Nothing may reach the network or the user's caches.
OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def rows(tag):
    return [{"text": f"{tag} row {i}", "label": i % 2} for i in range(3)]


def file_bytes(path):
    """Small but well-formed content for a file, by its extension (a .gz holds the compressed inner file)."""
    name = os.path.basename(path)
    if name.endswith(".gz"):
        return gzip.compress(file_bytes(path[: -len(".gz")]), mtime=0)
    if name == "dataset_infos.json":
        return b"{}"  # the legacy infos file: datasets reads it, and an empty one changes nothing
    tag = name.split(".")[0]
    ext = os.path.splitext(name)[1]
    if ext in (".jsonl", ".ndjson"):
        return "".join(json.dumps(r) + "\n" for r in rows(tag)).encode()
    if ext == ".json":
        return json.dumps(rows(tag)).encode()
    if ext in (".csv", ".tsv"):
        sep = "\t" if ext == ".tsv" else ","
        return ("text" + sep + "label\n" + "".join(f"{r['text']}{sep}{r['label']}\n" for r in rows(tag))).encode()
    if ext == ".parquet":
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows(tag)), sink)
        return sink.getvalue()
    if ext == ".txt":
        return "".join(r["text"] + "\n" for r in rows(tag)).encode()
    return f"{tag}\n".encode()


# Each case: the repo's files (besides README.md) and the README's YAML front matter (None: no README; "" : a README
# without front matter). The YAML is written as text, as a dataset author writes it.
CASES = {
    # Split names as whole file names at the root.
    "root_split_files": {"files": ["train.jsonl", "test.jsonl"], "yaml": None},
    # Sharded files data/{split}-NNNNN-of-NNNNN.*: train, validation, test first, then the repo's own split names.
    "sharded_parquet": {
        "files": ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
                  "data/validation-00000-of-00001.parquet", "data/test-00000-of-00001.parquet",
                  "data/extra-00000-of-00001.parquet", "data/aaa-00000-of-00001.parquet"],
        "yaml": "license: mit\n"},
    # A shard name whose split is no word: datasets refuses the repo.
    "sharded_bad_split_name": {"files": ["data/my-split-00000-of-00001.parquet"], "yaml": None},
    # Split names as directory names, nested below another directory too.
    "split_dirs": {"files": ["data/train/a.jsonl", "data/train/b.jsonl", "data/validation/c.jsonl",
                             "data/test/sub/d.jsonl", "data/notes/e.jsonl"], "yaml": None},
    # A keyword followed by a separator in a directory name, and a file named like the directory.
    "split_dir_prefixes": {"files": ["train_v2/part.jsonl", "test-2024/train.jsonl", "data/dev/dev.jsonl"],
                           "yaml": None},
    # Keywords as words inside file names; "constraint" has "train" only inside a word, "contest" "test".
    "keywords_in_names": {"files": ["my_train_file.csv", "my-test-file.csv", "constraint.csv", "contest.csv",
                                    "nested/dir/final.validation.csv"], "yaml": None},
    # A file that two of a split's patterns match ("**/train[-._ 0-9]*" and "**/*[-._ 0-9]train[-._ 0-9]*"): datasets
    # lists it twice.
    "matched_twice": {"files": ["train-train.jsonl", "test.jsonl"], "yaml": None},
    # Synonyms: dev, eval in file names.
    "synonyms_files": {"files": ["train.jsonl", "dev.jsonl", "eval.jsonl"], "yaml": None},
    # Synonyms: training, valid, evaluation, testing as directory names.
    "synonyms_dirs": {"files": ["training/x.csv", "valid/x.csv", "evaluation/x.csv", "testing/y.csv"],
                      "yaml": None},
    # "val" in a file name.
    "synonym_val": {"files": ["data/train.parquet", "data/val.parquet"], "yaml": None},
    # No split names anywhere: every data file is train; files of no data format are not data files.
    "no_split_names": {"files": ["data/a.jsonl", "data/b.jsonl", "other.jsonl", "LICENSE", "scripts/clean.py"],
                       "yaml": ""},
    # Hidden files and folders, __pycache__ and other "__" folders are skipped; so are the infos files.
    "hidden_and_special": {
        "files": ["train.jsonl", "test.jsonl", ".hidden.jsonl", ".cache/train.jsonl", "__pycache__/test.jsonl",
                  "__private__/train.jsonl", "data/.ipynb_checkpoints/test.jsonl", ".gitattributes",
                  "dataset_infos.json", "config.json", "data/.train.jsonl"],
        "yaml": None},
    # Hidden files among files with no split names.
    "hidden_no_splits": {"files": ["a.csv", "b/c.csv", ".d.csv", ".e/f.csv", "__g__/h.csv"], "yaml": None},
    # Card configs: data_files as one pattern.
    "card_data_files_string": {
        "files": ["data/a.jsonl", "data/b.jsonl", "data/c.csv", "other/d.jsonl"],
        "yaml": """\
            configs:
            - config_name: default
              data_files: data/*.jsonl
            """},
    # data_files as a list of patterns and plain paths.
    "card_data_files_list": {
        "files": ["a.csv", "b/one.csv", "b/two.csv", "b/deeper/three.csv", "c.csv"],
        "yaml": """\
            configs:
            - config_name: main
              data_files:
              - a.csv
              - b/*.csv
            """},
    # data_files as {split, path} with globs; a path may be a list; the card's split order is kept.
    "card_split_paths": {
        "files": ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet", "test/x.parquet",
                  "test/y.parquet", "test/sub/z.parquet", "holdout/a.parquet", "holdout/b.parquet"],
        "yaml": """\
            configs:
            - config_name: default
              data_files:
              - split: test
                path: test/*.parquet
              - split: train
                path: data/train-*
              - split: holdout
                path:
                - holdout/a.parquet
                - holdout/b.*
            """},
    # "**" in a card pattern: any depth, none too.
    "card_double_star": {
        "files": ["data/x.jsonl", "data/a/y.jsonl", "data/a/b/z.jsonl", "data/.hidden/w.jsonl", "top.jsonl"],
        "yaml": """\
            configs:
            - config_name: default
              data_files:
              - split: train
                path: data/**/*.jsonl
            """},
    # A card pattern that names hidden and "__" folders takes their files.
    "card_names_hidden": {
        "files": [".github/data/a.jsonl", "__data__/b.jsonl", "c.jsonl"],
        "yaml": """\
            configs:
            - config_name: default
              data_files:
              - split: train
                path: .github/data/*.jsonl
              - split: test
                path: __data__/*.jsonl
            """},
    # data_dir: the config's splits found as without a card, inside the directory; one config is the default.
    "card_data_dir": {
        "files": ["en/train.jsonl", "en/test.jsonl", "fr/train.jsonl", "fr/valid.jsonl", "fr/extra/more.jsonl",
                  "de/everything.jsonl"],
        "yaml": """\
            configs:
            - config_name: en
              data_dir: en
            - config_name: fr
              data_dir: fr
              default: true
            - config_name: de
              data_dir: de
            """},
    # data_dir and data_files together: the patterns are inside data_dir.
    "card_data_dir_and_files": {
        "files": ["en/a.jsonl", "en/sub/b.jsonl", "top.jsonl", "x/c.jsonl"],
        "yaml": """\
            configs:
            - config_name: en
              data_dir: en
              data_files: "*.jsonl"
            - config_name: x
              data_files: x/*.jsonl
            """},
    # Several configs, none the default and none named "default": the user must choose.
    "two_configs_no_default": {
        "files": ["a/train.jsonl", "a/test.jsonl", "b/train.jsonl"],
        "yaml": """\
            configs:
            - config_name: alpha
              data_files:
              - split: train
                path: a/train.jsonl
              - split: test
                path: a/test.jsonl
            - config_name: beta
              data_files: b/*.jsonl
            pretty_name: Two configs
            """},
    # A config named "default" among several is the default.
    "config_named_default": {
        "files": ["main/train.csv", "other/train.csv"],
        "yaml": """\
            configs:
            - config_name: main
              data_files: main/*.csv
            - config_name: default
              data_files: other/*.csv
            """},
    # One config, not named "default": it is the default.
    "single_named_config": {
        "files": ["x/train.parquet", "x/test.parquet"],
        "yaml": """\
            configs:
            - config_name: only
              data_files:
              - split: train
                path: x/train.parquet
              - split: test
                path: x/test.parquet
            """},
    # Several configs and dataset_info describing only one of them: datasets takes that one as the default.
    "two_configs_one_info": {
        "files": ["a/train.jsonl", "b/train.jsonl"],
        "yaml": """\
            configs:
            - config_name: a
              data_files: a/*.jsonl
            - config_name: b
              data_files: b/*.jsonl
            dataset_info:
              config_name: b
              features:
              - name: text
                dtype: string
              splits:
              - name: train
                num_bytes: 100
                num_examples: 3
            """},
    # Configs of different formats.
    "configs_of_two_formats": {
        "files": ["j/train.jsonl", "c/train.csv"],
        "yaml": """\
            configs:
            - config_name: as_json
              data_files: j/*.jsonl
            - config_name: as_csv
              data_files: c/*.csv
            """},
    # Mixed extensions in one split: the most common decides the module, and without a card the others are dropped.
    "mixed_extensions": {"files": ["data/train/a.jsonl", "data/train/b.jsonl", "data/train/c.csv",
                                   "data/test/d.jsonl"], "yaml": None},
    # The same with a card pattern: datasets keeps the files of the other format.
    "mixed_extensions_card": {
        "files": ["data/a.jsonl", "data/b.jsonl", "data/c.csv"],
        "yaml": """\
            configs:
            - config_name: default
              data_files: data/*
            """},
    # A tie: Parquet wins.
    "tie_parquet_wins": {"files": ["x.parquet", "y.csv"], "yaml": None},
    # json and jsonl together are one module.
    "json_and_jsonl": {"files": ["train.json", "train.jsonl", "test.jsonl"], "yaml": None},
    # Formats tuneforge does not read: plain text, compressed JSON lines, tab-separated values.
    "text_only": {"files": ["train.txt", "test.txt"], "yaml": None},
    "jsonl_gz": {"files": ["data/train.jsonl.gz", "data/test.jsonl.gz"], "yaml": None},
    "tsv": {"files": ["train.tsv", "dev.tsv"], "yaml": None},
    # Eval logs (*.eval) are a split "logs" of their own, before any split-name rule.
    "eval_logs": {"files": ["logs/run1.eval", "logs/run2.eval", "train.jsonl"], "yaml": None},
    # Split keywords match case-sensitively: no split names here.
    "upper_case_split_names": {"files": ["Train.csv", "TEST.csv", "data.csv"], "yaml": None},
    # Extensions are looked up as written: train.JSONL is no data file, so the train split has none.
    "upper_case_extension": {"files": ["train.JSONL", "test.jsonl"], "yaml": None},
    # A README without YAML front matter.
    "readme_without_yaml": {"files": ["data/train.csv", "data/validation.csv"], "yaml": ""},
    # Errors: a config whose pattern matches nothing; a plain path that is not there; a malformed data_files entry; a
    # config without a name; several defaults; no data file at all.
    "error_pattern_matches_nothing": {
        "files": ["a/train.jsonl"],
        "yaml": """\
            configs:
            - config_name: a
              data_files: a/*.jsonl
            - config_name: b
              data_files: missing/*.jsonl
            """},
    "error_first_config_matches_nothing": {
        "files": ["a/train.jsonl"],
        "yaml": """\
            configs:
            - config_name: b
              data_files: missing/*.jsonl
            """},
    "error_missing_path": {
        "files": ["a/train.jsonl"],
        "yaml": """\
            configs:
            - config_name: default
              data_files:
              - split: train
                path: a/train.jsonl
              - split: test
                path: a/test.jsonl
            """},
    "error_malformed_data_files": {
        "files": ["a/train.jsonl"],
        "yaml": """\
            configs:
            - config_name: default
              data_files:
              - split: train
            """},
    "error_data_files_mapping": {
        "files": ["a/train.jsonl"],
        "yaml": """\
            configs:
            - config_name: default
              data_files:
                train: a/train.jsonl
            """},
    "error_config_without_name": {
        "files": ["a/train.jsonl"],
        "yaml": """\
            configs:
            - data_files: a/*.jsonl
            """},
    # Splits of different formats in one config.
    "error_formats_across_splits": {"files": ["train.jsonl", "test.csv"], "yaml": None},
    "error_two_defaults": {
        "files": ["a/train.jsonl", "b/train.jsonl"],
        "yaml": """\
            configs:
            - config_name: a
              data_files: a/*.jsonl
              default: true
            - config_name: b
              data_files: b/*.jsonl
              default: true
            """},
    "error_no_data_files": {"files": ["LICENSE", "scripts/run.py"], "yaml": "license: mit\n"},
}


def write_repo(repo, case):
    for rel in case["files"]:
        path = os.path.join(repo, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(file_bytes(rel))
    if case["yaml"] is None:
        return None
    yaml_text = textwrap.dedent(case["yaml"])
    with open(os.path.join(repo, "README.md"), "w", encoding="utf-8") as f:
        if yaml_text:
            f.write("---\n" + yaml_text + "---\n")
        f.write("# A test dataset\n")
    return yaml.safe_load(yaml_text) if yaml_text else None


def repo_files(repo):
    out = []
    for root, _, names in os.walk(repo):
        out += [os.path.relpath(os.path.join(root, n), repo).replace(os.sep, "/") for n in names]
    return sorted(out)


def relative(path, repo):
    """A resolved data file as a repo path."""
    return os.path.relpath(os.path.realpath(path), repo).replace(os.sep, "/")


def decide(repo, cache_dir):
    """What datasets decides about the repo: its configs, their splits and files, the default config."""
    import datasets

    try:
        names = datasets.get_dataset_config_names(repo)
        default = datasets.get_dataset_default_config_name(repo)
        configs = []
        for name in names:
            builder = datasets.load_dataset_builder(repo, name=name, cache_dir=cache_dir)
            # The packaged builder's module, e.g. datasets.packaged_modules.json.json -> "json".
            module = type(builder).__module__.split(".")[-1]
            splits = [{"name": str(split), "files": sorted(relative(p, repo) for p in files)}
                      for split, files in builder.config.data_files.items()]
            if any(not s["files"] for s in splits):
                # load_dataset_builder accepts a split whose patterns matched nothing; loading it fails, and that
                # failure is the answer.
                builder.download_and_prepare()
            configs.append({"name": name, "module": module, "splits": splits})
        return {"configs": configs, "default_config": default}
    except Exception as e:  # what datasets raises is the expected answer
        return {"error": True, "message": f"{type(e).__name__}: {str(e).strip()}".replace(repo, "<repo>")}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = os.path.realpath(args.out)
    hf_home = os.path.join(out, ".hf_home")
    for stale in [hf_home] + [os.path.join(out, name) for name in CASES]:
        shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    os.environ.update(OFFLINE_ENV)
    os.environ["HF_HOME"] = hf_home
    os.environ["HF_DATASETS_CACHE"] = os.path.join(hf_home, "datasets")
    import datasets  # only now, with the environment above

    manifest = {"datasets": datasets.__version__, "pyyaml": yaml.__version__, "cases": []}
    for name, case in CASES.items():
        case_dir = os.path.join(out, name)
        repo = os.path.join(case_dir, "repo")
        os.makedirs(repo)
        card = write_repo(repo, case)
        expected = {"files": repo_files(repo), **decide(repo, os.path.join(hf_home, "datasets"))}
        with open(os.path.join(case_dir, "card.json"), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=1)
        with open(os.path.join(case_dir, "expected.json"), "w", encoding="utf-8") as f:
            json.dump(expected, f, indent=1)
        manifest["cases"].append(name)
        if expected.get("error"):
            print(f"{name}: error: {expected['message'].splitlines()[0]}")
        else:
            print(f"{name}: default {expected['default_config']}; " + "; ".join(
                f"{c['name']} ({c['module']}): " + ", ".join(f"{s['name']} {s['files']}" for s in c["splits"])
                for c in expected["configs"]))
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    shutil.rmtree(hf_home, ignore_errors=True)
    print(f"{len(manifest['cases'])} cases in {out} (datasets {datasets.__version__})")


if __name__ == "__main__":
    sys.exit(main())
