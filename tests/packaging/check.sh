#!/bin/bash
# check.sh [SOURCE_DIR]: the packaging checks, in a temporary folder.
#   1. default_library=static, shared and both each build and install
#      (meson install --destdir) with a multiarch libdir, and install the
#      libraries they should;
#   2. a program links against each install through pkg-config (also with
#      --define-prefix and --static) and runs;
#   3. a meson project finds the install with dependency('ipckit') and
#      dependency('ipckit', static: true) through pkg-config;
#   4. a meson project uses ipckit as a subproject: only the library is
#      built, no test and no tool joins the parent's, static: true links
#      the static library, and the parent can ask for ipckit's tests.
# Run by `meson test -C build --suite packaging` (not in the default run)
# or directly; CI calls it. Exit status 0 when every check passed.
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
here=$src/tests/packaging
T=$(mktemp -d "${TMPDIR:-/tmp}/ipckit-packaging.XXXXXX")
trap 'rm -rf "$T"' EXIT
libdir=lib/x86_64-linux-gnu
checks=0

step() { echo "== $*"; }
ok() { checks=$((checks + 1)); echo "ok: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }
# needs_so BINARY: does it load libipckit.so?
needs_so() { readelf -d "$1" | grep -q 'NEEDED.*libipckit\.so'; }
quiet() { "$@" >"$T/last.log" 2>&1 || { cat "$T/last.log" >&2; die "$*"; }; }

# A meson project that finds ipckit with dependency(); $1 = its folder.
consumer_project() {
	mkdir -p "$1"
	cp "$here/consumer.c" "$1/"
	cat >"$1/meson.build" <<'MESON'
project('consumer', 'c', default_options: ['c_std=c11'])
if get_option('as_subproject')
  subproject('ipckit')
endif
executable('consumer', 'consumer.c', dependencies: dependency('ipckit'))
executable('consumer_static', 'consumer.c', dependencies: dependency('ipckit', static: true))
test('consumer', find_program('true'))
MESON
	echo "option('as_subproject', type: 'boolean', value: false)" >"$1/meson_options.txt"
}

for kind in static shared both; do
	step "default_library=$kind"
	b=$T/build-$kind d=$T/dest-$kind
	quiet meson setup "$b" "$src" -Ddefault_library=$kind -Dprefix=/usr/local -Dlibdir=$libdir \
		-Dtests=disabled -Dwerror=true
	quiet ninja -C "$b"
	DESTDIR=$d quiet meson install -C "$b" --no-rebuild
	L=$d/usr/local/$libdir
	[ -f "$d/usr/local/include/ipckit.h" ] || die "$kind: no header installed"
	case $kind in static | both) [ -f "$L/libipckit.a" ] || die "$kind: no libipckit.a" ;; esac
	case $kind in shared | both) [ -e "$L/libipckit.so" ] || die "$kind: no libipckit.so" ;; esac
	[ $kind != static ] || [ ! -e "$L/libipckit.so" ] || die "static installed a shared library"
	[ $kind != shared ] || [ ! -e "$L/libipckit.a" ] || die "shared installed a static library"
	[ -x "$d/usr/local/bin/ipckit-cat" ] || die "$kind: ipckit-cat not installed"
	[ ! -e "$d/usr/local/bin/ipckit-bench" ] || die "$kind: ipckit-bench installed without -Dbench_install"
	ok "$kind builds and installs the right files"

	export PKG_CONFIG_PATH=$L/pkgconfig PKG_CONFIG_LIBDIR=$L/pkgconfig
	inc=$(pkg-config --define-prefix --variable=includedir ipckit)
	[ -f "$inc/ipckit.h" ] || die "$kind: pkg-config --define-prefix includedir $inc has no ipckit.h"
	for how in "" "--define-prefix" "--static"; do
		# shellcheck disable=SC2046,SC2086
		gcc -std=c11 -o "$T/c-$kind" "$here/consumer.c" $(pkg-config $how --cflags --libs ipckit) ||
			die "$kind: linking with pkg-config $how"
		LD_LIBRARY_PATH=$L "$T/c-$kind" >/dev/null || die "$kind: the pkg-config $how program fails"
	done
	ok "$kind: pkg-config (plain, --define-prefix, --static) links a program that runs"

	consumer_project "$T/pc-$kind"
	quiet meson setup "$T/pc-$kind/build" "$T/pc-$kind"
	quiet ninja -C "$T/pc-$kind/build"
	LD_LIBRARY_PATH=$L "$T/pc-$kind/build/consumer" >/dev/null || die "$kind: meson consumer fails"
	"$T/pc-$kind/build/consumer_static" >/dev/null 2>&1 || [ $kind = shared ] ||
		die "$kind: static consumer fails"
	if [ $kind = both ] && needs_so "$T/pc-$kind/build/consumer_static"; then
		die "both: dependency('ipckit', static: true) linked the shared library"
	fi
	ok "$kind: meson dependency('ipckit') and (static: true) through pkg-config"
	unset PKG_CONFIG_PATH PKG_CONFIG_LIBDIR
done

step "as a subproject"
p=$T/parent
consumer_project "$p"
mkdir -p "$p/subprojects"
ln -s "$src" "$p/subprojects/ipckit"
quiet meson setup "$p/build" "$p" -Das_subproject=true
quiet ninja -C "$p/build"
"$p/build/consumer" >/dev/null || die "subproject consumer fails"
"$p/build/consumer_static" >/dev/null || die "subproject static consumer fails"
needs_so "$p/build/consumer_static" && die "subproject: static: true linked the shared library"
needs_so "$p/build/consumer" || die "subproject: the default dependency is not the shared library"
ntests() { meson introspect --tests "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
tests=$(ntests "$p/build")
[ "$tests" -eq 1 ] || die "subproject: the parent has $tests tests, want its own 1"
installed=$(meson introspect --installed "$p/build")
for tool in ipckit-bench ipckit-report ipckit-cat; do
	! grep -q "$tool" <<<"$installed" || die "subproject installs $tool"
done
built=$(find "$p/build/subprojects" -type f -perm -u+x -name 'ipckit*' -o -type f -name 'test-*' | wc -l)
[ "$built" -eq 0 ] || die "subproject built $built programs: $(find "$p/build/subprojects" -type f -perm -u+x)"
ok "subproject: only the library is built; no tests, tools or bench installed; static: true is static"

quiet meson setup "$p/build-t" "$p" -Das_subproject=true -Dipckit:tests=enabled -Dipckit:examples=enabled
n=$(ntests "$p/build-t")
[ "$n" -gt 1 ] || die "subproject with -Dipckit:tests=enabled has no ipckit tests"
ok "subproject: the parent can ask for ipckit's tests ($n tests)"

echo "$checks passed, 0 failed"
