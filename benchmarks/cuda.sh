#!/usr/bin/env bash
# The CUDA groups of the benchmark suite (identity, ReLU on 16M elements, the MLP step) on a GPU machine that has
# PyTorch with CUDA but no .NET: TorchSharp runs against PyTorch's own libtorch, and the .NET runtime travels along.
#
# 1. Here (a machine with the .NET SDK), from the repository root:
#      bash benchmarks/cuda.sh prepare
#    writes .gpu/ (git-ignored): the .NET runtime (dotnet-rt.tar.xz), the published benchmark program without
#    libtorch's shared objects (bench/), about 50 MB in all.
# 2. On the GPU machine, with the working tree and .gpu/ carried along, from the repository root:
#      bash benchmarks/cuda.sh run [--quick] [more arguments for the benchmark program]
#    runs `CustomAutograd.Benchmarks --device cuda` and writes its log, the goal table (goals.md) and
#    BenchmarkDotNet's reports to $OUT (or .gpu/results/ when OUT is not set). The full run takes about 5 minutes;
#    --quick about 1.
# TORCH_LIB=<dir> overrides where libtorch is taken from (default: the lib folder of python3's torch package).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
gpu=.gpu

prepare() {
  command -v dotnet >/dev/null || { echo "prepare needs the .NET SDK (dotnet on PATH)" >&2; exit 1; }
  mkdir -p "$gpu"
  local dn ver
  dn=$(dirname "$(readlink -f "$(command -v dotnet)")")
  ver=$(dotnet --list-runtimes | awk '$1=="Microsoft.NETCore.App"{v=$2} END{print v}')
  if [ ! -f "$gpu/dotnet-rt.tar.xz" ] || [ "$(cat "$gpu/dotnet-rt.version" 2>/dev/null)" != "$ver" ]; then
    echo "packing the .NET runtime $ver"
    tar -C "$dn" -cJf "$gpu/dotnet-rt.tar.xz" dotnet host "shared/Microsoft.NETCore.App/$ver"
    echo "$ver" > "$gpu/dotnet-rt.version"
  fi
  rm -rf "$gpu/bench"
  dotnet publish benchmarks/CustomAutograd.Benchmarks -c Release -r linux-x64 --self-contained false -o "$gpu/bench" \
    >"$gpu/publish.log" 2>&1 || { tail -n 20 "$gpu/publish.log"; exit 1; }
  local a="$gpu/bench"
  # libtorch comes from the GPU machine's PyTorch; keep LibTorchSharp (patched for older libstdc++) and the shim.
  find "$a" -type f \( -name 'libtorch*.so*' -o -name 'libc10*.so*' -o -name 'libgomp*' -o -name 'libshm*' \
       -o -name 'libbackend_with_compiler*' -o -name 'libjitbackend_test*' -o -name 'libnnapi_backend*' \
       -o -name 'libaoti_custom_ops*' -o -name '*.dylib' -o -name '*.dll.a' \) -delete
  rm -rf "$a"/runtimes/win* "$a"/runtimes/osx* "$a"/runtimes/linux-arm* "$a"/runtimes/linux-musl*
  # BenchmarkDotNet's Windows tracing natives and its disassembler (no diagnoser here uses them)
  rm -rf "$a/amd64" "$a/x86" "$a/arm64" "$a/libcapstone.so"
  [ -f "$a/CustomAutograd.Benchmarks.dll" ] && [ -f "$a/libLibTorchSharp.so" ] && [ -f "$a/libCustomAutogradNative.so" ] \
    || { echo "the published program is incomplete (see $gpu/publish.log)" >&2; exit 1; }
  echo "prepared $gpu/: $(du -sh "$gpu" | cut -f1) (carry it with the working tree; keep the whole under 64 MiB)"
}

run() {
  [ -f "$gpu/dotnet-rt.tar.xz" ] && [ -f "$gpu/bench/CustomAutograd.Benchmarks.dll" ] \
    || { echo "run 'bash benchmarks/cuda.sh prepare' first, on a machine with the .NET SDK" >&2; exit 1; }
  local rt="${TMPDIR:-/tmp}/customautograd-dotnet" torchlib out
  mkdir -p "$rt"
  [ -x "$rt/dotnet" ] || tar -xJf "$gpu/dotnet-rt.tar.xz" -C "$rt"
  export DOTNET_ROOT="$rt" PATH="$rt:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  if [ -n "${TORCH_LIB:-}" ]; then
    torchlib=$TORCH_LIB
  else
    torchlib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') \
      || { echo "python3 cannot import torch; set TORCH_LIB to libtorch's lib folder" >&2; exit 1; }
  fi
  out=${OUT:-$gpu/results}
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
    python3 -c 'import torch; print("libtorch from PyTorch", torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null || true
    echo "libtorch: $torchlib"
  } | tee "$out/device.txt"
  export LD_LIBRARY_PATH="$torchlib:$root/$gpu/bench${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local status=0
  # pipefail: the status is the benchmark program's
  (cd "$gpu/bench" && dotnet CustomAutograd.Benchmarks.dll --device cuda "$@") 2>&1 | tee "$out/cuda-benchmarks.log" || status=$?
  if [ -d "$gpu/bench/BenchmarkDotNet.Artifacts" ]; then
    cp -r "$gpu/bench/BenchmarkDotNet.Artifacts" "$out/"
    [ -f "$gpu/bench/BenchmarkDotNet.Artifacts/goals.md" ] && cp "$gpu/bench/BenchmarkDotNet.Artifacts/goals.md" "$out/goals.md"
  fi
  echo "results in $out (exit status $status)"
  return "$status"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash benchmarks/cuda.sh prepare | run [--quick] [benchmark arguments]" >&2; exit 2 ;;
esac
