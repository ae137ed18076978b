#!/usr/bin/env bash
# The whole test suite: unit, property, library and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo test --workspace --locked
