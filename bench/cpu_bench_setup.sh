# Sourced by the CPU bench scripts after they set bench_name (a program in BUILD_DIR/bench) and default3 and
# default4: reads the arguments [BUILD_DIR] [THREADS] [ARG3] [ARG4] into build, threads, arg3 and arg4, finds the
# program (bench) and the Python (PYTHON, or the project's environment), and makes a work directory removed at exit.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/../build}"
threads="${2:-2}"
arg3="${3:-$default3}"
arg4="${4:-$default4}"
bench="$build/bench/$bench_name"
python="${PYTHON:-$(bash "$here/../scripts/python-env.sh")/bin/python}"

if [[ ! -x "$bench" ]]; then
  echo "no $bench: build it with cmake --build $build --target $bench_name" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
