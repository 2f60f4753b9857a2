#!/usr/bin/env sh
# Removes what install.sh placed, as listed in ~/.local/opt/ferry/installed-files,
# and the bundle folder itself. Settings, catalog and journal stay where they are.
set -eu
prefix="${FERRY_INSTALL_PREFIX:-$HOME/.local}"
opt="$prefix/opt/ferry"
manifest="$opt/installed-files"
quiet="${1:-}"

if [ ! -f "$manifest" ]; then
    echo "Ferry is not installed in $opt (no $manifest); nothing removed." >&2
    exit 1
fi
while IFS= read -r path; do
    case "$path" in
        "$prefix"/*) ;;
        *) echo "Skipping $path: not under $prefix" >&2; continue ;;
    esac
    if [ -L "$path" ] || [ -f "$path" ]; then
        rm -f "$path"
    fi
done < "$manifest"
rm -rf "$opt"
[ "$quiet" = "--quiet" ] || echo "Ferry was removed from $opt. Your settings and catalog were kept."
