#!/usr/bin/env bash
# The GPU benchmarks of ../shared/GPU.md as two commands: `prepare` here (builds the
# binaries, fetches the Vulkan loader, packs both into .gl and .gpu, which .gitignore keeps
# out of the tree), `run` on the GPU machine (no Rust, no network: it unpacks them and runs
# the roofline, our step times per storage layout, the side-by-side comparison with Burn when
# its binary was packed, and the criterion groups, each output into $OUT, or ./gpu-out).
#
#   tools/gpu.sh prepare [BURN_BENCH]   # default BURN_BENCH: /tmp/burn-target/release/burn-bench
#   tools/gpu.sh run                    # there; with the device tool: carry .gl and .gpu
#
# What `prepare` packs stays under the device tool's 64 MiB carry limit: stripped binaries
# in one gzip archive (22 MB with Burn's, which is 49 MB stripped). `run` records the adapter
# wgpu reports in every output (each binary prints it) and the GPU's clocks as found; it never
# changes clocks, power limits or modes. Timed runs check their results against the CPU
# reference (roofline, step_time) as on lavapipe. A dry run here, at small sizes, took 4.5
# minutes on lavapipe; on a GPU the roofline and the step times take seconds, the Burn
# comparison (its autotuning) most of the budget.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
    local burn=${1:-/tmp/burn-target/release/burn-bench}
    rm -rf .gl .gpu && mkdir -p .gl .gpu/bin /tmp/amd64/partial
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${o[@]}" update -qq
    (cd .gl && apt-get "${o[@]}" download -qq libvulkan1)
    cargo build --release --example roofline --example step_time
    local bench
    bench=$(cargo bench --no-run --bench optimizers 2>&1 \
        | sed -n 's/.*(\(target\/release\/deps\/optimizers-[0-9a-f]*\)).*/\1/p' | tail -1)
    [ -x "$bench" ] || { echo "no bench binary found" >&2; exit 1; }
    cp target/release/examples/roofline target/release/examples/step_time .gpu/bin/
    cp "$bench" .gpu/bin/optimizers
    if [ -x "$burn" ]; then
        cp "$burn" .gpu/bin/burn-bench
    else
        echo "no $burn: the side-by-side comparison will be skipped (build it: BENCHMARKS.md)" >&2
    fi
    strip .gpu/bin/*
    tar -C .gpu -czf .gpu/bin.tar.gz bin && rm -rf .gpu/bin
    cp tools/side_by_side.py .gpu/
    git rev-parse --short HEAD > .gpu/commit
    du -sh .gl .gpu
    echo "then, with the device tool: run(command=\"bash tools/gpu.sh run\", carry=[\".gl\", \".gpu\"])"
}

# Sizes and rounds, overridable for a dry run on lavapipe (GPU_SH_SIZES="1048576"
# GPU_SH_N=1M GPU_SH_ROUNDS=1 tools/gpu.sh run).
run() {
    local out=${OUT:-gpu-out}
    local sizes=${GPU_SH_SIZES:-16777216 67108864} n=${GPU_SH_N:-16M} rounds=${GPU_SH_ROUNDS:-5}
    mkdir -p "$out"
    # The Vulkan loader, unless the machine has one.
    if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    export WGPU_BACKEND=vulkan
    tar -C .gpu -xzf .gpu/bin.tar.gz
    local bin=.gpu/bin
    {
        echo "commit $(cat .gpu/commit), $(date -u '+%F %T') UTC"
        nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit --format=csv || true
        lscpu | grep -E 'Model name|^CPU\(s\)' || true
    } | tee "$out/machine.txt"

    # The roofline: every optimizer and storage layout against the copy engine, 16M and 64M.
    for size in $sizes; do
        timeout 120 "$bin/roofline" "$size" 2>&1 | tee "$out/roofline-$size.txt" || true
    done

    # 8-bit states both ways (issue 29): lanes sharing blocks in one pass (GPUs' default)
    # against a block per invocation in two (`WGPU_OPTIM_RUNS=1`, CPU adapters' default).
    for r in $(seq "$rounds"); do
        for runs in 0 1; do
            echo "round $r runs=$runs"
            WGPU_OPTIM_RUNS=$runs timeout 60 "$bin/roofline" "${sizes%% *}" 8-bit 2>&1 || true
        done
    done 2>&1 | tee "$out/roofline-8bit.txt"

    # Our step times per storage layout, interleaved with f32, round after round.
    for r in $(seq "$rounds"); do
        for p in f32 bf16 bf16-states f16 bf16-f32-states bf16-master bf16-sr 8bit-states; do
            echo "round $r $(timeout 60 "$bin/step_time" --n "$n" --steps 50 --precision "$p" 2>&1 \
                | grep '^ours' || echo "precision=$p failed")"
        done
    done 2>&1 | tee "$out/precision.txt"

    # Side by side with Burn, the five cases of issue 11 and the two clip cases, 3 rounds.
    if [ -x "$bin/burn-bench" ] && command -v python3 > /dev/null; then
        timeout 240 python3 .gpu/side_by_side.py --rounds 3 --burn "$bin/burn-bench" \
            --ours "$bin/step_time" --timeout 120 \
            --cases 1m,16m,1m-x100,1m-x1000,clip-1m-x1000,clip-1m-x1,clip-16m-x1 \
            2> "$out/side_by_side.log" | tee "$out/side_by_side.txt" || true
    fi

    # The criterion groups that compare within one run, short measurement windows.
    timeout 240 "$bin/optimizers" --bench --warm-up-time 1 --measurement-time 2 \
        'fusion|clip_|many_small|precision' 2>&1 | tee "$out/bench.txt" || true
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) run ;;
    *) echo "usage: tools/gpu.sh prepare [BURN_BENCH] | tools/gpu.sh run" >&2; exit 2 ;;
esac
