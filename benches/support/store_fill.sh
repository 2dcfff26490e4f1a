# Sourced by the benchmark scripts that need a store filled with realistic runs.
# Needs ROOT and BUILD; sets FILL to the store_fill binary (benches/store_fill.rs).
if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -q && cargo bench --bench store_fill --no-run -q)
fi
FILL=$(ls -t "$ROOT"/target/release/deps/store_fill-* 2>/dev/null | grep -v '\.d$' | head -1)
if [ -z "$FILL" ]; then
    echo "store_fill is not built; run without --no-build once (or cargo bench --bench store_fill --no-run)" >&2
    exit 2
fi
