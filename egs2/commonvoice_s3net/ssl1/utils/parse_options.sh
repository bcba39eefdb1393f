#!/usr/bin/env bash
# Parse --name value options into shell variables that the calling script already defined.
# Source it after the defaults:   . utils/parse_options.sh
# Both --foo_bar value and --foo-bar value set ${foo_bar}; --foo_bar=value works too.
# --help prints every settable variable with its current value. An option for an
# undefined variable is an error. The remaining (positional) arguments stay in "$@".

__po_usage() {
    echo "Usage: $0 [--option value] ... (options and their current values):"
    local __po_v
    for __po_v in ${__po_names}; do printf '  --%s %q\n' "${__po_v}" "${!__po_v}"; done
}

# every variable defined before this file was sourced is an option
__po_names=$(compgen -v | grep -v -E '^(__po_|BASH|COMP|DIRSTACK|EUID|FUNCNAME|GROUPS|HIST|HOSTNAME|HOSTTYPE|IFS|LINENO|MACHTYPE|OLDPWD|OPTERR|OPTIND|OSTYPE|PATH|PIPESTATUS|PPID|PS[0-9]|PWD|RANDOM|SECONDS|SHELL|SHELLOPTS|SHLVL|UID|_$|LC_|LANG|HOME|TERM|USER)')

while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h) __po_usage; exit 0 ;;
        --*=*) __po_name=${1%%=*}; __po_value=${1#*=}; shift ;;
        --*)
            if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 1; fi
            __po_name=$1; __po_value=$2; shift 2 ;;
        *) break ;;
    esac
    __po_name=${__po_name#--}
    __po_name=${__po_name//-/_}
    if ! [[ "${__po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ! declare -p "${__po_name}" >/dev/null 2>&1; then
        echo "$0: unknown option --${__po_name} (see $0 --help)" >&2
        exit 1
    fi
    printf -v "${__po_name}" '%s' "${__po_value}"
done
unset __po_name __po_value __po_names
