# Activates the espnet_s3net environment that tools/setup.sh installed.
__recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
__activate=${__recipe_dir}/../../../tools/activate_python.sh
if [ ! -f "${__activate}" ]; then
    echo "path.sh: ${__activate} not found: run tools/setup.sh at the repository root first" >&2
    return 1
fi
. "${__activate}"
unset __recipe_dir __activate
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ -d /usr/lib/sctk/bin ]; then export PATH="${PATH}:/usr/lib/sctk/bin"; fi
