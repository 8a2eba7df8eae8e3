#!/usr/bin/env bash
# The script behind action.yml, also run by tests/test_action.py against fixtures.
#
#   ckptguard-action.sh install   pip-install ckptguard into $CKPTGUARD_VENV
#   ckptguard-action.sh scan      scan $CKPTGUARD_PATHS, write SARIF, report to the log
#
# Everything comes from the environment (see action.yml); $CKPTGUARD_BIN, when set, is the path
# of a ckptguard executable to run instead of the one in $CKPTGUARD_VENV (tests use it).  It is
# one path, never split, so a workspace whose path holds spaces works.
set -euo pipefail

venv="${CKPTGUARD_VENV:-${RUNNER_TEMP:-/tmp}/ckptguard-venv}"

install() {
  local python="${CKPTGUARD_PYTHON:-python3}"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  if [[ -n "${CKPTGUARD_SPEC:-}" ]]; then
    "$venv/bin/python" -m pip install --quiet "$CKPTGUARD_SPEC"
  else
    "$venv/bin/python" -m pip install --quiet "${CKPTGUARD_ACTION_PATH:?}"
  fi
  "$venv/bin/ckptguard" --version
}

scan() {
  local -a command paths args
  if [[ -n "${CKPTGUARD_BIN:-}" ]]; then
    command=("$CKPTGUARD_BIN")
  else
    command=("$venv/bin/ckptguard")
  fi
  # Paths: split on whitespace only (no globbing, no expansion of what a workflow passes in).
  read -r -d '' -a paths < <(printf '%s\0' "${CKPTGUARD_PATHS:-.}" | tr '\n' ' ') || true
  if [[ ${#paths[@]} -eq 0 ]]; then
    paths=(".")
  fi
  local sarif="${CKPTGUARD_SARIF:-ckptguard.sarif}"
  args=(scan --no-progress
        --fail-on "${CKPTGUARD_FAIL_ON:-high}"
        --sarif-category "${CKPTGUARD_CATEGORY:-ckptguard}"
        --format sarif --output "$sarif" --format text)
  if [[ -n "${CKPTGUARD_CONFIG:-}" ]]; then
    args+=(--config "$CKPTGUARD_CONFIG")
  fi
  if [[ -n "${CKPTGUARD_BASELINE:-}" ]]; then
    args+=(--baseline "$CKPTGUARD_BASELINE")
  fi
  # The paths last, after '--': a workflow may pass file names from the pull request (changed
  # files), and a name such as '--exclude=*.pkl' must be a path, never an option.
  args+=(-- "${paths[@]}")
  local code=0
  "${command[@]}" "${args[@]}" || code=$?
  if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
    {
      echo "sarif-file=$sarif"
      echo "exit-code=$code"
    } >> "$GITHUB_OUTPUT"
  fi
  if [[ $code -eq 1 ]]; then
    echo "::error title=ckptguard::findings at or above '${CKPTGUARD_FAIL_ON:-high}' (see the report above and code scanning)"
  elif [[ $code -ne 0 ]]; then
    echo "::error title=ckptguard::ckptguard could not complete the scan (exit $code)"
  fi
  return "$code"
}

case "${1:-}" in
  install) install ;;
  scan) scan ;;
  *) echo "usage: $0 install|scan" >&2; exit 2 ;;
esac
