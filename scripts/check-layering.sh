#!/usr/bin/env bash
# Fails when a crate depends on something its layer must not know about.
#
# The dependency direction is
#     domain <- application <- adapter-* <- bootstrap
# and the frameworks stay in the adapter that owns them.
#
# What counts as "depends on": the normal (non-dev, non-build) dependencies
# of the crate itself and of every workspace crate it pulls in, directly or
# transitively. So `application` may not reach tokio through `domain` either.
# Third-party crates that third-party crates pull in are not judged (e.g.
# chrono's `serde` feature brings serde into domain's graph without domain
# using serde); they are listed as notes only.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORKSPACE_CRATES=(domain application adapter-http adapter-postgres adapter-data-platform bootstrap)
ADAPTERS=(adapter-http adapter-postgres adapter-data-platform)

# crate -> space separated forbidden packages
declare -A FORBIDDEN=(
    [domain]="tokio actix-web actix-rt diesel diesel-async reqwest serde async-trait utoipa application adapter-http adapter-postgres adapter-data-platform bootstrap"
    [application]="diesel diesel-async actix-web reqwest utoipa tokio adapter-http adapter-postgres adapter-data-platform bootstrap"
    [adapter-http]="diesel diesel-async reqwest"
    [adapter-postgres]="actix-web reqwest"
    [adapter-data-platform]="diesel diesel-async actix-web"
)
for adapter in "${ADAPTERS[@]}"; do
    for other in "${ADAPTERS[@]}" bootstrap; do
        [[ "$other" == "$adapter" ]] && continue
        FORBIDDEN[$adapter]+=" $other"
    done
done

CARGO="${CARGO:-cargo}"

# Package names in the normal dependency graph of $1 (including $1),
# limited to $2 levels (empty = unlimited).
deps_of() {
    local depth=()
    [[ -n "${2:-}" ]] && depth=(--depth "$2")
    "$CARGO" tree -p "$1" -e normal --target all "${depth[@]}" \
        --prefix none --format '{p}' | awk 'NF { print $1 }' | sort -u
}

is_workspace_crate() {
    local c
    for c in "${WORKSPACE_CRATES[@]}"; do [[ "$c" == "$1" ]] && return 0; done
    return 1
}

failures=()
notes=()
for crate in domain application "${ADAPTERS[@]}"; do
    all_deps="$(deps_of "$crate")" ||
        { echo "check-layering: 'cargo tree -p $crate' failed" >&2; exit 1; }

    # Direct deps of the crate and of every workspace crate it reaches,
    # remembering which of our crates brought each one in.
    declare -A via=()
    while IFS= read -r member; do
        is_workspace_crate "$member" || continue
        while IFS= read -r dep; do
            [[ "$dep" == "$member" ]] && continue
            via[$dep]+="${via[$dep]:+, }$member"
        done < <(deps_of "$member" 1)
    done <<<"$all_deps"

    for bad in ${FORBIDDEN[$crate]}; do
        if [[ -n "${via[$bad]:-}" ]]; then
            if [[ "${via[$bad]}" == "$crate" ]]; then
                failures+=("$crate must not depend on $bad")
            else
                failures+=("$crate must not depend on $bad (pulled in by: ${via[$bad]})")
            fi
        elif grep -qx -- "$bad" <<<"$all_deps"; then
            notes+=("$bad is in the graph of $crate only through third-party crates")
        fi
    done
    unset via
done

for note in "${notes[@]}"; do
    echo "check-layering: note: $note" >&2
done

if ((${#failures[@]})); then
    {
        echo "check-layering: FAILED, the dependency direction is broken:"
        for f in "${failures[@]}"; do echo "  - $f"; done
        echo "Allowed direction: domain <- application <- adapter-* <- bootstrap;"
        echo "frameworks stay in their adapter (actix-web/utoipa: adapter-http,"
        echo "diesel: adapter-postgres, reqwest: adapter-data-platform)."
    } >&2
    exit 1
fi

echo "check-layering: OK (domain <- application <- adapters <- bootstrap)"
