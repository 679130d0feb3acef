#!/usr/bin/env bash
# Installs the Debian packages the native stack and its tests use, and unpacks the Debian packages
# whose text langid trains on. Idempotent: installs only what is missing, unpacks only when the
# list changed. Needs root (or sudo) the first time.
#   scripts/install-system-deps.sh                  everything
#   scripts/install-system-deps.sh --training-data  only what training reads (word lists, text)
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(prometheus nginx-light wamerican wngerman wfrench wspanish witalian wportuguese wdutch)
# langid's sentences: translated manual pages and gettext message catalogues (the English side
# of a catalogue is its msgids), in all seven languages. These are only unpacked (dpkg-deb -x)
# into build/langid-text/, never installed: a catalogue of systemd or PackageKit is wanted, the
# program is not. models/langid_data.py reads them from there.
text_packages=(
  manpages manpages-de manpages-fr manpages-es manpages-it manpages-pt-br manpages-nl
  coreutils bash dpkg tar diffutils findutils grep sed make wget psmisc login apt libapt-pkg6.0
  libc-l10n gettext libglib2.0-data libgtk2.0-common libgdk-pixbuf2.0-common libgnutls30
  gsettings-desktop-schemas libgstreamer1.0-0 appstream packagekit systemd gnupg-l10n adduser
)
text_dir=build/langid-text
training_only=false
[ "${1:-}" = "--training-data" ] && training_only=true && packages=(wamerican wngerman wfrench wspanish witalian wportuguese wdutch)

sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
$training_only || command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
updated=false
if ((${#missing[@]})); then
  echo "Installing: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq && updated=true
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The manifest names the packages asked for; unpack again only when that list changes.
want=$(printf '%s\n' "${text_packages[@]}" | sort)
if [ "$(cat "$text_dir/packages.txt" 2>/dev/null)" != "$want" ]; then
  echo "Unpacking langid's text packages into $text_dir/"
  debs=$(mktemp -d)
  trap 'rm -rf "$debs"' EXIT
  # apt-get download needs no root, but a fresh machine has no package lists yet.
  if ! (cd "$debs" && apt-get download -qq "${text_packages[@]}" >/dev/null 2>&1); then
    $updated || "${sudo_cmd[@]}" apt-get update -qq
    (cd "$debs" && apt-get download -qq "${text_packages[@]}" >/dev/null)
  fi
  rm -rf "$text_dir" && mkdir -p "$text_dir/root"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$text_dir/root"; done
  # Only manual pages and message catalogues are read; drop binaries and libraries.
  find "$text_dir/root" -mindepth 1 -maxdepth 1 ! -name usr -exec rm -rf {} +
  find "$text_dir/root/usr" -mindepth 1 -maxdepth 1 ! -name share -exec rm -rf {} +
  find "$text_dir/root/usr/share" -mindepth 1 -maxdepth 1 ! -name man ! -name locale -exec rm -rf {} +
  # ... and other languages (English pages are man/man[1-8]; English messages are the msgids).
  find "$text_dir/root/usr/share/man" "$text_dir/root/usr/share/locale" -mindepth 1 -maxdepth 1 \
    ! -name 'man[1-8]' ! -name de ! -name fr ! -name es ! -name it ! -name pt ! -name pt_BR ! -name nl \
    -exec rm -rf {} +
  (cd "$debs" && ls -1 ./*.deb | sed 's|^\./||') > "$text_dir/versions.txt"
  printf '%s\n' "$want" > "$text_dir/packages.txt"
fi
$training_only && { echo "Training data present."; exit 0; }

# The Debian packages enable a system Prometheus on :9090 and a system nginx on :80; ours run on
# their own (nginx as the front door, stackctl/serve/front_door.py), so stop those.
for service in prometheus nginx; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true; systemctl disable "$service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$service" ] && "/etc/init.d/$service" status >/dev/null 2>&1; then
    "${sudo_cmd[@]}" "/etc/init.d/$service" stop >/dev/null || true   # no systemd (a container)
  fi
done
echo "System dependencies present."
