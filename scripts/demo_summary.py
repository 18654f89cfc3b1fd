#!/usr/bin/env python3
"""Prints a one-line summary of a tuneforge API response (JSON from buf curl on stdin) for the quick start.
Usage: demo_summary.py model|dataset|models|datasets"""
import json
import sys


def main():
    kind = sys.argv[1]
    r = json.load(sys.stdin)
    if kind == "model":
        m, v = r["model"], r["revision"]
        print("  %s: %s family=%s parameters=%s fingerprint=%s..." % (
            r["outcome"], m["name"], m["family"], v["parameterCount"], v["fingerprint"][:12]))
    elif kind == "dataset":
        d, v = r["dataset"], r["revision"]
        features = ", ".join("%s:%s" % (f["name"], f["type"]) for f in v["features"])
        splits = ", ".join("%s=%s rows" % (s["name"], s.get("numRows", 0)) for s in v["splits"])
        print("  %s: %s features [%s] splits [%s]" % (r["outcome"], d["name"], features, splits))
    else:
        for item in r.get(kind, []):
            print("  %s %s (%s)" % (item["name"], item.get("family", item.get("sourceType", "")), item["id"]))


if __name__ == "__main__":
    main()
