#!/usr/bin/env bash
# Uses CustomAutograd the ways a user does, each from a console project outside the repository, and checks that
# it runs on this machine (Debian 12's libstdc++ lacks the GLIBCXX_3.4.32 that TorchSharp 0.107 requires):
#   a) the package from a local folder feed, with a version unique to this run (and the warning for win-x64);
#   b) a project reference to src/CustomAutograd/CustomAutograd.csproj: bare (the library's start-up fallback loads a
#      patched copy), then with the one import line (the build step patches the output);
#   c) `dotnet publish` of the package consumer with an empty NuGet cache, run from the publish folder;
#   d) output built with the compatibility step believing the build machine's libstdc++ has GLIBCXX_3.4.32.
# In each, the consumer computes a custom function's gradient, catches a throwing Backward and checks that stack
# traces show /_/ source paths. Prints each path's time; exits non-zero on the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# libtorch for linux-x64 only (TorchSharp-cpu would also restore the Windows and macOS builds).
libtorch='<PackageReference Include="libtorch-cpu-linux-x64" Version="2.10.0" />'
lib_version=GLIBCXX_3.4.32

step() { echo "== consumer $1"; SECONDS=0; }
done_step() { echo "== consumer $1: OK (${SECONDS} s)"; }
fail() { echo "consumer test: $*" >&2; exit 1; }

# A console project in $1 with the given references; $2: extra project content.
new_consumer() {
  mkdir -p "$1"
  cat > "$1/Consumer.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
  </PropertyGroup>
  <ItemGroup>
    $libtorch
  </ItemGroup>
$2
</Project>
XML
  cat > "$1/Program.cs" <<'CS'
using CustomAutograd;
using TorchSharp;
using static TorchSharp.torch;

// CustomAutograd first: its start-up fallback (if needed) runs before TorchSharp's first call.
var square = AutogradFunction.Create(
    "Square",
    (ctx, x) => { ctx.SaveForBackward(x); return x * x; },
    (ctx, g) => g * 2 * ctx.SavedTensors[0]!);
var x = tensor(new[] { 1.0, -2.0, 3.0 }, requires_grad: true);
square.Apply(x).sum().backward();
var expected = tensor(new[] { 2.0, -4.0, 6.0 });
if (!x.grad!.allclose(expected))
    throw new Exception("wrong gradient: " + string.Join(", ", x.grad.data<double>().ToArray()));

var failing = AutogradFunction.Create("Failing", (ctx, t) => t * 1, (ctx, g) => throw new InvalidOperationException("from backward"));
try
{
    failing.Apply(x).sum().backward();
    throw new Exception("a failing backward did not raise");
}
catch (Exception e) when (e.Message.Contains("Failing") && e.Message.Contains("from backward"))
{
}

// Source paths in CustomAutograd's PDB are mapped to /_/, never the build machine's.
try
{
    square.Apply(null!);
    throw new Exception("Apply(null) did not throw");
}
catch (ArgumentNullException e) when (!(e.StackTrace ?? "").Contains("/_/src/CustomAutograd/"))
{
    throw new Exception("no /_/ source path of CustomAutograd in the stack trace:\n" + e);
}
catch (ArgumentNullException)
{
}
Console.WriteLine("consumer OK: gradient [2, -4, 6], backward failure surfaced as a .NET exception");
CS
}

# The GLIBCXX_3.4.32 requirement of a libLibTorchSharp.so is weak.
assert_weak() {
  readelf -V "$1" > "$work/readelf.txt"
  grep -E "Name: $lib_version +Flags: WEAK" "$work/readelf.txt" >/dev/null || fail "$1: $lib_version is not weak"
}

run_consumer() { # $1: folder; the rest: environment for the run
  local dir=$1; shift
  (cd "$dir" && env "$@" dotnet run -c Release --no-build) | tee "$work/run.log"
  grep -q '^consumer OK' "$work/run.log" || fail "$dir did not print its OK line"
}

# ---- a) the package, from a local folder feed, with a unique version ------------------------------------
step "a (package from a local feed)"
feed="$work/feed"
suffix="local.$(date +%s)"
base=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' "$root/Directory.Build.props")
version="$base-$suffix"
dotnet pack "$root/src/CustomAutograd/CustomAutograd.csproj" -c Release -o "$feed" --version-suffix "$suffix" -v quiet -nologo
package="$feed/CustomAutograd.$version.nupkg"
[ -f "$package" ] || fail "no $package"
unzip -l "$package" | tee "$work/package.txt"
for entry in THIRD-PARTY-NOTICES.txt README.md buildTransitive/CustomAutograd.targets buildTransitive/LibStdCxxCompat.targets \
             buildTransitive/tasks/CustomAutograd.Build.Tasks.dll lib/net8.0/CustomAutograd.dll runtimes/linux-x64/native/libCustomAutogradNative.so; do
  grep -q " $entry\$" "$work/package.txt" || fail "the package lacks $entry"
