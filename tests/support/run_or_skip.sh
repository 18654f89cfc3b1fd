#!/usr/bin/env bash
# Runs a test command, or reports the test skipped (exit 77, the tests' SKIP_RETURN_CODE) with the reason when what
# it needs is not on this machine.
# Usage: run_or_skip.sh --needs-dir DIR "why" -- COMMAND...
#        run_or_skip.sh --needs-python PY "modules" -- COMMAND...   (PY must import every module listed)
#        run_or_skip.sh --shared-testdata ROOT RELATIVE -- COMMAND...
#            ROOT is ../shared/testdata as configured; TUNEFORGE_SHARED_TESTDATA in the environment overrides it, as it
#            does for the C++ tests (tests/support/testdata.h). Runs COMMAND with ROOT/RELATIVE as its last argument.
set -euo pipefail
kind="$1" what="$2" why="$3"
shift 3
[ "${1:-}" = "--" ] && shift
case "$kind" in
  --needs-dir)
    if [ ! -d "$what" ]; then echo "SKIPPED: $what is not here ($why)"; exit 77; fi ;;
  --needs-python)
    if [ -z "$what" ] || ! "$what" -c "import ${why// /, }" 2>/dev/null; then
      echo "SKIPPED: no Python that imports $why (configure with -DTUNEFORGE_TEST_PYTHON=/path/to/python, or build"
      echo "with scripts/build.sh, which uses the project's environment from scripts/python-env.sh)"
      exit 77
    fi ;;
  --shared-testdata)
    root="${TUNEFORGE_SHARED_TESTDATA:-$what}"
    if [ ! -d "$root/$why" ]; then
      echo "SKIPPED: ../shared/testdata is not beside the clone: $root/$why does not exist (the fixed transformers"
      echo "4.44 / PEFT 0.12 reference cases and the real tokenizer vocabularies; TUNEFORGE_SHARED_TESTDATA names"
      echo "another place)"
      exit 77
    fi
    exec "$@" "$root/$why" ;;
  *) echo "run_or_skip.sh: unknown check $kind" >&2; exit 2 ;;
esac
exec "$@"
