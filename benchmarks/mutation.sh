#!/usr/bin/env bash
# Mutation testing of the engine's core modules with mutmut 3, in a scratch copy of the project
# (the checkout, its pyproject.toml and its caches are never touched).
#
#   benchmarks/mutation.sh                      # the default modules below
#   benchmarks/mutation.sh tl_desktop/fileio.py # just these
#   MUTATION_DIR=/tmp/m MAX_CHILDREN=2 benchmarks/mutation.sh ...
#   MUTANTS='tl_desktop.fileio.* tl_desktop.engine.models.bundle.x_read_bundle*' benchmarks/mutation.sh \
#       tl_desktop/fileio.py tl_desktop/engine/models/bundle.py   # only the mutants matching these globs
#
# Then read the survivors: cd "$MUTATION_DIR" && mutmut results; mutmut show <name>.
# mutmut 3 mutates function bodies only: decorated functions (atomic_writer is a
# @contextmanager) and module-level constants (_PICKLE_SUFFIXES, LEVEL) are left alone, so
# benchmarks/mutate_by_hand.py covers those (and the mutations an issue once named).
# Needs: pip install mutmut hypothesis. Slow: on two shared cores about one atomic-write mutant a
# second, but 5-10 s for each model-file or interval mutant (every forked worker warms torch up), so
# the whole default set (~1,900 mutants) is an overnight job; narrow it with MUTANTS.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${MUTATION_DIR:-${TMPDIR:-/tmp}/tl-mutation}"
children="${MAX_CHILDREN:-2}"

# Module -> the fast engine tests that exercise it.
declare -A TESTS=(
  [tl_desktop/fileio.py]="tests/engine/test_fileio.py"
  [tl_desktop/engine/models/bundle.py]="tests/engine/test_bundle.py"
  [tl_desktop/engine/evaluation/bootstrap.py]="tests/engine/test_bootstrap.py tests/engine/test_metrics.py tests/engine/test_properties.py"
  [tl_desktop/engine/evaluation/intervals.py]="tests/engine/test_bootstrap.py tests/engine/test_metrics.py tests/engine/test_properties.py"
  [tl_desktop/engine/evaluation/metrics.py]="tests/engine/test_metrics.py tests/engine/test_bootstrap.py tests/engine/test_properties.py"
  [tl_desktop/engine/training/callbacks.py]="tests/engine/test_training_rules.py tests/engine/test_trainer.py"
  [tl_desktop/engine/training/recipe.py]="tests/engine/test_training_rules.py tests/engine/test_trainer.py"
)
if [ "$#" -gt 0 ]; then
  modules=("$@")
else
  modules=(tl_desktop/engine/models/bundle.py tl_desktop/fileio.py tl_desktop/engine/evaluation/bootstrap.py
           tl_desktop/engine/evaluation/intervals.py tl_desktop/engine/evaluation/metrics.py tl_desktop/engine/training/callbacks.py
           tl_desktop/engine/training/recipe.py)
fi

declare -A selected=()
for module in "${modules[@]}"; do
  [ -n "${TESTS[$module]:-}" ] || { echo "no test list for $module (add it to TESTS in $0)" >&2; exit 2; }
  for test in ${TESTS[$module]}; do selected[$test]=1; done
done

rm -rf "$work"
mkdir -p "$work"
(cd "$repo" && tar --exclude=__pycache__ --exclude=.hypothesis --exclude='*.egg-info' -cf - tl_desktop tests pyproject.toml) \
  | tar -xf - -C "$work"
{
  cat "$repo/benchmarks/mutmut.cfg"
  echo "only_mutate ="
  printf '    %s\n' "${modules[@]}"
  echo "pytest_add_cli_args_test_selection ="
  printf '    %s\n' "${!selected[@]}"
} > "$work/setup.cfg"

cd "$work"
export QT_QPA_PLATFORM=offscreen
# One intra-op thread per worker: the workers already run side by side on the few cores.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TL_DESKTOP_NUM_THREADS=1
echo "Mutating ${modules[*]} in $work (tests: ${!selected[*]})"
start=$SECONDS
# shellcheck disable=SC2086  # MUTANTS is a list of globs for mutmut to match, not for the shell
set -f
mutmut run --max-children "$children" ${MUTANTS:-} > mutmut-run.log 2>&1 || { tail -n 40 mutmut-run.log; exit 1; }
set +f
echo "mutmut run took $((SECONDS - start)) s"

# One line per module: killed / survived / other (timeouts, suspicious, no tests).
mutmut results --all true > mutmut-results.txt 2>/dev/null
python3 - mutmut-results.txt <<'PY'
import collections, re, sys
counts = collections.defaultdict(collections.Counter)
for line in open(sys.argv[1], encoding="utf-8"):
    name, _, status = line.strip().rpartition(": ")
    match = re.match(r"(.+?)\.x(?:_|\u01c1)", name)  # module.x_function__mutmut_N, module.x\u01c1Class\u01c1method__mutmut_N
    if match:
        counts[match.group(1)][status] += 1
for module, c in sorted(counts.items()):
    other = {k: v for k, v in c.items() if k not in ("killed", "survived")}
    print(f"{module:45} killed {c['killed']:4}  survived {c['survived']:4}  other {sum(other.values()):3} {other or ''}")
PY
echo "Survivors: cd $work && mutmut results   (mutmut show NAME for the diff)"
