#!/usr/bin/env bash
# Proves docker/Dockerfile's build stages without a container engine or an
# image registry: runs the `planner` and `builder` stages' COPY and RUN
# instructions, read from the Dockerfile itself, on this machine.
#
# Each stage gets a scratch folder standing for its WORKDIR (/build), and
# CARGO_TARGET_DIR points at a scratch target folder standing for
# /build/target, so nothing here touches the work tree's own target/. As in
# the image, the builder's `cargo chef cook` and its final `cargo build` share
# one folder and one target dir: the dependencies are compiled once.
#
# Beyond running the commands it checks what an image build would show only
# later: that the cargo-chef on PATH is the version the chef stage installs,
# that the runtime stage's COPY --from=builder finds its file, and that the
# binary built is the real one (a dummy main would print no version).
#
# An instruction in those stages that this script does not know stops it, so
# the Dockerfile cannot grow a step that CI silently skips.
#
# Usage: docker/check-build-stage.sh [SCRATCH_DIR]   (default: a new temp
# folder, removed at the end; a given folder is kept for inspection)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
dockerfile=docker/Dockerfile

if [ $# -ge 1 ]; then
    scratch=$1
    mkdir -p "$scratch"
    scratch=$(cd "$scratch" && pwd)
else
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
fi
export CARGO_TARGET_DIR="$scratch/target"
# The stages' WORKDIR, set in the chef stage and inherited.
workdir=
declare -A stage_dir

fail() { echo "check-build-stage: $*" >&2; exit 1; }

# `/build/x` inside stage $1 → its scratch path; /build/target is the scratch
# target dir, as CARGO_TARGET_DIR moved it.
host_path() {
    local stage=$1 path=$2
    [ -n "$workdir" ] || fail "no WORKDIR before a stage that uses it"
    case "$path" in
        "$workdir"/target | "$workdir"/target/*) echo "$CARGO_TARGET_DIR${path#"$workdir"/target}" ;;
        "$workdir"/*) echo "${stage_dir[$stage]}/${path#"$workdir"/}" ;;
        /*) fail "$stage: path $path is outside WORKDIR $workdir" ;;
        *) echo "${stage_dir[$stage]}/$path" ;;
    esac
}

# Docker's COPY: a folder's contents go into the destination; files go into
# it when it ends in `/` (or several are copied), else become it. Modification
# times are kept, as COPY keeps them.
copy() {
    local into=$1 dest=$2
    shift 2
    local target
    case "$dest" in
        /*) target=$(host_path "$stage" "$dest") ;;
        *) target="$into/$dest" ;;
    esac
    for src in "$@"; do
        if [ -d "$src" ]; then
            mkdir -p "$target"
            cp -a "$src"/. "$target"/
        elif [ -e "$src" ]; then
            if [[ "$dest" == */ || $# -gt 1 ]]; then
                mkdir -p "$target"
                cp -a "$src" "$target"/
            else
                mkdir -p "$(dirname "$target")"
                cp -a "$src" "$target"
            fi
        else
            fail "$stage: COPY source $src does not exist"
        fi
    done
}

# The Dockerfile as logical instructions: continuation lines joined, comments
# and blank lines dropped.
instructions() {
    sed -e '/^[[:space:]]*#/d' "$dockerfile" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' | sed -e '/^[[:space:]]*$/d'
}

stage=
ran=0
binary_checked=
while IFS= read -r line; do
    read -r keyword rest <<<"$line"
    keyword=${keyword^^}
    if [ "$keyword" = FROM ]; then
        # `FROM image AS name`; the last, unnamed stage is the runtime.
        stage=$(sed -n 's/.*[[:space:]][Aa][Ss][[:space:]]\+\([^[:space:]]\+\)[[:space:]]*$/\1/p' <<<"$rest")
        stage=${stage:-runtime}
        case "$stage" in
            planner | builder)
                stage_dir[$stage]="$scratch/$stage"
                rm -rf "${stage_dir[$stage]}"
                mkdir -p "${stage_dir[$stage]}"
                echo "--- stage $stage (in ${stage_dir[$stage]})"
                ;;
        esac
        continue
    fi
    case "$stage:$keyword" in
        *:WORKDIR)
            workdir=${rest%/}
            ;;
        chef:RUN)
            # Installs cargo-chef in the image; here .ci/run has installed it.
            # The two must be the same version, or this proves another tool.
            want=$(grep -o 'cargo-chef@[0-9][0-9.]*' <<<"$rest" | head -n 1 | cut -d@ -f2)
            [ -n "$want" ] || fail "chef stage: unknown RUN (expected cargo install cargo-chef@VERSION): $rest"
            have=$(cargo chef --version 2>/dev/null | awk '{print $2}') \
                || fail "cargo-chef is not installed (cargo install --locked cargo-chef@$want)"
            [ "$have" = "$want" ] || fail "cargo-chef $have is installed, the Dockerfile installs $want"
            echo "--- cargo-chef $have, as the chef stage installs"
            ;;
        planner:COPY | builder:COPY)
            read -r -a args <<<"$rest"
            if [[ "${args[0]}" == --from=* ]]; then
                from=${args[0]#--from=}
                [ -n "${stage_dir[$from]:-}" ] || fail "$stage: COPY from unknown stage $from"
                src=$(host_path "$from" "${args[1]}")
                copy "${stage_dir[$stage]}" "${args[2]}" "$src"
            else
                [[ "${args[0]}" != --* ]] || fail "$stage: COPY option ${args[0]} is not supported here"
                n=${#args[@]}
                copy "${stage_dir[$stage]}" "${args[n - 1]}" "${args[@]:0:n-1}"
            fi
            ;;
        planner:RUN | builder:RUN)
            echo "+ $rest"
            start=$SECONDS
            (cd "${stage_dir[$stage]}" && sh -ec "$rest") || fail "$stage: RUN failed: $rest"
            echo "--- $stage: done in $((SECONDS - start))s"
            ran=$((ran + 1))
            ;;
        runtime:COPY)
            read -r -a args <<<"$rest"
            if [ "${args[0]}" = --from=builder ]; then
                src=$(host_path builder "${args[1]}")
                [ -f "$src" ] || fail "runtime: COPY --from=builder ${args[1]}: the build stage made no such file"
                version=$("$src" --version) || fail "$src --version failed"
                case "$version" in
                    tempadmin\ *) echo "--- the runtime stage gets ${args[1]}: $version"; binary_checked=1 ;;
                    *) fail "${args[1]} is not the real binary (--version printed '$version')" ;;
                esac
            fi
            ;;
        planner:* | builder:*)
            fail "$stage: instruction $keyword is not known to this check; teach docker/check-build-stage.sh what it does in CI"
            ;;
        *) ;;
    esac
done < <(instructions)

[ "$ran" -ge 3 ] || fail "found only $ran RUN instructions in the planner and builder stages; is $dockerfile laid out as this script expects?"
[ -n "$binary_checked" ] || fail "the runtime stage has no COPY --from=builder of the binary; nothing checked what the build stage made"
echo "--- the Dockerfile's build stages succeed (${SECONDS}s)"