done
grep -q '\.cs$' "$work/package.txt" && fail "the package ships C# source (the task should be compiled)"
unzip -p "$package" README.md | cmp -s - "$root/src/CustomAutograd/PACKAGE.md" || fail "the package's README is not src/CustomAutograd/PACKAGE.md"
unzip -p "$package" THIRD-PARTY-NOTICES.txt | grep 'libffi - Copyright' >/dev/null || fail "the notice lacks libffi's license"

package_project="<ItemGroup><PackageReference Include=\"CustomAutograd\" Version=\"$version\" /></ItemGroup>"
package_config="<?xml version=\"1.0\" encoding=\"utf-8\"?>
<configuration><packageSources><add key=\"customautograd-local\" value=\"$feed\" /></packageSources></configuration>"
a="$work/a"
new_consumer "$a" "$package_project"
echo "$package_config" > "$a/NuGet.config"
(cd "$a" && dotnet build -c Release -v quiet -nologo)
assert_weak "$a/bin/Release/net10.0/runtimes/linux-x64/native/libLibTorchSharp.so"
run_consumer "$a" CUSTOMAUTOGRAD_LIBSTDCXX_FALLBACK=0
# A runtime identifier without a native shim gets a build warning (the check alone: no win-x64 restore needed).
(cd "$a" && dotnet msbuild -nologo -v minimal -t:CustomAutogradCheckRuntimeIdentifier -p:RuntimeIdentifier=win-x64) > "$work/rid.log"
grep -q "warning CA0101: CustomAutograd supplies its native shim for linux-x64 only; runtime identifier 'win-x64'" "$work/rid.log" \
  || { cat "$work/rid.log"; fail "a: no CA0101 warning for win-x64"; }
done_step a

# ---- b) a project reference from outside the repository ---------------------------------------------------
step "b (project reference, no import: start-up fallback)"
b="$work/b"
new_consumer "$b" "<ItemGroup><ProjectReference Include=\"$root/src/CustomAutograd/CustomAutograd.csproj\" /></ItemGroup>"
(cd "$b" && dotnet build -c Release -v quiet -nologo)
cache="$work/b-cache"
run_consumer "$b" XDG_CACHE_HOME="$cache"
ls "$cache"/customautograd/libstdcxx-compat/*/libLibTorchSharp.so >/dev/null 2>&1 || fail "b: the start-up fallback wrote no patched copy"
done_step "b (no import)"

step "b (project reference with the import line: build step)"
sed -i "s#</Project>#<Import Project=\"$root/build/CustomAutograd.targets\" />\n</Project>#" "$b/Consumer.csproj"
(cd "$b" && dotnet build -c Release -v quiet -nologo)
assert_weak "$b/bin/Release/net10.0/runtimes/linux-x64/native/libLibTorchSharp.so"
run_consumer "$b" CUSTOMAUTOGRAD_LIBSTDCXX_FALLBACK=0
done_step "b (import)"

# ---- c) dotnet publish with an empty NuGet cache, run from the publish folder -----------------------------
step "c (publish with an empty NuGet cache)"
c="$work/c"
new_consumer "$c" "$package_project"
echo "$package_config" > "$c/NuGet.config"
(cd "$c" && NUGET_PACKAGES="$work/c-nuget" dotnet publish -c Release -r linux-x64 --self-contained false -o "$c/publish" -v quiet -nologo)
rm -rf "$work/c-nuget"
assert_weak "$c/publish/libLibTorchSharp.so"
(cd "$c/publish" && NUGET_PACKAGES="$work/c-nuget-run" CUSTOMAUTOGRAD_LIBSTDCXX_FALLBACK=0 ./Consumer) | tee "$work/run.log"
grep -q '^consumer OK' "$work/run.log" || fail "c: the published consumer did not print its OK line"
[ -z "$(ls -A "$work/c-nuget-run" 2>/dev/null)" ] || fail "c: the published consumer wrote into the NuGet cache"
done_step c

# ---- d) built where libstdc++ has GLIBCXX_3.4.32, run here ------------------------------------------------
step "d (build machine with $lib_version)"
fake="$work/fake-libstdcxx"
mkdir -p "$fake"
echo "$lib_version { global: ca_marker; };" > "$fake/version.map"
echo 'int ca_marker(void) { return 0; }' > "$fake/marker.c"
gcc -shared -fPIC -Wl,--version-script="$fake/version.map" -Wl,-soname,libstdc++.so.6 -o "$fake/libstdc++.so.6" "$fake/marker.c"
d="$work/d"
new_consumer "$d" "$package_project"
echo "$package_config" > "$d/NuGet.config"
(cd "$d" && dotnet build -c Release -v normal -nologo -p:CustomAutogradBuildMachineLibStdCxx="$fake/libstdc++.so.6") > "$work/d-build.log"
grep -q "libstdc++ $fake/libstdc++.so.6 provides it" "$work/d-build.log" || { tail -n 30 "$work/d-build.log"; fail "d: the step did not see $lib_version in the build machine's libstdc++"; }
assert_weak "$d/bin/Release/net10.0/runtimes/linux-x64/native/libLibTorchSharp.so"
run_consumer "$d" CUSTOMAUTOGRAD_LIBSTDCXX_FALLBACK=0
done_step d
