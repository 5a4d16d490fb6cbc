# Shared environment for the scripts; sourced, never run.
# The Cargo target dir lives outside the clone so CI and fresh clones on the same machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fixbox/target}"
export PATH="$HOME/.cargo/bin:$PATH"
