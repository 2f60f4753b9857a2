#!/usr/bin/env sh
# Installs Ferry for the current user, without root and without Python:
#   ~/.local/opt/ferry/                         the bundle
#   ~/.local/bin/ferry                          a link to the bundle's `ferry`
#   ~/.local/share/applications/, metainfo/, icons/hicolor/   desktop entry, metadata, icons
# Every file placed is listed in ~/.local/opt/ferry/installed-files, which
# uninstall.sh reads to remove exactly those. Your settings, catalog and journal
# (in ~/.config/ferry and ~/.local/share/ferry) are never touched.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${FERRY_INSTALL_PREFIX:-$HOME/.local}"
app_id="io.github.ferry.Ferry"
opt="$prefix/opt/ferry"
bin="$prefix/bin"
share="$prefix/share"

if [ -d "$opt" ]; then
    echo "Replacing the Ferry installed in $opt"
    "$here/uninstall.sh" --quiet
fi
mkdir -p "$prefix/opt" "$bin" "$share/applications" "$share/metainfo"
cp -a "$here/ferry" "$opt"
cp "$here/uninstall.sh" "$opt/uninstall.sh"  # stays until uninstalled, with the bundle
manifest="$opt/installed-files"
: > "$manifest"
place() { # source target
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2"
    echo "$2" >> "$manifest"
}
ln -sfn "$opt/ferry" "$bin/ferry"
echo "$bin/ferry" >> "$manifest"
# The launcher runs the bundle by its full path: ~/.local/bin need not be on PATH.
sed -e "s|^Exec=ferry |Exec=$bin/ferry |" -e "s|^TryExec=ferry$|TryExec=$bin/ferry|" \
    "$here/share/$app_id.desktop" > "$opt/$app_id.desktop"
place "$opt/$app_id.desktop" "$share/applications/$app_id.desktop"
place "$here/share/$app_id.metainfo.xml" "$share/metainfo/$app_id.metainfo.xml"
for png in "$here"/share/hicolor/*/apps/ferry.png; do
    size="$(basename "$(dirname "$(dirname "$png")")")"
    place "$png" "$share/icons/hicolor/$size/apps/$app_id.png"
done
place "$here/share/hicolor/scalable/apps/ferry.svg" "$share/icons/hicolor/scalable/apps/$app_id.svg"

# No cache is refreshed: the entry declares no MIME types (mimeinfo.cache is not
# needed) and desktops read ~/.local/share/icons without an icon-theme.cache, so
# install and uninstall leave nothing behind that is not in the manifest.

echo "Ferry is installed in $opt."
echo "Start it from your desktop's menu, or run: $bin/ferry"
case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "Note: $bin is not on your PATH; add it to run \`ferry\` by name." ;;
esac
