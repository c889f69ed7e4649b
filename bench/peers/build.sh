#!/usr/bin/env bash
# Builds the peer echo servers into bench/peers/bin/:
#   echo_epoll   (C, epoll)        echo_uring   (C, liburing)
#   tokio-echo   (Rust, tokio)     monoio-echo  (Rust, monoio/io_uring)
# Needs gcc, liburing-dev (apt-get install -y liburing-dev) and cargo.
# Usage: bench/peers/build.sh        (from anywhere)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$here/bin"
cc="${CC:-gcc}"
cflags=(-Wall -Wextra -O2)
mkdir -p "$bin"

die() { echo "build.sh: $*" >&2; exit 1; }

command -v "$cc" >/dev/null || die "no C compiler '$cc' (apt-get install -y gcc)"
command -v cargo >/dev/null || die "cargo not found (install Rust via rustup)"

# liburing-dev present? Compile and link a one-liner against it.
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf '#include <liburing.h>\nint main(void){struct io_uring r; return io_uring_queue_init(2,&r,0) ? 1 : 0;}\n' \
    > "$probe/probe.c"
if ! "$cc" "$probe/probe.c" -o "$probe/probe" -luring 2>"$probe/err"; then
    cat "$probe/err" >&2
    die "liburing-dev is missing: run 'apt-get install -y liburing-dev' (Debian/Ubuntu)"
fi

echo "build.sh: echo_epoll"
"$cc" "${cflags[@]}" -o "$bin/echo_epoll" "$here/c-epoll/echo_epoll.c"
echo "build.sh: echo_uring"
"$cc" "${cflags[@]}" -o "$bin/echo_uring" "$here/c-uring/echo_uring.c" -luring

echo "build.sh: tokio-echo, monoio-echo"
cargo build --release --locked --manifest-path "$here/rust/Cargo.toml"
cp "$here/rust/target/release/tokio-echo" "$here/rust/target/release/monoio-echo" "$bin/"

echo "build.sh: built into $bin:"
ls -1 "$bin"
