#!/usr/bin/env python3
"""Writes Parquet files with pyarrow, and what each row must read as, for tests/common/parquet_file_test.cc.

Into --out: one .parquet file per case, <case>.expected.jsonl (each row as a JSON object, by the rules of
common/parquet_file.h: lists are arrays, structs and string-keyed maps objects, other maps [key, value] pairs,
non-finite floats null, binary values UTF-8 text or else base64, dates, times, timestamps and decimals Arrow's own
text for them, i.e. pyarrow.compute.cast(value, string)), and manifest.json listing every case with its row count, row
groups, compression and per-column type and null count, plus the files that must be refused and why.

Cases: every column type the Hub's files use, with nulls, in several row groups; OpenAI-style chat messages
(list<struct>) and ShareGPT conversations; the same table under each compression (none, snappy, gzip, zstd, brotli,
lz4); dictionary-encoded and plain strings with data page v2; a large-ish file of many row groups; and damaged files
(truncated, wrong magic, a string column holding invalid UTF-8).

Usage: make_parquet_files.py --out DIR [--seed N]
"""
import argparse
import base64
import datetime
import decimal
import json
import math
import os
import random
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def feature_type(t):
    if pa.types.is_dictionary(t):
        return feature_type(t.value_type)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return "list"
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return "object"
    return "string"


def to_json(value, t):
    """A value of Arrow type t (as pyarrow gives it) as tuneforge must read it."""
    if value is None:
        return None
    if pa.types.is_dictionary(t):
        return to_json(value, t.value_type)
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        return value
    if pa.types.is_floating(t):
        return value if math.isfinite(value) else None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return value
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [to_json(v, t.value_type) for v in value]
    if pa.types.is_struct(t):
        return {t.field(i).name: to_json(value.get(t.field(i).name), t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_map(t):
        pairs = [(to_json(k, t.key_type), to_json(v, t.item_type)) for k, v in value]
        if pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type):
            return {k: v for k, v in pairs}
        return [[k, v] for k, v in pairs]
    raise TypeError(f"no rule for {t}")


def expected_rows(table):
    """Each row of the table as tuneforge must read it."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        t = column.type
        if (pa.types.is_temporal(t) or pa.types.is_decimal(t)) and not pa.types.is_dictionary(t):
            columns[name] = pc.cast(column, pa.string()).to_pylist()  # Arrow's own text for the value
        else:
            columns[name] = [to_json(v, t) for v in column.to_pylist()]
    return [{name: columns[name][i] for name in table.column_names} for i in range(table.num_rows)]


def write_case(out, manifest, name, table, **options):
    path = os.path.join(out, name + ".parquet")
    pq.write_table(table, path, **options)
    meta = pq.ParquetFile(path).metadata
    with open(os.path.join(out, name + ".expected.jsonl"), "w") as f:
        for row in expected_rows(table):
            f.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    manifest["cases"].append({
        "name": name,
        "file": name + ".parquet",
        "expected": name + ".expected.jsonl",
        "num_rows": table.num_rows,
        "row_groups": meta.num_row_groups,
        "compression": meta.row_group(0).column(0).compression.lower(),
        "columns": [{"name": f.name, "type": "null" if table.column(f.name).null_count == table.num_rows
                     else feature_type(f.type), "null_count": table.column(f.name).null_count}
                    for f in table.schema],
    })


def types_table(rng, n):
    def maybe(v, p=0.2):
        return None if rng.random() < p else v

    words = ["alpha", "beta", "gamma", "δέλτα", "日本語", "emoji 🙂", "", "line\nbreak", 'quote " and \\']
    return pa.table({
        "i8": pa.array([maybe(rng.randint(-128, 127)) for _ in range(n)], pa.int8()),
        "i32": pa.array([maybe(rng.randint(-2**31, 2**31 - 1)) for _ in range(n)], pa.int32()),
        "i64": pa.array([maybe(rng.randint(-2**63, 2**63 - 1)) for _ in range(n)], pa.int64()),
        "u64": pa.array([maybe(rng.randint(0, 2**64 - 1)) for _ in range(n)], pa.uint64()),
        "f32": pa.array([maybe(rng.uniform(-1e6, 1e6)) for _ in range(n)], pa.float32()),
        "f64": pa.array([maybe(rng.choice([rng.gauss(0, 1), float("nan"), float("inf"), 1e300])) for _ in range(n)],
                        pa.float64()),
        "flag": pa.array([maybe(rng.random() < 0.5) for _ in range(n)], pa.bool_()),
        "text": pa.array([maybe(rng.choice(words)) for _ in range(n)], pa.string()),
        "large_text": pa.array([maybe(rng.choice(words) * rng.randint(1, 3)) for _ in range(n)], pa.large_string()),
        "blob": pa.array([maybe(rng.choice([b"utf-8 bytes", bytes([0xff, 0x00, 0x10]), b""])) for _ in range(n)],
                         pa.binary()),
        "day": pa.array([maybe(datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randint(0, 2000)))
                         for _ in range(n)], pa.date32()),
        "at": pa.array([maybe(datetime.datetime(2024, 5, 17, 12, 0) + datetime.timedelta(seconds=rng.randint(0, 10**6)))
                        for _ in range(n)], pa.timestamp("us")),
        "price": pa.array([maybe(decimal.Decimal(rng.randint(-10**6, 10**6)) / 100) for _ in range(n)],
                          pa.decimal128(10, 2)),
        "ints": pa.array([maybe([maybe(rng.randint(0, 9), 0.1) for _ in range(rng.randint(0, 4))]) for _ in range(n)],
                         pa.list_(pa.int64())),
        "point": pa.array([maybe({"x": rng.randint(0, 9), "label": maybe(rng.choice(words))}) for _ in range(n)],
                          pa.struct([("x", pa.int32()), ("label", pa.string())])),
        "tags": pa.array([maybe([(rng.choice(words), rng.randint(0, 9)) for _ in range(rng.randint(0, 3))])
                          for _ in range(n)], pa.map_(pa.string(), pa.int32())),
        "by_id": pa.array([maybe([(rng.randint(0, 99), rng.choice(words))]) for _ in range(n)],
                          pa.map_(pa.int32(), pa.string())),
        "nothing": pa.array([None] * n, pa.null()),
        "all_null_text": pa.array([None] * n, pa.string()),
    })


def chat_table(rng, n):
    messages = []
    conversations = []
    for i in range(n):
        turns = [{"role": "user" if k % 2 == 0 else "assistant",
                  "content": f"turn {k} of row {i}: " + "x" * rng.randint(0, 20)} for k in range(rng.randint(1, 5))]
        messages.append(turns)
        conversations.append([{"from": "human" if k % 2 == 0 else "gpt", "value": t["content"]}
                              for k, t in enumerate(turns)])
    return pa.table({
        "messages": pa.array(messages, pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        "conversations": pa.array(conversations, pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
        "source": pa.array([rng.choice(["a", "b"]) for _ in range(n)], pa.string()),
    })


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"seed={seed} (replay: {sys.argv[0]} --out {args.out} --seed {seed})")
    rng = random.Random(seed)
    os.makedirs(args.out, exist_ok=True)
    manifest = {"seed": seed, "pyarrow": pa.__version__, "cases": [], "refused": []}

    types = types_table(rng, 257)
    write_case(args.out, manifest, "types", types, row_group_size=100, compression="snappy")
    write_case(args.out, manifest, "chat", chat_table(rng, 40), row_group_size=16, compression="zstd")
    simple = pa.table({"question": [f"what is {i} + 1?" for i in range(50)],
                       "answer": [str(i + 1) for i in range(50)],
                       "score": pa.array([None if i % 7 == 0 else i / 10 for i in range(50)], pa.float64())})
    for codec in ["none", "snappy", "gzip", "zstd", "brotli", "lz4"]:
        write_case(args.out, manifest, f"codec_{codec}", simple, compression=codec, row_group_size=20)
    write_case(args.out, manifest, "plain_v2", simple, use_dictionary=False, data_page_version="2.0",
               compression="zstd")
    write_case(args.out, manifest, "dictionary", pa.table({"label": pa.array([rng.choice(["x", "y", "z"])
                                                                                for _ in range(300)]).dictionary_encode(),
                                                           "n": list(range(300))}),
               use_dictionary=True, row_group_size=64, compression="gzip")
    many = pa.table({"id": list(range(5000)), "text": [f"row {i} " + "t" * (i % 50) for i in range(5000)]})
    write_case(args.out, manifest, "many_groups", many, row_group_size=700, compression="snappy")

    # Damaged files.
    whole = open(os.path.join(args.out, "types.parquet"), "rb").read()
    with open(os.path.join(args.out, "truncated.parquet"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    manifest["refused"].append({"file": "truncated.parquet", "message": "is not a readable Parquet file"})
    with open(os.path.join(args.out, "not_parquet.parquet"), "wb") as f:
        f.write(b'{"question": "this is json"}\n')
    manifest["refused"].append({"file": "not_parquet.parquet", "message": "is not a readable Parquet file"})
    bad = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(bytes([0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0])),
                                                 pa.py_buffer(b"ok\xff\xfe")])
    pq.write_table(pa.table({"text": bad}), os.path.join(args.out, "bad_utf8.parquet"))
    manifest["refused"].append({"file": "bad_utf8.parquet", "message": "row 1, column 'text' is not valid UTF-8"})

    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(manifest['cases'])} cases and {len(manifest['refused'])} damaged files into {args.out}")


if __name__ == "__main__":
    main()
